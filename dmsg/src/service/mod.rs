//! The threaded node service: the LNK layer of one node shared by the
//! driver threads of all its connections (the C library's
//! `dmsg_master_service` threads around the global cluster state), the DBG
//! shell protocol, and TCP connection setup.
//!
//! - [`Node`]: one [`Hub`] behind a mutex, the table of live connections
//!   ([`LinkId`] → [`Conn`]), and a [`Links`] implementation over them
//!   ([`NodeLinks`]). Several nodes may live in one process: nothing is
//!   global.
//! - [`Node::serve`] (a thread per connection) and [`Node::serve_here`] (on
//!   the caller's thread): the master service of STATE.md §8.2 in Rust. See
//!   [`ServeOptions`] for the callbacks.
//! - [`dbg`](mod@dbg): the DBG protocol of §8.3 and the daemon's default shell
//!   ([`NodeShell`]).
//! - [`net`]: [`connect`] (`dmsg_connect`) and a listener that serves every
//!   accepted connection on a node ([`Node::listen`]).
//!
//! # Locks
//!
//! ```text
//!  Node ─ core mutex ─┬─ Hub
//!                     └─ conns: LinkId ─► Conn ─ link mutex ─ Link
//! ```
//!
//! The only order is **core lock, then a link lock**. Under the core lock the
//! hub reaches the links through [`Conn::with_link_nowait`], which never
//! waits for the transmit queue to drain (a driver blocked on the core lock
//! could otherwise wait for a driver that waits for it). A driver never
//! holds its link lock while calling into the node: its
//! [`crate::runtime::Handler`] callbacks run with no lock held.
//!
//! Events ([`ServiceEvent`]: node ADD/DEL and the other hub events, links
//! coming up and going down, refused LNK input) are queued under the core
//! lock, in the order the hub produced them, and handed to the callbacks
//! of [`Node::on_event`] and the channels of [`Node::subscribe`] **after**
//! the core lock is released, one at a time and in that order. A callback
//! may call any method of the node (events it causes are delivered after
//! it returns).
//!
//! # Example
//!
//! Two nodes joined by a socketpair; each sees the other's span:
//!
//! ```
//! use dmsg::service::{Node, ServeOptions};
//! use dmsg::sim::default_span;
//! use std::os::unix::net::UnixStream;
//! use std::time::{Duration, Instant};
//!
//! let (a, b) = (Node::default(), Node::default());
//! a.add_local_span(default_span(0));
//! b.add_local_span(default_span(1));
//! let (sa, sb) = UnixStream::pair().unwrap();
//! let ha = a.serve(sa, ServeOptions::new("a-b")).unwrap();
//! let hb = b.serve(sb, ServeOptions::new("b-a")).unwrap();
//!
//! let deadline = Instant::now() + Duration::from_secs(10);
//! while a.nodes().len() < 2 || b.nodes().len() < 2 {
//!     assert!(Instant::now() < deadline, "no convergence");
//!     std::thread::sleep(Duration::from_millis(5));
//! }
//! assert!(a.tree().contains("(node1)"));
//!
//! ha.shutdown();
//! ha.join();
//! hb.join();
//! assert_eq!(a.nodes().len(), 1, "b's span went with the link");
//! ```

mod circuit;
pub mod dbg;
pub mod net;
mod serve;
pub mod volconf;

pub use circuit::{Circuit, CircuitCallback, CircuitIncoming, RELAY_QUEUE_FACTOR, RELAY_WAIT};
pub use dbg::{circuit_printf, shell_text, NodeShell, Shell, ShellCtx, PRINTF_MAX};
pub use net::{
    connect, connect_timeout, connect_unless, split_host_port, ListenerHandle, CONNECT_TIMEOUT,
};
pub use serve::{
    ExitCallback, MessageCallback, Negotiate, ServeOptions, ServiceHandle, TextCallback,
};
pub use volconf::{SlotInfo, SlotState, VolconfConfig};

