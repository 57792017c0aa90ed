//! The circuit functions of `<dmsg.h>` (C-ABI.md §4, msg.c; seed era):
//! `dmsg_circuit_hold`, `dmsg_circuit_drop`, `dmsg_circuit_drop_locked` and
//! `dmsg_circuit_relay` (the seed name of `dmsg_circuit_route`), and the
//! library's circuit mirrors.
//!
//! # Circuit mirrors
//!
//! `iocom->circuit0` is the link itself and lives inside the iocom. Every
//! other circuit a link takes part in (a circuit this node opened, one a
//! peer opened to one of our spans, or one half of a pair this node
//! relays) gets a heap `dmsg_circuit` when the library first meets it: its
//! `msgid` is the circuit id on that link, `iocom` the link, `peer` the
//! other half of a relay pair (on the other iocom), `state` the mirror of
//! its `LNK_CIRC` transaction (whose `any.circ` points back at it),
//! `span_state` the mirror of the span it was built on when this iocom has
//! one, `is_relay` 1 for relay halves. Received messages on an endpoint
//! circuit get `msg->circuit` = its mirror, and so do the states of the
//! transactions on it (`state->circuit`).
//!
//! The mirrors are kept in one process-wide registry, keyed by address and
//! by (iocom, circuit id), so that a pointer C hands back is checked
//! before the library dereferences it as a heap mirror.
//!
//! # References
//!
//! As in the C library (STATE.md §1): every `dmsg_msg` holds one reference
//! on `msg->circuit` from `dmsg_msg_alloc` (or reception) until it is
//! freed; every state mirror holds one on `state->circuit`; the engine
//! holds one while the circuit exists in the link layer, and the
//! `LNK_CIRC` state mirror one while it points at the circuit.
//! `dmsg_circuit_hold` / `dmsg_circuit_drop` let C code keep its own. A
//! heap mirror is freed when the circuit is gone from the engine **and**
//! its count reaches 0, never while C holds a reference. `circuit0` is
//! never freed: a drop that would take it below 1 does nothing.
//!
//! All counts change under the registry lock, which is a leaf lock: the
//! library never takes another lock while holding it.

use crate::mirror::{count_circuit, log, IocomInner};
use crate::types::{dmsg_circuit, dmsg_circuit_t, dmsg_iocom, dmsg_msg_t, dmsg_state};
use core::ffi::c_int;
use core::ptr;
use dmsg::link::Event;
use dmsg::lnk::{CircuitId, CircuitKind, CircuitView, Hub, LinkId};
use dmsg::runtime::Conn;
use dmsg::service::{Node, ServiceEvent};
use dmsg::state::{Origin, TxnId, TxnInfo};
use dmsg::wire::{cmd, FrameRef, Message};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// What the registry knows about one heap mirror.
#[derive(Clone, Copy, Debug)]
struct Entry {
    /// The iocom's address.
    iocom: usize,
    /// The circuit id on that iocom's link.
    id: u64,
    /// The engine still has the circuit (and holds a reference).
    engine: bool,
    /// The `LNK_CIRC` state mirror that holds a reference (its address).
    state: usize,
}

/// Every heap circuit mirror of the process.
#[derive(Debug)]
struct Registry {
    by_addr: BTreeMap<usize, Entry>,
    by_key: BTreeMap<(usize, u64), usize>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    by_addr: BTreeMap::new(),
    by_key: BTreeMap::new(),
});

fn registry() -> MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The reference count of a circuit, as an atomic.
///
/// # Safety
/// `c` points to a live circuit.
unsafe fn refs<'a>(c: *mut dmsg_circuit) -> &'a AtomicI32 {
    // SAFETY: `refs` is an aligned int inside the live circuit; the
    // library changes it only atomically, under the registry lock.
    unsafe { AtomicI32::from_ptr(ptr::addr_of_mut!((*c).refs)) }
}

impl Registry {
    /// Takes one reference from a heap mirror; frees it when the count
    /// reaches 0 and the engine no longer has the circuit.
    fn release(&mut self, addr: usize) {
        let Some(e) = self.by_addr.get(&addr).copied() else {
            return;
        };
        let c = addr as *mut dmsg_circuit;
        // SAFETY: in the registry, so live; we hold its lock.
        let r = unsafe { refs(c) };
        let left = r.load(Ordering::Acquire).saturating_sub(1).max(0);
        r.store(left, Ordering::Release);
        if left == 0 && !e.engine {
            self.free(addr);
        }
    }

