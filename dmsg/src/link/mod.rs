//! The connection engine: one link between two nodes, sans I/O.
//!
//! A [`Link`] owns the frame decoder and encoder of a byte stream, the
//! transaction tables of every circuit that ends here, and the transmit
//! queue. Bytes go in with [`Link::receive`]; messages go out with
//! [`Link::open`], [`Link::send`], [`Link::send_oneway`], [`Link::reply`] and
//! [`Link::result`]; the bytes to write come out of [`Link::pending_tx`];
//! what happened comes out of [`Link::poll_event`]. It does no I/O, reads no
//! clock and draws no random numbers: the same input gives the same output.
//!
//! ```text
//!  socket ──bytes──► receive ─► decoder ─► transaction rules ─► events
//!  user ──messages──► open/send/reply ─► transaction tables ─► encoder ─► tx queue ──► socket
//! ```
//!
//! Link loss ([`Link::fail`], or a frame the decoder refuses): the transmit
//! queue is dropped, every transaction still open on any circuit gets one
//! synthesized `LNK_ERROR` ABORT|DELETE message carrying the
//! `DMSG_IOQ_ERROR_*` code of the cause (2 = EOF, as the C library does),
//! then a final one-way `LNK_ERROR` with that code, then [`Event::Down`].

mod event;
mod table;
pub mod txqueue;

pub use event::{Event, FrameAt, LinkError, SendError};

use crate::state::{classify, Origin, RxAction, TxnId, TxnInfo, Violation};
use crate::wire::cmd::{self, ABORT, CREATE, DELETE, REPLY};
use crate::wire::{err, ioq_error, Decoder, Encoder, FrameRef, Message};
use std::collections::{HashMap, VecDeque};
use table::Table;
use txqueue::TxQueue;

/// What a link does with a non-zero circuit id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CircuitRole {
    /// Transactions on it end here.
    Endpoint,
    /// Its messages are relayed to another link ([`Event::Relay`]).
    Relay,
}

/// Settings of one link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkConfig {
    /// The msgid of the first transaction we open; later ones count up.
    pub first_msgid: u64,
    /// Seed of the noise in the salt's upper bits.
    pub salt_seed: u32,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            first_msgid: 0x0001_0000,
            salt_seed: 0x5EED_1234,
        }
    }
}

/// One link: see the module documentation.
#[derive(Debug)]
pub struct Link {
    decoder: Decoder,
    encoder: Encoder,
    tx: TxQueue,
    /// Bytes taken with [`Link::take_tx`] and not yet reported written.
    tx_lent: usize,
    /// The live transactions of every circuit.
    txns: Table,
    circuits: HashMap<u64, CircuitRole>,
    /// Circuit ids announced by a remote `LNK_CIRC|CREATE` that the layer
    /// above has not yet declared or refused, with the messages received
    /// on them meanwhile (the peer may use a circuit at once, and a read
    /// decodes many frames before the `LNK_CIRC` event is handled).
    held: HashMap<u64, Vec<Message>>,
    next_msgid: u64,
    next_txn: u64,
    events: VecDeque<Event>,
    down: Option<LinkError>,
}

/// `LNK_ERROR` with the given flags.
/// True for a peer's `LNK_CIRC` on circuit 0: it announces a circuit whose
/// messages are held until the layer above decides.
fn announces_circuit(t: &TxnInfo) -> bool {
    t.circuit == 0 && t.origin == Origin::Remote && t.icmd == cmd::LNK_CIRC
}

fn lnk_error(flags: u32, msgid: u64, circuit: u64, error: u32) -> Message {
    let mut m = Message::new(cmd::LNK_ERROR | flags);
    m.hdr.msgid = msgid;
    m.hdr.circuit = circuit;
    m.hdr.error = error;
    m
}

impl Default for Link {
    fn default() -> Self {
        Link::new(LinkConfig::default())
    }
}

impl Link {
    /// A fresh link, expecting and sending sequence byte 0 first.
    pub fn new(config: LinkConfig) -> Link {
        Link {
            decoder: Decoder::new(),
            encoder: Encoder::new(config.salt_seed),
            tx: TxQueue::default(),
            tx_lent: 0,
            txns: Table::default(),
            circuits: HashMap::new(),
            held: HashMap::new(),
            next_msgid: config.first_msgid.max(1),
            next_txn: 1,
            events: VecDeque::new(),
            down: None,
        }
    }

