//! The LNK layer of `<dmsg.h>` (C-ABI.md §4 msg_lnk.c, STATE.md §9; seed
//! era): `dmsg_msg_lnk`, `dmsg_msg_lnk_signal`, `dmsg_shell_tree`,
//! `dmsg_debug_findspan` (the globals `DMsgRNSS` and `dmsg_node_handler`
//! are in `globals.rs`, declared verbatim in the header), and
//! the extension that lets one process host several nodes
//! (`dmsg_node_create`, `dmsg_node_destroy`, `dmsg_node_default`,
//! `dmsg_node_current`, `dmsg_iocom_set_node`).
//!
//! # Nodes
//!
//! The original keeps one cluster registry per process. Here the registry
//! is a [`dmsg::service::Node`]: the C ABI uses a process-wide *default
//! node*, created on first use with `DMsgRNSS` as its rnss, and a C
//! program may create more (`dmsg_node_create`) and choose, per iocom,
//! which node its LNK messages go to (`dmsg_iocom_set_node`, or
//! `dmsg_master_service_node`).
//!
//! # How an iocom joins a node
//!
//! The first `dmsg_msg_lnk` on an iocom (or the master service, before it
//! runs the iocom) registers the iocom's link with its node
//! ([`Node::attach`]; `via` in the tree dump is `iocom->sock_fd`). Every
//! later `dmsg_msg_lnk` hands the node the engine's own event of the
//! message being received (kept aside by the core loop while the receive
//! callback runs, so nothing is parsed twice). When the link goes down
//! (or the iocom is released without running) the link is removed from
//! the node, which withdraws its spans and the relays they fed.
//!
//! Lock order: an iocom's LNK lock is never held while calling into its
//! node.
#![allow(non_upper_case_globals, non_camel_case_types)]

use crate::globals::{dmsg_node_handler, DMsgRNSS};
use crate::iocom::dmsg_iocom_signal;
use crate::mirror::{alloc_aux, alloc_msg, free_msg, log, log_send_error, IocomInner};
use crate::msg::dmsg_msg_reply;
use crate::types::{dmsg_circuit_t, dmsg_iocom_t, dmsg_msg_t, dmsg_state_t};
use crate::wire_consts::DMSG_ERR_NOSUPP;
use core::ffi::{c_char, c_int, c_void, CStr};
use core::ptr;
use dmsg::link::{Event, LinkError};
use dmsg::lnk::{Handled, HubConfig, HubEvent, LinkId, NodeEvent, NodeOp};
use dmsg::service::{random_rnss, Node, ServiceEvent, VolconfConfig};
use dmsg::wire::cmd::{self, CREATE, REPLY};
use dmsg::wire::{LnkConn, LnkSpan, Message, HDR_MAX, HEADER_SIZE};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};

/// The signature of `dmsg_node_handler`.
type NodeHandlerFn =
    unsafe extern "C" fn(opaquep: *mut *mut c_void, msg: *mut dmsg_msg_t, op: c_int);

/// One node of the C ABI (extension): a handle made by
/// `dmsg_node_create` or `dmsg_node_default`. Opaque.
#[derive(Debug)]
pub struct dmsg_node {
    _private: (),
}

/// `dmsg_node_t`.
pub type dmsg_node_t = dmsg_node;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What a `dmsg_node_t *` points to.
pub(crate) struct CNode {
    /// The node.
    pub(crate) node: Node,
    /// Its links driven by C iocoms, for `dmsg_debug_findspan`.
    links: Mutex<HashMap<LinkId, Weak<IocomInner>>>,
    /// The volconf workers were enabled (by the first master service).
    volconf: AtomicBool,
}

impl std::fmt::Debug for CNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CNode")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

/// Every node of the process, in creation order (the default one first
/// once it exists): `dmsg_debug_findspan` walks them, and handles from C
/// are checked against them before use.
static NODES: Mutex<Vec<Weak<CNode>>> = Mutex::new(Vec::new());