    /// Frees a heap mirror: out of the registry, its peer's back pointer
    /// cleared.
    fn free(&mut self, addr: usize) {
        let Some(e) = self.by_addr.remove(&addr) else {
            return;
        };
        self.by_key.remove(&(e.iocom, e.id));
        let c = addr as *mut dmsg_circuit;
        // SAFETY: it was in the registry, so it is a live Box of ours that
        // nothing references any more (count 0, engine gone); its peer, if
        // still registered, is live too.
        unsafe {
            let peer = (*c).peer;
            if !peer.is_null() && self.by_addr.contains_key(&(peer as usize)) && (*peer).peer == c {
                (*peer).peer = ptr::null_mut();
            }
            drop(Box::from_raw(c));
        }
        count_circuit(false);
    }
}

/// The mirror of circuit `id` of `iocom`: `&iocom->circuit0` for 0, the
/// heap mirror if there is one, else NULL.
///
/// # Safety
/// `iocom` points to a live iocom.
pub(crate) unsafe fn lookup(iocom: *mut dmsg_iocom, id: u64) -> *mut dmsg_circuit {
    if id == 0 {
        // SAFETY: live per the contract.
        return unsafe { ptr::addr_of_mut!((*iocom).circuit0) };
    }
    registry()
        .by_key
        .get(&(iocom as usize, id))
        .map_or(ptr::null_mut(), |&a| a as *mut dmsg_circuit)
}

/// The mirror of circuit `id` of `iocom`, made (with the engine's
/// reference) if the library has not met it yet. `circuit0` for 0. NULL
/// only when out of memory.
///
/// # Safety
/// `iocom` points to a live iocom.
pub(crate) unsafe fn ensure(iocom: *mut dmsg_iocom, id: u64) -> *mut dmsg_circuit {
    if id == 0 {
        // SAFETY: live per the contract.
        return unsafe { ptr::addr_of_mut!((*iocom).circuit0) };
    }
    let mut reg = registry();
    if let Some(&a) = reg.by_key.get(&(iocom as usize, id)) {
        return a as *mut dmsg_circuit;
    }
    let c = Box::into_raw(Box::new(dmsg_circuit {
        rbnode: Default::default(),
        msgid: id,
        iocom,
        staterd_tree: Default::default(),
        statewr_tree: Default::default(),
        peer: ptr::null_mut(),
        state: ptr::null_mut(),
        span_state: ptr::null_mut(),
        is_relay: 0,
        refs: 1,
    }));
    let addr = c as usize;
    reg.by_key.insert((iocom as usize, id), addr);
    reg.by_addr.insert(
        addr,
        Entry {
            iocom: iocom as usize,
            id,
            engine: true,
            state: 0,
        },
    );
    count_circuit(true);
    if crate::mirror::debug_level() >= 1 {
        log(format_args!("circuit {id:016x} mirrored at {c:p}"));
    }
    c
}

/// What the engine says about one circuit of an iocom.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Facts {
    /// The other half of a relay pair (a mirror on another iocom), or NULL.
    pub(crate) peer: *mut dmsg_circuit,
    /// The mirror of its `LNK_CIRC` transaction on this iocom, or NULL.
    pub(crate) state: *mut dmsg_state,
    /// The mirror of the span it was built on, or NULL.
    pub(crate) span_state: *mut dmsg_state,
    /// A relay half.
    pub(crate) is_relay: bool,
}

/// Fills in a mirror's fields from the engine. A new `state` takes a
/// reference and gets `state->any.circ` = the mirror; `peer` links both
/// ways.
///
/// # Safety
/// `c` is NULL, `circuit0`, or a mirror of [`ensure`]; the pointers in
/// `f` are NULL or live.
pub(crate) unsafe fn set_facts(c: *mut dmsg_circuit, f: &Facts) {
    let mut reg = registry();
    let addr = c as usize;
    let Some(e) = reg.by_addr.get(&addr).copied() else {
        return;
    };
    // SAFETY: registered, so live; we hold the registry lock, under which
    // the library writes these fields; the peer and states are live per
    // the contract.
    unsafe {
        (*c).is_relay = c_int::from(f.is_relay);
        if !f.span_state.is_null() {
            (*c).span_state = f.span_state;
        }
        if !f.peer.is_null() && reg.by_addr.contains_key(&(f.peer as usize)) {
            (*c).peer = f.peer;
            (*f.peer).peer = c;
        }
        if !f.state.is_null() && e.state != f.state as usize {
            if e.state == 0 {
                refs(c).fetch_add(1, Ordering::AcqRel);
            }
            (*c).state = f.state;
            (*f.state).any.circ = c;
            if let Some(x) = reg.by_addr.get_mut(&addr) {
                x.state = f.state as usize;
            }
        }
    }
}

