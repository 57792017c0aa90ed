//! Three nodes in one process, A—B—C, each with a local span, over
//! socketpairs and over loopback TCP: every node sees the others, node
//! ADD/DEL events, the tree dump, and nothing left behind when a link goes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod service_support;

use dmsg::link::LinkError;
use dmsg::lnk::NodeOp;
use dmsg::service::{connect, Node, ServeOptions, ServiceEvent, ServiceHandle};
use service_support::*;
use std::os::unix::net::UnixStream;
use std::sync::mpsc::Receiver;

/// Joins `x` and `y` by a socketpair, each end served on its node.
fn pair(x: &Node, y: &Node, label: &str) -> (ServiceHandle, ServiceHandle) {
    let (sx, sy) = UnixStream::pair().unwrap();
    let hx = x
        .serve(sx, ServeOptions::new(format!("{label}:0")))
        .unwrap();
    let hy = y
        .serve(sy, ServeOptions::new(format!("{label}:1")))
        .unwrap();
    (hx, hy)
}

fn link_downs(rx: &Receiver<ServiceEvent>) -> Vec<LinkError> {
    rx.try_iter()
        .filter_map(|e| match e {
            ServiceEvent::LinkDown { reason, .. } => Some(reason),
            _ => None,
        })
        .collect()
}

#[test]
fn line_of_three_over_socketpairs() {
    let (a, ra) = node(1, "A");
    let (b, rb) = node(2, "B");
    let (c, rc) = node(3, "C");
    let (mut ev_a, mut ev_b, mut ev_c) = (Vec::new(), Vec::new(), Vec::new());

    // A—B first: the shape of A and B without C.
    let (ab_a, ab_b) = pair(&a, &b, "ab");
    assert!(wait_until(|| seen(&a) == dists(&[("A", 0), ("B", 1)])
        && seen(&b) == dists(&[("A", 1), ("B", 0)])
        && a.with_hub(|h, _| h.pending_changes()) == 0
        && b.with_hub(|h, _| h.pending_changes()) == 0));
    // Settled: our CONN answered, the spans relayed both ways.
    assert!(wait_until(|| a.stats().txns == 4 && b.stats().txns == 4));
    let (a_before, b_before) = (shape(a.stats()), shape(b.stats()));
    let c_alone = shape(c.stats());

    // Then B—C.
    let (bc_b, bc_c) = pair(&b, &c, "bc");
    assert!(
        wait_until(|| seen(&a) == dists(&[("A", 0), ("B", 1), ("C", 2)])
            && seen(&b) == dists(&[("A", 1), ("B", 0), ("C", 1)])
            && seen(&c) == dists(&[("A", 2), ("B", 1), ("C", 0)])),
        "no convergence: A sees {:?}, C sees {:?}",
        seen(&a),
        seen(&c)
    );

    // A's tree dump shows C at dist 2, via A's link to B.
    let tree = a.tree();
    let block = node_block(&tree, "C");
    assert!(!block.is_empty(), "no node C in\n{tree}");
    let want = format!("dist=2 via {}", ab_a.via());
    assert!(
        block
            .iter()
            .any(|l| l.starts_with("\tSLink msgid ") && l.ends_with(&want)),
        "C is not at dist 2 via {} in\n{tree}",
        ab_a.via()
    );
    assert_eq!(tree, a.tree_lines().concat());

    // Node ADD events: every node saw every other node come.
    node_events(&ra, &mut ev_a);
    node_events(&rb, &mut ev_b);
    node_events(&rc, &mut ev_c);
    for (who, evs) in [("A", &ev_a), ("B", &ev_b), ("C", &ev_c)] {
        for other in ["A", "B", "C"].into_iter().filter(|o| *o != who) {
            assert!(
                evs.contains(&(NodeOp::Add, other.to_owned())),
                "{who} saw no ADD of {other}: {evs:?}"
            );
        }
        assert!(
            !evs.iter().any(|(op, _)| *op == NodeOp::Del),
            "{who}: {evs:?}"
        );
    }

    // Close B—C: A gets DEL for C, and nothing stays behind.
    bc_b.shutdown();
    assert_eq!(bc_b.join(), LinkError::Shutdown);
    assert_eq!(bc_c.join(), LinkError::Eof);
    assert!(wait_until(|| {
        node_events(&ra, &mut ev_a);
        ev_a.contains(&(NodeOp::Del, "C".to_owned()))
    }));
    assert!(wait_until(|| {
        node_events(&rc, &mut ev_c);
        ev_c.contains(&(NodeOp::Del, "A".to_owned()))
            && ev_c.contains(&(NodeOp::Del, "B".to_owned()))
    }));
    assert_eq!(seen(&c), dists(&[("C", 0)]));
    assert!(
        wait_until(|| shape(a.stats()) == a_before && shape(b.stats()) == b_before),
        "A {:?} vs {a_before:?}, B {:?} vs {b_before:?}",
        shape(a.stats()),
        shape(b.stats())
    );
    assert_eq!(shape(c.stats()), c_alone);
    assert_eq!(seen(&a), dists(&[("A", 0), ("B", 1)]));
    assert_eq!(c.links(), vec![], "C's link is gone from the node");
    assert_eq!(b.links().len(), 1);
    let downs = link_downs(&rb);
    assert_eq!(downs, vec![LinkError::Shutdown]);

    // Only the DEL of C at A (B is still there).
    node_events(&ra, &mut ev_a);
    let dels: Vec<_> = ev_a.iter().filter(|(op, _)| *op == NodeOp::Del).collect();
    assert_eq!(dels, vec![&(NodeOp::Del, "C".to_owned())]);

    ab_a.shutdown();
    ab_a.join();
    ab_b.join();
    assert_eq!(a.stats().conns, 0);
    assert_eq!(b.stats().conns, 0);
    assert_eq!(seen(&b), dists(&[("B", 0)]));
}

