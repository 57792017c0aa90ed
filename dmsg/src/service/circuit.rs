//! Virtual circuits on a threaded [`Node`] (STATE.md §7): relaying between
//! the node's connections, circuits that end here, and the user side of
//! them.
//!
//! - **Relaying.** A frame received on a circuit this node relays is
//!   forwarded from the receiving driver's read buffer when that read holds
//!   it whole ([`Event::RelayFrame`](crate::link::Event::RelayFrame),
//!   [`Node::relay_frames`]): checked, then its header re-encoded for the
//!   paired link and its aux copied once, onto that link's queue; no
//!   message is built, nothing allocated per frame, and the frames of a
//!   read that go to one link are queued under one hold of its lock. A
//!   frame that a read cuts in two arrives as a message
//!   ([`Event::Relay`]), handed to [`Hub::relay_message`] by value
//!   ([`Node::relay_batch`]), in order with the others. Either way the
//!   relayed traffic of one read is queued under one hold of the core lock,
//!   then written to the far socket by the relaying thread itself when the
//!   far link's driver is not writing ([`Conn::flush`]), with no wakeup of
//!   that driver.
//!   When that link's transmit queue is over its limit, the relaying thread
//!   waits (outside every node lock) for it to drain, for at most
//!   [`RELAY_WAIT`]: a fast sender is slowed down to the pace of the far
//!   link instead of growing the relay's queue, and two relays waiting on
//!   each other cannot deadlock. A queue that grows anyway (its peer has
//!   stopped reading: every wait runs out) is bounded: a message that
//!   finds it at [`RELAY_QUEUE_FACTOR`] times its limit is not queued, and
//!   its circuit is torn down at both ends with `LOSTLINK`
//!   ([`CircError::Congested`](crate::lnk::CircError::Congested)).
//! - **Endpoints.** [`Node::open_circuit`] and [`Node::open_circuit_to`]
//!   return a [`Circuit`]: its transactions and one-way messages run on the
//!   circuit's link with `head.circuit` set, and what the far end sends on
//!   it (plus the circuit's up/down events) arrives on the handle's
//!   channel as [`CircuitIncoming`]. Dropping the handle closes the
//!   circuit.
//! - **Accepted circuits** (a peer opened a circuit to one of our spans):
//!   a `DBG_SHELL` line on one runs the node's shell ([`Node::set_shell`],
//!   or else the shell of the link it came on), so `tree` sent over a
//!   circuit answers with this node's tree; other traffic goes to
//!   [`Node::on_circuit_message`], or else to the link's message callback,
//!   or else a transaction is refused with `DMSG_ERR_NOSUPP`.
//! - **Events.** Every [`CircuitEvent`] of the hub is reported to the
//!   node's subscribers as [`ServiceEvent::Circuit`] and, for a circuit
//!   with a handle, on the handle's channel.
//!
//! [`ServiceEvent::Circuit`]: super::ServiceEvent::Circuit

use super::dbg::Shell;
use super::{lock, Node, ServiceEvent};
use crate::link::{Event, SendError};
use crate::lnk::{CircError, CircuitEvent, CircuitId, CircuitView, Hub, LinkId, LnkError, NodeId};
use crate::runtime::Conn;
use crate::state::{TxnId, TxnInfo};
use crate::wire::{FrameRef, Message};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Longest time a relaying thread waits for the paired link's transmit
/// queue to fall below its limit before it goes on anyway.
pub const RELAY_WAIT: Duration = Duration::from_millis(50);

/// A relay queues nothing more on a link whose transmit queue holds this
/// many times its limit: the circuit of the message is torn down instead
/// (see the module documentation).
pub const RELAY_QUEUE_FACTOR: usize = 4;

/// What arrives on a [`Circuit`]'s channel, in order per kind (the events
/// come from the node's event delivery, the messages from the link's
/// service thread, so a `Down` may overtake the aborts of the circuit's
/// transactions).
#[derive(Debug)]
pub enum CircuitIncoming {
    /// The far end accepted the circuit (the end-to-end acknowledgement).
    Up,
    /// A message on the circuit: one-way (`txn` is `None`) or inside a
    /// transaction (as [`Event::Message`]; the aborts of the circuit's
    /// transactions when it goes down arrive this way too).
    Message {
        /// The message.
        msg: Message,
        /// Its transaction, after this message was accounted for.
        txn: Option<TxnInfo>,
    },
    /// The circuit is gone, with this error (0 for an orderly close); its
    /// transactions were aborted.
    Down(u32),
}