/// The engine no longer has circuit `id` of `iocom`: its reference goes
/// (the iocom is only compared, never dereferenced).
pub(crate) fn engine_gone(iocom: *mut dmsg_iocom, id: u64) {
    let mut reg = registry();
    let Some(&addr) = reg.by_key.get(&(iocom as usize, id)) else {
        return;
    };
    if let Some(e) = reg.by_addr.get_mut(&addr) {
        if !e.engine {
            return;
        }
        e.engine = false;
    }
    reg.release(addr);
}

/// The circuit ids of `iocom` that the engine still has, per the mirrors.
pub(crate) fn engine_ids(iocom: *mut dmsg_iocom) -> Vec<u64> {
    registry()
        .by_addr
        .values()
        .filter(|e| e.iocom == iocom as usize && e.engine)
        .map(|e| e.id)
        .collect()
}

/// The link of `iocom` is gone: no circuit of it is in the engine any
/// more. Mirrors that C still references stay until the last drop.
pub(crate) fn iocom_gone(iocom: *mut dmsg_iocom) {
    detach(iocom);
    for id in engine_ids(iocom) {
        engine_gone(iocom, id);
    }
}

/// A state mirror is being freed: circuits pointing at it forget it, and
/// the reference an `LNK_CIRC` state held goes.
pub(crate) fn state_freed(state: *mut dmsg_state) {
    let addr = state as usize;
    let mut reg = registry();
    let mut holders = Vec::new();
    for (&c, e) in &reg.by_addr {
        let circ = c as *mut dmsg_circuit;
        // SAFETY: registered, so live; fields written under this lock.
        unsafe {
            if (*circ).state == state {
                (*circ).state = ptr::null_mut();
            }
            if (*circ).span_state == state {
                (*circ).span_state = ptr::null_mut();
            }
        }
        if e.state == addr {
            holders.push(c);
        }
    }
    for c in holders {
        if let Some(e) = reg.by_addr.get_mut(&c) {
            e.state = 0;
        }
        reg.release(c);
    }
}

/// Takes a reference on `c` (a message or state mirror now points at it).
///
/// # Safety
/// `c` is NULL or a live circuit.
pub(crate) unsafe fn hold(c: *mut dmsg_circuit) {
    if c.is_null() {
        return;
    }
    let _reg = registry();
    // SAFETY: live per the contract.
    unsafe { refs(c) }.fetch_add(1, Ordering::AcqRel);
}

/// Gives a reference on `c` back (see the module documentation).
///
/// # Safety
/// `c` is NULL, a heap mirror (checked), or the `circuit0` of a live
/// iocom.
pub(crate) unsafe fn release(c: *mut dmsg_circuit) {
    if c.is_null() {
        return;
    }
    let mut reg = registry();
    if reg.by_addr.contains_key(&(c as usize)) {
        reg.release(c as usize);
        return;
    }
    // SAFETY: not a heap mirror, so an embedded circuit of a live iocom.
    let r = unsafe { refs(c) };
    let now = r.load(Ordering::Acquire);
    if now > 1 {
        r.store(now - 1, Ordering::Release);
    }
}

/// Points a fresh received message at circuit `id` of its iocom (the
/// mirror is made if needed), moving its reference from the circuit it
/// had.
///
/// # Safety
/// `msg` is a live message that only the caller uses, whose `iocom` is
/// live and whose `circuit` holds a reference.
pub(crate) unsafe fn retarget(msg: *mut dmsg_msg_t, id: u64) -> *mut dmsg_circuit {
    // SAFETY: per the contract.
    unsafe {
        let iocom = (*msg).iocom;
        let c = ensure(iocom, id);
        if c.is_null() || c == (*msg).circuit {
            return (*msg).circuit;
        }
        hold(c);
        release((*msg).circuit);
        (*msg).circuit = c;
        c
    }
}

/// Number of heap circuit mirrors alive (for tests).
pub fn heap_circuits() -> usize {
    registry().by_addr.len()
}

/// Takes a reference on `circuit` (C: `dmsg_circuit_hold`). Give it back
/// with `dmsg_circuit_drop`; a circuit is not freed while it is held.
///
/// # Safety
/// `circuit` is NULL (ignored) or a live circuit: an iocom's `circuit0`,
/// or a circuit the library handed out (`msg->circuit`, `state->circuit`,
/// `state->any.circ`) that is still referenced.
#[no_mangle]
pub unsafe extern "C" fn dmsg_circuit_hold(circuit: *mut dmsg_circuit_t) {
    // SAFETY: forwarded contract.
    unsafe { hold(circuit) }
}

