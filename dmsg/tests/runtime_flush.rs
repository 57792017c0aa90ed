//! The write-through send path (`Conn::flush`): a thread that queued
//! messages writes them to the socket itself instead of waking the driver.
//! Order is kept against the driver's own writes, the transmit queue
//! never grows past its bound, threads waiting for it to drain are woken,
//! and nothing queued is lost when the link is stopped.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod runtime_support;

use dmsg::link::{Event, Link, LinkError};
use dmsg::runtime::{Conn, Driver, DriverConfig, Handler};
use dmsg::wire::{cmd, Message};
use runtime_support::read_messages;
use std::io::Read;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

struct Quiet;
impl Handler for Quiet {}

fn spawn_driver(sock: UnixStream, cfg: DriverConfig) -> (Conn, thread::JoinHandle<LinkError>) {
    let (mut driver, conn) = Driver::new(sock.into(), None, Link::default(), cfg).unwrap();
    (conn, thread::spawn(move || driver.run(&mut Quiet)))
}

/// A message carrying `seq` in its aux (`len` bytes, at least 8).
fn numbered(seq: u64, len: usize) -> Message {
    let mut m = Message::new(cmd::DBG_SHELL);
    m.aux = vec![(seq % 251) as u8; len];
    m.aux[..8].copy_from_slice(&seq.to_le_bytes());
    m
}

fn seq_of(m: &Message) -> u64 {
    u64::from_le_bytes(m.aux[..8].try_into().unwrap())
}

#[test]
fn a_flush_writes_what_is_queued_without_the_driver() {
    let (ours, mut theirs) = UnixStream::pair().unwrap();
    // The driver is not even running: only the flush can write.
    let (driver, conn) =
        Driver::new(ours.into(), None, Link::default(), DriverConfig::default()).unwrap();
    conn.with_link_nowait(|l| {
        for i in 0..10 {
            l.send_oneway(numbered(i, [100, 4096][i as usize % 2]))
                .unwrap();
        }
    });
    assert!(conn.flush(), "all written");
    assert_eq!(conn.with_link_nowait(|l| l.tx_len()), 0);
    let got = read_messages(&mut theirs, 10);
    let seqs: Vec<u64> = got.iter().map(seq_of).collect();
    assert_eq!(seqs, (0..10).collect::<Vec<_>>());
    // Nothing queued: nothing to do.
    assert!(!conn.flush());
    // Once the driver is gone the socket is closed (the flush kept no
    // handle to it) and a flush does nothing.
    drop(driver);
    assert_eq!(theirs.read(&mut [0u8; 16]).unwrap(), 0, "EOF");
    conn.with_link_nowait(|l| l.send_oneway(numbered(10, 64)).unwrap());
    assert!(!conn.flush());
}

#[test]
fn flushing_threads_and_the_driver_keep_the_order() {
    // Several rounds: senders that flush and senders that leave the
    // writing to the driver, all at once, with a reader slow enough that
    // the socket fills (flushes then stop short and the driver takes
    // over). Each sender's messages must arrive in its order, whole.
    const PER: u64 = 3000;
    const SENDERS: u64 = 4;
    let (ours, mut theirs) = UnixStream::pair().unwrap();
    let cfg = DriverConfig {
        tx_limit: 64 << 10,
        ..DriverConfig::default()
    };
    let (conn, driver) = spawn_driver(ours, cfg);
    let senders: Vec<_> = (0..SENDERS)
        .map(|s| {
            let conn = conn.clone();
            thread::spawn(move || {
                for i in 0..PER {
                    let seq = s * PER + i;
                    let len = [16, 600, 4096, 9000][(i % 4) as usize];
                    conn.with_link(|l| l.send_oneway(numbered(seq, len)))
                        .unwrap();
                    if s % 2 == 0 && i % 3 == 0 {
                        conn.flush();
                    }
                }
            })
        })
        .collect();
    let got = read_messages(&mut theirs, (PER * SENDERS) as usize);
    assert_eq!(got.len(), (PER * SENDERS) as usize);
    let mut next = vec![0u64; SENDERS as usize];
    for m in &got {
        let seq = seq_of(m);
        let (s, i) = (seq / PER, seq % PER);
        assert_eq!(i, next[s as usize], "sender {s} out of order");
        next[s as usize] += 1;
        assert!(m.aux[8..].iter().all(|&b| b == (seq % 251) as u8));
    }
    for t in senders {
        t.join().unwrap();
    }
    conn.shutdown();
    assert_eq!(driver.join().unwrap(), LinkError::Shutdown);
}

