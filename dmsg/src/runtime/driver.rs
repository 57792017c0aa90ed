//! [`Driver`]: the poll loop that runs a [`Link`] over a real fd.

use super::conn::{Conn, Locked, Shared};
use super::wakeup::Wakeup;
use crate::link::{Event, Link, LinkError};
use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::fd::{AsFd, OwnedFd};
use rustix::io::Errno;
use std::io::{self, IoSlice};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// Most slices handed to one `writev`. The queue packs small frames into
/// 64 KiB buffers, so this covers several megabytes, more than a socket
/// buffer takes at once; it stays well under every system's `IOV_MAX`.
pub const MAX_IOV: usize = 128;

/// Settings of a [`Driver`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DriverConfig {
    /// Bound of the transmit queue, in bytes (see the module documentation
    /// of [`crate::runtime`] for what exactly it bounds). Default 4 MiB.
    pub tx_limit: usize,
    /// Size of the receive buffer: at most this many bytes are read, and so
    /// decoded, per iteration. Default 256 KiB.
    pub read_buffer: usize,
    /// Longest sleep in `poll`. `None` (the default) sleeps until something
    /// happens: every request of a [`Conn`] wakes the driver.
    pub poll_timeout: Option<Duration>,
}

impl Default for DriverConfig {
    fn default() -> Self {
        DriverConfig {
            tx_limit: 4 << 20,
            read_buffer: 256 << 10,
            poll_timeout: None,
        }
    }
}

/// The callbacks of a [`Driver`], all called on the driver's thread with no
/// lock held, so they may call [`Conn::with_link`] freely (which never
/// blocks there). Every method has a default that does nothing.
pub trait Handler {
    /// An event of the link, in order. The last one is
    /// [`Event::Down`], after which [`Driver::run`] returns.
    fn event(&mut self, conn: &Conn, ev: Event) {
        let _ = (conn, ev);
    }

    /// [`Conn::signal`] was called (once per run of requests).
    fn signal(&mut self, conn: &Conn) {
        let _ = conn;
    }

    /// The alt fd is readable.
    fn alt_readable(&mut self, conn: &Conn) {
        let _ = conn;
    }

    /// The alt fd hung up or failed; it is not polled any more.
    fn alt_hangup(&mut self, conn: &Conn) {
        let _ = conn;
    }

    /// Polled after every batch of callbacks: `true` takes the link down
    /// with [`LinkError::Shutdown`] (its transactions are aborted through
    /// [`Handler::event`] as on any link loss) and the run ends. This is
    /// the C library's `DMSG_IOCOMF_EOF`.
    fn should_stop(&mut self) -> bool {
        false
    }
}

/// Runs one link over a connected stream socket (or any fd that reads and
/// writes a byte stream) on the caller's thread: the model of the C
/// library's `dmsg_iocom_core`. See [`crate::runtime`] for the loop.
#[derive(Debug)]
pub struct Driver {
    sock: OwnedFd,
    alt: Option<OwnedFd>,
    poll_alt: bool,
    conn: Conn,
    rbuf: Vec<u8>,
    timeout: Option<Timespec>,
}

/// What one flush left behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flush {
    /// Everything was written (or the link is down).
    Done,
    /// The socket is full: wait for POLLOUT.
    Blocked,
}

impl Driver {
    /// Prepares a driver for `link` over `sock` (made non-blocking here),
    /// with an optional `alt` fd polled for input. Returns the driver and
    /// the handle every thread uses to reach the link.
    pub fn new(
        sock: OwnedFd,
        alt: Option<OwnedFd>,
        link: Link,
        cfg: DriverConfig,
    ) -> io::Result<(Driver, Conn)> {
        rustix::io::ioctl_fionbio(&sock, true)?;
        let down = link.is_down();
        let conn = Conn::new(Shared {
            locked: Mutex::new(Locked { link, waiters: 0 }),
            drained: Condvar::new(),
            wakeup: Wakeup::new()?,
            wake_pending: AtomicBool::new(false),
            signal_req: AtomicBool::new(false),
            shutdown_req: AtomicBool::new(false),
            down: AtomicBool::new(down),
            tx_limit: cfg.tx_limit.max(1),
        });
        let timeout = cfg.poll_timeout.map(|d| Timespec {
            tv_sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: i64::from(d.subsec_nanos()),
        });
        let driver = Driver {
            sock,
            poll_alt: alt.is_some(),
            alt,
            conn: conn.clone(),
            rbuf: vec![0; cfg.read_buffer.max(4096)],
            timeout,
        };
        Ok((driver, conn))
    }