/// Handles traffic on accepted circuits that have no handle: the link's
/// connection, the circuit, and the event (a message, as
/// [`Event::Message`]). Runs on the link's service thread with no node
/// lock held.
pub type CircuitCallback = Arc<dyn Fn(&Conn, CircuitId, Event) + Send + Sync>;

/// The endpoint tables of a node.
#[derive(Default)]
pub(super) struct Endpoints {
    /// Circuit → the channel of its [`Circuit`] handle.
    sinks: Mutex<BTreeMap<CircuitId, Sender<CircuitIncoming>>>,
    /// The shell for `DBG_SHELL` lines on accepted circuits.
    shell: Mutex<Option<Arc<dyn Shell>>>,
    /// Where other traffic on accepted circuits goes.
    on_message: Mutex<Option<CircuitCallback>>,
}

impl Endpoints {
    fn sink(&self, c: CircuitId) -> Option<Sender<CircuitIncoming>> {
        lock(&self.sinks).get(&c).cloned()
    }
}

/// A circuit that ends at this node, opened with [`Node::open_circuit`] or
/// [`Node::open_circuit_to`]. Dropping it closes the circuit (if it is
/// still open) and stops its deliveries.
pub struct Circuit {
    node: Node,
    id: CircuitId,
    conn: Conn,
    rx: Receiver<CircuitIncoming>,
}

impl fmt::Debug for Circuit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Circuit")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Circuit {
    /// The circuit: its link and its id there (`head.circuit`).
    pub fn id(&self) -> CircuitId {
        self.id
    }

    /// The connection of the circuit's link.
    pub fn conn(&self) -> &Conn {
        &self.conn
    }

    /// Opens a transaction on the circuit with `msg` (CREATE, no REPLY).
    /// Follow it with [`Circuit::send`], [`Circuit::reply`].
    pub fn open(&self, msg: Message) -> Result<TxnId, SendError> {
        let id = self.id.id;
        self.conn.with_link(|l| l.open(id, msg))
    }

    /// Sends `msg` inside transaction `txn` (one of the circuit's).
    pub fn send(&self, txn: TxnId, msg: Message) -> Result<(), SendError> {
        self.conn.with_link(|l| l.send(txn, msg))
    }

    /// Closes our side of `txn` with an `LNK_ERROR` carrying `error`.
    pub fn reply(&self, txn: TxnId, error: u32) -> Result<(), SendError> {
        self.conn.with_link(|l| l.reply(txn, error))
    }

    /// Sends `msg` one-way on the circuit (`head.circuit` is set).
    pub fn send_oneway(&self, mut msg: Message) -> Result<(), SendError> {
        msg.hdr.circuit = self.id.id;
        self.conn.with_link(|l| l.send_oneway(msg))
    }

    /// The next delivery, waiting at most `timeout`; `None` on timeout (or
    /// if the node is gone).
    pub fn recv_timeout(&self, timeout: Duration) -> Option<CircuitIncoming> {
        self.rx.recv_timeout(timeout).ok()
    }

    /// The next delivery, if one is waiting.
    pub fn try_recv(&self) -> Option<CircuitIncoming> {
        self.rx.try_recv().ok()
    }

    /// The circuit as the hub sees it; `None` once it is freed.
    pub fn view(&self) -> Option<CircuitView> {
        self.node.circuit(self.id)
    }

    /// Closes the circuit now (its transactions are aborted, its
    /// `LNK_CIRC` closed with error 0); false if it was already closing or
    /// gone. The handle still receives what was in flight.
    pub fn close(&self) -> bool {
        self.node.close_circuit(self.id)
    }
}

impl Drop for Circuit {
    fn drop(&mut self) {
        lock(&self.node.inner.endpoints.sinks).remove(&self.id);
        self.node.close_circuit(self.id);
    }
}

impl Node {
    /// Opens a circuit to node `to` through the link its best received
    /// span came in on ([`Hub::open_circuit`]). The circuit can carry
    /// traffic at once; [`CircuitIncoming::Up`] reports the far end's
    /// acceptance.
    pub fn open_circuit(&self, to: NodeId) -> Result<Circuit, CircError> {
        self.open_with_sink(|hub, links| hub.open_circuit(to, links))
    }

    /// Opens a circuit on the span received on `link` with msgid `msgid`
    /// ([`Hub::open_circuit_to`]).
    pub fn open_circuit_to(&self, link: LinkId, msgid: u64) -> Result<Circuit, CircError> {
        self.open_with_sink(|hub, links| hub.open_circuit_to(link, msgid, links))
    }