/// Gives back a reference taken with `dmsg_circuit_hold` (C:
/// `dmsg_circuit_drop`). A circuit is freed when the link no longer has it
/// and its last reference is dropped; `circuit0` is never freed (a drop
/// that would take its count below 1 does nothing).
///
/// # Safety
/// `circuit` is NULL (ignored), or a circuit on which the caller holds a
/// reference, or an iocom's `circuit0`.
#[no_mangle]
pub unsafe extern "C" fn dmsg_circuit_drop(circuit: *mut dmsg_circuit_t) {
    // SAFETY: forwarded contract.
    unsafe { release(circuit) }
}

/// `dmsg_circuit_drop` for callers that hold the iocom's lock in the
/// original. The library keeps its own lock, so this is the same call.
///
/// # Safety
/// As `dmsg_circuit_drop`.
#[no_mangle]
pub unsafe extern "C" fn dmsg_circuit_drop_locked(circuit: *mut dmsg_circuit_t) {
    // SAFETY: forwarded contract.
    unsafe { release(circuit) }
}

/// The other half of the relay pair that `msg` came on: the peer's iocom
/// and circuit id, from the registry.
fn relay_target(
    iocom: *mut dmsg_iocom,
    circuit: *mut dmsg_circuit,
    id: u64,
) -> Option<(usize, u64)> {
    let reg = registry();
    let addr = match reg.by_addr.get(&(circuit as usize)) {
        Some(_) => circuit as usize,
        None => *reg.by_key.get(&(iocom as usize, id))?,
    };
    let c = addr as *mut dmsg_circuit;
    // SAFETY: registered, so live; `peer` is written under this lock and
    // cleared before the peer is freed.
    let peer = unsafe { (*c).peer };
    let p = reg.by_addr.get(&(peer as usize))?;
    p.engine.then_some((p.iocom, p.id))
}

/// Relays `msg`, received on a non-zero circuit, to the other half of its
/// relay pair (C: `dmsg_circuit_relay`, later `dmsg_circuit_route`): a
/// copy goes out on the peer's link with `head.circuit` = the peer's
/// circuit id, everything else untouched (salt and CRCs are redone).
/// Returns `DMSG_IOQ_ERROR_ROUTED` (21) when it was handed to the peer's
/// link, `DMSG_IOQ_ERROR_BAD_CIRCUIT` (22) for NULL, a message on
/// `circuit0`, or a circuit that is not (or no longer) half of a relay
/// pair, and `DMSG_IOQ_ERROR_EOF` (2) when the peer's link is down.
///
/// The library relays such messages by itself before any callback sees
/// them; this is for C code that calls it. Unlike the original, `msg`
/// stays the caller's (a received message is still freed by the library
/// after the callback).
///
/// # Safety
/// `msg` is NULL or a live message whose `aux_data` holds `aux_size`
/// bytes.
#[no_mangle]
pub unsafe extern "C" fn dmsg_circuit_relay(msg: *mut dmsg_msg_t) -> c_int {
    use crate::lib_consts::{
        DMSG_IOQ_ERROR_BAD_CIRCUIT, DMSG_IOQ_ERROR_EOF, DMSG_IOQ_ERROR_ROUTED,
    };
    if msg.is_null() {
        return DMSG_IOQ_ERROR_BAD_CIRCUIT;
    }
    // SAFETY: live per the contract; any header bits are valid.
    let (iocom, circuit, id) = unsafe { ((*msg).iocom, (*msg).circuit, (*msg).any.head.circuit) };
    let id = if id == 0 && !circuit.is_null() {
        // SAFETY: a message's circuit lives while the message does.
        unsafe { (*circuit).msgid }
    } else {
        id
    };
    if id == 0 {
        return DMSG_IOQ_ERROR_BAD_CIRCUIT;
    }
    let Some((peer_iocom, peer_id)) = relay_target(iocom, circuit, id) else {
        log(format_args!(
            "dmsg_circuit_relay: circuit {id:016x} is not a relayed circuit"
        ));
        return DMSG_IOQ_ERROR_BAD_CIRCUIT;
    };
    // SAFETY: the peer half is in the engine, so its iocom is live.
    let inner = unsafe { crate::mirror::IocomInner::of(peer_iocom as *mut dmsg_iocom) };
    let Some(conn) = inner.and_then(|i| i.conn.clone()) else {
        return DMSG_IOQ_ERROR_EOF;
    };
    // SAFETY: live per the contract.
    let mut m = unsafe { crate::mirror::msg_to_message(msg) };
    m.hdr.circuit = peer_id;
    match conn.with_link(|l| l.forward(m)) {
        Ok(()) => DMSG_IOQ_ERROR_ROUTED,
        Err(e) => {
            crate::mirror::log_send_error("dmsg_circuit_relay", &e);
            DMSG_IOQ_ERROR_EOF
        }
    }
}

// ----- links attached to a node ----------------------------------------

