//! Circuits at one relay node R driven through real `Link`s by
//! test-controlled peers A and C (the line A—B—C of the captures, with the
//! hub as B): the LNK_CIRC bodies, relaying with `head.circuit` rewritten,
//! teardown, and STATE.md §10 rows 2, 3, 12, 13, 14, 15, each with the
//! exact bad input, a clear outcome, and the link still working.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod lnk_support;

use dmsg::link::{CircuitRole, Event, LinkError};
use dmsg::lnk::{CircError, HubConfig, LinkId, LnkError};
use dmsg::state::{TxnId, Violation};
use dmsg::wire::{cmd, err, Decoder, LnkCirc, Message};
use lnk_support::{span, Rig};

struct Line {
    r: Rig,
    a: LinkId,
    c: LinkId,
    /// Peer C's SPAN transaction.
    span_c: TxnId,
    /// The msgid of the SPAN the hub relayed to A.
    s_a: u64,
}

/// A hub with peers A and C; C announces span "pfsC".
fn line() -> Line {
    let mut r = Rig::new(HubConfig::new(0x0b0b_0b0b));
    let a = r.connect(1);
    let c = r.connect(2);
    r.take_peer(a);
    let span_c = r
        .peer(c)
        .open(0, Message::with_body(cmd::CREATE, &span("pfsC", 0)))
        .unwrap();
    r.pump();
    let s_a = span_msgid(&mut r, a);
    r.take_peer(c);
    Line {
        r,
        a,
        c,
        span_c,
        s_a,
    }
}

/// The msgid of the (single) SPAN CREATE the peer of `l` received.
fn span_msgid(r: &mut Rig, l: LinkId) -> u64 {
    let ids: Vec<u64> = r
        .take_peer(l)
        .into_iter()
        .filter_map(|e| match e {
            Event::Message { msg, .. }
                if cmd::base(msg.hdr.cmd) == cmd::LNK_SPAN && msg.hdr.cmd & cmd::CREATE != 0 =>
            {
                Some(msg.hdr.msgid)
            }
            _ => None,
        })
        .collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    ids[0]
}

/// Messages (not violations) the peer of `l` received.
fn msgs(r: &mut Rig, l: LinkId) -> Vec<Message> {
    r.take_peer(l)
        .into_iter()
        .filter_map(|e| match e {
            Event::Message { msg, .. } => Some(msg),
            _ => None,
        })
        .collect()
}

fn circ_create(target: u64) -> Message {
    Message::with_body(
        cmd::CREATE,
        &LnkCirc {
            reserved01: 0,
            target,
        },
    )
}

/// A forged circuit: A's LNK_CIRC (txn, id) and C's (txn, id).
struct Forged {
    ta: TxnId,
    ma: u64,
    tc: TxnId,
    mc: u64,
}

