//! The LNK layer (STATE.md §9): LNK_CONN, the span registry, relay
//! selection, node events and the tree dump, sans I/O.
//!
//! A [`Hub`] is the LNK state of one node. It is fed the events of the
//! node's links ([`Hub::on_event`]) and talks back to them through the
//! small [`Links`] trait, implemented by the simulator ([`crate::sim`]) over
//! in-memory [`crate::link::Link`]s and by the threaded driver over sockets.
//! Relay decisions are deferred: events only mark what changed, and
//! [`Hub::signal`] (the C library's `dmsg_msg_lnk_signal`) rescans exactly
//! that, so a burst of messages costs one scan per touched node.
//!
//! ```text
//!  Hub (one per node, no globals)
//!   ├─ clusters  BTreeMap (peer_type, pfs_clid, cl_label) ─► Cluster
//!   │              └─ nodes  BTreeMap (fs_label, pfs_fsid) ─► Node
//!   │                   └─ links  sorted by (dist, rnss, seq), best first
//!   │                        one per received LNK_SPAN, or a local span
//!   ├─ ports     BTreeMap LinkId ─► Port (one per transport link)
//!   │              └─ conn: the peer's LNK_CONN (filters, media)
//!   │                   └─ relays  node ─► [RelayRec; ≤ max_relays]
//!   │                        one per LNK_SPAN we opened on this link,
//!   │                        each naming the span link it copies
//!   ├─ media     mediaid ─► refcount, volconf slots
//!   └─ txns      (LinkId, TxnId) ─► role (conn, span in, relay out, ...)
//!
//!  span arrives/leaves ─► node dirty ─┐
//!  conn arrives ─────────► conn dirty ─┼─► signal(): scan (node × conn)
//!                                      │   only for what is dirty
//!  conn leaves ─► its relays closed now┘
//! ```

pub mod circuit;
mod slab;
mod tree;

use crate::link::{CircuitRole, Event, SendError};
use crate::state::{Origin, TxnId, TxnInfo, Violation};
use crate::wire::body::BodyError;
use crate::wire::cmd::{self, CREATE, DELETE};
use crate::wire::constants::SPAN_MAXDIST;
use crate::wire::{
    err, FrameRef, Header, Label, LnkConn, LnkSpan, LnkVolconf, Message, Uuid, VolData,
};
use slab::{FxMap, Slab};
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::Arc;

pub use circuit::{CircError, CircuitEvent, CircuitId, CircuitKind, CircuitView};
pub use tree::{NodeView, RelayView, SpanRef};

/// Names one transport link (one iocom) of a node. Chosen by the caller;
/// never reuse an id while the hub may still know it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LinkId(pub u64);

/// Names a node entry of the registry for as long as it lives; a new entry
/// for the same PFS gets a new id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub u64);

/// Names a span registered locally with [`Hub::add_local_span`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LocalSpanId(pub u64);

/// What the hub needs from the links of its node. Each method acts on the
/// link `link` as the [`crate::link::Link`] method of the same name does.
pub trait Links {
    /// Opens a transaction on circuit 0 with `msg` (CREATE, no REPLY);
    /// returns its id and wire msgid.
    fn open(&mut self, link: LinkId, msg: Message) -> Result<(TxnId, u64), SendError>;
    /// Sends `msg` inside transaction `txn`.
    fn send(&mut self, link: LinkId, txn: TxnId, msg: Message) -> Result<(), SendError>;
    /// Closes our side of `txn` with an `LNK_ERROR` carrying `error`.
    fn reply(&mut self, link: LinkId, txn: TxnId, error: u32) -> Result<(), SendError>;
    /// Sends an `LNK_ERROR` carrying `error` in `txn`, leaving it open.
    fn result(&mut self, link: LinkId, txn: TxnId, error: u32) -> Result<(), SendError>;
    /// Answers a one-way message with a one-way `LNK_ERROR`.
    fn reply_oneway(&mut self, link: LinkId, to: &Header, error: u32) -> Result<(), SendError>;
    /// Sends `msg` exactly as given (`Link::forward`): relayed circuit
    /// traffic and answers on a circuit. The default refuses, so a driver
    /// without circuit support refuses circuits instead of breaking them.
    fn forward(&mut self, link: LinkId, msg: Message) -> Result<(), SendError> {
        let _ = (link, msg);
        Err(SendError::LinkDown)
    }
    /// [`Links::forward`] of a frame given by parts
    /// (`Link::forward_frame`). The default forwards it as a message.
    fn forward_frame(&mut self, link: LinkId, frame: &FrameRef<'_>) -> Result<(), SendError> {
        self.forward(link, frame.to_message())
    }
    /// Declares circuit `id` on `link` (`Link::add_circuit`). The default
    /// refuses (circuits are then answered with `DMSG_ERR_CANTCIRC`).
    fn add_circuit(&mut self, link: LinkId, id: u64, role: CircuitRole) -> Result<(), SendError> {
        let _ = (link, id, role);
        Err(SendError::LinkDown)
    }
    /// Forgets circuit `id` on `link`, failing its transactions locally
    /// with `error` (`Link::remove_circuit`).
    fn remove_circuit(&mut self, link: LinkId, id: u64, error: u32) {
        let _ = (link, id, error);
    }
}

/// Settings of a [`Hub`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HubConfig {
    /// This node's random sub-sort value, added to the rnss of every span
    /// it relays (the C library's `DMsgRNSS`).
    pub rnss: u32,
    /// Span links relayed per node per connection (the C code's evident
    /// intent is 2; its off-by-one relays 1).
    pub max_relays: usize,
}