/// An iocom whose link is attached to a [`Node`] (by the LNK layer).
struct Attached {
    node: Node,
    link: LinkId,
    /// The node's identity (the address of its hub).
    key: usize,
}

/// Attached iocoms by address. While an iocom is in this table it is
/// live: it is removed (under this lock) before its link is released.
static ATTACHED: Mutex<BTreeMap<usize, Attached>> = Mutex::new(BTreeMap::new());

/// Nodes (by key) whose events already trigger [`sync_node`].
static WATCHED: Mutex<BTreeSet<usize>> = Mutex::new(BTreeSet::new());

fn attached() -> MutexGuard<'static, BTreeMap<usize, Attached>> {
    ATTACHED.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The identity of a node: the address of its hub, stable for its life.
fn node_key(node: &Node) -> usize {
    node.with_hub(|hub, _| ptr::from_ref::<Hub>(hub) as usize)
}

/// Records that `iocom`'s link is `link` of `node` (call it when the LNK
/// layer attaches the link): from then on the circuits of that link get
/// mirrors, circuit traffic is relayed through the node, and a C
/// `LNK_CIRC|CREATE` becomes a node-managed circuit.
///
/// # Safety
/// `iocom` is live until `dmsg_iocom_core` or `dmsg_iocom_done` ends its
/// link (which forgets the attachment).
pub unsafe fn link_attached(iocom: *mut dmsg_iocom, node: &Node, link: LinkId) {
    let key = node_key(node);
    attached().insert(
        iocom as usize,
        Attached {
            node: node.clone(),
            link,
            key,
        },
    );
    let fresh = WATCHED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(key);
    if fresh {
        node.on_event(move |ev| {
            if !matches!(ev, ServiceEvent::Hub(_) | ServiceEvent::LinkUp { .. }) {
                sync_node(key);
            }
        });
    }
}

/// The node and link of an attached iocom.
pub(crate) fn attachment(iocom: *mut dmsg_iocom) -> Option<(Node, LinkId, usize)> {
    attached()
        .get(&(iocom as usize))
        .map(|a| (a.node.clone(), a.link, a.key))
}

/// Where one circuit of the hub touches one link.
struct Touch {
    id: u64,
    txn: TxnId,
    relay: bool,
    /// The other half of a relay pair.
    other: Option<CircuitId>,
}

fn touches(views: &[CircuitView], link: LinkId) -> Vec<Touch> {
    let mut out = Vec::new();
    for v in views {
        let relay = v.kind == CircuitKind::Relay;
        if v.near.link == link {
            out.push(Touch {
                id: v.near.id,
                txn: v.near_txn,
                relay,
                other: v.far,
            });
        }
        if let (Some(f), Some(t)) = (v.far, v.far_txn) {
            if f.link == link {
                out.push(Touch {
                    id: f.id,
                    txn: t,
                    relay,
                    other: Some(v.near),
                });
            }
        }
    }
    out
}

/// Brings the circuit mirrors of every iocom attached to node `key` in
/// line with the node's hub: a mirror for every circuit, the engine's
/// reference dropped for circuits the hub no longer has, relay halves
/// paired, `LNK_CIRC` states linked.
pub(crate) fn sync_node(key: usize) {
    // One sync per node at a time, always from a fresh snapshot: a second
    // caller (another thread, or this one re-entered from an event the
    // node delivers) only marks the node dirty, and the running sync goes
    // round again. Without this, a thread holding an older snapshot could
    // remake a mirror that a newer sync had just released, and leak it.
    {
        let mut running = syncing();
        if let Some(dirty) = running.get_mut(&key) {
            *dirty = true;
            return;
        }
        running.insert(key, false);
    }
    loop {
        sync_node_once(key);
        let mut running = syncing();
        match running.get_mut(&key) {
            Some(dirty) if *dirty => *dirty = false,
            _ => {
                running.remove(&key);
                return;
            }
        }
    }
}

/// Nodes whose circuit mirrors are being synced, by node key, with whether
/// another sync was asked for meanwhile.
static SYNCING: Mutex<BTreeMap<usize, bool>> = Mutex::new(BTreeMap::new());

fn syncing() -> MutexGuard<'static, BTreeMap<usize, bool>> {
    SYNCING.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One pass of [`sync_node`]: mirrors made or released to match the node.
