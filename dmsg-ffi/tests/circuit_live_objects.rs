//! Circuits through the exported C functions leave nothing behind (the
//! process-wide counts of `dmsg_ffi::mirror` and the heap circuit
//! mirrors of `dmsg_ffi::circuit`).
//!
//! Three nodes A - B - C over socketpairs, every link end run by
//! `dmsg_master_service_node`; C's leaf "kernel" is a plain iocom that
//! registers span "node-c" (LNK_CONN, LNK_SPAN) and accepts circuits to it
//! with `dmsg_msg_result`. At A, the span is found with
//! `dmsg_debug_findspan` and an `LNK_CIRC|CREATE` with `lnk_circ.target`
//! is written on its iocom (the hammer2 `circ <msgid>` flow).
//!
//! 1. Close: circuit up, a BLK_READ transaction over it (CREATE, the
//!    kernel's reply with the bytes inverted, DELETE both ways), then
//!    `dmsg_state_reply` on the LNK_CIRC state: both ends see it end, and
//!    states, messages and circuits return to what they were before the
//!    circuit was opened; no heap circuit mirror is left.
//! 2. Link loss: circuit up, one transaction done and one left open, then
//!    the B - C socket is shut: both ends see the circuit and the open
//!    transaction end, no heap circuit mirror is left, and once everything
//!    is shut down the counts are back to where the test started.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use dmsg_ffi::circuit::heap_circuits;
use dmsg_ffi::iocom::{dmsg_iocom_core, dmsg_iocom_done, dmsg_iocom_init};
use dmsg_ffi::lnk::{dmsg_debug_findspan, dmsg_node_create, dmsg_node_destroy, dmsg_node_t};
use dmsg_ffi::mirror::{live_objects, LiveObjects};
use dmsg_ffi::msg::{
    dmsg_msg_alloc, dmsg_msg_reply, dmsg_msg_result, dmsg_msg_write, dmsg_state_reply,
};
use dmsg_ffi::service::{dmsg_master_service_info, dmsg_master_service_node};
use dmsg_ffi::types::{dmsg_circuit, dmsg_iocom, dmsg_msg, dmsg_state};
use dmsg_ffi::wire_consts::{
    DMSGF_ABORT, DMSGF_BASECMDMASK, DMSGF_CREATE, DMSGF_DELETE, DMSGF_REPLY, DMSG_BLK_READ,
    DMSG_ERR_CANTCIRC, DMSG_LNK_CIRC, DMSG_LNK_CONN, DMSG_LNK_SPAN, DMSG_PEER_HAMMER2,
    DMSG_PFSTYPE_SERVER, DMSG_SPAN_PROTO_1,
};
use std::ffi::{c_char, c_void, CStr};
use std::net::Shutdown;
use std::os::fd::IntoRawFd;
use std::os::unix::net::UnixStream;
use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const PAYLOAD: usize = 1500;
const WAIT: Duration = Duration::from_secs(20);

fn pattern(i: usize) -> u8 {
    (i * 13 + 5) as u8
}

/// What the callbacks saw (reset per scenario where it matters).
static CIRC_ACKS: AtomicUsize = AtomicUsize::new(0);
static CIRC_ACK_ERROR: AtomicU64 = AtomicU64::new(u64::MAX);
static CIRC_DELETES: AtomicUsize = AtomicUsize::new(0);
static TXN_REPLIES: AtomicUsize = AtomicUsize::new(0);
static TXN_DELETES: AtomicUsize = AtomicUsize::new(0);
static TXN_ABORTS: AtomicUsize = AtomicUsize::new(0);
/// Transactions whose reply A leaves open (scenario 2).
static KEEP_OPEN: AtomicUsize = AtomicUsize::new(0);
static FAR_ACCEPTS: AtomicUsize = AtomicUsize::new(0);
static FAR_DELETES: AtomicUsize = AtomicUsize::new(0);
static FAR_TXNS: AtomicUsize = AtomicUsize::new(0);
static FAR_TXN_DELETES: AtomicUsize = AtomicUsize::new(0);
static BAD: AtomicUsize = AtomicUsize::new(0);
/// The kernel's iocom and the state of its LNK_SPAN.
static KERNEL: AtomicPtr<dmsg_iocom> = AtomicPtr::new(ptr::null_mut());
static KERNEL_SPAN: AtomicPtr<dmsg_state> = AtomicPtr::new(ptr::null_mut());
/// The circuit the kernel accepted.
static FAR_CIRC: AtomicPtr<dmsg_circuit> = AtomicPtr::new(ptr::null_mut());
/// A's circuit.
static NEAR_CIRC: AtomicPtr<dmsg_circuit> = AtomicPtr::new(ptr::null_mut());

