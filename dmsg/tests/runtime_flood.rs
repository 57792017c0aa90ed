//! Two peers that both send far more than the transmit-queue limit to each
//! other at once, from user threads, must both get everything: reading
//! stops only when the driver's own callbacks overfill the queue, never
//! because the senders have (that deadlocked: both queues full, neither
//! driver reading). Run with a small read buffer (frames split across
//! reads) and with the default one.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use dmsg::link::{Event, Link, LinkError};
use dmsg::runtime::{Conn, Driver, DriverConfig, Handler};
use dmsg::wire::{cmd, Message};
use std::os::unix::net::UnixStream;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// Hands every one-way message to a channel.
struct Collect(mpsc::Sender<Message>);

impl Handler for Collect {
    fn event(&mut self, _: &Conn, ev: Event) {
        if let Event::Message { msg, txn: None } = ev {
            if msg.hdr.cmd == cmd::DBG_SHELL {
                let _ = self.0.send(msg);
            }
        }
    }
}

fn driver(
    sock: UnixStream,
    read_buffer: usize,
    tx: mpsc::Sender<Message>,
) -> (Conn, thread::JoinHandle<LinkError>) {
    let cfg = DriverConfig {
        read_buffer,
        tx_limit: 128 << 10,
        ..DriverConfig::default()
    };
    let (mut d, conn) = Driver::new(sock.into(), None, Link::default(), cfg).unwrap();
    let mut h = Collect(tx);
    (conn, thread::spawn(move || d.run(&mut h)))
}

#[test]
fn both_peers_flooding_each_other_get_everything() {
    const N: usize = 600; // 600 × 64 KiB ≈ 300 times the 128 KiB limit
    for read_buffer in [8 << 10, 256 << 10] {
        let (a, b) = UnixStream::pair().unwrap();
        let (tx_a, rx_a) = mpsc::channel();
        let (tx_b, rx_b) = mpsc::channel();
        let (ca, ta) = driver(a, read_buffer, tx_a);
        let (cb, tb) = driver(b, read_buffer, tx_b);
        let flood = |conn: Conn| {
            thread::spawn(move || {
                for i in 0..N {
                    let mut m = Message::new(cmd::DBG_SHELL);
                    m.aux = vec![i as u8; 65536];
                    conn.with_link(|l| l.send_oneway(m)).unwrap();
                }
            })
        };
        let (fa, fb) = (flood(ca.clone()), flood(cb.clone()));
        for (side, rx) in [("a", &rx_a), ("b", &rx_b)] {
            for i in 0..N {
                let m = rx
                    .recv_timeout(Duration::from_secs(10))
                    .unwrap_or_else(|_| panic!("{side}: message {i} never came"));
                assert_eq!(m.aux.len(), 65536);
                assert!(m.aux.iter().all(|&x| x == i as u8), "{side}: message {i}");
            }
        }
        fa.join().unwrap();
        fb.join().unwrap();
        ca.shutdown();
        assert_eq!(ta.join().unwrap(), LinkError::Shutdown);
        assert_eq!(tb.join().unwrap(), LinkError::Eof);
    }
}
