//! How a driver sleeps: until its wakeup fd is poked, its socket is
//! readable (or writable, when a write blocked), or its alt fd is readable.
//!
//! On Linux and Android a persistent `epoll` set: the three fds are
//! registered once, and the socket is re-registered only when what the
//! driver waits for on it changes (it blocked on a write, or stopped
//! reading at the queue bound), which the steady state never does. A
//! `poll` would hand the kernel the whole set again on every call and
//! queue and dequeue the thread on each fd's wait queue twice. Elsewhere,
//! or when `epoll` refuses one of the fds (a regular file as the alt fd,
//! say), it is a `poll` of the same fds, with the same meaning.
//!
//! The wakeup and alt fds are level-triggered: a sleep returns at once
//! while they are readable, as with `poll`. The socket, when it is a
//! stream socket, is edge-triggered in the `epoll` set: it is reported
//! when input arrives (or the peer shuts down), not again for input left
//! unread. That spares the kernel a readiness check of the socket on every
//! sleep, and makes the caller responsible for reading until the socket
//! is drained: a read shorter than its buffer drains a stream socket (as
//! an `EAGAIN` does), a read that fills it may not. While input may be
//! left ([`Want::unread`]) a wait does not sleep and reports the socket
//! readable. After a shutdown by the peer was reported
//! ([`Ready::sock_closing`]), input is left until a read returns the end
//! of the stream. A stream socket's read stops short of what is queued
//! only at a record the peer made on purpose (urgent data, passed file
//! descriptors): a peer doing that on a dmsg link waits for its own data
//! until it sends more, as it would with any edge-triggered reader.

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::fd::BorrowedFd;
use rustix::io::Errno;

/// The fds a driver sleeps on. The same fds must be passed to every call
/// of a [`WaitSet`] (it may keep them registered).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fds<'a> {
    /// The wakeup fd (watched for input).
    pub(crate) wake: BorrowedFd<'a>,
    /// The link's socket.
    pub(crate) sock: BorrowedFd<'a>,
    /// The alt fd, while it is watched (watched for input).
    pub(crate) alt: Option<BorrowedFd<'a>>,
}

/// What to wait for on the socket. Hang-ups and errors are always
/// reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Want {
    /// Input.
    pub(crate) read: bool,
    /// Room to write.
    pub(crate) write: bool,
    /// Input may be left from what was reported before (the last read
    /// filled its buffer, was interrupted, or the peer shut down): with
    /// `read`, the wait does not sleep and reports the socket readable.
    pub(crate) unread: bool,
}

/// What one [`WaitSet::wait`] saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Ready {
    /// The wakeup fd is readable.
    pub(crate) wake: bool,
    /// The socket has input, hung up or failed: a read tells which.
    pub(crate) sock_read: bool,
    /// The peer shut the socket down, or it failed: read it until a read
    /// returns the end of the stream or an error.
    pub(crate) sock_closing: bool,
    /// The alt fd is readable.
    pub(crate) alt_readable: bool,
    /// The alt fd hung up or failed.
    pub(crate) alt_gone: bool,
}

/// A driver's way to sleep; see the module documentation.
#[derive(Debug)]
pub(crate) struct WaitSet {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    epoll: Option<epoll::Set>,
}

impl WaitSet {
    /// A wait set for `fds`: an `epoll` set where the system has one and
    /// takes every fd, else `poll`. `stream` says the socket is a stream
    /// socket, which the `epoll` set then watches edge-triggered.
    pub(crate) fn new(fds: Fds<'_>, stream: bool) -> WaitSet {
        WaitSet {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            epoll: epoll::Set::new(fds, stream),
        }
    }

    /// True when this set sleeps in `epoll`.
    #[cfg(test)]
    pub(crate) fn is_epoll(&self) -> bool {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        return self.epoll.is_some();
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        return false;
    }

