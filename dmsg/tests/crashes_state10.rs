//! STATE.md §10: every remote-triggerable crash of the original library that
//! the transaction layer sees (rows 1, 4, 5, 6, 7, 8, 19, 20, 22), sent as
//! exact bytes over a socketpair to a session running our driver.
//!
//! The peer is raw: it encodes frames itself (correct CRCs and sequence
//! bytes, unless the row is about a bad CRC) and decodes what we send.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use dmsg::link::LinkError;
use dmsg::runtime::session::{Incoming, Session, Transaction};
use dmsg::state::Violation;
use dmsg::wire::cmd::{self, ABORT, CREATE, DELETE, REPLY};
use dmsg::wire::{err, ioq_error, DecodeError, Decoder, Encoder, Message};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(5);

/// The far end of the socketpair, speaking raw frames.
struct RawPeer {
    sock: UnixStream,
    enc: Encoder,
    dec: Decoder,
    pending: Vec<u8>,
}

impl RawPeer {
    fn new(sock: UnixStream) -> RawPeer {
        sock.set_read_timeout(Some(T)).unwrap();
        RawPeer {
            sock,
            enc: Encoder::new(0xABCD),
            dec: Decoder::new(),
            pending: Vec::new(),
        }
    }

    fn frame(&mut self, c: u32, msgid: u64, error: u32) -> Vec<u8> {
        let mut m = Message::new(c);
        m.hdr.msgid = msgid;
        m.hdr.error = error;
        let mut out = Vec::new();
        self.enc.encode(&m, &mut out).unwrap();
        out
    }

    fn send(&mut self, c: u32, msgid: u64) {
        let f = self.frame(c, msgid, 0);
        self.sock.write_all(&f).unwrap();
    }

    /// The next message we sent, or `None` at EOF.
    fn read(&mut self) -> Option<Message> {
        loop {
            let mut input = &self.pending[..];
            let got = self.dec.decode(&mut input).unwrap();
            let used = self.pending.len() - input.len();
            self.pending.drain(..used);
            if got.is_some() {
                return got;
            }
            let mut buf = [0u8; 65536];
            let n = self.sock.read(&mut buf).expect("our side answers in time");
            if n == 0 {
                return None;
            }
            self.pending.extend_from_slice(&buf[..n]);
        }
    }

    /// Reads until a message with this msgid and `cmd & mask == want`.
    fn read_until(&mut self, msgid: u64, mask: u32, want: u32) -> Message {
        loop {
            let m = self.read().expect("link still up");
            if m.hdr.msgid == msgid && m.hdr.cmd & mask == want {
                return m;
            }
        }
    }
}

fn setup() -> (Session, RawPeer) {
    let (ours, theirs) = UnixStream::pair().unwrap();
    (Session::spawn(ours).unwrap(), RawPeer::new(theirs))
}

fn incoming_txn(s: &Session) -> (Message, Transaction) {
    match s.recv_timeout(T).unwrap() {
        Incoming::Transaction { msg, txn } => (msg, txn),
        other => panic!("expected a transaction, got {other:?}"),
    }
}

fn violation(s: &Session) -> Violation {
    match s.recv_timeout(T).unwrap() {
        Incoming::Violation { violation, .. } => violation,
        other => panic!("expected a violation, got {other:?}"),
    }
}

/// Opens a transaction of ours and returns it with the msgid the peer saw.
fn open_ours(s: &Session, peer: &mut RawPeer) -> (Transaction, u64) {
    let t = s.open(Message::new(cmd::LNK_SPAN | CREATE)).unwrap();
    let create = peer.read().unwrap();
    assert_eq!(create.hdr.cmd, cmd::LNK_SPAN | CREATE);
    (t, create.hdr.msgid)
}

