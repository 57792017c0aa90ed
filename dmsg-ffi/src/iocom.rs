//! The iocom functions of `<dmsg.h>` (C-ABI.md §4, msg.c; seed era):
//! `dmsg_iocom_init`, `dmsg_iocom_core`, `dmsg_iocom_done`,
//! `dmsg_iocom_signal`, `dmsg_iocom_restate` and `dmsg_circuit_init`.
//! (`dmsg_iocom_label` is C-variadic: it is in `csrc/variadic.c`, declared
//! verbatim in the header.)
//!
//! An iocom runs one link: `dmsg_iocom_init` takes ownership of the socket
//! and builds the engine and its driver, `dmsg_iocom_core` runs the driver
//! on the calling thread until the link is down, `dmsg_iocom_done` releases
//! everything. The library's own state is behind `iocom->mtx` (see
//! `mirror.rs`).

use crate::lib_consts::{
    DMSG_IOCOMF_CLOSEALT, DMSG_IOCOMF_EOF, DMSG_IOCOMF_RREQ, DMSG_IOCOMF_SWORK, DMSG_IOQ_ERROR_SOCK,
};
use crate::mirror::{self, flags, log, CoreHandler, IocomInner};
use crate::types::{
    dmsg_circuit_t, dmsg_iocom_func_t, dmsg_iocom_t, dmsg_msg_func_t, dmsg_state_tree,
};
use core::ffi::{c_int, c_void};
use core::ptr;
use dmsg::link::Link;
use dmsg::runtime::{Driver, DriverConfig};
use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Initializes `iocom` (which may be on the caller's stack) for a link over
/// the connected stream `sock_fd`, with an optional `alt_fd` (-1 for none)
/// whose input `altmsg_func` reads.
///
/// The iocom is zeroed, then gets the fds, the callbacks, the flags
/// `DMSG_IOCOMF_RREQ | DMSG_IOCOMF_CLOSEALT` (plus `DMSG_IOCOMF_SWORK` when
/// `state_func` is given: it is then called first thing in
/// `dmsg_iocom_core`), the label `"iocom-%p"`, and `circuit0` (msgid 0,
/// one reference). The iocom owns `sock_fd` from here on (made
/// non-blocking, closed once by `dmsg_iocom_done`); `alt_fd` stays the
/// caller's unless `DMSG_IOCOMF_CLOSEALT` is still set at done time. The
/// alt fd is polled only when `altmsg_func` is given.
///
/// If no link can be set up over `sock_fd` (e.g. -1), the iocom is marked
/// `DMSG_IOCOMF_EOF` with `ioq_rx.error = DMSG_IOQ_ERROR_SOCK`:
/// `dmsg_iocom_core` then returns at once.
///
/// When `sock_fd` is a TCP/IP socket (`AF_INET`, `AF_INET6`) the crypto
/// handshake runs here, synchronously, as in the C library, with the key
/// files of the key directory (`/etc/hammer2` unless
/// `dmsg_crypto_set_keydir` chose another; see `dmsg_crypto_negotiate`):
/// on success the link is encrypted and `DMSG_IOCOMF_CRYPTED` is set; on
/// failure the error is logged (naming the key file and the peer),
/// `DMSG_IOCOMF_EOF` is set with `ioq_rx.error` = its
/// `DMSG_IOQ_ERROR_*` code, and `dmsg_iocom_core` only aborts what was
/// queued and returns. Other fds (Unix sockets, pipes) are plaintext.
///
/// # Safety
/// `iocom` is NULL (ignored) or points to a writable `struct dmsg_iocom`
/// that stays in place until `dmsg_iocom_done`; `sock_fd` is an open fd
/// that nothing else closes.
#[no_mangle]
pub unsafe extern "C" fn dmsg_iocom_init(
    iocom: *mut dmsg_iocom_t,
    sock_fd: c_int,
    alt_fd: c_int,
    state_func: dmsg_iocom_func_t,
    rcvmsg_func: dmsg_msg_func_t,
    dbgmsg_func: dmsg_msg_func_t,
    altmsg_func: dmsg_iocom_func_t,
) {
    if iocom.is_null() {
        log(format_args!("dmsg_iocom_init: NULL iocom"));
        return;
    }
    // SAFETY: `iocom` is writable per the contract; all zero is a valid
    // value of every member (integers, NULL pointers, no callbacks).
    unsafe {
        ptr::write_bytes(iocom, 0, 1);
        (*iocom).sock_fd = sock_fd;
        (*iocom).alt_fd = alt_fd;
        (*iocom).wakeupfds = [-1, -1];
        (*iocom).signal_callback = state_func;
        (*iocom).rcvmsg_callback = rcvmsg_func;
        (*iocom).dbgmsg_callback = dbgmsg_func;
        (*iocom).altmsg_callback = altmsg_func;
        let mut f = DMSG_IOCOMF_RREQ | DMSG_IOCOMF_CLOSEALT;
        if state_func.is_some() {
            f |= DMSG_IOCOMF_SWORK;
        }
        (*iocom).flags = f;
        (*iocom).label = mirror::malloc_str(&format!("iocom-{iocom:p}"));
        dmsg_circuit_init(iocom, ptr::addr_of_mut!((*iocom).circuit0));
    }
    mirror::count_circuit(true);

    // Crypto (crypto.rs): a TCP/IP socket negotiates here, synchronously,
    // before the driver runs.
    let mut crypto = crate::crypto::Outcome::Plaintext;
    let driver = if sock_fd < 0 {
        log(format_args!("dmsg_iocom_init: bad socket fd {sock_fd}"));
        None
    } else {
        // SAFETY: per the contract the iocom owns sock_fd from here on;
        // the OwnedFd closes it exactly once.
        let sock = unsafe { OwnedFd::from_raw_fd(sock_fd) };
        let alt = if alt_fd >= 0 && altmsg_func.is_some() {
            // SAFETY: alt_fd is an open fd of the caller's for the call;
            // we keep a duplicate of our own.
            match unsafe { BorrowedFd::borrow_raw(alt_fd) }.try_clone_to_owned() {
                Ok(fd) => Some(fd),
                Err(e) => {
                    log(format_args!(
                        "dmsg_iocom_init: cannot dup alt fd {alt_fd}: {e}"
                    ));
                    None
                }
            }
        } else {
            None
        };
        match Driver::new(sock, alt, Link::default(), DriverConfig::default()) {
            Ok((mut d, c)) => {
                crypto = crate::crypto::negotiate_driver(&mut d, &c);
                Some((d, c))
            }
            Err(e) => {
                log(format_args!("dmsg_iocom_init: fd {sock_fd}: {e}"));
                None
            }
        }
    };
    let ok = driver.is_some();
    let inner = Arc::new(IocomInner::new(driver));
    if let (true, Some(conn)) = (state_func.is_some(), &inner.conn) {
        conn.signal();
    }
    // SAFETY: iocom is live; `mtx` is ours (C code never touches it).
    unsafe {
        (*iocom).mtx = Arc::into_raw(inner).cast_mut().cast::<c_void>();
        if !ok {
            (*iocom).ioq_rx.error = DMSG_IOQ_ERROR_SOCK;
            flags(iocom).fetch_or(DMSG_IOCOMF_EOF, Ordering::AcqRel);
        }
        crypto.record(iocom);
    }
}

/// Runs the link on the calling thread until it is down: the signal
/// callback on `dmsg_iocom_signal`, `altmsg_callback` when the alt fd is
/// readable, and `rcvmsg_callback(msg)` for every received message, which
/// the library frees when the callback returns (unless it is the creating
/// message of a transaction: `msg->state->msg`, kept with the state).
///
/// It returns when a callback sets `DMSG_IOCOMF_EOF` in `iocom->flags`, or
/// the peer closes the link, or the link fails. Every transaction still
/// open is then aborted first: its handler sees one LNK_ERROR with
/// `DMSGF_ABORT | DMSGF_DELETE` carrying the `DMSG_IOQ_ERROR_*` code (2 for
/// EOF), through `rcvmsg_callback` as any message, followed by one
/// one-way LNK_ERROR with that code; every state is then freed.
/// `iocom->ioq_rx.error` holds the code afterwards. Calling it again does
/// nothing.
///
/// # Safety
/// `iocom` is NULL (ignored) or was initialized by `dmsg_iocom_init` and
/// not yet released.
#[no_mangle]
pub unsafe extern "C" fn dmsg_iocom_core(iocom: *mut dmsg_iocom_t) {
    // SAFETY: per the contract.
    let Some(inner) = (unsafe { IocomInner::of(iocom) }) else {
        return;
    };
    let taken = inner
        .driver
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    let Some(mut driver) = taken else {
        return;
    };
    let mut handler = CoreHandler {
        iocom,
        inner: Arc::clone(&inner),
    };
    let _why = driver.run(&mut handler);
    *inner
        .driver
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(driver);
    inner.free_all_states();
    crate::circuit::iocom_gone(iocom);
}

/// Releases what `dmsg_iocom_init` set up: closes `sock_fd` (and `alt_fd`
/// if `DMSG_IOCOMF_CLOSEALT` is set; both become -1), frees every state
/// left, the library's state and the label (the original leaves the label
/// allocated; set it to NULL first to keep it). Call it once, after
/// `dmsg_iocom_core` has returned (or instead of it).
///
/// # Safety
/// `iocom` is NULL (ignored) or was initialized by `dmsg_iocom_init`; no
/// other thread uses it any more.
#[no_mangle]
pub unsafe extern "C" fn dmsg_iocom_done(iocom: *mut dmsg_iocom_t) {
    if iocom.is_null() {
        return;
    }
    // SAFETY: per the contract the iocom is live and ours alone.
    unsafe {
        let raw = (*iocom).mtx.cast::<IocomInner>().cast_const();
        if !raw.is_null() {
            (*iocom).mtx = ptr::null_mut();
            // SAFETY: `mtx` holds the reference dmsg_iocom_init made.
            let inner = Arc::from_raw(raw);
            crate::lnk::link_down(&inner, &dmsg::link::LinkError::Shutdown);
            inner.free_all_states();
            crate::circuit::iocom_gone(iocom);
            // Dropping the driver closes the socket and our alt fd copy.
            drop(
                inner
                    .driver
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .take(),
            );
            drop(inner);
            mirror::count_circuit(false);
            (*iocom).sock_fd = -1;
        }
        let f = flags(iocom).load(Ordering::Acquire);
        if f & DMSG_IOCOMF_CLOSEALT != 0 && (*iocom).alt_fd >= 0 {
            libc::close((*iocom).alt_fd);
            (*iocom).alt_fd = -1;
        }
        libc::free((*iocom).label.cast::<c_void>());
        (*iocom).label = ptr::null_mut();
    }
}

/// Asks `dmsg_iocom_core` to call the signal callback (sets
/// `DMSG_IOCOMF_SWORK`). Any thread may call it; unlike the original it
/// also wakes the loop, so the callback runs promptly.
///
/// # Safety
/// `iocom` is NULL (ignored) or an initialized, not yet released iocom.
#[no_mangle]
pub unsafe extern "C" fn dmsg_iocom_signal(iocom: *mut dmsg_iocom_t) {
    // SAFETY: per the contract.
    let Some(inner) = (unsafe { IocomInner::of(iocom) }) else {
        return;
    };
    // SAFETY: the iocom is live.
    unsafe { flags(iocom) }.fetch_or(DMSG_IOCOMF_SWORK, Ordering::AcqRel);
    if let Some(conn) = &inner.conn {
        conn.signal();
    }
}

/// Replaces the signal and receive callbacks (from inside a callback of
/// `dmsg_iocom_core`, as the original requires). A non-NULL `state_func`
/// is called soon (`DMSG_IOCOMF_SWORK` is set); NULL clears the request.
///
/// # Safety
/// `iocom` is NULL (ignored) or an initialized, not yet released iocom.
#[no_mangle]
pub unsafe extern "C" fn dmsg_iocom_restate(
    iocom: *mut dmsg_iocom_t,
    state_func: dmsg_iocom_func_t,
    rcvmsg_func: dmsg_msg_func_t,
) {
    if iocom.is_null() {
        return;
    }
    // SAFETY: the iocom is live; callbacks are read by the core loop on
    // this same thread.
    unsafe {
        (*iocom).signal_callback = state_func;
        (*iocom).rcvmsg_callback = rcvmsg_func;
        if state_func.is_some() {
            dmsg_iocom_signal(iocom);
        } else {
            flags(iocom).fetch_and(!DMSG_IOCOMF_SWORK, Ordering::AcqRel);
        }
    }
}

/// Initializes a circuit of `iocom`: one reference, no peer or state, the
/// iocom back pointer. Its `msgid` is left as it is (0 for `circuit0`).
///
/// # Safety
/// `circuit` is NULL (ignored) or points to a writable `struct
/// dmsg_circuit`.
#[no_mangle]
pub unsafe extern "C" fn dmsg_circuit_init(iocom: *mut dmsg_iocom_t, circuit: *mut dmsg_circuit_t) {
    if circuit.is_null() {
        return;
    }
    // SAFETY: writable per the contract; every member written is plain.
    unsafe {
        (*circuit).rbnode = Default::default();
        (*circuit).iocom = iocom;
        (*circuit).staterd_tree = dmsg_state_tree::default();
        (*circuit).statewr_tree = dmsg_state_tree::default();
        (*circuit).peer = ptr::null_mut();
        (*circuit).state = ptr::null_mut();
        (*circuit).span_state = ptr::null_mut();
        (*circuit).is_relay = 0;
        (*circuit).refs = 1;
    }
}
