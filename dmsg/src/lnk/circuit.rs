//! Virtual circuits (STATE.md §7): forging with `LNK_CIRC`, relaying with
//! `head.circuit` rewritten per hop, endpoints, and teardown, sans I/O.
//!
//! A circuit is named on each link by the msgid of the `LNK_CIRC`
//! transaction that built it on that link; the two nodes of a link share
//! one namespace of circuit ids (some chosen by one side, some by the
//! other), so an id already in use on a link refuses a new `LNK_CIRC`
//! (§10 row 13) instead of replacing the old circuit.
//!
//! ```text
//!  forging (A opens a circuit to C's span through relay R)
//!
//!   A (Origin)            R (Relay)                        C (Accept)
//!    │ LNK_CIRC|CREATE     │                                 │
//!    │ msgid mA            │ pairs  near = (La, mA, tA)      │
//!    │ target = msgid of   │        far  = (Lb, mB, tB)      │
//!    │ the SPAN R sent A ─►│ LNK_CIRC|CREATE msgid mB        │
//!    │                     │ target = msgid of the SPAN ────►│ the span is C's own:
//!    │                     │ C sent R                        │ accept, circuit mB
//!    │                     │◄──────── LNK_ERROR|REPLY|CREATE │ is an endpoint
//!    │◄── result(tA, err) ─│ (the end-to-end ack)            │
//!    │                     │                                 │
//!    │ msg circuit mA ────►│ Event::Relay: circuit := mB ───►│ transactions on mB
//!    │◄──── circuit := mA ─│◄────────────────── circuit mB ──│
//!
//!  teardown (either end; a relay passes the DELETE on with its error)
//!
//!   A: DELETE on tA ───► R: reply(tB, err) ───► C: DELETE, reply(tB)
//!   A ◄── reply(tA) ◄─── R: REPLY|DELETE on tB ◄─┘
//!   R frees the pair (both circuit ids on both links) once tA and tB
//!   are both closed; an endpoint drops its circuit (aborting the
//!   transactions on it) as soon as it starts or sees the teardown.
//!
//!  lifetime: the pair dies (DELETE with DMSG_ERR_CANTCIRC, or the error of
//!  the lost span) when the span it was built on goes away: at A the
//!  targeted span, at R the source span or the relay SPAN A targeted, at C
//!  its own span or that relay SPAN. Link loss arrives as aborts of the
//!  LNK_CIRC transactions and tears down every circuit through the link.
//! ```

use super::{Hub, Idx, LinkId, Links, LnkError, NodeId, Role, Src};
use crate::link::{CircuitRole, SendError};
use crate::state::{TxnId, TxnInfo};
use crate::wire::cmd::{self, CREATE, DELETE, REPLY};
use crate::wire::{err, FrameRef, Header, LnkCirc, Message};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

/// One circuit as one link names it: the link, and the circuit id
/// (`head.circuit`) on that link.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CircuitId {
    /// The link the circuit runs over.
    pub link: LinkId,
    /// Its id on that link (the msgid of its `LNK_CIRC` there).
    pub id: u64,
}

/// What a circuit is to this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CircuitKind {
    /// We opened it ([`Hub::open_circuit`]); transactions end here.
    Origin,
    /// A peer opened it to a span of ours; transactions end here.
    Accept,
    /// We relay it between two links.
    Relay,
}

/// A circuit, as [`Hub::circuits`] shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CircuitView {
    /// Origin, endpoint or relay.
    pub kind: CircuitKind,
    /// Its id on the link toward the opener (for an origin: the only link).
    pub near: CircuitId,
    /// The `LNK_CIRC` transaction on `near.link`.
    pub near_txn: TxnId,
    /// A relay's id on the link toward the target.
    pub far: Option<CircuitId>,
    /// A relay's `LNK_CIRC` transaction on `far.link`.
    pub far_txn: Option<TxnId>,
    /// The node whose span it was built on.
    pub node: Option<NodeId>,
    /// The end-to-end acknowledgement arrived (origin, relay), or was sent
    /// (accept).
    pub acked: bool,
    /// Teardown has started.
    pub closing: bool,
}

/// Something that happened to a circuit ending at this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CircuitEvent {
    /// The far end accepted a circuit we opened (error 0).
    Up(CircuitId),
    /// A peer opened a circuit that ends here.
    Accepted(CircuitId),
    /// An endpoint circuit is gone; the transactions on it were aborted.
    Down {
        /// The circuit.
        circuit: CircuitId,
        /// The error that closed it (0 for an orderly close).
        error: u32,
    },
}