impl HubConfig {
    /// Settings with the given rnss and 2 relays per node per connection.
    pub fn new(rnss: u32) -> HubConfig {
        HubConfig {
            rnss,
            max_relays: 2,
        }
    }
}

/// Node operation of a [`NodeEvent`] (`DMSG_NODEOP_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeOp {
    /// The first span of a node arrived (`DMSG_NODEOP_ADD`).
    Add,
    /// The last span of a node went away (`DMSG_NODEOP_DEL`).
    Del,
}

impl NodeOp {
    /// The C value, `DMSG_NODEOP_ADD` or `DMSG_NODEOP_DEL`.
    pub fn code(self) -> i32 {
        match self {
            NodeOp::Add => crate::wire::constants::NODEOP_ADD,
            NodeOp::Del => crate::wire::constants::NODEOP_DEL,
        }
    }
}

/// A node appeared or went away.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeEvent {
    /// ADD or DEL.
    pub op: NodeOp,
    /// The registry entry.
    pub node: NodeId,
    /// The span body that created the node: its identity (peer_type,
    /// pfs_type, pfs_clid, pfs_fsid, labels) and, for `PEER_BLOCK`, its
    /// media block. dist and rnss are those of that first span.
    pub span: Arc<LnkSpan>,
    /// The node's opaque slot ([`Hub::set_node_opaque`]): 0 on ADD, the
    /// stored value on DEL (the C layer keeps `node->opaque` here).
    pub opaque: usize,
}

/// What the hub reports besides its work on the links.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HubEvent {
    /// A node event.
    Node(NodeEvent),
    /// A valid `LNK_VOLCONF` arrived inside a connection (hook for the
    /// volume-configuration workers).
    Volconf {
        /// The link it came on.
        link: LinkId,
        /// The media group of that connection.
        mediaid: Uuid,
        /// The slot, 0..256.
        index: u16,
        /// The configuration of that slot.
        copy: VolData,
    },
    /// The last connection of a media group went away.
    MediaGone(Uuid),
}

/// A refused LNK input. The hub has already answered on the wire where the
/// protocol allows it; the links and the node keep working.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LnkError {
    /// `LNK_CONN` or `LNK_SPAN` outside a transaction (STATE.md §10 rows 9,
    /// 10): answered with a one-way `LNK_ERROR` (`DMSG_ERR_PARAM`).
    OneWay {
        /// The `cmd` word received.
        cmd: u32,
    },
    /// A body shorter than its struct: the transaction is refused.
    Body(BodyError),
    /// A second `LNK_CONN` on a link that has one open: refused.
    SecondConn,
    /// `LNK_VOLCONF` with a slot index outside 0..256: ignored.
    VolconfIndex(i32),
    /// `LNK_VOLCONF` with an empty or unterminated path: ignored.
    VolconfPath,
    /// A circuit input was refused (answered on the wire where the
    /// protocol allows it).
    Circuit(CircError),
    /// The link refused a message (for example a second DELETE, §10 row
    /// 11); nothing reached the registry.
    Violation {
        /// What the link found.
        violation: Violation,
        /// The `cmd` word of the refused message.
        cmd: u32,
    },
}

impl fmt::Display for LnkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LnkError::OneWay { cmd } => write!(
                f,
                "{} ({cmd:#010x}) outside a transaction",
                cmd::basecmd_str(*cmd)
            ),
            LnkError::Body(e) => write!(f, "{e}"),
            LnkError::SecondConn => f.write_str("second LNK_CONN on one link"),
            LnkError::VolconfIndex(i) => write!(f, "LNK_VOLCONF: illegal index {i}"),
            LnkError::VolconfPath => f.write_str("LNK_VOLCONF: illegal path"),
            LnkError::Circuit(e) => write!(f, "{e}"),
            LnkError::Violation { violation, cmd } => {
                write!(f, "{violation} ({})", cmd::basecmd_str(*cmd))
            }
        }
    }
}

impl std::error::Error for LnkError {}

/// Whether [`Hub::on_event`] consumed an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handled {
    /// The LNK layer dealt with it.
    Done,
    /// Not LNK business (DBG, circuits, user transactions, relayed
    /// circuit traffic): hand it on.
    NotMine,
}

/// Counts of registry entries and of the work done, for tests and benches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HubStats {
    /// Clusters.
    pub clusters: usize,
    /// Nodes.
    pub nodes: usize,
    /// Span links (received spans and local spans).
    pub links: usize,
    /// Live relays (spans we sent).
    pub relays: usize,
    /// Open peer connections.
    pub conns: usize,
    /// Media groups.
    pub media: usize,
    /// Transactions the hub tracks on all links.
    pub txns: usize,
    /// Relays opened since creation.
    pub relays_opened: u64,
    /// Relays closed by us since creation.
    pub relays_closed: u64,
    /// (node, connection) selections evaluated since creation.
    pub scans: u64,
    /// Selections the C library would have evaluated for the same signals
    /// (every node × every connection on each signal that had work).
    pub c_scans: u64,
}

type Idx = u32;

/// Where a span link came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Src {
    /// A received LNK_SPAN transaction.
    Remote {
        link: LinkId,
        txn: TxnId,
        msgid: u64,
    },
    /// [`Hub::add_local_span`].
    Local(LocalSpanId),
}

impl Src {
    fn link(&self) -> Option<LinkId> {
        match self {
            Src::Remote { link, .. } => Some(*link),
            Src::Local(_) => None,
        }
    }
}

/// `h2span_link`.
#[derive(Debug)]
struct SpanLink {
    node: Idx,
    src: Src,
    dist: u32,
    rnss: u32,
    seq: u64,
    body: Arc<LnkSpan>,
}

