//! STATE.md §10b row 24: every disconnected peer ends its service thread,
//! closes its fd (once) and runs the exit callback. Alone in its test
//! binary so that no other test opens fds while this one counts them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod service_support;

use dmsg::link::LinkError;
use dmsg::runtime::session::Session;
use dmsg::service::ServeOptions;
use dmsg::wire::Message;
use service_support::*;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

const PEERS: usize = 24;

#[test]
fn disconnected_peers_leave_no_thread_and_no_fd() {
    if std::fs::read_dir("/proc/self/fd").is_err() {
        eprintln!("skipped: no /proc/self/fd");
        return;
    }
    let (hub_node, _rx) = node(1, "A");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let exits = Arc::new(AtomicUsize::new(0));
    // Peer EOF, or a receive error: a peer that closes with our messages
    // unread in its buffer resets the connection.
    let lost = Arc::new(AtomicUsize::new(0));
    let baseline = open_fds();

    let mut handles = Vec::new();
    let mut raw_peers = Vec::new();
    let mut session_peers = Vec::new();
    for i in 0..PEERS {
        let client = TcpStream::connect(addr).unwrap();
        let (served, _) = listener.accept().unwrap();
        let (e1, e2) = (Arc::clone(&exits), Arc::clone(&lost));
        let opts = ServeOptions::new(format!("peer {i}")).on_exit(move |why| {
            e1.fetch_add(1, Ordering::SeqCst);
            if matches!(why, LinkError::Eof | LinkError::Io(_)) {
                e2.fetch_add(1, Ordering::SeqCst);
            }
        });
        handles.push(hub_node.serve(served, opts).unwrap());
        if i % 2 == 0 {
            // A silent peer that just hangs up later.
            raw_peers.push(client);
        } else {
            // A peer that joins: its own LNK_CONN and one span.
            let s = Session::spawn(client).unwrap();
            let conn = s
                .open(Message::with_body(
                    dmsg::wire::cmd::CREATE,
                    &dmsg::service::master_conn(),
                ))
                .unwrap();
            let sp = s
                .open(Message::with_body(
                    dmsg::wire::cmd::CREATE,
                    &span(100 + i as u8, &format!("peer{i}")),
                ))
                .unwrap();
            session_peers.push((s, conn, sp));
        }
    }
    assert!(wait_until(|| hub_node.links().len() == PEERS));
    assert!(wait_until(|| seen(&hub_node).len() == 1 + PEERS / 2));
    assert!(
        open_fds() >= baseline + 2 * PEERS,
        "the test must see the fds it wants to see closed"
    );
    assert!(handles.iter().all(|h| !h.is_finished()));

    // Every peer goes away.
    drop(raw_peers);
    for (s, conn, sp) in session_peers {
        drop((conn, sp));
        s.shutdown();
        s.wait_down();
        drop(s);
    }

    assert!(
        wait_until(|| handles.iter().all(|h| h.is_finished())),
        "{} of {PEERS} service threads still run",
        handles.iter().filter(|h| !h.is_finished()).count()
    );
    for h in handles {
        let why = h.join();
        assert!(matches!(why, LinkError::Eof | LinkError::Io(_)), "{why:?}");
    }
    assert_eq!(exits.load(Ordering::SeqCst), PEERS);
    assert_eq!(lost.load(Ordering::SeqCst), PEERS);
    assert!(
        wait_until(|| open_fds() == baseline),
        "{} fds left open",
        open_fds() as isize - baseline as isize
    );
    assert!(hub_node.links().is_empty());
    assert_eq!(seen(&hub_node).len(), 1, "every peer span withdrawn");
    let s = hub_node.stats();
    assert_eq!((s.conns, s.relays, s.txns, s.nodes), (0, 0, 0, 1));
}