    /// Sleeps until one of `fds` is ready for what is asked (the wakeup and
    /// alt fds: input; the socket: `want`), or `timeout` passes.
    /// `Err(Errno::INTR)` when a signal interrupted the sleep.
    pub(crate) fn wait(
        &mut self,
        fds: Fds<'_>,
        want: Want,
        timeout: Option<&Timespec>,
    ) -> Result<Ready, Errno> {
        // Input left: look at the other fds without sleeping, and read.
        let now = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        let unread = want.read && want.unread;
        let timeout = if unread { Some(&now) } else { timeout };
        let mut r = self.sleep(fds, want, timeout);
        if let Ok(r) = r.as_mut() {
            r.sock_read |= unread;
        }
        r
    }

    fn sleep(
        &mut self,
        fds: Fds<'_>,
        want: Want,
        timeout: Option<&Timespec>,
    ) -> Result<Ready, Errno> {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if let Some(set) = self.epoll.as_mut() {
            match set.wait(fds, want, timeout) {
                Err(epoll::Refused) => self.epoll = None,
                Ok(r) => return r,
            }
        }
        poll_once(fds, want, timeout)
    }

    /// The alt fd is no longer watched (it hung up): later calls pass
    /// `fds.alt == None`.
    pub(crate) fn forget_alt(&mut self, alt: BorrowedFd<'_>) {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if let Some(set) = self.epoll.as_mut() {
            if set.forget_alt(alt).is_err() {
                self.epoll = None;
            }
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        let _ = alt;
    }
}

/// One `poll` of `fds`.
fn poll_once(fds: Fds<'_>, want: Want, timeout: Option<&Timespec>) -> Result<Ready, Errno> {
    let mut sock_flags = PollFlags::empty();
    if want.read {
        sock_flags |= PollFlags::IN;
    }
    if want.write {
        sock_flags |= PollFlags::OUT;
    }
    let mut set = [
        PollFd::new(&fds.wake, PollFlags::IN),
        PollFd::new(&fds.sock, sock_flags),
        PollFd::new(&fds.wake, PollFlags::empty()),
    ];
    let mut count = 2;
    if let (Some(alt), Some(slot)) = (fds.alt.as_ref(), set.get_mut(2)) {
        *slot = PollFd::new(alt, PollFlags::IN);
        count = 3;
    }
    poll(set.get_mut(..count).unwrap_or(&mut []), timeout)?;
    let rev = |i: usize| set.get(i).map_or(PollFlags::empty(), PollFd::revents);
    let fail = PollFlags::HUP | PollFlags::ERR | PollFlags::NVAL;
    let alt = if count == 3 {
        rev(2)
    } else {
        PollFlags::empty()
    };
    Ok(Ready {
        wake: !rev(0).is_empty(),
        sock_read: rev(1).intersects(PollFlags::IN | fail),
        sock_closing: rev(1).intersects(fail),
        alt_readable: alt.contains(PollFlags::IN),
        alt_gone: alt.intersects(fail),
    })
}

#[cfg(any(target_os = "linux", target_os = "android"))]
mod epoll {
    use super::{Fds, Ready, Want};
    use rustix::event::epoll::{self, CreateFlags, Event, EventData, EventFlags};
    use rustix::event::Timespec;
    use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
    use rustix::io::Errno;

    /// Tokens of the registered fds.
    const WAKE: u64 = 0;
    const SOCK: u64 = 1;
    const ALT: u64 = 2;

    /// `epoll` refused a change: the caller falls back to `poll`.
    #[derive(Debug)]
    pub(super) struct Refused;

    /// A persistent `epoll` set of a driver's fds.
    #[derive(Debug)]
    pub(super) struct Set {
        ep: OwnedFd,
        /// What the socket is registered for.
        sock: EventFlags,
        /// The socket is watched edge-triggered.
        edge: bool,
        /// The alt fd is registered.
        alt: bool,
    }

    /// The registration of the socket for `want`. A shutdown by the peer
    /// is asked for too (edge-triggered, the end of the stream after the
    /// last input would not be reported again).
    fn flags(want: Want, edge: bool) -> EventFlags {
        let mut f = if edge {
            EventFlags::ET
        } else {
            EventFlags::empty()
        };
        if want.read {
            f |= EventFlags::IN | EventFlags::RDHUP;
        }
        if want.write {
            f |= EventFlags::OUT;
        }
        f
    }

