//! [`Conn`]: the handle to a driven link that every thread shares.

use super::driver::{send_slices, Sent};
use super::wakeup::Wakeup;
use crate::link::Link;
use rustix::fd::OwnedFd;
use std::cell::Cell;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};

/// What the link mutex protects.
#[derive(Debug)]
pub(crate) struct Locked {
    /// The engine.
    pub(crate) link: Link,
    /// Threads waiting in [`Conn::with_link`] for the queue to drain.
    pub(crate) waiters: usize,
    /// The link is encrypted: only the driver (which seals) writes.
    pub(crate) sealed: bool,
    /// The driver's socket, for [`Conn::flush`]. Upgraded only while this
    /// lock is held, so the driver's handle is the only strong one
    /// whenever the lock is free, and dropping the driver closes it.
    pub(crate) sock: Weak<OwnedFd>,
}

/// Everything a [`Conn`] points to.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) locked: Mutex<Locked>,
    /// Signalled by the driver when the queue falls below the limit or the
    /// link goes down.
    pub(crate) drained: Condvar,
    pub(crate) wakeup: Wakeup,
    /// A poke of `wakeup` is outstanding: the driver has not yet looked at
    /// the link since. Coalesces a burst of sends into one poke.
    pub(crate) wake_pending: AtomicBool,
    /// [`Conn::signal`] was called.
    pub(crate) signal_req: AtomicBool,
    /// [`Conn::shutdown`] was called.
    pub(crate) shutdown_req: AtomicBool,
    /// Mirrors `Link::is_down`, readable without the lock.
    pub(crate) down: AtomicBool,
    /// The link was locked from the driver's own thread other than by the
    /// driver itself, i.e. by one of its callbacks. Only that thread reads
    /// and writes it: callbacks that did not lock the link changed nothing
    /// the driver must take before sleeping.
    pub(crate) touched: AtomicBool,
    /// The transmit-queue bound, in bytes (see the module documentation).
    pub(crate) tx_limit: usize,
    /// The socket is a socket (sent to with `MSG_NOSIGNAL`), not a pipe.
    pub(crate) is_socket: bool,
    /// The driver holds bytes taken from the queue that it has not all
    /// written yet: until it has, only the driver writes to the socket
    /// (see [`Conn::flush`]). Set under the link's lock when the driver
    /// takes bytes; cleared (Release) once it has written them all, which
    /// it may do without the lock.
    pub(crate) driver_out: AtomicBool,
}

thread_local! {
    /// Address of the [`Shared`] that the current thread drives, or 0. Only
    /// compared, never dereferenced.
    static DRIVING: Cell<usize> = const { Cell::new(0) };
}

/// The handle of a link run by a [`super::Driver`]: cheap to clone,
/// `Send + Sync`, usable from the driver's callbacks and from any other
/// thread.
///
/// Every access to the [`Link`] goes through [`Conn::with_link`], which
/// locks it, runs a closure, and wakes the driver when there is something
/// to write. Wakeups are coalesced: a burst of sends between two driver
/// iterations costs one write to the wakeup fd.
///
/// ```
/// use dmsg::link::{Link, LinkError};
/// use dmsg::runtime::{Driver, DriverConfig, Handler};
/// use dmsg::wire::{cmd, Message};
/// use std::os::unix::net::UnixStream;
///
/// let (a, b) = UnixStream::pair().unwrap();
/// let (mut driver, conn) = Driver::new(a.into(), None, Link::default(), DriverConfig::default()).unwrap();
/// conn.with_link(|l| l.send_oneway(Message::new(cmd::LNK_PING))).unwrap();
/// conn.shutdown();
/// struct Quiet;
/// impl Handler for Quiet {}
/// assert_eq!(driver.run(&mut Quiet), LinkError::Shutdown);
/// assert!(conn.is_down());
/// drop(b);
/// ```
#[derive(Clone)]
pub struct Conn {
    pub(crate) shared: Arc<Shared>,
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn")
            .field("down", &self.is_down())
            .finish_non_exhaustive()
    }
}

/// [`Conn::try_with_link`] did not run its closure: the transmit queue is
/// over its limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueFull;

impl fmt::Display for QueueFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("transmit queue over its limit")
    }
}

impl std::error::Error for QueueFull {}

impl Conn {
    pub(crate) fn new(shared: Shared) -> Conn {
        Conn {
            shared: Arc::new(shared),
        }
    }