/// A opens a circuit on the span the hub relayed it; C accepts when `ack`.
fn forge(l: &mut Line, ack: bool) -> Forged {
    let (a, c) = (l.a, l.c);
    let ta = l.r.peer(a).open(0, circ_create(l.s_a)).unwrap();
    let ma = l.r.peer(a).txn(ta).unwrap().msgid;
    l.r.peer(a).add_circuit(ma, CircuitRole::Endpoint);
    l.r.pump();
    let got: Vec<(TxnId, u64, LnkCirc)> = l
        .r
        .take_peer(c)
        .into_iter()
        .filter_map(|e| match e {
            Event::Message { msg, txn: Some(t) } if msg.hdr.cmd == cmd::LNK_CIRC | cmd::CREATE => {
                Some((t.id, msg.hdr.msgid, msg.body::<LnkCirc>().unwrap()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(got.len(), 1);
    let (tc, mc, body) = got[0];
    // The target the relay names toward C is the msgid C chose for its SPAN.
    let c_span_msgid = l.r.peer(c).txn(l.span_c).unwrap().msgid;
    assert_eq!(body.target, c_span_msgid);
    assert_eq!(body.reserved01, 0);
    l.r.peer(c).add_circuit(mc, CircuitRole::Endpoint);
    if ack {
        l.r.peer(c).result(tc, 0).unwrap();
        l.r.pump();
    }
    Forged { ta, ma, tc, mc }
}

fn dbg(circuit: u64, text: &str, flags: u32) -> Message {
    let mut m = Message::new(cmd::DBG_SHELL | flags);
    m.hdr.circuit = circuit;
    m.aux = text.as_bytes().to_vec();
    m
}

/// A one-way message from A over circuit `f` reaches C, and back.
fn assert_circuit_works(l: &mut Line, f: &Forged) {
    let (a, c) = (l.a, l.c);
    l.r.peer(a).send_oneway(dbg(f.ma, "tree\0", 0)).unwrap();
    l.r.pump();
    let at_c = msgs(&mut l.r, c);
    assert_eq!(at_c.len(), 1, "{at_c:?}");
    assert_eq!(at_c[0].hdr.circuit, f.mc);
    assert_eq!(at_c[0].hdr.cmd, cmd::DBG_SHELL);
    assert_eq!(at_c[0].aux, b"tree\0");
    l.r.peer(c)
        .send_oneway(dbg(f.mc, "line\0", cmd::REPLY))
        .unwrap();
    l.r.pump();
    let at_a = msgs(&mut l.r, a);
    assert_eq!(at_a.len(), 1, "{at_a:?}");
    assert_eq!(at_a[0].hdr.circuit, f.ma);
    assert_eq!(at_a[0].hdr.cmd, cmd::DBG_SHELL | cmd::REPLY);
}

/// Nothing of any circuit is left at the hub or its links.
fn assert_no_circuits(l: &mut Line, ids: &[(LinkId, u64)]) {
    assert_eq!(l.r.hub.circuit_count(), 0);
    for &(link, id) in ids {
        assert!(l.r.hub.circuit_ids(link).is_empty());
        assert_eq!(l.r.ends.0[&link].0.circuit_role(id), None);
    }
    for link in [l.a, l.c] {
        assert_eq!(
            l.r.ends.0[&link].0.txn_count(),
            l.r.hub.txn_count(link),
            "{link:?}"
        );
    }
}

/// The first message of the golden capture file `phase/file`.
fn golden(phase: &str, file: &str) -> Message {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/vectors/plain")
        .join(phase)
        .join(file);
    let bytes = std::fs::read(root).unwrap();
    // A phase starts mid-stream: its sequence is the salt's low byte.
    let mut d = Decoder::with_seq(bytes[4]);
    let mut input = &bytes[..];
    d.decode(&mut input).unwrap().unwrap()
}

#[test]
fn line_a_b_c_like_the_captures() {
    let mut l = line();
    let (a, c) = (l.a, l.c);
    let f = forge(&mut l, true);
    // The end-to-end ack reaches A on its LNK_CIRC: LNK_ERROR|REPLY|CREATE.
    let at_a = msgs(&mut l.r, a);
    assert_eq!(at_a.len(), 1);
    assert_eq!(at_a[0].hdr.cmd, cmd::LNK_ERROR | cmd::REPLY | cmd::CREATE);
    assert_eq!((at_a[0].hdr.msgid, at_a[0].hdr.circuit), (f.ma, 0));
    assert_eq!(at_a[0].hdr.error, 0);
    // Same command words as the original's phase 04: LNK_CIRC|CREATE on
    // circuit 0 both hops, LNK_ERROR|REPLY|CREATE back.
    let g = golden("04-circ-h2", "BC.B2C.bin");
    assert_eq!(g.hdr.cmd, cmd::LNK_CIRC | cmd::CREATE);
    assert_eq!(g.hdr.circuit, 0);
    assert_eq!(g.body::<LnkCirc>().unwrap().reserved01, 0);
    assert_eq!(golden("04-circ-h2", "AB.A2B.bin").hdr.cmd, g.hdr.cmd);
    assert_eq!(golden("04-circ-h2", "AB.B2A.bin").hdr.cmd, at_a[0].hdr.cmd);
    assert_eq!(golden("04-circ-h2", "BC.C2B.bin").hdr.cmd, at_a[0].hdr.cmd);
    assert_circuit_works(&mut l, &f);
    // Phase 06: A closes; DELETE forward, REPLY|DELETE back.
    l.r.peer(a).reply(f.ta, 0).unwrap();
    l.r.pump();
    let at_c = msgs(&mut l.r, c);
    assert_eq!(at_c.len(), 1);
    assert_eq!(at_c[0].hdr.cmd, cmd::LNK_ERROR | cmd::DELETE);
    assert_eq!(at_c[0].hdr.msgid, f.mc);
    assert!(l.r.peer(a).txn(f.ta).is_some(), "the relay waits for C");
    l.r.peer(c).reply(f.tc, 0).unwrap();
    l.r.pump();
    let at_a = msgs(&mut l.r, a);
    assert_eq!(at_a.len(), 1);
    assert_eq!(at_a[0].hdr.cmd, cmd::LNK_ERROR | cmd::REPLY | cmd::DELETE);
    assert!(l.r.peer(a).txn(f.ta).is_none());
    assert!(l.r.peer(c).txn(f.tc).is_none());
    assert_no_circuits(&mut l, &[(a, f.ma), (c, f.mc)]);
    assert!(l.r.errors.is_empty(), "{:?}", l.r.errors);
}

#[test]
fn link_loss_beyond_the_relay_closes_the_circuit_toward_a_with_the_ioq_error() {
    let mut l = line();
    let (a, c) = (l.a, l.c);
    let f = forge(&mut l, true);
    msgs(&mut l.r, a);
    l.r.ends.0.get_mut(&c).unwrap().0.fail(LinkError::Eof);
    l.r.pump();
    let at_a: Vec<Message> = msgs(&mut l.r, a)
        .into_iter()
        .filter(|m| m.hdr.msgid == f.ma)
        .collect();
    assert_eq!(at_a.len(), 1, "{at_a:?}");
    assert_eq!(at_a[0].hdr.cmd, cmd::LNK_ERROR | cmd::REPLY | cmd::DELETE);
    assert_eq!(at_a[0].hdr.error, 2, "DMSG_IOQ_ERROR_EOF, as in 08-loss");
    l.r.peer(a).reply(f.ta, 0).unwrap();
    l.r.pump();
    assert_eq!(l.r.hub.circuit_count(), 0);
    assert_eq!(l.r.ends.0[&a].0.circuit_role(f.ma), None);
    assert_eq!(l.r.ends.0[&a].0.txn_count(), l.r.hub.txn_count(a));
}

#[test]
fn row2_message_on_an_unknown_circuit_is_refused_and_the_link_lives() {
    let mut l = line();
    let a = l.a;
    // A believes in circuit 1 and opens a transaction on it.
    l.r.peer(a).add_circuit(1, CircuitRole::Endpoint);
    let t = l.r.peer(a).open(1, dbg(0, "x", cmd::CREATE)).unwrap();
    l.r.pump();
    assert_eq!(
        l.r.errors,
        vec![(
            a,
            LnkError::Violation {
                violation: Violation::UnknownCircuit,
                cmd: cmd::DBG_SHELL | cmd::CREATE
            }
        )]
    );
    // Answered CANTCIRC on circuit 1, which ends A's transaction there.
    let at_a = msgs(&mut l.r, a);
    assert_eq!(at_a.len(), 1);
    assert_eq!(at_a[0].hdr.circuit, 1);
    assert_eq!(
        at_a[0].hdr.cmd,
        cmd::LNK_ERROR | cmd::REPLY | cmd::CREATE | cmd::DELETE
    );
    assert_eq!(at_a[0].hdr.error, err::CANTCIRC);
    assert!(l.r.peer(a).txn(t).unwrap().rx_closed());
    // A one-way on an unknown circuit is only reported.
    l.r.peer(a).send_oneway(dbg(1, "y", 0)).unwrap();
    l.r.pump();
    assert!(msgs(&mut l.r, a).is_empty());
    assert_eq!(l.r.errors.len(), 2);
    // The link and circuits keep working.
    assert!(!l.r.peer(a).is_down());
    let f = forge(&mut l, true);
    msgs(&mut l.r, a);
    assert_circuit_works(&mut l, &f);
}

#[test]
fn row3_message_on_a_relay_circuit_whose_other_half_is_gone() {
    let mut l = line();
    let (a, c) = (l.a, l.c);
    let f = forge(&mut l, true);
    msgs(&mut l.r, a);
    // C's link dies; before the hub has seen it, A opens a transaction on
    // the circuit.
    l.r.ends.0.get_mut(&c).unwrap().0.fail(LinkError::Eof);
    let t = l.r.peer(a).open(f.ma, dbg(0, "x", cmd::CREATE)).unwrap();
    l.r.pump();
    assert!(l
        .r
        .errors
        .contains(&(a, LnkError::Circuit(CircError::PeerGone(f.ma)))));
    let at_a = msgs(&mut l.r, a);
    let answer: Vec<_> = at_a.iter().filter(|m| m.hdr.circuit == f.ma).collect();
    assert_eq!(answer.len(), 1, "{at_a:?}");
    assert_eq!(
        answer[0].hdr.cmd,
        cmd::LNK_ERROR | cmd::REPLY | cmd::CREATE | cmd::DELETE
    );
    assert_eq!(answer[0].hdr.error, err::LOSTLINK);
    assert!(l.r.peer(a).txn(t).unwrap().rx_closed());
    // The circuit is being closed toward A; A's link lives.
    assert!(at_a
        .iter()
        .any(|m| m.hdr.msgid == f.ma && m.hdr.cmd & cmd::DELETE != 0));
    assert!(!l.r.peer(a).is_down());
    assert!(l.r.hub.has_conn(a));
    l.r.peer(a).reply(f.ta, 0).unwrap();
    l.r.pump();
    assert_eq!(l.r.hub.circuit_count(), 0);
}

#[test]
fn row12_lnk_circ_on_a_relay_already_closing_or_not_a_span() {
    let mut l = line();
    let (a, c) = (l.a, l.c);
    // Not a SPAN we relay: the msgid of A's own LNK_CONN; and a msgid
    // naming nothing.
    let conn_msgid = {
        let t = l.r.hub.conn_txn(a).unwrap();
        l.r.ends.0[&a].0.txn(t).unwrap().msgid
    };
    assert_ne!(conn_msgid, l.s_a);
    for target in [0xdead_beef_u64, conn_msgid] {
        let t = l.r.peer(a).open(0, circ_create(target)).unwrap();
        l.r.pump();
        let at_a = msgs(&mut l.r, a);
        assert_eq!(at_a.len(), 1);
        assert_eq!(
            at_a[0].hdr.cmd,
            cmd::LNK_ERROR | cmd::REPLY | cmd::CREATE | cmd::DELETE
        );
        assert_eq!(at_a[0].hdr.error, err::CANTCIRC);
        assert!(l.r.peer(a).txn(t).unwrap().rx_closed());
        l.r.peer(a).reply(t, 0).unwrap();
    }
    // Row 12 proper: C withdraws its span; the hub closes the relay toward
    // A, which has not answered yet, so the relay SPAN still waits for its
    // close. A LNK_CIRC naming it is refused.
    l.r.peer(c).reply(l.span_c, 0).unwrap();
    l.r.pump();
    assert!(msgs(&mut l.r, a)
        .iter()
        .any(|m| m.hdr.msgid == l.s_a && m.hdr.cmd & cmd::DELETE != 0));
    let t = l.r.peer(a).open(0, circ_create(l.s_a)).unwrap();
    l.r.pump();
    assert!(l
        .r
        .errors
        .contains(&(a, LnkError::Circuit(CircError::UnknownTarget(l.s_a)))));
    let at_a = msgs(&mut l.r, a);
    assert_eq!(at_a.len(), 1);
    assert_eq!(at_a[0].hdr.error, err::CANTCIRC);
    assert!(l.r.peer(a).txn(t).unwrap().rx_closed());
    assert_eq!(l.r.hub.circuit_count(), 0);
    // The link lives: a new span and a circuit to it work.
    l.span_c =
        l.r.peer(c)
            .open(0, Message::with_body(cmd::CREATE, &span("pfsC2", 0)))
            .unwrap();
    l.r.pump();
    l.s_a = span_msgid(&mut l.r, a);
    let f = forge(&mut l, true);
    msgs(&mut l.r, a);
    assert_circuit_works(&mut l, &f);
}

#[test]
fn row13_lnk_circ_reusing_a_circuit_id_in_use_on_the_link() {
    let mut l = line();
    let (a, c) = (l.a, l.c);
    // A circuit from C toward A: the hub picks its id on A's link.
    l.r.peer(a)
        .open(0, Message::with_body(cmd::CREATE, &span("pfsA", 0)))
        .unwrap();
    l.r.pump();
    let s_c = span_msgid(&mut l.r, c);
    let tc = l.r.peer(c).open(0, circ_create(s_c)).unwrap();
    let mc = l.r.peer(c).txn(tc).unwrap().msgid;
    l.r.peer(c).add_circuit(mc, CircuitRole::Endpoint);
    l.r.pump();
    let x: Vec<(u64, TxnId)> = l
        .r
        .take_peer(a)
        .into_iter()
        .filter_map(|e| match e {
            Event::Message { msg, txn: Some(t) } if msg.hdr.cmd == cmd::LNK_CIRC | cmd::CREATE => {
                Some((msg.hdr.msgid, t.id))
            }
            _ => None,
        })
        .collect();
    assert_eq!(x.len(), 1);
    let (id_x, ta) = x[0];
    l.r.peer(a).add_circuit(id_x, CircuitRole::Endpoint);
    l.r.peer(a).result(ta, 0).unwrap();
    l.r.pump();
    // A sends a LNK_CIRC whose msgid is that id (raw, as a peer may).
    let mut bad = circ_create(l.s_a);
    bad.hdr.msgid = id_x;
    l.r.peer(a).forward(bad).unwrap();
    l.r.pump();
    assert!(l
        .r
        .errors
        .contains(&(a, LnkError::Circuit(CircError::IdInUse(id_x)))));
    let refused: Vec<_> =
        l.r.take_peer(a)
            .into_iter()
            .filter_map(|e| match e {
                Event::Violation { hdr, .. } => Some(hdr),
                Event::Message { msg, .. } => Some(msg.hdr),
                _ => None,
            })
            .filter(|h| h.msgid == id_x && h.circuit == 0)
            .collect();
    assert_eq!(refused.len(), 1);
    assert_eq!(
        refused[0].cmd,
        cmd::LNK_ERROR | cmd::REPLY | cmd::CREATE | cmd::DELETE
    );
    assert_eq!(refused[0].error, err::CANTCIRC);
    // The existing circuit is untouched and still relays C -> A.
    assert_eq!(l.r.hub.circuit_count(), 1);
    l.r.peer(c).send_oneway(dbg(mc, "hi\0", 0)).unwrap();
    l.r.pump();
    let at_a = msgs(&mut l.r, a);
    assert_eq!(at_a.len(), 1);
    assert_eq!(at_a[0].hdr.circuit, id_x);
    assert!(!l.r.peer(a).is_down());
}

#[test]
fn row14_acks_on_a_circuit_acked_already_or_torn_down() {
    let mut l = line();
    let (a, c) = (l.a, l.c);
    let f = forge(&mut l, true);
    assert_eq!(msgs(&mut l.r, a).len(), 1);
    // A second REPLY|CREATE on the hub's LNK_CIRC toward C.
    let mut dup = Message::new(cmd::LNK_ERROR | cmd::REPLY | cmd::CREATE);
    dup.hdr.msgid = f.mc;
    l.r.peer(c).forward(dup).unwrap();
    l.r.pump();
    assert!(l
        .r
        .errors
        .contains(&(c, LnkError::Circuit(CircError::DuplicateAck(f.mc)))));
    assert!(msgs(&mut l.r, a).is_empty(), "not passed on");
    assert_circuit_works(&mut l, &f);

    // A second circuit, not acked yet; C's span goes away (the circuit is
    // torn down with CANTCIRC both ways), then C's ack arrives.
    let g = forge(&mut l, false);
    l.r.errors.clear();
    l.r.peer(c).reply(l.span_c, 0).unwrap();
    l.r.pump();
    let to_a: Vec<Message> = msgs(&mut l.r, a)
        .into_iter()
        .filter(|m| m.hdr.msgid == g.ma || m.hdr.msgid == f.ma)
        .collect();
    assert_eq!(to_a.len(), 2, "{to_a:?}");
    assert!(to_a
        .iter()
        .all(|m| m.hdr.error == err::CANTCIRC && m.hdr.cmd & cmd::DELETE != 0));
    l.r.peer(c).result(g.tc, 0).unwrap();
    l.r.pump();
    assert!(
        msgs(&mut l.r, a).is_empty(),
        "no ack after the circuit died"
    );
    // REPLY|DELETE for LNK_CIRCs whose pairs are gone once everyone closed.
    for t in [f.tc, g.tc] {
        let _ = l.r.peer(c).reply(t, 0);
    }
    for t in [f.ta, g.ta] {
        let _ = l.r.peer(a).reply(t, 0);
    }
    l.r.pump();
    assert_no_circuits(&mut l, &[(a, f.ma), (a, g.ma), (c, f.mc), (c, g.mc)]);
    let mut late = Message::new(cmd::LNK_ERROR | cmd::REPLY | cmd::DELETE);
    late.hdr.msgid = g.mc;
    l.r.peer(c).forward(late).unwrap();
    l.r.pump();
    assert!(l.r.errors.iter().any(|(lk, e)| *lk == c
        && matches!(
            e,
            LnkError::Violation {
                violation: Violation::ReplyDeleteUnknown,
                ..
            }
        )));
    assert!(!l.r.peer(c).is_down() && !l.r.peer(a).is_down());
}

#[test]
fn row15_crossing_closes_and_a_reused_msgid_mid_teardown() {
    let mut l = line();
    let (a, c) = (l.a, l.c);
    // Both ends close in the same round.
    let f = forge(&mut l, true);
    l.r.peer(a).reply(f.ta, 0).unwrap();
    l.r.peer(c).reply(f.tc, 0).unwrap();
    l.r.pump();
    assert!(l.r.peer(a).txn(f.ta).is_none());
    assert!(l.r.peer(c).txn(f.tc).is_none());
    assert!(l.r.errors.is_empty(), "{:?}", l.r.errors);
    assert_no_circuits(&mut l, &[(a, f.ma), (c, f.mc)]);
    msgs(&mut l.r, a);
    msgs(&mut l.r, c);

    // A closes, and before C answers reuses the msgid for a new LNK_CIRC.
    let g = forge(&mut l, true);
    msgs(&mut l.r, a);
    l.r.peer(a).reply(g.ta, 0).unwrap();
    l.r.pump();
    let mut again = circ_create(l.s_a);
    again.hdr.msgid = g.ma;
    l.r.peer(a).forward(again).unwrap();
    l.r.pump();
    assert!(l.r.errors.iter().any(|(lk, e)| *lk == a
        && matches!(
            e,
            LnkError::Violation {
                violation: Violation::DuplicateCreate,
                ..
            }
        )));
    // C finishes the old teardown; nothing is left, and the link lives.
    l.r.peer(c).reply(g.tc, 0).unwrap();
    l.r.pump();
    assert_eq!(l.r.hub.circuit_count(), 0);
    assert_eq!(l.r.ends.0[&a].0.circuit_role(g.ma), None);
    assert_eq!(l.r.ends.0[&c].0.circuit_role(g.mc), None);
    assert!(!l.r.peer(a).is_down());
    msgs(&mut l.r, c);
    let h = forge(&mut l, true);
    msgs(&mut l.r, a);
    assert_circuit_works(&mut l, &h);
}

#[test]
fn lnk_circ_naming_the_peers_own_span_is_refused() {
    // A LNK_CIRC naming the SPAN the peer itself sent us is not something
    // we relay on that link: refused.
    let mut l = line();
    let c = l.c;
    let s = l.r.peer(c).txn(l.span_c).unwrap().msgid;
    let t = l.r.peer(c).open(0, circ_create(s)).unwrap();
    l.r.pump();
    let back = msgs(&mut l.r, c);
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].hdr.error, err::CANTCIRC);
    assert!(l.r.peer(c).txn(t).unwrap().rx_closed());
}