/// The default node.
static DEFAULT: OnceLock<Arc<CNode>> = OnceLock::new();

thread_local! {
    /// The node whose handler call runs on this thread.
    static CURRENT_NODE: Cell<*const CNode> = const { Cell::new(ptr::null()) };
    /// The received message whose receive callback runs on this thread,
    /// and its engine event (for `dmsg_msg_lnk`).
    static CURRENT_EVENT: RefCell<Option<(usize, Event)>> = const { RefCell::new(None) };
}

impl CNode {
    /// A new node with this rnss, registered in [`NODES`], its node events
    /// going to `dmsg_node_handler`.
    fn create(rnss: u32) -> Arc<CNode> {
        let cnode = Arc::new(CNode {
            node: Node::new(HubConfig::new(rnss)),
            links: Mutex::new(HashMap::new()),
            volconf: AtomicBool::new(false),
        });
        let weak = Arc::downgrade(&cnode);
        cnode.node.on_event(move |ev| {
            if let ServiceEvent::Hub(HubEvent::Node(ne)) = ev {
                if let Some(c) = weak.upgrade() {
                    c.node_event(ne);
                }
            }
        });
        let mut nodes = lock(&NODES);
        nodes.retain(|w| w.strong_count() > 0);
        nodes.push(Arc::downgrade(&cnode));
        cnode
    }

    /// Calls `dmsg_node_handler` for a node event (no lock held).
    fn node_event(&self, ne: &NodeEvent) {
        let Some(handler) = node_handler() else {
            return;
        };
        let msg = span_msg(&ne.span);
        if msg.is_null() {
            log(format_args!("out of memory: node event dropped"));
            return;
        }
        let mut opaque = ne.opaque as *mut c_void;
        let prev = CURRENT_NODE.with(|c| c.replace(ptr::from_ref(self)));
        // SAFETY: the handler is the user's function of the documented
        // signature; it gets a live slot and a live message, no lock held.
        unsafe { handler(&mut opaque, msg, ne.op.code()) };
        CURRENT_NODE.with(|c| c.set(prev));
        // SAFETY: our message; the handler must not keep it.
        unsafe { free_msg(msg) };
        if ne.op == NodeOp::Add && opaque as usize != ne.opaque {
            self.node
                .with_hub(|hub, _| hub.set_node_opaque(ne.node, opaque as usize));
        }
    }

    /// Enables the volconf workers once (the seed-era master service runs
    /// them inside the library).
    pub(crate) fn enable_volconf(&self) {
        if !self.volconf.swap(true, Ordering::AcqRel) {
            self.node.enable_volconf(VolconfConfig::default());
        }
    }
}

/// The current `dmsg_node_handler`, if set.
fn node_handler() -> Option<NodeHandlerFn> {
    let p = dmsg_node_handler.load(Ordering::Acquire);
    if p.is_null() {
        return None;
    }
    // SAFETY: C code stores a function pointer of the documented signature
    // there (a data pointer and a function pointer have the same size and
    // representation on every platform this library supports); it is not
    // NULL.
    Some(unsafe { core::mem::transmute::<*mut c_void, NodeHandlerFn>(p) })
}

/// A free-standing message (no iocom, circuit or state) holding a
/// `LNK_SPAN|CREATE` with `span`, or NULL when out of memory.
fn span_msg(span: &LnkSpan) -> *mut dmsg_msg_t {
    let m = Message::with_body(CREATE, span);
    let msg = alloc_msg();
    if msg.is_null() {
        return msg;
    }
    let h = (HEADER_SIZE + m.ext.len()).min(HDR_MAX);
    // SAFETY: a fresh zeroed message only this thread sees; `any` is a
    // 2048-byte plain-data union.
    unsafe {
        let any = &mut *ptr::addr_of_mut!((*msg).any).cast::<[u8; HDR_MAX]>();
        if let Some(dst) = any.get_mut(..HEADER_SIZE) {
            dst.copy_from_slice(&m.hdr.to_bytes());
        }
        if let (Some(dst), Some(src)) = (any.get_mut(HEADER_SIZE..h), m.ext.get(..h - HEADER_SIZE))
        {
            dst.copy_from_slice(src);
        }
        (*msg).hdr_size = h;
    }
    msg
}

