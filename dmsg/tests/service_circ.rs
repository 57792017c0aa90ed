//! Virtual circuits through threaded nodes (STATE.md §7): lines of nodes
//! joined by socketpairs, each served by [`Node::serve`]. A circuit from
//! the first node to the last carries the DBG shell and transactions, dies
//! with its path at both ends, and leaves nothing behind.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod service_support;

use dmsg::link::Event;
use dmsg::lnk::{CircError, CircuitEvent, CircuitId, CircuitKind, LnkError, NodeId};
use dmsg::runtime::session::{Incoming, Session};
use dmsg::runtime::DriverConfig;
use dmsg::service::{
    Circuit, CircuitIncoming, Node, NodeShell, ServeOptions, ServiceEvent, ServiceHandle,
    RELAY_QUEUE_FACTOR,
};
use dmsg::state::Origin;
use dmsg::wire::{cmd, Message};
use service_support::*;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Condvar, Mutex};

/// What the far end's circuit handler saw: (circuit, cmd, error, aux).
type Seen = Arc<Mutex<Vec<(CircuitId, u32, u32, Vec<u8>)>>>;

/// A line of nodes, each with one span, the default shell and a
/// transaction handler on accepted circuits: a CREATE is answered with a
/// REPLY|CREATE carrying the same aux (unless the aux is `hold`), and the
/// opener's DELETE with our DELETE.
struct Line {
    nodes: Vec<Node>,
    events: Vec<Receiver<ServiceEvent>>,
    /// (left end's service, right end's service) of link i ↔ i+1.
    hops: Vec<(ServiceHandle, ServiceHandle)>,
    seen: Vec<Seen>,
}

const NAMES: [&str; 4] = ["A", "B", "C", "D"];

fn serve_answering(n: &Node, seen: &Seen) {
    let seen = Arc::clone(seen);
    n.on_circuit_message(move |conn, c, ev| {
        let Event::Message { msg, txn } = ev else {
            return;
        };
        seen.lock()
            .unwrap()
            .push((c, msg.hdr.cmd, msg.hdr.error, msg.aux.clone()));
        let Some(t) = txn else { return };
        if t.origin != Origin::Remote || t.tx_closed() {
            return;
        }
        if msg.hdr.cmd & cmd::CREATE != 0 && msg.aux != b"hold" {
            let mut back = Message::new(cmd::BLK_OPEN | cmd::CREATE);
            back.aux = msg.aux.clone();
            conn.with_link(|l| l.send(t.id, back)).unwrap();
        }
        if msg.hdr.cmd & cmd::DELETE != 0 {
            let _ = conn.with_link(|l| l.reply(t.id, 0));
        }
    });
}

fn link_pair(l: &Node, r: &Node, i: usize) -> (ServiceHandle, ServiceHandle) {
    link_pair_with(l, r, i, DriverConfig::default())
}

/// [`link_pair`] with driver settings `left` for the left end.
fn link_pair_with(
    l: &Node,
    r: &Node,
    i: usize,
    left: DriverConfig,
) -> (ServiceHandle, ServiceHandle) {
    let (sl, sr) = UnixStream::pair().unwrap();
    let hl = l
        .serve(
            sl,
            ServeOptions::new(format!("{i}>"))
                .via(10 + i as i64)
                .driver(left),
        )
        .unwrap();
    let hr = r
        .serve(sr, ServeOptions::new(format!("<{i}")).via(20 + i as i64))
        .unwrap();
    (hl, hr)
}

fn line(n: usize) -> Line {
    line_with(n, |_| DriverConfig::default())
}

/// [`line`] whose link `i` has driver settings `left(i)` at its left end.
fn line_with(n: usize, left: impl Fn(usize) -> DriverConfig) -> Line {
    let mut nodes = Vec::new();
    let mut events = Vec::new();
    let mut seen = Vec::new();
    for (i, name) in NAMES.iter().take(n).enumerate() {
        let (node, rx) = node(i as u8 + 1, name);
        node.set_shell(Arc::new(NodeShell));
        let s: Seen = Arc::default();
        serve_answering(&node, &s);
        nodes.push(node);
        events.push(rx);
        seen.push(s);
    }
    let hops = (0..n - 1)
        .map(|i| link_pair_with(&nodes[i], &nodes[i + 1], i, left(i)))
        .collect();
    let l = Line {
        nodes,
        events,
        hops,
        seen,
    };
    l.converge();
    l
}