use crate::crypto::{OsRandom, RandomSource};
use crate::link::{CircuitRole, Event, LinkError, SendError};
use crate::lnk::{
    CircuitEvent, Handled, Hub, HubConfig, HubEvent, HubStats, LinkId, Links, LnkError,
    LocalSpanId, NodeView, SpanRef,
};
use crate::runtime::Conn;
use crate::state::TxnId;
use crate::wire::constants::PEER_CLUSTER;
use crate::wire::{FrameRef, Header, LnkConn, LnkSpan, Message};
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};

/// What a [`Node`] reports to its subscribers, in the order it happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServiceEvent {
    /// A link was registered with the node and its `LNK_CONN` sent.
    LinkUp {
        /// Its id.
        link: LinkId,
        /// Its label in the tree dump (the fd number for served sockets).
        via: i64,
        /// The label given in [`ServeOptions`].
        label: String,
    },
    /// A link went down and was removed from the node (its spans were
    /// withdrawn and the relays they fed were closed on the other links).
    LinkDown {
        /// Its id.
        link: LinkId,
        /// Its label.
        label: String,
        /// Why it went down.
        reason: LinkError,
    },
    /// An event of the hub: node ADD/DEL, volconf, media gone.
    Hub(HubEvent),
    /// The hub refused an LNK input on a link (it already answered on the
    /// wire where the protocol allows it; the link keeps working).
    Refused {
        /// The link.
        link: LinkId,
        /// What was wrong.
        error: LnkError,
    },
    /// A circuit ending here came up, was accepted, or went down (see
    /// [`Circuit`]).
    Circuit(CircuitEvent),
}

/// One live connection of a node.
#[derive(Debug)]
struct Entry {
    conn: Conn,
    label: String,
}

/// What the core mutex protects.
#[derive(Debug)]
struct Core {
    hub: Hub,
    conns: BTreeMap<LinkId, Entry>,
    /// Messages the hub queued on the links.
    sent: u64,
}

type Callback = Arc<dyn Fn(&ServiceEvent) + Send + Sync>;

#[derive(Default)]
struct Subscribers {
    callbacks: Vec<Callback>,
    channels: Vec<Sender<ServiceEvent>>,
}

struct Inner {
    core: Mutex<Core>,
    /// Events queued under the core lock, not yet delivered.
    pending: Mutex<VecDeque<ServiceEvent>>,
    /// Held by the thread delivering events (try-locked: whoever holds it
    /// delivers everything queued, so delivery is serialized and ordered).
    delivering: Mutex<()>,
    subscribers: Mutex<Subscribers>,
    next_link: AtomicU64,
    /// Handles and handlers of the circuits ending here.
    endpoints: circuit::Endpoints,
    /// The volconf workers, once enabled ([`Node::enable_volconf`]).
    volconf: Mutex<Option<Arc<volconf::Volconf>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The [`Links`] of a node: its live connections, reached with
/// [`Conn::with_link_nowait`] (never blocks, so it is safe under the core
/// lock). A link that is not (or no longer) in the table answers
/// [`SendError::LinkDown`].
pub struct NodeLinks<'a> {
    conns: &'a mut BTreeMap<LinkId, Entry>,
    sent: &'a mut u64,
    /// A link whose transmit queue a forwarded message left over its
    /// limit (see [`Node::relay`]).
    congested: Option<Conn>,
    /// `Some` while relaying a batch: forwarded messages are queued
    /// without waking the far link's driver, and the links they were
    /// queued on are listed here, to be flushed ([`Conn::flush`]) once
    /// the core lock is released.
    deferred: Option<Vec<Conn>>,
}

impl fmt::Debug for NodeLinks<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeLinks")
            .field("links", &self.conns.len())
            .finish_non_exhaustive()
    }
}

