//! The library structs of `<dmsg.h>` (C-ABI.md §3, seed era, x86_64
//! DragonFly layout): `struct dmsg_iocom`, `dmsg_circuit`, `dmsg_state`,
//! `dmsg_msg`, `dmsg_ioq` and `dmsg_media`, with their C tag and member
//! names and their `_t` typedefs.
//!
//! The BSD `RB_ENTRY` / `RB_HEAD` / `TAILQ_*` members of the original are
//! opaque structs of the same size here (32 / 24 / 16 bytes): the library
//! does not keep its trees in them, and C code never walked them. Members
//! C code reads or writes (C-ABI.md §5) are real members with the original
//! types. Every public type of this file goes to `include/dmsg.h`. Sizes
//! and offsets are checked at compile time at the end of this file and
//! from C by `c-tests/abi_lib.c`.
#![allow(non_camel_case_types)]

use crate::wire_types::{dmsg_any_t, Uuid};
use core::ffi::{c_char, c_int, c_void};

/// Handler of the messages of one transaction (`state->func`), or one of
/// the message callbacks of an iocom.
pub type dmsg_msg_func_t = Option<unsafe extern "C" fn(msg: *mut dmsg_msg)>;

/// An iocom callback (`signal_callback`, `altmsg_callback`).
pub type dmsg_iocom_func_t = Option<unsafe extern "C" fn(iocom: *mut dmsg_iocom)>;

/// An `RB_ENTRY` (DragonFly `<sys/tree.h>`: three pointers and a colour,
/// 32 bytes). Opaque: the library keeps its trees elsewhere.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct dmsg_rb_entry {
    /// Unused by the library.
    pub rbe_opaque: [u64; 4],
}

/// `RB_HEAD(dmsg_state_tree, dmsg_state)`: 24 bytes, opaque (root,
/// in-progress pointer and spinlock in the original).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct dmsg_state_tree {
    /// Unused by the library.
    pub rbh_opaque: [u64; 3],
}

/// `RB_HEAD(dmsg_circuit_tree, dmsg_circuit)`: 24 bytes, opaque.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct dmsg_circuit_tree {
    /// Unused by the library.
    pub rbh_opaque: [u64; 3],
}

/// A `TAILQ_ENTRY` (two pointers, 16 bytes). Opaque.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct dmsg_tailq_entry {
    /// Unused by the library.
    pub tqe_opaque: [u64; 2],
}

/// `TAILQ_HEAD(dmsg_msg_queue, dmsg_msg)`: a queue of messages (16
/// bytes). Opaque: the library queues messages elsewhere.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct dmsg_msg_queue {
    /// Unused by the library.
    pub tqh_opaque: [u64; 2],
}

/// `dmsg_msg_queue_t`.
pub type dmsg_msg_queue_t = dmsg_msg_queue;

/// The LNK layer's per-link record (private; pointed to by `iocom->conn`
/// and `state->any.conn`).
#[derive(Debug)]
pub struct h2span_conn {
    _private: (),
}

/// The LNK layer's record of a received SPAN (private; `state->any.link`).
#[derive(Debug)]
pub struct h2span_link {
    _private: (),
}

/// The LNK layer's record of a relayed SPAN (private; `state->any.relay`).
#[derive(Debug)]
pub struct h2span_relay {
    _private: (),
}

/// One virtual circuit of a link (128 bytes). `iocom->circuit0` is the
/// link itself (msgid 0); pass `&iocom->circuit0` to `dmsg_msg_alloc`.
#[repr(C)]
#[derive(Debug)]
pub struct dmsg_circuit {
    /// Opaque (`RB_ENTRY` in `iocom->circuit_tree` in the original).
    pub rbnode: dmsg_rb_entry,
    /// Circuit id (0 for circuit0).
    pub msgid: u64,
    /// The link this circuit belongs to.
    pub iocom: *mut dmsg_iocom,
    /// Opaque (remote-initiated transactions in the original).
    pub staterd_tree: dmsg_state_tree,
    /// Opaque (locally-initiated transactions in the original).
    pub statewr_tree: dmsg_state_tree,
    /// The other half of a relay pair, or NULL.
    pub peer: *mut dmsg_circuit,
    /// The LNK_CIRC transaction carrying this circuit, or NULL.
    pub state: *mut dmsg_state,
    /// The SPAN this circuit was built over, or NULL.
    pub span_state: *mut dmsg_state,
    /// Non-zero if `span_state` is a relayed (transmitted) SPAN.
    pub is_relay: c_int,
    /// Reference count (1 for circuit0).
    pub refs: c_int,
}

