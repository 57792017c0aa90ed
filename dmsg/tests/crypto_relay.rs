//! A circuit relayed between encrypted links (threaded nodes over Unix
//! socketpairs, each link's session negotiated with fresh keys): the relay
//! opens each read in its buffer and relays the frames it holds whole from
//! there, the others as messages. Transactions of every aux size cross
//! both ways through it, in order and intact, with the relay reading one
//! direction 4 KiB at a time (most frames cut across reads and chunks).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod crypto_link_support;
mod service_support;

use crypto_link_support::{trusting_pair, Keys, LOOPBACK};
use dmsg::crypto::{LinkMode, OsRandom};
use dmsg::link::Event;
use dmsg::lnk::HubConfig;
use dmsg::runtime::crypto::{negotiate_keys, DEFAULT_HANDSHAKE_TIMEOUT};
use dmsg::runtime::DriverConfig;
use dmsg::service::{CircuitIncoming, Node, ServeOptions, ServiceHandle};
use dmsg::sim::default_span;
use dmsg::state::Origin;
use dmsg::wire::{cmd, Message};
use service_support::{numbered_aux, wait_until, WAIT};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Serves one end of an encrypted link: the session is negotiated with
/// `keys` before the driver starts; `sessions` counts the ends that got
/// one.
fn serve_encrypted(
    n: &Node,
    sock: UnixStream,
    keys: &Keys,
    cfg: DriverConfig,
    sessions: &Arc<AtomicUsize>,
) -> ServiceHandle {
    let LinkMode::Encrypted(k) = keys.dir().link_mode(LOOPBACK).unwrap() else {
        panic!("expected keys");
    };
    let sessions = Arc::clone(sessions);
    let opts = ServeOptions::new("enc").driver(cfg).negotiate(move |fd| {
        let s = negotiate_keys(fd, k, DEFAULT_HANDSHAKE_TIMEOUT, &mut OsRandom)
            .map_err(|e| e.to_link_error())?;
        sessions.fetch_add(1, Ordering::SeqCst);
        Ok(Some(s))
    });
    n.serve(sock, opts).unwrap()
}

#[test]
fn a_circuit_relayed_between_encrypted_links_carries_everything_in_order() {
    let nodes: Vec<Node> = (0..3)
        .map(|i| {
            let n = Node::new(HubConfig::new(i * 7 + 1));
            n.add_local_span(default_span(i as usize));
            n
        })
        .collect();
    // C answers every CREATE with a REPLY|CREATE carrying the same aux,
    // and a DELETE with its own.
    nodes[2].on_circuit_message(|conn, _, ev| {
        let Event::Message { msg, txn: Some(t) } = ev else {
            return;
        };
        if t.origin != Origin::Remote || t.tx_closed() {
            return;
        }
        if msg.hdr.cmd & cmd::CREATE != 0 {
            let mut back = Message::new(cmd::BLK_OPEN | cmd::CREATE);
            back.aux = msg.aux;
            conn.with_link(|l| l.send(t.id, back)).unwrap();
        }
        if msg.hdr.cmd & cmd::DELETE != 0 {
            let _ = conn.with_link(|l| l.reply(t.id, 0));
        }
    });
    let small = DriverConfig {
        read_buffer: 4096,
        ..DriverConfig::default()
    };
    let sessions = Arc::new(AtomicUsize::new(0));
    let mut hops = Vec::new();
    for i in 0..2 {
        let (l, r) = UnixStream::pair().unwrap();
        let (kl, kr) = trusting_pair();
        // The relay (node 1) reads what C sends 4 KiB at a time.
        let left_cfg = if i == 1 {
            small
        } else {
            DriverConfig::default()
        };
        hops.push((
            serve_encrypted(&nodes[i], l, &kl, left_cfg, &sessions),
            serve_encrypted(&nodes[i + 1], r, &kr, DriverConfig::default(), &sessions),
        ));
    }
    assert!(
        wait_until(|| nodes.iter().all(|n| n.nodes().len() == 3)),
        "no convergence"
    );
    assert_eq!(
        sessions.load(Ordering::SeqCst),
        4,
        "every link end is encrypted"
    );
    let far = default_span(2);
    let c_id = nodes[0]
        .nodes()
        .into_iter()
        .find(|v| v.span.pfs_fsid == far.pfs_fsid)
        .unwrap()
        .id;
    let c = nodes[0].open_circuit(c_id).unwrap();
    let next = || {
        c.recv_timeout(WAIT)
            .expect("nothing arrived on the circuit")
    };
    assert!(matches!(next(), CircuitIncoming::Up));

    const N: usize = 64;
    let ids: Vec<_> = (0..N)
        .map(|i| {
            let mut m = Message::new(cmd::BLK_OPEN | cmd::CREATE);
            m.aux = numbered_aux(i);
            c.open(m).unwrap()
        })
        .collect();
    for (i, &t) in ids.iter().enumerate() {
        let CircuitIncoming::Message {
            msg,
            txn: Some(info),
        } = next()
        else {
            panic!("answer {i} is not a transaction message");
        };
        assert_eq!(info.id, t, "answer {i} out of order");
        assert_eq!(msg.hdr.cmd, cmd::BLK_OPEN | cmd::CREATE | cmd::REPLY);
        assert!(msg.aux == numbered_aux(i), "answer {i} altered");
    }
    for &t in &ids {
        c.reply(t, 0).unwrap();
    }
    for i in 0..N {
        let CircuitIncoming::Message { msg, txn: Some(_) } = next() else {
            panic!("close {i} is not a transaction message");
        };
        assert_ne!(msg.hdr.cmd & cmd::DELETE, 0);
    }
    assert!(c.close());
    assert!(wait_until(|| nodes.iter().all(|n| n.circuit_count() == 0)));
    for (l, r) in hops {
        l.shutdown();
        l.join();
        r.join();
    }
}