impl NodeLinks<'_> {
    fn with<R>(
        &mut self,
        link: LinkId,
        f: impl FnOnce(&mut crate::link::Link) -> Result<R, SendError>,
    ) -> Result<R, SendError> {
        let entry = self.conns.get(&link).ok_or(SendError::LinkDown)?;
        let r = entry.conn.with_link_nowait(f);
        if r.is_ok() {
            *self.sent += 1;
        }
        r
    }

    /// The connection of `link`, if it is live.
    pub fn conn(&self, link: LinkId) -> Option<&Conn> {
        self.conns.get(&link).map(|e| &e.conn)
    }

    /// [`Links::forward_frame`] of `frames` (their circuits rewritten
    /// already), in order, under one hold of `link`'s lock. Stops at the
    /// first that cannot be queued: returns how many were, or the error
    /// when not one was.
    pub(super) fn forward_frames(
        &mut self,
        link: LinkId,
        frames: &[FrameRef<'_>],
    ) -> Result<usize, SendError> {
        self.relayed(link, |l, bound| {
            let mut queued = 0;
            for frame in frames {
                let r = if l.tx_len() >= bound {
                    Err(SendError::Congested)
                } else {
                    l.forward_frame(frame)
                };
                match r {
                    Ok(()) => queued += 1,
                    Err(e) if queued == 0 => return Err(e),
                    Err(_) => break,
                }
            }
            Ok(queued)
        })
    }

    /// Queues relayed traffic on `link` with `queue`, which is given the
    /// bound past which it must not queue ([`circuit::RELAY_QUEUE_FACTOR`]
    /// times the limit: [`SendError::Congested`]) and says how many
    /// messages it queued. Notes the link as congested when its queue is
    /// over the limit after, and, in a deferred batch, as touched
    /// (flushed once the batch is done).
    fn relayed(
        &mut self,
        link: LinkId,
        queue: impl FnOnce(&mut crate::link::Link, usize) -> Result<usize, SendError>,
    ) -> Result<usize, SendError> {
        let entry = self.conns.get(&link).ok_or(SendError::LinkDown)?;
        let limit = entry.conn.tx_limit();
        let bound = limit.saturating_mul(circuit::RELAY_QUEUE_FACTOR);
        let queue = |l: &mut crate::link::Link| {
            let n = queue(l, bound)?;
            Ok::<_, SendError>((n, l.tx_len() >= limit))
        };
        let (n, over) = match self.deferred.as_mut() {
            Some(touched) => {
                let r = entry.conn.with_link_deferred(queue)?;
                if !touched.iter().any(|c| c.same(&entry.conn)) {
                    touched.push(entry.conn.clone());
                }
                r
            }
            None => entry.conn.with_link_nowait(queue)?,
        };
        *self.sent += n as u64;
        if over {
            self.congested = Some(entry.conn.clone());
        }
        Ok(n)
    }
}

impl Links for NodeLinks<'_> {
    fn open(&mut self, link: LinkId, msg: Message) -> Result<(TxnId, u64), SendError> {
        self.with(link, |l| {
            let id = l.open(0, msg)?;
            l.txn(id)
                .map(|t| (id, t.msgid))
                .ok_or(SendError::UnknownTxn(id))
        })
    }
    fn send(&mut self, link: LinkId, txn: TxnId, msg: Message) -> Result<(), SendError> {
        self.with(link, |l| l.send(txn, msg))
    }
    fn reply(&mut self, link: LinkId, txn: TxnId, error: u32) -> Result<(), SendError> {
        self.with(link, |l| l.reply(txn, error))
    }
    fn result(&mut self, link: LinkId, txn: TxnId, error: u32) -> Result<(), SendError> {
        self.with(link, |l| l.result(txn, error))
    }
    fn reply_oneway(&mut self, link: LinkId, to: &Header, error: u32) -> Result<(), SendError> {
        self.with(link, |l| l.reply_oneway(to, error))
    }
    fn forward(&mut self, link: LinkId, msg: Message) -> Result<(), SendError> {
        self.relayed(link, |l, bound| {
            if l.tx_len() >= bound {
                return Err(SendError::Congested);
            }
            l.forward(msg)?;
            Ok(1)
        })
        .map(|_| ())
    }
    fn forward_frame(&mut self, link: LinkId, frame: &FrameRef<'_>) -> Result<(), SendError> {
        self.forward_frames(link, std::slice::from_ref(frame))
            .map(|_| ())
    }
    fn add_circuit(&mut self, link: LinkId, id: u64, role: CircuitRole) -> Result<(), SendError> {
        let entry = self.conns.get(&link).ok_or(SendError::LinkDown)?;
        entry.conn.with_link_nowait(|l| {
            if l.is_down() {
                return Err(SendError::LinkDown);
            }
            l.add_circuit(id, role);
            Ok(())
        })
    }
    fn remove_circuit(&mut self, link: LinkId, id: u64, error: u32) {
        if let Some(entry) = self.conns.get(&link) {
            entry.conn.with_link_nowait(|l| l.remove_circuit(id, error));
        }
    }
}

