//! A deterministic cluster simulator: N nodes, each a [`Hub`], joined by
//! in-memory [`Link`]s, with no sockets, no threads and a seeded RNG.
//!
//! Time advances in synchronous rounds ([`Sim::step`]): the bytes every
//! link queued in the previous round are delivered, every node handles
//! the events of its links in a fixed order, then every node runs its
//! relay selection ([`Hub::signal`]). The same seed and the same calls
//! give the same messages, byte for byte.
//!
//! ```text
//!   node a                    edge e                     node b
//!  ┌──────┐ LinkId(2e)   ┌──────────────────┐ LinkId(2e+1)┌──────┐
//!  │ Hub  │◄────────────►│ Link[0] ⇄ Link[1]│◄───────────►│ Hub  │
//!  └──────┘  events/tx   └──────────────────┘  events/tx  └──────┘
//!
//!  step: 1. move every link's pending bytes to its peer (receive)
//!        2. for each node, for each of its links: poll events → on_event
//!        3. for each node: signal (relay selection for what changed)
//! ```
//!
//! Every node opens `LNK_CONN` on each link when the link comes up (as
//! `dmsg_master_service` does: peer_mask and pfs_mask all ones, peer type
//! CLUSTER) and registers one local span for its own PFS (as the HAMMER2
//! kernel side does), named `node<i>`.
//!
//! Circuits: [`Sim::open_circuit`] opens one from node i to node j
//! (relayed by the nodes between), [`Sim::circuit_link`] gives the link to
//! run transactions on it (`Link::open(c.id, msg)`), and every node runs a
//! small service on the circuits that end at it: a transaction is echoed
//! (each message answered with the same command and aux data, DELETE
//! answered with DELETE), a one-way `DBG_SHELL` gets the tree dump as
//! `DBG_SHELL|REPLY` lines and a one-way `LNK_ERROR|REPLY`, as the hammer2
//! shell does. What arrives on circuits is kept in [`Sim::take_inbox`].

use crate::link::{CircuitRole, Event, Link, LinkConfig, LinkError, SendError};
use crate::lnk::{
    CircError, CircuitEvent, CircuitId, CircuitKind, Handled, Hub, HubConfig, LinkId, Links,
    LnkError, LocalSpanId, NodeId,
};
use crate::state::{Origin, TxnId, TxnInfo};
use crate::wire::cmd::{self, DELETE, REPLY};
use crate::wire::constants::{PEER_CLUSTER, PEER_HAMMER2, PFSTYPE_SERVER, SPAN_MAXDIST};
use crate::wire::{Header, Label, LnkConn, LnkSpan, Message, Uuid};
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

/// SplitMix64: a tiny seeded generator, good enough for topologies.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }
}

/// The uuid of the cluster every simulated node belongs to.
pub const SIM_CLUSTER: Uuid = Uuid([
    0xac, 0xc4, 0xd8, 0xd6, 0xf7, 0xe7, 0x53, 0x83, 0xa5, 0x62, 0x4e, 0x23, 0x81, 0xf7, 0x0e, 0x37,
]);

/// The span node `i` registers by default: a HAMMER2 server PFS named
/// `node<i>`, dist 0, rnss 0.
pub fn default_span(i: usize) -> LnkSpan {
    let mut fsid = [0u8; 16];
    fsid[..8].copy_from_slice(&(i as u64).to_be_bytes());
    fsid[8] = 0x80;
    LnkSpan {
        pfs_clid: SIM_CLUSTER,
        pfs_fsid: Uuid(fsid),
        pfs_type: PFSTYPE_SERVER,
        peer_type: PEER_HAMMER2,
        proto_version: 1,
        fs_label: Label::truncated(format!("node{i}")),
        ..LnkSpan::default()
    }
}

/// The `LNK_CONN` every simulated node sends (`dmsg_master_service`'s).
pub fn master_conn() -> LnkConn {
    LnkConn {
        peer_mask: !0,
        peer_type: PEER_CLUSTER,
        pfs_mask: !0,
        ..LnkConn::default()
    }
}

/// One simulated node's settings.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    /// Its rnss.
    pub rnss: u32,
    /// The span it registers, if any.
    pub span: Option<LnkSpan>,
}

/// Simulator settings.
#[derive(Clone, Copy, Debug)]
pub struct SimConfig {
    /// RNG seed (topology, rnss values, salts).
    pub seed: u64,
    /// [`HubConfig::max_relays`] of every node.
    pub max_relays: usize,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 1,
            max_relays: 2,
        }
    }
}

