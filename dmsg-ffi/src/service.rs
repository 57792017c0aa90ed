//! The service functions of `<dmsg.h>` (C-ABI.md §4 service.c and subs.c,
//! STATE.md §8; seed era): `dmsg_connect`, `dmsg_master_service` (and the
//! extension `dmsg_master_service_node`), `dmsg_msg_dbg`, and the Rust
//! half of `dmsg_circuit_printf` (C-variadic: formatted in
//! `csrc/variadic.c`, declared verbatim in the header).
//!
//! # The master service
//!
//! It is a real iocom, as in the original: the service thread initializes
//! a heap `dmsg_iocom` on the connection, registers its link with the node
//! (sending our `LNK_CONN`: peer_mask and pfs_mask all ones, peer type
//! CLUSTER), and runs `dmsg_iocom_core` with a receive callback that hands
//! each message to its transaction's `state->func` if it has one, else by
//! protocol: LNK to `dmsg_msg_lnk`, DBG to `dmsg_msg_dbg`, anything else to
//! the user's `dbgmsg_callback` (a transaction opened with nothing to
//! serve it is answered with `DMSG_ERR_NOSUPP`). The signal callback is
//! `dmsg_msg_lnk_signal`. So the callbacks see ordinary messages
//! (`msg->iocom`, `msg->circuit`, `msg->state`) and may call
//! `dmsg_msg_reply`, `dmsg_circuit_printf` or `dmsg_shell_tree` on them.
#![allow(non_camel_case_types)]

use crate::iocom::{dmsg_iocom_core, dmsg_iocom_done, dmsg_iocom_init};
use crate::lib_consts::DMSG_IOCOMF_CLOSEALT;
use crate::lnk::{
    self, circuit_print, dmsg_msg_lnk, dmsg_msg_lnk_signal, dmsg_node_t, terminate_aux,
};
use crate::mirror::{flags, log, IocomInner};
use crate::msg::dmsg_msg_reply;
use crate::types::{dmsg_circuit_t, dmsg_iocom_func_t, dmsg_iocom_t, dmsg_msg_func_t, dmsg_msg_t};
use crate::wire_consts::{
    DMSGF_BASECMDMASK, DMSGF_CREATE, DMSGF_PROTOS, DMSGF_REPLY, DMSG_DBG_SHELL, DMSG_ERR_NOSUPP,
    DMSG_PROTO_DBG, DMSG_PROTO_LNK,
};
use core::ffi::{c_char, c_int, c_void, CStr};
use core::ptr;
use dmsg::service::master_conn;
use std::io::Write;
use std::os::fd::IntoRawFd;
use std::sync::atomic::Ordering;

/// What `dmsg_master_service` takes (56 bytes, seed layout): allocate it
/// with `malloc` and zero it; the service frees it (and `label`).
#[repr(C)]
#[derive(Debug)]
pub struct dmsg_master_service_info {
    /// The connection (socket or pipe); the service closes it, once.
    pub fd: c_int,
    /// An extra input fd, read by `altmsg_callback` (used only if that is
    /// set).
    pub altfd: c_int,
    /// Non-zero: leave `altfd` open at the end.
    pub noclosealt: c_int,
    /// Non-zero: `pthread_detach` the service thread.
    pub detachme: c_int,
    /// malloc'd label of the iocom (NULL for the default); freed by the
    /// service.
    pub label: *mut c_char,
    /// Passed to `exit_callback`.
    pub handle: *mut c_void,
    /// Called when `altfd` is readable.
    pub altmsg_callback: dmsg_iocom_func_t,
    /// Called for the received messages that are neither LNK nor
    /// `DBG_SHELL` traffic, and for every `DBG_SHELL` line (its aux data
    /// NUL-terminated; the prompt is sent after it returns).
    pub dbgmsg_callback: dmsg_msg_func_t,
    /// Called with `handle` after the iocom is torn down and the fd
    /// closed, just before the thread ends.
    pub exit_callback: Option<unsafe extern "C" fn(handle: *mut c_void)>,
}