/// The `LNK_CONN` the master service sends on every link
/// (`dmsg_master_service`): peer_mask and pfs_mask all ones, peer type
/// CLUSTER, everything else zero.
pub fn master_conn() -> LnkConn {
    LnkConn {
        peer_mask: !0,
        peer_type: PEER_CLUSTER,
        pfs_mask: !0,
        ..LnkConn::default()
    }
}

/// A random non-zero rnss for a node (the C library's `DMsgRNSS`).
pub fn random_rnss() -> u32 {
    let mut b = [0u8; 4];
    let r = if OsRandom.fill(&mut b).is_ok() {
        u32::from_ne_bytes(b)
    } else {
        // No CSPRNG: the rnss only breaks ties, any spread will do.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        t ^ std::process::id().rotate_left(16)
    };
    r | 1
}

/// One cluster node run over real connections: see the module
/// documentation. Cheap to clone (all clones are the same node).
#[derive(Clone)]
pub struct Node {
    inner: Arc<Inner>,
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let core = lock(&self.inner.core);
        f.debug_struct("Node")
            .field("rnss", &core.hub.rnss())
            .field("links", &core.conns.len())
            .finish_non_exhaustive()
    }
}

impl Default for Node {
    /// A node with a random rnss and 2 relays per node per connection.
    fn default() -> Self {
        Node::new(HubConfig::new(random_rnss()))
    }
}

impl Node {
    /// A node with no links and no local spans.
    pub fn new(cfg: HubConfig) -> Node {
        Node {
            inner: Arc::new(Inner {
                core: Mutex::new(Core {
                    hub: Hub::new(cfg),
                    conns: BTreeMap::new(),
                    sent: 0,
                }),
                pending: Mutex::new(VecDeque::new()),
                delivering: Mutex::new(()),
                subscribers: Mutex::new(Subscribers::default()),
                next_link: AtomicU64::new(1),
                endpoints: circuit::Endpoints::default(),
                volconf: Mutex::new(None),
            }),
        }
    }