/// A topology to build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Topology {
    /// 0—1—…—(n-1).
    Line(usize),
    /// A line closed into a ring.
    Ring(usize),
    /// Node 0 joined to every other.
    Star(usize),
    /// A `w` × `h` grid.
    Grid(usize, usize),
    /// `n` nodes, connected, about `degree` links per node on average.
    Random {
        /// Nodes.
        n: usize,
        /// Average degree.
        degree: usize,
    },
}

impl Topology {
    /// Number of nodes.
    pub fn nodes(&self) -> usize {
        match *self {
            Topology::Line(n) | Topology::Ring(n) | Topology::Star(n) => n,
            Topology::Grid(w, h) => w * h,
            Topology::Random { n, .. } => n,
        }
    }

    /// The edges, as node pairs.
    pub fn edges(&self, rng: &mut Rng) -> Vec<(usize, usize)> {
        let mut e = Vec::new();
        match *self {
            Topology::Line(n) => e.extend((1..n).map(|i| (i - 1, i))),
            Topology::Ring(n) => {
                e.extend((1..n).map(|i| (i - 1, i)));
                if n > 2 {
                    e.push((n - 1, 0));
                }
            }
            Topology::Star(n) => e.extend((1..n).map(|i| (0, i))),
            Topology::Grid(w, h) => {
                for y in 0..h {
                    for x in 0..w {
                        let i = y * w + x;
                        if x + 1 < w {
                            e.push((i, i + 1));
                        }
                        if y + 1 < h {
                            e.push((i, i + w));
                        }
                    }
                }
            }
            Topology::Random { n, degree } => {
                let mut seen = HashSet::new();
                for i in 1..n {
                    let j = rng.below(i);
                    seen.insert((j, i));
                    e.push((j, i));
                }
                let want = (n * degree / 2).max(e.len());
                let max_edges = n * n.saturating_sub(1) / 2;
                while e.len() < want.min(max_edges) {
                    let (a, b) = (rng.below(n), rng.below(n));
                    let key = (a.min(b), a.max(b));
                    if a != b && seen.insert(key) {
                        e.push(key);
                    }
                }
            }
        }
        e
    }
}

/// Identifies an edge of the simulation; never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EdgeId(pub usize);

#[derive(Debug)]
struct Edge {
    nodes: [usize; 2],
    ends: [Link; 2],
    /// Ends that have reported [`crate::link::Event::Down`].
    downs: [bool; 2],
}

#[derive(Debug)]
struct SimNode {
    hub: Option<Hub>,
    ports: BTreeSet<LinkId>,
    local: Option<LocalSpanId>,
    spec: NodeSpec,
    inbox: Vec<Delivered>,
    circ_events: Vec<CircuitEvent>,
}

/// A message that arrived on a circuit ending at a simulated node.
#[derive(Clone, Debug)]
pub struct Delivered {
    /// The link it came on.
    pub link: LinkId,
    /// The message (`hdr.circuit` is the circuit's id on `link`).
    pub msg: Message,
    /// Its transaction, as the link reported it.
    pub txn: Option<TxnInfo>,
}

/// Totals of a simulation run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Rounds run.
    pub steps: u64,
    /// Messages queued on links (every CREATE, reply, DELETE).
    pub messages: u64,
    /// Bytes moved between links.
    pub bytes: u64,
}

/// LNK errors the nodes reported, with the node and link.
pub type ErrorLog = Vec<(usize, LinkId, LnkError)>;

/// The simulator: see the module documentation.
#[derive(Debug)]
pub struct Sim {
    cfg: SimConfig,
    rng: Rng,
    nodes: Vec<SimNode>,
    edges: Vec<Option<Edge>>,
    stats: SimStats,
    errors: ErrorLog,
    buf: Vec<u8>,
}

/// The links of the simulation, as the [`Links`] of whichever node owns
/// the named end.
struct Wires<'a> {
    edges: &'a mut [Option<Edge>],
    sent: &'a mut u64,
}

fn end_of(id: LinkId) -> (usize, usize) {
    ((id.0 / 2) as usize, (id.0 % 2) as usize)
}

/// The link id of side `side` of edge `e`.
pub fn link_id(e: EdgeId, side: usize) -> LinkId {
    LinkId((e.0 as u64) * 2 + (side as u64 & 1))
}

