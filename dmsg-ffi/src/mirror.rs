//! The library's private state of an iocom and the `dmsg_state` mirrors.
//!
//! Not routed to a header: nothing here is part of the C API except the
//! global `DMsgDebugOpt` (declared verbatim in `dmsg.h`) and the internal
//! symbol `dmsg_ffi_iocom_set_label` that the C shim calls.
//!
//! # Where the state lives
//!
//! `iocom->mtx` (the original's mutex slot, which C code never touches)
//! holds an `Arc<IocomInner>` made raw: the engine's [`Conn`], the
//! [`Driver`] until `dmsg_iocom_core` runs it, and the table of mirrors.
//!
//! # Mirrors
//!
//! Every live transaction of the engine has one heap `dmsg_state`, the
//! first field of a [`StateBox`] that also holds its [`TxnId`]. The table
//! maps `TxnId` → box and box address → `TxnId`, so a `dmsg_state *` that C
//! hands back is looked up by address and never dereferenced unless it is
//! live. Mirrors are created by `dmsg_msg_alloc` (a local CREATE) or on the
//! first event of a transaction the peer opened (whose received message
//! becomes `state->msg`); their `icmd`, `msgid`, `txcmd` and `rxcmd` are
//! refreshed from every event's `TxnInfo` and after every send (the flag
//! words only gain bits, so concurrent refreshes cannot lose one). A mirror
//! is freed, with its `state->msg`, when the engine reports
//! `Event::Closed`, which the driver delivers as its own event, after the
//! callback of the transaction's last message has returned; and when the
//! link is gone, every mirror left is freed.
//!
//! Lock order: the table lock may be held while taking the link lock
//! without waiting ([`Conn::with_link_nowait`]); never the other way, and
//! never across a call that can wait for the transmit queue.

use crate::types::{dmsg_circuit, dmsg_iocom, dmsg_msg, dmsg_state, dmsg_state_any};
use crate::wire_types::dmsg_any_t;
use core::ffi::{c_char, c_void};
use core::ptr;
use dmsg::link::{Event, SendError};
use dmsg::runtime::{Conn, Driver, Handler};
use dmsg::state::{Origin, TxnId, TxnInfo};
use dmsg::wire::cmd::{self, CREATE, DELETE};
use dmsg::wire::{doalign, FrameRef, Header, Message, HDR_MAX, HEADER_SIZE};
use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// The debug level of the library (C: `int DMsgDebugOpt`): 0 is quiet,
/// 1 and up traces received messages and transaction changes on stderr.
/// It has the layout of a C `int`; C code reads and writes it directly.
#[no_mangle]
#[allow(non_upper_case_globals)]
pub static DMsgDebugOpt: AtomicI32 = AtomicI32::new(0);

/// The current debug level.
pub(crate) fn debug_level() -> i32 {
    DMsgDebugOpt.load(Ordering::Relaxed)
}

/// Writes one line to stderr, ignoring errors (a closed stderr must not
/// panic the library).
pub(crate) fn log(args: std::fmt::Arguments<'_>) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "dmsg: {args}");
}

static LIVE_STATES: AtomicUsize = AtomicUsize::new(0);
static LIVE_MSGS: AtomicUsize = AtomicUsize::new(0);
static LIVE_CIRCUITS: AtomicUsize = AtomicUsize::new(0);

/// How many library objects are alive in this process: the acceptance
/// check that a lost link leaves nothing behind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LiveObjects {
    /// `dmsg_state` mirrors.
    pub states: usize,
    /// `dmsg_msg` messages (allocated by `dmsg_msg_alloc` or received, and
    /// not yet freed).
    pub messages: usize,
    /// Circuits: each initialized iocom's `circuit0`, from
    /// `dmsg_iocom_init` to `dmsg_iocom_done`, plus every heap circuit
    /// mirror (see `circuit.rs`) until it is freed.
    pub circuits: usize,
}

/// The live object counts of the whole process.
pub fn live_objects() -> LiveObjects {
    LiveObjects {
        states: LIVE_STATES.load(Ordering::Acquire),
        messages: LIVE_MSGS.load(Ordering::Acquire),
        circuits: LIVE_CIRCUITS.load(Ordering::Acquire),
    }
}

/// Counts an iocom's `circuit0` or a heap circuit mirror in or out.
pub(crate) fn count_circuit(live: bool) {
    if live {
        LIVE_CIRCUITS.fetch_add(1, Ordering::AcqRel);
    } else {
        LIVE_CIRCUITS.fetch_sub(1, Ordering::AcqRel);
    }
}