    /// Runs `f` under the core lock with the hub, the links and a list of
    /// extra events; queues the hub's events and the extras (in that
    /// order), releases the lock, then delivers.
    fn locked<R>(
        &self,
        f: impl FnOnce(&mut Hub, &mut NodeLinks<'_>, &mut Vec<ServiceEvent>) -> R,
    ) -> R {
        let r = {
            let mut guard = lock(&self.inner.core);
            let Core { hub, conns, sent } = &mut *guard;
            let mut links = NodeLinks {
                conns,
                sent,
                congested: None,
                deferred: None,
            };
            let mut extra = Vec::new();
            let r = f(hub, &mut links, &mut extra);
            let mut pending = lock(&self.inner.pending);
            while let Some(e) = hub.poll_event() {
                pending.push_back(ServiceEvent::Hub(e));
            }
            while let Some(e) = hub.poll_circuit_event() {
                pending.push_back(ServiceEvent::Circuit(e));
            }
            pending.extend(extra);
            r
        };
        self.deliver();
        r
    }

    /// Delivers the queued events unless another thread (or an outer call
    /// on this thread) is delivering: that one delivers them.
    fn deliver(&self) {
        loop {
            let guard = match self.inner.delivering.try_lock() {
                Ok(g) => g,
                Err(TryLockError::WouldBlock) => return,
                Err(TryLockError::Poisoned(p)) => p.into_inner(),
            };
            loop {
                let next = lock(&self.inner.pending).pop_front();
                let Some(ev) = next else { break };
                if let ServiceEvent::Circuit(e) = &ev {
                    self.circuit_event(e);
                }
                let callbacks = {
                    let mut subs = lock(&self.inner.subscribers);
                    subs.channels.retain(|tx| tx.send(ev.clone()).is_ok());
                    subs.callbacks.clone()
                };
                for cb in callbacks {
                    cb(&ev);
                }
            }
            drop(guard);
            // Something queued between our last look and the unlock, by a
            // thread that found us delivering, is ours to deliver.
            if lock(&self.inner.pending).is_empty() {
                return;
            }
        }
    }

    /// Runs `f` with the hub and the node's links, under the core lock (the
    /// entry point for what the node service does not wrap, e.g. the
    /// circuit layer or the C ABI). Do not block in `f`, and do not call
    /// other methods of this node from it (the core lock is not
    /// re-entrant). Events the hub produces are delivered after `f`
    /// returns and the lock is released.
    pub fn with_hub<R>(&self, f: impl FnOnce(&mut Hub, &mut NodeLinks<'_>) -> R) -> R {
        self.locked(|hub, links, _| f(hub, links))
    }

    /// Calls `f` for every [`ServiceEvent`] from now on, on whichever
    /// thread delivers it, with no node lock held.
    pub fn on_event(&self, f: impl Fn(&ServiceEvent) + Send + Sync + 'static) {
        lock(&self.inner.subscribers).callbacks.push(Arc::new(f));
    }

    /// A channel of every [`ServiceEvent`] from now on. Dropping the
    /// receiver unsubscribes.
    pub fn subscribe(&self) -> Receiver<ServiceEvent> {
        let (tx, rx) = mpsc::channel();
        lock(&self.inner.subscribers).channels.push(tx);
        rx
    }

    /// Registers a span of this node's own (what the HAMMER2 kernel side
    /// advertises) and relays it on every link.
    pub fn add_local_span(&self, span: LnkSpan) -> LocalSpanId {
        self.locked(|hub, links, _| {
            let id = hub.add_local_span(span);
            hub.signal(links);
            id
        })
    }

    /// Withdraws a local span (its relays are closed); false if there is no
    /// such span.
    pub fn remove_local_span(&self, id: LocalSpanId) -> bool {
        self.locked(|hub, links, _| {
            let done = hub.remove_local_span(id, links);
            hub.signal(links);
            done
        })
    }

    /// The tree dump of STATE.md §9.7 (`dmsg_shell_tree`).
    pub fn tree(&self) -> String {
        lock(&self.inner.core).hub.tree()
    }

    /// The tree dump, one line (ending in a newline) per element.
    pub fn tree_lines(&self) -> Vec<String> {
        lock(&self.inner.core).hub.tree_lines()
    }

    /// `dmsg_debug_findspan`: the first received span with this msgid.
    pub fn findspan(&self, msgid: u64) -> Option<SpanRef> {
        lock(&self.inner.core).hub.findspan(msgid)
    }

    /// Every node this node knows (its own spans included), registry order.
    pub fn nodes(&self) -> Vec<NodeView> {
        lock(&self.inner.core).hub.nodes()
    }

    /// The hub's counts.
    pub fn stats(&self) -> HubStats {
        lock(&self.inner.core).hub.stats()
    }

    /// Messages the hub has queued on the links since the node was made.
    pub fn messages_sent(&self) -> u64 {
        lock(&self.inner.core).sent
    }

    /// The live links, with their labels.
    pub fn links(&self) -> Vec<(LinkId, String)> {
        lock(&self.inner.core)
            .conns
            .iter()
            .map(|(l, e)| (*l, e.label.clone()))
            .collect()
    }

    /// The connection of a live link.
    pub fn conn(&self, link: LinkId) -> Option<Conn> {
        lock(&self.inner.core)
            .conns
            .get(&link)
            .map(|e| e.conn.clone())
    }

    /// Stops the volconf workers (waiting for them and their connections)
    /// and asks every live link to shut down (each service ends as on link
    /// loss).
    pub fn shutdown(&self) {
        self.stop_volconf();
        let conns: Vec<Conn> = lock(&self.inner.core)
            .conns
            .values()
            .map(|e| e.conn.clone())
            .collect();
        for c in conns {
            c.shutdown();
        }
    }

    /// A fresh link id, never used before on this node.
    pub fn new_link_id(&self) -> LinkId {
        LinkId(self.inner.next_link.fetch_add(1, Ordering::Relaxed))
    }

    /// Registers a link driven elsewhere (by [`Node::serve`], or by a
    /// caller running its own [`crate::runtime::Driver`]): the hub learns
    /// it with label `via`, and if `lnk_conn` is given our `LNK_CONN` is
    /// opened on it. Then feed it every event with [`Node::dispatch`] and
    /// call [`Node::signal`] after each batch.
    pub fn attach(
        &self,
        link: LinkId,
        conn: Conn,
        via: i64,
        label: &str,
        lnk_conn: Option<&LnkConn>,
    ) -> Result<(), SendError> {
        self.locked(|hub, links, extra| {
            links.conns_mut_insert(link, conn, label);
            hub.add_link(link, via);
            extra.push(ServiceEvent::LinkUp {
                link,
                via,
                label: label.to_owned(),
            });
            if let Some(c) = lnk_conn {
                hub.open_conn(link, c, links)?;
            }
            Ok(())
        })
    }

    /// Feeds one event of `link` to the hub (`dmsg_msg_lnk`).
    /// [`Event::Down`] removes the link from the hub and from the node and
    /// runs the relay selection at once (no signal follows a link's end).
    /// [`Handled::NotMine`] means it is not LNK business: hand it to the
    /// DBG protocol or the application. A refused input is also reported
    /// as [`ServiceEvent::Refused`].
    pub fn dispatch(&self, link: LinkId, ev: &Event) -> Result<Handled, LnkError> {
        self.locked(|hub, links, extra| {
            let r = hub.on_event(link, ev, links);
            if let Err(e) = &r {
                extra.push(ServiceEvent::Refused {
                    link,
                    error: e.clone(),
                });
            }
            if let Event::Down(reason) = ev {
                hub.remove_link(link, links);
                let label = links.conns_mut_remove(link);
                hub.signal(links);
                extra.push(ServiceEvent::LinkDown {
                    link,
                    label: label.unwrap_or_default(),
                    reason: reason.clone(),
                });
            }
            r
        })
    }

    /// Removes a link attached with [`Node::attach`] whose driver will not
    /// report [`Event::Down`] (it never ran): as if it had gone down with
    /// `reason`.
    pub fn detach(&self, link: LinkId, reason: LinkError) {
        let _ = self.dispatch(link, &Event::Down(reason));
    }

    /// Removes `link` as [`Node::detach`] does if it is still attached.
    fn forget(&self, link: LinkId, reason: &LinkError) {
        if lock(&self.inner.core).conns.contains_key(&link) {
            self.detach(link, reason.clone());
        }
    }

    /// Runs the relay selection for what changed (`dmsg_msg_lnk_signal`).
    pub fn signal(&self) {
        self.locked(|hub, links, _| hub.signal(links));
    }
}

impl NodeLinks<'_> {
    fn conns_mut_insert(&mut self, link: LinkId, conn: Conn, label: &str) {
        self.conns.insert(
            link,
            Entry {
                conn,
                label: label.to_owned(),
            },
        );
    }

    fn conns_mut_remove(&mut self, link: LinkId) -> Option<String> {
        self.conns.remove(&link).map(|e| e.label)
    }
}
