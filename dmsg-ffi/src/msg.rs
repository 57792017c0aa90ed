//! The message and transaction functions of `<dmsg.h>` (C-ABI.md §4,
//! STATE.md §3.4; seed era): `dmsg_msg_alloc`, `dmsg_msg_write`,
//! `dmsg_msg_reply`, `dmsg_msg_result`, `dmsg_state_reply`,
//! `dmsg_state_result` and `dmsg_msg_free`.
//!
//! Any thread may call them. A local misuse (a link that is down, a state
//! that is over, a malformed message) is logged and the message dropped;
//! nothing aborts. Replying twice on a transaction sends one reply only
//! (STATE.md §10 row 20).

use crate::mirror::{
    alloc_aux, alloc_msg, any_with_cmd, free_msg, hdr_size_of, log, log_send_error, msg_to_message,
    IocomInner, Target,
};
use crate::types::{dmsg_circuit_t, dmsg_iocom_t, dmsg_msg_func_t, dmsg_msg_t, dmsg_state_t};
use core::ffi::c_void;
use core::ptr;
use dmsg::link::SendError;
use dmsg::state::TxnId;
use dmsg::wire::cmd::{CREATE, REPLY};
use dmsg::wire::Header;
use std::sync::Arc;

/// Allocates a message on `circuit` (e.g. `&iocom->circuit0`) with command
/// `cmd` and room for `aux_size` bytes of aux data (`aux_data` then has
/// `DMSG_DOALIGN(aux_size)` zeroed bytes; NULL for 0). The whole
/// `struct dmsg_msg` is allocated and zeroed; `hdr_size` comes from `cmd`,
/// `any.head.cmd` is `cmd`.
///
/// If `cmd` has `DMSGF_CREATE` without `DMSGF_REPLY`, a transaction is
/// opened with it: `msg->state` is its new state, with `func` and
/// `any.any = data` attached and `msg` as `state->msg`, and
/// `any.head.msgid` its msgid. Nothing is sent before `dmsg_msg_write`.
/// Otherwise `msg->state` is NULL; set it to send inside a transaction.
///
/// Returns NULL (and logs) for a NULL or uninitialized circuit, or when
/// out of memory. If the link is already down, the message has no state
/// and writing it drops it.
///
/// # Safety
/// `circuit` is NULL or a circuit of an initialized, not yet released
/// iocom.
#[no_mangle]
pub unsafe extern "C" fn dmsg_msg_alloc(
    circuit: *mut dmsg_circuit_t,
    aux_size: usize,
    cmd: u32,
    func: dmsg_msg_func_t,
    data: *mut c_void,
) -> *mut dmsg_msg_t {
    if circuit.is_null() {
        log(format_args!("dmsg_msg_alloc: NULL circuit"));
        return ptr::null_mut();
    }
    // SAFETY: a live circuit per the contract.
    let (iocom, circuit_id) = unsafe { ((*circuit).iocom, (*circuit).msgid) };
    // SAFETY: the circuit's iocom is live per the contract.
    let Some(inner) = (unsafe { IocomInner::of(iocom) }) else {
        log(format_args!(
            "dmsg_msg_alloc: circuit of no initialized iocom"
        ));
        return ptr::null_mut();
    };
    let msg = alloc_msg();
    if msg.is_null() {
        return msg;
    }
    let aux = alloc_aux(aux_size);
    if aux_size != 0 && aux.is_null() {
        // SAFETY: just allocated, not shared.
        unsafe { free_msg(msg) };
        return ptr::null_mut();
    }
    // SAFETY: `msg` is fresh and only ours.
    unsafe {
        (*msg).iocom = iocom;
        (*msg).circuit = circuit;
        crate::circuit::hold(circuit);
        (*msg).hdr_size = hdr_size_of(cmd);
        (*msg).aux_size = aux_size;
        (*msg).aux_data = aux;
        (*msg).any = any_with_cmd(cmd);
        // The C library left this 0; the message belongs on its circuit.
        (*msg).any.head.circuit = circuit_id;
    }
    if cmd & CREATE != 0 && cmd & REPLY == 0 {
        let begun = inner.conn.as_ref().map(|c| {
            c.with_link_nowait(|l| {
                l.begin(circuit_id, cmd)
                    .map(|id| l.txn(id).ok_or(SendError::UnknownTxn(id)))
            })
        });
        match begun {
            Some(Ok(Ok(info))) => {
                // SAFETY: iocom, circuit and msg are live; msg unshared.
                unsafe {
                    let state = inner.add_local(iocom, circuit, &info, msg, func, data);
                    (*msg).state = state;
                    (*msg).any.head.msgid = info.msgid;
                }
            }
            Some(Ok(Err(e)) | Err(e)) => log_send_error("dmsg_msg_alloc", &e),
            None => log_send_error("dmsg_msg_alloc", &SendError::LinkDown),
        }
    }
    msg
}