/// `dmsg_master_service_info_t`.
pub type dmsg_master_service_info_t = dmsg_master_service_info;

#[cfg(target_pointer_width = "64")]
const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<dmsg_master_service_info>() == 56);
    assert!(offset_of!(dmsg_master_service_info, fd) == 0);
    assert!(offset_of!(dmsg_master_service_info, altfd) == 4);
    assert!(offset_of!(dmsg_master_service_info, noclosealt) == 8);
    assert!(offset_of!(dmsg_master_service_info, detachme) == 12);
    assert!(offset_of!(dmsg_master_service_info, label) == 16);
    assert!(offset_of!(dmsg_master_service_info, handle) == 24);
    assert!(offset_of!(dmsg_master_service_info, altmsg_callback) == 32);
    assert!(offset_of!(dmsg_master_service_info, dbgmsg_callback) == 40);
    assert!(offset_of!(dmsg_master_service_info, exit_callback) == 48);
};

/// Connects to `hostname` over TCP: `host` or `host:port` (`[v6]:port`;
/// an IPv6 literal without brackets takes no port), numeric or by name,
/// IPv4 or IPv6 (every address is tried), default port 987
/// (`DMSG_LISTEN_PORT`); NULL means 0.0.0.0. Returns the connected fd
/// (the caller's to close, e.g. by handing it to `dmsg_master_service`),
/// or -1 with a message on stderr.
///
/// # Safety
/// `hostname` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn dmsg_connect(hostname: *const c_char) -> c_int {
    let host = if hostname.is_null() {
        String::from("0.0.0.0")
    } else {
        // SAFETY: a C string per the contract.
        unsafe { CStr::from_ptr(hostname) }
            .to_string_lossy()
            .into_owned()
    };
    match dmsg::service::connect(&host) {
        Ok(s) => s.into_raw_fd(),
        Err(e) => {
            log(format_args!("dmsg_connect: {e}"));
            -1
        }
    }
}

/// The master service thread (a pthread entry point; STATE.md §8.2):
/// serves the connection `info->fd` on the default node. `info` is a
/// malloc'd `dmsg_master_service_info_t`, freed by the service.
///
/// It detaches the thread if `info->detachme`, runs the connection as an
/// iocom (labelled `info->label` if set) registered with the node (our
/// `LNK_CONN` is sent first; spans are then relayed both ways, and
/// `LNK_VOLCONF` runs the volconf workers), passes DBG_SHELL lines and
/// non-LNK messages to `info->dbgmsg_callback`, and returns when the link
/// is down (peer EOF, error, or `DMSG_IOCOMF_EOF` set by a callback): its
/// spans are then withdrawn, the fd is closed once, `exit_callback(handle)`
/// runs, `info` is freed. Returns NULL.
///
/// # Safety
/// `info` is NULL (ignored) or a malloc'd, initialized
/// `dmsg_master_service_info_t` that nothing else uses; its `fd` is an
/// open fd that nothing else closes.
#[no_mangle]
pub unsafe extern "C" fn dmsg_master_service(info: *mut c_void) -> *mut c_void {
    // SAFETY: forwarded contract.
    unsafe { dmsg_master_service_node(ptr::null_mut(), info) }
}

