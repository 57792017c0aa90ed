//! Helpers of the driver tests: the far end of a socketpair read as a
//! plain stream of frames.
#![allow(dead_code, clippy::unwrap_used, clippy::indexing_slicing)]

use dmsg::wire::{Decoder, Message};
use std::io::Read;
use std::os::unix::net::UnixStream;

/// Decodes every message from `sock` until EOF or `want` messages.
pub fn read_messages(sock: &mut UnixStream, want: usize) -> Vec<Message> {
    let mut dec = Decoder::new();
    let mut out = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut pending: Vec<u8> = Vec::new();
    while out.len() < want {
        let n = sock.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        pending.extend_from_slice(&buf[..n]);
        let mut input = &pending[..];
        while let Some(m) = dec.decode(&mut input).unwrap() {
            out.push(m);
        }
        let used = pending.len() - input.len();
        pending.drain(..used);
    }
    out
}