fn sync_node_once(key: usize) {
    let node = attached()
        .values()
        .find(|a| a.key == key)
        .map(|a| a.node.clone());
    let Some(node) = node else { return };
    // No lock of ours is held here: the node may deliver events (and so
    // call us back) before with_hub returns.
    let views = node.with_hub(|hub, _| hub.circuits());
    let att = attached();
    let mine: Vec<(usize, LinkId)> = att
        .iter()
        .filter(|(_, a)| a.key == key)
        .map(|(&i, a)| (i, a.link))
        .collect();
    let by_link: BTreeMap<LinkId, usize> = mine.iter().map(|&(i, l)| (l, i)).collect();
    for &(io, link) in &mine {
        let iocom = io as *mut dmsg_iocom;
        let t = touches(&views, link);
        for x in &t {
            // SAFETY: attached, so live (we hold the table lock).
            unsafe { ensure(iocom, x.id) };
        }
        for id in engine_ids(iocom) {
            if !t.iter().any(|x| x.id == id) {
                engine_gone(iocom, id);
            }
        }
    }
    for &(io, link) in &mine {
        let iocom = io as *mut dmsg_iocom;
        // SAFETY: attached, so live.
        let inner = unsafe { IocomInner::of(iocom) };
        for x in touches(&views, link) {
            // SAFETY: attached, so live.
            let c = unsafe { lookup(iocom, x.id) };
            let peer = x
                .other
                .filter(|_| x.relay)
                .and_then(|o| by_link.get(&o.link).map(|&pi| (pi, o.id)))
                // SAFETY: attached, so live.
                .map_or(ptr::null_mut(), |(pi, id)| unsafe {
                    lookup(pi as *mut dmsg_iocom, id)
                });
            let mut facts = Facts {
                peer,
                state: ptr::null_mut(),
                span_state: ptr::null_mut(),
                is_relay: x.relay,
            };
            match &inner {
                Some(inner) => inner.with_state_of(x.txn, |s| {
                    facts.state = s;
                    // SAFETY: `c` and the peer are mirrors, `s` is NULL or
                    // a live mirror (we hold the mirror table lock).
                    unsafe { set_facts(c, &facts) }
                }),
                // SAFETY: as above.
                None => unsafe { set_facts(c, &facts) },
            }
        }
    }
}

/// The attached iocom's link is gone: its circuits are gone from the
/// engine, the attachment is forgotten.
fn detach(iocom: *mut dmsg_iocom) {
    attached().remove(&(iocom as usize));
    c_opened().retain(|&(i, _)| i != iocom as usize);
    c_accepted().retain(|&(i, _), _| i != iocom as usize);
}

/// `LNK_CIRC` transactions that C opened (`intercept_write`), by (iocom,
/// transaction): their messages are fed to the node by the library, since
/// C code hands them to the state's `func`, not to `dmsg_msg_lnk`.
static C_OPENED: Mutex<BTreeSet<(usize, TxnId)>> = Mutex::new(BTreeSet::new());

fn c_opened() -> MutexGuard<'static, BTreeSet<(usize, TxnId)>> {
    C_OPENED.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Before a message of an `LNK_CIRC` transaction is delivered to C: if C
/// opened that circuit, the node sees the message first (the end-to-end
/// acknowledgement, the far end's teardown).
pub(crate) fn before_delivery(iocom: *mut dmsg_iocom, msg: &Message, txn: Option<TxnInfo>) {
    let Some(t) = txn else { return };
    // SAFETY: called from the iocom's core loop, so it is live.
    if let Some(inner) = unsafe { IocomInner::of(iocom) } {
        // Waits for an intercept_write that is opening this very
        // transaction to finish (it holds the mirror tables).
        inner.with_state_of(t.id, |_| ());
    }
    if !c_opened().contains(&(iocom as usize, t.id)) {
        return;
    }
    if let Some((node, link, _)) = attachment(iocom) {
        let ev = Event::Message {
            msg: msg.clone(),
            txn,
        };
        if let Err(e) = node.dispatch(link, &ev) {
            if crate::mirror::debug_level() >= 1 {
                log(format_args!("LNK_CIRC reply refused by the node: {e}"));
            }
        }
    }
}

/// After transaction `id` of `iocom` closed: the node learns it (it is
/// idempotent: a transaction the node already forgot is not its business)
/// and the circuit mirrors follow.
pub(crate) fn after_closed(iocom: *mut dmsg_iocom, id: TxnId) {
    c_opened().remove(&(iocom as usize, id));
    accepted_closed(iocom, id);
    if let Some((node, link, key)) = attachment(iocom) {
        let _ = node.dispatch(link, &Event::Closed(id));
        sync_node(key);
    }
}

/// After an event of `iocom` that may have changed its circuits.
pub(crate) fn after_event(iocom: *mut dmsg_iocom) {
    if let Some((_, _, key)) = attachment(iocom) {
        sync_node(key);
    }
}

/// Hands a message received on a relayed circuit to the node's relay path
/// ([`Hub::relay_message`]); gives it back if the iocom is not attached.
pub(crate) fn relay_received(iocom: *mut dmsg_iocom, msg: Message) -> Option<Message> {
    let Some((node, link, _)) = attachment(iocom) else {
        return Some(msg);
    };
    let r = node.with_hub(|hub, links| hub.relay_message(link, msg, links));
    if let Err(e) = r {
        log_refused(link, &e);
    }
    None
}

