//! Feeds arbitrary bytes, cut into arbitrary chunks, to the frame decoder.
//!
//! Input layout: byte 0 gives the number `n` (0..=15) of chunk-size bytes
//! that follow; those give the chunk sizes (cycled, 1..=256); the rest is
//! the stream. Oracle: no panic; every message the decoder returns is well
//! formed and is exactly the bytes it was decoded from (the header as is,
//! the aux data as is; only the padding after the aux data may differ, as
//! the encoder always writes zeros there).
#![no_main]

use dmsg::wire::{cmd, Decoder, Encoder, AUX_MAX, HDR_MAX};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n % 16).min(rest.len());
    let (sizes, stream) = rest.split_at(n);
    let mut sizes = sizes.iter().map(|&s| usize::from(s) + 1).cycle();

    let mut dec = Decoder::new();
    let mut consumed = 0usize;
    let mut left = stream;
    while !left.is_empty() {
        let take = sizes.next().unwrap_or(left.len()).min(left.len());
        let (chunk, tail) = left.split_at(take);
        left = tail;
        let mut input = chunk;
        loop {
            let before = input.len();
            let got = dec.decode(&mut input);
            consumed += before - input.len();
            match got {
                Ok(Some(m)) => {
                    let h = cmd::header_size(m.hdr.cmd);
                    assert!((64..=HDR_MAX).contains(&h));
                    assert_eq!(m.ext.len() + 64, h);
                    assert_eq!(m.aux.len(), m.hdr.aux_bytes as usize);
                    assert!(m.aux.len() <= AUX_MAX);
                    let start = consumed - m.wire_size();
                    let frame = &stream[start..consumed];
                    let mut again = Vec::new();
                    Encoder::with_seq(0, m.hdr.seq())
                        .encode_head_with_salt(&m, m.hdr.salt, &mut again)
                        .unwrap();
                    again.extend_from_slice(&m.aux);
                    assert_eq!(&again[..], &frame[..again.len()]);
                }
                Ok(None) => {
                    assert!(input.is_empty());
                    break;
                }
                Err(e) => {
                    assert_eq!(dec.error(), Some(e));
                    return;
                }
            }
        }
    }
});