    /// The handle of the driven link.
    pub fn conn(&self) -> &Conn {
        &self.conn
    }

    /// Gives back the socket and the alt fd (after [`Driver::run`], to
    /// close them in a chosen order or keep the alt fd open).
    pub fn into_fds(self) -> (OwnedFd, Option<OwnedFd>) {
        (self.sock, self.alt)
    }

    /// Runs the loop until the link is down and [`Event::Down`] has been
    /// delivered; returns why it went down. The link goes down on EOF
    /// ([`LinkError::Eof`]), a socket error ([`LinkError::Io`]), a frame the
    /// decoder refuses, [`Conn::shutdown`], or [`Handler::should_stop`].
    /// Called again after that, it returns at once.
    pub fn run<H: Handler + ?Sized>(&mut self, handler: &mut H) -> LinkError {
        let previous = self.conn.on_driver_thread();
        self.conn.set_driving(true);
        let why = self.run_loop(handler);
        self.conn.set_driving(previous);
        why
    }

    fn run_loop<H: Handler + ?Sized>(&mut self, h: &mut H) -> LinkError {
        let mut events: Vec<Event> = Vec::new();
        let (already, pending) = {
            let g = self.conn.lock();
            (g.link.down_reason().cloned(), g.link.has_events())
        };
        if let (Some(e), false) = (already, pending) {
            return e;
        }
        loop {
            let shared = &self.conn.shared;
            if shared.shutdown_req.swap(false, Ordering::AcqRel) {
                self.conn.lock().link.fail(LinkError::Shutdown);
            }
            if shared.signal_req.swap(false, Ordering::AcqRel) {
                h.signal(&self.conn);
            }

            // Write what is queued, take the events, and decide what to
            // wait for, all in one hold of the lock.
            let (flush, throttled) = {
                let mut g = self.conn.lock();
                let flush = self.flush(&mut g);
                events.extend(std::iter::from_fn(|| g.link.poll_event()));
                let tx = g.link.tx_len();
                let down = g.link.is_down();
                if down {
                    shared.down.store(true, Ordering::Release);
                }
                if g.waiters > 0 && (down || tx < shared.tx_limit) {
                    shared.drained.notify_all();
                }
                (flush, tx >= shared.tx_limit)
            };

            if !events.is_empty() {
                for ev in events.drain(..) {
                    let last = match &ev {
                        Event::Down(e) => Some(e.clone()),
                        _ => None,
                    };
                    h.event(&self.conn, ev);
                    if let Some(e) = last {
                        return e;
                    }
                }
                if h.should_stop() {
                    self.conn.lock().link.fail(LinkError::Shutdown);
                }
                // Callbacks may have queued more: look again before sleeping.
                continue;
            }
            if h.should_stop() {
                self.conn.lock().link.fail(LinkError::Shutdown);
                continue;
            }
            self.wait(h, flush, throttled);
        }
    }