/// [`relay_received`] of frames left in the read buffer
/// ([`Hub::relay_frame`]), all under one hold of the node's lock; false
/// (nothing relayed) if the iocom is not attached.
pub(crate) fn relay_frames_received(iocom: *mut dmsg_iocom, frames: &[FrameRef<'_>]) -> bool {
    let Some((node, link, _)) = attachment(iocom) else {
        return false;
    };
    node.with_hub(|hub, links| {
        for frame in frames {
            if let Err(e) = hub.relay_frame(link, frame, links) {
                log_refused(link, &e);
            }
        }
    });
    true
}

/// Logs a relayed message the node refused (at debug level 1).
fn log_refused(link: LinkId, e: &dmsg::lnk::LnkError) {
    if crate::mirror::debug_level() >= 1 {
        log(format_args!("relay on link {}: {e}", link.0));
    }
}

/// `dmsg_msg_write` of a C `LNK_CIRC|CREATE` on `circuit0` of an attached
/// iocom (the hammer2 `circ <msgid>` flow): the circuit is opened by the
/// node on the span with msgid `lnk_circ.target` ([`Hub::open_circuit_to`]),
/// whose `LNK_CIRC` transaction replaces the one `dmsg_msg_alloc` reserved:
/// the C state (and `msg`, its creating message) now mirror it, and the
/// circuit's mirror (`state->any.circ`) gets the state and the span's
/// state. Returns false (send it as it is) when `msg` is
/// not such a message, the iocom is not attached, or the node refuses
/// (then the peer answers CANTCIRC on the wire).
///
/// # Safety
/// `msg` is a live message of `inner`'s iocom, not yet written.
pub(crate) unsafe fn intercept_write(
    inner: &IocomInner,
    conn: &Conn,
    msg: *mut dmsg_msg_t,
) -> bool {
    // SAFETY: live per the contract; every bit pattern of the header and
    // of the LNK_CIRC body is valid.
    let (iocom, state, cmd, circuit, target) = unsafe {
        (
            (*msg).iocom,
            (*msg).state,
            (*msg).any.head.cmd,
            (*msg).any.head.circuit,
            (*msg).any.lnk_circ.target,
        )
    };
    if cmd::base(cmd) != cmd::LNK_CIRC
        || cmd & cmd::CREATE == 0
        || cmd & cmd::REPLY != 0
        || circuit != 0
        || state.is_null()
    {
        return false;
    }
    let Some((node, link, key)) = attachment(iocom) else {
        return false;
    };
    let Some(old) = inner.txn_of(state) else {
        return false;
    };
    if !inner.is_creating(old, msg) {
        return false;
    }
    // The mirror tables stay locked from before the LNK_CIRC goes out until
    // the C state mirrors it: a reply that comes back at once (the far end
    // may be a few microseconds away) waits for the lock on the core
    // thread, then finds the C state (and `before_delivery` finds the
    // transaction in C_OPENED), instead of getting a state of its own.
    // Lock order: node, then tables, then link, as everywhere.
    let opened = node.with_hub(|hub, links| {
        inner.rekey_with(old, || {
            let c = match hub.open_circuit_to(link, target, links) {
                Ok(c) => c,
                Err(e) => {
                    log(format_args!(
                        "LNK_CIRC to span {target:016x}: {e}; sent as it is"
                    ));
                    return None;
                }
            };
            let txn = hub.circuit(c)?.near_txn;
            let (info, span) = conn.with_link_nowait(|l| {
                let info = l.txn(txn);
                if info.is_some() {
                    l.abandon(old);
                }
                (info, l.find_txn(0, Origin::Remote, target).map(|t| t.id))
            });
            // None: already over (the link went down meanwhile); the C
            // message is then sent as it is, and dropped.
            let info = info?;
            c_opened().insert((iocom as usize, info.id));
            Some(((c, span), info))
        })
    });
    let Some(((c, span), moved)) = opened else {
        return false;
    };
    if !moved {
        log(format_args!(
            "circuit {:016x}: its LNK_CIRC already has a state; the C state is left unused",
            c.id
        ));
        return true;
    }
    sync_node(key);
    if let Some(span) = span {
        let att = attached();
        if att.contains_key(&(iocom as usize)) {
            // SAFETY: attached, so live.
            let cm = unsafe { lookup(iocom, c.id) };
            inner.with_state_of(span, |s| {
                let f = Facts {
                    peer: ptr::null_mut(),
                    state: ptr::null_mut(),
                    span_state: s,
                    is_relay: false,
                };
                // SAFETY: a mirror and a live state (table lock held).
                unsafe { set_facts(cm, &f) }
            });
        }
    }
    true
}

// ----- circuits accepted by C on plain iocoms ------------------------------

/// `LNK_CIRC` transactions that C accepted on an iocom not attached to a
/// node (the leaf "kernel" end of a circuit): (iocom, transaction) → the
/// circuit id, declared as an endpoint on the link until the transaction
/// closes.
static C_ACCEPTED: Mutex<BTreeMap<(usize, TxnId), u64>> = Mutex::new(BTreeMap::new());

fn c_accepted() -> MutexGuard<'static, BTreeMap<(usize, TxnId), u64>> {
    C_ACCEPTED.lock().unwrap_or_else(PoisonError::into_inner)
}