#[test]
fn line_of_three_over_loopback_tcp() {
    let (a, _ra) = node(1, "A");
    let (b, _rb) = node(2, "B");
    let (c, _rc) = node(3, "C");
    let listener = b
        .listen("127.0.0.1:0", |peer| {
            ServeOptions::new(format!("from {peer}"))
        })
        .unwrap();
    let port = listener.local_addr().port();
    let ha = a
        .serve(
            connect(&format!("127.0.0.1:{port}")).unwrap(),
            ServeOptions::new("to B"),
        )
        .unwrap();
    let hc = c
        .serve(
            connect(&format!("127.0.0.1:{port}")).unwrap(),
            ServeOptions::new("to B"),
        )
        .unwrap();
    assert!(
        wait_until(|| seen(&a) == dists(&[("A", 0), ("B", 1), ("C", 2)])
            && seen(&c) == dists(&[("A", 2), ("B", 1), ("C", 0)])),
        "A sees {:?}, C sees {:?}",
        seen(&a),
        seen(&c)
    );
    let block = node_block(&a.tree(), "C");
    assert!(
        block
            .iter()
            .any(|l| l.ends_with(&format!("dist=2 via {}", ha.via()))),
        "{block:?}"
    );
    assert_eq!(b.links().len(), 2);

    // C hangs up: B and A forget C.
    hc.shutdown();
    assert_eq!(hc.join(), LinkError::Shutdown);
    assert!(wait_until(|| seen(&a) == dists(&[("A", 0), ("B", 1)])));
    assert!(wait_until(|| b.links().len() == 1));

    listener.stop();
    ha.shutdown();
    ha.join();
    assert!(wait_until(|| b.links().is_empty()));
    assert_eq!(seen(&b), dists(&[("B", 0)]));
}

/// A local span withdrawn on one node disappears everywhere, and comes
/// back when registered again.
#[test]
fn local_spans_come_and_go() {
    let (a, _ra) = node(1, "A");
    let (b, rb) = node(2, "B");
    let (ha, hb) = pair(&a, &b, "ab");
    let extra = a.add_local_span(span(9, "A2"));
    assert!(wait_until(|| seen(&b).contains_key("A2")));
    assert!(a.remove_local_span(extra));
    assert!(!a.remove_local_span(extra), "already gone");
    let mut evs = Vec::new();
    assert!(wait_until(|| {
        node_events(&rb, &mut evs);
        evs.contains(&(NodeOp::Del, "A2".to_owned()))
    }));
    assert_eq!(seen(&b), dists(&[("A", 1), ("B", 0)]));
    ha.shutdown();
    ha.join();
    hb.join();
}
