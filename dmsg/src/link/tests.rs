//! Engine tests: two links joined in memory.

use super::*;
use crate::wire::{Encoder, FrameRef, Header};

/// Moves every pending byte between `a` and `b` until both are quiet.
fn pump(a: &mut Link, b: &mut Link) {
    loop {
        let ab: Vec<u8> = a.pending_tx().flatten().copied().collect();
        a.consume_tx(ab.len());
        let ba: Vec<u8> = b.pending_tx().flatten().copied().collect();
        b.consume_tx(ba.len());
        if ab.is_empty() && ba.is_empty() {
            return;
        }
        b.receive(&ab);
        a.receive(&ba);
    }
}

fn events(l: &mut Link) -> Vec<Event> {
    std::iter::from_fn(|| l.poll_event()).collect()
}

/// The (cmd, error, txn) of every message event, other events dropped.
fn messages(evs: &[Event]) -> Vec<(u32, u32, Option<TxnInfo>)> {
    evs.iter()
        .filter_map(|e| match e {
            Event::Message { msg, txn } => Some((msg.hdr.cmd, msg.hdr.error, *txn)),
            _ => None,
        })
        .collect()
}

fn closed(evs: &[Event]) -> Vec<TxnId> {
    evs.iter()
        .filter_map(|e| match e {
            Event::Closed(id) => Some(*id),
            _ => None,
        })
        .collect()
}

fn violations(evs: &[Event]) -> Vec<Violation> {
    evs.iter()
        .filter_map(|e| match e {
            Event::Violation { violation, .. } => Some(*violation),
            _ => None,
        })
        .collect()
}

fn pair() -> (Link, Link) {
    (
        Link::new(LinkConfig {
            first_msgid: 0x100,
            salt_seed: 1,
        }),
        Link::new(LinkConfig {
            first_msgid: 0x900,
            salt_seed: 2,
        }),
    )
}