/// `dmsg_circuit_t`.
pub type dmsg_circuit_t = dmsg_circuit;

/// A media (48 bytes): what the LNK_CONN transactions of one media id
/// share. `usrhandle` belongs to the user.
#[repr(C)]
#[derive(Debug)]
pub struct dmsg_media {
    /// Opaque (`TAILQ_ENTRY` in the original).
    pub entry: dmsg_tailq_entry,
    /// The media id.
    pub mediaid: Uuid,
    /// Reference count.
    pub refs: c_int,
    /// The user's pointer.
    pub usrhandle: *mut c_void,
}

/// `dmsg_media_t`.
pub type dmsg_media_t = dmsg_media;

/// The protocol pointer of a transaction (`state->any`): what
/// `dmsg_msg_alloc`'s `data` was, or what a protocol handler attached.
#[repr(C)]
#[derive(Clone, Copy)]
pub union dmsg_state_any {
    /// Any pointer (the `data` argument of `dmsg_msg_alloc`).
    pub any: *mut c_void,
    /// A received SPAN.
    pub link: *mut h2span_link,
    /// A LNK_CONN.
    pub conn: *mut h2span_conn,
    /// A relayed SPAN.
    pub relay: *mut h2span_relay,
    /// A circuit (LNK_CIRC).
    pub circ: *mut dmsg_circuit,
}

impl core::fmt::Debug for dmsg_state_any {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("dmsg_state_any { .. }")
    }
}

/// One transaction of a link (120 bytes): the library's mirror of the
/// engine's state. It lives while the transaction does (until DELETE has
/// been both sent and received, or the link is lost); `func` and `any` are
/// the user's.
#[repr(C)]
#[derive(Debug)]
pub struct dmsg_state {
    /// Opaque (`RB_ENTRY` in the original).
    pub rbnode: dmsg_rb_entry,
    /// The link.
    pub iocom: *mut dmsg_iocom,
    /// The circuit the transaction runs on.
    pub circuit: *mut dmsg_circuit,
    /// Base command of the message that created the transaction.
    pub icmd: u32,
    /// Flags sent so far (`DMSGF_REPLY` set when we are the reply side).
    pub txcmd: u32,
    /// Flags received so far.
    pub rxcmd: u32,
    /// The transaction's msgid.
    pub msgid: u64,
    /// `DMSG_STATE_*`.
    pub flags: c_int,
    /// Unused.
    pub error: c_int,
    /// Unused.
    pub refs: c_int,
    /// The creating message (its headers stay readable while the state
    /// lives).
    pub msg: *mut dmsg_msg,
    /// Per-transaction handler: the library does not call it; receive
    /// callbacks dispatch `if (msg->state && msg->state->func)
    /// msg->state->func(msg)`.
    pub func: dmsg_msg_func_t,
    /// The user's (or a protocol's) pointer.
    pub any: dmsg_state_any,
    /// The media of a LNK_CONN transaction, or NULL.
    pub media: *mut dmsg_media,
}

/// `dmsg_state_t`.
pub type dmsg_state_t = dmsg_state;

/// One message (2112 bytes; always allocated whole by this library).
/// Only the first `hdr_size` bytes of `any` are meaningful.
#[repr(C)]
pub struct dmsg_msg {
    /// Opaque (`TAILQ_ENTRY` in the original).
    pub qentry: dmsg_tailq_entry,
    /// The link the message arrived on or will be sent on.
    pub iocom: *mut dmsg_iocom,
    /// The circuit.
    pub circuit: *mut dmsg_circuit,
    /// The transaction, or NULL for a one-way message.
    pub state: *mut dmsg_state,
    /// Size of the extended header (from `cmd`).
    pub hdr_size: usize,
    /// Length of the aux data (unaligned).
    pub aux_size: usize,
    /// The aux data: `DMSG_DOALIGN(aux_size)` bytes, zero padded, or NULL.
    pub aux_data: *mut c_char,
    /// The extended header.
    pub any: dmsg_any_t,
}

