//! The crypto functions of `<dmsg.h>` (C-ABI.md §4, crypto.c; seed era):
//! `dmsg_crypto_setup`, `dmsg_crypto_negotiate`, and the extensions
//! `dmsg_crypto_set_keydir`, `dmsg_crypto_set_timeout` and
//! `dmsg_crypto_generate_keys`.
//!
//! `dmsg_iocom_init` negotiates synchronously, as the C library does, but
//! only when `sock_fd` is a TCP/IP socket (`AF_INET` or `AF_INET6`): a Unix
//! socket, a socketpair or a pipe runs plaintext without looking at the
//! key directory (the C library tries on any socket, and fails a Unix
//! socket for want of a peer address). The key files are those of
//! `dmsg::crypto::KeyDir`: `rsa.prv`, `rsa.pub`, `remote/<addr>.pub`,
//! `remote/<addr>.none`, in `/etc/hammer2` unless
//! `dmsg_crypto_set_keydir` chose another directory.

use crate::lib_consts::{DMSG_IOCOMF_CRYPTED, DMSG_IOCOMF_EOF};
use crate::mirror::{flags, log, IocomInner};
use crate::types::dmsg_iocom_t;
use core::ffi::{c_char, c_int, CStr};
use dmsg::crypto::{generate_keys, KeyDir, OsRandom};
use dmsg::runtime::crypto::{is_inet_socket, negotiate, DEFAULT_HANDSHAKE_TIMEOUT};
use dmsg::runtime::{Conn, Driver};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// The key directory and handshake timeout chosen by the extensions.
struct Settings {
    keydir: Option<PathBuf>,
    timeout: Duration,
}

static SETTINGS: Mutex<Settings> = Mutex::new(Settings {
    keydir: None,
    timeout: DEFAULT_HANDSHAKE_TIMEOUT,
});

fn settings() -> (KeyDir, Duration) {
    let g = SETTINGS.lock().unwrap_or_else(PoisonError::into_inner);
    let dir = g.keydir.clone().map_or_else(KeyDir::default, KeyDir::new);
    (dir, g.timeout)
}

/// Kept for compatibility; does nothing. The C library installed
/// OpenSSL's locking and thread-id callbacks here, which OpenSSL 1.1 and
/// later no longer need (it locks by itself), and every other set-up is
/// done on first use.
#[no_mangle]
pub extern "C" fn dmsg_crypto_setup() {}

/// Extension (not in the C library): sets the key directory that
/// `dmsg_iocom_init` and `dmsg_crypto_negotiate` read the key files from,
/// for every iocom initialized afterwards. NULL or "" restores the default,
/// `/etc/hammer2`. The string is copied.
///
/// # Safety
/// `dir` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn dmsg_crypto_set_keydir(dir: *const c_char) {
    let path = if dir.is_null() {
        None
    } else {
        // SAFETY: a NUL-terminated string per the contract.
        let s = unsafe { CStr::from_ptr(dir) };
        (!s.is_empty()).then(|| PathBuf::from(std::ffi::OsStr::from_bytes(s.to_bytes())))
    };
    SETTINGS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .keydir = path;
}

/// Extension (not in the C library, which waits forever): sets the
/// handshake timeout in milliseconds (default 10000); 0 or less restores
/// the default.
#[no_mangle]
pub extern "C" fn dmsg_crypto_set_timeout(ms: c_int) {
    let t = u64::try_from(ms)
        .ok()
        .filter(|&m| m > 0)
        .map_or(DEFAULT_HANDSHAKE_TIMEOUT, Duration::from_millis);
    SETTINGS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .timeout = t;
}

/// Extension (not in the C library; `hammer2 rsainit` did it there):
/// writes a fresh 2048-bit key pair into `dir` (created if missing):
/// `rsa.prv` (mode 0600) and `rsa.pub` (0644). NULL writes into the
/// current key directory (see `dmsg_crypto_set_keydir`). Refuses to
/// overwrite an existing key file. Returns 0, or -1 after logging why.
///
/// # Safety
/// `dir` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn dmsg_crypto_generate_keys(dir: *const c_char) -> c_int {
    let path = if dir.is_null() {
        settings().0.path().to_owned()
    } else {
        // SAFETY: a NUL-terminated string per the contract.
        let s = unsafe { CStr::from_ptr(dir) };
        PathBuf::from(std::ffi::OsStr::from_bytes(s.to_bytes()))
    };
    match generate_keys(&path) {
        Ok(()) => 0,
        Err(e) => {
            log(format_args!("dmsg_crypto_generate_keys: {e}"));
            -1
        }
    }
}