// ----- messages --------------------------------------------------------

/// Allocates a zeroed, whole `dmsg_msg` (counted), or NULL.
pub(crate) fn alloc_msg() -> *mut dmsg_msg {
    // SAFETY: calloc has no preconditions; the result is checked for NULL.
    let p = unsafe { libc::calloc(1, core::mem::size_of::<dmsg_msg>()) }.cast::<dmsg_msg>();
    if !p.is_null() {
        LIVE_MSGS.fetch_add(1, Ordering::AcqRel);
    }
    p
}

/// Allocates the aux buffer of `size` bytes: `DMSG_DOALIGN(size)` zeroed
/// bytes, NULL for 0 (or when out of memory, or absurdly large).
pub(crate) fn alloc_aux(size: usize) -> *mut c_char {
    if size == 0 || size > isize::MAX as usize - 64 {
        return ptr::null_mut();
    }
    // SAFETY: calloc has no preconditions.
    unsafe { libc::calloc(1, doalign(size)) }.cast::<c_char>()
}

/// Frees a message and its aux buffer.
///
/// # Safety
/// `msg` is NULL or a message of [`alloc_msg`] that nothing uses any more.
pub(crate) unsafe fn free_msg(msg: *mut dmsg_msg) {
    if msg.is_null() {
        return;
    }
    // SAFETY: per the contract `msg` is a live calloc'd message; aux_data
    // is NULL or a malloc'd buffer it owns; its circuit (if any) holds the
    // reference the message took.
    unsafe {
        crate::circuit::release((*msg).circuit);
        libc::free((*msg).aux_data.cast::<c_void>());
        libc::free(msg.cast::<c_void>());
    }
    LIVE_MSGS.fetch_sub(1, Ordering::AcqRel);
}

/// The extended-header size a `cmd` announces, clamped to 64..=2048.
pub(crate) fn hdr_size_of(cmd: u32) -> usize {
    cmd::header_size(cmd).clamp(HEADER_SIZE, HDR_MAX)
}

/// Reads a C message into an engine [`Message`]: the header from the
/// first 64 bytes of `any`, the rest of the `H` bytes its `cmd` announces
/// as the extension, and `aux_size` bytes of aux data.
///
/// # Safety
/// `msg` points to a live message whose `aux_data` (when not NULL) holds
/// `aux_size` readable bytes.
pub(crate) unsafe fn msg_to_message(msg: *const dmsg_msg) -> Message {
    // SAFETY: `any` is a 2048-byte plain-data union inside the live message.
    let any: &[u8; HDR_MAX] = unsafe { &*ptr::addr_of!((*msg).any).cast::<[u8; HDR_MAX]>() };
    let mut head = [0u8; HEADER_SIZE];
    head.copy_from_slice(any.get(..HEADER_SIZE).unwrap_or(&[0; HEADER_SIZE]));
    let mut hdr = Header::parse(&head);
    // Filled in by the encoder, as the C library's I/O thread does.
    hdr.aux_crc = 0;
    let h = hdr_size_of(hdr.cmd);
    let ext = any.get(HEADER_SIZE..h).unwrap_or(&[]).to_vec();
    // SAFETY: reading two plain fields of the live message.
    let (aux_data, aux_size) = unsafe { ((*msg).aux_data, (*msg).aux_size) };
    let aux = if aux_data.is_null() || aux_size == 0 || isize::try_from(aux_size).is_err() {
        Vec::new()
    } else {
        // SAFETY: per the contract aux_data holds aux_size readable bytes.
        unsafe { core::slice::from_raw_parts(aux_data.cast::<u8>(), aux_size) }.to_vec()
    };
    Message { hdr, ext, aux }
}