    fn key(&self) -> usize {
        Arc::as_ptr(&self.shared) as usize
    }

    /// True when both handles are of the same link.
    pub fn same(&self, other: &Conn) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    /// True on the thread running this connection's driver.
    pub fn on_driver_thread(&self) -> bool {
        DRIVING.with(|d| d.get() == self.key())
    }

    pub(crate) fn set_driving(&self, on: bool) {
        let key = if on { self.key() } else { 0 };
        DRIVING.with(|d| d.set(key));
    }

    /// Locks the link. On the driver's own thread (from a callback) it also
    /// notes that the link may have changed, so that the driver looks at
    /// it again before it sleeps (see `Shared::touched`).
    pub(crate) fn lock(&self) -> MutexGuard<'_, Locked> {
        if self.on_driver_thread() {
            self.shared.touched.store(true, Ordering::Relaxed);
        }
        self.lock_quiet()
    }

    /// Locks the link without noting anything: the driver's own holds.
    pub(crate) fn lock_quiet(&self) -> MutexGuard<'_, Locked> {
        // A panic under the lock aborts (panic = "abort" in our builds); if
        // it did not, the link is still consistent enough to be taken down.
        self.shared
            .locked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs `f` on the link, under its lock, and wakes the driver if `f`
    /// left bytes to write or events to deliver.
    ///
    /// **Backpressure.** Called from any thread but the driver's, it first
    /// waits while the transmit queue holds [`super::DriverConfig::tx_limit`]
    /// bytes or more (until the driver drains it below the limit, or the
    /// link goes down). Called from the driver's own thread (from a
    /// [`super::Handler`] callback) it never waits. Never call it while
    /// holding a lock the driver's callbacks take: use
    /// [`Conn::try_with_link`] or [`Conn::with_link_nowait`] there.
    pub fn with_link<R>(&self, f: impl FnOnce(&mut Link) -> R) -> R {
        let mut g = self.lock();
        if g.link.tx_len() >= self.shared.tx_limit && !self.on_driver_thread() {
            while g.link.tx_len() >= self.shared.tx_limit && !g.link.is_down() {
                g.waiters += 1;
                g = self
                    .shared
                    .drained
                    .wait(g)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                g.waiters -= 1;
            }
        }
        self.run_locked(g, f)
    }

    /// Like [`Conn::with_link`], but never waits: when the transmit queue is
    /// over its limit (and this is not the driver's thread) it returns
    /// [`QueueFull`] without running `f`. For callers that must not block.
    pub fn try_with_link<R>(&self, f: impl FnOnce(&mut Link) -> R) -> Result<R, QueueFull> {
        let g = self.lock();
        if g.link.tx_len() >= self.shared.tx_limit && !self.on_driver_thread() {
            return Err(QueueFull);
        }
        Ok(self.run_locked(g, f))
    }

    /// Like [`Conn::with_link`], but never waits and never refuses: what `f`
    /// queues goes past the limit. For the few messages that must go out
    /// whatever the queue holds (protocol teardown, span updates sent from
    /// under another lock); the bound then grows by what these calls queue.
    pub fn with_link_nowait<R>(&self, f: impl FnOnce(&mut Link) -> R) -> R {
        let g = self.lock();
        self.run_locked(g, f)
    }

    /// Like [`Conn::with_link_nowait`], but does not wake the driver: the
    /// caller then calls [`Conn::flush`] (after it has released the locks
    /// it holds), which writes what was queued or wakes the driver.
    pub(crate) fn with_link_deferred<R>(&self, f: impl FnOnce(&mut Link) -> R) -> R {
        let mut g = self.lock();
        let r = f(&mut g.link);
        self.after_locked(&mut g);
        r
    }

    fn run_locked<R>(&self, mut g: MutexGuard<'_, Locked>, f: impl FnOnce(&mut Link) -> R) -> R {
        let r = f(&mut g.link);
        let wake = self.after_locked(&mut g);
        drop(g);
        if wake && !self.on_driver_thread() {
            self.wake();
        }
        r
    }

    /// Publishes the link's state after a change under the lock: the down
    /// flag, and the threads waiting for the queue to drain. Returns
    /// whether the driver has something to do (bytes to write or events).
    fn after_locked(&self, g: &mut MutexGuard<'_, Locked>) -> bool {
        if g.link.is_down() {
            self.shared.down.store(true, Ordering::Release);
        }
        if g.waiters > 0 && (g.link.is_down() || g.link.tx_len() < self.shared.tx_limit) {
            self.shared.drained.notify_all();
        }
        // Bytes the driver has not taken yet (what it took it writes, or
        // waits to write, on its own).
        g.link.pending_len() > 0 || g.link.has_events()
    }

    /// The write-through send path: writes what the link has queued to
    /// the socket on the calling thread, now, instead of waking the driver
    /// to do it: one wakeup and context switch less per batch, for a
    /// thread that queued a batch of messages (a relay does, after each
    /// read).
    ///
    /// It writes under the link's lock, in queue order, and only when the
    /// driver is not writing bytes it took from the queue (which go
    /// first), the link is plaintext (an encrypted link is written by its
    /// driver, which seals), and this is not the driver's own thread
    /// (which writes after its callbacks anyway). The socket is
    /// non-blocking: what it does not take stays queued and the driver is
    /// woken to write it when the socket drains, as it is for everything
    /// this call does not write. A write error takes the link down as the
    /// driver's would. Bytes only ever leave the queue here, so the bound
    /// of the queue is unchanged, and threads waiting for it to drain are
    /// woken as the driver would wake them.
    ///
    /// Returns true when it wrote everything that was queued.
    pub fn flush(&self) -> bool {
        if self.on_driver_thread() {
            return false;
        }
        let mut g = self.lock();
        let mut all = false;
        // Acquire: once the driver has cleared it, every byte it took is
        // in the socket before what is written here.
        let driver_out = self.shared.driver_out.load(Ordering::Acquire);
        if !g.link.is_down() && !driver_out && !g.sealed && g.link.pending_len() > 0 {
            if let Some(sock) = g.sock.upgrade() {
                all = self.write_locked(&mut g, &sock);
            }
        }
        let wake = self.after_locked(&mut g);
        drop(g);
        if wake {
            self.wake();
        }
        all
    }

    /// Writes the link's queue to `sock` until it is empty (true) or the
    /// socket is full or failed (false).
    fn write_locked(&self, g: &mut MutexGuard<'_, Locked>, sock: &OwnedFd) -> bool {
        loop {
            match send_slices(sock, self.shared.is_socket, g.link.pending_tx()) {
                Sent::Wrote { n, short } => {
                    g.link.consume_tx(n);
                    if g.link.pending_len() == 0 {
                        return true;
                    }
                    if short {
                        return false;
                    }
                }
                Sent::Full => return false,
                Sent::Again => {}
                Sent::Failed(e) => {
                    g.link.fail(e);
                    return false;
                }
            }
        }
    }

    /// Pokes the driver's wakeup fd unless a poke is already outstanding.
    pub(crate) fn wake(&self) {
        // A read-modify-write, never a plain load first: the caller has
        // just stored its request (a flag, or bytes under the lock), and a
        // plain load may be done before that store is visible. If it saw
        // the flag still set while the driver cleared it and then looked
        // for requests, each would miss the other and the driver would
        // sleep on the request. The swap orders after the request, and
        // the driver's swap(false) after it or before it: either the
        // driver sees the request, or this call pokes.
        if !self.shared.wake_pending.swap(true, Ordering::AcqRel) {
            self.shared.wakeup.poke();
        }
    }

    /// Asks the driver to take the link down with
    /// [`crate::link::LinkError::Shutdown`]: every open transaction is
    /// aborted and the driver returns after delivering [`crate::link::Event::Down`].
    pub fn shutdown(&self) {
        self.shared.shutdown_req.store(true, Ordering::Release);
        self.wake();
    }

    /// Asks the driver to call [`super::Handler::signal`] once, soon. Unlike
    /// the C library's `dmsg_iocom_signal`, this also wakes the driver.
    /// Several signals before the driver gets to it make one call.
    pub fn signal(&self) {
        self.shared.signal_req.store(true, Ordering::Release);
        if self.on_driver_thread() {
            return;
        }
        self.wake();
    }

    /// True once the link is down.
    pub fn is_down(&self) -> bool {
        self.shared.down.load(Ordering::Acquire)
    }

    /// The transmit-queue limit this connection was configured with.
    pub fn tx_limit(&self) -> usize {
        self.shared.tx_limit
    }
}