/// Why a circuit operation or a circuit message was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CircError {
    /// No span to build the circuit on (unknown node or msgid).
    NoSpan,
    /// `LNK_CIRC` target naming no SPAN we relay on that link, or one
    /// whose relay is already closing (§10 row 12): answered CANTCIRC.
    UnknownTarget(u64),
    /// `LNK_CIRC` whose msgid is a circuit id already in use on that link
    /// (§10 row 13): answered CANTCIRC.
    IdInUse(u64),
    /// `LNK_CIRC` on a non-zero circuit: circuits are built on circuit 0.
    Nested(u64),
    /// A second end-to-end acknowledgement on one circuit (§10 row 14):
    /// ignored.
    DuplicateAck(u64),
    /// A message on a relay circuit whose other half cannot be reached
    /// (§10 row 3): a CREATE is answered with LOSTLINK.
    PeerGone(u64),
    /// A message on a relay circuit whose next link's transmit queue is
    /// far over its limit (the peer there has not been reading): the
    /// circuit is torn down at both ends with LOSTLINK.
    Congested(u64),
    /// The link refused to register or open what the circuit needs.
    Send(SendError),
}

impl fmt::Display for CircError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CircError::NoSpan => f.write_str("no span to build the circuit on"),
            CircError::UnknownTarget(t) => {
                write!(f, "LNK_CIRC target {t:#x} names no open relayed SPAN")
            }
            CircError::IdInUse(i) => write!(f, "circuit id {i:#x} already in use on this link"),
            CircError::Nested(c) => write!(f, "LNK_CIRC sent on circuit {c:#x}"),
            CircError::DuplicateAck(i) => {
                write!(f, "second acknowledgement of circuit {i:#x}")
            }
            CircError::PeerGone(i) => write!(f, "circuit {i:#x}: the other half is gone"),
            CircError::Congested(i) => {
                write!(f, "circuit {i:#x}: the next link does not drain; torn down")
            }
            CircError::Send(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for CircError {}

impl From<SendError> for CircError {
    fn from(e: SendError) -> Self {
        CircError::Send(e)
    }
}

/// One `LNK_CIRC` transaction of a circuit.
#[derive(Clone, Copy, Debug)]
struct Half {
    link: LinkId,
    id: u64,
    txn: TxnId,
    /// The transaction still lives on the link.
    live: bool,
}

#[derive(Debug)]
struct Circ {
    kind: CircuitKind,
    near: Half,
    far: Option<Half>,
    /// The span link it was built on.
    span: Idx,
    node: Option<NodeId>,
    /// The relay SPAN (on `near.link`) the opener targeted.
    relay: Option<TxnId>,
    acked: bool,
    /// Teardown started (endpoint: circuit removed from the link).
    dead: bool,
}

/// The circuit tables of a hub.
#[derive(Debug, Default)]
pub(super) struct Circuits {
    map: BTreeMap<u64, Circ>,
    /// (link, circuit id) → circuit: every id in use on every link.
    wire: BTreeMap<(LinkId, u64), u64>,
    /// (span link, circuit): what dies with a span.
    by_span: BTreeSet<(Idx, u64)>,
    /// (link, relay SPAN txn, circuit): what dies with a relay.
    by_relay: BTreeSet<(LinkId, TxnId, u64)>,
    /// Circuits to tear down at the next [`Hub::reap_circuits`].
    doomed: Vec<(u64, u32)>,
    events: VecDeque<CircuitEvent>,
    next: u64,
}

fn lnk_error(flags: u32, msgid: u64, circuit: u64, error: u32) -> Message {
    let mut m = Message::new(cmd::LNK_ERROR | flags);
    m.hdr.msgid = msgid;
    m.hdr.circuit = circuit;
    m.hdr.error = error;
    m
}

/// The error a closing circuit passes on: the given one, or CANTCIRC.
pub(super) fn or_cantcirc(e: u32) -> u32 {
    if e == 0 {
        err::CANTCIRC
    } else {
        e
    }
}

impl Hub {
    // ----- public API ----------------------------------------------------

    /// Opens a circuit to node `node` through the link its best received
    /// span came in on: sends `LNK_CIRC|CREATE` with `target` = that
    /// span's msgid and registers the circuit on the link as an endpoint,
    /// so transactions can run on it at once (`Link::open(id, ..)`); the
    /// far end's acknowledgement arrives as [`CircuitEvent::Up`].
    pub fn open_circuit(
        &mut self,
        node: NodeId,
        links: &mut impl Links,
    ) -> Result<CircuitId, CircError> {
        let ni = self.node_idx(node).ok_or(CircError::NoSpan)?;
        let l = self
            .nodes
            .get(ni)
            .and_then(|n| {
                n.links.iter().copied().find(|&l| {
                    self.links
                        .get(l)
                        .is_some_and(|s| matches!(s.src, Src::Remote { .. }))
                })
            })
            .ok_or(CircError::NoSpan)?;
        self.open_circuit_on(l, links)
    }

    /// Opens a circuit on the span received on `link` as msgid `msgid`
    /// (the hammer2 shell's `circ <msgid>`, after [`Hub::findspan`]).
    pub fn open_circuit_to(
        &mut self,
        link: LinkId,
        msgid: u64,
        links: &mut impl Links,
    ) -> Result<CircuitId, CircError> {
        let l = self
            .links
            .iter()
            .find(|(_, s)| {
                matches!(s.src, Src::Remote { link: k, msgid: m, .. } if k == link && m == msgid)
            })
            .map(|(l, _)| l)
            .ok_or(CircError::NoSpan)?;
        self.open_circuit_on(l, links)
    }

    /// Closes a circuit ending here (origin or accepted): the transactions
    /// on it are aborted and its `LNK_CIRC` closed (DELETE with error 0).
    /// False if there is no such endpoint circuit or it is closing.
    pub fn close_circuit(&mut self, c: CircuitId, links: &mut impl Links) -> bool {
        let Some(&k) = self.circ.wire.get(&(c.link, c.id)) else {
            return false;
        };
        match self.circ.map.get(&k) {
            Some(x) if x.kind != CircuitKind::Relay && !x.dead => {}
            _ => return false,
        }
        self.endpoint_down(k, 0, err::LOSTLINK, 0, links);
        true
    }

    /// The circuit named `c` on its link.
    pub fn circuit(&self, c: CircuitId) -> Option<CircuitView> {
        let k = self.circ.wire.get(&(c.link, c.id))?;
        self.circ.map.get(k).map(view)
    }

    /// Every circuit this node takes part in, oldest first.
    pub fn circuits(&self) -> Vec<CircuitView> {
        self.circ.map.values().map(view).collect()
    }

    /// Number of circuits (endpoints and relayed pairs), closing ones
    /// included.
    pub fn circuit_count(&self) -> usize {
        self.circ.map.len()
    }

    /// Circuit ids in use on `link` (both directions).
    pub fn circuit_ids(&self, link: LinkId) -> Vec<u64> {
        self.circ
            .wire
            .range((link, 0)..=(link, u64::MAX))
            .map(|((_, id), _)| *id)
            .collect()
    }

    /// The next circuit event, if any.
    pub fn poll_circuit_event(&mut self) -> Option<CircuitEvent> {
        self.circ.events.pop_front()
    }

    /// Relays a message received on a relay circuit ([`Event::Relay`]
    /// of `link`): it goes out on the paired link with `head.circuit`
    /// rewritten, everything else untouched. If the other half cannot be
    /// reached, a CREATE is answered with `LNK_ERROR|REPLY|CREATE|DELETE`
    /// (LOSTLINK) on the circuit it came on, and the link lives.
    ///
    /// [`Event::Relay`]: crate::link::Event::Relay
    pub fn relay_message(
        &mut self,
        link: LinkId,
        mut msg: Message,
        links: &mut impl Links,
    ) -> Result<(), LnkError> {
        let hdr = msg.hdr;
        self.relay_to_other_half(link, &hdr, links, |links, far| {
            msg.hdr.circuit = far.id;
            links.forward(far.link, msg)
        })
    }

    /// [`Hub::relay_message`] of a frame given by parts
    /// ([`Event::RelayFrame`]): its bytes are copied onto the paired
    /// link's queue ([`Links::forward_frame`]).
    ///
    /// [`Event::RelayFrame`]: crate::link::Event::RelayFrame
    pub fn relay_frame(
        &mut self,
        link: LinkId,
        frame: &FrameRef<'_>,
        links: &mut impl Links,
    ) -> Result<(), LnkError> {
        self.relay_to_other_half(link, &frame.hdr, links, |links, far| {
            let mut out = *frame;
            out.hdr.circuit = far.id;
            links.forward_frame(far.link, &out)
        })
    }

    /// Where traffic received on relay circuit `circuit` of `link` goes:
    /// the other half of the pair, if the circuit is a relay that has one.
    pub fn relay_route(&self, link: LinkId, circuit: u64) -> Option<CircuitId> {
        let key = self.circ.wire.get(&(link, circuit))?;
        let x = self
            .circ
            .map
            .get(key)
            .filter(|x| x.kind == CircuitKind::Relay)?;
        let far = x.far?;
        let o = if x.near.link == link && x.near.id == circuit {
            far
        } else {
            x.near
        };
        Some(CircuitId {
            link: o.link,
            id: o.id,
        })
    }

    /// Relaying: finds the other half of the circuit `hdr` came on and
    /// has `send` queue it there.
    fn relay_to_other_half<L: Links>(
        &mut self,
        link: LinkId,
        hdr: &Header,
        links: &mut L,
        send: impl FnOnce(&mut L, CircuitId) -> Result<(), SendError>,
    ) -> Result<(), LnkError> {
        let c = hdr.circuit;
        let key = self.circ.wire.get(&(link, c)).copied();
        let sent = match self.relay_route(link, c) {
            Some(o) => send(links, o),
            None => Err(SendError::LinkDown),
        };
        match sent {
            Ok(()) => Ok(()),
            Err(SendError::Congested) => {
                if let Some(k) = key.filter(|k| self.circ.map.get(k).is_some_and(|x| !x.dead)) {
                    self.circ.doomed.push((k, err::LOSTLINK));
                    self.reap_circuits(links);
                }
                Err(LnkError::Circuit(CircError::Congested(c)))
            }
            Err(_) => {
                Self::refuse_on_circuit(link, hdr, err::LOSTLINK, links);
                Err(LnkError::Circuit(CircError::PeerGone(c)))
            }
        }
    }

    // ----- internals -------------------------------------------------------

    /// Answers a CREATE (no REPLY) received on circuit `hdr.circuit` with
    /// `LNK_ERROR|REPLY|CREATE|DELETE` carrying `error` on that circuit.
    pub(super) fn refuse_on_circuit(
        link: LinkId,
        hdr: &Header,
        error: u32,
        links: &mut impl Links,
    ) {
        if hdr.cmd & CREATE != 0 && hdr.cmd & REPLY == 0 {
            let m = lnk_error(REPLY | CREATE | DELETE, hdr.msgid, hdr.circuit, error);
            let _ = links.forward(link, m);
        }
    }

    fn open_circuit_on(&mut self, l: Idx, links: &mut impl Links) -> Result<CircuitId, CircError> {
        let (link, msgid, node) = match self.links.get(l) {
            Some(s) => match s.src {
                Src::Remote { link, msgid, .. } => {
                    (link, msgid, self.nodes.get(s.node).map(|n| n.id))
                }
                Src::Local(_) => return Err(CircError::NoSpan),
            },
            None => return Err(CircError::NoSpan),
        };
        let (txn, id) = self.open_circ_txn(link, msgid, links)?;
        if let Err(e) = links.add_circuit(link, id, CircuitRole::Endpoint) {
            let _ = links.reply(link, txn, err::CANTCIRC);
            self.track(link, txn, Role::Closing);
            return Err(e.into());
        }
        let near = Half {
            link,
            id,
            txn,
            live: true,
        };
        self.insert_circ(Circ {
            kind: CircuitKind::Origin,
            near,
            far: None,
            span: l,
            node,
            relay: None,
            acked: false,
            dead: false,
        });
        Ok(CircuitId { link, id })
    }

    /// Opens an `LNK_CIRC` on `link` whose msgid is not a circuit id in use
    /// there (a colliding one is closed at once and another opened).
    fn open_circ_txn(
        &mut self,
        link: LinkId,
        target: u64,
        links: &mut impl Links,
    ) -> Result<(TxnId, u64), CircError> {
        let body = LnkCirc {
            reserved01: 0,
            target,
        };
        for _ in 0..8 {
            let (txn, id) = links.open(link, Message::with_body(CREATE, &body))?;
            if !self.circ.wire.contains_key(&(link, id)) {
                return Ok((txn, id));
            }
            let _ = links.reply(link, txn, err::CANTCIRC);
            self.track(link, txn, Role::Closing);
        }
        Err(CircError::IdInUse(0))
    }

    fn insert_circ(&mut self, c: Circ) -> u64 {
        let k = self.circ.next;
        self.circ.next += 1;
        self.circ.wire.insert((c.near.link, c.near.id), k);
        self.track(c.near.link, c.near.txn, Role::Circ(k));
        if let Some(f) = c.far {
            self.circ.wire.insert((f.link, f.id), k);
            self.track(f.link, f.txn, Role::Circ(k));
        }
        self.circ.by_span.insert((c.span, k));
        if let Some(t) = c.relay {
            self.circ.by_relay.insert((c.near.link, t, k));
        }
        self.circ.map.insert(k, c);
        k
    }

    /// Refuses the peer's `LNK_CIRC` `txn` with CANTCIRC.
    fn refuse_circ(
        &mut self,
        link: LinkId,
        txn: TxnId,
        e: CircError,
        links: &mut impl Links,
    ) -> Result<(), LnkError> {
        let _ = links.reply(link, txn, err::CANTCIRC);
        self.track(link, txn, Role::Closing);
        Err(LnkError::Circuit(e))
    }

    /// A remote `LNK_CIRC|CREATE` on circuit 0 of `link`.
    pub(super) fn circ_create(
        &mut self,
        link: LinkId,
        msg: &Message,
        info: &TxnInfo,
        links: &mut impl Links,
    ) -> Result<(), LnkError> {
        let body = match msg.body::<LnkCirc>() {
            Ok(b) => b,
            Err(e) => {
                let _ = links.reply(link, info.id, err::PARAM);
                self.track(link, info.id, Role::Closing);
                return Err(LnkError::Body(e));
            }
        };
        if msg.hdr.cmd & DELETE != 0 {
            // Opened and closed at once: nothing to build.
            let _ = links.reply(link, info.id, err::CANTCIRC);
            self.track(link, info.id, Role::Closing);
            return Ok(());
        }
        let m_a = info.msgid;
        if self.circ.wire.contains_key(&(link, m_a)) {
            return self.refuse_circ(link, info.id, CircError::IdInUse(m_a), links);
        }
        // The SPAN we relay on this link under msgid `target`.
        let rec = self
            .ports
            .get(&link)
            .and_then(|p| p.conn.as_ref())
            .and_then(|c| {
                c.relays
                    .values()
                    .flatten()
                    .find(|r| r.msgid == body.target)
                    .copied()
            })
            .filter(|r| matches!(self.txns.get(&(link, r.txn)), Some(Role::RelayOut(_))));
        let Some(rec) = rec else {
            return self.refuse_circ(link, info.id, CircError::UnknownTarget(body.target), links);
        };
        let Some(src) = self.links.get(rec.src).map(|s| (s.src, s.node)) else {
            return self.refuse_circ(link, info.id, CircError::UnknownTarget(body.target), links);
        };
        let node = self.nodes.get(src.1).map(|n| n.id);
        let near = Half {
            link,
            id: m_a,
            txn: info.id,
            live: true,
        };
        match src.0 {
            Src::Local(_) => {
                // The span is ours: the circuit ends here.
                if let Err(e) = links.add_circuit(link, m_a, CircuitRole::Endpoint) {
                    return self.refuse_circ(link, info.id, e.into(), links);
                }
                let _ = links.result(link, info.id, 0);
                self.insert_circ(Circ {
                    kind: CircuitKind::Accept,
                    near,
                    far: None,
                    span: rec.src,
                    node,
                    relay: Some(rec.txn),
                    acked: true,
                    dead: false,
                });
                self.circ
                    .events
                    .push_back(CircuitEvent::Accepted(CircuitId { link, id: m_a }));
                Ok(())
            }
            Src::Remote {
                link: lb,
                msgid: m_s,
                ..
            } => {
                let opened = self.open_circ_txn(lb, m_s, links);
                let (tb, m_b) = match opened {
                    Ok(x) => x,
                    Err(e) => {
                        return self.refuse_circ(link, info.id, e, links);
                    }
                };
                let reg = links
                    .add_circuit(link, m_a, CircuitRole::Relay)
                    .and_then(|()| links.add_circuit(lb, m_b, CircuitRole::Relay));
                if let Err(e) = reg {
                    links.remove_circuit(link, m_a, err::CANTCIRC);
                    let _ = links.reply(lb, tb, err::CANTCIRC);
                    self.track(lb, tb, Role::Closing);
                    return self.refuse_circ(link, info.id, e.into(), links);
                }
                self.insert_circ(Circ {
                    kind: CircuitKind::Relay,
                    near,
                    far: Some(Half {
                        link: lb,
                        id: m_b,
                        txn: tb,
                        live: true,
                    }),
                    span: rec.src,
                    node,
                    relay: Some(rec.txn),
                    acked: false,
                    dead: false,
                });
                Ok(())
            }
        }
    }

    /// A message inside an `LNK_CIRC` transaction of circuit `k`.
    pub(super) fn circ_message(
        &mut self,
        link: LinkId,
        msg: &Message,
        info: &TxnInfo,
        k: u64,
        links: &mut impl Links,
    ) -> Result<(), LnkError> {
        let c = msg.hdr.cmd;
        let e = msg.hdr.error;
        let Some(x) = self.circ.map.get_mut(&k) else {
            return Ok(());
        };
        let on_near = x.near.link == link && x.near.txn == info.id;
        match x.kind {
            CircuitKind::Origin | CircuitKind::Accept => {
                if c & DELETE != 0 {
                    // The other end closed or refused it.
                    let dead = x.dead;
                    if !dead {
                        self.endpoint_down(k, 0, or_lost(e), e, links);
                    } else {
                        let _ = links.reply(link, info.id, 0);
                    }
                } else if c & CREATE != 0 && x.kind == CircuitKind::Origin {
                    if x.acked {
                        return Err(LnkError::Circuit(CircError::DuplicateAck(x.near.id)));
                    }
                    x.acked = true;
                    if e == 0 && !x.dead {
                        let id = CircuitId {
                            link: x.near.link,
                            id: x.near.id,
                        };
                        self.circ.events.push_back(CircuitEvent::Up(id));
                    }
                }
                Ok(())
            }
            CircuitKind::Relay => {
                let Some(far) = x.far else {
                    return Ok(());
                };
                let other = if on_near { far } else { x.near };
                if c & DELETE != 0 {
                    // Pass the close on; our own side of this half is
                    // closed when the other side answers.
                    let _ = links.reply(other.link, other.txn, e);
                    return Ok(());
                }
                if !on_near && c & CREATE != 0 {
                    // The end-to-end acknowledgement.
                    if x.acked {
                        return Err(LnkError::Circuit(CircError::DuplicateAck(far.id)));
                    }
                    x.acked = true;
                    if !x.dead {
                        let _ = links.result(x.near.link, x.near.txn, e);
                    }
                }
                Ok(())
            }
        }
    }

    /// Circuit `k` is over at this endpoint: drop it from the link
    /// (aborting its transactions with `abort`), close our `LNK_CIRC`
    /// with `reply`, report `Down` with `event`.
    fn endpoint_down(
        &mut self,
        k: u64,
        reply: u32,
        abort: u32,
        event: u32,
        links: &mut impl Links,
    ) {
        let Some(x) = self.circ.map.get_mut(&k) else {
            return;
        };
        if x.dead {
            return;
        }
        x.dead = true;
        let n = x.near;
        links.remove_circuit(n.link, n.id, abort);
        if n.live {
            let _ = links.reply(n.link, n.txn, reply);
        }
        self.circ.events.push_back(CircuitEvent::Down {
            circuit: CircuitId {
                link: n.link,
                id: n.id,
            },
            error: event,
        });
    }

    /// The `LNK_CIRC` transaction `txn` of circuit `k` was freed by `link`.
    pub(super) fn circ_txn_closed(
        &mut self,
        link: LinkId,
        txn: TxnId,
        k: u64,
        links: &mut impl Links,
    ) {
        let Some(x) = self.circ.map.get_mut(&k) else {
            return;
        };
        let mut other = None;
        if x.near.link == link && x.near.txn == txn {
            x.near.live = false;
            other = x.far;
        } else if let Some(f) = x.far.as_mut().filter(|f| f.link == link && f.txn == txn) {
            f.live = false;
            other = Some(x.near);
        }
        let over = !x.near.live && x.far.is_none_or(|f| !f.live);
        if let Some(o) = other.filter(|o| o.live) {
            // Normally closed already; make sure the other side hears.
            let _ = links.reply(o.link, o.txn, err::CANTCIRC);
        }
        if over {
            self.free_circ(k, links);
        }
    }

    fn free_circ(&mut self, k: u64, links: &mut impl Links) {
        let Some(x) = self.circ.map.remove(&k) else {
            return;
        };
        let halves = [Some(x.near), x.far];
        for h in halves.into_iter().flatten() {
            if self.circ.wire.get(&(h.link, h.id)) == Some(&k) {
                self.circ.wire.remove(&(h.link, h.id));
            }
            links.remove_circuit(h.link, h.id, err::LOSTLINK);
        }
        self.circ.by_span.remove(&(x.span, k));
        if let Some(t) = x.relay {
            self.circ.by_relay.remove(&(x.near.link, t, k));
        }
        if !x.dead && x.kind != CircuitKind::Relay {
            self.circ.events.push_back(CircuitEvent::Down {
                circuit: CircuitId {
                    link: x.near.link,
                    id: x.near.id,
                },
                error: err::LOSTLINK,
            });
        }
    }

    /// Span link `l` is going away: its circuits die with `error`.
    pub(super) fn circ_span_gone(&mut self, l: Idx, error: u32) {
        if self.circ.by_span.is_empty() {
            return;
        }
        let ks: Vec<u64> = self
            .circ
            .by_span
            .range((l, 0)..=(l, u64::MAX))
            .map(|(_, k)| *k)
            .collect();
        for k in ks {
            self.circ.by_span.remove(&(l, k));
            self.circ.doomed.push((k, error));
        }
    }

    /// The relay SPAN `txn` on `link` is gone: circuits built on it die.
    pub(super) fn circ_relay_gone(&mut self, link: LinkId, txn: TxnId) {
        if self.circ.by_relay.is_empty() {
            return;
        }
        let ks: Vec<u64> = self
            .circ
            .by_relay
            .range((link, txn, 0)..=(link, txn, u64::MAX))
            .map(|(_, _, k)| *k)
            .collect();
        for k in ks {
            self.circ.by_relay.remove(&(link, txn, k));
            self.circ.doomed.push((k, err::CANTCIRC));
        }
    }

    /// `link` is gone: every circuit through it dies.
    pub(super) fn circ_link_gone(&mut self, link: LinkId, links: &mut impl Links) {
        let ks: BTreeSet<u64> = self
            .circ
            .wire
            .range((link, 0)..=(link, u64::MAX))
            .map(|(_, k)| *k)
            .collect();
        for k in ks {
            if let Some(x) = self.circ.map.get_mut(&k) {
                for h in std::iter::once(&mut x.near).chain(x.far.as_mut()) {
                    if h.link == link {
                        h.live = false;
                    }
                }
            }
            self.circ.doomed.push((k, err::LOSTLINK));
        }
        self.reap_circuits(links);
    }

    /// Tears down the circuits doomed since the last call.
    pub(super) fn reap_circuits(&mut self, links: &mut impl Links) {
        while let Some((k, error)) = self.circ.doomed.pop() {
            let Some(x) = self.circ.map.get_mut(&k) else {
                continue;
            };
            match x.kind {
                CircuitKind::Origin | CircuitKind::Accept => {
                    self.endpoint_down(k, error, error, error, links);
                }
                CircuitKind::Relay => {
                    x.dead = true;
                    let halves = [Some(x.near), x.far];
                    for h in halves.into_iter().flatten().filter(|h| h.live) {
                        let _ = links.reply(h.link, h.txn, error);
                    }
                }
            }
            let over = self
                .circ
                .map
                .get(&k)
                .is_some_and(|x| !x.near.live && x.far.is_none_or(|f| !f.live));
            if over {
                self.free_circ(k, links);
            }
        }
    }
}

fn or_lost(e: u32) -> u32 {
    if e == 0 {
        err::LOSTLINK
    } else {
        e
    }
}

fn view(x: &Circ) -> CircuitView {
    CircuitView {
        kind: x.kind,
        near: CircuitId {
            link: x.near.link,
            id: x.near.id,
        },
        near_txn: x.near.txn,
        far: x.far.map(|f| CircuitId {
            link: f.link,
            id: f.id,
        }),
        far_txn: x.far.map(|f| f.txn),
        node: x.node,
        acked: x.acked,
        closing: x.dead,
    }
}