    impl Set {
        /// Registers `fds` (the socket for input); `None` if `epoll` is
        /// missing or refuses one of them.
        pub(super) fn new(fds: Fds<'_>, edge: bool) -> Option<Set> {
            let ep = epoll::create(CreateFlags::CLOEXEC).ok()?;
            let sock = flags(
                Want {
                    read: true,
                    write: false,
                    unread: false,
                },
                edge,
            );
            epoll::add(&ep, fds.wake, EventData::new_u64(WAKE), EventFlags::IN).ok()?;
            epoll::add(&ep, fds.sock, EventData::new_u64(SOCK), sock).ok()?;
            if let Some(alt) = fds.alt {
                epoll::add(&ep, alt, EventData::new_u64(ALT), EventFlags::IN).ok()?;
            }
            Some(Set {
                ep,
                sock,
                edge,
                alt: fds.alt.is_some(),
            })
        }

        /// One `epoll_wait`, after re-registering the socket if `want`
        /// changed. The outer error: the set can no longer be used.
        pub(super) fn wait(
            &mut self,
            fds: Fds<'_>,
            want: Want,
            timeout: Option<&Timespec>,
        ) -> Result<Result<Ready, Errno>, Refused> {
            let f = flags(want, self.edge);
            if f != self.sock {
                epoll::modify(&self.ep, fds.sock, EventData::new_u64(SOCK), f)
                    .map_err(|_| Refused)?;
                self.sock = f;
            }
            if self.alt != fds.alt.is_some() {
                return Err(Refused);
            }
            let mut events = [Event {
                flags: EventFlags::empty(),
                data: EventData::new_u64(0),
            }; 3];
            let n = match epoll::wait(self.ep.as_fd(), &mut events[..], timeout) {
                Ok(n) => n,
                Err(e) => return Ok(Err(e)),
            };
            let fail = EventFlags::HUP | EventFlags::ERR;
            let closing = fail | EventFlags::RDHUP;
            let mut r = Ready::default();
            for ev in events.iter().take(n) {
                let got = ev.flags;
                match ev.data.u64() {
                    WAKE => r.wake = true,
                    SOCK => {
                        r.sock_read = got.intersects(EventFlags::IN | closing);
                        r.sock_closing = got.intersects(closing);
                    }
                    ALT => {
                        r.alt_readable = got.contains(EventFlags::IN);
                        r.alt_gone = got.intersects(fail);
                    }
                    _ => {}
                }
            }
            Ok(Ok(r))
        }

        /// Unregisters the alt fd.
        pub(super) fn forget_alt(&mut self, alt: BorrowedFd<'_>) -> Result<(), Refused> {
            if self.alt {
                epoll::delete(&self.ep, alt).map_err(|_| Refused)?;
                self.alt = false;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::fd::AsFd;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    fn fds<'a>(wake: &'a UnixStream, sock: &'a UnixStream, alt: Option<&'a UnixStream>) -> Fds<'a> {
        Fds {
            wake: wake.as_fd(),
            sock: sock.as_fd(),
            alt: alt.map(AsFd::as_fd),
        }
    }

    const NOW: Timespec = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    const READ: Want = Want {
        read: true,
        write: false,
        unread: false,
    };