/// What [`negotiate_driver`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Not a TCP/IP socket, or the peer is marked `.none`: plaintext.
    Plaintext,
    /// The handshake succeeded: the driver encrypts
    /// (`DMSG_IOCOMF_CRYPTED`).
    Crypted,
    /// It failed with this `DMSG_IOQ_ERROR_*` code: the link is down
    /// (`DMSG_IOCOMF_EOF`), and the error was logged naming the file and
    /// the peer.
    Failed(i32),
}

impl Outcome {
    /// Records the outcome in the iocom: `DMSG_IOCOMF_CRYPTED`, or
    /// `DMSG_IOCOMF_EOF` with `ioq_rx.error`.
    ///
    /// # Safety
    /// `iocom` points to a live, initialized iocom.
    pub(crate) unsafe fn record(self, iocom: *mut dmsg_iocom_t) {
        // SAFETY: per the contract.
        let fl = unsafe { flags(iocom) };
        match self {
            Outcome::Plaintext => {}
            Outcome::Crypted => {
                fl.fetch_or(DMSG_IOCOMF_CRYPTED, Ordering::AcqRel);
            }
            Outcome::Failed(code) => {
                // SAFETY: per the contract; the core loop is not running.
                unsafe { (*iocom).ioq_rx.error = code };
                fl.fetch_or(DMSG_IOCOMF_EOF, Ordering::AcqRel);
            }
        }
    }
}

/// Negotiates crypto on the socket of a driver that has not run yet (for
/// `dmsg_iocom_init` and `dmsg_crypto_negotiate`): nothing for a socket
/// that is not TCP/IP, else per the key directory. A failure takes the
/// link down with `LinkError::Crypto` (so `dmsg_iocom_core` only delivers
/// the aborts and returns).
pub(crate) fn negotiate_driver(driver: &mut Driver, conn: &Conn) -> Outcome {
    if !is_inet_socket(&*driver) {
        return Outcome::Plaintext;
    }
    let (dir, timeout) = settings();
    match negotiate(&*driver, &dir, timeout, &mut OsRandom) {
        Ok(None) => Outcome::Plaintext,
        Ok(Some(session)) => {
            driver.set_session(session);
            Outcome::Crypted
        }
        Err(e) => {
            log(format_args!("crypto negotiation failed: {e}"));
            let why = e.to_link_error();
            let code = i32::try_from(why.code()).unwrap_or(i32::MAX);
            conn.with_link_nowait(|l| l.fail(why));
            Outcome::Failed(code)
        }
    }
}

/// Negotiates crypto on the socket of an iocom whose `dmsg_iocom_core`
/// has not run yet. `dmsg_iocom_init` already does this for TCP/IP
/// sockets, so a second call finds `DMSG_IOCOMF_CRYPTED` (or
/// `DMSG_IOCOMF_EOF`) set and does nothing; on other fds it does nothing
/// either. On failure the iocom gets `DMSG_IOCOMF_EOF` and
/// `ioq_rx.error` = the `DMSG_IOQ_ERROR_*` code (e.g. `NORKEY`,
/// `KEYXCHGFAIL`), as in the C library; on success `DMSG_IOCOMF_CRYPTED`.
///
/// # Safety
/// `iocom` is NULL (ignored) or an initialized, not yet released iocom
/// whose `dmsg_iocom_core` is not running.
#[no_mangle]
pub unsafe extern "C" fn dmsg_crypto_negotiate(iocom: *mut dmsg_iocom_t) {
    // SAFETY: per the contract.
    let Some(inner) = (unsafe { IocomInner::of(iocom) }) else {
        return;
    };
    // SAFETY: the iocom is live.
    let fl = unsafe { flags(iocom) }.load(Ordering::Acquire);
    if fl & (DMSG_IOCOMF_CRYPTED | DMSG_IOCOMF_EOF) != 0 {
        return;
    }
    let Some(conn) = inner.conn.clone() else {
        return;
    };
    let mut guard = inner.driver.lock().unwrap_or_else(PoisonError::into_inner);
    let Some(driver) = guard.as_mut() else {
        return;
    };
    let outcome = negotiate_driver(driver, &conn);
    drop(guard);
    // SAFETY: the iocom is live and its core is not running.
    unsafe { outcome.record(iocom) };
}