/// Builds a received C message (counted) from an engine message, on
/// `iocom`'s `circuit0`, without a state. NULL when out of memory.
///
/// # Safety
/// `iocom` points to an initialized iocom.
pub(crate) unsafe fn message_to_msg(m: &Message, iocom: *mut dmsg_iocom) -> *mut dmsg_msg {
    let msg = alloc_msg();
    if msg.is_null() {
        return msg;
    }
    let aux = alloc_aux(m.aux.len());
    if !m.aux.is_empty() && aux.is_null() {
        // SAFETY: just allocated, not shared.
        unsafe { free_msg(msg) };
        return ptr::null_mut();
    }
    // SAFETY: `msg` is a fresh zeroed message that only this thread sees;
    // `aux` has DOALIGN(len) bytes; `iocom` is live per the contract.
    unsafe {
        let any = &mut *ptr::addr_of_mut!((*msg).any).cast::<[u8; HDR_MAX]>();
        if let Some(dst) = any.get_mut(..HEADER_SIZE) {
            dst.copy_from_slice(&m.hdr.to_bytes());
        }
        let h = (HEADER_SIZE + m.ext.len()).min(HDR_MAX);
        if let Some(dst) = any.get_mut(HEADER_SIZE..h) {
            dst.copy_from_slice(m.ext.get(..h - HEADER_SIZE).unwrap_or(&[]));
        }
        if !aux.is_null() {
            ptr::copy_nonoverlapping(m.aux.as_ptr(), aux.cast::<u8>(), m.aux.len());
        }
        (*msg).iocom = iocom;
        (*msg).circuit = ptr::addr_of_mut!((*iocom).circuit0);
        crate::circuit::hold((*msg).circuit);
        (*msg).hdr_size = h;
        (*msg).aux_size = m.aux.len();
        (*msg).aux_data = aux;
    }
    msg
}

/// Reads the command word of a message.
///
/// # Safety
/// `msg` points to a live message.
pub(crate) unsafe fn msg_cmd(msg: *const dmsg_msg) -> u32 {
    // SAFETY: every bit pattern of the union is a valid header.
    unsafe { (*msg).any.head.cmd }
}

/// The `any` union of a fresh message, for `dmsg_msg_alloc`.
pub(crate) fn any_with_cmd(cmd: u32) -> dmsg_any_t {
    // SAFETY: dmsg_any_t is plain data; all zero is a valid value.
    let mut any: dmsg_any_t = unsafe { core::mem::zeroed() };
    any.head.cmd = cmd;
    any
}

// ----- states ----------------------------------------------------------

/// A mirror: the C `dmsg_state` (first, so that a `dmsg_state *` is the
/// box's address) and what the library needs to find the transaction.
#[repr(C)]
pub(crate) struct StateBox {
    /// What C sees.
    pub(crate) state: dmsg_state,
    /// The engine's transaction.
    pub(crate) txn: TxnId,
    /// `state.msg` is a creating message from `dmsg_msg_alloc` that the
    /// user has not yet handed to `dmsg_msg_write`: freeing the state must
    /// not free it.
    pub(crate) user_owns_msg: bool,
}

/// The mirror table of one iocom (addresses of live [`StateBox`]es).
#[derive(Debug, Default)]
struct Tables {
    by_txn: HashMap<TxnId, usize>,
    by_addr: HashMap<usize, TxnId>,
}

/// What a message is sent on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// Outside any transaction.
    OneWay,
    /// Inside this transaction.
    Txn(TxnId),
    /// `msg->state` is not a live state of this iocom.
    Unknown,
}

