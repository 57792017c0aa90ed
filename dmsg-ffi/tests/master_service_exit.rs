//! STATE.md §10b row 24: a C-ABI master service whose peer disconnects
//! ends its thread, closes its fd and runs its exit callback (the
//! original leaked the thread and a CLOSE-WAIT socket per peer).
//!
//! `K` services run `dmsg_master_service` on their own threads (default
//! node), each on one end of a socketpair; the peers read the service's
//! `LNK_CONN`, then go away in three ways (close, half-close, and a short
//! garbage frame). Every thread must end, every exit callback run once
//! with its handle, and no fd of the process may still refer to a served
//! socket (checked by socket inode in `/proc/self/fd`). Afterwards no
//! state, message or circuit object of the library is left.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use dmsg_ffi::mirror::{live_objects, LiveObjects};
use dmsg_ffi::service::{dmsg_master_service, dmsg_master_service_info};
use std::ffi::CString;
use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::fd::{AsRawFd, IntoRawFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const K: usize = 12;

/// Exit callback calls per service (the handle is the index + 1).
static EXITS: [AtomicUsize; K] = [const { AtomicUsize::new(0) }; K];

unsafe extern "C" fn on_exit(handle: *mut core::ffi::c_void) {
    let i = handle as usize - 1;
    EXITS[i].fetch_add(1, Ordering::SeqCst);
}

/// The inodes of the sockets this process has open.
fn open_socket_inodes() -> Vec<u64> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        if let Ok(target) = std::fs::read_link(e.path()) {
            let t = target.to_string_lossy();
            if let Some(n) = t.strip_prefix("socket:[").and_then(|r| r.strip_suffix(']')) {
                out.push(n.parse().unwrap());
            }
        }
    }
    out
}

/// A malloc'd info for `fd`, as C callers make it.
fn info_for(fd: i32, i: usize) -> *mut core::ffi::c_void {
    // SAFETY: calloc of the struct's size; all zero is a valid info.
    let info = unsafe { libc::calloc(1, core::mem::size_of::<dmsg_master_service_info>()) }
        .cast::<dmsg_master_service_info>();
    assert!(!info.is_null());
    let label = CString::new(format!("row24-{i}")).unwrap();
    // SAFETY: `info` is a fresh allocation; the label is strdup'd (malloc)
    // because the service frees it.
    unsafe {
        (*info).fd = fd;
        (*info).altfd = -1;
        (*info).label = libc::strdup(label.as_ptr());
        (*info).handle = (i + 1) as *mut core::ffi::c_void;
        (*info).exit_callback = Some(on_exit);
    }
    info.cast()
}

#[test]
fn disconnected_peers_end_their_services_and_close_their_fds() {
    let mut peers = Vec::new();
    let mut threads = Vec::new();
    let mut inodes = Vec::new();
    for i in 0..K {
        let (ours, peer) = UnixStream::pair().unwrap();
        inodes.push(
            std::fs::metadata(format!("/proc/self/fd/{}", ours.as_raw_fd()))
                .map(|m| m.ino())
                .unwrap(),
        );
        let fd = ours.into_raw_fd();
        let info = info_for(fd, i) as usize;
        threads.push(std::thread::spawn(move || {
            // SAFETY: a malloc'd, initialized info whose fd is ours to give.
            let r = unsafe { dmsg_master_service(info as *mut core::ffi::c_void) };
            assert!(r.is_null());
        }));
        peers.push(peer);
    }
    // Each service speaks first: its LNK_CONN (a 64-byte header at least).
    for p in &mut peers {
        p.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 64];
        p.read_exact(&mut buf).unwrap();
    }
    // The peers go away.
    for (i, mut p) in peers.into_iter().enumerate() {
        match i % 3 {
            0 => drop(p),
            1 => {
                p.shutdown(Shutdown::Write).unwrap();
                // Our read side sees the service close its end.
                let mut rest = Vec::new();
                let _ = p.read_to_end(&mut rest);
            }
            _ => {
                // Not a dmsg frame: the service drops the link.
                let _ = p.write_all(&[0xffu8; 64]);
                drop(p);
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    for t in threads {
        while !t.is_finished() {
            assert!(Instant::now() < deadline, "a master service did not end");
            std::thread::sleep(Duration::from_millis(5));
        }
        t.join().unwrap();
    }
    for (i, e) in EXITS.iter().enumerate() {
        assert_eq!(e.load(Ordering::SeqCst), 1, "exit callback of service {i}");
    }
    let open = open_socket_inodes();
    for ino in &inodes {
        assert!(!open.contains(ino), "served socket inode {ino} still open");
    }
    assert_eq!(live_objects(), LiveObjects::default());
}
