//! A driver awaiting an answer (or, in a session, the thread waiting in
//! `Transaction::recv`) polls for it only briefly: an answer that never
//! comes costs at most one polling window, not a busy loop.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use dmsg::link::{Event, Link, LinkError};
use dmsg::runtime::session::{Incoming, Session};
use dmsg::runtime::{Conn, Driver, DriverConfig, Handler};
use dmsg::state::Origin;
use dmsg::wire::cmd::{self, CREATE, DELETE};
use dmsg::wire::Message;
use rustix::time::{clock_gettime, ClockId};
use std::os::unix::net::UnixStream;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

const T: Duration = Duration::from_secs(10);

/// Answers the first `left` transactions the peer opens, then none.
struct AnswerFirst {
    left: usize,
}

impl Handler for AnswerFirst {
    fn event(&mut self, conn: &Conn, ev: Event) {
        if let Event::Message { txn: Some(t), .. } = ev {
            if t.origin == Origin::Remote && self.left > 0 {
                self.left -= 1;
                conn.with_link(|l| l.reply(t.id, 0)).unwrap();
            }
        }
    }
}

/// Reports every transaction that closes.
struct Closed(mpsc::Sender<()>);

impl Handler for Closed {
    fn event(&mut self, _: &Conn, ev: Event) {
        if let Event::Closed(_) = ev {
            let _ = self.0.send(());
        }
    }
}

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    let t = clock_gettime(ClockId::ThreadCPUTime);
    Duration::new(t.tv_sec.unsigned_abs(), u32::try_from(t.tv_nsec).unwrap())
}

#[test]
fn an_answer_that_never_comes_costs_one_polling_window_not_a_busy_loop() {
    const ANSWERED: usize = 50;
    let (a, b) = UnixStream::pair().unwrap();
    let (mut peer, peer_conn) =
        Driver::new(b.into(), None, Link::default(), DriverConfig::default()).unwrap();
    let peer_t = thread::spawn(move || peer.run(&mut AnswerFirst { left: ANSWERED }));
    let cfg = DriverConfig {
        answer_poll: Duration::from_micros(200),
        ..DriverConfig::default()
    };
    let (mut ours, conn) = Driver::new(a.into(), None, Link::default(), cfg).unwrap();
    let (tx, rx) = mpsc::channel();
    let ours_t = thread::spawn(move || {
        let e = ours.run(&mut Closed(tx));
        (e, thread_cpu())
    });
    let ping = || {
        conn.with_link(|l| l.open(0, Message::new(cmd::LNK_PING | CREATE | DELETE)))
            .unwrap()
    };

    // Answers that come (fast, from a peer in the same process): the
    // window grows, and every answer arrives.
    for _ in 0..ANSWERED {
        ping();
        rx.recv_timeout(T).expect("an answer");
    }
    // One that never comes: the driver polls one window, then sleeps.
    ping();
    thread::sleep(Duration::from_millis(400));
    assert_eq!(conn.with_link(|l| l.awaited_answers()), 1);
    conn.shutdown();
    let (e, cpu) = ours_t.join().unwrap();
    assert_eq!(e, LinkError::Shutdown);
    // The unanswered transaction was aborted at the shutdown.
    rx.recv_timeout(T).expect("the abort closes it");
    assert!(
        cpu < Duration::from_millis(150),
        "the driver used {cpu:?} of CPU over 400 ms of waiting"
    );
    peer_conn.shutdown();
    peer_t.join().unwrap();
}

#[test]
fn in_a_session_the_waiting_thread_polls_and_an_answer_that_never_comes_costs_one_window() {
    const ANSWERED: usize = 50;
    let (a, b) = UnixStream::pair().unwrap();
    let cfg = DriverConfig {
        answer_poll: Duration::from_micros(200),
        ..DriverConfig::default()
    };
    let client = Session::spawn_with(a, Link::default(), cfg).unwrap();
    let conn = client.conn().clone();
    let server = Session::spawn(b).unwrap();
    // The server answers the first ANSWERED and keeps the rest open.
    let answering = thread::spawn(move || {
        let mut kept = Vec::new();
        while let Some(Incoming::Transaction { txn, .. }) = server.recv() {
            if kept.len() < ANSWERED {
                txn.reply(0).unwrap();
                kept.push(None);
            } else {
                kept.push(Some(txn));
            }
        }
        drop(kept);
    });
    let asking = thread::spawn(move || {
        let ping = || {
            client
                .open(Message::new(cmd::LNK_PING | CREATE | DELETE))
                .unwrap()
        };
        for _ in 0..ANSWERED {
            let t = ping();
            let m = t.recv().expect("an answer");
            assert_eq!(m.hdr.cmd & DELETE, DELETE);
        }
        // Never answered: recv polls one window, then blocks until the
        // link goes down and the transaction is aborted.
        let t = ping();
        let m = t.recv().expect("the abort");
        assert_ne!(m.hdr.cmd & cmd::ABORT, 0);
        thread_cpu()
    });
    thread::sleep(Duration::from_millis(400));
    conn.shutdown();
    let cpu = asking.join().unwrap();
    assert!(
        cpu < Duration::from_millis(150),
        "the waiting thread used {cpu:?} of CPU"
    );
    answering.join().unwrap();
}