/// The default node, created on first use with `DMsgRNSS` (a random value
/// is chosen and stored if it is 0).
pub(crate) fn default_node() -> Arc<CNode> {
    Arc::clone(DEFAULT.get_or_init(|| {
        let mut rnss = DMsgRNSS.load(Ordering::Acquire);
        if rnss == 0 {
            let r = random_rnss();
            rnss = match DMsgRNSS.compare_exchange(0, r, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => r,
                Err(set) => set,
            };
        }
        CNode::create(rnss)
    }))
}

/// The live node a C handle names, or None (NULL, destroyed, or not a
/// node handle). Never dereferences the handle.
fn node_from_c(node: *const dmsg_node_t) -> Option<Arc<CNode>> {
    if node.is_null() {
        return None;
    }
    lock(&NODES)
        .iter()
        .find(|w| ptr::eq(w.as_ptr().cast::<dmsg_node_t>(), node))
        .and_then(Weak::upgrade)
}

/// The node a master service or iocom should use: the one `node` names,
/// or the default node when it is NULL. None if `node` is not a live
/// handle.
pub(crate) fn select_node(node: *const dmsg_node_t) -> Option<Arc<CNode>> {
    if node.is_null() {
        Some(default_node())
    } else {
        node_from_c(node)
    }
}

// ----- per-iocom state ---------------------------------------------------

/// The LNK state of one iocom (a member of the iocom's private state).
#[derive(Default)]
pub(crate) struct IocomLnk {
    st: Mutex<LnkState>,
}

#[derive(Default)]
struct LnkState {
    /// The node chosen with `dmsg_iocom_set_node` (None: the default).
    chosen: Option<Arc<CNode>>,
    /// The node the link is registered with, and its id there.
    attached: Option<(Arc<CNode>, LinkId)>,
    /// The link went down: it is not registered again.
    down: bool,
}

impl std::fmt::Debug for IocomLnk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = lock(&self.st);
        f.debug_struct("IocomLnk")
            .field("attached", &st.attached.as_ref().map(|(_, l)| *l))
            .field("down", &st.down)
            .finish_non_exhaustive()
    }
}

impl IocomLnk {
    /// The node of this iocom: the one it is registered with, else the
    /// chosen one, else the default node.
    pub(crate) fn node(&self) -> Arc<CNode> {
        let st = lock(&self.st);
        if let Some((c, _)) = &st.attached {
            return Arc::clone(c);
        }
        st.chosen.clone().unwrap_or_else(default_node)
    }

    /// Chooses the node (before the link is registered; false after).
    pub(crate) fn choose(&self, node: Arc<CNode>) -> bool {
        let mut st = lock(&self.st);
        if st.attached.is_some() {
            return false;
        }
        st.chosen = Some(node);
        true
    }
}

/// Registers `iocom`'s link with its node unless it is already (returns
/// the node and the link id), opening `lnk_conn` on it when given. None
/// when the link is down or never came up.
///
/// # Safety
/// `iocom` is a live, initialized iocom whose state is `inner`.
pub(crate) unsafe fn attach(
    iocom: *mut dmsg_iocom_t,
    inner: &Arc<IocomInner>,
    lnk_conn: Option<&LnkConn>,
) -> Option<(Arc<CNode>, LinkId)> {
    let conn = inner.conn.clone()?;
    let (cnode, link) = {
        let mut st = lock(&inner.lnk.st);
        if let Some((c, l)) = &st.attached {
            return Some((Arc::clone(c), *l));
        }
        if st.down {
            return None;
        }
        let cnode = st.chosen.clone().unwrap_or_else(default_node);
        let link = cnode.node.new_link_id();
        st.attached = Some((Arc::clone(&cnode), link));
        (cnode, link)
    };
    // SAFETY: the iocom is live; its label is NULL or a C string.
    let (via, label) = unsafe {
        let l = (*iocom).label;
        let label = if l.is_null() {
            String::new()
        } else {
            CStr::from_ptr(l).to_string_lossy().into_owned()
        };
        (i64::from((*iocom).sock_fd), label)
    };
    lock(&cnode.links).insert(link, Arc::downgrade(inner));
    // SAFETY: the iocom is live until its link ends (circuit.rs forgets
    // it then).
    unsafe { crate::circuit::link_attached(iocom, &cnode.node, link) };
    // SAFETY: the iocom is live until its link ends, which forgets it.
    unsafe { crate::circuit::link_attached(iocom, &cnode.node, link) };
    // An error means the link is already down: its Event::Down (or
    // dmsg_iocom_done) removes it again.
    if let Err(e) = cnode.node.attach(link, conn, via, &label, lnk_conn) {
        log_send_error("LNK_CONN", &e);
    }
    Some((cnode, link))
}