/// Extension: `dmsg_master_service` on `node` (NULL: the default node),
/// on the calling thread. To start it as a thread, call it from your own
/// thread function. An unknown `node` handle ends the service at once
/// (fd closed, exit callback run, `info` freed).
///
/// # Safety
/// As `dmsg_master_service`; `node` is NULL or a live node handle.
#[no_mangle]
pub unsafe extern "C" fn dmsg_master_service_node(
    node: *mut dmsg_node_t,
    info: *mut c_void,
) -> *mut c_void {
    let info = info.cast::<dmsg_master_service_info>();
    if info.is_null() {
        log(format_args!("dmsg_master_service: NULL info"));
        return ptr::null_mut();
    }
    // SAFETY: a malloc'd, initialized info per the contract, ours now.
    let i = unsafe { ptr::read(info) };
    if i.detachme != 0 {
        // SAFETY: detaching the calling thread, as the original does.
        unsafe { libc::pthread_detach(libc::pthread_self()) };
    }
    // SAFETY: calloc has no preconditions; checked below. All zero is a
    // valid iocom.
    let iocom =
        unsafe { libc::calloc(1, core::mem::size_of::<dmsg_iocom_t>()) }.cast::<dmsg_iocom_t>();
    let cnode = lnk::select_node(node);
    match (iocom.is_null(), cnode) {
        (false, Some(cnode)) => {
            let alt = if i.altmsg_callback.is_some() {
                i.altfd
            } else {
                -1
            };
            // SAFETY: a fresh heap iocom that stays in place until freed
            // below; the fd is ours per the contract.
            unsafe {
                dmsg_iocom_init(
                    iocom,
                    i.fd,
                    alt,
                    Some(master_signal),
                    Some(master_rxmsg),
                    i.dbgmsg_callback,
                    i.altmsg_callback,
                );
                if i.noclosealt != 0 {
                    flags(iocom).fetch_and(!DMSG_IOCOMF_CLOSEALT, Ordering::AcqRel);
                }
                if !i.label.is_null() {
                    libc::free((*iocom).label.cast::<c_void>());
                    (*iocom).label = i.label;
                }
            }
            // SAFETY: the iocom was initialized above.
            if let Some(inner) = unsafe { IocomInner::of(iocom) } {
                inner.lnk.choose(std::sync::Arc::clone(&cnode));
                cnode.enable_volconf();
                // SAFETY: live iocom, `inner` its state.
                let _ = unsafe { lnk::attach(iocom, &inner, Some(&master_conn())) };
            }
            // SAFETY: initialized, run on this thread, then released once
            // (which closes the fd and frees the label) and freed.
            unsafe {
                dmsg_iocom_core(iocom);
                dmsg_iocom_done(iocom);
            }
        }
        (failed, _) => {
            log(format_args!(
                "dmsg_master_service: {}",
                if failed {
                    "out of memory"
                } else {
                    "not a live node handle"
                }
            ));
            // SAFETY: the fd and the label are ours per the contract.
            unsafe {
                if i.fd >= 0 {
                    libc::close(i.fd);
                }
                libc::free(i.label.cast::<c_void>());
            }
        }
    }
    // SAFETY: NULL or our calloc'd iocom, released above.
    unsafe { libc::free(iocom.cast::<c_void>()) };
    if let Some(cb) = i.exit_callback {
        // SAFETY: the user's callback with the user's handle.
        unsafe { cb(i.handle) };
    }
    // SAFETY: malloc'd per the contract; nothing refers to it any more.
    unsafe { libc::free(info.cast::<c_void>()) };
    ptr::null_mut()
}

/// The master service's signal callback: the relay selection.
unsafe extern "C" fn master_signal(iocom: *mut dmsg_iocom_t) {
    // SAFETY: the core loop passes its live iocom.
    unsafe { dmsg_msg_lnk_signal(iocom) };
}

/// The master service's receive callback (STATE.md §8.2 step 5).
unsafe extern "C" fn master_rxmsg(msg: *mut dmsg_msg_t) {
    if msg.is_null() {
        return;
    }
    // SAFETY: the core loop passes a live message with a live state (or
    // NULL) and iocom.
    unsafe {
        let state = (*msg).state;
        if !state.is_null() {
            if let Some(func) = (*state).func {
                func(msg);
                return;
            }
        }
        let cmd = if state.is_null() {
            (*msg).any.head.cmd
        } else {
            (*state).icmd
        };
        match cmd & DMSGF_PROTOS {
            DMSG_PROTO_LNK => dmsg_msg_lnk(msg),
            DMSG_PROTO_DBG => dmsg_msg_dbg(msg),
            _ => user_msg(msg),
        }
    }
}