/// After C sent something in transaction `id` of `iocom` (`info` is the
/// transaction after the send, `error` the error the message carried): if
/// that accepted a peer's `LNK_CIRC` (our CREATE, no DELETE, error 0) on a
/// link the LNK layer does not manage, circuit `msgid` becomes an endpoint
/// of the link (what the peer sent on it meanwhile is delivered now), its
/// mirror is made and the `LNK_CIRC` state's `any.circ` points at it. On a
/// link attached to a node the node decides about circuits, not C.
pub(crate) fn after_answer(
    iocom: *mut dmsg_iocom,
    inner: &IocomInner,
    conn: &Conn,
    info: Option<TxnInfo>,
    error: u32,
) {
    let Some(t) = info else { return };
    if error != 0
        || t.circuit != 0
        || t.origin != Origin::Remote
        || cmd::base(t.icmd) != cmd::LNK_CIRC
        || t.txcmd & cmd::CREATE == 0
        || t.txcmd & cmd::DELETE != 0
        || t.rxcmd & cmd::DELETE != 0
        || t.msgid == 0
        || attachment(iocom).is_some()
    {
        return;
    }
    {
        let mut acc = c_accepted();
        if acc.contains_key(&(iocom as usize, t.id)) {
            return;
        }
        acc.insert((iocom as usize, t.id), t.msgid);
    }
    // Made before the held messages are released, so they find it.
    // SAFETY: the iocom of a live C transaction is live.
    let c = unsafe { ensure(iocom, t.msgid) };
    inner.with_state_of(t.id, |s| {
        let f = Facts {
            peer: ptr::null_mut(),
            state: s,
            span_state: ptr::null_mut(),
            is_relay: false,
        };
        // SAFETY: a mirror of `ensure` (or NULL) and a live state (the
        // mirror table lock is held).
        unsafe { set_facts(c, &f) }
    });
    conn.with_link(|l| {
        if l.circuit_role(t.msgid).is_none() {
            l.add_circuit(t.msgid, dmsg::link::CircuitRole::Endpoint);
        }
    });
    if crate::mirror::debug_level() >= 1 {
        log(format_args!("circuit {:016x} accepted", t.msgid));
    }
}

/// Transaction `id` of `iocom` closed: if it was a circuit C accepted, the
/// circuit leaves the link (its open transactions are aborted with
/// `DMSG_ERR_LOSTLINK`) and the engine's reference on its mirror goes.
fn accepted_closed(iocom: *mut dmsg_iocom, id: TxnId) {
    let Some(circuit) = c_accepted().remove(&(iocom as usize, id)) else {
        return;
    };
    // SAFETY: called from the iocom's core loop, so it is live.
    if let Some(conn) = unsafe { IocomInner::of(iocom) }.and_then(|i| i.conn.clone()) {
        conn.with_link(|l| l.remove_circuit(circuit, dmsg::wire::err::LOSTLINK));
    }
    engine_gone(iocom, circuit);
    if crate::mirror::debug_level() >= 1 {
        log(format_args!("circuit {circuit:016x} closed"));
    }
}

/// `dmsg_state_reply` on the `LNK_CIRC` state of a circuit ending here:
/// the node closes the circuit ([`Hub::close_circuit`]: its transactions
/// are aborted, the `LNK_CIRC` closed with error 0). False if `state` is
/// not such a state (reply as usual).
pub(crate) fn close_by_state(iocom: *mut dmsg_iocom, state: *mut dmsg_state) -> bool {
    let id = registry()
        .by_addr
        .values()
        .find(|e| e.iocom == iocom as usize && e.state == state as usize && e.engine)
        .map(|e| e.id);
    let (Some(id), Some((node, link, key))) = (id, attachment(iocom)) else {
        return false;
    };
    let closed = node.with_hub(|hub, links| hub.close_circuit(CircuitId { link, id }, links));
    if closed {
        sync_node(key);
    }
    closed
}