impl core::fmt::Debug for dmsg_msg {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("dmsg_msg")
            .field("state", &self.state)
            .field("hdr_size", &self.hdr_size)
            .field("aux_size", &self.aux_size)
            .finish_non_exhaustive()
    }
}

/// `dmsg_msg_t`.
pub type dmsg_msg_t = dmsg_msg;

/// One direction of a link's I/O (8496 bytes). Only `error` is read by
/// users (`iocom->ioq_rx.error`: the `DMSG_IOQ_ERROR_*` code that ended
/// the link); the rest keeps the original's size and is unused.
#[repr(C)]
pub struct dmsg_ioq {
    /// Unused (`DMSG_MSGQ_STATE_*` in the original).
    pub state: c_int,
    /// Unused.
    pub fifo_beg: usize,
    /// Unused.
    pub fifo_cdx: usize,
    /// Unused.
    pub fifo_cdn: usize,
    /// Unused.
    pub fifo_end: usize,
    /// Unused.
    pub hbytes: usize,
    /// Unused.
    pub abytes: usize,
    /// Unused.
    pub unaligned_aux_size: usize,
    /// `DMSG_IOQ_ERROR_*` that ended the link, 0 while it is up.
    pub error: c_int,
    /// Unused.
    pub seq: c_int,
    /// Unused.
    pub msgcount: c_int,
    /// Opaque (the original's `EVP_CIPHER_CTX`, 168 bytes).
    pub ctx: [u64; 21],
    /// Unused.
    pub iv: [c_char; 32],
    /// Unused.
    pub msg: *mut dmsg_msg,
    /// Unused.
    pub msgq: dmsg_msg_queue_t,
    /// Unused.
    pub buf: [c_char; 8192],
}

impl core::fmt::Debug for dmsg_ioq {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("dmsg_ioq")
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

/// `dmsg_ioq_t`.
pub type dmsg_ioq_t = dmsg_ioq;

/// One link (17280 bytes, seed layout). Callers may keep it on their own
/// stack: `dmsg_iocom_init` fills it, `dmsg_iocom_core` runs it,
/// `dmsg_iocom_done` releases what it holds.
#[repr(C)]
pub struct dmsg_iocom {
    /// malloc'd label ("iocom-%p" by default; see `dmsg_iocom_label`).
    pub label: *mut c_char,
    /// Receive side; `ioq_rx.error` says why the link ended.
    pub ioq_rx: dmsg_ioq_t,
    /// Transmit side (unused).
    pub ioq_tx: dmsg_ioq_t,
    /// Unused.
    pub freeq: dmsg_msg_queue_t,
    /// Unused.
    pub freeq_aux: dmsg_msg_queue_t,
    /// The connection (owned: closed by `dmsg_iocom_done`).
    pub sock_fd: c_int,
    /// The alt fd, or -1 (closed by `dmsg_iocom_done` if
    /// `DMSG_IOCOMF_CLOSEALT`).
    pub alt_fd: c_int,
    /// Unused (-1): the library's wakeup fd is private.
    pub wakeupfds: [c_int; 2],
    /// `DMSG_IOCOMF_*`. Callbacks may set `DMSG_IOCOMF_EOF` to end
    /// `dmsg_iocom_core`.
    pub flags: c_int,
    /// Unused.
    pub rxmisc: c_int,
    /// Unused.
    pub txmisc: c_int,
    /// Called from `dmsg_iocom_core` after `dmsg_iocom_signal`.
    pub signal_callback: dmsg_iocom_func_t,
    /// Called from `dmsg_iocom_core` when the alt fd is readable.
    pub altmsg_callback: dmsg_iocom_func_t,
    /// Called from `dmsg_iocom_core` for every received message.
    pub rcvmsg_callback: dmsg_msg_func_t,
    /// The DBG callback (seed era): called by the DBG layer.
    pub dbgmsg_callback: dmsg_msg_func_t,
    /// Opaque.
    pub circuit_tree: dmsg_circuit_tree,
    /// The link itself as a circuit (msgid 0).
    pub circuit0: dmsg_circuit,
    /// Unused.
    pub txmsgq: dmsg_msg_queue_t,
    /// The LNK_CONN record of this link, or NULL.
    pub conn: *mut h2span_conn,
    /// Private to the library. In the original this is the iocom's
    /// `pthread_mutex_t` (8 bytes on DragonFly); here it holds the
    /// library's own state of the link. C code must not touch it.
    pub mtx: *mut c_void,
}

impl core::fmt::Debug for dmsg_iocom {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("dmsg_iocom")
            .field("sock_fd", &self.sock_fd)
            .field("alt_fd", &self.alt_fd)
            .field("flags", &self.flags)
            .finish_non_exhaustive()
    }
}