impl Wires<'_> {
    fn end(&mut self, id: LinkId) -> Result<&mut Link, SendError> {
        let (e, s) = end_of(id);
        self.edges
            .get_mut(e)
            .and_then(Option::as_mut)
            .and_then(|e| e.ends.get_mut(s))
            .ok_or(SendError::LinkDown)
    }

    fn count<T>(&mut self, r: Result<T, SendError>) -> Result<T, SendError> {
        if r.is_ok() {
            *self.sent += 1;
        }
        r
    }
}

impl Links for Wires<'_> {
    fn open(&mut self, link: LinkId, msg: Message) -> Result<(TxnId, u64), SendError> {
        let l = self.end(link)?;
        let r = l.open(0, msg).and_then(|id| {
            l.txn(id)
                .map(|t| (id, t.msgid))
                .ok_or(SendError::UnknownTxn(id))
        });
        self.count(r)
    }
    fn send(&mut self, link: LinkId, txn: TxnId, msg: Message) -> Result<(), SendError> {
        let r = self.end(link)?.send(txn, msg);
        self.count(r)
    }
    fn reply(&mut self, link: LinkId, txn: TxnId, error: u32) -> Result<(), SendError> {
        let r = self.end(link)?.reply(txn, error);
        self.count(r)
    }
    fn result(&mut self, link: LinkId, txn: TxnId, error: u32) -> Result<(), SendError> {
        let r = self.end(link)?.result(txn, error);
        self.count(r)
    }
    fn reply_oneway(&mut self, link: LinkId, to: &Header, error: u32) -> Result<(), SendError> {
        let r = self.end(link)?.reply_oneway(to, error);
        self.count(r)
    }
    fn forward(&mut self, link: LinkId, msg: Message) -> Result<(), SendError> {
        let r = self.end(link)?.forward(msg);
        self.count(r)
    }
    fn add_circuit(&mut self, link: LinkId, id: u64, role: CircuitRole) -> Result<(), SendError> {
        let l = self.end(link)?;
        if l.is_down() {
            return Err(SendError::LinkDown);
        }
        l.add_circuit(id, role);
        Ok(())
    }
    fn remove_circuit(&mut self, link: LinkId, id: u64, error: u32) {
        if let Ok(l) = self.end(link) {
            l.remove_circuit(id, error);
        }
    }
}

/// The service every node runs on the circuits that end at it (see the
/// module documentation).
fn serve(hub: &Hub, lid: LinkId, msg: &Message, txn: Option<&TxnInfo>, w: &mut Wires<'_>) {
    let c = msg.hdr.cmd;
    let base = cmd::base(c);
    match txn {
        None => {
            if base == cmd::DBG_SHELL && c & REPLY == 0 {
                for line in hub.tree_lines() {
                    let mut m = Message::new(cmd::DBG_SHELL | REPLY);
                    m.hdr.circuit = msg.hdr.circuit;
                    m.aux = line.into_bytes();
                    m.aux.push(0);
                    let _ = w.end(lid).and_then(|l| l.send_oneway(m));
                    *w.sent += 1;
                }
                let _ = w.reply_oneway(lid, &msg.hdr, 0);
            }
        }
        Some(t) if t.origin == Origin::Remote && !t.tx_closed() => {
            if base == cmd::LNK_ERROR {
                if c & DELETE != 0 {
                    let _ = w.reply(lid, t.id, 0);
                }
                return;
            }
            let mut m = msg.clone();
            m.hdr.cmd = c & !(cmd::CREATE | REPLY | cmd::ABORT);
            m.hdr.error = 0;
            m.hdr.aux_crc = 0;
            let _ = w.send(lid, t.id, m);
        }
        Some(_) => {}
    }
}

impl Sim {
    /// `n` nodes with random rnss values, each registering
    /// [`default_span`], no edges yet.
    pub fn new(n: usize, cfg: SimConfig) -> Sim {
        let mut rng = Rng::new(cfg.seed);
        let specs = (0..n)
            .map(|i| NodeSpec {
                rnss: (rng.next_u64() as u32) | 1,
                span: Some(default_span(i)),
            })
            .collect();
        Sim::with_nodes(specs, cfg)
    }

