//! `dmsg-bench-insns`: the one-way message path of the engine on one
//! thread, without I/O, for `valgrind --tool=callgrind` (instruction counts
//! are repeatable where timings on a shared machine are not).
//!
//! A user loop sends `N` one-way `DBG_SHELL` messages with `AUX` bytes of
//! aux data through [`Link::send_oneway`], `BATCH` per round (as the
//! one-way figures of `dmsg-bench` do per `Conn::with_link`); the bytes the
//! link queued are taken with [`Link::take_tx`], copied into a 256 KiB
//! buffer (standing in for the kernel) and fed to a second link with
//! [`Link::receive`], whose events are taken and counted.
//!
//! ```text
//! cargo build --release -p dmsg-bench
//! valgrind --tool=callgrind target/release/dmsg-bench-insns 0 100000
//! ```
//!
//! Arguments: aux size (default 0), message count (default 100000).
//! Inclusive costs of `send_oneway` and `receive` divided by the count are
//! the instructions per message sent and received.

use dmsg::link::txqueue::TxQueue;
use dmsg::link::{Event, Link};
use dmsg::wire::{cmd, Message};
use std::collections::VecDeque;
use std::hint::black_box;

/// Bytes per simulated read, as the driver's default read buffer.
const READ: usize = 256 << 10;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let aux: usize = args.next().map_or(Ok(0), |s| s.parse())?;
    let count: u64 = args.next().map_or(Ok(100_000), |s| s.parse())?;
    let batch = (READ / (64 + aux.div_ceil(64) * 64)).clamp(1, 64) as u64;
    let template = vec![0xA5u8; aux];

    let mut tx = Link::default();
    let mut rx = Link::default();
    let mut out = TxQueue::default();
    let mut wire = vec![0u8; READ];
    let mut events = VecDeque::new();
    let mut sent = 0u64;
    let mut got = 0u64;
    while got < count {
        let n = batch.min(count - sent);
        for _ in 0..n {
            let mut m = Message::new(cmd::DBG_SHELL);
            m.aux = template.clone();
            tx.send_oneway(m)?;
        }
        sent += n;
        tx.take_tx(&mut out);
        let mut written = 0;
        while !out.is_empty() {
            // Copy up to one read's worth, as the kernel would.
            let mut fill = 0;
            for s in out.slices() {
                let take = s.len().min(READ - fill);
                if let (Some(dst), Some(src)) = (wire.get_mut(fill..fill + take), s.get(..take)) {
                    dst.copy_from_slice(src);
                }
                fill += take;
                if fill == READ {
                    break;
                }
            }
            out.consume(fill);
            written += fill;
            rx.receive(wire.get(..fill).unwrap_or(&[]));
            rx.take_events(&mut events);
            for ev in events.drain(..) {
                if let Event::Message { msg, txn: None } = ev {
                    black_box(&msg);
                    got += 1;
                }
            }
        }
        tx.tx_written(written);
    }
    println!("{got} messages of {aux} B aux, {batch} per batch");
    Ok(())
}