/// Proves transaction `t` (ours, msgid `msgid` on the wire) still works:
/// we send in it, the peer answers and closes, we close, it ends.
fn ours_still_works(s: &Session, peer: &mut RawPeer, t: Transaction, msgid: u64) {
    let live = s.live_transactions();
    t.send(Message::new(cmd::DBG_SHELL)).unwrap();
    let m = peer.read_until(msgid, cmd::BASECMDMASK, cmd::DBG_SHELL);
    assert_eq!(
        m.hdr.cmd,
        cmd::DBG_SHELL,
        "mid-stream: no CREATE, no DELETE"
    );
    peer.send(cmd::LNK_ERROR | REPLY | CREATE | DELETE, msgid);
    let answer = t.recv_timeout(T).unwrap();
    assert_eq!(answer.hdr.cmd, cmd::LNK_ERROR | REPLY | CREATE | DELETE);
    assert!(t.recv_timeout(T).is_err(), "the peer's side is closed");
    t.reply(0).unwrap();
    let m = peer.read_until(msgid, DELETE, DELETE);
    assert_eq!(m.hdr.cmd, cmd::LNK_ERROR | DELETE);
    wait_for(|| s.live_transactions() == live - 1);
    assert!(s.down_reason().is_none());
}

fn wait_for(mut f: impl FnMut() -> bool) {
    let end = Instant::now() + T;
    while !f() {
        assert!(Instant::now() < end, "condition not reached in time");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn row01_bad_header_crc_closes_only_that_link() {
    // Another connection in the same process, working before and after.
    let (x, y) = UnixStream::pair().unwrap();
    let (client, server) = (Session::spawn(x).unwrap(), Session::spawn(y).unwrap());
    let round_trip = || {
        let t = client.open(Message::new(cmd::LNK_PING | CREATE)).unwrap();
        let (_, theirs) = incoming_txn(&server);
        theirs.reply(0).unwrap();
        let last = t.recv_timeout(T).unwrap();
        assert_eq!(last.hdr.cmd & DELETE, DELETE);
        t.reply(0).unwrap();
    };
    round_trip();

    let (s, mut peer) = setup();
    let (t, _) = open_ours(&s, &mut peer);
    let mut bad = peer.frame(cmd::LNK_PING, 0, 0);
    bad[0x08] ^= 0x40; // a msgid bit: the header CRC no longer matches
    peer.sock.write_all(&bad).unwrap();

    wait_for(|| s.down_reason().is_some());
    assert!(matches!(
        s.down_reason(),
        Some(LinkError::Decode(DecodeError::HeaderCrc { .. }))
    ));
    let abort = t.recv_timeout(T).unwrap();
    assert_eq!(abort.hdr.cmd & (ABORT | DELETE), ABORT | DELETE);
    assert_eq!(abort.hdr.error, ioq_error::XCRC);
    assert!(t.recv().is_none());
    // That one link is closed: the peer reads EOF.
    while peer.read().is_some() {}
    assert_eq!(s.live_transactions(), 0);

    round_trip();
}

#[test]
fn row04_duplicate_create_fails_that_transaction_only() {
    let (s, mut peer) = setup();
    let (ours, ours_id) = open_ours(&s, &mut peer);
    peer.send(cmd::LNK_SPAN | CREATE, 0x42);
    peer.send(cmd::LNK_SPAN | CREATE, 0x77);
    let (_, t42) = incoming_txn(&s);
    let (_, t77) = incoming_txn(&s);

    peer.send(cmd::LNK_SPAN | CREATE, 0x42);
    assert_eq!(violation(&s), Violation::DuplicateCreate);
    // The named transaction is failed at both ends.
    let abort = t42.recv_timeout(T).unwrap();
    assert_eq!(abort.hdr.cmd, cmd::LNK_ERROR | ABORT | DELETE);
    assert_eq!(abort.hdr.error, ioq_error::TRANS);
    assert!(t42.recv().is_none());
    let told = peer.read_until(0x42, DELETE, DELETE);
    assert_eq!(told.hdr.cmd, cmd::LNK_ERROR | REPLY | CREATE | DELETE);
    assert_eq!(told.hdr.error, err::PARAM);
    assert_eq!(
        t42.reply(0),
        Err(dmsg::link::SendError::UnknownTxn(t42.id()))
    );

    // The peer's other transaction still works...
    t77.result(0).unwrap();
    let r = peer.read_until(0x77, cmd::BASECMDMASK, cmd::LNK_ERROR);
    assert_eq!(r.hdr.cmd, cmd::LNK_ERROR | REPLY | CREATE);
    peer.send(cmd::LNK_SPAN | DELETE, 0x77);
    assert_eq!(t77.recv_timeout(T).unwrap().hdr.cmd, cmd::LNK_SPAN | DELETE);
    t77.reply(0).unwrap();
    peer.read_until(0x77, DELETE, DELETE);
    // The driver thread frees 0x77 after its DELETE is queued; wait for
    // that, so the count below starts from ours alone.
    wait_for(|| s.live_transactions() == 1);
    // ...and so does ours.
    ours_still_works(&s, &mut peer, ours, ours_id);
    wait_for(|| s.live_transactions() == 0);
}

/// Rows 5–7: a message naming no transaction is refused and reported; the
/// link and an open transaction on it carry on.
fn unknown_transaction_row(bad_cmd: u32, want: Violation) {
    let (s, mut peer) = setup();
    let (ours, ours_id) = open_ours(&s, &mut peer);
    peer.send(bad_cmd, 0xdead_beef);
    assert_eq!(violation(&s), want);
    assert_eq!(s.live_transactions(), 1);
    ours_still_works(&s, &mut peer, ours, ours_id);
    // Nothing was sent about the refused message.
    drop(s);
    while let Some(m) = peer.read() {
        assert_ne!(m.hdr.msgid, 0xdead_beef);
    }
}

#[test]
fn row05_delete_for_unknown_msgid() {
    unknown_transaction_row(cmd::LNK_SPAN | DELETE, Violation::DeleteUnknown);
}

#[test]
fn row06_reply_create_for_unknown_msgid() {
    unknown_transaction_row(
        cmd::LNK_ERROR | REPLY | CREATE,
        Violation::ReplyCreateUnknown,
    );
}

#[test]
fn row07_reply_delete_for_unknown_msgid() {
    unknown_transaction_row(
        cmd::LNK_ERROR | REPLY | DELETE,
        Violation::ReplyDeleteUnknown,
    );
}

#[test]
fn row08_reply_delete_before_reply_create() {
    let (s, mut peer) = setup();
    let (victim, victim_id) = open_ours(&s, &mut peer);
    let (other, other_id) = open_ours(&s, &mut peer);
    peer.send(cmd::LNK_ERROR | REPLY | DELETE, victim_id);
    assert_eq!(violation(&s), Violation::ReplyDeleteBeforeCreate);
    let abort = victim.recv_timeout(T).unwrap();
    assert_eq!(
        abort.hdr.cmd,
        cmd::LNK_ERROR | ABORT | DELETE | REPLY | CREATE
    );
    assert_eq!(abort.hdr.error, ioq_error::TRANS);
    assert!(victim.recv().is_none());
    let told = peer.read_until(victim_id, DELETE, DELETE);
    assert_eq!(told.hdr.cmd, cmd::LNK_ERROR | DELETE);
    assert_eq!(told.hdr.error, err::PARAM);
    wait_for(|| s.live_transactions() == 1);
    ours_still_works(&s, &mut peer, other, other_id);
    wait_for(|| s.live_transactions() == 0);
}

/// User data attached to a transaction; counts its drops.
struct Attached {
    drops: Arc<AtomicUsize>,
    _file: std::fs::File,
}

impl Drop for Attached {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn row19_transaction_freed_with_user_data_attached() {
    let (s, mut peer) = setup();
    let (other, other_id) = open_ours(&s, &mut peer);
    // An unrelated fd that must stay open (the original runs closefrom(3)).
    let mut unrelated = tempfile::tempfile().unwrap();
    unrelated.write_all(b"still here").unwrap();

    let drops = Arc::new(AtomicUsize::new(0));
    peer.send(cmd::LNK_CONN | CREATE, 0x19);
    let (_, t) = incoming_txn(&s);
    assert!(t.attach(Box::new(Attached {
        drops: Arc::clone(&drops),
        _file: tempfile::tempfile().unwrap(),
    })));
    // The peer closes (with an abort, an odd close order) while the data is
    // attached and our handle is alive.
    peer.send(cmd::LNK_ERROR | ABORT | DELETE, 0x19);
    let m = t.recv_timeout(T).unwrap();
    assert_eq!(m.hdr.cmd, cmd::LNK_ERROR | ABORT | DELETE);
    assert!(t.recv().is_none());
    assert_eq!(drops.load(Ordering::SeqCst), 0, "half-closed: still ours");
    // Dropping the handle closes our side; the transaction is freed with
    // the data still attached, and the data is dropped once.
    drop(t);
    peer.read_until(0x19, DELETE, DELETE);
    wait_for(|| drops.load(Ordering::SeqCst) == 1);
    assert_eq!(s.live_transactions(), 1);

    // Nothing else disturbed: the unrelated fd and the link still work.
    unrelated.seek(SeekFrom::Start(0)).unwrap();
    let mut back = String::new();
    unrelated.read_to_string(&mut back).unwrap();
    assert_eq!(back, "still here");
    ours_still_works(&s, &mut peer, other, other_id);
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

#[test]
fn row20_two_replies_put_one_delete_on_the_wire() {
    let (s, mut peer) = setup();
    peer.send(cmd::LNK_SPAN | CREATE, 0x20);
    let (_, t) = incoming_txn(&s);
    // The peer closes its side twice; both DELETEs reach us before we
    // answer, and we answer each one.
    peer.send(cmd::LNK_SPAN | DELETE, 0x20);
    peer.send(cmd::LNK_SPAN | DELETE, 0x20);
    assert_eq!(t.recv_timeout(T).unwrap().hdr.cmd, cmd::LNK_SPAN | DELETE);
    assert_eq!(violation(&s), Violation::AfterDelete);
    let t = Arc::new(t);
    let racers: Vec<_> = (0..2)
        .map(|_| {
            let t = Arc::clone(&t);
            std::thread::spawn(move || t.reply(0).is_ok())
        })
        .collect();
    let ok: usize = racers
        .into_iter()
        .map(|r| usize::from(r.join().unwrap()))
        .sum();
    assert_eq!(ok, 1, "exactly one reply is accepted");
    assert!(t.reply(0).is_err());

    // A one-way marker, then count what reached the wire before it.
    let mut marker = Message::new(cmd::DBG_SHELL);
    marker.hdr.msgid = 0x5151;
    s.send_oneway(marker).unwrap();
    let mut deletes = 0;
    loop {
        let m = peer.read().unwrap();
        if m.hdr.msgid == 0x5151 {
            break;
        }
        if m.hdr.msgid == 0x20 && m.hdr.cmd & DELETE != 0 {
            assert_eq!(m.hdr.cmd, cmd::LNK_ERROR | REPLY | CREATE | DELETE);
            deletes += 1;
        }
    }
    assert_eq!(deletes, 1);
    wait_for(|| s.live_transactions() == 0);
    assert!(s.down_reason().is_none());
}

#[test]
fn row22_half_closed_transaction_then_disconnect_ends_promptly() {
    let (s, mut peer) = setup();
    let (ours, _) = open_ours(&s, &mut peer);
    let drops = Arc::new(AtomicUsize::new(0));
    let attach = |t: &Transaction| {
        assert!(t.attach(Box::new(Attached {
            drops: Arc::clone(&drops),
            _file: tempfile::tempfile().unwrap(),
        })));
    };
    attach(&ours);
    // Half-closed by the peer, never answered by us.
    peer.send(cmd::LNK_SPAN | CREATE | DELETE, 0x22);
    let (_, half) = incoming_txn(&s);
    attach(&half);
    // Fully open.
    peer.send(cmd::LNK_SPAN | CREATE, 0x23);
    let (_, open) = incoming_txn(&s);
    attach(&open);
    assert_eq!(s.live_transactions(), 3);

    let start = Instant::now();
    drop(peer);
    assert_eq!(s.wait_down(), LinkError::Eof);
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "no retry loop: took {:?}",
        start.elapsed()
    );

    // Every transaction ended exactly once.
    let abort = ours.recv_timeout(T).unwrap();
    assert_eq!(
        abort.hdr.cmd,
        cmd::LNK_ERROR | ABORT | DELETE | REPLY | CREATE
    );
    assert_eq!(abort.hdr.error, ioq_error::EOF);
    assert!(ours.recv().is_none());
    let abort = open.recv_timeout(T).unwrap();
    assert_eq!(abort.hdr.cmd, cmd::LNK_ERROR | ABORT | DELETE);
    assert!(open.recv().is_none());
    assert!(half.recv().is_none(), "its side had closed: no second end");
    assert_eq!(drops.load(Ordering::SeqCst), 3);
    assert!(s.recv().is_none(), "nothing else arrives");

    // No transaction objects are left, in the engine or the session.
    assert_eq!(s.live_transactions(), 0);
    assert_eq!(s.conn().with_link(|l| l.txn_count()), 0);
    assert_eq!(
        half.reply(0),
        Err(dmsg::link::SendError::LinkDown),
        "a late answer is refused, not sent"
    );
}