    /// Nodes as specified, no edges yet.
    pub fn with_nodes(specs: Vec<NodeSpec>, cfg: SimConfig) -> Sim {
        let mut sim = Sim {
            cfg,
            rng: Rng::new(cfg.seed ^ 0x5151_5151),
            nodes: Vec::new(),
            edges: Vec::new(),
            stats: SimStats::default(),
            errors: Vec::new(),
            buf: Vec::new(),
        };
        for spec in specs {
            sim.nodes.push(SimNode {
                hub: None,
                ports: BTreeSet::new(),
                local: None,
                spec,
                inbox: Vec::new(),
                circ_events: Vec::new(),
            });
            sim.start_node(sim.nodes.len() - 1);
        }
        sim
    }

    /// Nodes and edges of `topo`.
    pub fn with_topology(topo: Topology, cfg: SimConfig) -> Sim {
        let mut sim = Sim::new(topo.nodes(), cfg);
        let mut rng = Rng::new(cfg.seed.rotate_left(17) ^ 0xA5A5);
        for (a, b) in topo.edges(&mut rng) {
            sim.add_edge(a, b);
        }
        sim
    }

    fn start_node(&mut self, i: usize) {
        let Some(n) = self.nodes.get_mut(i) else {
            return;
        };
        let mut hub = Hub::new(HubConfig {
            rnss: n.spec.rnss,
            max_relays: self.cfg.max_relays,
        });
        n.local = n.spec.span.map(|s| hub.add_local_span(s));
        n.hub = Some(hub);
    }

    /// Number of nodes (alive or not).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True with no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The hub of node `i`, while it is alive.
    pub fn hub(&self, i: usize) -> Option<&Hub> {
        self.nodes.get(i)?.hub.as_ref()
    }

    /// True while node `i` runs.
    pub fn is_alive(&self, i: usize) -> bool {
        self.hub(i).is_some()
    }

    /// Totals so far.
    pub fn stats(&self) -> SimStats {
        self.stats
    }

    /// The LNK errors reported so far.
    pub fn errors(&self) -> &ErrorLog {
        &self.errors
    }

    /// The live edges.
    pub fn edges(&self) -> Vec<(EdgeId, usize, usize)> {
        self.edges
            .iter()
            .enumerate()
            .filter_map(|(i, e)| {
                let e = e.as_ref()?;
                (!e.ends[0].is_down()).then_some((EdgeId(i), e.nodes[0], e.nodes[1]))
            })
            .collect()
    }

    /// The link of side `side` (0 = first node) of edge `e`.
    pub fn link(&self, e: EdgeId, side: usize) -> Option<&Link> {
        self.edges.get(e.0)?.as_ref()?.ends.get(side)
    }

    /// Joins nodes `a` and `b` with a new link; both open their LNK_CONN.
    pub fn add_edge(&mut self, a: usize, b: usize) -> EdgeId {
        let id = EdgeId(self.edges.len());
        let mk = |rng: &mut Rng| {
            Link::new(LinkConfig {
                first_msgid: 0x1000 + (rng.next_u64() & 0xFFFF) * 0x1_0000,
                salt_seed: rng.next_u64() as u32,
            })
        };
        let ends = [mk(&mut self.rng), mk(&mut self.rng)];
        self.edges.push(Some(Edge {
            nodes: [a, b],
            ends,
            downs: [false; 2],
        }));
        for (side, x) in [(0, a), (1, b)] {
            let lid = link_id(id, side);
            let Some(node) = self.nodes.get_mut(x) else {
                continue;
            };
            let Some(hub) = node.hub.as_mut() else {
                continue;
            };
            node.ports.insert(lid);
            hub.add_link(lid, lid.0 as i64);
            let mut w = Wires {
                edges: &mut self.edges,
                sent: &mut self.stats.messages,
            };
            let _ = hub.open_conn(lid, &master_conn(), &mut w);
        }
        id
    }

    /// Takes edge `e` down: both ends see link loss (EOF).
    pub fn remove_edge(&mut self, e: EdgeId) {
        if let Some(edge) = self.edges.get_mut(e.0).and_then(Option::as_mut) {
            for l in edge.ends.iter_mut() {
                l.fail(LinkError::Eof);
            }
        }
    }

    /// Stops node `i`: its hub is dropped and its links go down.
    pub fn remove_node(&mut self, i: usize) {
        let Some(node) = self.nodes.get_mut(i) else {
            return;
        };
        node.hub = None;
        let ports = std::mem::take(&mut node.ports);
        for p in ports {
            self.remove_edge(EdgeId(end_of(p).0));
        }
    }