impl SpanLink {
    fn key(&self) -> (u32, u32, u64) {
        (self.dist, self.rnss, self.seq)
    }
}

type ClusterKey = (u8, Uuid, Label<128>);
type NodeKey = (Label<128>, Uuid);

/// `h2span_cluster`.
#[derive(Debug)]
struct Cluster {
    key: ClusterKey,
    nodes: BTreeMap<NodeKey, Idx>,
}

/// `h2span_node`.
#[derive(Debug)]
struct Node {
    id: NodeId,
    cluster: Idx,
    /// The body of the first span, dist and rnss as received.
    body: Arc<LnkSpan>,
    /// Span links, best first.
    links: Vec<Idx>,
    opaque: usize,
    dirty: bool,
}

/// One span we relay on a connection.
#[derive(Clone, Copy, Debug)]
struct RelayRec {
    src: Idx,
    txn: TxnId,
    msgid: u64,
}

/// The filter fields of a received `LNK_CONN`.
#[derive(Debug)]
struct Conn {
    txn: TxnId,
    peer_mask: u64,
    pfs_mask: u64,
    peer_type: u8,
    pfs_clid: Uuid,
    cl_label: Label<128>,
    mediaid: Uuid,
    dirty: bool,
    relays: FxMap<Idx, Vec<RelayRec>>,
}

/// One transport link of the node.
#[derive(Debug, Default)]
struct Port {
    via: i64,
    conn: Option<Conn>,
    /// Transactions of this link that the hub tracks.
    txns: usize,
}

/// A media group (`h2span_media`).
#[derive(Debug, Default)]
struct Media {
    refs: u32,
    config: BTreeMap<u16, VolData>,
}

/// What a transaction is to the hub.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// The peer's LNK_CONN.
    ConnIn,
    /// Our LNK_CONN ([`Hub::open_conn`]).
    ConnOut,
    /// A received LNK_SPAN, registered as span link `Idx`.
    SpanIn(Idx),
    /// A SPAN we relay, for node `Idx`.
    RelayOut(Idx),
    /// An `LNK_CIRC` of circuit `u64` ([`circuit`]).
    Circ(u64),
    /// Closed on our side by the hub; waiting for the link to free it.
    Closing,
}

/// The LNK state of one node: see the module documentation.
#[derive(Debug)]
pub struct Hub {
    cfg: HubConfig,
    clusters: BTreeMap<ClusterKey, Idx>,
    cluster_slab: Slab<Cluster>,
    nodes: Slab<Node>,
    links: Slab<SpanLink>,
    ports: BTreeMap<LinkId, Port>,
    media: BTreeMap<Uuid, Media>,
    txns: FxMap<(LinkId, TxnId), Role>,
    local: BTreeMap<LocalSpanId, Idx>,
    events: VecDeque<HubEvent>,
    dirty_nodes: Vec<Idx>,
    dirty_conns: Vec<LinkId>,
    scratch: Vec<Idx>,
    next_seq: u64,
    next_node: u64,
    next_local: u64,
    relay_count: usize,
    relays_opened: u64,
    relays_closed: u64,
    scans: u64,
    c_scans: u64,
    circ: circuit::Circuits,
}

/// Bit `t` of `mask`; types of 64 and more match nothing (STATE.md §10
/// row 16: the C code shifts out of range).
fn has_bit(mask: u64, t: u8) -> bool {
    t < 64 && mask & (1u64 << t) != 0
}

/// A label as the C code sees it after forcing `label[127] = 0`.
fn terminated(l: &Label<128>) -> Label<128> {
    Label::truncated(l.as_bytes())
}

impl Hub {
    /// An empty hub.
    pub fn new(cfg: HubConfig) -> Hub {
        Hub {
            cfg,
            clusters: BTreeMap::new(),
            cluster_slab: Slab::default(),
            nodes: Slab::default(),
            links: Slab::default(),
            ports: BTreeMap::new(),
            media: BTreeMap::new(),
            txns: FxMap::default(),
            local: BTreeMap::new(),
            events: VecDeque::new(),
            dirty_nodes: Vec::new(),
            dirty_conns: Vec::new(),
            scratch: Vec::new(),
            next_seq: 1,
            next_node: 1,
            next_local: 1,
            relay_count: 0,
            relays_opened: 0,
            relays_closed: 0,
            scans: 0,
            c_scans: 0,
            circ: circuit::Circuits::default(),
        }
    }

    /// The settings.
    pub fn config(&self) -> HubConfig {
        self.cfg
    }

    /// This node's rnss.
    pub fn rnss(&self) -> u32 {
        self.cfg.rnss
    }

    // ----- links ----------------------------------------------------------

    /// Registers a transport link; `via` labels it in the tree dump (the C
    /// layer uses the socket fd). Links are also registered implicitly by
    /// their first event, with via -1.
    pub fn add_link(&mut self, link: LinkId, via: i64) {
        self.ports.entry(link).or_default().via = via;
    }

    /// Opens our `LNK_CONN` on `link`, as `dmsg_master_service` does; the
    /// hub then answers its replies (a DELETE from the peer closes it).
    pub fn open_conn(
        &mut self,
        link: LinkId,
        conn: &LnkConn,
        links: &mut impl Links,
    ) -> Result<TxnId, SendError> {
        let (txn, _) = links.open(link, Message::with_body(CREATE, conn))?;
        self.track(link, txn, Role::ConnOut);
        Ok(txn)
    }