    /// Every readiness is reported the same way by `epoll` and `poll`.
    #[test]
    fn epoll_and_poll_agree() {
        for use_epoll in [true, false] {
            let (wake, mut wake_peer) = UnixStream::pair().unwrap();
            let (sock, mut sock_peer) = UnixStream::pair().unwrap();
            let (alt, mut alt_peer) = UnixStream::pair().unwrap();
            let mut ws = WaitSet::new(fds(&wake, &sock, Some(&alt)), false);
            if !use_epoll {
                #[cfg(any(target_os = "linux", target_os = "android"))]
                {
                    ws.epoll = None;
                }
            }
            let f = fds(&wake, &sock, Some(&alt));
            assert_eq!(ws.wait(f, READ, Some(&NOW)).unwrap(), Ready::default());

            wake_peer.write_all(b"x").unwrap();
            let r = ws.wait(f, READ, Some(&NOW)).unwrap();
            assert!(r.wake && !r.sock_read && !r.alt_readable);

            sock_peer.write_all(b"x").unwrap();
            alt_peer.write_all(b"x").unwrap();
            let r = ws.wait(f, READ, Some(&NOW)).unwrap();
            assert!(r.wake && r.sock_read && r.alt_readable && !r.alt_gone);

            // Not reading: the socket's input is not reported.
            let idle = Want {
                read: false,
                write: false,
                unread: false,
            };
            assert!(!ws.wait(f, idle, Some(&NOW)).unwrap().sock_read);
            // Room to write ends a sleep without a timeout (nothing else
            // is ready once the wakeup and alt fds are drained).
            let mut buf = [0u8; 8];
            assert_eq!((&wake).read(&mut buf).unwrap(), 1);
            assert_eq!((&alt).read(&mut buf).unwrap(), 1);
            let write = Want {
                read: false,
                write: true,
                unread: false,
            };
            assert_eq!(ws.wait(f, write, None).unwrap(), Ready::default());

            // A hang-up of the socket is reported even when not reading.
            drop(sock_peer);
            assert!(ws.wait(f, idle, Some(&NOW)).unwrap().sock_read);

            // A hung-up alt fd is reported, then forgotten.
            drop(alt_peer);
            assert!(ws.wait(f, READ, Some(&NOW)).unwrap().alt_gone);
            ws.forget_alt(alt.as_fd());
            let r = ws.wait(fds(&wake, &sock, None), READ, Some(&NOW)).unwrap();
            assert!(!r.alt_gone && !r.alt_readable);
            assert_eq!(
                ws.is_epoll(),
                use_epoll && cfg!(any(target_os = "linux", target_os = "android"))
            );
        }
    }

    /// `epoll` refuses a regular file: the set falls back to `poll`, which
    /// reports it readable.
    #[test]
    fn regular_file_alt_falls_back_to_poll() {
        let (wake, _wake_peer) = UnixStream::pair().unwrap();
        let (sock, _sock_peer) = UnixStream::pair().unwrap();
        let file = tempfile::tempfile().unwrap();
        let f = Fds {
            wake: wake.as_fd(),
            sock: sock.as_fd(),
            alt: Some(file.as_fd()),
        };
        let mut ws = WaitSet::new(f, true);
        assert!(!ws.is_epoll());
        assert!(ws.wait(f, READ, Some(&NOW)).unwrap().alt_readable);
    }

    /// A stream socket is edge-triggered in `epoll`: input is reported when
    /// it arrives, not again while it is left unread, unless the caller
    /// says some may be left; a shutdown by the peer is reported as such
    /// even when it came with the last input.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[test]
    fn stream_socket_is_edge_triggered() {
        let (wake, _wake_peer) = UnixStream::pair().unwrap();
        let (sock, mut sock_peer) = UnixStream::pair().unwrap();
        let f = fds(&wake, &sock, None);
        let mut ws = WaitSet::new(f, true);
        assert!(ws.is_epoll());

        sock_peer.write_all(b"abc").unwrap();
        let r = ws.wait(f, READ, Some(&NOW)).unwrap();
        assert!(r.sock_read && !r.sock_closing);
        // Reported once: left unread, it is not reported again...
        assert!(!ws.wait(f, READ, Some(&NOW)).unwrap().sock_read);
        // ...unless the caller says input may be left (no sleep, even
        // without a timeout).
        let unread = Want {
            unread: true,
            ..READ
        };
        assert!(ws.wait(f, unread, None).unwrap().sock_read);

        // Drained, new input is a new edge.
        let mut buf = [0u8; 16];
        assert_eq!((&sock).read(&mut buf).unwrap(), 3);
        sock_peer.write_all(b"d").unwrap();
        assert!(ws.wait(f, READ, Some(&NOW)).unwrap().sock_read);
        assert_eq!((&sock).read(&mut buf).unwrap(), 1);

        // The last input and the shutdown in one report.
        sock_peer.write_all(b"end").unwrap();
        sock_peer.shutdown(std::net::Shutdown::Write).unwrap();
        let r = ws.wait(f, READ, Some(&NOW)).unwrap();
        assert!(r.sock_read && r.sock_closing);
        assert_eq!((&sock).read(&mut buf).unwrap(), 3);
        assert_eq!((&sock).read(&mut buf).unwrap(), 0);
    }
}