fn bad(what: &str) {
    eprintln!("unexpected: {what}");
    BAD.fetch_add(1, Ordering::SeqCst);
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + WAIT;
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Waits until the counts stop moving for a while; returns them.
fn settled() -> LiveObjects {
    let end = Instant::now() + WAIT;
    let mut last = live_objects();
    let mut since = Instant::now();
    while since.elapsed() < Duration::from_millis(300) {
        assert!(Instant::now() < end, "the counts never settled");
        std::thread::sleep(Duration::from_millis(10));
        let now = live_objects();
        if now != last {
            last = now;
            since = Instant::now();
        }
    }
    last
}

fn wait_counts(want: LiveObjects) {
    let end = Instant::now() + WAIT;
    while live_objects() != want {
        assert!(
            Instant::now() < end,
            "live objects {:?}, want {want:?}",
            live_objects()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

// ----- A's side --------------------------------------------------------------

/// A's LNK_CIRC state func.
unsafe extern "C" fn circ_func(msg: *mut dmsg_msg) {
    // SAFETY: a live received message.
    let cmd = unsafe { (*msg).any.head.cmd };
    if cmd & DMSGF_CREATE != 0 && cmd & DMSGF_REPLY != 0 {
        // SAFETY: as above.
        let e = unsafe { (*msg).any.head.error };
        CIRC_ACK_ERROR.store(u64::from(e), Ordering::SeqCst);
        CIRC_ACKS.fetch_add(1, Ordering::SeqCst);
    }
    if cmd & DMSGF_DELETE != 0 {
        CIRC_DELETES.fetch_add(1, Ordering::SeqCst);
    }
}

/// A's transaction over the circuit.
unsafe extern "C" fn txn_func(msg: *mut dmsg_msg) {
    // SAFETY: a live received message with a live state.
    unsafe {
        let cmd = (*msg).any.head.cmd;
        if (*msg).circuit != NEAR_CIRC.load(Ordering::SeqCst) {
            bad("A: a reply not on the circuit");
        }
        if cmd & DMSGF_CREATE != 0 && cmd & DMSGF_REPLY != 0 && cmd & DMSGF_ABORT == 0 {
            let data = (*msg).aux_data.cast::<u8>();
            let ok = (*msg).aux_size >= PAYLOAD
                && !data.is_null()
                && (0..PAYLOAD).all(|i| *data.add(i) == !pattern(i));
            if !ok {
                bad("A: reply data");
            }
            TXN_REPLIES.fetch_add(1, Ordering::SeqCst);
            if KEEP_OPEN.load(Ordering::SeqCst) == 0 {
                dmsg_msg_reply(msg, 0);
            }
        }
        if cmd & DMSGF_DELETE != 0 {
            if cmd & DMSGF_ABORT != 0 {
                TXN_ABORTS.fetch_add(1, Ordering::SeqCst);
            }
            TXN_DELETES.fetch_add(1, Ordering::SeqCst);
        }
    }
}

// ----- the kernel at C -----------------------------------------------------------

unsafe extern "C" fn kernel_circ(msg: *mut dmsg_msg) {
    // SAFETY: a live received message.
    unsafe {
        if (*msg).any.head.cmd & DMSGF_DELETE != 0 {
            FAR_DELETES.fetch_add(1, Ordering::SeqCst);
            dmsg_msg_reply(msg, 0);
        }
    }
}

unsafe extern "C" fn kernel_blk(msg: *mut dmsg_msg) {
    // SAFETY: a live received message.
    unsafe {
        if (*msg).any.head.cmd & DMSGF_DELETE != 0 {
            FAR_TXN_DELETES.fetch_add(1, Ordering::SeqCst);
            dmsg_msg_reply(msg, 0);
        }
    }
}

/// Closes our side when the node closes its side (LNK_CONN, LNK_SPAN).
unsafe extern "C" fn kernel_txn(msg: *mut dmsg_msg) {
    // SAFETY: a live received message.
    unsafe {
        if (*msg).any.head.cmd & DMSGF_DELETE != 0 {
            dmsg_msg_reply(msg, 0);
        }
    }
}

unsafe extern "C" fn kernel_rcvmsg(msg: *mut dmsg_msg) {
    // SAFETY: a live received message; its state (if any) is live.
    unsafe {
        let state = (*msg).state;
        let cmd = (*msg).any.head.cmd;
        if !state.is_null() {
            if let Some(func) = (*state).func {
                func(msg);
                return;
            }
        }
        if (*msg).any.head.circuit != 0 {
            if (*msg).circuit != FAR_CIRC.load(Ordering::SeqCst)
                || (*(*msg).circuit).msgid != (*msg).any.head.circuit
            {
                bad("kernel: msg->circuit");
            }
            if cmd & DMSGF_BASECMDMASK == DMSG_BLK_READ
                && cmd & DMSGF_CREATE != 0
                && !state.is_null()
            {
                let data = (*msg).aux_data.cast::<u8>();
                let ok = (*msg).aux_size >= PAYLOAD
                    && !data.is_null()
                    && (0..PAYLOAD).all(|i| *data.add(i) == pattern(i));
                if !ok {
                    bad("kernel: request data");
                }
                FAR_TXNS.fetch_add(1, Ordering::SeqCst);
                (*state).func = Some(kernel_blk);
                let rep = dmsg_msg_alloc(
                    (*msg).circuit,
                    PAYLOAD,
                    DMSG_BLK_READ,
                    None,
                    ptr::null_mut(),
                );
                if rep.is_null() {
                    bad("kernel: no reply message");
                    return;
                }
                let out = (*rep).aux_data.cast::<u8>();
                for i in 0..PAYLOAD {
                    *out.add(i) = !pattern(i);
                }
                (*rep).state = state;
                dmsg_msg_write(rep);
            } else {
                bad("kernel: other message on the circuit");
            }
            return;
        }
        if !state.is_null()
            && (*state).icmd == DMSG_LNK_CIRC
            && cmd & (DMSGF_CREATE | DMSGF_REPLY | DMSGF_DELETE) == DMSGF_CREATE
        {
            let span = KERNEL_SPAN.load(Ordering::SeqCst);
            if span.is_null() || (*msg).any.lnk_circ.target != (*span).msgid {
                bad("kernel: LNK_CIRC target");
                dmsg_msg_reply(msg, DMSG_ERR_CANTCIRC);
                return;
            }
            (*state).func = Some(kernel_circ);
            dmsg_msg_result(msg, 0);
            let circ = (*state).any.circ;
            if circ.is_null() || (*circ).msgid != (*state).msgid {
                bad("kernel: state->any.circ");
            }
            FAR_CIRC.store(circ, Ordering::SeqCst);
            FAR_ACCEPTS.fetch_add(1, Ordering::SeqCst);
            return;
        }
        if !state.is_null() && cmd & DMSGF_DELETE != 0 {
            dmsg_msg_reply(msg, 0);
        }
    }
}

fn copy_label(dst: &mut [c_char; 128], s: &str) {
    for (d, b) in dst.iter_mut().zip(s.bytes()) {
        *d = b as c_char;
    }
}

/// Starts the kernel: its iocom on `fd`, LNK_CONN and LNK_SPAN, the core
/// loop on a thread.
fn start_kernel(fd: i32) -> JoinHandle<()> {
    // SAFETY: all zero is a valid dmsg_iocom; it is leaked here and
    // released (dmsg_iocom_done, then freed) by `stop_kernel`.
    let io: *mut dmsg_iocom = Box::into_raw(Box::new(unsafe { std::mem::zeroed() }));
    KERNEL.store(io, Ordering::SeqCst);
    // SAFETY: a fresh iocom that stays in place; it owns `fd`; the
    // messages are filled before they are written.
    unsafe {
        dmsg_iocom_init(io, fd, -1, None, Some(kernel_rcvmsg), None, None);
        let c0 = ptr::addr_of_mut!((*io).circuit0);
        let m = dmsg_msg_alloc(
            c0,
            0,
            DMSG_LNK_CONN | DMSGF_CREATE,
            Some(kernel_txn),
            ptr::null_mut(),
        );
        assert!(!m.is_null());
        let conn = &mut (*m).any.lnk_conn;
        conn.peer_type = DMSG_PEER_HAMMER2;
        conn.pfs_type = DMSG_PFSTYPE_SERVER;
        conn.pfs_clid.time_low = 0x1111_0001;
        conn.mediaid.time_low = 0x2222_0002;
        copy_label(&mut conn.fs_label, "node-c");
        dmsg_msg_write(m);
        let m = dmsg_msg_alloc(
            c0,
            0,
            DMSG_LNK_SPAN | DMSGF_CREATE,
            Some(kernel_txn),
            ptr::null_mut(),
        );
        assert!(!m.is_null());
        let span = &mut (*m).any.lnk_span;
        span.peer_type = DMSG_PEER_HAMMER2;
        span.pfs_type = DMSG_PFSTYPE_SERVER;
        span.proto_version = DMSG_SPAN_PROTO_1 as u16;
        span.rnss = 102;
        span.pfs_clid.time_low = 0x1111_0001;
        span.pfs_fsid.time_low = 0x3333_0003;
        copy_label(&mut span.cl_label, "test-cluster");
        copy_label(&mut span.fs_label, "node-c");
        KERNEL_SPAN.store((*m).state, Ordering::SeqCst);
        dmsg_msg_write(m);
    }
    let p = io as usize;
    std::thread::spawn(move || {
        // SAFETY: the iocom stays in place until `stop_kernel`, which
        // joins this thread first.
        unsafe { dmsg_iocom_core(p as *mut dmsg_iocom) };
    })
}

fn stop_kernel(t: JoinHandle<()>) {
    t.join().unwrap();
    let io = KERNEL.swap(ptr::null_mut(), Ordering::SeqCst);
    // SAFETY: its core loop is over; released once, then freed.
    unsafe {
        dmsg_iocom_done(io);
        drop(Box::from_raw(io));
    }
}

// ----- master services --------------------------------------------------------------

fn service(node: *mut dmsg_node_t, fd: i32, label: &str) -> JoinHandle<()> {
    let label = std::ffi::CString::new(label).unwrap();
    // SAFETY: the info is calloc'd and filled as the service expects; it
    // frees it and the strdup'd label.
    let info = unsafe {
        let info = libc::calloc(1, std::mem::size_of::<dmsg_master_service_info>())
            .cast::<dmsg_master_service_info>();
        assert!(!info.is_null());
        (*info).fd = fd;
        (*info).altfd = -1;
        (*info).label = libc::strdup(label.as_ptr());
        info as usize
    };
    let node = node as usize;
    std::thread::spawn(move || {
        // SAFETY: a live node handle (destroyed after this thread is
        // joined) and the info above.
        unsafe { dmsg_master_service_node(node as *mut dmsg_node_t, info as *mut c_void) };
    })
}

// ----- the circuit from A -------------------------------------------------------------

/// The state of node-c's span as A received it: `dmsg_debug_findspan`
/// over candidate msgids, checking the iocom's label and the span's
/// fs_label (A is the first node, so its spans are searched first).
fn find_span_at_a() -> Option<*mut dmsg_state> {
    for msgid in 0x1_0000u64..0x1_0100 {
        let mut state: *mut dmsg_state = ptr::null_mut();
        // SAFETY: a writable pointer.
        if unsafe { dmsg_debug_findspan(msgid, &mut state) } != 0 {
            continue;
        }
        // SAFETY: findspan returned a live state with a live iocom; the
        // creating message of a received span stays while its state does.
        unsafe {
            let label = (*(*state).iocom).label;
            let m = (*state).msg;
            if label.is_null() || m.is_null() {
                continue;
            }
            let fs = CStr::from_ptr((*m).any.lnk_span.fs_label.as_ptr());
            if CStr::from_ptr(label).to_bytes() == b"A:B" && fs.to_bytes() == b"node-c" {
                return Some(state);
            }
        }
    }
    None
}

/// Opens the circuit from A and waits for both ends to have it; returns
/// A's LNK_CIRC state and circuit.
fn open_circuit() -> (*mut dmsg_state, *mut dmsg_circuit) {
    let mut span = None;
    wait_for("node-c's span at A", || {
        span = find_span_at_a();
        span.is_some()
    });
    let span = span.unwrap();
    let acks = CIRC_ACKS.load(Ordering::SeqCst);
    let accepts = FAR_ACCEPTS.load(Ordering::SeqCst);
    // SAFETY: the span's state and iocom are live (nothing is cut yet);
    // the message is filled before it is written.
    let st = unsafe {
        let c0 = ptr::addr_of_mut!((*(*span).iocom).circuit0);
        let m = dmsg_msg_alloc(
            c0,
            0,
            DMSG_LNK_CIRC | DMSGF_CREATE,
            Some(circ_func),
            ptr::null_mut(),
        );
        assert!(!m.is_null());
        (*m).any.lnk_circ.target = (*span).msgid;
        let st = (*m).state;
        dmsg_msg_write(m);
        st
    };
    wait_for("the circuit's acknowledgement", || {
        CIRC_ACKS.load(Ordering::SeqCst) > acks && FAR_ACCEPTS.load(Ordering::SeqCst) > accepts
    });
    assert_eq!(CIRC_ACK_ERROR.load(Ordering::SeqCst), 0);
    // SAFETY: the LNK_CIRC is open, so its state lives.
    let circ = unsafe { (*st).any.circ };
    assert!(!circ.is_null());
    // SAFETY: as above; the circuit lives while the state points at it.
    unsafe {
        assert_ne!((*circ).msgid, 0);
        assert_eq!((*circ).state, st);
        assert_eq!((*circ).is_relay, 0);
    }
    NEAR_CIRC.store(circ, Ordering::SeqCst);
    (st, circ)
}

/// One BLK_READ transaction from A over `circ`.
fn start_txn(circ: *mut dmsg_circuit) {
    // SAFETY: a live circuit of a running iocom; the message is filled
    // before it is written.
    unsafe {
        let m = dmsg_msg_alloc(
            circ,
            PAYLOAD,
            DMSG_BLK_READ | DMSGF_CREATE,
            Some(txn_func),
            ptr::null_mut(),
        );
        assert!(!m.is_null());
        assert_eq!((*m).any.head.circuit, (*circ).msgid);
        let out = (*m).aux_data.cast::<u8>();
        for i in 0..PAYLOAD {
            *out.add(i) = pattern(i);
        }
        dmsg_msg_write(m);
    }
}

#[test]
fn circuits_leave_no_objects_after_close_or_link_loss() {
    let start = live_objects();
    let nodes: Vec<*mut dmsg_node_t> = (0..3).map(|i| dmsg_node_create(3000 + i)).collect();
    let (ab0, ab1) = UnixStream::pair().unwrap();
    let (bc0, bc1) = UnixStream::pair().unwrap();
    let (k0, k1) = UnixStream::pair().unwrap();
    let ab_cut = ab0.try_clone().unwrap();
    let bc_cut = bc0.try_clone().unwrap();
    let threads = vec![
        service(nodes[0], ab0.into_raw_fd(), "A:B"),
        service(nodes[1], ab1.into_raw_fd(), "B:A"),
        service(nodes[1], bc0.into_raw_fd(), "B:C"),
        service(nodes[2], bc1.into_raw_fd(), "C:B"),
        service(nodes[2], k0.into_raw_fd(), "C:kernel"),
    ];
    let kernel_cut = k1.try_clone().unwrap();
    let kernel = start_kernel(k1.into_raw_fd());

    // 1. Opened, used and closed: back to the counts before it.
    wait_for("node-c's span at A", || find_span_at_a().is_some());
    let before = settled();
    assert_eq!(heap_circuits(), 0);
    let (st, circ) = open_circuit();
    assert!(heap_circuits() >= 2, "A's and the kernel's circuit mirrors");
    start_txn(circ);
    wait_for("the transaction", || {
        TXN_DELETES.load(Ordering::SeqCst) == 1 && FAR_TXN_DELETES.load(Ordering::SeqCst) == 1
    });
    assert_eq!(TXN_REPLIES.load(Ordering::SeqCst), 1);
    assert_eq!(TXN_ABORTS.load(Ordering::SeqCst), 0);
    assert_eq!(FAR_TXNS.load(Ordering::SeqCst), 1);
    // SAFETY: A's LNK_CIRC state is live until the close completes.
    unsafe { dmsg_state_reply(st, 0) };
    wait_for("both ends to see the close", || {
        CIRC_DELETES.load(Ordering::SeqCst) == 1 && FAR_DELETES.load(Ordering::SeqCst) == 1
    });
    wait_for("the circuit mirrors to go", || heap_circuits() == 0);
    wait_counts(before);
    assert_eq!(BAD.load(Ordering::SeqCst), 0);

    // 2. Opened, used, one transaction left open, then B - C is cut.
    let (_st, circ) = open_circuit();
    start_txn(circ);
    wait_for("the first transaction", || {
        TXN_DELETES.load(Ordering::SeqCst) == 2 && FAR_TXN_DELETES.load(Ordering::SeqCst) == 2
    });
    KEEP_OPEN.store(1, Ordering::SeqCst);
    start_txn(circ);
    wait_for("the second transaction's reply", || {
        TXN_REPLIES.load(Ordering::SeqCst) == 3
    });
    assert!(live_objects().states > before.states, "its states are live");
    bc_cut.shutdown(Shutdown::Both).unwrap();
    wait_for(
        "both ends to lose the circuit and the open transaction",
        || {
            CIRC_DELETES.load(Ordering::SeqCst) == 2
                && FAR_DELETES.load(Ordering::SeqCst) == 2
                && TXN_DELETES.load(Ordering::SeqCst) == 3
                && FAR_TXN_DELETES.load(Ordering::SeqCst) == 3
        },
    );
    assert_eq!(TXN_ABORTS.load(Ordering::SeqCst), 1);
    wait_for("the circuit mirrors to go", || heap_circuits() == 0);
    assert_eq!(BAD.load(Ordering::SeqCst), 0);

    // Everything down: back to the start.
    kernel_cut.shutdown(Shutdown::Both).unwrap();
    ab_cut.shutdown(Shutdown::Both).unwrap();
    stop_kernel(kernel);
    for t in threads {
        t.join().unwrap();
    }
    for n in nodes {
        // SAFETY: a handle of dmsg_node_create, destroyed once, after its
        // services ended.
        unsafe { dmsg_node_destroy(n) };
    }
    wait_counts(start);
    assert_eq!(heap_circuits(), 0);
}
