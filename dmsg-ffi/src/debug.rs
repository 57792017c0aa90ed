//! The debug functions of `<dmsg.h>` (C-ABI.md §4, debug.c):
//! `dmsg_basecmd_str` and `dmsg_msg_str`.
//!
//! Each returns a string in a buffer of the calling thread, valid until
//! that thread's next call of the same function (the original uses one
//! static buffer for the whole process).

use crate::types::dmsg_msg_t;
use core::cell::RefCell;
use core::ffi::c_char;
use dmsg::wire::cmd::{basecmd_str, flags_str, CREATE, DELETE};
use std::ffi::CString;

thread_local! {
    static BASECMD_BUF: RefCell<CString> = RefCell::new(CString::default());
    static MSG_BUF: RefCell<CString> = RefCell::new(CString::default());
}

/// Stores `s` in a thread's buffer and returns it as a C string.
fn keep(buf: &'static std::thread::LocalKey<RefCell<CString>>, s: String) -> *const c_char {
    let c = CString::new(s).unwrap_or_default();
    buf.with(|b| match b.try_borrow_mut() {
        Ok(mut slot) => {
            *slot = c;
            slot.as_ptr()
        }
        Err(_) => c"?".as_ptr(),
    })
}

/// The name of the base command of `cmd` for debug output: "LNK_CONN",
/// "LNK_SPAN", "DBG_SHELL", ..., "LNK_RETURN" for an LNK_ERROR with
/// DELETE and "LNK_RESULT" without; unknown commands print as their
/// protocol and hex code.
#[no_mangle]
pub extern "C" fn dmsg_basecmd_str(cmd: u32) -> *const c_char {
    keep(&BASECMD_BUF, basecmd_str(cmd))
}

/// The `C`/`D` letters of the CREATE and DELETE bits of a flag word.
fn cd(bits: u32) -> String {
    let mut s = String::new();
    if bits & CREATE != 0 {
        s.push('C');
    }
    if bits & DELETE != 0 {
        s.push('D');
    }
    s
}

/// A one-line description of `msg` for debug output:
/// `msg=<basecmd><flags> err=<error> msgid=<hex> circuit=<hex> aux=<bytes>`,
/// plus ` state=L=<sent>,R=<received>` for a message in a transaction
/// (`C`/`D` for CREATE/DELETE). "(null)" for NULL.
///
/// # Safety
/// `msg` is NULL or a live message.
#[no_mangle]
pub unsafe extern "C" fn dmsg_msg_str(msg: *mut dmsg_msg_t) -> *const c_char {
    if msg.is_null() {
        return c"(null)".as_ptr();
    }
    // SAFETY: a live message; any bits of the header are valid.
    let (head, aux, state) = unsafe { ((*msg).any.head, (*msg).aux_size, (*msg).state) };
    let mut s = format!(
        "msg={}{} err={} msgid={:016x} circuit={:x} aux={}",
        basecmd_str(head.cmd),
        flags_str(head.cmd),
        head.error,
        head.msgid,
        head.circuit,
        aux
    );
    if !state.is_null() {
        // SAFETY: a live message's state is live while the message is.
        let (tx, rx) = unsafe { ((*state).txcmd, (*state).rxcmd) };
        s.push_str(&format!(" state=L={},R={}", cd(tx), cd(rx)));
    }
    keep(&MSG_BUF, s)
}