    /// Starts a stopped node again, with no links.
    pub fn restart_node(&mut self, i: usize) {
        if !self.is_alive(i) {
            self.start_node(i);
        }
    }

    /// Withdraws node `i`'s own span (as when its PFS is unmounted).
    pub fn remove_local_span(&mut self, i: usize) {
        let Some(node) = self.nodes.get_mut(i) else {
            return;
        };
        let (Some(hub), Some(id)) = (node.hub.as_mut(), node.local.take()) else {
            return;
        };
        let mut w = Wires {
            edges: &mut self.edges,
            sent: &mut self.stats.messages,
        };
        hub.remove_local_span(id, &mut w);
    }

    /// Runs [`Hub::full_rescan`] on every node (the C library's signal).
    pub fn full_rescan(&mut self) {
        for node in &mut self.nodes {
            if let Some(hub) = node.hub.as_mut() {
                let mut w = Wires {
                    edges: &mut self.edges,
                    sent: &mut self.stats.messages,
                };
                hub.full_rescan(&mut w);
            }
        }
    }

    /// One round; false when nothing moved and nothing is pending.
    pub fn step(&mut self) -> bool {
        self.stats.steps += 1;
        let mut moved = false;
        // 1. Every node takes in what its peers queued and handles the
        //    events, link by link (one link's messages in memory at once).
        for (x, node) in self.nodes.iter_mut().enumerate() {
            let ports: Vec<LinkId> = node.ports.iter().copied().collect();
            for lid in ports {
                let (e, s) = end_of(lid);
                if let Some(edge) = self.edges.get_mut(e).and_then(Option::as_mut) {
                    self.buf.clear();
                    if let Some(from) = edge.ends.get_mut(1 - s) {
                        for chunk in from.pending_tx() {
                            self.buf.extend_from_slice(chunk);
                        }
                        from.consume_tx(self.buf.len());
                    }
                    if !self.buf.is_empty() {
                        moved = true;
                        self.stats.bytes += self.buf.len() as u64;
                        if let Some(to) = edge.ends.get_mut(s) {
                            to.receive(&self.buf);
                        }
                    }
                }
                while let Some(ev) = self
                    .edges
                    .get_mut(e)
                    .and_then(Option::as_mut)
                    .and_then(|ed| ed.ends.get_mut(s))
                    .and_then(Link::poll_event)
                {
                    moved = true;
                    let down = matches!(ev, Event::Down(_));
                    if let Some(hub) = node.hub.as_mut() {
                        let mut w = Wires {
                            edges: &mut self.edges,
                            sent: &mut self.stats.messages,
                        };
                        let r = match ev {
                            Event::Relay { msg } => {
                                hub.relay_message(lid, msg, &mut w).map(|()| Handled::Done)
                            }
                            ev => {
                                let r = hub.on_event(lid, &ev, &mut w);
                                if let (Ok(Handled::NotMine), Event::Message { msg, txn }) =
                                    (&r, ev)
                                {
                                    if msg.hdr.circuit != 0 {
                                        serve(hub, lid, &msg, txn.as_ref(), &mut w);
                                        node.inbox.push(Delivered {
                                            link: lid,
                                            msg,
                                            txn,
                                        });
                                    }
                                }
                                r
                            }
                        };
                        if let Err(err) = r {
                            self.errors.push((x, lid, err));
                        }
                        while let Some(ce) = hub.poll_circuit_event() {
                            node.circ_events.push(ce);
                        }
                    }
                    if down {
                        node.ports.remove(&lid);
                        if let Some(ed) = self.edges.get_mut(e).and_then(Option::as_mut) {
                            if let Some(d) = ed.downs.get_mut(s) {
                                *d = true;
                            }
                        }
                    }
                }
            }
        }
        // Ends of dead nodes: drain their events.
        for (i, slot) in self.edges.iter_mut().enumerate() {
            let Some(edge) = slot.as_mut() else {
                continue;
            };
            for s in 0..2 {
                let owner = edge.nodes.get(s).copied().unwrap_or(usize::MAX);
                let alive = self
                    .nodes
                    .get(owner)
                    .is_some_and(|n| n.hub.is_some() && n.ports.contains(&link_id(EdgeId(i), s)));
                if !alive {
                    if let Some(l) = edge.ends.get_mut(s) {
                        let n = l.tx_len();
                        l.consume_tx(n);
                        while l.poll_event().is_some() {}
                        if l.is_down() {
                            if let Some(d) = edge.downs.get_mut(s) {
                                *d = true;
                            }
                        }
                    }
                }
            }
            if edge.downs == [true, true] {
                *slot = None;
            }
        }
        // 3. Relay selection for what changed.
        for node in &mut self.nodes {
            if let Some(hub) = node.hub.as_mut() {
                let mut w = Wires {
                    edges: &mut self.edges,
                    sent: &mut self.stats.messages,
                };
                hub.signal(&mut w);
            }
        }
        moved
            || self
                .edges
                .iter()
                .flatten()
                .any(|e| e.ends.iter().any(|l| l.tx_len() > 0 || l.has_events()))
    }

