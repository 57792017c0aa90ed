//! Relay selection, the C bugs we fix, node events, the tree dump, and
//! the three-node line of the golden captures.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod lnk_support;

use dmsg::lnk::{HubConfig, HubEvent, NodeOp};
use dmsg::sim::{NodeSpec, Sim, SimConfig};
use dmsg::wire::{cmd, Decoder, LnkSpan, LnkVolconf, Message};
use lnk_support::{span, Rig};

/// C bug: a filter hit stops the scan. The best link of a node came in on
/// the very connection we relay to, so the C code relays nothing there;
/// we skip that link and relay the next one.
#[test]
fn a_link_from_the_same_connection_is_skipped_not_a_stop() {
    let mut r = Rig::new(HubConfig::new(5));
    let a = r.connect(1);
    let b = r.connect(2);
    r.peer(a)
        .open(0, Message::with_body(cmd::CREATE, &span("y", 1)))
        .unwrap();
    r.peer(b)
        .open(0, Message::with_body(cmd::CREATE, &span("y", 3)))
        .unwrap();
    r.pump();
    // Back to a: only the dist-3 link from b qualifies (dist 4 on the wire).
    let to_a: Vec<u32> = r.spans_received(a).iter().map(|s| s.dist).collect();
    assert_eq!(to_a, vec![4]);
    // To b: the dist-1 link from a.
    let to_b: Vec<u32> = r.spans_received(b).iter().map(|s| s.dist).collect();
    assert_eq!(to_b, vec![2]);
}

/// C bug: the off-by-one relays one link per node per connection; the
/// setting (default 2) is honoured, and relays are best first.
#[test]
fn two_links_per_node_per_connection_by_default_and_the_setting_counts() {
    for (max, want) in [(2usize, vec![2u32, 3]), (1, vec![2])] {
        let mut r = Rig::new(HubConfig {
            rnss: 5,
            max_relays: max,
        });
        let a = r.connect(1);
        let b = r.connect(2);
        let c = r.connect(3);
        for (l, d) in [(a, 1), (b, 2), (a, 4)] {
            r.peer(l)
                .open(0, Message::with_body(cmd::CREATE, &span("y", d)))
                .unwrap();
        }
        r.pump();
        let mut got: Vec<u32> = r.spans_received(c).iter().map(|s| s.dist).collect();
        got.sort();
        assert_eq!(got, want, "max_relays {max}");
        assert_eq!(r.hub.pending_changes(), 0);
    }
}

/// A better link replaces the worst relayed one; losing it brings the
/// replaced one back; the C code would rescan everything for that.
#[test]
fn better_links_displace_and_deletes_restore() {
    let mut r = Rig::new(HubConfig {
        rnss: 0x100,
        max_relays: 1,
    });
    let a = r.connect(1);
    let c = r.connect(3);
    let t = r
        .peer(a)
        .open(0, Message::with_body(cmd::CREATE, &span("y", 5)))
        .unwrap();
    r.pump();
    let got = r.spans_received(c);
    assert_eq!((got[0].dist, got[0].rnss), (6, 0x100));
    let b = r.connect(2);
    let t2 = r
        .peer(b)
        .open(0, Message::with_body(cmd::CREATE, &span("y", 2)))
        .unwrap();
    r.pump();
    let evs = r.take_peer(c);
    let creates: Vec<u32> = evs
        .iter()
        .filter_map(|e| match e {
            dmsg::link::Event::Message { msg, .. }
                if msg.hdr.cmd == cmd::LNK_SPAN | cmd::CREATE =>
            {
                Some(msg.body::<LnkSpan>().unwrap().dist)
            }
            _ => None,
        })
        .collect();
    let deletes = evs
        .iter()
        .filter(|e| matches!(e, dmsg::link::Event::Message { msg, .. } if msg.hdr.cmd & cmd::DELETE != 0))
        .count();
    assert_eq!(creates, vec![3]);
    assert_eq!(deletes, 1);
    // Withdraw the better one: the old one is relayed again.
    r.peer(b)
        .send(t2, Message::new(cmd::LNK_SPAN | cmd::DELETE))
        .unwrap();
    r.pump();
    let got = r.spans_received(c);
    assert_eq!(got.iter().map(|s| s.dist).collect::<Vec<_>>(), vec![6]);
    // Withdraw the last: the node goes, with one ADD and one DEL in all.
    r.peer(a)
        .send(t, Message::new(cmd::LNK_SPAN | cmd::DELETE))
        .unwrap();
    r.pump();
    let ops: Vec<NodeOp> = r
        .hub_events
        .iter()
        .filter_map(|e| match e {
            HubEvent::Node(n) => Some(n.op),
            _ => None,
        })
        .collect();
    assert_eq!(ops, vec![NodeOp::Add, NodeOp::Del]);
    assert_eq!(r.hub.stats().relays, 0);
    assert_eq!(r.hub.stats().links, 0);
    for l in [a, b, c] {
        assert_eq!(r.hub.txn_count(l), r.ends.0[&l].0.txn_count());
    }
}