    /// Forgets `link` entirely, as if it had been lost: its connection and
    /// the relays on it go (nothing more is sent on it), the spans that
    /// came on it are removed (their relays on other links are closed).
    /// Normally unnecessary: link loss arrives as ordinary DELETEs and then
    /// [`Event::Down`], which calls this.
    pub fn remove_link(&mut self, link: LinkId, links: &mut impl Links) {
        if !self.ports.contains_key(&link) {
            return;
        }
        self.conn_teardown(link, links, false);
        self.circ_link_gone(link, links);
        let tracked = self.ports.get(&link).map_or(0, |p| p.txns);
        if tracked > 0 {
            let mut mine: Vec<(TxnId, Role)> = self
                .txns
                .iter()
                .filter(|((l, _), _)| *l == link)
                .map(|((_, t), r)| (*t, *r))
                .collect();
            mine.sort_by_key(|(t, _)| *t);
            for (t, role) in mine {
                if let Role::SpanIn(l) = role {
                    self.remove_span_link(l, links);
                }
                if let Role::Circ(k) = role {
                    self.circ_txn_closed(link, t, k, links);
                }
                self.untrack(link, t);
            }
        }
        self.ports.remove(&link);
        self.reap_circuits(links);
    }

    // ----- input ----------------------------------------------------------

    /// Handles one event of `link`. Call it for every event the link
    /// produces, then [`Hub::signal`] once the batch is done.
    pub fn on_event(
        &mut self,
        link: LinkId,
        event: &Event,
        links: &mut impl Links,
    ) -> Result<Handled, LnkError> {
        let r = self.on_event_inner(link, event, links);
        self.reap_circuits(links);
        r
    }

    fn on_event_inner(
        &mut self,
        link: LinkId,
        event: &Event,
        links: &mut impl Links,
    ) -> Result<Handled, LnkError> {
        match event {
            Event::Message { msg, txn } => self.on_message(link, msg, txn.as_ref(), links),
            Event::Closed(id) => {
                let was = self.txns.get(&(link, *id)).copied();
                match was {
                    None => Ok(Handled::NotMine),
                    Some(role) => {
                        // The link freed it; anything still live goes too.
                        match role {
                            Role::ConnIn => self.conn_teardown(link, links, true),
                            Role::SpanIn(l) => self.remove_span_link(l, links),
                            Role::RelayOut(n) => self.forget_relay(link, n, *id),
                            Role::Circ(k) => self.circ_txn_closed(link, *id, k, links),
                            Role::ConnOut | Role::Closing => {}
                        }
                        self.untrack(link, *id);
                        Ok(Handled::Done)
                    }
                }
            }
            Event::Violation { violation, hdr } => {
                if *violation == Violation::UnknownCircuit {
                    // §10 row 2: answer a CREATE so the sender's
                    // transaction ends; the link lives.
                    Self::refuse_on_circuit(link, hdr, err::CANTCIRC, links);
                }
                Err(LnkError::Violation {
                    violation: *violation,
                    cmd: hdr.cmd,
                })
            }
            Event::Relay { msg } => {
                self.relay_message(link, msg.clone(), links)?;
                Ok(Handled::Done)
            }
            // Its bytes are with whoever read them: they relay it with
            // Hub::relay_frame.
            Event::RelayFrame(_) => Ok(Handled::NotMine),
            Event::Down(_) => {
                self.remove_link(link, links);
                Ok(Handled::Done)
            }
        }
    }

    fn on_message(
        &mut self,
        link: LinkId,
        msg: &Message,
        txn: Option<&TxnInfo>,
        links: &mut impl Links,
    ) -> Result<Handled, LnkError> {
        let c = msg.hdr.cmd;
        let base = cmd::base(c);
        let Some(info) = txn else {
            // One-way. LNK_CONN and LNK_SPAN only exist as transactions.
            if base == cmd::LNK_CONN || base == cmd::LNK_SPAN {
                let _ = links.reply_oneway(link, &msg.hdr, err::PARAM);
                return Err(LnkError::OneWay { cmd: c });
            }
            return Ok(Handled::NotMine);
        };
        if info.circuit != 0 {
            // Traffic of a circuit ending here: the application's, except
            // that circuits are only built on circuit 0.
            if info.icmd == cmd::LNK_CIRC && info.origin == Origin::Remote && c & CREATE != 0 {
                let _ = links.reply(link, info.id, err::CANTCIRC);
                return Err(LnkError::Circuit(CircError::Nested(info.circuit)));
            }
            return Ok(Handled::NotMine);
        }
        let role = self.txns.get(&(link, info.id)).copied();
        match role {
            Some(Role::ConnIn) => {
                if base == cmd::LNK_VOLCONF {
                    return self.volconf(link, msg);
                }
                if c & DELETE != 0 {
                    self.conn_teardown(link, links, true);
                    self.close(link, info, links);
                    return Ok(Handled::Done);
                }
                Ok(Handled::NotMine)
            }
            Some(Role::SpanIn(l)) => {
                if c & DELETE != 0 {
                    self.circ_span_gone(l, circuit::or_cantcirc(msg.hdr.error));
                    self.remove_span_link(l, links);
                    self.close(link, info, links);
                }
                Ok(Handled::Done)
            }
            Some(Role::RelayOut(n)) => {
                if c & DELETE != 0 {
                    // The peer closed a span we relay: drop the relay.
                    self.forget_relay(link, n, info.id);
                    self.close(link, info, links);
                }
                Ok(Handled::Done)
            }
            Some(Role::ConnOut) => {
                if c & DELETE != 0 {
                    self.close(link, info, links);
                }
                Ok(Handled::Done)
            }
            Some(Role::Circ(k)) => {
                self.circ_message(link, msg, info, k, links)?;
                Ok(Handled::Done)
            }
            Some(Role::Closing) => Ok(Handled::Done),
            None => {
                if info.origin != Origin::Remote || c & CREATE == 0 {
                    return Ok(Handled::NotMine);
                }
                match info.icmd {
                    cmd::LNK_CONN => self.conn_create(link, msg, info, links),
                    cmd::LNK_SPAN => self.span_create(link, msg, info, links),
                    cmd::LNK_CIRC => {
                        self.circ_create(link, msg, info, links)?;
                        Ok(Handled::Done)
                    }
                    _ => Ok(Handled::NotMine),
                }
            }
        }
    }