    /// Writes as much of the queue as the socket takes, many frames per
    /// `writev`.
    fn flush(&self, g: &mut Locked) -> Flush {
        loop {
            let total = g.link.tx_len();
            if total == 0 || g.link.is_down() {
                return Flush::Done;
            }
            // Crypto stage (to come): seal `pending_tx` into the cipher
            // stream here and write the sealed bytes instead.
            let mut iov = [IoSlice::new(&[]); MAX_IOV];
            let mut n = 0;
            let mut bytes = 0;
            for (slot, s) in iov.iter_mut().zip(g.link.pending_tx()) {
                *slot = IoSlice::new(s);
                n += 1;
                bytes += s.len();
            }
            match rustix::io::writev(&self.sock, iov.get(..n).unwrap_or(&[])) {
                Ok(w) => {
                    g.link.consume_tx(w);
                    if w < bytes {
                        // A short write: the socket buffer is full.
                        return Flush::Blocked;
                    }
                }
                Err(Errno::AGAIN) => return Flush::Blocked,
                Err(Errno::INTR) => {}
                Err(e) => {
                    g.link.fail(LinkError::Io(io::Error::from(e).to_string()));
                    return Flush::Done;
                }
            }
        }
    }

    /// Sleeps in `poll` and does the I/O it reports.
    fn wait<H: Handler + ?Sized>(&mut self, h: &mut H, flush: Flush, throttled: bool) {
        let mut sock_flags = PollFlags::empty();
        if !throttled {
            sock_flags |= PollFlags::IN;
        }
        if flush == Flush::Blocked {
            sock_flags |= PollFlags::OUT;
        }
        let (wake_ev, sock_ev, alt_ev) = {
            let wake_fd = self.conn.shared.wakeup.fd();
            let mut fds = [
                PollFd::new(&wake_fd, PollFlags::IN),
                PollFd::new(&self.sock, sock_flags),
                PollFd::new(&wake_fd, PollFlags::empty()),
            ];
            let mut count = 2;
            if let (true, Some(alt)) = (self.poll_alt, &self.alt) {
                if let Some(slot) = fds.get_mut(2) {
                    *slot = PollFd::new(alt, PollFlags::IN);
                    count = 3;
                }
            }
            let used = fds.get_mut(..count).unwrap_or(&mut []);
            match poll(used, self.timeout.as_ref()) {
                Ok(_) => {}
                Err(Errno::INTR) => return,
                Err(e) => {
                    self.conn
                        .lock()
                        .link
                        .fail(LinkError::Io(io::Error::from(e).to_string()));
                    return;
                }
            }
            let rev = |i: usize| fds.get(i).map_or(PollFlags::empty(), PollFd::revents);
            (
                rev(0),
                rev(1),
                if count == 3 {
                    rev(2)
                } else {
                    PollFlags::empty()
                },
            )
        };

        if !wake_ev.is_empty() {
            self.conn.shared.wakeup.drain();
            // Read-modify-write, so that it orders after the poker's
            // swap(true) and its queued message is seen below.
            self.conn.shared.wake_pending.swap(false, Ordering::AcqRel);
        }
        let fail = PollFlags::HUP | PollFlags::ERR | PollFlags::NVAL;
        if sock_ev.intersects(PollFlags::IN | fail) {
            self.read();
        }
        if alt_ev.contains(PollFlags::IN) {
            h.alt_readable(&self.conn);
        }
        if alt_ev.intersects(fail) {
            // STATE.md §10b row 25: a hung-up alt fd is dropped from the
            // poll set instead of reported (and spun on) forever.
            self.poll_alt = false;
            h.alt_hangup(&self.conn);
        }
    }

    /// One read from the socket into the engine.
    fn read(&mut self) {
        let got = rustix::io::read(&self.sock, self.rbuf.as_mut_slice());
        match got {
            Ok(0) => self.conn.lock().link.fail(LinkError::Eof),
            Ok(n) => {
                // Crypto stage (to come): open the cipher stream here and
                // feed the plaintext instead.
                let data = self.rbuf.get(..n).unwrap_or(&[]);
                self.conn.lock().link.receive(data);
            }
            Err(Errno::AGAIN) | Err(Errno::INTR) => {}
            Err(e) => self
                .conn
                .lock()
                .link
                .fail(LinkError::Io(io::Error::from(e).to_string())),
        }
    }
}

impl AsFd for Driver {
    fn as_fd(&self) -> rustix::fd::BorrowedFd<'_> {
        self.sock.as_fd()
    }
}
