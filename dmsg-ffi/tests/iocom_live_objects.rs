//! Drives the exported C functions from Rust over a socketpair, two
//! threads each running `dmsg_iocom_init` + `dmsg_iocom_core`, and checks
//! the acceptance rule: after a link loss no state, message or circuit
//! object is left (the process-wide counts of `dmsg_ffi::mirror`).
//!
//! Each side opens `N` transactions that the other answers with a result
//! and keeps open; then A sets `DMSG_IOCOMF_EOF` from a callback. Every
//! handler must see its ABORT|DELETE exactly once (4 N in all), and the
//! counts must return to zero.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use dmsg_ffi::iocom::{dmsg_iocom_core, dmsg_iocom_done, dmsg_iocom_init, dmsg_iocom_signal};
use dmsg_ffi::lib_consts::DMSG_IOCOMF_EOF;
use dmsg_ffi::mirror::{live_objects, LiveObjects};
use dmsg_ffi::msg::{dmsg_msg_alloc, dmsg_msg_reply, dmsg_msg_result, dmsg_msg_write};
use dmsg_ffi::types::{dmsg_iocom, dmsg_msg};
use dmsg_ffi::wire_consts::{DMSGF_ABORT, DMSGF_CREATE, DMSGF_DELETE, DMSGF_REPLY, DMSG_LNK_PING};
use std::os::fd::IntoRawFd;
use std::os::unix::net::UnixStream;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};
use std::sync::Mutex;

const N: usize = 4;

/// Per side (0 = A, 1 = B).
struct Side {
    iocom: AtomicPtr<dmsg_iocom>,
    started: AtomicBool,
    /// Our transactions the peer answered.
    acks: AtomicUsize,
    /// The peer's transactions we answered.
    remote: AtomicUsize,
    /// ABORT|DELETE seen by a handler.
    aborts: AtomicUsize,
    /// One-way LNK_ERROR at the end.
    final_error: AtomicUsize,
}

impl Side {
    const fn new() -> Side {
        Side {
            iocom: AtomicPtr::new(ptr::null_mut()),
            started: AtomicBool::new(false),
            acks: AtomicUsize::new(0),
            remote: AtomicUsize::new(0),
            aborts: AtomicUsize::new(0),
            final_error: AtomicUsize::new(0),
        }
    }

    fn complete(&self) -> bool {
        self.acks.load(Ordering::SeqCst) == N && self.remote.load(Ordering::SeqCst) == N
    }
}

static SIDES: [Side; 2] = [Side::new(), Side::new()];
static STOP: Mutex<bool> = Mutex::new(false);
static PEAK_STATES: AtomicUsize = AtomicUsize::new(0);

fn side_of(iocom: *mut dmsg_iocom) -> &'static Side {
    if SIDES[0].iocom.load(Ordering::SeqCst) == iocom {
        &SIDES[0]
    } else {
        &SIDES[1]
    }
}

/// A stops (from its own callbacks) once both sides are complete; B pokes
/// A when it is, under the same lock, so A's iocom is still alive.
unsafe fn progress(iocom: *mut dmsg_iocom) {
    let me = side_of(iocom);
    let mut stopped = STOP.lock().unwrap();
    if ptr::eq(me, &SIDES[1]) {
        if me.complete() && !*stopped {
            let a = SIDES[0].iocom.load(Ordering::SeqCst);
            // SAFETY: A's iocom lives until it has stopped, which needs
            // this lock.
            unsafe { dmsg_iocom_signal(a) };
        }
    } else if SIDES[0].complete() && SIDES[1].complete() && !*stopped {
        *stopped = true;
        // SAFETY: on A's core thread, inside a callback.
        unsafe { (*iocom).flags |= DMSG_IOCOMF_EOF };
    }
}

unsafe extern "C" fn txn_func(msg: *mut dmsg_msg) {
    // SAFETY: a live received message with a live state.
    unsafe {
        let side = side_of((*msg).iocom);
        assert_eq!((*(*msg).state).any.any, (*msg).iocom.cast());
        let cmd = (*msg).any.head.cmd;
        if cmd & DMSGF_DELETE != 0 {
            assert_ne!(cmd & DMSGF_ABORT, 0, "only link loss closes them");
            side.aborts.fetch_add(1, Ordering::SeqCst);
            dmsg_msg_reply(msg, 0);
        } else {
            assert_eq!(
                cmd & (DMSGF_REPLY | DMSGF_CREATE),
                DMSGF_REPLY | DMSGF_CREATE
            );
            side.acks.fetch_add(1, Ordering::SeqCst);
        }
    }
}