/// Sends `msg` (from any thread): inside `msg->state`'s transaction (its
/// msgid, circuit, REPLY and CREATE bits are set from the transaction; a
/// DELETE closes our side), or one-way when `msg->state` is NULL. The
/// header CRCs, salt and aux length are filled in here. The message is
/// freed, unless it is its state's creating message (`state->msg`), which
/// lives until the state is freed.
///
/// A message that cannot be sent (link down, state over or unknown,
/// malformed) is logged and dropped.
///
/// # Safety
/// `msg` is NULL (ignored) or a message of `dmsg_msg_alloc` not yet
/// written or freed, whose `aux_data` holds `aux_size` bytes.
#[no_mangle]
pub unsafe extern "C" fn dmsg_msg_write(msg: *mut dmsg_msg_t) {
    if msg.is_null() {
        return;
    }
    // SAFETY: a live message per the contract.
    let iocom = unsafe { (*msg).iocom };
    // SAFETY: its iocom is live while the message is.
    let inner = unsafe { IocomInner::of(iocom) };
    let Some((inner, conn)) = inner.and_then(|i| i.conn.clone().map(|c| (i, c))) else {
        log(format_args!(
            "dmsg_msg_write: message of no running iocom dropped"
        ));
        // SAFETY: the message is ours to free (no live iocom holds it).
        unsafe { free_msg(msg) };
        return;
    };
    // SAFETY: live per the contract.
    if unsafe { crate::circuit::intercept_write(&inner, &conn, msg) } {
        // A C LNK_CIRC|CREATE, sent by the node as a managed circuit; `msg`
        // is its state's creating message.
        return;
    }
    // SAFETY: live per the contract.
    let m = unsafe { msg_to_message(msg) };
    // SAFETY: live per the contract.
    let (target, keep) = unsafe { inner.claim(msg) };
    let sent = match target {
        Target::OneWay => conn.with_link(|l| l.send_oneway(m)),
        Target::Unknown => {
            log(format_args!(
                "dmsg_msg_write: msg->state is not a live transaction; message dropped"
            ));
            Ok(())
        }
        Target::Txn(id) => {
            let (r, info) = conn.with_link(|l| {
                let r = l.send(id, m);
                (r, l.txn(id))
            });
            if r.is_ok() {
                inner.after_send(id, info);
                // SAFETY: `msg` is still live (freed below at the earliest).
                let error = unsafe { (*msg).any.head.error };
                crate::circuit::after_answer(iocom, &inner, &conn, info, error);
            } else if keep && inner.abandon(id) {
                // The transaction never started: dropped with its state,
                // which freed `msg`.
                if let Err(e) = &r {
                    log_send_error("dmsg_msg_write", e);
                }
                return;
            }
            r
        }
    };
    if let Err(e) = sent {
        log_send_error("dmsg_msg_write", &e);
    }
    if !keep {
        // SAFETY: written messages are the library's; nothing else holds
        // this one.
        unsafe { free_msg(msg) };
    }
}

/// How a reply addresses its transaction.
enum To {
    /// A transaction.
    Txn(TxnId),
    /// A one-way message with this header.
    OneWay(Header),
}

/// Sends the LNK_ERROR of a reply (`close` = DELETE) or result.
fn answer(
    iocom: *mut dmsg_iocom_t,
    inner: &Arc<IocomInner>,
    to: To,
    error: u32,
    close: bool,
    what: &str,
) {
    let Some(conn) = &inner.conn else {
        return;
    };
    let r = match to {
        To::Txn(id) => {
            let (r, info) = conn.with_link(|l| {
                let r = if close {
                    l.reply(id, error)
                } else {
                    l.result(id, error)
                };
                (r, l.txn(id))
            });
            if r.is_ok() {
                inner.after_send(id, info);
                crate::circuit::after_answer(iocom, inner, conn, info, error);
            }
            r
        }
        To::OneWay(hdr) => conn.with_link(|l| l.reply_oneway(&hdr, error)),
    };
    match r {
        // A second reply, or a reply on a transaction that is over: ignored
        // (STATE.md §10 row 20).
        Ok(()) | Err(SendError::Closed(_)) | Err(SendError::UnknownTxn(_)) => {}
        Err(e) => log_send_error(what, &e),
    }
}