/// The library's state of one iocom (behind `iocom->mtx`).
#[derive(Debug)]
pub(crate) struct IocomInner {
    /// The engine's handle; `None` when `dmsg_iocom_init` could not start
    /// a driver.
    pub(crate) conn: Option<Conn>,
    /// The driver, until `dmsg_iocom_core` runs it (and after it has, so
    /// that `dmsg_iocom_done` closes the fds).
    pub(crate) driver: Mutex<Option<Driver>>,
    tables: Mutex<Tables>,
    /// The LNK layer's state of this iocom (its node; see `lnk.rs`).
    pub(crate) lnk: crate::lnk::IocomLnk,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl IocomInner {
    /// A fresh state for a link run by `driver` (or none).
    pub(crate) fn new(driver: Option<(Driver, Conn)>) -> IocomInner {
        let (driver, conn) = match driver {
            Some((d, c)) => (Some(d), Some(c)),
            None => (None, None),
        };
        IocomInner {
            conn,
            driver: Mutex::new(driver),
            tables: Mutex::new(Tables::default()),
            lnk: crate::lnk::IocomLnk::default(),
        }
    }

    /// The state of `iocom`, if it has one.
    ///
    /// # Safety
    /// `iocom` is NULL or points to an iocom that `dmsg_iocom_init` filled
    /// (or that is zeroed) and that `dmsg_iocom_done` has not released.
    pub(crate) unsafe fn of(iocom: *const dmsg_iocom) -> Option<Arc<IocomInner>> {
        if iocom.is_null() {
            return None;
        }
        // SAFETY: reading a pointer field of a live iocom.
        let raw = unsafe { (*iocom).mtx }.cast::<IocomInner>().cast_const();
        if raw.is_null() {
            return None;
        }
        // SAFETY: a non-NULL `mtx` is an `Arc::into_raw` made by
        // `dmsg_iocom_init` and released only by `dmsg_iocom_done`, so the
        // count is at least one while we add ours.
        unsafe {
            Arc::increment_strong_count(raw);
            Some(Arc::from_raw(raw))
        }
    }

    /// The mirror of a live transaction, or None.
    pub(crate) fn state_of(&self, id: TxnId) -> Option<*mut dmsg_state> {
        lock(&self.tables)
            .by_txn
            .get(&id)
            .map(|&addr| addr as *mut dmsg_state)
    }

    /// Looks up a C state pointer.
    pub(crate) fn txn_of(&self, state: *const dmsg_state) -> Option<TxnId> {
        lock(&self.tables).by_addr.get(&(state as usize)).copied()
    }

    /// Creates the mirror of a transaction we open (`dmsg_msg_alloc`), with
    /// `msg` as its creating message, still the user's.
    ///
    /// # Safety
    /// `iocom`, `circuit` and `msg` are live; `msg` is not shared yet.
    pub(crate) unsafe fn add_local(
        &self,
        iocom: *mut dmsg_iocom,
        circuit: *mut dmsg_circuit,
        info: &TxnInfo,
        msg: *mut dmsg_msg,
        func: crate::types::dmsg_msg_func_t,
        data: *mut c_void,
    ) -> *mut dmsg_state {
        let mut sb = new_state(iocom, circuit, info);
        // As the C library: the command word without CREATE and DELETE.
        sb.state.txcmd = info.icmd;
        sb.state.msg = msg;
        sb.state.func = func;
        sb.state.any = dmsg_state_any { any: data };
        sb.user_owns_msg = true;
        let raw = Box::into_raw(sb);
        let mut t = lock(&self.tables);
        t.by_txn.insert(info.id, raw as usize);
        t.by_addr.insert(raw as usize, info.id);
        raw.cast::<dmsg_state>()
    }

    /// Attaches a received message to its transaction's mirror, creating
    /// the mirror for a transaction the peer opens (the message becomes
    /// its `state->msg`), and refreshes the mirror from `info`.
    ///
    /// # Safety
    /// `iocom` and `msg` are live; `msg` is not shared yet.
    unsafe fn attach(&self, iocom: *mut dmsg_iocom, msg: *mut dmsg_msg, info: &TxnInfo) {
        // SAFETY: msg is live.
        let rx = unsafe { msg_cmd(msg) };
        let mut t = lock(&self.tables);
        let sb = match t.by_txn.get(&info.id) {
            Some(&addr) => addr as *mut StateBox,
            None => {
                // SAFETY: iocom is live; circuit0 is inside it, and a
                // non-zero circuit gets its mirror.
                let mut circuit = unsafe { crate::circuit::ensure(iocom, info.circuit) };
                if circuit.is_null() {
                    // SAFETY: as above.
                    circuit = unsafe { ptr::addr_of_mut!((*iocom).circuit0) };
                }
                let mut sb = new_state(iocom, circuit, info);
                if info.origin == Origin::Remote && rx & CREATE != 0 {
                    sb.state.msg = msg;
                }
                let raw = Box::into_raw(sb);
                t.by_txn.insert(info.id, raw as usize);
                t.by_addr.insert(raw as usize, info.id);
                if debug_level() >= 1 {
                    log(format_args!(
                        "state {:p} created: msgid {:016x} icmd {:08x}",
                        raw, info.msgid, info.icmd
                    ));
                }
                raw
            }
        };
        // SAFETY: `sb` is in the table, so live; we hold the table lock,
        // which every free takes. `msg` is live.
        unsafe {
            refresh(sb, info, Some(rx));
            (*msg).state = sb.cast::<dmsg_state>();
        }
    }

    /// Refreshes the mirror of `id` after a send: from `info` when the
    /// transaction still lives, else our side is closed.
    pub(crate) fn after_send(&self, id: TxnId, info: Option<TxnInfo>) {
        let t = lock(&self.tables);
        let Some(&addr) = t.by_txn.get(&id) else {
            return;
        };
        let sb = addr as *mut StateBox;
        // SAFETY: in the table under its lock, so live.
        unsafe {
            match info {
                Some(info) => refresh(sb, &info, None),
                None => (*sb).state.txcmd |= CREATE | DELETE,
            }
        }
    }

    /// Decides what `dmsg_msg_write` sends `msg` on, and hands a creating
    /// message over to the library (from then on the state frees it).
    /// Returns the target and whether `msg` is its state's `msg` (and so
    /// must not be freed after the send).
    ///
    /// # Safety
    /// `msg` is live.
    pub(crate) unsafe fn claim(&self, msg: *mut dmsg_msg) -> (Target, bool) {
        let t = lock(&self.tables);
        // SAFETY: msg is live; `state` is only changed under this lock by
        // the library.
        let state = unsafe { (*msg).state };
        if state.is_null() {
            return (Target::OneWay, false);
        }
        let Some(&id) = t.by_addr.get(&(state as usize)) else {
            return (Target::Unknown, false);
        };
        let sb = state.cast::<StateBox>();
        // SAFETY: in the table under its lock, so live.
        unsafe {
            if (*sb).state.msg == msg {
                (*sb).user_owns_msg = false;
                (Target::Txn(id), true)
            } else {
                (Target::Txn(id), false)
            }
        }
    }

    /// Called when a creating message could not be sent at all: drops the
    /// transaction if the engine never sent anything on it, with its
    /// mirror and `msg`. Returns true if it did (then `msg` is freed).
    pub(crate) fn abandon(&self, id: TxnId) -> bool {
        let Some(conn) = &self.conn else {
            return false;
        };
        let mut t = lock(&self.tables);
        if !conn.with_link_nowait(|l| l.abandon(id)) {
            return false;
        }
        if let Some(addr) = t.by_txn.remove(&id) {
            t.by_addr.remove(&addr);
            // SAFETY: just removed from the table: no one else reaches it.
            unsafe { free_state_box(addr as *mut StateBox) };
        }
        true
    }

    /// `dmsg_msg_free` of a message that may be its state's creating
    /// message: an unsent transaction is dropped with its mirror; a sent
    /// one forgets the message.
    ///
    /// # Safety
    /// `msg` is live.
    pub(crate) unsafe fn release_msg(&self, msg: *mut dmsg_msg) {
        let mut t = lock(&self.tables);
        // SAFETY: msg is live.
        let state = unsafe { (*msg).state };
        let Some(&id) = t.by_addr.get(&(state as usize)) else {
            return;
        };
        let sb = state.cast::<StateBox>();
        // SAFETY: in the table under its lock, so live.
        unsafe {
            if (*sb).state.msg != msg {
                return;
            }
            (*sb).state.msg = ptr::null_mut();
        }
        let dropped = self
            .conn
            .as_ref()
            .is_some_and(|c| c.with_link_nowait(|l| l.abandon(id)));
        if dropped {
            if let Some(addr) = t.by_txn.remove(&id) {
                t.by_addr.remove(&addr);
                // SAFETY: just removed from the table; its msg is detached.
                unsafe { free_state_box(addr as *mut StateBox) };
            }
        }
    }

    /// Runs `f` with the mirror of transaction `id` (NULL if it has none),
    /// under the table lock: the mirror stays live during `f`, which must
    /// not call back into this table.
    pub(crate) fn with_state_of<R>(&self, id: TxnId, f: impl FnOnce(*mut dmsg_state) -> R) -> R {
        let t = lock(&self.tables);
        let p = t
            .by_txn
            .get(&id)
            .map_or(ptr::null_mut(), |&a| a as *mut dmsg_state);
        f(p)
    }

    /// Whether `msg` is the creating message (`state->msg`) of transaction
    /// `id`'s mirror.
    pub(crate) fn is_creating(&self, id: TxnId, msg: *mut dmsg_msg) -> bool {
        let t = lock(&self.tables);
        t.by_txn.get(&id).is_some_and(|&a| {
            // SAFETY: in the table under its lock, so live.
            unsafe { (*(a as *mut StateBox)).state.msg == msg }
        })
    }

    /// Runs `open` with the mirror tables locked, then moves the mirror of
    /// `old` onto the transaction `open` returns, still under the lock
    /// ([`IocomInner::rekey_locked`]): a message of that transaction received
    /// meanwhile (an early reply) waits for the lock, so it finds the moved
    /// mirror instead of getting a new one. Returns what `open` returned
    /// and whether the mirror moved. `open` must not take the tables lock
    /// (nor call anything that does).
    pub(crate) fn rekey_with<R>(
        &self,
        old: TxnId,
        open: impl FnOnce() -> Option<(R, TxnInfo)>,
    ) -> Option<(R, bool)> {
        let mut t = lock(&self.tables);
        let (r, info) = open()?;
        Some((r, Self::rekey_locked(&mut t, old, &info)))
    }

    /// Moves the mirror of the reserved transaction `old` onto the
    /// transaction `info` (opened for it by the LNK layer): it mirrors
    /// `info` from now on, and its creating message, now sent, is the
    /// state's. False (nothing changed) if `old` has no mirror or `info`
    /// already has one.
    fn rekey_locked(t: &mut Tables, old: TxnId, info: &TxnInfo) -> bool {
        if t.by_txn.contains_key(&info.id) {
            return false;
        }
        let Some(addr) = t.by_txn.remove(&old) else {
            return false;
        };
        t.by_txn.insert(info.id, addr);
        t.by_addr.insert(addr, info.id);
        let sb = addr as *mut StateBox;
        // SAFETY: in the table under its lock, so live; its msg is live.
        unsafe {
            (*sb).txn = info.id;
            (*sb).user_owns_msg = false;
            (*sb).state.txcmd = info.icmd;
            refresh(sb, info, None);
            let msg = (*sb).state.msg;
            if !msg.is_null() {
                (*msg).any.head.msgid = info.msgid;
            }
        }
        true
    }

    /// Frees the mirror of a transaction that is over.
    pub(crate) fn free_state(&self, id: TxnId) {
        let mut t = lock(&self.tables);
        if let Some(addr) = t.by_txn.remove(&id) {
            t.by_addr.remove(&addr);
            if debug_level() >= 1 {
                log(format_args!("state {addr:#x} freed"));
            }
            // SAFETY: just removed from the table under its lock.
            unsafe { free_state_box(addr as *mut StateBox) };
        }
    }

    /// Frees every mirror (the link is gone).
    pub(crate) fn free_all_states(&self) {
        let mut t = lock(&self.tables);
        t.by_addr.clear();
        for (_, addr) in t.by_txn.drain() {
            // SAFETY: removed from the table under its lock.
            unsafe { free_state_box(addr as *mut StateBox) };
        }
    }
}

/// A new mirror (counted) for `info` on `circuit`, holding a reference on
/// the circuit.
fn new_state(iocom: *mut dmsg_iocom, circuit: *mut dmsg_circuit, info: &TxnInfo) -> Box<StateBox> {
    LIVE_STATES.fetch_add(1, Ordering::AcqRel);
    // SAFETY: the callers pass a live circuit (circuit0 or a mirror).
    unsafe { crate::circuit::hold(circuit) };
    Box::new(StateBox {
        state: dmsg_state {
            rbnode: Default::default(),
            iocom,
            circuit,
            icmd: info.icmd,
            txcmd: info.txcmd,
            rxcmd: info.rxcmd,
            msgid: info.msgid,
            flags: crate::lib_consts::DMSG_STATE_INSERTED | crate::lib_consts::DMSG_STATE_DYNAMIC,
            error: 0,
            refs: 0,
            msg: ptr::null_mut(),
            func: None,
            any: dmsg_state_any {
                any: ptr::null_mut(),
            },
            media: ptr::null_mut(),
        },
        txn: info.id,
        user_owns_msg: false,
    })
}

/// Copies the engine's view of a transaction into its mirror. The flag
/// words only gain bits; `rx` is the command of a received message, whose
/// CREATE puts its command word into `rxcmd` as the C library does.
///
/// # Safety
/// `sb` is a live mirror and the caller holds the table lock.
unsafe fn refresh(sb: *mut StateBox, info: &TxnInfo, rx: Option<u32>) {
    // SAFETY: per the contract.
    let s = unsafe { &mut (*sb).state };
    s.icmd = info.icmd;
    s.msgid = info.msgid;
    s.txcmd |= info.txcmd;
    s.rxcmd |= info.rxcmd;
    if let Some(c) = rx {
        if c & CREATE != 0 {
            s.rxcmd |= c & !DELETE;
        }
    }
}

/// Frees a mirror and the message it owns.
///
/// # Safety
/// `sb` came from `Box::into_raw` and is in no table any more.
unsafe fn free_state_box(sb: *mut StateBox) {
    // SAFETY: per the contract we own the box.
    let b = unsafe { Box::from_raw(sb) };
    crate::circuit::state_freed(sb.cast::<dmsg_state>());
    let msg = b.state.msg;
    if !msg.is_null() {
        if b.user_owns_msg {
            // SAFETY: the user's message is live until they free or write
            // it; it must no longer point to this state.
            unsafe { (*msg).state = ptr::null_mut() };
        } else {
            // SAFETY: the state owns its creating message.
            unsafe { free_msg(msg) };
        }
    }
    // SAFETY: the state held a reference on its circuit.
    unsafe { crate::circuit::release(b.state.circuit) };
    drop(b);
    LIVE_STATES.fetch_sub(1, Ordering::AcqRel);
}

/// Logs a failed send, quietly for what is normal during a teardown.
pub(crate) fn log_send_error(what: &str, e: &SendError) {
    let routine = matches!(e, SendError::LinkDown | SendError::Closed(_));
    if !routine || debug_level() >= 1 {
        log(format_args!("{what}: message dropped: {e}"));
    }
}

// ----- the core loop -----------------------------------------------------

/// The handler of `dmsg_iocom_core`: turns engine events into C messages
/// and callbacks.
pub(crate) struct CoreHandler {
    /// The C iocom (live for the whole run).
    pub(crate) iocom: *mut dmsg_iocom,
    /// Its state.
    pub(crate) inner: Arc<IocomInner>,
}

impl std::fmt::Debug for CoreHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoreHandler")
            .field("iocom", &self.iocom)
            .finish_non_exhaustive()
    }
}