    /// Steps until nothing moves; returns the rounds taken, or `Err` with
    /// the bound if it was reached first.
    pub fn run_until_idle(&mut self, max_steps: usize) -> Result<usize, usize> {
        for i in 0..max_steps {
            if !self.step() {
                return Ok(i + 1);
            }
        }
        Err(max_steps)
    }

    /// Hop counts from node `from` over live edges between live nodes.
    pub fn hops(&self, from: usize) -> Vec<Option<u32>> {
        let mut adj: HashMap<usize, Vec<usize>> = HashMap::new();
        for (_, a, b) in self.edges() {
            if self.is_alive(a) && self.is_alive(b) {
                adj.entry(a).or_default().push(b);
                adj.entry(b).or_default().push(a);
            }
        }
        let mut dist = vec![None; self.nodes.len()];
        if !self.is_alive(from) {
            return dist;
        }
        if let Some(d) = dist.get_mut(from) {
            *d = Some(0);
        }
        let mut q = VecDeque::from([from]);
        while let Some(x) = q.pop_front() {
            let dx = dist.get(x).copied().flatten().unwrap_or(0);
            for &y in adj.get(&x).map_or(&[][..], |v| &v[..]) {
                if let Some(slot @ None) = dist.get_mut(y) {
                    *slot = Some(dx + 1);
                    q.push_back(y);
                }
            }
        }
        dist
    }