    /// Opens a circuit on the span received on `link` with msgid `msgid`
    /// without a handle (what the shell's `circ` does): it lives until
    /// [`Node::close_circuit`], the far end closes it, or its path or span
    /// goes away; its traffic is handled as on an accepted circuit.
    pub fn forge_circuit(&self, link: LinkId, msgid: u64) -> Result<CircuitId, CircError> {
        self.with_hub(|hub, links| hub.open_circuit_to(link, msgid, links))
    }

    fn open_with_sink(
        &self,
        open: impl FnOnce(&mut Hub, &mut super::NodeLinks<'_>) -> Result<CircuitId, CircError>,
    ) -> Result<Circuit, CircError> {
        let (tx, rx) = mpsc::channel();
        let (id, conn) = self.locked(|hub, links, _| {
            let id = open(hub, links)?;
            let conn = links.conn(id.link).cloned().ok_or(CircError::NoSpan)?;
            // Registered under the core lock, so that nothing the far end
            // sends on the circuit can arrive before the sink exists.
            lock(&self.inner.endpoints.sinks).insert(id, tx);
            Ok::<_, CircError>((id, conn))
        })?;
        Ok(Circuit {
            node: self.clone(),
            id,
            conn,
            rx,
        })
    }

    /// Closes a circuit that ends here ([`Hub::close_circuit`]); false if
    /// there is no such open circuit.
    pub fn close_circuit(&self, c: CircuitId) -> bool {
        self.with_hub(|hub, links| hub.close_circuit(c, links))
    }

    /// The circuit named `c` on its link.
    pub fn circuit(&self, c: CircuitId) -> Option<CircuitView> {
        lock(&self.inner.core).hub.circuit(c)
    }

    /// Every circuit this node takes part in (endpoints and relayed
    /// pairs), oldest first.
    pub fn circuits(&self) -> Vec<CircuitView> {
        lock(&self.inner.core).hub.circuits()
    }

    /// Number of circuits, closing ones included.
    pub fn circuit_count(&self) -> usize {
        lock(&self.inner.core).hub.circuit_count()
    }

    /// Number of live [`Circuit`] handles of this node.
    pub fn circuit_handles(&self) -> usize {
        lock(&self.inner.endpoints.sinks).len()
    }

    /// The shell that runs `DBG_SHELL` lines received on accepted circuits
    /// (by default the shell of the link they came on).
    pub fn set_shell(&self, shell: Arc<dyn Shell>) {
        *lock(&self.inner.endpoints.shell) = Some(shell);
    }

    /// The node's shell, if set.
    pub fn shell(&self) -> Option<Arc<dyn Shell>> {
        lock(&self.inner.endpoints.shell).clone()
    }

    /// Where traffic on accepted circuits (other than shell lines) goes
    /// from now on: see [`CircuitCallback`]. Replaces any earlier one.
    pub fn on_circuit_message(&self, f: impl Fn(&Conn, CircuitId, Event) + Send + Sync + 'static) {
        *lock(&self.inner.endpoints.on_message) = Some(Arc::new(f));
    }

    /// The node-wide callback of accepted circuits, if set.
    pub(super) fn circuit_callback(&self) -> Option<CircuitCallback> {
        lock(&self.inner.endpoints.on_message).clone()
    }

    /// Relays `msg`, received on a relay circuit of `link`
    /// ([`Event::Relay`]), to the other half ([`Hub::relay_message`]):
    /// [`Node::relay_batch`] of one message.
    pub fn relay(&self, link: LinkId, msg: Message) {
        self.relay_batch(link, std::iter::once(msg));
    }

    /// Relays `msgs`, received in this order on relay circuits of `link`
    /// ([`Event::Relay`]), each to the other half of its circuit
    /// ([`Hub::relay_message`]), under one hold of the core lock. The far
    /// links' drivers are not woken per message: once the core lock is
    /// released each far link is flushed once ([`Conn::flush`]: this
    /// thread writes the batch to the far socket itself when that link's
    /// driver is not writing, else wakes it). Then, if a far link's
    /// transmit queue is over its limit, waits up to [`RELAY_WAIT`] for it
    /// to drain. A refusal is reported as [`ServiceEvent::Refused`].
    pub fn relay_batch(&self, link: LinkId, msgs: impl IntoIterator<Item = Message>) {
        self.relay_each(link, |hub, links, refused| {
            for msg in msgs {
                if let Err(e) = hub.relay_message(link, msg, links) {
                    refused.push(e);
                }
            }
        });
    }

    /// [`Node::relay_batch`] of frames left where they were read
    /// ([`Event::RelayFrame`], [`Hub::relay_frame`]): their bytes are
    /// copied onto the far links' queues, no message is built.
    ///
    /// [`Event::RelayFrame`]: crate::link::Event::RelayFrame
    pub fn relay_frames(&self, link: LinkId, frames: &[FrameRef<'_>]) {
        self.relay_each(link, |hub, links, refused| {
            let mut rest = frames;
            let mut run = Vec::new();
            while !rest.is_empty() {
                // The longest run of frames routed to one far link, queued
                // under one hold of its lock.
                run.clear();
                let mut far = None;
                for frame in rest {
                    let Some(to) = hub.relay_route(link, frame.hdr.circuit) else {
                        break;
                    };
                    if far.is_some_and(|l| l != to.link) {
                        break;
                    }
                    far = Some(to.link);
                    let mut out = *frame;
                    out.hdr.circuit = to.id;
                    run.push(out);
                }
                let queued = match far {
                    Some(l) => links.forward_frames(l, &run).unwrap_or(0),
                    None => 0,
                };
                // What could not be queued goes one by one, through the
                // hub's answer to a circuit it cannot relay on.
                let done = queued.max(1).min(rest.len());
                if queued == 0 {
                    if let Some(frame) = rest.first() {
                        if let Err(e) = hub.relay_frame(link, frame, links) {
                            refused.push(e);
                        }
                    }
                }
                rest = rest.get(done..).unwrap_or(&[]);
            }
        });
    }

    /// The body of both relays: `relay` runs under one hold of the core
    /// lock, collecting refusals; then the far links are flushed, the
    /// refusals reported, and a congested far link waited for.
    fn relay_each(
        &self,
        link: LinkId,
        relay: impl FnOnce(&mut Hub, &mut super::NodeLinks<'_>, &mut Vec<LnkError>),
    ) {
        // The hot path of a relay: one hold of the core lock and nothing
        // else (relaying produces no hub events to deliver).
        let mut refused = Vec::new();
        let (congested, touched) = {
            let mut guard = lock(&self.inner.core);
            let super::Core { hub, conns, sent } = &mut *guard;
            let mut links = super::NodeLinks {
                conns,
                sent,
                congested: None,
                deferred: Some(Vec::new()),
            };
            relay(hub, &mut links, &mut refused);
            (links.congested.take(), links.deferred.take())
        };
        for conn in touched.iter().flatten() {
            conn.flush();
        }
        if !refused.is_empty() {
            self.locked(|_, _, extra| {
                extra.extend(
                    refused
                        .into_iter()
                        .map(|error| ServiceEvent::Refused { link, error }),
                );
            });
        }
        if let Some(conn) = congested {
            wait_below_limit(&conn, RELAY_WAIT);
        }
    }

    /// Hands a message received on endpoint circuit `c` to its handle;
    /// gives it back if the circuit has none.
    pub(super) fn to_circuit(
        &self,
        c: CircuitId,
        msg: Message,
        txn: Option<TxnInfo>,
    ) -> Option<(Message, Option<TxnInfo>)> {
        let Some(tx) = self.inner.endpoints.sink(c) else {
            return Some((msg, txn));
        };
        // A dropped receiver means the handle is being dropped: its
        // circuit is closing, the message has nowhere to go.
        let _ = tx.send(CircuitIncoming::Message { msg, txn });
        None
    }

    /// Tells a circuit's handle about a hub event (called in delivery
    /// order, with no lock held).
    pub(super) fn circuit_event(&self, e: &CircuitEvent) {
        let (c, what) = match *e {
            CircuitEvent::Up(c) => (c, CircuitIncoming::Up),
            CircuitEvent::Down { circuit, error } => (circuit, CircuitIncoming::Down(error)),
            CircuitEvent::Accepted(_) => return,
        };
        if let Some(tx) = self.inner.endpoints.sink(c) {
            let _ = tx.send(what);
        }
    }
}

/// Waits until `conn`'s transmit queue is below its limit, the link is
/// down, or `max` has passed. Returns at once on the link's own driver
/// thread (which is the one that drains it).
pub(super) fn wait_below_limit(conn: &Conn, max: Duration) {
    if conn.on_driver_thread() {
        return;
    }
    let limit = conn.tx_limit();
    let deadline = Instant::now() + max;
    let mut g = conn.lock();
    while g.link.tx_len() >= limit && !g.link.is_down() {
        let now = Instant::now();
        let Some(left) = deadline
            .checked_duration_since(now)
            .filter(|d| !d.is_zero())
        else {
            return;
        };
        g.waiters += 1;
        let (ng, _) = conn
            .shared
            .drained
            .wait_timeout(g, left)
            .unwrap_or_else(PoisonError::into_inner);
        g = ng;
        g.waiters -= 1;
    }
}