/// `dmsg_iocom_t`.
pub type dmsg_iocom_t = dmsg_iocom;

// Layout checks against C-ABI.md §3 (x86_64, seed). The build fails if one
// is wrong.
#[cfg(target_pointer_width = "64")]
mod layout {
    use super::*;
    use core::mem::{offset_of, size_of};

    macro_rules! check_layout {
        ($ty:ty, $size:expr $(, $field:ident @ $off:expr)* $(,)?) => {
            const _: () = assert!(size_of::<$ty>() == $size);
            $(const _: () = assert!(offset_of!($ty, $field) == $off);)*
        };
    }

    check_layout!(dmsg_rb_entry, 32);
    check_layout!(dmsg_state_tree, 24);
    check_layout!(dmsg_circuit_tree, 24);
    check_layout!(dmsg_tailq_entry, 16);
    check_layout!(dmsg_msg_queue, 16);
    check_layout!(dmsg_circuit, 128, rbnode @ 0, msgid @ 32, iocom @ 40,
        staterd_tree @ 48, statewr_tree @ 72, peer @ 96, state @ 104,
        span_state @ 112, is_relay @ 120, refs @ 124);
    check_layout!(dmsg_media, 48, entry @ 0, mediaid @ 16, refs @ 32,
        usrhandle @ 40);
    check_layout!(dmsg_state_any, 8);
    check_layout!(dmsg_state, 120, rbnode @ 0, iocom @ 32, circuit @ 40,
        icmd @ 48, txcmd @ 52, rxcmd @ 56, msgid @ 64, flags @ 72, error @ 76,
        refs @ 80, msg @ 88, func @ 96, any @ 104, media @ 112);
    check_layout!(dmsg_msg, 2112, qentry @ 0, iocom @ 16, circuit @ 24,
        state @ 32, hdr_size @ 40, aux_size @ 48, aux_data @ 56, any @ 64);
    check_layout!(dmsg_ioq, 8496, state @ 0, fifo_beg @ 8, fifo_cdx @ 16,
        fifo_cdn @ 24, fifo_end @ 32, hbytes @ 40, abytes @ 48,
        unaligned_aux_size @ 56, error @ 64, seq @ 68, msgcount @ 72,
        ctx @ 80, iv @ 248, msg @ 280, msgq @ 288, buf @ 304);
    check_layout!(dmsg_iocom, 17280, label @ 0, ioq_rx @ 8, ioq_tx @ 8504,
        freeq @ 17000, freeq_aux @ 17016, sock_fd @ 17032, alt_fd @ 17036,
        wakeupfds @ 17040, flags @ 17048, rxmisc @ 17052, txmisc @ 17056,
        signal_callback @ 17064, altmsg_callback @ 17072,
        rcvmsg_callback @ 17080, dbgmsg_callback @ 17088,
        circuit_tree @ 17096, circuit0 @ 17120, txmsgq @ 17248,
        conn @ 17264, mtx @ 17272);
}