impl Line {
    fn converge(&self) {
        let n = self.nodes.len();
        assert!(
            wait_until(|| self.nodes.iter().all(|x| x.nodes().len() == n)),
            "no convergence"
        );
    }

    /// The id the first node knows the node named `name` by.
    fn id_of(&self, name: &str) -> NodeId {
        self.nodes[0]
            .nodes()
            .into_iter()
            .find(|v| v.span.fs_label.as_str() == Some(name))
            .map(|v| v.id)
            .unwrap()
    }

    /// Live transactions on every link of every node.
    fn txns(&self) -> Vec<usize> {
        self.nodes
            .iter()
            .flat_map(|n| {
                n.links()
                    .into_iter()
                    .map(|(l, _)| n.conn(l).map_or(0, |c| c.with_link(|k| k.txn_count())))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    fn circuits(&self) -> Vec<usize> {
        self.nodes.iter().map(Node::circuit_count).collect()
    }

    fn no_circuits(&self) -> bool {
        self.circuits().iter().all(|&c| c == 0)
    }

    /// The circuit events node `i` reported so far.
    /// The circuit events of node `i`: waits (at most `WAIT`) until `n`
    /// have come, since events reach subscribers after the node's lock is
    /// released, then takes any more that are there already.
    fn circuit_events_n(&self, i: usize, n: usize) -> Vec<CircuitEvent> {
        let deadline = std::time::Instant::now() + WAIT;
        let mut got = Vec::new();
        while got.len() < n {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.events[i].recv_timeout(left) {
                Ok(ServiceEvent::Circuit(c)) => got.push(c),
                Ok(_) => {}
                Err(_) => break,
            }
        }
        got.extend(self.circuit_events(i));
        got
    }

    fn circuit_events(&self, i: usize) -> Vec<CircuitEvent> {
        self.events[i]
            .try_iter()
            .filter_map(|e| match e {
                ServiceEvent::Circuit(c) => Some(c),
                _ => None,
            })
            .collect()
    }

    fn stop(self) {
        for (l, r) in self.hops {
            l.shutdown();
            l.join();
            r.join();
        }
    }
}

/// Waits for the next delivery on `c` that `f` maps to `Some`.
fn next<T>(c: &Circuit, mut f: impl FnMut(CircuitIncoming) -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let got = c
            .recv_timeout(left)
            .expect("nothing arrived on the circuit");
        if let Some(x) = f(got) {
            return x;
        }
    }
}

fn up(c: &Circuit) {
    next(c, |x| matches!(x, CircuitIncoming::Up).then_some(()));
}

/// Sends `tree` over `c` and returns the text lines (each with its NUL
/// stripped) up to the prompt, checking the prompt.
fn tree_over(c: &Circuit) -> Vec<String> {
    let mut m = Message::new(cmd::DBG_SHELL);
    m.aux = b"tree\0".to_vec();
    c.send_oneway(m).unwrap();
    let mut lines = Vec::new();
    loop {
        let (msg, txn) = next(c, |x| match x {
            CircuitIncoming::Message { msg, txn } => Some((msg, txn)),
            _ => None,
        });
        assert!(txn.is_none(), "one-way text and prompt");
        assert_eq!(msg.hdr.circuit, c.id().id, "on our side's circuit id");
        if msg.hdr.cmd == cmd::DBG_SHELL | cmd::REPLY {
            assert_eq!(msg.aux.last(), Some(&0));
            lines.push(String::from_utf8(msg.aux[..msg.aux.len() - 1].to_vec()).unwrap());
        } else {
            assert_eq!(msg.hdr.cmd, cmd::LNK_ERROR | cmd::REPLY, "the prompt");
            assert_eq!(msg.hdr.error, 0);
            return lines;
        }
    }
}

/// Runs CREATE → REPLY|CREATE → DELETE → REPLY|DELETE over `c` with `aux`.
fn transaction(c: &Circuit, aux: &[u8]) {
    let mut m = Message::new(cmd::BLK_OPEN | cmd::CREATE);
    m.aux = aux.to_vec();
    let t = c.open(m).unwrap();
    let (msg, info) = next(c, |x| match x {
        CircuitIncoming::Message { msg, txn: Some(i) } if i.id == t => Some((msg, i)),
        _ => None,
    });
    assert_eq!(msg.hdr.cmd, cmd::BLK_OPEN | cmd::CREATE | cmd::REPLY);
    assert_eq!(msg.aux, aux, "the far end's answer");
    assert_eq!(info.circuit, c.id().id);
    c.reply(t, 0).unwrap();
    let (msg, info) = next(c, |x| match x {
        CircuitIncoming::Message { msg, txn: Some(i) } if i.id == t => Some((msg, i)),
        _ => None,
    });
    assert_eq!(
        msg.hdr.cmd & (cmd::REPLY | cmd::DELETE),
        cmd::REPLY | cmd::DELETE
    );
    assert_eq!(msg.hdr.error, 0);
    assert!(info.is_done());
}

#[test]
fn tree_over_a_circuit_through_one_relay() {
    let l = line(3);
    let before = l.txns();
    let c = l.nodes[0].open_circuit(l.id_of("C")).unwrap();
    up(&c);
    // The relay pairs two circuits; the far end accepted one.
    let relay = l.nodes[1].circuits();
    assert_eq!(relay.len(), 1);
    assert_eq!(relay[0].kind, CircuitKind::Relay);
    assert!(relay[0].acked);
    let far = l.nodes[2].circuits();
    assert_eq!(far.len(), 1);
    assert_eq!(far[0].kind, CircuitKind::Accept);
    assert_eq!(
        l.circuit_events_n(2, 1),
        vec![CircuitEvent::Accepted(far[0].near)]
    );
    assert_eq!(l.circuit_events_n(0, 1), vec![CircuitEvent::Up(c.id())]);

    let want = l.nodes[2].tree_lines();
    assert_eq!(tree_over(&c), want, "C's tree, line by line");
    assert!(want.iter().any(|s| s.contains("(C)")));

    drop(c);
    assert!(wait_until(|| l.no_circuits()), "{:?}", l.circuits());
    assert!(wait_until(|| l.txns() == before), "{:?}", l.txns());
    assert_eq!(l.nodes[0].circuit_handles(), 0);
    l.stop();
}

#[test]
fn transactions_over_a_circuit_and_back() {
    let l = line(3);
    let before = l.txns();
    let c = l.nodes[0].open_circuit(l.id_of("C")).unwrap();
    // Usable before the acknowledgement arrives.
    transaction(&c, b"first");
    transaction(&c, &[7u8; 5000]);
    // One-way on the circuit reaches C's handler with C's circuit id.
    let mut m = Message::new(cmd::BLK_FLUSH);
    m.aux = b"oneway".to_vec();
    c.send_oneway(m).unwrap();
    let far = l.nodes[2].circuits()[0].near;
    assert!(wait_until(|| l.seen[2].lock().unwrap().iter().any(
        |(id, k, _, aux)| *id == far && *k == cmd::BLK_FLUSH && aux == b"oneway"
    )));
    let seen_creates = l.seen[2]
        .lock()
        .unwrap()
        .iter()
        .filter(|(id, k, _, _)| *id == far && k & cmd::CREATE != 0)
        .count();
    assert_eq!(seen_creates, 2);

    assert!(c.close());
    next(&c, |x| match x {
        CircuitIncoming::Down(0) => Some(()),
        _ => None,
    });
    assert!(wait_until(|| l.no_circuits()), "{:?}", l.circuits());
    assert!(wait_until(|| l.txns() == before), "{:?}", l.txns());
    // The far end saw it go down in order.
    assert!(wait_until(|| l.circuit_events(2).iter().any(
        |e| matches!(e, CircuitEvent::Down { circuit, .. } if *circuit == far)
    )));
    l.stop();
}

#[test]
fn relayed_in_order_and_intact_read_whole_or_in_pieces() {
    // The relay B reads what C sends on a link with the smallest read
    // buffer: frames a read holds whole are relayed from the buffer
    // (Event::RelayFrame), the others rebuilt as messages (Event::Relay),
    // interleaved. Toward C it reads 256 KiB at a time.
    let small = DriverConfig {
        read_buffer: 4096,
        ..DriverConfig::default()
    };
    let l = line_with(3, |i| {
        if i == 1 {
            small
        } else {
            DriverConfig::default()
        }
    });
    let before = l.txns();
    let c = l.nodes[0].open_circuit(l.id_of("C")).unwrap();
    up(&c);
    const N: usize = 96;
    let mut ids = Vec::new();
    for i in 0..N {
        let mut m = Message::new(cmd::BLK_OPEN | cmd::CREATE);
        m.aux = numbered_aux(i);
        ids.push(c.open(m).unwrap());
    }
    // C answered each with its aux, in order: the answers come back in
    // that order, byte for byte.
    for (i, &t) in ids.iter().enumerate() {
        let (msg, info) = next(&c, |x| match x {
            CircuitIncoming::Message {
                msg,
                txn: Some(info),
            } => Some((msg, info)),
            _ => None,
        });
        assert_eq!(info.id, t, "answer {i} out of order");
        assert_eq!(msg.hdr.cmd, cmd::BLK_OPEN | cmd::CREATE | cmd::REPLY);
        assert_eq!(msg.hdr.circuit, c.id().id);
        assert!(msg.aux == numbered_aux(i), "answer {i} altered");
    }
    let far = l.nodes[2].circuits()[0].near;
    let got: Vec<Vec<u8>> = l.seen[2]
        .lock()
        .unwrap()
        .iter()
        .filter(|(id, k, _, _)| *id == far && k & cmd::CREATE != 0)
        .map(|(_, _, _, aux)| aux.clone())
        .collect();
    assert_eq!(got, (0..N).map(numbered_aux).collect::<Vec<_>>());
    for &t in &ids {
        c.reply(t, 0).unwrap();
    }
    for _ in 0..N {
        next(&c, |x| match x {
            CircuitIncoming::Message { msg, txn: Some(_) } => {
                (msg.hdr.cmd & cmd::DELETE != 0).then_some(())
            }
            _ => None,
        });
    }
    assert!(c.close());
    assert!(wait_until(|| l.no_circuits()), "{:?}", l.circuits());
    assert!(wait_until(|| l.txns() == before), "{:?}", l.txns());
    l.stop();
}

#[test]
fn three_relays_deep() {
    let l = line(4);
    let before = l.txns();
    let c = l.nodes[0].open_circuit(l.id_of("D")).unwrap();
    up(&c);
    for relay in &l.nodes[1..3] {
        let v = relay.circuits();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].kind, CircuitKind::Relay);
        // head.circuit is rewritten per hop.
        assert_ne!(Some(v[0].near), v[0].far);
    }
    assert_eq!(l.nodes[3].circuits()[0].kind, CircuitKind::Accept);
    let want = l.nodes[3].tree_lines();
    assert_eq!(tree_over(&c), want);
    transaction(&c, b"deep");
    drop(c);
    assert!(wait_until(|| l.no_circuits()), "{:?}", l.circuits());
    assert!(wait_until(|| l.txns() == before), "{:?}", l.txns());
    l.stop();
}