    /// Checks the converged state; returns every problem found.
    ///
    /// - every live node sees exactly the nodes within `SPAN_MAXDIST + 1`
    ///   hops that registered a span (itself included), and the best
    ///   link's dist is the hop count;
    /// - relays agree with the selection (nothing left to open or close);
    /// - no span is relayed on the link it came in on;
    /// - what one end of a link relays is exactly what the other end holds
    ///   from that link, with dist + 1 and rnss + the sender's rnss;
    /// - each link's live transactions are exactly those the hub tracks,
    ///   and the hub tracks nothing beyond its connections, spans, relays
    ///   and the `LNK_CIRC` transactions of its circuits (a link that
    ///   carries circuits ending here may have more: the application's);
    /// - every circuit id a hub uses on a link is declared on that link
    ///   with the matching role, and a relayed pair's two ids are both
    ///   known to the peers across.
    pub fn check(&self) -> Result<(), Vec<String>> {
        let mut bad = Vec::new();
        let label_of: HashMap<Vec<u8>, usize> = self
            .nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| Some((n.spec.span?.fs_label.as_bytes().to_vec(), i)))
            .collect();
        let all_views: Vec<Vec<crate::lnk::NodeView>> = self
            .nodes
            .iter()
            .map(|n| n.hub.as_ref().map(Hub::nodes).unwrap_or_default())
            .collect();
        // Per node: span links by (link they came on, msgid).
        let held: Vec<HashMap<(LinkId, u64), (u32, u32)>> = all_views
            .iter()
            .map(|vs| {
                vs.iter()
                    .flat_map(|v| v.links.iter())
                    .filter_map(|l| Some(((l.link?, l.msgid), (l.dist, l.rnss))))
                    .collect()
            })
            .collect();
        for (x, node) in self.nodes.iter().enumerate() {
            let Some(hub) = node.hub.as_ref() else {
                continue;
            };
            let hops = self.hops(x);
            let mut expect: BTreeSet<usize> = BTreeSet::new();
            for (y, h) in hops.iter().enumerate() {
                let has_span = self
                    .nodes
                    .get(y)
                    .is_some_and(|n| n.local.is_some() && n.hub.is_some());
                if has_span && h.is_some_and(|h| h <= SPAN_MAXDIST + 1) {
                    expect.insert(y);
                }
            }
            let views = all_views.get(x).cloned().unwrap_or_default();
            let mut seen = BTreeSet::new();
            for v in &views {
                let Some(&y) = label_of.get(v.span.fs_label.as_bytes()) else {
                    bad.push(format!("node {x}: unknown node {}", v.span.fs_label));
                    continue;
                };
                seen.insert(y);
                let best = v.links.first().map(|l| l.dist);
                let h = hops.get(y).copied().flatten();
                if best != h {
                    bad.push(format!("node {x}: node{y} best dist {best:?}, hops {h:?}"));
                }
            }
            if seen != expect || views.len() != expect.len() {
                let missing: Vec<_> = expect.difference(&seen).collect();
                let extra: Vec<_> = seen.difference(&expect).collect();
                bad.push(format!(
                    "node {x}: sees {} nodes, expected {}; missing {missing:?}, extra {extra:?}",
                    views.len(),
                    expect.len()
                ));
            }
            let circs = hub.circuits();
            for c in &circs {
                let role = if c.kind == CircuitKind::Relay {
                    CircuitRole::Relay
                } else {
                    CircuitRole::Endpoint
                };
                for id in std::iter::once(c.near).chain(c.far) {
                    let have = self.link_end(id.link).and_then(|l| l.circuit_role(id.id));
                    if !c.closing && have != Some(role) {
                        bad.push(format!(
                            "node {x}: circuit {:#x} on {:?} is {have:?} on the link, want {role:?}",
                            id.id, id.link
                        ));
                    }
                }
            }
            let pend = hub.pending_changes();
            if pend != 0 {
                bad.push(format!("node {x}: {pend} relay changes pending"));
            }
            let relays = hub.relays();
            for r in &relays {
                if r.source.link == Some(r.link) {
                    bad.push(format!("node {x}: relays back on {:?}", r.link));
                }
            }
            let st = hub.stats();
            let remote_links = st.links - hub.local_span_count();
            let own_conns = node.ports.len();
            let circ_txns: usize = circs.iter().map(|c| 1 + usize::from(c.far.is_some())).sum();
            let expect_txns = remote_links + st.relays + st.conns + own_conns + circ_txns;
            if st.txns != expect_txns {
                bad.push(format!(
                    "node {x}: hub tracks {} transactions, expected {expect_txns}",
                    st.txns
                ));
            }
            for &lid in &node.ports {
                let (e, s) = end_of(lid);
                let Some(edge) = self.edges.get(e).and_then(Option::as_ref) else {
                    bad.push(format!("node {x}: port {lid:?} has no edge"));
                    continue;
                };
                let Some(link) = edge.ends.get(s) else {
                    continue;
                };
                // Transactions on circuits ending here are the
                // application's, not the hub's.
                let endpoint = circs
                    .iter()
                    .any(|c| c.kind != CircuitKind::Relay && c.near.link == lid);
                let app_ok = endpoint && link.txn_count() >= hub.txn_count(lid);
                if link.txn_count() != hub.txn_count(lid) && !app_ok {
                    bad.push(format!(
                        "node {x}: link {lid:?} has {} transactions, hub tracks {}",
                        link.txn_count(),
                        hub.txn_count(lid)
                    ));
                }
                // Cross-check with the other end.
                let other = link_id(EdgeId(e), 1 - s);
                let Some(&p) = edge.nodes.get(1 - s) else {
                    continue;
                };
                if !self.is_alive(p) {
                    continue;
                }
                let mine: Vec<_> = relays.iter().filter(|r| r.link == lid).collect();
                let theirs: HashMap<u64, (u32, u32)> = held
                    .get(p)
                    .into_iter()
                    .flatten()
                    .filter(|((l, _), _)| *l == other)
                    .map(|((_, m), v)| (*m, *v))
                    .collect();
                if theirs.len() != mine.len() {
                    bad.push(format!(
                        "node {x}: relays {} spans on {lid:?}, the peer holds {}",
                        mine.len(),
                        theirs.len()
                    ));
                }
                for r in mine {
                    let want = (
                        r.source.dist + 1,
                        r.source.rnss.wrapping_add(node.spec.rnss),
                    );
                    if theirs.get(&r.msgid) != Some(&want) {
                        bad.push(format!(
                            "node {x}: relay {:#x} on {lid:?}: peer has {:?}, want {want:?}",
                            r.msgid,
                            theirs.get(&r.msgid)
                        ));
                    }
                }
            }
        }
        if bad.is_empty() {
            Ok(())
        } else {
            Err(bad)
        }
    }

    /// Node `i`'s rnss.
    pub fn rnss(&self, i: usize) -> Option<u32> {
        Some(self.nodes.get(i)?.spec.rnss)
    }

    // ----- circuits -------------------------------------------------------

    /// The registry entry of node `to` in node `from`'s hub (found by the
    /// label of `to`'s span).
    pub fn node_id(&self, from: usize, to: usize) -> Option<NodeId> {
        let label = self.nodes.get(to)?.spec.span?.fs_label;
        self.hub(from)?
            .nodes()
            .into_iter()
            .find(|v| v.span.fs_label == label)
            .map(|v| v.id)
    }

    fn wires_of(&mut self, i: usize) -> Option<(&mut Hub, Wires<'_>)> {
        let hub = self.nodes.get_mut(i)?.hub.as_mut()?;
        Some((
            hub,
            Wires {
                edges: &mut self.edges,
                sent: &mut self.stats.messages,
            },
        ))
    }

    /// Opens a circuit from node `from` to node `to` along `from`'s best
    /// span of `to` ([`Hub::open_circuit`]). Run the simulation to forge
    /// it end to end.
    pub fn open_circuit(&mut self, from: usize, to: usize) -> Result<CircuitId, CircError> {
        let node = self.node_id(from, to).ok_or(CircError::NoSpan)?;
        let (hub, mut w) = self.wires_of(from).ok_or(CircError::NoSpan)?;
        hub.open_circuit(node, &mut w)
    }

    /// Closes circuit `c` ending at node `i` ([`Hub::close_circuit`]).
    pub fn close_circuit(&mut self, i: usize, c: CircuitId) -> bool {
        match self.wires_of(i) {
            Some((hub, mut w)) => hub.close_circuit(c, &mut w),
            None => false,
        }
    }

    /// The link that circuit `c` (ending at node `i`) runs over, to run
    /// transactions on it: `open(c.id, msg)`, `send`, `send_oneway` with
    /// `hdr.circuit = c.id`. `None` unless node `i` is an endpoint of `c`
    /// and the circuit is not closing.
    pub fn circuit_link(&mut self, i: usize, c: CircuitId) -> Option<&mut Link> {
        let v = self.hub(i)?.circuit(c)?;
        if v.kind == CircuitKind::Relay || v.closing {
            return None;
        }
        let (e, s) = end_of(c.link);
        self.edges.get_mut(e)?.as_mut()?.ends.get_mut(s)
    }

    /// Node `i`'s end of link `lid`.
    pub fn link_end(&self, lid: LinkId) -> Option<&Link> {
        let (e, s) = end_of(lid);
        self.edges.get(e)?.as_ref()?.ends.get(s)
    }

    /// The live links of node `i`.
    pub fn ports(&self, i: usize) -> Vec<LinkId> {
        self.nodes
            .get(i)
            .map(|n| n.ports.iter().copied().collect())
            .unwrap_or_default()
    }

    /// The first live edge joining `a` and `b`.
    pub fn edge_between(&self, a: usize, b: usize) -> Option<EdgeId> {
        self.edges()
            .into_iter()
            .find(|&(_, x, y)| (x, y) == (a, b) || (x, y) == (b, a))
            .map(|(e, _, _)| e)
    }

    /// Takes what arrived on circuits ending at node `i`.
    pub fn take_inbox(&mut self, i: usize) -> Vec<Delivered> {
        self.nodes
            .get_mut(i)
            .map(|n| std::mem::take(&mut n.inbox))
            .unwrap_or_default()
    }

    /// Takes the circuit events of node `i`.
    pub fn take_circuit_events(&mut self, i: usize) -> Vec<CircuitEvent> {
        self.nodes
            .get_mut(i)
            .map(|n| std::mem::take(&mut n.circ_events))
            .unwrap_or_default()
    }

    /// Circuits (endpoints and relayed pairs) over all live nodes.
    pub fn circuit_total(&self) -> usize {
        self.nodes
            .iter()
            .filter_map(|n| n.hub.as_ref())
            .map(Hub::circuit_count)
            .sum()
    }
}