/// The flags word of an iocom, accessed atomically (C code sets bits with a
/// plain `|=` from callbacks on the same thread).
///
/// # Safety
/// `iocom` points to a live iocom.
pub(crate) unsafe fn flags<'a>(iocom: *mut dmsg_iocom) -> &'a AtomicI32 {
    // SAFETY: `flags` is an aligned int inside the live iocom, and the
    // library accesses it only atomically.
    unsafe { AtomicI32::from_ptr(ptr::addr_of_mut!((*iocom).flags)) }
}

impl CoreHandler {
    /// Delivers one received (or synthesized) message: build the C
    /// message, attach it to its mirror, call `rcvmsg_callback`, then free
    /// it unless it is its state's creating message (`cleanuprx`).
    fn deliver(&mut self, m: Message, txn: Option<TxnInfo>) {
        let iocom = self.iocom;
        if debug_level() >= 1 {
            log(format_args!("rx {}", m.describe()));
        }
        // SAFETY: the iocom is live while its core runs.
        let msg = unsafe { message_to_msg(&m, iocom) };
        if msg.is_null() {
            log(format_args!("out of memory: received message dropped"));
            return;
        }
        let circuit = txn.map_or(m.hdr.circuit, |t| t.circuit);
        if circuit != 0 {
            // SAFETY: msg is fresh and ours, its iocom live.
            unsafe { crate::circuit::retarget(msg, circuit) };
        }
        if let Some(info) = txn {
            // SAFETY: both live; msg is ours until the callback.
            unsafe { self.inner.attach(iocom, msg, &info) };
        }
        // The engine's event stays reachable for dmsg_msg_lnk while the
        // callback runs.
        let current = crate::lnk::set_current_event(msg, Event::Message { msg: m, txn });
        // SAFETY: reading a callback pointer of the live iocom; the
        // callback gets a live message and runs with no lock held.
        unsafe {
            if let Some(cb) = (*iocom).rcvmsg_callback {
                cb(msg);
            }
        }
        drop(current);
        // SAFETY: msg is live (callbacks must not free received messages);
        // its state, if any, lives until a Closed event this thread
        // handles later.
        unsafe {
            let state = (*msg).state;
            if state.is_null() || (*state).msg != msg {
                free_msg(msg);
            }
        }
    }
}