#[test]
fn one_way_message_arrives_with_its_aux() {
    let (mut a, mut b) = pair();
    let mut m = Message::new(cmd::DBG_SHELL);
    m.aux = b"tree\0".to_vec();
    a.send_oneway(m).unwrap();
    pump(&mut a, &mut b);
    let evs = events(&mut b);
    assert_eq!(evs.len(), 1);
    match &evs[0] {
        Event::Message { msg, txn: None } => {
            assert_eq!(msg.hdr.cmd, cmd::DBG_SHELL);
            assert_eq!(msg.aux, b"tree\0");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn transaction_create_reply_delete_frees_both_sides() {
    let (mut a, mut b) = pair();
    let id = a.open(0, Message::new(cmd::LNK_CONN | CREATE)).unwrap();
    assert_eq!(a.txn(id).unwrap().txcmd, CREATE);
    pump(&mut a, &mut b);
    let evs = events(&mut b);
    let got = messages(&evs);
    assert_eq!(got.len(), 1);
    let rinfo = got[0].2.unwrap();
    assert_eq!(rinfo.origin, Origin::Remote);
    assert_eq!(rinfo.msgid, 0x100);
    assert_eq!(rinfo.icmd, cmd::LNK_CONN);
    assert_eq!(rinfo.txcmd, REPLY);
    assert_eq!(rinfo.rxcmd, CREATE);

    // B answers with a result (REPLY|CREATE, transaction stays open).
    b.result(rinfo.id, 0).unwrap();
    pump(&mut a, &mut b);
    let got = messages(&events(&mut a));
    assert_eq!(
        got,
        vec![(
            cmd::LNK_ERROR | REPLY | CREATE,
            0,
            Some(TxnInfo {
                rxcmd: REPLY | CREATE,
                ..a.txn(id).unwrap()
            })
        )]
    );

    // A closes its side; B sees DELETE and closes too.
    a.send(id, Message::new(cmd::LNK_CONN | DELETE)).unwrap();
    pump(&mut a, &mut b);
    let evs = events(&mut b);
    assert_eq!(messages(&evs)[0].0, cmd::LNK_CONN | DELETE);
    assert!(closed(&evs).is_empty(), "B has not closed its side yet");
    b.reply(rinfo.id, 0).unwrap();
    assert_eq!(closed(&events(&mut b)), vec![rinfo.id]);
    pump(&mut a, &mut b);
    let evs = events(&mut a);
    assert_eq!(messages(&evs)[0].0, cmd::LNK_ERROR | REPLY | DELETE);
    assert_eq!(closed(&evs), vec![id]);
    assert_eq!(a.txn_count(), 0);
    assert_eq!(b.txn_count(), 0);
}

#[test]
fn both_sides_may_use_the_same_msgid() {
    let mut a = Link::new(LinkConfig {
        first_msgid: 7,
        salt_seed: 1,
    });
    let mut b = Link::new(LinkConfig {
        first_msgid: 7,
        salt_seed: 2,
    });
    let ta = a.open(0, Message::new(cmd::LNK_SPAN | CREATE)).unwrap();
    let tb = b.open(0, Message::new(cmd::LNK_SPAN | CREATE)).unwrap();
    pump(&mut a, &mut b);
    let ra = messages(&events(&mut a))[0].2.unwrap();
    let rb = messages(&events(&mut b))[0].2.unwrap();
    assert_eq!((ra.msgid, rb.msgid), (7, 7));
    assert_ne!(ra.id, ta);
    assert_ne!(rb.id, tb);
    assert_eq!(a.txn_count(), 2);
}

#[test]
fn single_message_transaction_and_first_reply_gets_create() {
    let (mut a, mut b) = pair();
    let id = a
        .open(0, Message::new(cmd::LNK_PING | CREATE | DELETE))
        .unwrap();
    pump(&mut a, &mut b);
    let r = messages(&events(&mut b))[0].2.unwrap();
    assert!(r.rx_closed());
    // A bare DELETE reply gets CREATE added: the peer must see REPLY|CREATE.
    b.reply(r.id, 5).unwrap();
    pump(&mut a, &mut b);
    let evs = events(&mut a);
    assert_eq!(
        messages(&evs)[0].0,
        cmd::LNK_ERROR | REPLY | CREATE | DELETE
    );
    assert_eq!(messages(&evs)[0].1, 5);
    assert_eq!(closed(&evs), vec![id]);
}

#[test]
fn duplicate_reply_never_reaches_the_wire() {
    // STATE.md §10 row 20: the second reply is refused, not sent.
    let (mut a, mut b) = pair();
    a.open(0, Message::new(cmd::LNK_SPAN | CREATE)).unwrap();
    pump(&mut a, &mut b);
    let r = messages(&events(&mut b))[0].2.unwrap();
    b.reply(r.id, 0).unwrap();
    let len = b.tx_len();
    assert_eq!(b.reply(r.id, 0), Err(SendError::Closed(r.id)));
    assert_eq!(b.tx_len(), len);
}

#[test]
fn link_loss_aborts_every_open_transaction_once() {
    let (mut a, mut b) = pair();
    let mine = a.open(0, Message::new(cmd::LNK_SPAN | CREATE)).unwrap();
    let replied = a.open(0, Message::new(cmd::LNK_CONN | CREATE)).unwrap();
    b.open(0, Message::new(cmd::LNK_SPAN | CREATE)).unwrap();
    a.add_circuit(0x55, CircuitRole::Endpoint);
    let on_circ = a.open(0x55, Message::new(cmd::DBG_SHELL | CREATE)).unwrap();
    pump(&mut a, &mut b);
    events(&mut a);
    let conn = messages(&events(&mut b))
        .into_iter()
        .find(|m| m.0 & cmd::BASECMDMASK == cmd::LNK_CONN)
        .unwrap()
        .2
        .unwrap();
    b.result(conn.id, 0).unwrap();
    pump(&mut a, &mut b);
    events(&mut a);

    a.fail(LinkError::Eof);
    let evs = events(&mut a);
    let got = messages(&evs);
    // Remote-initiated first, then ours in order; then the final one-way.
    let flags: Vec<u32> = got.iter().map(|m| m.0 & cmd::FLAGS).collect();
    assert_eq!(
        flags,
        vec![
            ABORT | DELETE,
            ABORT | DELETE | REPLY | CREATE,
            ABORT | DELETE | REPLY,
            ABORT | DELETE | REPLY | CREATE,
            0
        ]
    );
    assert!(got.iter().all(|m| m.1 == ioq_error::EOF));
    assert_eq!(got[1].2.unwrap().id, mine);
    assert_eq!(got[2].2.unwrap().id, replied);
    assert_eq!(got[3].2.unwrap().id, on_circ);
    assert_eq!(closed(&evs).len(), 4);
    assert!(matches!(evs.last(), Some(Event::Down(LinkError::Eof))));
    assert_eq!(a.txn_count(), 0);
    assert_eq!(a.tx_len(), 0);
    // Down is final: more input and more failures change nothing.
    a.fail(LinkError::Shutdown);
    a.receive(&[0u8; 64]);
    assert!(events(&mut a).is_empty());
    assert_eq!(
        a.open(0, Message::new(cmd::LNK_SPAN | CREATE)),
        Err(SendError::LinkDown)
    );
}

#[test]
fn half_closed_transaction_does_not_stall_link_loss() {
    // STATE.md §10 row 22: the peer closed its side and we never answered.
    let (mut a, mut b) = pair();
    a.open(0, Message::new(cmd::LNK_SPAN | CREATE | DELETE))
        .unwrap();
    pump(&mut a, &mut b);
    let r = messages(&events(&mut b))[0].2.unwrap();
    assert!(r.rx_closed() && !r.tx_closed());
    b.fail(LinkError::Eof);
    let evs = events(&mut b);
    // No abort for a direction that is already closed; the txn just ends.
    assert_eq!(messages(&evs).len(), 1);
    assert_eq!(closed(&evs), vec![r.id]);
    assert_eq!(b.txn_count(), 0);
}

/// Encodes raw headers as a peer would, with correct CRCs and sequence.
struct RawPeer(Encoder);

impl RawPeer {
    fn new() -> Self {
        RawPeer(Encoder::new(99))
    }
    fn msg(&mut self, c: u32, msgid: u64, circuit: u64) -> Vec<u8> {
        let mut m = Message::new(c);
        m.hdr.msgid = msgid;
        m.hdr.circuit = circuit;
        let mut out = Vec::new();
        self.0.encode(&m, &mut out).unwrap();
        out
    }
}

#[test]
fn violations_are_answered_and_the_link_lives() {
    let (mut a, mut b) = pair();
    let mut peer = RawPeer::new();
    // Row 5: DELETE for an unknown msgid; row 6: REPLY|CREATE unknown; row 7:
    // REPLY|DELETE unknown; a message on an unknown circuit (row 2).
    for (c, circ, want) in [
        (cmd::LNK_SPAN | DELETE, 0, Violation::DeleteUnknown),
        (
            cmd::LNK_ERROR | REPLY | CREATE,
            0,
            Violation::ReplyCreateUnknown,
        ),
        (
            cmd::LNK_ERROR | REPLY | DELETE,
            0,
            Violation::ReplyDeleteUnknown,
        ),
        (cmd::DBG_SHELL, 1, Violation::UnknownCircuit),
    ] {
        b.receive(&peer.msg(c, 0xdead, circ));
        let evs = events(&mut b);
        assert_eq!(violations(&evs), vec![want]);
        assert!(messages(&evs).is_empty());
        assert!(!b.is_down());
    }
    // Aborts for unknown transactions are dropped without a word.
    b.receive(&peer.msg(cmd::LNK_ERROR | ABORT | DELETE, 0xbeef, 0));
    assert!(events(&mut b).is_empty());
    // The link still works for a new transaction.
    b.receive(&peer.msg(cmd::LNK_SPAN | CREATE, 0x42, 0));
    let got = messages(&events(&mut b));
    assert_eq!(got[0].2.unwrap().msgid, 0x42);
    drop(a.poll_event());
}

#[test]
fn duplicate_create_fails_that_transaction_at_both_ends() {
    // Row 4.
    let mut b = Link::default();
    let mut peer = RawPeer::new();
    b.receive(&peer.msg(cmd::LNK_SPAN | CREATE, 0x42, 0));
    b.receive(&peer.msg(cmd::LNK_SPAN | CREATE, 0x77, 0));
    let first = messages(&events(&mut b))[0].2.unwrap();
    b.receive(&peer.msg(cmd::LNK_SPAN | CREATE, 0x42, 0));
    let evs = events(&mut b);
    assert_eq!(violations(&evs), vec![Violation::DuplicateCreate]);
    let got = messages(&evs);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, cmd::LNK_ERROR | ABORT | DELETE);
    assert_eq!(got[0].1, ioq_error::TRANS);
    assert_eq!(closed(&evs), vec![first.id]);
    // The peer is told: REPLY|CREATE|DELETE with DMSG_ERR_PARAM.
    let wire: Vec<u8> = b.pending_tx().flatten().copied().collect();
    let mut dec = crate::wire::Decoder::new();
    let m = dec.decode(&mut &wire[..]).unwrap().unwrap();
    assert_eq!(m.hdr.cmd, cmd::LNK_ERROR | REPLY | CREATE | DELETE);
    assert_eq!((m.hdr.msgid, m.hdr.error), (0x42, err::PARAM));
    // The other transaction is untouched.
    assert_eq!(b.txn_count(), 1);
    assert!(b.find_txn(0, Origin::Remote, 0x77).is_some());
}

#[test]
fn reply_delete_before_reply_create_fails_our_transaction() {
    // Row 8.
    let mut a = Link::new(LinkConfig {
        first_msgid: 0x100,
        salt_seed: 3,
    });
    let mut peer = RawPeer::new();
    let id = a.open(0, Message::new(cmd::LNK_SPAN | CREATE)).unwrap();
    a.receive(&peer.msg(cmd::LNK_ERROR | REPLY | DELETE, 0x100, 0));
    let evs = events(&mut a);
    assert_eq!(violations(&evs), vec![Violation::ReplyDeleteBeforeCreate]);
    assert_eq!(
        messages(&evs)[0].0,
        cmd::LNK_ERROR | ABORT | DELETE | REPLY | CREATE
    );
    assert_eq!(closed(&evs), vec![id]);
    // Our DELETE went out so the peer's state can end too.
    let wire: Vec<u8> = a.pending_tx().flatten().copied().collect();
    let mut dec = crate::wire::Decoder::new();
    let mut input = &wire[..];
    let create = dec.decode(&mut input).unwrap().unwrap();
    assert_eq!(create.hdr.cmd, cmd::LNK_SPAN | CREATE);
    let m = dec.decode(&mut input).unwrap().unwrap();
    assert_eq!(m.hdr.cmd, cmd::LNK_ERROR | DELETE);
}

#[test]
fn bad_header_crc_takes_only_this_link_down() {
    // Row 1.
    let (mut a, mut b) = pair();
    a.open(0, Message::new(cmd::LNK_SPAN | CREATE)).unwrap();
    pump(&mut a, &mut b);
    events(&mut b);
    let mut bytes = RawPeer::new().msg(cmd::LNK_PING, 0, 0);
    bytes[0x08] ^= 0x40;
    let mut c = Link::default();
    c.receive(&bytes);
    let evs = events(&mut c);
    assert!(matches!(
        evs.last(),
        Some(Event::Down(LinkError::Decode(
            crate::wire::DecodeError::HeaderCrc { .. }
        )))
    ));
    assert_eq!(messages(&evs)[0].1, ioq_error::XCRC);
    // Unrelated links are unaffected.
    b.reply(b.find_txn(0, Origin::Remote, 0x100).unwrap().id, 0)
        .unwrap();
    pump(&mut a, &mut b);
    assert_eq!(messages(&events(&mut a)).len(), 1);
}

/// A link that relays circuit 0x10 and ends circuit 0x20.
fn relay_and_endpoint() -> Link {
    let mut l = Link::default();
    l.add_circuit(0x10, CircuitRole::Relay);
    l.add_circuit(0x20, CircuitRole::Endpoint);
    l
}

#[test]
fn relay_frames_in_place_say_where_they_are() {
    let mut b = relay_and_endpoint();
    let mut peer = RawPeer::new();
    let mut big = Message::new(cmd::BLK_WRITE);
    big.hdr.circuit = 0x10;
    big.aux = (0..5000u32).map(|i| i as u8).collect();
    let mut input = peer.msg(cmd::DBG_SHELL, 0, 0x10);
    input.extend(peer.msg(cmd::LNK_SPAN | CREATE, 0x5, 0x20));
    let at_big = input.len();
    peer.0.encode(&big, &mut input).unwrap();
    input.extend(peer.msg(cmd::LNK_PING, 0, 0x10));
    // The last frame is cut: the next call completes it.
    let last = peer.msg(cmd::BLK_FLUSH, 0, 0x10);
    input.extend(&last[..30]);
    b.receive_in_place(&input);
    let evs = events(&mut b);
    // In order, the endpoint's message between them.
    assert_eq!(evs.len(), 4);
    assert!(matches!(&evs[1], Event::Message { .. }));
    let frames: Vec<FrameRef<'_>> = evs
        .iter()
        .filter_map(|e| match e {
            Event::RelayFrame(at) => at.get(&input),
            _ => None,
        })
        .collect();
    assert_eq!(frames.len(), 3);
    assert_eq!(frames[0].hdr.cmd, cmd::DBG_SHELL);
    assert_eq!(frames[1].to_message(), {
        let mut m = big.clone();
        m.hdr = frames[1].hdr;
        m
    });
    assert_eq!(frames[1].hdr.circuit, 0x10);
    assert_eq!(frames[1].aux, &big.aux[..]);
    // Where it was read, not a copy.
    let aux_at = at_big + 64 + big.ext.len();
    assert!(std::ptr::eq(frames[1].aux.as_ptr(), &input[aux_at]));
    assert_eq!(frames[2].hdr.cmd, cmd::LNK_PING);
    // Bytes too short to be the ones it came from: no frame.
    let Event::RelayFrame(at) = &evs[2] else {
        panic!("{:?}", evs[2]);
    };
    assert!(at.get(&input[..at_big + 100]).is_none());
    // A frame completed from buffered bytes is a message of its own.
    b.receive_in_place(&last[30..]);
    let evs = events(&mut b);
    assert!(matches!(&evs[..], [Event::Relay { msg }] if msg.hdr.cmd == cmd::BLK_FLUSH));
    // The same bytes through Link::receive: messages only.
    let mut c = relay_and_endpoint();
    c.receive(&input);
    let evs = events(&mut c);
    assert_eq!(evs.len(), 4);
    assert!(evs.iter().all(|e| !matches!(e, Event::RelayFrame(_))));
}

#[test]
fn relay_and_endpoint_circuits() {
    let mut b = relay_and_endpoint();
    let mut peer = RawPeer::new();
    b.receive(&peer.msg(cmd::DBG_SHELL, 0, 0x10));
    b.receive(&peer.msg(cmd::LNK_SPAN | CREATE, 0x5, 0x20));
    let evs = events(&mut b);
    assert!(matches!(&evs[0], Event::Relay { msg } if msg.hdr.circuit == 0x10));
    assert_eq!(messages(&evs)[0].2.unwrap().circuit, 0x20);
    // Removing the endpoint circuit aborts what ran on it, sending nothing.
    let before = b.tx_len();
    b.remove_circuit(0x20, err::LOSTLINK);
    let evs = events(&mut b);
    assert_eq!(messages(&evs)[0].1, err::LOSTLINK);
    assert_eq!(b.txn_count(), 0);
    assert_eq!(b.tx_len(), before);
}

#[test]
fn abandon_only_unsent_transactions() {
    let mut a = Link::default();
    let id = a.begin(0, cmd::LNK_SPAN | CREATE).unwrap();
    assert!(a.abandon(id));
    assert_eq!(a.txn_count(), 0);
    let id = a.open(0, Message::new(cmd::LNK_SPAN | CREATE)).unwrap();
    assert!(!a.abandon(id));
    assert_eq!(
        a.begin(0, cmd::LNK_SPAN),
        Err(SendError::NotACreate(cmd::LNK_SPAN))
    );
}

#[test]
fn reply_oneway_mirrors_reply_bit() {
    let mut a = Link::default();
    let h = Header {
        cmd: cmd::DBG_SHELL,
        msgid: 3,
        circuit: 0,
        ..Header::default()
    };
    a.reply_oneway(&h, 0).unwrap();
    let wire: Vec<u8> = a.pending_tx().flatten().copied().collect();
    let m = crate::wire::Decoder::new()
        .decode(&mut &wire[..])
        .unwrap()
        .unwrap();
    assert_eq!(m.hdr.cmd, cmd::LNK_ERROR | REPLY);
    assert_eq!(m.hdr.msgid, 3);
}

#[test]
fn answers_are_awaited_from_our_create_until_the_peer_sends_anything() {
    let (mut a, mut b) = pair();
    assert_eq!(a.awaited_answers(), 0);
    // Reserved, sent, answered by a result: awaited until the result.
    let id = a.begin(0, cmd::LNK_CONN | CREATE).unwrap();
    assert_eq!(a.awaited_answers(), 1);
    a.send(id, Message::new(cmd::LNK_CONN | CREATE)).unwrap();
    assert_eq!(a.awaited_answers(), 1);
    pump(&mut a, &mut b);
    let theirs = messages(&events(&mut b))[0].2.unwrap();
    assert_eq!(
        b.awaited_answers(),
        0,
        "the peer's transactions are not ours"
    );
    assert_eq!(a.awaited_answers(), 1);
    b.result(theirs.id, 0).unwrap();
    pump(&mut a, &mut b);
    events(&mut a);
    assert_eq!(a.awaited_answers(), 0);

    // Two more: answered one by one, the last one by a single message.
    let one = a.open(0, Message::new(cmd::LNK_SPAN | CREATE)).unwrap();
    a.open(0, Message::new(cmd::LNK_PING | CREATE | DELETE))
        .unwrap();
    assert_eq!(a.awaited_answers(), 2);
    pump(&mut a, &mut b);
    let got = messages(&events(&mut b));
    let span = got
        .iter()
        .find_map(|m| m.2.filter(|t| t.icmd == cmd::LNK_SPAN));
    let ping = got
        .iter()
        .find_map(|m| m.2.filter(|t| t.icmd == cmd::LNK_PING));
    b.result(span.unwrap().id, 0).unwrap();
    pump(&mut a, &mut b);
    events(&mut a);
    assert_eq!(a.awaited_answers(), 1, "the ping is still unanswered");
    b.reply(ping.unwrap().id, 0).unwrap();
    pump(&mut a, &mut b);
    events(&mut a);
    assert_eq!(a.awaited_answers(), 0);
    assert_eq!(a.txn_count(), 2, "the connection and the span stay open");

    // An unsent reservation given up, and an open one at link loss.
    let id = a.begin(0, cmd::LNK_SPAN | CREATE).unwrap();
    assert!(a.abandon(id));
    assert_eq!(a.awaited_answers(), 0);
    a.send(one, Message::new(cmd::LNK_SPAN | DELETE)).unwrap();
    a.open(0, Message::new(cmd::LNK_SPAN | CREATE)).unwrap();
    assert_eq!(a.awaited_answers(), 1);
    a.fail(LinkError::Eof);
    events(&mut a);
    assert_eq!(a.awaited_answers(), 0);
    assert_eq!(a.txn_count(), 0);
}

#[test]
fn a_transaction_failed_before_any_answer_is_no_longer_awaited() {
    let (mut a, _b) = pair();
    a.add_circuit(0x55, CircuitRole::Endpoint);
    a.open(0x55, Message::new(cmd::DBG_SHELL | CREATE)).unwrap();
    assert_eq!(a.awaited_answers(), 1);
    a.remove_circuit(0x55, err::LOSTLINK);
    events(&mut a);
    assert_eq!(a.awaited_answers(), 0);
    assert_eq!(a.txn_count(), 0);
}