    /// Closes our side of a transaction the peer closed, and marks it.
    fn close(&mut self, link: LinkId, info: &TxnInfo, links: &mut impl Links) {
        if !info.tx_closed() {
            let _ = links.reply(link, info.id, 0);
        }
        if let Some(r) = self.txns.get_mut(&(link, info.id)) {
            *r = Role::Closing;
        }
    }

    fn track(&mut self, link: LinkId, txn: TxnId, role: Role) {
        if self.txns.insert((link, txn), role).is_none() {
            self.ports.entry(link).or_default().txns += 1;
        }
    }

    fn untrack(&mut self, link: LinkId, txn: TxnId) {
        self.circ_relay_gone(link, txn);
        if self.txns.remove(&(link, txn)).is_some() {
            if let Some(p) = self.ports.get_mut(&link) {
                p.txns = p.txns.saturating_sub(1);
            }
        }
    }

    // ----- LNK_CONN ---------------------------------------------------------

    fn conn_create(
        &mut self,
        link: LinkId,
        msg: &Message,
        info: &TxnInfo,
        links: &mut impl Links,
    ) -> Result<Handled, LnkError> {
        let body = match msg.body::<LnkConn>() {
            Ok(b) => b,
            Err(e) => {
                let _ = links.reply(link, info.id, err::PARAM);
                self.track(link, info.id, Role::Closing);
                return Err(LnkError::Body(e));
            }
        };
        let port = self.ports.entry(link).or_default();
        if port.conn.is_some() {
            let _ = links.reply(link, info.id, err::PARAM);
            self.track(link, info.id, Role::Closing);
            return Err(LnkError::SecondConn);
        }
        if msg.hdr.cmd & DELETE != 0 {
            let _ = links.reply(link, info.id, 0);
            return Ok(Handled::Done);
        }
        port.conn = Some(Conn {
            txn: info.id,
            peer_mask: body.peer_mask,
            pfs_mask: body.pfs_mask,
            peer_type: body.peer_type,
            pfs_clid: body.pfs_clid,
            cl_label: body.cl_label,
            mediaid: body.mediaid,
            dirty: true,
            relays: FxMap::default(),
        });
        self.media.entry(body.mediaid).or_default().refs += 1;
        self.track(link, info.id, Role::ConnIn);
        let _ = links.result(link, info.id, 0);
        self.dirty_conns.push(link);
        Ok(Handled::Done)
    }

    /// Removes the connection of `link` and closes its relays (sending the
    /// DELETEs when `send` and the link still works).
    fn conn_teardown(&mut self, link: LinkId, links: &mut impl Links, send: bool) {
        let Some(conn) = self.ports.get_mut(&link).and_then(|p| p.conn.take()) else {
            return;
        };
        let mut all: Vec<(Idx, RelayRec)> = conn
            .relays
            .into_iter()
            .flat_map(|(n, v)| v.into_iter().map(move |r| (n, r)))
            .collect();
        all.sort_by_key(|(_, r)| r.txn);
        for (_, r) in all {
            self.relay_count = self.relay_count.saturating_sub(1);
            self.relays_closed += 1;
            if send {
                let _ = links.reply(link, r.txn, 0);
            }
            if let Some(role) = self.txns.get_mut(&(link, r.txn)) {
                *role = Role::Closing;
            }
        }
        if let Some(m) = self.media.get_mut(&conn.mediaid) {
            m.refs = m.refs.saturating_sub(1);
            if m.refs == 0 {
                self.media.remove(&conn.mediaid);
                self.events.push_back(HubEvent::MediaGone(conn.mediaid));
            }
        }
    }

    fn volconf(&mut self, link: LinkId, msg: &Message) -> Result<Handled, LnkError> {
        let v = msg.body::<LnkVolconf>().map_err(LnkError::Body)?;
        let index = u16::try_from(v.index)
            .ok()
            .filter(|i| usize::from(*i) < crate::wire::constants::COPYID_COUNT)
            .ok_or(LnkError::VolconfIndex(v.index))?;
        if v.copy.path.is_empty() || v.copy.path.is_unterminated() {
            return Err(LnkError::VolconfPath);
        }
        let Some(mediaid) = self
            .ports
            .get(&link)
            .and_then(|p| p.conn.as_ref())
            .map(|c| c.mediaid)
        else {
            return Ok(Handled::Done);
        };
        if let Some(m) = self.media.get_mut(&mediaid) {
            m.config.insert(index, v.copy);
        }
        self.events.push_back(HubEvent::Volconf {
            link,
            mediaid,
            index,
            copy: v.copy,
        });
        Ok(Handled::Done)
    }

    // ----- LNK_SPAN ---------------------------------------------------------

    fn span_create(
        &mut self,
        link: LinkId,
        msg: &Message,
        info: &TxnInfo,
        links: &mut impl Links,
    ) -> Result<Handled, LnkError> {
        let body = match msg.body::<LnkSpan>() {
            Ok(b) => b,
            Err(e) => {
                let _ = links.reply(link, info.id, err::PARAM);
                self.track(link, info.id, Role::Closing);
                return Err(LnkError::Body(e));
            }
        };
        if msg.hdr.cmd & DELETE != 0 {
            let _ = links.reply(link, info.id, 0);
            return Ok(Handled::Done);
        }
        self.ports.entry(link).or_default();
        let src = Src::Remote {
            link,
            txn: info.id,
            msgid: info.msgid,
        };
        let l = self.insert_span_link(body, src);
        self.track(link, info.id, Role::SpanIn(l));
        Ok(Handled::Done)
    }

