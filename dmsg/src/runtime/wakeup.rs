//! The wakeup fd of a driver: any thread pokes it to end the driver's poll.
//!
//! An eventfd where there is one (Linux, Android), a non-blocking pipe
//! elsewhere. Pokes are coalesced by the caller (see `Conn`), so the fd is
//! written at most once per driver iteration.

use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use std::io;

/// A pollable fd that becomes readable when poked.
#[derive(Debug)]
pub(crate) struct Wakeup {
    /// The end the driver polls and drains.
    read: OwnedFd,
    /// The end pokes are written to (a duplicate handle of `read` for an
    /// eventfd).
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    write: OwnedFd,
}

impl Wakeup {
    /// A new, unpoked wakeup fd (close-on-exec, non-blocking).
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub(crate) fn new() -> io::Result<Wakeup> {
        use rustix::event::{eventfd, EventfdFlags};
        let fd = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?;
        Ok(Wakeup { read: fd })
    }

    /// A new, unpoked wakeup fd (close-on-exec, non-blocking).
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    pub(crate) fn new() -> io::Result<Wakeup> {
        let (read, write) = rustix::pipe::pipe()?;
        for fd in [&read, &write] {
            rustix::io::ioctl_fionbio(fd, true)?;
            rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::CLOEXEC)?;
        }
        Ok(Wakeup { read, write })
    }

    /// The fd to poll for readability.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }

    /// Makes the fd readable. A full pipe or a saturated counter already is.
    pub(crate) fn poke(&self) {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        let r = rustix::io::write(&self.read, &1u64.to_ne_bytes());
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        let r = rustix::io::write(&self.write, &[1u8]);
        // EAGAIN means it is readable already; nothing else can happen to a
        // private eventfd or pipe.
        let _ = r;
    }

    /// Makes the fd unreadable again.
    pub(crate) fn drain(&self) {
        let mut buf = [0u8; 256];
        // An eventfd is emptied by one read of 8 bytes; a pipe may take
        // several reads.
        while let Ok(n) = rustix::io::read(&self.read, &mut buf) {
            if n < buf.len() || cfg!(any(target_os = "linux", target_os = "android")) {
                break;
            }
        }
    }
}