/// The link of `inner` is down (`reason`): removes it from its node (its
/// spans are withdrawn, the relays they fed closed). Called by the core
/// loop on `Event::Down` and by `dmsg_iocom_done`; later calls do nothing.
pub(crate) fn link_down(inner: &IocomInner, reason: &LinkError) {
    let taken = {
        let mut st = lock(&inner.lnk.st);
        st.down = true;
        st.attached.take()
    };
    if let Some((cnode, link)) = taken {
        lock(&cnode.links).remove(&link);
        cnode.node.detach(link, reason.clone());
    }
}

/// Keeps the engine event of the message being received while its
/// receive callback runs on this thread (for `dmsg_msg_lnk`); restores the
/// previous one when dropped.
pub(crate) struct CurrentEvent {
    prev: Option<(usize, Event)>,
}

/// Sets the event of `msg` aside until the returned guard is dropped.
pub(crate) fn set_current_event(msg: *mut dmsg_msg_t, ev: Event) -> CurrentEvent {
    let prev = CURRENT_EVENT.with(|c| match c.try_borrow_mut() {
        Ok(mut b) => b.replace((msg as usize, ev)),
        Err(_) => None,
    });
    CurrentEvent { prev }
}

impl Drop for CurrentEvent {
    fn drop(&mut self) {
        let prev = self.prev.take();
        CURRENT_EVENT.with(|c| {
            if let Ok(mut b) = c.try_borrow_mut() {
                *b = prev;
            }
        });
    }
}

/// Takes the event of `msg` if it is the message being received on this
/// thread (once: a second `dmsg_msg_lnk` on it does nothing).
fn take_current_event(msg: *mut dmsg_msg_t) -> Option<Event> {
    CURRENT_EVENT.with(|c| {
        let mut b = c.try_borrow_mut().ok()?;
        match &*b {
            Some((p, _)) if *p == msg as usize => b.take().map(|(_, e)| e),
            _ => None,
        }
    })
}

// ----- the C functions -----------------------------------------------------