/// Hands `msg` to the iocom's `dbgmsg_callback`; without one, a
/// transaction it opens is refused with `DMSG_ERR_NOSUPP`.
///
/// # Safety
/// `msg` is a live received message of a live iocom.
unsafe fn user_msg(msg: *mut dmsg_msg_t) {
    // SAFETY: per the contract.
    unsafe {
        let iocom = (*msg).iocom;
        let cb = if iocom.is_null() {
            None
        } else {
            (*iocom).dbgmsg_callback
        };
        match cb {
            Some(cb) => cb(msg),
            None => {
                let c = (*msg).any.head.cmd;
                if c & DMSGF_CREATE != 0 && c & DMSGF_REPLY == 0 {
                    dmsg_msg_reply(msg, DMSG_ERR_NOSUPP);
                }
            }
        }
    }
}

/// The DBG protocol dispatcher (STATE.md §8.3), for received DBG
/// messages: a `DBG_SHELL` line gets its aux data NUL-terminated (an
/// empty string when it has none), goes to the iocom's `dbgmsg_callback`
/// (without one, "no shell on this link" is printed back), and is then
/// answered with `dmsg_msg_reply(msg, 0)`, the prompt. A `DBG_SHELL|REPLY`
/// has its text written to stderr. Other DBG messages go to
/// `dbgmsg_callback` (or are refused with `DMSG_ERR_NOSUPP` when they open
/// a transaction and there is none).
///
/// # Safety
/// `msg` is NULL (ignored) or a live received message.
#[no_mangle]
pub unsafe extern "C" fn dmsg_msg_dbg(msg: *mut dmsg_msg_t) {
    if msg.is_null() {
        return;
    }
    // SAFETY: a live message per the contract.
    let cmd = unsafe { (*msg).any.head.cmd };
    if cmd & DMSGF_BASECMDMASK != DMSG_DBG_SHELL {
        // SAFETY: forwarded contract.
        unsafe { user_msg(msg) };
        return;
    }
    // SAFETY: a live received message.
    unsafe { terminate_aux(msg) };
    if cmd & DMSGF_REPLY != 0 {
        // SAFETY: terminate_aux left a NUL-terminated aux (or NULL).
        let text = unsafe {
            let aux = (*msg).aux_data;
            if aux.is_null() {
                &[][..]
            } else {
                CStr::from_ptr(aux).to_bytes()
            }
        };
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(text);
        let _ = err.flush();
        return;
    }
    // SAFETY: live message and iocom.
    unsafe {
        let iocom = (*msg).iocom;
        let cb = if iocom.is_null() {
            None
        } else {
            (*iocom).dbgmsg_callback
        };
        match cb {
            Some(cb) => cb(msg),
            None => circuit_print((*msg).circuit, b"no shell on this link\n"),
        }
        dmsg_msg_reply(msg, 0);
    }
}

/// The Rust half of `dmsg_circuit_printf` (internal, not in the header):
/// sends the formatted `text` (at most 1023 bytes are used) and a NUL as a
/// one-way `DBG_SHELL|REPLY` on `circuit`.
///
/// # Safety
/// `circuit` is NULL (ignored) or a circuit of a live iocom; `text` is
/// NULL (ignored) or a NUL-terminated string.
///
/// cbindgen:ignore
#[no_mangle]
pub unsafe extern "C" fn dmsg_ffi_circuit_printf(
    circuit: *mut dmsg_circuit_t,
    text: *const c_char,
) {
    if text.is_null() {
        return;
    }
    // SAFETY: per the contract.
    unsafe { circuit_print(circuit, CStr::from_ptr(text).to_bytes()) };
}