#[test]
fn conn_teardown_closes_its_relays_and_media_refs() {
    let mut r = Rig::new(HubConfig::new(1));
    let a = r.connect(1);
    let b = r.link(2);
    let conn_txn = r
        .peer(b)
        .open(
            0,
            Message::with_body(cmd::CREATE, &dmsg::sim::master_conn()),
        )
        .unwrap();
    r.peer(a)
        .open(0, Message::with_body(cmd::CREATE, &span("y", 1)))
        .unwrap();
    r.pump();
    assert_eq!(r.spans_received(b).len(), 1);
    assert_eq!(r.hub.media().next().unwrap().1, 2);
    // A volconf with a bad index is refused, a good one stored.
    let mut v = LnkVolconf {
        index: 300,
        ..LnkVolconf::default()
    };
    v.copy.path = dmsg::wire::Label::new("span:host").unwrap();
    r.peer(b).send(conn_txn, Message::with_body(0, &v)).unwrap();
    v.index = 3;
    r.peer(b).send(conn_txn, Message::with_body(0, &v)).unwrap();
    r.pump();
    assert_eq!(r.errors, vec![(b, dmsg::lnk::LnkError::VolconfIndex(300))]);
    assert!(r
        .hub_events
        .iter()
        .any(|e| matches!(e, HubEvent::Volconf { index: 3, .. })));
    // Close the CONN: our relay on b is deleted, the CONN answered.
    r.peer(b)
        .send(conn_txn, Message::new(cmd::LNK_CONN | cmd::DELETE))
        .unwrap();
    r.pump();
    assert!(!r.hub.has_conn(b));
    assert_eq!(r.hub.stats().relays, 0);
    assert_eq!(r.hub.media().next().unwrap().1, 1);
    // Only our relay is left, closed on our side, until the peer closes it.
    assert_eq!(r.hub.txn_count(b), 1);
    assert_eq!(r.ends.0[&b].0.txn_count(), 1);
    let relay = r
        .take_peer(b)
        .into_iter()
        .find_map(|e| match e {
            dmsg::link::Event::Message { msg, txn: Some(t) }
                if msg.hdr.cmd == cmd::LNK_ERROR | cmd::DELETE =>
            {
                Some(t.id)
            }
            _ => None,
        })
        .unwrap();
    r.peer(b).reply(relay, 0).unwrap();
    r.pump();
    assert_eq!(r.peer(b).txn_count(), 0);
    assert_eq!(r.hub.txn_count(b), 0);
    assert_eq!(r.ends.0[&b].0.txn_count(), 0);
}