    /// Registers a span of this node's own (as the HAMMER2 kernel side
    /// does over its LNK_CONN): it is relayed like a received one, with
    /// dist + 1 (so send dist 0).
    pub fn add_local_span(&mut self, span: LnkSpan) -> LocalSpanId {
        let id = LocalSpanId(self.next_local);
        self.next_local += 1;
        let l = self.insert_span_link(span, Src::Local(id));
        self.local.insert(id, l);
        id
    }

    /// Withdraws a local span; false if there is none by that id.
    pub fn remove_local_span(&mut self, id: LocalSpanId, links: &mut impl Links) -> bool {
        match self.local.remove(&id) {
            Some(l) => {
                self.remove_span_link(l, links);
                self.reap_circuits(links);
                true
            }
            None => false,
        }
    }

    fn insert_span_link(&mut self, mut body: LnkSpan, src: Src) -> Idx {
        body.cl_label = terminated(&body.cl_label);
        body.fs_label = terminated(&body.fs_label);
        let ckey = (body.peer_type, body.pfs_clid, body.cl_label);
        let ci = match self.clusters.get(&ckey) {
            Some(&ci) => ci,
            None => {
                let ci = self.cluster_slab.insert(Cluster {
                    key: ckey,
                    nodes: BTreeMap::new(),
                });
                self.clusters.insert(ckey, ci);
                ci
            }
        };
        let nkey = (body.fs_label, body.pfs_fsid);
        let existing = self
            .cluster_slab
            .get(ci)
            .and_then(|c| c.nodes.get(&nkey).copied());
        let seq = self.next_seq;
        self.next_seq += 1;
        let (ni, shared) = match existing {
            Some(ni) => {
                // Share the node's body when only dist and rnss differ.
                let shared = self.nodes.get(ni).and_then(|n| {
                    let mut a = *n.body;
                    a.dist = body.dist;
                    a.rnss = body.rnss;
                    (a == body).then(|| Arc::clone(&n.body))
                });
                (ni, shared)
            }
            None => {
                let arc = Arc::new(body);
                let ni = self.nodes.insert(Node {
                    id: NodeId(0),
                    cluster: ci,
                    body: Arc::clone(&arc),
                    links: Vec::new(),
                    opaque: 0,
                    dirty: false,
                });
                // The low 32 bits find the entry, the serial makes it unique.
                let id = NodeId((self.next_node << 32) | u64::from(ni));
                self.next_node += 1;
                if let Some(n) = self.nodes.get_mut(ni) {
                    n.id = id;
                }
                if let Some(c) = self.cluster_slab.get_mut(ci) {
                    c.nodes.insert(nkey, ni);
                }
                self.events.push_back(HubEvent::Node(NodeEvent {
                    op: NodeOp::Add,
                    node: id,
                    span: Arc::clone(&arc),
                    opaque: 0,
                }));
                (ni, Some(arc))
            }
        };
        let l = self.links.insert(SpanLink {
            node: ni,
            src,
            dist: body.dist,
            rnss: body.rnss,
            seq,
            body: shared.unwrap_or_else(|| Arc::new(body)),
        });
        let key = (body.dist, body.rnss, seq);
        let Hub { nodes, links, .. } = self;
        if let Some(n) = nodes.get_mut(ni) {
            let at = n
                .links
                .partition_point(|&o| links.get(o).is_some_and(|s| s.key() < key));
            n.links.insert(at, l);
        }
        self.mark_node(ni);
        l
    }

    fn mark_node(&mut self, ni: Idx) {
        if let Some(n) = self.nodes.get_mut(ni) {
            if !n.dirty {
                n.dirty = true;
                self.dirty_nodes.push(ni);
            }
        }
    }

    /// Removes span link `l`: its relays are closed, and the node (and
    /// cluster) when it was the last.
    fn remove_span_link(&mut self, l: Idx, links: &mut impl Links) {
        self.circ_span_gone(l, err::CANTCIRC);
        let Some(sl) = self.links.remove(l) else {
            return;
        };
        if let Src::Local(id) = sl.src {
            self.local.remove(&id);
        }
        let ni = sl.node;
        // Close the relays made from it, on every connection.
        for (&pl, port) in self.ports.iter_mut() {
            let Some(conn) = port.conn.as_mut() else {
                continue;
            };
            let Some(v) = conn.relays.get_mut(&ni) else {
                continue;
            };
            let mut i = 0;
            while let Some(r) = v.get(i).copied() {
                if r.src == l {
                    v.remove(i);
                    self.relay_count = self.relay_count.saturating_sub(1);
                    self.relays_closed += 1;
                    let _ = links.reply(pl, r.txn, 0);
                    if let Some(role) = self.txns.get_mut(&(pl, r.txn)) {
                        *role = Role::Closing;
                    }
                } else {
                    i += 1;
                }
            }
            if v.is_empty() {
                conn.relays.remove(&ni);
            }
        }
        let empty = match self.nodes.get_mut(ni) {
            Some(n) => {
                n.links.retain(|&o| o != l);
                n.links.is_empty()
            }
            None => false,
        };
        if !empty {
            self.mark_node(ni);
            return;
        }
        let Some(node) = self.nodes.remove(ni) else {
            return;
        };
        let nkey = (node.body.fs_label, node.body.pfs_fsid);
        let cluster_empty = match self.cluster_slab.get_mut(node.cluster) {
            Some(c) => {
                c.nodes.remove(&nkey);
                c.nodes.is_empty()
            }
            None => false,
        };
        if cluster_empty {
            if let Some(c) = self.cluster_slab.remove(node.cluster) {
                self.clusters.remove(&c.key);
            }
        }
        self.events.push_back(HubEvent::Node(NodeEvent {
            op: NodeOp::Del,
            node: node.id,
            span: node.body,
            opaque: node.opaque,
        }));
    }

