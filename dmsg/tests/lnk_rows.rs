//! STATE.md §10 rows 9, 10, 11, 16 and 17 at the LNK level: the bad input
//! reaches the hub through a real `Link`, the outcome is a clear error,
//! and the link and the node keep working.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod lnk_support;

use dmsg::link::Event;
use dmsg::lnk::{HubConfig, HubEvent, LnkError, NodeOp};
use dmsg::state::Violation;
use dmsg::wire::constants::{PEER_BLOCK, PEER_HAMMER2};
use dmsg::wire::{cmd, err, Encoder, Label, LnkConn, Message};
use lnk_support::{span, Rig};

fn rig() -> Rig {
    Rig::new(HubConfig::new(0x0b0b_0b0b))
}

/// The one-way LNK_ERROR answers the peer of `l` received.
fn oneway_errors(r: &mut Rig, l: dmsg::lnk::LinkId) -> Vec<(u32, u32)> {
    r.take_peer(l)
        .into_iter()
        .filter_map(|e| match e {
            Event::Message { msg, txn: None } if cmd::base(msg.hdr.cmd) == cmd::LNK_ERROR => {
                Some((msg.hdr.cmd, msg.hdr.error))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn row9_one_way_lnk_conn_is_refused_and_the_link_keeps_working() {
    let mut r = rig();
    let l = r.link(1);
    r.peer(l)
        .send_oneway(Message::with_body(0, &dmsg::sim::master_conn()))
        .unwrap();
    r.pump();
    assert_eq!(r.errors, vec![(l, LnkError::OneWay { cmd: cmd::LNK_CONN })]);
    assert!(!r.hub.has_conn(l));
    assert_eq!(
        oneway_errors(&mut r, l),
        vec![(cmd::LNK_ERROR | cmd::REPLY, err::PARAM)]
    );
    // A proper LNK_CONN on the same link is accepted.
    r.peer(l)
        .open(
            0,
            Message::with_body(cmd::CREATE, &dmsg::sim::master_conn()),
        )
        .unwrap();
    r.pump();
    assert!(r.hub.has_conn(l));
    assert!(!r.peer(l).is_down());
}

#[test]
fn row10_one_way_span_reply_is_refused_and_spans_still_register() {
    let mut r = rig();
    let l = r.connect(1);
    r.take_peer(l);
    r.peer(l)
        .send_oneway(Message::with_body(cmd::REPLY, &span("ghost", 1)))
        .unwrap();
    r.pump();
    assert_eq!(
        r.errors,
        vec![(
            l,
            LnkError::OneWay {
                cmd: cmd::LNK_SPAN | cmd::REPLY
            }
        )]
    );
    assert_eq!(r.hub.stats().nodes, 0);
    // Answered without REPLY, since the offending message had it.
    assert_eq!(oneway_errors(&mut r, l), vec![(cmd::LNK_ERROR, err::PARAM)]);
    r.peer(l)
        .open(0, Message::with_body(cmd::CREATE, &span("real", 1)))
        .unwrap();
    r.pump();
    assert_eq!(r.hub.stats().nodes, 1);
}

#[test]
fn row11_second_delete_on_a_span_is_a_violation_not_a_crash() {
    let mut r = rig();
    let l = r.connect(1);
    let txn = r
        .peer(l)
        .open(0, Message::with_body(cmd::CREATE, &span("twice", 1)))
        .unwrap();
    let msgid = r.peer(l).txn(txn).unwrap().msgid;
    r.pump();
    assert_eq!(r.hub.stats().nodes, 1);
    // The DELETE and, in the same read, a second DELETE forged at the next
    // sequence number (the peer's Link would refuse to send it).
    r.peer(l)
        .send(txn, Message::new(cmd::LNK_SPAN | cmd::DELETE))
        .unwrap();
    let mut bytes: Vec<u8> = r.peer(l).pending_tx().flatten().copied().collect();
    let n = bytes.len();
    r.peer(l).consume_tx(n);
    // Sequence bytes so far from the peer: CONN, SPAN CREATE, DELETE.
    let mut enc = Encoder::with_seq(7, 3);
    let mut again = Message::new(cmd::LNK_SPAN | cmd::DELETE);
    again.hdr.msgid = msgid;
    enc.encode(&again, &mut bytes).unwrap();
    r.ends.0.get_mut(&l).unwrap().0.receive(&bytes);
    r.pump();
    let bad: Vec<_> = r
        .errors
        .iter()
        .filter(|(_, e)| matches!(e, LnkError::Violation { .. }))
        .collect();
    assert_eq!(bad.len(), 1, "{:?}", r.errors);
    assert!(matches!(
        bad[0].1,
        LnkError::Violation {
            violation: Violation::DeleteUnknown | Violation::AfterDelete,
            ..
        }
    ));
    // Exactly one node DEL, and the hub and link go on.
    let dels = r
        .hub_events
        .iter()
        .filter(|e| matches!(e, HubEvent::Node(n) if n.op == NodeOp::Del))
        .count();
    assert_eq!(dels, 1);
    assert_eq!(r.hub.stats().nodes, 0);
    // Our end of the link stays up (the peer's encoder is now one sequence
    // byte behind the forged stream, so the node is exercised on another
    // link), and its transactions are exactly those the hub tracks.
    assert!(!r.ends.0[&l].0.is_down());
    assert_eq!(r.hub.txn_count(l), r.ends.0[&l].0.txn_count());
    assert!(r.hub.has_conn(l));
    let m = r.connect(2);
    r.peer(m)
        .open(0, Message::with_body(cmd::CREATE, &span("after", 1)))
        .unwrap();
    r.pump();
    assert_eq!(r.hub.stats().nodes, 1);
}

#[test]
fn row16_peer_and_pfs_types_of_64_and_more_are_never_relayed() {
    let mut r = rig();
    let a = r.connect(1);
    let b = r.connect(2);
    r.take_peer(b);
    let mut odd_peer = span("oddpeer", 1);
    odd_peer.peer_type = 64;
    let mut odd_pfs = span("oddpfs", 1);
    odd_pfs.pfs_type = 200;
    for s in [odd_peer, odd_pfs, span("fine", 1)] {
        r.peer(a)
            .open(0, Message::with_body(cmd::CREATE, &s))
            .unwrap();
    }
    r.pump();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    // All three are registered (ADD events), only the ordinary one relayed.
    assert_eq!(r.hub.stats().nodes, 3);
    let got = r.spans_received(b);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].fs_label.as_bytes(), b"fine");
    assert_eq!(got[0].dist, 2);
}

#[test]
fn row17_unterminated_conn_label_is_a_bounded_filter() {
    let mut r = rig();
    let a = r.connect(1);
    // A HAMMER2 peer whose cl_label fills all 128 bytes with no NUL.
    let b = r.link(2);
    let conn = LnkConn {
        peer_type: PEER_HAMMER2,
        ..dmsg::sim::master_conn()
    };
    let mut m = Message::with_body(cmd::CREATE, &conn);
    m.ext[200 - 64..328 - 64].fill(b'x');
    r.peer(b).open(0, m).unwrap();
    r.pump();
    assert!(r.hub.has_conn(b));
    r.take_peer(b);
    // A HAMMER2 span in cluster "xxx…" (127 bytes: the most a cluster label
    // holds) and a BLOCK span: the label filter applies to the first only.
    let mut h2 = span("h2", 1);
    h2.cl_label = Label::new(vec![b'x'; 127]).unwrap();
    let mut blk = span("blk", 1);
    blk.peer_type = PEER_BLOCK;
    blk.cl_label = h2.cl_label;
    for s in [h2, blk] {
        r.peer(a)
            .open(0, Message::with_body(cmd::CREATE, &s))
            .unwrap();
    }
    r.pump();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let got = r.spans_received(b);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].fs_label.as_bytes(), b"blk");
    // A span whose own labels are unterminated is force-terminated (127
    // bytes), like the C code does in the received message.
    let mut long = span("x", 1);
    let mut raw = Message::with_body(cmd::CREATE, &long);
    raw.ext[304 - 64..432 - 64].fill(b'y');
    r.peer(a).open(0, raw).unwrap();
    r.pump();
    long.fs_label = Label::new(vec![b'y'; 127]).unwrap();
    assert!(r
        .hub
        .nodes()
        .iter()
        .any(|v| v.span.fs_label == long.fs_label));
    assert!(r.errors.is_empty(), "{:?}", r.errors);
}