unsafe extern "C" fn rcvmsg(msg: *mut dmsg_msg) {
    PEAK_STATES.fetch_max(live_objects().states, Ordering::SeqCst);
    // SAFETY: a live received message; its state (if any) is live.
    unsafe {
        let iocom = (*msg).iocom;
        let side = side_of(iocom);
        let state = (*msg).state;
        let cmd = (*msg).any.head.cmd;
        if state.is_null() {
            side.final_error.fetch_add(1, Ordering::SeqCst);
        } else if let Some(func) = (*state).func {
            func(msg);
        } else if cmd & DMSGF_DELETE != 0 {
            assert_ne!(cmd & DMSGF_ABORT, 0);
            side.aborts.fetch_add(1, Ordering::SeqCst);
        } else {
            assert_ne!(cmd & DMSGF_CREATE, 0);
            dmsg_msg_result(msg, 0);
            side.remote.fetch_add(1, Ordering::SeqCst);
        }
        progress(iocom);
    }
}

unsafe extern "C" fn signal_cb(iocom: *mut dmsg_iocom) {
    let side = side_of(iocom);
    if !side.started.swap(true, Ordering::SeqCst) {
        for _ in 0..N {
            // SAFETY: the live iocom of this core thread.
            unsafe {
                let msg = dmsg_msg_alloc(
                    ptr::addr_of_mut!((*iocom).circuit0),
                    8,
                    DMSG_LNK_PING | DMSGF_CREATE,
                    Some(txn_func),
                    iocom.cast(),
                );
                assert!(!msg.is_null() && !(*msg).state.is_null());
                dmsg_msg_write(msg);
            }
        }
    }
    // SAFETY: as above.
    unsafe { progress(iocom) };
}

fn run_side(index: usize, fd: i32) {
    // SAFETY: all zero is a valid dmsg_iocom (it is also what init does).
    let mut iocom: Box<dmsg_iocom> = Box::new(unsafe { std::mem::zeroed() });
    let p: *mut dmsg_iocom = &mut *iocom;
    SIDES[index].iocom.store(p, Ordering::SeqCst);
    // SAFETY: `p` stays valid until done; the iocom owns `fd`.
    unsafe {
        dmsg_iocom_init(p, fd, -1, Some(signal_cb), Some(rcvmsg), None, None);
        dmsg_iocom_core(p);
        assert_ne!((*p).flags & DMSG_IOCOMF_EOF, 0);
        assert_eq!((*p).ioq_rx.error, 2, "DMSG_IOQ_ERROR_EOF");
        // No state outlives the core loop of its iocom.
        dmsg_iocom_done(p);
    }
}

#[test]
fn link_loss_leaves_no_states_messages_or_circuits() {
    assert_eq!(live_objects(), LiveObjects::default());
    let (a, b) = UnixStream::pair().unwrap();
    let (fa, fb) = (a.into_raw_fd(), b.into_raw_fd());
    // Publish both iocom addresses before either side can call back.
    let ta = std::thread::spawn(move || run_side(0, fa));
    while SIDES[0].iocom.load(Ordering::SeqCst).is_null() {
        std::thread::yield_now();
    }
    let tb = std::thread::spawn(move || run_side(1, fb));
    ta.join().unwrap();
    tb.join().unwrap();

    for side in &SIDES {
        assert_eq!(side.acks.load(Ordering::SeqCst), N);
        assert_eq!(side.remote.load(Ordering::SeqCst), N);
        // Our N and the peer's N, each aborted exactly once.
        assert_eq!(side.aborts.load(Ordering::SeqCst), 2 * N);
        assert_eq!(side.final_error.load(Ordering::SeqCst), 1);
    }
    assert!(
        PEAK_STATES.load(Ordering::SeqCst) >= 2 * N,
        "mirrors existed"
    );
    assert_eq!(live_objects(), LiveObjects::default());
}