/// The LNK protocol dispatcher: call it from the receive callback for the
/// received LNK messages (`LNK_CONN`, `LNK_SPAN`, `LNK_CIRC`, their
/// `LNK_ERROR` replies, and the transactions' aborts). On first use the
/// iocom's link is registered with its node (`dmsg_iocom_set_node`, or
/// the default node); the message then goes to the node's registry, which
/// answers on the wire itself. Unknown LNK commands opening a transaction
/// are answered with `DMSG_ERR_NOSUPP`. The iocom is then signalled
/// (`dmsg_iocom_signal`): its signal callback should call
/// `dmsg_msg_lnk_signal` (with no signal callback, the relay selection
/// runs here at once).
///
/// Only the message being received may be passed, from its receive
/// callback on the core thread (other messages are logged and ignored).
///
/// # Safety
/// `msg` is NULL (ignored) or a live message.
#[no_mangle]
pub unsafe extern "C" fn dmsg_msg_lnk(msg: *mut dmsg_msg_t) {
    if msg.is_null() {
        return;
    }
    // SAFETY: a live message per the contract.
    let iocom = unsafe { (*msg).iocom };
    // SAFETY: the message's iocom is live while the message is.
    let Some(inner) = (unsafe { IocomInner::of(iocom) }) else {
        return;
    };
    let Some(ev) = take_current_event(msg) else {
        log(format_args!(
            "dmsg_msg_lnk: not the message being received on this thread; ignored"
        ));
        return;
    };
    // SAFETY: iocom is live and `inner` is its state.
    let Some((cnode, link)) = (unsafe { attach(iocom, &inner, None) }) else {
        return;
    };
    if let Ok(Handled::NotMine) = cnode.node.dispatch(link, &ev) {
        if let Event::Message { msg: m, txn } = &ev {
            let opens = m.hdr.cmd & CREATE != 0 && m.hdr.cmd & REPLY == 0;
            if opens && txn.is_some_and(|t| !t.tx_closed()) {
                // SAFETY: live message.
                unsafe { dmsg_msg_reply(msg, DMSG_ERR_NOSUPP) };
            }
        }
    }
    // SAFETY: reading a callback pointer of the live iocom.
    if unsafe { (*iocom).signal_callback }.is_some() {
        // SAFETY: live iocom.
        unsafe { dmsg_iocom_signal(iocom) };
    } else {
        cnode.node.signal();
    }
}

/// Runs the relay selection of the iocom's node (STATE.md §9.6; the
/// original rescanned everything, this one works on what changed): the
/// signal callback of an iocom that uses `dmsg_msg_lnk`. A NULL iocom
/// means the default node.
///
/// # Safety
/// `iocom` is NULL or a live, initialized iocom.
#[no_mangle]
pub unsafe extern "C" fn dmsg_msg_lnk_signal(iocom: *mut dmsg_iocom_t) {
    // SAFETY: per the contract.
    let cnode = match unsafe { IocomInner::of(iocom) } {
        Some(inner) => inner.lnk.node(),
        None => default_node(),
    };
    cnode.node.signal();
}

/// Sends `text` (cut to 1023 bytes) and a NUL as a one-way
/// `DBG_SHELL|REPLY` on `circuit` (`dmsg_circuit_printf`).
///
/// # Safety
/// `circuit` is NULL (ignored) or a circuit of a live iocom.
pub(crate) unsafe fn circuit_print(circuit: *mut dmsg_circuit_t, text: &[u8]) {
    if circuit.is_null() {
        return;
    }
    // SAFETY: a live circuit per the contract.
    let (iocom, id) = unsafe { ((*circuit).iocom, (*circuit).msgid) };
    // SAFETY: its iocom is live.
    let Some(conn) = (unsafe { IocomInner::of(iocom) }).and_then(|i| i.conn.clone()) else {
        return;
    };
    let text = text.get(..text.len().min(1023)).unwrap_or(&[]);
    let mut m = Message::new(cmd::DBG_SHELL | REPLY);
    m.hdr.circuit = id;
    m.aux.reserve(text.len() + 1);
    m.aux.extend_from_slice(text);
    m.aux.push(0);
    if let Err(e) = conn.with_link(|l| l.send_oneway(m)) {
        log_send_error("dmsg_circuit_printf", &e);
    }
}

/// Prints the span tree of the node of `circuit`'s iocom (STATE.md §9.7)
/// on `circuit`, one `dmsg_circuit_printf` per line: clusters, their
/// nodes, each node's span links (`dist`, `via` = the receiving iocom's
/// `sock_fd`) and the relays made from them. `cmdbuf` (the rest of the
/// command line) is ignored, as in the original.
///
/// # Safety
/// `circuit` is NULL (ignored) or a circuit of a live iocom.
#[no_mangle]
pub unsafe extern "C" fn dmsg_shell_tree(circuit: *mut dmsg_circuit_t, cmdbuf: *mut c_char) {
    let _ = cmdbuf;
    if circuit.is_null() {
        return;
    }
    // SAFETY: a live circuit per the contract.
    let iocom = unsafe { (*circuit).iocom };
    // SAFETY: its iocom is live.
    let Some(inner) = (unsafe { IocomInner::of(iocom) }) else {
        return;
    };
    let lines = inner.lnk.node().node.tree_lines();
    for line in lines {
        // SAFETY: forwarded contract.
        unsafe { circuit_print(circuit, line.as_bytes()) };
    }
}