    /// Drops relay `txn` of node `ni` on `link` from the registry (the peer
    /// closed it or the link freed it).
    fn forget_relay(&mut self, link: LinkId, ni: Idx, txn: TxnId) {
        let Some(conn) = self.ports.get_mut(&link).and_then(|p| p.conn.as_mut()) else {
            return;
        };
        if let Some(v) = conn.relays.get_mut(&ni) {
            let before = v.len();
            v.retain(|r| r.txn != txn);
            if v.len() < before {
                self.relay_count = self.relay_count.saturating_sub(1);
            }
            if v.is_empty() {
                conn.relays.remove(&ni);
            }
        }
    }

    // ----- relay selection ----------------------------------------------------

    /// Runs the relay selection for everything that changed since the last
    /// call (`dmsg_msg_lnk_signal`): every node whose spans changed against
    /// every connection, and every new connection against every node.
    pub fn signal(&mut self, links: &mut impl Links) {
        if !self.dirty_conns.is_empty() || !self.dirty_nodes.is_empty() {
            let conns = self.ports.values().filter(|p| p.conn.is_some()).count();
            self.c_scans += (self.nodes.len() * conns) as u64;
        }
        let conns = std::mem::take(&mut self.dirty_conns);
        for &c in &conns {
            let still = self
                .ports
                .get_mut(&c)
                .and_then(|p| p.conn.as_mut())
                .map(|conn| std::mem::replace(&mut conn.dirty, false));
            if still != Some(true) {
                continue;
            }
            let all: Vec<Idx> = self.nodes.iter().map(|(i, _)| i).collect();
            for n in all {
                self.scan(n, c, links);
            }
        }
        let nodes = std::mem::take(&mut self.dirty_nodes);
        let ports: Vec<LinkId> = self
            .ports
            .iter()
            .filter(|(l, p)| p.conn.is_some() && !conns.contains(l))
            .map(|(l, _)| *l)
            .collect();
        for n in nodes {
            match self.nodes.get_mut(n) {
                Some(node) if node.dirty => node.dirty = false,
                _ => continue,
            }
            for &c in &ports {
                self.scan(n, c, links);
            }
        }
        self.reap_circuits(links);
    }

    /// Rescans every node against every connection, as the C library does
    /// on every signal. The result is the same as [`Hub::signal`]'s; this
    /// exists to measure the difference.
    pub fn full_rescan(&mut self, links: &mut impl Links) {
        let ports: Vec<LinkId> = self
            .ports
            .iter()
            .filter(|(_, p)| p.conn.is_some())
            .map(|(l, _)| *l)
            .collect();
        let all: Vec<Idx> = self.nodes.iter().map(|(i, _)| i).collect();
        for n in all {
            for &c in &ports {
                self.scan(n, c, links);
            }
        }
    }

    /// Whether node `node` may be relayed on `conn` at all (the filters
    /// that do not depend on the link).
    fn node_passes(conn: &Conn, span: &LnkSpan, cluster: &ClusterKey) -> bool {
        if !has_bit(conn.peer_mask, span.peer_type) || !has_bit(conn.pfs_mask, span.pfs_type) {
            return false;
        }
        if span.peer_type == conn.peer_type {
            if !conn.pfs_clid.is_nil() && conn.pfs_clid != cluster.1 {
                return false;
            }
            if !conn.cl_label.is_empty() && conn.cl_label != cluster.2 {
                return false;
            }
        }
        true
    }

    /// Chooses the links of node `n` to relay on connection `c` into
    /// `out`, best first: up to `max_relays`, dist at most
    /// `SPAN_MAXDIST`, never one that came in on `c`. A filter hit skips
    /// that link (the C code stops the scan).
    fn select(&self, n: Idx, c: LinkId, out: &mut Vec<Idx>) {
        out.clear();
        let (Some(node), Some(conn)) = (
            self.nodes.get(n),
            self.ports.get(&c).and_then(|p| p.conn.as_ref()),
        ) else {
            return;
        };
        let Some(cluster) = self.cluster_slab.get(node.cluster) else {
            return;
        };
        if !Self::node_passes(conn, &node.body, &cluster.key) {
            return;
        }
        for &l in &node.links {
            if out.len() >= self.cfg.max_relays {
                break;
            }
            let Some(sl) = self.links.get(l) else {
                continue;
            };
            if sl.dist > SPAN_MAXDIST {
                break; // sorted by dist: the rest are farther
            }
            if sl.src.link() == Some(c) {
                continue;
            }
            out.push(l);
        }
    }