    // ----- input -------------------------------------------------------

    /// Feeds received bytes. Decoded messages become events; a refused frame
    /// takes the link down.
    pub fn receive(&mut self, input: &[u8]) {
        self.receive_as(input, false);
    }

    /// [`Link::receive`] for a caller that keeps `input` until it has
    /// handled the events: a frame on a relay circuit that `input` holds
    /// whole is reported as [`Event::RelayFrame`], which says where it is
    /// in `input`, instead of being copied into an [`Event::Relay`]
    /// message. A relay forwards it from there.
    pub fn receive_in_place(&mut self, input: &[u8]) {
        self.receive_as(input, true);
    }

    /// Both receives in one loop: the decoder and the dispatch have one
    /// caller each, so both are inlined into it (with a second caller they
    /// were not, and every message was copied once more between them).
    #[inline(never)]
    fn receive_as(&mut self, input: &[u8], in_place: bool) {
        let mut rest = input;
        while self.down.is_none() {
            if in_place {
                let start = input.len().saturating_sub(rest.len());
                let relayed = self
                    .decoder
                    .peek_circuit(rest)
                    .is_some_and(|c| c != 0 && self.circuits.get(&c) == Some(&CircuitRole::Relay));
                if relayed && self.decoder.decode_in_place(&mut rest).is_some() {
                    self.events
                        .push_back(Event::RelayFrame(FrameAt::new(start)));
                    continue;
                }
            }
            match self.decoder.decode(&mut rest) {
                Ok(Some(msg)) => self.dispatch(msg),
                Ok(None) => break,
                Err(e) => self.fail(LinkError::Decode(e)),
            }
        }
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Moves every waiting event, in order, to the end of `into` (without
    /// moving them one by one when `into` is empty): the batch form of
    /// [`Link::poll_event`].
    pub fn take_events(&mut self, into: &mut VecDeque<Event>) {
        if into.is_empty() {
            std::mem::swap(&mut self.events, into);
        } else {
            into.append(&mut self.events);
        }
    }

    /// True when events wait.
    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// How many transactions we opened have received nothing from the
    /// peer yet: the answers awaited (while there are any, a driver polls
    /// for them briefly before it sleeps, see
    /// [`crate::runtime::DriverConfig::answer_poll`]).
    pub fn awaited_answers(&self) -> usize {
        self.txns.unanswered()
    }

    #[inline(always)]
    fn dispatch(&mut self, msg: Message) {
        let circuit = msg.hdr.circuit;
        if circuit != 0 {
            match self.circuits.get(&circuit) {
                Some(CircuitRole::Relay) => {
                    self.events.push_back(Event::Relay { msg });
                    return;
                }
                Some(CircuitRole::Endpoint) => {}
                None => {
                    if let Some(q) = self.held.get_mut(&circuit) {
                        // Its LNK_CIRC is not decided yet: wait for it.
                        q.push(msg);
                    } else {
                        self.violation(Violation::UnknownCircuit, &msg);
                    }
                    return;
                }
            }
        }
        let c = msg.hdr.cmd;
        let origin = if c & REPLY != 0 {
            Origin::Local
        } else {
            Origin::Remote
        };
        let found = self.txns.find(circuit, origin, msg.hdr.msgid);
        let rx = found.and_then(|id| self.txns.get(id)).map(|t| t.rxcmd);
        match classify(c, rx) {
            RxAction::Ignore => {}
            RxAction::Reject(v) => self.violation(v, &msg),
            RxAction::Fail(v) => {
                self.violation(v, &msg);
                if let Some(id) = found {
                    self.fail_txn(id, ioq_error::TRANS, err::PARAM);
                }
            }
            RxAction::Open => {
                let id = self.alloc_id();
                let info = TxnInfo {
                    id,
                    circuit,
                    msgid: msg.hdr.msgid,
                    origin: Origin::Remote,
                    icmd: cmd::base(c),
                    txcmd: REPLY,
                    rxcmd: c & (CREATE | DELETE | ABORT),
                };
                self.txns.insert(info);
                if circuit == 0 && info.icmd == cmd::LNK_CIRC && c & DELETE == 0 {
                    self.held.entry(info.msgid).or_default();
                }
                self.events.push_back(Event::Message {
                    msg,
                    txn: Some(info),
                });
            }
            RxAction::Deliver => {
                let Some(id) = found else {
                    self.events.push_back(Event::Message { msg, txn: None });
                    return;
                };
                let Some(info) = self.txns.mark_received(id, c & (CREATE | DELETE)) else {
                    return;
                };
                self.events.push_back(Event::Message {
                    msg,
                    txn: Some(info),
                });
                if info.is_done() {
                    self.free(id);
                }
            }
        }
    }

    fn violation(&mut self, violation: Violation, msg: &Message) {
        self.events.push_back(Event::Violation {
            violation,
            hdr: msg.hdr,
        });
    }

    fn alloc_id(&mut self) -> TxnId {
        let id = TxnId(self.next_txn);
        self.next_txn += 1;
        id
    }

    fn free(&mut self, id: TxnId) {
        if let Some(t) = self.txns.remove(id) {
            if announces_circuit(&t) {
                self.release_held(t.msgid);
            }
            self.events.push_back(Event::Closed(id));
        }
    }

    /// Closes a transaction with an error at both ends: the layer above gets
    /// a synthesized ABORT|DELETE (unless the peer's side was closed
    /// already), and the peer gets our DELETE (unless ours was sent, or the
    /// link is down).
    fn fail_txn(&mut self, id: TxnId, local_error: u32, peer_error: u32) {
        let Some(&before) = self.txns.get(id) else {
            return;
        };
        self.txns.mark_sent(id, CREATE | DELETE);
        let Some(after) = self.txns.mark_received(id, CREATE | DELETE) else {
            return;
        };
        if !before.rx_closed() {
            let mut flags = ABORT | DELETE;
            if before.origin == Origin::Local {
                flags |= REPLY;
            }
            if before.rxcmd & CREATE == 0 {
                flags |= CREATE;
            }
            let msg = lnk_error(flags, before.msgid, before.circuit, local_error);
            self.events.push_back(Event::Message {
                msg,
                txn: Some(after),
            });
        }
        if !before.tx_closed() && self.down.is_none() {
            let mut flags = DELETE;
            if before.origin == Origin::Remote {
                flags |= REPLY;
            }
            if before.txcmd & CREATE == 0 {
                flags |= CREATE;
            }
            let msg = lnk_error(flags, before.msgid, before.circuit, peer_error);
            // An LNK_ERROR header always encodes.
            let _ = self.tx.push(&mut self.encoder, msg);
        }
        self.free(id);
    }

    /// Takes the link down (transport EOF or error, or a local shutdown).
    /// Idempotent; see the module documentation for what follows.
    pub fn fail(&mut self, error: LinkError) {
        if self.down.is_some() {
            return;
        }
        self.down = Some(error.clone());
        self.tx.clear();
        self.held.clear();
        self.tx_lent = 0;
        let code = error.code();
        let mut order = self.txns.ids(|t| t.origin == Origin::Remote);
        order.extend(self.txns.ids(|t| t.origin == Origin::Local));
        for id in order {
            self.fail_txn(id, code, code);
        }
        self.events.push_back(Event::Message {
            msg: lnk_error(0, 0, 0, code),
            txn: None,
        });
        self.events.push_back(Event::Down(error));
    }

    /// Why the link is down, if it is.
    pub fn down_reason(&self) -> Option<&LinkError> {
        self.down.as_ref()
    }

    /// True once the link is down.
    pub fn is_down(&self) -> bool {
        self.down.is_some()
    }

    // ----- output ------------------------------------------------------

    /// Reserves a transaction we will open with base command `cmd`; nothing
    /// is sent until the first [`Link::send`] on it (which carries CREATE).
    /// This is what `dmsg_msg_alloc` does for a CREATE.
    pub fn begin(&mut self, circuit: u64, cmd: u32) -> Result<TxnId, SendError> {
        if self.down.is_some() {
            return Err(SendError::LinkDown);
        }
        if cmd & CREATE == 0 || cmd & REPLY != 0 {
            return Err(SendError::NotACreate(cmd));
        }
        let id = self.alloc_id();
        let mut msgid = self.next_msgid;
        while self.txns.find(circuit, Origin::Local, msgid).is_some() || msgid == 0 {
            msgid = msgid.wrapping_add(1);
        }
        self.next_msgid = msgid.wrapping_add(1);
        let info = TxnInfo {
            id,
            circuit,
            msgid,
            origin: Origin::Local,
            icmd: cmd::base(cmd),
            txcmd: 0,
            rxcmd: REPLY,
        };
        self.txns.insert(info);
        Ok(id)
    }

    /// Drops a transaction reserved with [`Link::begin`] that never sent
    /// anything (`dmsg_msg_free` of an unsent CREATE). Returns false if it
    /// does not exist or has already sent.
    pub fn abandon(&mut self, id: TxnId) -> bool {
        match self.txns.get(id) {
            Some(t) if t.origin == Origin::Local && t.txcmd & CREATE == 0 => {
                self.txns.remove(id);
                true
            }
            _ => false,
        }
    }

    /// Opens a transaction with `msg` (its cmd must carry CREATE and not
    /// REPLY) on `circuit`.
    pub fn open(&mut self, circuit: u64, msg: Message) -> Result<TxnId, SendError> {
        let id = self.begin(circuit, msg.hdr.cmd)?;
        match self.send(id, msg) {
            Ok(()) => Ok(id),
            Err(e) => {
                self.abandon(id);
                Err(e)
            }
        }
    }

    /// Sends `msg` inside transaction `id`. The msgid, circuit and REPLY bit
    /// are set from the transaction; the first message of our direction
    /// gets CREATE; a DELETE closes our direction, and the transaction
    /// ends once the peer's is closed too.
    pub fn send(&mut self, id: TxnId, mut msg: Message) -> Result<(), SendError> {
        if self.down.is_some() {
            return Err(SendError::LinkDown);
        }
        let t = *self.txns.get(id).ok_or(SendError::UnknownTxn(id))?;
        if t.tx_closed() {
            return Err(SendError::Closed(id));
        }
        crate::wire::validate(&msg)?;
        let mut c = msg.hdr.cmd & !(REPLY | CREATE);
        if t.origin == Origin::Remote {
            c |= REPLY;
        }
        if t.txcmd & CREATE == 0 {
            c |= CREATE;
        }
        msg.hdr.cmd = c;
        msg.hdr.msgid = t.msgid;
        msg.hdr.circuit = t.circuit;
        let refused_circ = c & DELETE != 0 && announces_circuit(&t);
        let circ_id = t.msgid;
        self.tx.push(&mut self.encoder, msg)?;
        if self
            .txns
            .mark_sent(id, c & (CREATE | DELETE))
            .is_some_and(|t| t.is_done())
        {
            self.free(id);
        }
        if refused_circ {
            self.release_held(circ_id);
        }
        Ok(())
    }

    /// Sends a message outside any transaction. Its msgid and circuit are
    /// sent as given; CREATE and DELETE are stripped.
    pub fn send_oneway(&mut self, mut msg: Message) -> Result<(), SendError> {
        if self.down.is_some() {
            return Err(SendError::LinkDown);
        }
        let cmd = msg.hdr.cmd & !(CREATE | DELETE);
        self.tx.push_as(&mut self.encoder, &mut msg, cmd)?;
        Ok(())
    }

    /// Sends a relayed message exactly as given (flags, msgid, circuit and
    /// error untouched; the salt and CRCs are made anew, a non-zero aux CRC
    /// is kept). No transaction is looked up or created: circuits relay
    /// without state.
    pub fn forward(&mut self, msg: Message) -> Result<(), SendError> {
        if self.down.is_some() {
            return Err(SendError::LinkDown);
        }
        self.tx.push(&mut self.encoder, msg)?;
        Ok(())
    }

    /// [`Link::forward`] of a frame given by parts (one being relayed from
    /// where it was read): its bytes are copied onto the queue.
    pub fn forward_frame(&mut self, frame: &FrameRef<'_>) -> Result<(), SendError> {
        if self.down.is_some() {
            return Err(SendError::LinkDown);
        }
        self.tx.push_frame(&mut self.encoder, frame)?;
        Ok(())
    }

    /// Closes our direction of `id` with an `LNK_ERROR` carrying `error`
    /// (`dmsg_state_reply`). Fails with [`SendError::Closed`] if our side is
    /// closed already, so a duplicate reply never reaches the wire.
    pub fn reply(&mut self, id: TxnId, error: u32) -> Result<(), SendError> {
        let mut m = Message::new(cmd::LNK_ERROR | DELETE);
        m.hdr.error = error;
        self.send(id, m)
    }

    /// Sends an `LNK_ERROR` carrying `error` in `id` without closing it
    /// (`dmsg_state_result`).
    pub fn result(&mut self, id: TxnId, error: u32) -> Result<(), SendError> {
        let mut m = Message::new(cmd::LNK_ERROR);
        m.hdr.error = error;
        self.send(id, m)
    }

    /// Answers a one-way message with a one-way `LNK_ERROR` carrying `error`,
    /// REPLY set unless the received message had it, same msgid and circuit
    /// (`dmsg_msg_reply` on a message without a transaction).
    pub fn reply_oneway(&mut self, to: &crate::wire::Header, error: u32) -> Result<(), SendError> {
        let flags = if to.cmd & REPLY == 0 { REPLY } else { 0 };
        self.send_oneway(lnk_error(flags, to.msgid, to.circuit, error))
    }

    /// The bytes waiting to be written, in order.
    pub fn pending_tx(&self) -> impl Iterator<Item = &[u8]> + Clone {
        self.tx.slices()
    }

    /// Number of bytes of [`Link::pending_tx`]: queued and not yet taken
    /// with [`Link::take_tx`].
    pub fn pending_len(&self) -> usize {
        self.tx.len()
    }

    /// Number of bytes waiting to be written: those of
    /// [`Link::pending_tx`] and those taken with [`Link::take_tx`] and not
    /// yet reported written.
    pub fn tx_len(&self) -> usize {
        self.tx.len() + self.tx_lent
    }

    /// Moves every byte of [`Link::pending_tx`] to the end of `into` and
    /// takes back the buffers `into` has finished with (see
    /// [`TxQueue::move_to`]), so that a driver can write them without
    /// holding the link. The moved bytes still count in [`Link::tx_len`]
    /// (the transmit-queue bound covers them) until reported written with
    /// [`Link::tx_written`], or until the link goes down.
    pub fn take_tx(&mut self, into: &mut TxQueue) {
        self.tx_lent += self.tx.len();
        self.tx.move_to(into);
    }

    /// Reports that `n` bytes taken with [`Link::take_tx`] were written.
    pub fn tx_written(&mut self, n: usize) {
        self.tx_lent = self.tx_lent.saturating_sub(n);
    }

    /// Marks `n` bytes of [`Link::pending_tx`] as written.
    pub fn consume_tx(&mut self, n: usize) {
        self.tx.consume(n);
    }

    // ----- circuits and inspection ---------------------------------------

    /// Declares what this link does with messages on circuit `id` (non-zero).
    pub fn add_circuit(&mut self, id: u64, role: CircuitRole) {
        if id != 0 {
            self.circuits.insert(id, role);
            if let Some(q) = self.held.remove(&id) {
                for m in q {
                    self.dispatch(m);
                }
            }
        }
    }

    /// The `LNK_CIRC` that announced circuit `id` was closed by us or is
    /// over without the circuit being declared: what was held for it is
    /// refused as on an unknown circuit.
    fn release_held(&mut self, id: u64) {
        if let Some(q) = self.held.remove(&id) {
            for m in q {
                self.violation(Violation::UnknownCircuit, &m);
            }
        }
    }

    /// Forgets circuit `id`; the transactions still open on it are failed
    /// with `error` (locally only: the circuit no longer reaches the peer).
    pub fn remove_circuit(&mut self, id: u64, error: u32) {
        if id == 0 || self.circuits.remove(&id).is_none() {
            return;
        }
        let on_it = self.txns.ids(|t| t.circuit == id);
        for t in on_it {
            self.txns.mark_sent(t, CREATE | DELETE);
            self.fail_txn(t, error, error);
        }
    }

    /// What circuit `id` is to this link.
    pub fn circuit_role(&self, id: u64) -> Option<CircuitRole> {
        if id == 0 {
            Some(CircuitRole::Endpoint)
        } else {
            self.circuits.get(&id).copied()
        }
    }

    /// The state of transaction `id`, while it lives.
    pub fn txn(&self, id: TxnId) -> Option<TxnInfo> {
        self.txns.get(id).copied()
    }

    /// Finds a live transaction by its wire identity.
    pub fn find_txn(&self, circuit: u64, origin: Origin, msgid: u64) -> Option<TxnInfo> {
        let id = self.txns.find(circuit, origin, msgid)?;
        self.txns.get(id).copied()
    }

    /// Number of live transactions on all circuits.
    pub fn txn_count(&self) -> usize {
        self.txns.len()
    }
}

#[cfg(test)]
mod tests;