/// Finds a received span by its msgid (as the peer chose it, so not
/// unique across links: the first match wins, nodes in creation order
/// with the default node first): 0 and `*statep` = its transaction's
/// state (`state->iocom` the iocom it came on, `state->msgid` the msgid),
/// or `ENOENT` and `*statep` = NULL. The state lives as long as the span's
/// transaction (use it from the core thread of its iocom, or while the
/// span is known to stay).
///
/// # Safety
/// `statep` is NULL (then only the return value tells) or writable.
#[no_mangle]
pub unsafe extern "C" fn dmsg_debug_findspan(msgid: u64, statep: *mut *mut dmsg_state_t) -> c_int {
    let nodes: Vec<Arc<CNode>> = lock(&NODES).iter().filter_map(Weak::upgrade).collect();
    let mut found = ptr::null_mut();
    for cnode in nodes {
        let Some(sr) = cnode.node.findspan(msgid) else {
            continue;
        };
        let (Some(link), Some(txn)) = (sr.link, sr.txn) else {
            continue;
        };
        let inner = lock(&cnode.links).get(&link).and_then(Weak::upgrade);
        if let Some(state) = inner.and_then(|i| i.state_of(txn)) {
            found = state;
            break;
        }
    }
    if !statep.is_null() {
        // SAFETY: writable per the contract.
        unsafe { *statep = found };
    }
    if found.is_null() {
        libc::ENOENT
    } else {
        0
    }
}

/// Extension: creates a node (its own span registry, as if it were
/// another process) with `rnss` (0: a random non-zero value). Several
/// nodes let one program simulate a cluster. Release it with
/// `dmsg_node_destroy`. NULL only if out of memory.
#[no_mangle]
pub extern "C" fn dmsg_node_create(rnss: u32) -> *mut dmsg_node_t {
    let rnss = if rnss == 0 { random_rnss() } else { rnss };
    Arc::into_raw(CNode::create(rnss))
        .cast_mut()
        .cast::<dmsg_node_t>()
}

/// Extension: the default node (the one `dmsg_master_service` and iocoms
/// without `dmsg_iocom_set_node` use), created on first use. Never
/// destroy it.
#[no_mangle]
pub extern "C" fn dmsg_node_default() -> *mut dmsg_node_t {
    Arc::as_ptr(&default_node())
        .cast_mut()
        .cast::<dmsg_node_t>()
}

/// Extension: releases a node of `dmsg_node_create`: its volconf workers
/// are stopped and every link still registered is asked to shut down
/// (their iocoms end as on link loss, and keep the node's memory until
/// they are done). NULL, the default node and unknown handles are
/// ignored.
///
/// # Safety
/// `node` was returned by `dmsg_node_create` and is not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn dmsg_node_destroy(node: *mut dmsg_node_t) {
    if node.is_null()
        || DEFAULT
            .get()
            .is_some_and(|d| ptr::eq(Arc::as_ptr(d).cast::<dmsg_node_t>(), node))
    {
        return;
    }
    // Taken out of the registry under its lock: of two racing calls, one
    // finds it and releases the handle.
    let cnode = {
        let mut nodes = lock(&NODES);
        let Some(i) = nodes
            .iter()
            .position(|w| ptr::eq(w.as_ptr().cast::<dmsg_node_t>(), node))
        else {
            return;
        };
        nodes.remove(i).upgrade()
    };
    let Some(cnode) = cnode else {
        return;
    };
    cnode.node.shutdown();
    drop(cnode);
    // SAFETY: the handle is the `Arc::into_raw` of dmsg_node_create (it
    // was found among the live nodes), released once here.
    drop(unsafe { Arc::from_raw(node.cast_const().cast::<CNode>()) });
}