    /// `dmsg_relay_scan_specific(node, conn)`: brings the relays of node
    /// `n` on connection `c` in line with the selection.
    fn scan(&mut self, n: Idx, c: LinkId, links: &mut impl Links) {
        self.scans += 1;
        let mut chosen = std::mem::take(&mut self.scratch);
        self.select(n, c, &mut chosen);
        let rnss = self.cfg.rnss;
        let Hub {
            ports,
            links: span_links,
            txns,
            ..
        } = self;
        let Some(port) = ports.get_mut(&c) else {
            self.scratch = chosen;
            return;
        };
        let Some(conn) = port.conn.as_mut() else {
            self.scratch = chosen;
            return;
        };
        let mut opened = 0u64;
        let mut closed = 0u64;
        let mut new_txns = 0usize;
        {
            let v = conn.relays.entry(n).or_default();
            // Close relays no longer selected.
            let mut i = 0;
            while let Some(r) = v.get(i).copied() {
                if chosen.contains(&r.src) {
                    i += 1;
                } else {
                    v.remove(i);
                    closed += 1;
                    let _ = links.reply(c, r.txn, 0);
                    if let Some(role) = txns.get_mut(&(c, r.txn)) {
                        *role = Role::Closing;
                    }
                }
            }
            // Open the newly selected ones.
            for &l in &chosen {
                if v.iter().any(|r| r.src == l) {
                    continue;
                }
                let Some(sl) = span_links.get(l) else {
                    continue;
                };
                let mut body = *sl.body;
                body.dist = sl.dist.saturating_add(1);
                body.rnss = sl.rnss.wrapping_add(rnss);
                if let Ok((txn, msgid)) = links.open(c, Message::with_body(CREATE, &body)) {
                    v.push(RelayRec { src: l, txn, msgid });
                    if txns.insert((c, txn), Role::RelayOut(n)).is_none() {
                        new_txns += 1;
                    }
                    opened += 1;
                }
            }
            if v.is_empty() {
                conn.relays.remove(&n);
            }
        }
        port.txns += new_txns;
        self.relay_count = self.relay_count + opened as usize - closed as usize;
        self.relays_opened += opened;
        self.relays_closed += closed;
        self.scratch = chosen;
    }

    /// How many relays a full rescan would open or close now: 0 once the
    /// relays agree with the registry.
    pub fn pending_changes(&self) -> usize {
        let mut chosen = Vec::new();
        let mut diff = 0;
        for (&c, port) in &self.ports {
            let Some(conn) = port.conn.as_ref() else {
                continue;
            };
            for (n, _) in self.nodes.iter() {
                self.select(n, c, &mut chosen);
                let have = conn.relays.get(&n).map_or(&[][..], |v| &v[..]);
                diff += have.iter().filter(|r| !chosen.contains(&r.src)).count();
                diff += chosen
                    .iter()
                    .filter(|l| !have.iter().any(|r| r.src == **l))
                    .count();
            }
        }
        diff
    }

    // ----- events and inspection ----------------------------------------------

    /// The next node/volconf/media event, if any.
    pub fn poll_event(&mut self) -> Option<HubEvent> {
        self.events.pop_front()
    }

    /// Stores the opaque value of a node (the C `node->opaque` slot);
    /// false if the node is gone.
    pub fn set_node_opaque(&mut self, node: NodeId, opaque: usize) -> bool {
        match self.node_idx(node).and_then(|i| self.nodes.get_mut(i)) {
            Some(n) => {
                n.opaque = opaque;
                true
            }
            None => false,
        }
    }

    /// The opaque value of a node.
    pub fn node_opaque(&self, node: NodeId) -> Option<usize> {
        self.node_idx(node)
            .and_then(|i| self.nodes.get(i))
            .map(|n| n.opaque)
    }

    fn node_idx(&self, id: NodeId) -> Option<Idx> {
        let i = (id.0 & 0xFFFF_FFFF) as Idx;
        self.nodes.get(i).filter(|n| n.id == id).map(|_| i)
    }

    /// Counts of what the hub holds and has done.
    pub fn stats(&self) -> HubStats {
        HubStats {
            clusters: self.cluster_slab.len(),
            nodes: self.nodes.len(),
            links: self.links.len(),
            relays: self.relay_count,
            conns: self.ports.values().filter(|p| p.conn.is_some()).count(),
            media: self.media.len(),
            txns: self.txns.len(),
            relays_opened: self.relays_opened,
            relays_closed: self.relays_closed,
            scans: self.scans,
            c_scans: self.c_scans,
        }
    }

    /// Transactions of `link` the hub tracks (its connection, the spans
    /// received on it, the relays sent on it, our own connection, and
    /// those closing). Once the links are idle this equals the link's
    /// [`crate::link::Link::txn_count`].
    pub fn txn_count(&self, link: LinkId) -> usize {
        self.ports.get(&link).map_or(0, |p| p.txns)
    }

    /// True when `link` has an open peer connection.
    pub fn has_conn(&self, link: LinkId) -> bool {
        self.ports.get(&link).is_some_and(|p| p.conn.is_some())
    }

    /// The transaction of the peer's open `LNK_CONN` on `link`.
    pub fn conn_txn(&self, link: LinkId) -> Option<TxnId> {
        self.ports.get(&link)?.conn.as_ref().map(|c| c.txn)
    }

    /// Local spans registered with [`Hub::add_local_span`].
    pub fn local_span_count(&self) -> usize {
        self.local.len()
    }

    /// The links the hub knows, in order.
    pub fn link_ids(&self) -> impl Iterator<Item = LinkId> + '_ {
        self.ports.keys().copied()
    }

    /// Media groups and their connection counts.
    pub fn media(&self) -> impl Iterator<Item = (Uuid, u32)> + '_ {
        self.media.iter().map(|(k, m)| (*k, m.refs))
    }

    /// The volume configuration stored for a media group.
    pub fn media_config(&self, mediaid: &Uuid) -> Option<&BTreeMap<u16, VolData>> {
        self.media.get(mediaid).map(|m| &m.config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_bits_of_64_and_more_match_nothing() {
        assert!(has_bit(!0, 63));
        assert!(!has_bit(!0, 64));
        assert!(!has_bit(!0, 255));
        assert!(!has_bit(0, 3));
    }
}