#[test]
fn a_flush_stops_at_a_full_socket_and_the_bound_holds() {
    const LIMIT: usize = 256 << 10;
    const AUX: usize = 4096;
    let (ours, mut theirs) = UnixStream::pair().unwrap();
    let cfg = DriverConfig {
        tx_limit: LIMIT,
        ..DriverConfig::default()
    };
    let (conn, driver) = spawn_driver(ours, cfg);

    // A sender that flushes after every message, with a peer that reads
    // nothing: it must stall at the limit like any sender, the queue
    // within the bound (L plus the one message of the blocked sender).
    let sent = Arc::new(AtomicUsize::new(0));
    const N: u64 = 2000;
    let sender = {
        let (conn, sent) = (conn.clone(), Arc::clone(&sent));
        thread::spawn(move || {
            for i in 0..N {
                conn.with_link(|l| l.send_oneway(numbered(i, AUX))).unwrap();
                conn.flush();
                sent.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    let mut last = usize::MAX;
    let mut since = Instant::now();
    loop {
        thread::sleep(Duration::from_millis(10));
        let now = sent.load(Ordering::SeqCst);
        if now != last {
            (last, since) = (now, Instant::now());
        } else if since.elapsed() > Duration::from_millis(300) {
            break;
        }
    }
    assert!(last < N as usize, "the sender should block, sent {last}");
    let queued = conn.with_link_nowait(|l| l.tx_len());
    assert!(queued >= LIMIT, "the queue is full ({queued})");
    assert!(
        queued < LIMIT + 2 * (AUX + 128),
        "queue {queued} over the bound"
    );
    // A flush now writes nothing (the socket is full) and keeps it all.
    assert!(!conn.flush());
    assert_eq!(conn.with_link_nowait(|l| l.tx_len()), queued);

    // The peer reads: everything arrives in order, the sender ends (it
    // was woken by whoever drained the queue).
    let got = read_messages(&mut theirs, N as usize);
    assert_eq!(got.len(), N as usize);
    for (i, m) in got.iter().enumerate() {
        assert_eq!(seq_of(m), i as u64);
    }
    sender.join().unwrap();
    conn.shutdown();
    assert_eq!(driver.join().unwrap(), LinkError::Shutdown);
}

#[test]
fn nothing_flushed_or_queued_is_lost_when_the_link_is_stopped() {
    for round in 0..20u64 {
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        let (conn, driver) = spawn_driver(ours, DriverConfig::default());
        // At most about 60 KB in all: a stop writes what the socket
        // takes without blocking, so all of it fits in the socket.
        let n = 20 + round * 2;
        for i in 0..n {
            let len = [1000, 4096][(i % 2) as usize];
            conn.with_link(|l| l.send_oneway(numbered(i, len))).unwrap();
            if i % 5 == 0 {
                conn.flush();
            }
        }
        conn.shutdown();
        let got = read_messages(&mut theirs, usize::MAX);
        assert_eq!(got.len() as u64, n, "round {round}");
        for (i, m) in got.iter().enumerate() {
            assert_eq!(seq_of(m), i as u64);
        }
        assert_eq!(driver.join().unwrap(), LinkError::Shutdown);
    }
}

/// Flushes another link from its callbacks (as a relay does), and counts
/// whether a flush of its own link from here declined.
struct FlushFromCallback {
    own_flush_wrote: mpsc::Sender<bool>,
}

impl Handler for FlushFromCallback {
    fn event(&mut self, conn: &Conn, ev: Event) {
        if let Event::Message { msg, txn: None } = ev {
            if msg.hdr.cmd == cmd::LNK_PING {
                conn.with_link(|l| l.send_oneway(numbered(7, 64))).unwrap();
                // On the driver's own thread a flush never writes: the
                // driver writes after its callbacks.
                let _ = self.own_flush_wrote.send(conn.flush());
            }
        }
    }
}

#[test]
fn a_flush_on_the_drivers_own_thread_leaves_the_writing_to_it() {
    let (ours, mut theirs) = UnixStream::pair().unwrap();
    let (mut d, conn) =
        Driver::new(ours.into(), None, Link::default(), DriverConfig::default()).unwrap();
    let (tx, rx) = mpsc::channel();
    let t = thread::spawn(move || {
        d.run(&mut FlushFromCallback {
            own_flush_wrote: tx,
        })
    });
    let mut enc = dmsg::wire::Encoder::new(1);
    let mut bytes = Vec::new();
    enc.encode(&Message::new(cmd::LNK_PING), &mut bytes)
        .unwrap();
    std::io::Write::write_all(&mut theirs, &bytes).unwrap();
    assert!(!rx.recv_timeout(Duration::from_secs(10)).unwrap());
    let got = read_messages(&mut theirs, 1);
    assert_eq!(seq_of(&got[0]), 7);
    conn.shutdown();
    assert_eq!(t.join().unwrap(), LinkError::Shutdown);
}