#[test]
fn tree_dump_format_and_findspan() {
    let mut r = Rig::new(HubConfig::new(1));
    let a = r.connect(1);
    let b = r.connect(2);
    let t = r
        .peer(a)
        .open(0, Message::with_body(cmd::CREATE, &span("pfsC", 1)))
        .unwrap();
    let msgid = r.peer(a).txn(t).unwrap().msgid;
    r.pump();
    let relay_msgid = r.hub.relays()[0].msgid;
    let s = span("pfsC", 1);
    let want = format!(
        "Cluster HAMMER2 {} ()\n    Node 03 {} (pfsC)\n\tSLink msgid {msgid:016x} dist=1 via 101\n\t    Relay-out msgid {relay_msgid:016x} via 102\n",
        s.pfs_clid, s.pfs_fsid
    );
    assert_eq!(r.hub.tree(), want);
    assert_eq!(r.hub.tree_lines().len(), 4);
    let found = r.hub.findspan(msgid).unwrap();
    assert_eq!((found.link, found.dist), (Some(a), 1));
    assert!(r.hub.findspan(0xdead).is_none());
    // The relay names its source (what LNK_CIRC forwarding needs).
    let rv = r.hub.relay(b, r.hub.relays()[0].txn).unwrap();
    assert_eq!(rv.source.msgid, msgid);
}

/// The golden captures' line A—B—C: RNSS 0x0a0a0a0a, 0x0b0b0b0b,
/// 0x0c0c0c0c; each node's local span is the body of its daemon's first
/// relay with dist 0 and rnss 0. B's relays must equal the captured bodies.
#[test]
fn three_node_line_matches_the_golden_capture() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/vectors/plain");
    let body = |path: &str| -> LnkSpan {
        let bytes = std::fs::read(format!("{dir}/{path}")).unwrap();
        let mut input = &bytes[..];
        // Continue the captured stream at its first sequence byte.
        let msg = Decoder::with_seq(bytes[4])
            .decode(&mut input)
            .unwrap()
            .unwrap();
        msg.body::<LnkSpan>().unwrap()
    };
    let a_relayed = body("02-span-A/AB.A2B.bin");
    let c_relayed = body("02-span-C/BC.C2B.bin");
    let b_relayed = body("02-span-B/AB.B2A.bin");
    let local = |mut s: LnkSpan| {
        s.dist = 0;
        s.rnss = 0;
        Some(s)
    };
    let specs = vec![
        NodeSpec {
            rnss: 0x0a0a_0a0a,
            span: local(a_relayed),
        },
        NodeSpec {
            rnss: 0x0b0b_0b0b,
            span: local(b_relayed),
        },
        NodeSpec {
            rnss: 0x0c0c_0c0c,
            span: local(c_relayed),
        },
    ];
    let mut sim = Sim::with_nodes(specs, SimConfig::default());
    sim.add_edge(0, 1);
    sim.add_edge(1, 2);
    sim.run_until_idle(50).unwrap();
    sim.check().unwrap();
    // A sees C at dist 2 via B, with exactly the body B sent A in the capture.
    let at_a = sim.hub(0).unwrap().nodes();
    let c_at_a = at_a
        .iter()
        .find(|v| v.span.fs_label.as_bytes() == b"pfsC")
        .unwrap();
    assert_eq!(c_at_a.links.len(), 1);
    assert_eq!(c_at_a.links[0].dist, 2);
    assert_eq!(*c_at_a.span, body("02-span-C/AB.B2A.bin"));
    // And C sees A's span as B relayed it (dist 2, rnss 0x15151515).
    let at_c = sim.hub(2).unwrap().nodes();
    let a_at_c = at_c
        .iter()
        .find(|v| v.span.fs_label.as_bytes() == b"pfsA")
        .unwrap();
    assert_eq!(*a_at_c.span, body("02-span-A/BC.B2C.bin"));
    assert_eq!(a_at_c.span.rnss, 0x1515_1515);
    // B's own span reaches both at dist 1.
    let b_at_c = at_c
        .iter()
        .find(|v| v.span.fs_label.as_bytes() == b"pfsB")
        .unwrap();
    assert_eq!(*b_at_c.span, body("02-span-B/BC.B2C.bin"));
    // Losing the middle node removes A and B from C's view (08-loss).
    sim.remove_node(1);
    sim.run_until_idle(50).unwrap();
    sim.check().unwrap();
    assert_eq!(sim.hub(2).unwrap().stats().nodes, 1);
}