#[test]
fn a_dying_link_takes_the_circuit_down_at_both_ends() {
    let mut l = line(3);
    let before = l.txns();
    let c = l.nodes[0].open_circuit(l.id_of("C")).unwrap();
    up(&c);
    let far = l.nodes[2].circuits()[0].near;
    // A transaction C holds open.
    let mut m = Message::new(cmd::BLK_OPEN | cmd::CREATE);
    m.aux = b"hold".to_vec();
    let t = c.open(m).unwrap();
    assert!(wait_until(|| l.seen[2]
        .lock()
        .unwrap()
        .iter()
        .any(|(id, _, _, aux)| *id == far && aux == b"hold")));

    // The link B—C goes.
    let (bl, cr) = l.hops.pop().unwrap();
    bl.shutdown();
    bl.join();
    cr.join();

    // A: the circuit is down and its transaction aborted.
    let mut down = None;
    let mut aborted = false;
    while down.is_none() || !aborted {
        match c.recv_timeout(WAIT).expect("no teardown at A") {
            CircuitIncoming::Down(e) => down = Some(e),
            CircuitIncoming::Message { msg, txn: Some(i) } if i.id == t => {
                assert_ne!(msg.hdr.cmd & cmd::ABORT, 0, "{:#x}", msg.hdr.cmd);
                assert_ne!(msg.hdr.cmd & cmd::DELETE, 0);
                assert_ne!(msg.hdr.error, 0);
                aborted = true;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_ne!(down, Some(0), "not an orderly close");
    assert!(c.view().is_none() || c.view().is_some_and(|v| v.closing));
    // C: down too, and its side of the transaction aborted.
    assert!(wait_until(|| l.circuit_events(2).iter().any(
        |e| matches!(e, CircuitEvent::Down { circuit, error } if *circuit == far && *error != 0)
    )));
    assert!(wait_until(|| l.seen[2].lock().unwrap().iter().any(
        |(id, k, e, _)| *id == far && k & cmd::ABORT != 0 && *e != 0
    )));
    assert!(wait_until(|| l.no_circuits()), "{:?}", l.circuits());
    drop(c);

    // The path comes back: same transactions as before, and a new
    // circuit works.
    l.hops.push(link_pair(&l.nodes[1], &l.nodes[2], 1));
    l.converge();
    assert!(
        wait_until(|| l.txns() == before),
        "{:?} != {before:?}",
        l.txns()
    );
    let c = l.nodes[0].open_circuit(l.id_of("C")).unwrap();
    transaction(&c, b"again");
    drop(c);
    assert!(wait_until(|| l.no_circuits()), "{:?}", l.circuits());
    assert!(wait_until(|| l.txns() == before), "{:?}", l.txns());
    l.stop();
}

#[test]
fn losing_the_far_span_closes_the_circuit() {
    let l = line(3);
    let c_id = l.id_of("C");
    let c = l.nodes[0].open_circuit(c_id).unwrap();
    up(&c);
    // C withdraws every span it has: its only one (id 1: the first local
    // span registered).
    let c_span = dmsg::lnk::LocalSpanId(1);
    assert!(l.nodes[2].remove_local_span(c_span));
    let e = next(&c, |x| match x {
        CircuitIncoming::Down(e) => Some(e),
        _ => None,
    });
    assert_ne!(e, 0);
    assert!(wait_until(|| l.no_circuits()), "{:?}", l.circuits());
    // A circuit to a node nobody sees any more cannot be opened.
    assert!(wait_until(|| l.nodes[0].nodes().len() == 2));
    assert!(l.nodes[0].open_circuit(c_id).is_err());
    drop(c);
    l.stop();
}

/// Sends `line` as a one-way DBG_SHELL on `client` and returns the text
/// up to the prompt.
fn shell(client: &Session, line: &str) -> String {
    let mut m = Message::new(cmd::DBG_SHELL);
    m.aux = format!("{line}\0").into_bytes();
    client.send_oneway(m).unwrap();
    let mut text = String::new();
    loop {
        match client.recv_timeout(WAIT).expect("no prompt") {
            Incoming::OneWay(m) if m.hdr.cmd == cmd::DBG_SHELL | cmd::REPLY => {
                text.push_str(std::str::from_utf8(&m.aux[..m.aux.len() - 1]).unwrap());
            }
            Incoming::OneWay(m) => {
                assert_eq!(m.hdr.cmd, cmd::LNK_ERROR | cmd::REPLY);
                return text;
            }
            Incoming::Transaction { txn, .. } => drop(txn),
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[test]
fn the_circ_shell_command_opens_a_circuit() {
    let l = line(3);
    let (s, cl) = UnixStream::pair().unwrap();
    let h = l.nodes[0]
        .serve(
            s,
            ServeOptions::new("shell")
                .lnk_conn(None)
                .shell(Arc::new(NodeShell)),
        )
        .unwrap();
    let client = Session::spawn(cl).unwrap();
    // The msgid A received C's span with, as `tree` shows it.
    let span = l.nodes[0]
        .nodes()
        .into_iter()
        .find(|v| v.span.fs_label.as_str() == Some("C"))
        .map(|v| v.links[0])
        .unwrap();
    let tree = shell(&client, "tree");
    assert!(
        tree.contains(&format!("{:016x}", span.msgid)) || tree.contains("(C)"),
        "{tree}"
    );

    let text = shell(&client, &format!("circ {:016x}", span.msgid));
    assert!(text.starts_with("circ: opened circuit "), "{text}");
    let id = u64::from_str_radix(&text["circ: opened circuit ".len()..][..16], 16).unwrap();
    let cid = CircuitId {
        link: span.link.unwrap(),
        id,
    };
    assert!(wait_until(|| l.nodes[0]
        .circuit(cid)
        .is_some_and(|v| v.acked)));
    assert!(wait_until(|| l.nodes[2].circuit_count() == 1));
    assert_eq!(l.nodes[1].circuits()[0].kind, CircuitKind::Relay);

    // Bad and unknown msgids.
    assert_eq!(
        shell(&client, "circ 00000000deadbeef"),
        "circ: no span with msgid 00000000deadbeef\n"
    );
    // A circuit the shell opened is closed like any other.
    assert!(l.nodes[0].close_circuit(cid));
    assert!(wait_until(|| l.no_circuits()), "{:?}", l.circuits());
    h.shutdown();
    h.join();
    l.stop();
}

#[test]
fn a_far_end_that_stops_reading_costs_the_circuit_not_the_relays_memory() {
    const LIMIT: usize = 64 << 10;
    // A—B—C; B's end of B—C queues at most LIMIT before senders wait.
    let l = line_with(3, |i| DriverConfig {
        tx_limit: if i == 1 { LIMIT } else { 4 << 20 },
        ..DriverConfig::default()
    });
    // C's circuit handler stalls on the first message until released:
    // its driver stops reading, B's queue toward C fills.
    let stall = Arc::new((Mutex::new(true), Condvar::new()));
    let st = Arc::clone(&stall);
    l.nodes[2].on_circuit_message(move |_, _, _| {
        let (m, cv) = &*st;
        let mut held = m.lock().unwrap();
        while *held {
            held = cv.wait(held).unwrap();
        }
    });
    let c = l.nodes[0].open_circuit(l.id_of("C")).unwrap();
    up(&c);
    let relay = l.nodes[1].circuits()[0];
    let to_c = l.nodes[1].conn(relay.far.unwrap().link).unwrap();

    // A streams 4 KiB messages on the circuit until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let (stop, conn, id) = (Arc::clone(&stop), c.conn().clone(), c.id().id);
        std::thread::spawn(move || {
            let mut sent = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let mut m = Message::new(cmd::BLK_WRITE);
                m.hdr.circuit = id;
                m.aux = vec![7; 4096];
                if conn.with_link(|k| k.send_oneway(m)).is_err() {
                    break;
                }
                sent += 1;
            }
            sent
        })
    };

    // The circuit goes down at A with LOSTLINK; meanwhile B's queue
    // toward C stays within the bound (plus the last message queued).
    let bound = RELAY_QUEUE_FACTOR * LIMIT + 4096 + 256;
    let mut most = 0;
    let deadline = std::time::Instant::now() + WAIT;
    let down = loop {
        most = most.max(to_c.with_link_nowait(|k| k.tx_len()));
        match c.recv_timeout(std::time::Duration::from_millis(5)) {
            Some(CircuitIncoming::Down(e)) => break Some(e),
            Some(_) => {}
            None if std::time::Instant::now() > deadline => break None,
            None => {}
        }
    };
    stop.store(true, Ordering::Relaxed);
    let sent = sender.join().unwrap();
    most = most.max(to_c.with_link_nowait(|k| k.tx_len()));
    assert_eq!(
        down,
        Some(dmsg::wire::err::LOSTLINK),
        "sent {sent}, queue up to {most}"
    );
    assert!(
        most <= bound,
        "B queued {most} bytes toward C (bound {bound})"
    );
    assert!(
        sent as usize * 4096 > bound,
        "A sent only {sent} messages: the bound was never reached"
    );
    // B says why.
    assert!(wait_until(|| l.events[1].try_iter().any(|e| matches!(
        e,
        ServiceEvent::Refused {
            error: LnkError::Circuit(CircError::Congested(_)),
            ..
        }
    ))));

    // C reads again: B's queue drains, nothing is left of the circuit,
    // and a new one works.
    {
        let (m, cv) = &*stall;
        *m.lock().unwrap() = false;
        cv.notify_all();
    }
    drop(c);
    // (What the driver wrote last may be reported at its next wakeup.)
    assert!(wait_until(|| to_c.with_link_nowait(|k| k.tx_len()) < LIMIT));
    assert!(wait_until(|| l.no_circuits()), "{:?}", l.circuits());
    let c = l.nodes[0].open_circuit(l.id_of("C")).unwrap();
    up(&c);
    drop(c);
    assert!(wait_until(|| l.no_circuits()), "{:?}", l.circuits());
    l.stop();
}