impl Handler for CoreHandler {
    fn relays_in_place(&self) -> bool {
        true
    }

    fn relay_frames(&mut self, _conn: &Conn, frames: &[FrameRef<'_>]) {
        if !crate::circuit::relay_frames_received(self.iocom, frames) {
            for f in frames {
                log(format_args!(
                    "message on circuit {:016x} dropped: the link is not attached to a node",
                    f.hdr.circuit
                ));
            }
        }
    }

    fn event(&mut self, _conn: &Conn, ev: Event) {
        match ev {
            Event::Message { msg, txn } => {
                let circ = txn.is_some_and(|t| cmd::base(t.icmd) == cmd::LNK_CIRC);
                if circ {
                    crate::circuit::before_delivery(self.iocom, &msg, txn);
                }
                self.deliver(msg, txn);
                if circ {
                    crate::circuit::after_event(self.iocom);
                }
            }
            Event::Closed(id) => {
                self.inner.free_state(id);
                crate::circuit::after_closed(self.iocom, id);
            }
            Event::Violation { violation, hdr } => log(format_args!(
                "peer broke the transaction rules ({violation}): cmd {:08x} msgid {:016x} dropped",
                hdr.cmd, hdr.msgid
            )),
            Event::Relay { msg } => {
                if let Some(msg) = crate::circuit::relay_received(self.iocom, msg) {
                    log(format_args!(
                        "message on circuit {:016x} dropped: the link is not attached to a node",
                        msg.hdr.circuit
                    ));
                }
            }
            // Handed to CoreHandler::relay_frames instead.
            Event::RelayFrame(_) => {}
            Event::Down(e) => {
                // SAFETY: the iocom is live while its core runs; nothing
                // else writes ioq_rx.error.
                unsafe {
                    (*self.iocom).ioq_rx.error = i32::try_from(e.code()).unwrap_or(i32::MAX);
                    flags(self.iocom)
                        .fetch_or(crate::lib_consts::DMSG_IOCOMF_EOF, Ordering::AcqRel);
                }
                if debug_level() >= 1 {
                    log(format_args!("link down: {e}"));
                }
                crate::lnk::link_down(&self.inner, &e);
            }
        }
    }

    fn signal(&mut self, _conn: &Conn) {
        use crate::lib_consts::DMSG_IOCOMF_SWORK;
        // A signal callback that signals again (or restates) is run again
        // here: the driver would not wake up for a request made on its own
        // thread. Bounded, so a callback that always re-signals cannot
        // starve the link.
        for _ in 0..64 {
            // SAFETY: the iocom is live while its core runs.
            let f = unsafe { flags(self.iocom) };
            if f.fetch_and(!DMSG_IOCOMF_SWORK, Ordering::AcqRel) & DMSG_IOCOMF_SWORK == 0 {
                return;
            }
            // SAFETY: reading a callback of the live iocom and calling it
            // with no lock held.
            unsafe {
                if let Some(cb) = (*self.iocom).signal_callback {
                    cb(self.iocom);
                }
            }
        }
    }

    fn alt_readable(&mut self, _conn: &Conn) {
        // SAFETY: as in `signal`.
        unsafe {
            if let Some(cb) = (*self.iocom).altmsg_callback {
                cb(self.iocom);
            }
        }
    }

    fn alt_hangup(&mut self, conn: &Conn) {
        // One more call, so that the callback reads the end of its input
        // (STATE.md §10b row 25: the alt fd is then no longer polled).
        self.alt_readable(conn);
    }

    fn should_stop(&mut self) -> bool {
        // SAFETY: the iocom is live while its core runs.
        let f = unsafe { flags(self.iocom) }.load(Ordering::Acquire);
        f & crate::lib_consts::DMSG_IOCOMF_EOF != 0
    }
}

/// Sets `iocom->label` to a malloc'd string, freeing the old one. Called by
/// `dmsg_iocom_label` in the C shim; internal, not in the header.
///
/// # Safety
/// `iocom` is NULL or a live iocom; `label` is NULL or a malloc'd C string
/// whose ownership passes to the iocom.
#[no_mangle]
pub unsafe extern "C" fn dmsg_ffi_iocom_set_label(iocom: *mut dmsg_iocom, label: *mut c_char) {
    if iocom.is_null() {
        // SAFETY: we own `label` (NULL is fine for free).
        unsafe { libc::free(label.cast::<c_void>()) };
        return;
    }
    // SAFETY: the iocom is live; its label is NULL or malloc'd.
    unsafe {
        libc::free((*iocom).label.cast::<c_void>());
        (*iocom).label = label;
    }
}

/// A malloc'd copy of `s` (NUL-terminated), or NULL.
pub(crate) fn malloc_str(s: &str) -> *mut c_char {
    let bytes = s.as_bytes();
    // SAFETY: malloc has no preconditions; checked for NULL.
    let p = unsafe { libc::malloc(bytes.len() + 1) }.cast::<u8>();
    if p.is_null() {
        return ptr::null_mut();
    }
    // SAFETY: `p` has len + 1 writable bytes.
    unsafe {
        ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len());
        *p.add(bytes.len()) = 0;
    }
    p.cast::<c_char>()
}