/// Common part of `dmsg_msg_reply` / `dmsg_msg_result`.
///
/// # Safety
/// `msg` is NULL or live.
unsafe fn answer_msg(msg: *mut dmsg_msg_t, error: u32, close: bool, what: &str) {
    if msg.is_null() {
        return;
    }
    // SAFETY: live per the contract.
    let (iocom, state) = unsafe { ((*msg).iocom, (*msg).state) };
    // SAFETY: the message's iocom is live.
    let Some(inner) = (unsafe { IocomInner::of(iocom) }) else {
        return;
    };
    let to = if state.is_null() {
        // SAFETY: live message; any header bits are valid.
        let head = unsafe { (*msg).any.head };
        To::OneWay(Header {
            cmd: head.cmd,
            msgid: head.msgid,
            circuit: head.circuit,
            ..Header::default()
        })
    } else {
        match inner.txn_of(state) {
            Some(id) => To::Txn(id),
            // The transaction is over: nothing to answer.
            None => return,
        }
    };
    answer(iocom, &inner, to, error, close, what);
}

/// Common part of `dmsg_state_reply` / `dmsg_state_result`.
///
/// # Safety
/// `state` is NULL or a state pointer the library handed out.
unsafe fn answer_state(state: *mut dmsg_state_t, error: u32, close: bool, what: &str) {
    if state.is_null() {
        return;
    }
    // SAFETY: a live state per the contract.
    let iocom = unsafe { (*state).iocom };
    // SAFETY: the state's iocom is live.
    let Some(inner) = (unsafe { IocomInner::of(iocom) }) else {
        return;
    };
    if close && crate::circuit::close_by_state(iocom, state) {
        // The LNK_CIRC of a circuit ending here: closed by the node.
        return;
    }
    if let Some(id) = inner.txn_of(state) {
        answer(iocom, &inner, To::Txn(id), error, close, what);
    }
}

/// Answers the received `msg` and closes our side of its transaction: an
/// LNK_ERROR carrying `error`, with DELETE (plus REPLY when we are the
/// reply side, plus CREATE if we had sent nothing yet). Does nothing if
/// our side is already closed. For a one-way `msg`: a one-way LNK_ERROR,
/// REPLY set unless `msg` had it, same msgid and circuit. `msg` stays the
/// caller's (a received message is freed by the library).
///
/// # Safety
/// `msg` is NULL (ignored) or a live message.
#[no_mangle]
pub unsafe extern "C" fn dmsg_msg_reply(msg: *mut dmsg_msg_t, error: u32) {
    // SAFETY: forwarded contract.
    unsafe { answer_msg(msg, error, true, "dmsg_msg_reply") }
}

/// Like `dmsg_msg_reply`, but leaves the transaction open (no DELETE): an
/// intermediate result or a positive acknowledgement.
///
/// # Safety
/// `msg` is NULL (ignored) or a live message.
#[no_mangle]
pub unsafe extern "C" fn dmsg_msg_result(msg: *mut dmsg_msg_t, error: u32) {
    // SAFETY: forwarded contract.
    unsafe { answer_msg(msg, error, false, "dmsg_msg_result") }
}

/// `dmsg_msg_reply` addressed by state: closes our side of the transaction
/// with an LNK_ERROR carrying `error`. Ignored if our side is closed or
/// the transaction is over.
///
/// # Safety
/// `state` is NULL (ignored) or a state the library handed out.
#[no_mangle]
pub unsafe extern "C" fn dmsg_state_reply(state: *mut dmsg_state_t, error: u32) {
    // SAFETY: forwarded contract.
    unsafe { answer_state(state, error, true, "dmsg_state_reply") }
}

/// `dmsg_msg_result` addressed by state: an LNK_ERROR carrying `error`
/// that leaves the transaction open.
///
/// # Safety
/// `state` is NULL (ignored) or a state the library handed out.
#[no_mangle]
pub unsafe extern "C" fn dmsg_state_result(state: *mut dmsg_state_t, error: u32) {
    // SAFETY: forwarded contract.
    unsafe { answer_state(state, error, false, "dmsg_state_result") }
}

/// Frees a message that was not handed to `dmsg_msg_write`. If it opened a
/// transaction that never sent anything, the transaction is dropped with
/// its state.
///
/// # Safety
/// `msg` is NULL (ignored) or a message of `dmsg_msg_alloc` not yet
/// written or freed.
#[no_mangle]
pub unsafe extern "C" fn dmsg_msg_free(msg: *mut dmsg_msg_t) {
    if msg.is_null() {
        return;
    }
    // SAFETY: live per the contract.
    let iocom = unsafe { (*msg).iocom };
    // SAFETY: the message's iocom is live (or the message has none).
    if let Some(inner) = unsafe { IocomInner::of(iocom) } {
        // SAFETY: live per the contract.
        unsafe { inner.release_msg(msg) };
    }
    // SAFETY: the caller gives the message up.
    unsafe { free_msg(msg) };
}