/// Extension: the node whose `dmsg_node_handler` call is running on this
/// thread (NULL outside the handler), so that a handler can tell the
/// nodes of one process apart.
#[no_mangle]
pub extern "C" fn dmsg_node_current() -> *mut dmsg_node_t {
    CURRENT_NODE
        .with(Cell::get)
        .cast_mut()
        .cast::<dmsg_node_t>()
}

/// Extension: makes `iocom`'s LNK messages go to `node` (NULL: the
/// default node). Call it before the first `dmsg_msg_lnk` on the iocom;
/// later calls are ignored (logged), as are unknown node handles.
///
/// # Safety
/// `iocom` is NULL (ignored) or a live, initialized iocom; `node` is NULL
/// or a handle of `dmsg_node_create` / `dmsg_node_default`.
#[no_mangle]
pub unsafe extern "C" fn dmsg_iocom_set_node(iocom: *mut dmsg_iocom_t, node: *mut dmsg_node_t) {
    // SAFETY: per the contract.
    let Some(inner) = (unsafe { IocomInner::of(iocom) }) else {
        return;
    };
    let Some(cnode) = select_node(node) else {
        log(format_args!("dmsg_iocom_set_node: not a live node handle"));
        return;
    };
    if !inner.lnk.choose(cnode) {
        log(format_args!(
            "dmsg_iocom_set_node: the iocom already uses a node; ignored"
        ));
    }
}

/// Replaces a received message's missing aux data with an empty string
/// and makes sure the text ends in a NUL (`aux_data[aux_size]` is zero
/// padding unless `aux_size` is a multiple of 64, when the last byte is
/// overwritten as the original does).
///
/// # Safety
/// `msg` is a live received message.
pub(crate) unsafe fn terminate_aux(msg: *mut dmsg_msg_t) {
    // SAFETY: live message whose aux_data holds DOALIGN(aux_size) bytes.
    unsafe {
        if (*msg).aux_data.is_null() || (*msg).aux_size == 0 {
            if (*msg).aux_data.is_null() {
                let aux = alloc_aux(1);
                if aux.is_null() {
                    return;
                }
                (*msg).aux_data = aux;
            } else {
                *(*msg).aux_data = 0;
            }
            (*msg).aux_size = 1;
            return;
        }
        let n = (*msg).aux_size;
        if n.is_multiple_of(crate::wire_consts::DMSG_ALIGN) {
            *(*msg).aux_data.add(n - 1) = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_handles_are_checked_before_use() {
        let n = dmsg_node_create(7);
        assert!(!n.is_null());
        assert!(select_node(n).is_some());
        let mut bogus = 0u64;
        let bogus = ptr::from_mut(&mut bogus).cast::<dmsg_node_t>();
        assert!(select_node(bogus).is_none());
        // SAFETY: NULL, unknown and default handles are ignored; `n` is a
        // live handle, destroyed once (the second call finds nothing).
        unsafe {
            dmsg_node_destroy(ptr::null_mut());
            dmsg_node_destroy(bogus);
            dmsg_node_destroy(dmsg_node_default());
            dmsg_node_destroy(n);
            dmsg_node_destroy(n);
        }
        assert!(select_node(n).is_none());
        assert!(select_node(dmsg_node_default()).is_some());
        assert_ne!(DMsgRNSS.load(Ordering::Acquire), 0);
        assert!(dmsg_node_current().is_null());
    }

    #[test]
    fn findspan_of_an_unknown_msgid_is_enoent() {
        let mut state = ptr::NonNull::<dmsg_state_t>::dangling().as_ptr();
        // SAFETY: `state` is writable.
        let rc = unsafe { dmsg_debug_findspan(0x5eed_0000_0000_0001, &mut state) };
        assert_eq!(rc, libc::ENOENT);
        assert!(state.is_null());
    }
}
