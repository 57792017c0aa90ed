//! [`Driver`]: the poll loop that runs a [`Link`] over a real fd.

use super::answer_poll::AnswerPoll;
use super::conn::{Conn, Locked, Shared};
use super::crypto::CryptoStage;
use super::waitset::{Fds, Ready, WaitSet, Want};
use super::wakeup::Wakeup;
use crate::crypto::Session;
use crate::link::txqueue::TxQueue;
use crate::link::{Event, Link, LinkError};
use crate::wire::FrameRef;
use rustix::event::Timespec;
use rustix::fd::{AsFd, OwnedFd};
use rustix::io::Errno;
use rustix::net::{RecvFlags, SocketType};
use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

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
    /// Longest sleep (rounded up to whole milliseconds where the driver
    /// sleeps in `epoll`). `None` (the default) sleeps until something
    /// happens: every request of a [`Conn`] wakes the driver.
    pub poll_timeout: Option<Duration>,
    /// Longest time the driver polls its fds without sleeping while a
    /// transaction it opened awaits its answer (see
    /// [`Link::awaited_answers`]). The window adapts, from nothing up to
    /// this, to how fast answers come, so that a slow or idle peer costs
    /// no polling. Sleeping instead costs a round trip a wakeup on each
    /// side. Default 50 µs; `Duration::ZERO` never polls. In a
    /// [`super::session::Session`] the thread waiting in
    /// `Transaction::recv` polls instead of the driver.
    pub answer_poll: Duration,
}

impl Default for DriverConfig {
    fn default() -> Self {
        DriverConfig {
            tx_limit: 4 << 20,
            read_buffer: 256 << 10,
            poll_timeout: None,
            answer_poll: Duration::from_micros(50),
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

    /// Called after each batch of [`Handler::event`] calls (the events
    /// of one or more reads, taken from the link at once), except the
    /// last, which ends with [`Event::Down`]. A handler that defers work
    /// per batch (a relay queues the messages of a read on the far link
    /// and writes them once) does it here.
    fn batch_end(&mut self, conn: &Conn) {
        let _ = conn;
    }

    /// Whether the handler takes relayed frames where they were read
    /// ([`Handler::relay_frames`]) rather than as [`Event::Relay`]
    /// messages. Asked when [`Driver::run`] starts.
    fn relays_in_place(&self) -> bool {
        false
    }

    /// Frames on relay circuits, in the order read, which one read held
    /// whole ([`Event::RelayFrame`]): they are in the driver's read buffer
    /// and valid during the call only. Comes in place of the
    /// [`Handler::event`] calls of those events, in order with the other
    /// events. Only called when [`Handler::relays_in_place`] said so.
    fn relay_frames(&mut self, conn: &Conn, frames: &[FrameRef<'_>]) {
        let _ = (conn, frames);
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
    /// The only strong handle, but while [`Conn::flush`] writes (under
    /// the link's lock): dropping the driver closes the socket.
    sock: Arc<OwnedFd>,
    /// `sock` is a socket: written with `MSG_NOSIGNAL`, so a peer that
    /// went away is an `EPIPE` error on this link, never a `SIGPIPE` that
    /// kills a C program which did not ignore it; read with `recv`.
    is_socket: bool,
    alt: Option<OwnedFd>,
    poll_alt: bool,
    conn: Conn,
    /// How [`Driver::wait`] sleeps (see [`super::waitset`]).
    waitset: WaitSet,
    /// How long [`Driver::wait`] polls first while an answer is awaited.
    answer_poll: AnswerPoll,
    rbuf: Vec<u8>,
    timeout: Option<Timespec>,
    /// Bytes taken from the link's queue, being written without the lock.
    out: TxQueue,
    /// Events taken from the link, being delivered.
    events: VecDeque<Event>,
    /// Reads still allowed without sleeping first (see [`READ_AGAIN`]).
    read_again: u32,
    /// The socket may hold input that was reported and not read yet: the
    /// last read filled the buffer or was interrupted, or the peer shut
    /// down (see [`super::waitset`]: the socket may be edge-triggered).
    unread: bool,
    /// The peer shut the socket down or it failed: input is left until a
    /// read returns the end of the stream or an error.
    closing: bool,
    /// Bytes of `out` written since the link was last told.
    written: usize,
    /// The crypto stage, when the link is encrypted
    /// ([`Driver::set_session`]).
    crypto: Option<CryptoStage>,
    /// What the last read saw when it synced under the lock (see
    /// [`Driver::run`]'s loop), until something else may have changed the
    /// link.
    synced: Option<Sync>,
    /// Reads go to [`Link::receive_in_place`]: the handler relays frames
    /// from `rbuf` ([`Handler::relays_in_place`]).
    in_place: bool,
}

/// Reads made one after the other without sleeping while each fills the
/// whole buffer, at most.
const READ_AGAIN: u32 = 16;

/// What one [`Driver::read`] got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Read {
    /// A whole buffer: more is probably waiting.
    Full,
    /// Some bytes, or the end of the stream.
    Some,
    /// Nothing yet.
    Nothing,
}

/// What [`Driver::write_out`] did.
#[derive(Clone, Copy, Debug)]
struct Written {
    /// The socket is full: wait for POLLOUT.
    blocked: bool,
    /// Some bytes were written.
    wrote: bool,
}

impl Written {
    /// Nothing more to write now (all written, or the link is down).
    fn done(wrote: bool) -> Written {
        Written {
            blocked: false,
            wrote,
        }
    }

    /// The socket is full.
    fn blocked(wrote: bool) -> Written {
        Written {
            blocked: true,
            wrote,
        }
    }
}

/// What one [`send`] means to a write loop.
pub(crate) enum Sent {
    /// `n` bytes went out; `short` when fewer than offered (socket full).
    Wrote { n: usize, short: bool },
    /// The socket is full.
    Full,
    /// Interrupted: try again.
    Again,
    /// The link failed.
    Failed(LinkError),
}

impl Sent {
    /// Classifies the result of sending `len` bytes.
    pub(crate) fn of(r: rustix::io::Result<usize>, len: usize) -> Sent {
        match r {
            Ok(n) => Sent::Wrote { n, short: n < len },
            Err(Errno::AGAIN) => Sent::Full,
            Err(Errno::INTR) => Sent::Again,
            Err(e) => Sent::Failed(LinkError::Io(io::Error::from(e).to_string())),
        }
    }
}

/// What [`Driver::sync`] saw.
#[derive(Clone, Copy, Debug)]
struct Sync {
    /// Threads wait for the queue to drain.
    waiters: bool,
    /// The link's own queue was left empty: everything queued is with
    /// the driver.
    took_all: bool,
    /// The transmit queue is over its limit: do not read.
    throttled: bool,
    /// Transactions we opened that await their answer
    /// ([`Link::awaited_answers`]).
    awaited: usize,
}

impl Driver {
    /// Prepares a driver for `link` over `sock` (made non-blocking here),
    /// with an optional `alt` fd polled for input. Returns the driver and
    /// the handle every thread uses to reach the link. Besides the wakeup
    /// fd it opens an `epoll` fd on Linux (both close-on-exec, both closed
    /// with the driver).
    pub fn new(
        sock: OwnedFd,
        alt: Option<OwnedFd>,
        link: Link,
        cfg: DriverConfig,
    ) -> io::Result<(Driver, Conn)> {
        rustix::io::ioctl_fionbio(&sock, true)?;
        let sock_type = rustix::net::sockopt::socket_type(&sock).ok();
        let is_socket = sock_type.is_some();
        let down = link.is_down();
        let sock = Arc::new(sock);
        let conn = Conn::new(Shared {
            locked: Mutex::new(Locked {
                link,
                waiters: 0,
                sealed: false,
                sock: Arc::downgrade(&sock),
            }),
            drained: Condvar::new(),
            wakeup: Wakeup::new()?,
            wake_pending: AtomicBool::new(false),
            signal_req: AtomicBool::new(false),
            shutdown_req: AtomicBool::new(false),
            down: AtomicBool::new(down),
            touched: AtomicBool::new(false),
            tx_limit: cfg.tx_limit.max(1),
            is_socket,
            driver_out: AtomicBool::new(false),
        });
        let timeout = cfg.poll_timeout.map(|d| Timespec {
            tv_sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: i64::from(d.subsec_nanos()),
        });
        // Edge-triggered only for a stream socket, where a short read
        // means drained (see super::waitset).
        let stream = sock_type == Some(SocketType::STREAM);
        let waitset = WaitSet::new(
            Fds {
                wake: conn.shared.wakeup.fd(),
                sock: sock.as_fd(),
                alt: alt.as_ref().map(AsFd::as_fd),
            },
            stream,
        );
        let driver = Driver {
            sock,
            is_socket,
            waitset,
            answer_poll: AnswerPoll::new(cfg.answer_poll),
            poll_alt: alt.is_some(),
            alt,
            conn: conn.clone(),
            rbuf: vec![0; cfg.read_buffer.max(4096)],
            timeout,
            out: TxQueue::default(),
            events: VecDeque::new(),
            read_again: 0,
            unread: false,
            closing: false,
            written: 0,
            crypto: None,
            synced: None,
            in_place: false,
        };
        Ok((driver, conn))
    }

    /// Encrypts the link with `session` (from
    /// [`crate::runtime::crypto::negotiate`]): from now on what the queue
    /// holds is sealed before it is written and what is read is opened
    /// before the link sees it (see [`crate::runtime::crypto`]). Call it
    /// before [`Driver::run`], right after the handshake, before any byte
    /// of the link is written or read.
    pub fn set_session(&mut self, session: Session) {
        self.crypto = Some(CryptoStage::new(session));
        // From now on only the driver, which seals, writes.
        self.conn.lock().sealed = true;
    }

    /// Whether the link is encrypted.
    pub fn is_encrypted(&self) -> bool {
        self.crypto.is_some()
    }

    /// The handle of the driven link.
    pub fn conn(&self) -> &Conn {
        &self.conn
    }

    /// Gives back the socket and the alt fd (after [`Driver::run`], to
    /// close them in a chosen order or keep the alt fd open).
    pub fn into_fds(self) -> (OwnedFd, Option<OwnedFd>) {
        let mut sock = self.sock;
        loop {
            // Conn::flush holds a second handle only while it holds the
            // link's lock, for one non-blocking write.
            drop(self.conn.lock());
            match Arc::try_unwrap(sock) {
                Ok(fd) => return (fd, self.alt),
                Err(again) => {
                    sock = again;
                    std::thread::yield_now();
                }
            }
        }
    }

    /// Runs the loop until the link is down and [`Event::Down`] has been
    /// delivered; returns why it went down. The link goes down on EOF
    /// ([`LinkError::Eof`]), a socket error ([`LinkError::Io`]), a frame the
    /// decoder refuses, [`Conn::shutdown`], or [`Handler::should_stop`].
    /// Called again after that, it returns at once.
    pub fn run<H: Handler + ?Sized>(&mut self, handler: &mut H) -> LinkError {
        let previous = self.conn.on_driver_thread();
        self.conn.set_driving(true);
        self.in_place = handler.relays_in_place();
        let why = self.run_loop(handler);
        self.conn.set_driving(previous);
        why
    }

    fn run_loop<H: Handler + ?Sized>(&mut self, h: &mut H) -> LinkError {
        let (already, pending) = {
            let g = self.conn.lock_quiet();
            (g.link.down_reason().cloned(), g.link.has_events())
        };
        if let (Some(e), false) = (already, pending) {
            return e;
        }
        loop {
            // What a read in the last sleep saw under the lock, if nothing
            // (no callback, no stop) ran since: it spares another hold.
            let mut synced = self.synced.take();
            if take_flag(&self.conn.shared.shutdown_req) {
                self.stop();
                synced = None;
            }
            if take_flag(&self.conn.shared.signal_req) {
                h.signal(&self.conn);
                synced = None;
            }

            // Take what is queued and the events, and decide what to wait
            // for, in one hold of the lock. Events are delivered before the
            // bytes taken with them are written (a peer that sees our
            // DELETE finds the transaction closed here already); then the
            // bytes are written without the lock.
            let sync = match synced {
                Some(s) => s,
                None => self.sync(),
            };
            if !self.events.is_empty() {
                let touched = &self.conn.shared.touched;
                touched.store(false, Ordering::Relaxed);
                loop {
                    // Relayed frames are looked for at the front of the
                    // queue, before an event is taken out of it: taken
                    // out first, each event was copied twice.
                    if self.in_place && matches!(self.events.front(), Some(Event::RelayFrame(_))) {
                        self.relay_frames(h);
                        continue;
                    }
                    let Some(ev) = self.events.pop_front() else {
                        break;
                    };
                    if let Event::Down(e) = &ev {
                        let e = e.clone();
                        h.event(&self.conn, ev);
                        return e;
                    }
                    h.event(&self.conn, ev);
                }
                h.batch_end(&self.conn);
                if h.should_stop() {
                    self.stop();
                } else if !self.conn.shared.touched.load(Ordering::Relaxed) {
                    // No callback locked the link: what the last hold saw
                    // still holds (other threads wake the driver for what
                    // they change), so no hold is needed to look again.
                    self.synced = Some(sync);
                }
                // Callbacks may have queued more: look again before sleeping.
                continue;
            }
            if h.should_stop() {
                self.stop();
                continue;
            }
            let flush = self.write_out();
            if flush.wrote && !self.may_sleep_unreported(sync, flush) {
                // Report what was written before sleeping: threads may be
                // waiting for the queue to drain.
                continue;
            }
            self.wait(h, flush.blocked, sync);
        }
    }

    /// Takes the [`Event::RelayFrame`]s at the front of the queue and hands
    /// them to [`Handler::relay_frames`]: frames of the last read, which
    /// the buffer holds until the next read, after every event (the link
    /// only reports them from the bytes it was given there).
    #[inline(never)]
    fn relay_frames<H: Handler + ?Sized>(&mut self, h: &mut H) {
        let mut frames = Vec::new();
        while let Some(Event::RelayFrame(at)) = self.events.front() {
            let frame = at.get(&self.rbuf);
            debug_assert!(frame.is_some(), "a frame out of the buffer");
            frames.extend(frame);
            self.events.pop_front();
        }
        h.relay_frames(&self.conn, &frames);
    }

    /// Whether the driver may sleep right after a write without telling
    /// the link (the next hold of the lock does). Only when the write
    /// finished, the last hold of the lock took all the link had queued,
    /// nobody waited for the queue to drain and reading was on, and what
    /// is unreported is under the limit. Then:
    ///
    /// - bytes queued since by other threads woke the driver (their
    ///   [`Conn::with_link`] pokes it), and the driver's own callbacks are
    ///   always followed by a hold of the lock, so nothing queued waits;
    /// - a thread that finds the queue over the limit (its count includes
    ///   the unreported bytes, which alone are under it) does so because
    ///   bytes were queued since, which woke the driver: its next hold of
    ///   the lock reports what was written and wakes that thread.
    fn may_sleep_unreported(&self, sync: Sync, flush: Written) -> bool {
        !flush.blocked
            && sync.took_all
            && !sync.throttled
            && !sync.waiters
            && self.out.is_empty()
            && self.written < self.conn.shared.tx_limit
    }

    /// A local stop ([`Conn::shutdown`] or [`Handler::should_stop`]): what
    /// is already queued goes out first, as far as the socket takes it
    /// without blocking (a last message written just before the stop is
    /// not lost), then the link is taken down with [`LinkError::Shutdown`].
    fn stop(&mut self) {
        loop {
            {
                let mut g = self.conn.lock_quiet();
                g.link.tx_written(std::mem::take(&mut self.written));
                if self.out.is_empty() && !g.link.is_down() {
                    g.link.take_tx(&mut self.out);
                }
                let holds = !self.out.is_empty();
                self.conn.shared.driver_out.store(holds, Ordering::Release);
            }
            if self.out.is_empty() {
                break;
            }
            let w = self.write_out();
            if w.blocked || !w.wrote {
                break;
            }
        }
        self.fail(LinkError::Shutdown);
    }

    /// Takes the link down from the driver's thread.
    fn fail(&mut self, e: LinkError) {
        self.conn.lock_quiet().link.fail(e);
        self.conn.shared.down.store(true, Ordering::Release);
        self.out.clear();
        self.conn.shared.driver_out.store(false, Ordering::Release);
    }

    /// One hold of the lock: accounts for what was written, takes the
    /// queued bytes (when the driver has written all it held) and the
    /// events, and wakes the threads waiting for the queue to drain.
    fn sync(&mut self) -> Sync {
        let mut g = self.conn.lock_quiet();
        sync_locked(
            &mut g,
            &self.conn.shared,
            &mut self.out,
            &mut self.events,
            &mut self.written,
        )
    }

    /// Writes what the driver took from the queue, many frames per
    /// `writev`, without holding the lock, until it is all written or the
    /// socket is full.
    fn write_out(&mut self) -> Written {
        if self.crypto.is_some() {
            return self.write_sealed();
        }
        let mut wrote = false;
        loop {
            if self.out.is_empty() {
                // All it took is in the socket: Conn::flush may write what
                // was queued since (Release: after these writes).
                self.conn.shared.driver_out.store(false, Ordering::Release);
                return Written::done(wrote);
            }
            if self.conn.shared.down.load(Ordering::Acquire) {
                self.out.clear();
                return Written::done(wrote);
            }
            let sent = send_slices(&self.sock, self.is_socket, self.out.slices());
            let step = self.after_send(sent, &mut wrote, |d, n| {
                d.out.consume(n);
                n
            });
            if let Some(end) = step {
                return end;
            }
        }
    }

    /// What a write loop does with the outcome of one send: the bytes
    /// written leave what the driver holds (`consume` takes them and says
    /// how many bytes of the link's queue they were) and count as written;
    /// `Some` ends the loop (the socket is full, or the link failed).
    fn after_send(
        &mut self,
        sent: Sent,
        wrote: &mut bool,
        consume: impl FnOnce(&mut Driver, usize) -> usize,
    ) -> Option<Written> {
        match sent {
            Sent::Wrote { n, short } => {
                self.written += consume(self, n);
                *wrote |= n > 0;
                short.then(|| Written::blocked(*wrote))
            }
            Sent::Full => Some(Written::blocked(*wrote)),
            Sent::Again => None,
            Sent::Failed(e) => {
                self.fail(e);
                Some(Written::done(*wrote))
            }
        }
    }

    /// [`Driver::write_out`] of an encrypted link: seals a batch of what
    /// the driver took from the queue and writes it, batch after batch,
    /// until all is written or the socket is full. The link is told that
    /// plaintext bytes are written as the chunks holding them are.
    fn write_sealed(&mut self) -> Written {
        let mut wrote = false;
        loop {
            let down = self.conn.shared.down.load(Ordering::Acquire);
            let Some(stage) = self.crypto.as_mut() else {
                return Written::done(wrote);
            };
            if down {
                stage.clear();
                self.out.clear();
                return Written::done(wrote);
            }
            if stage.is_idle() {
                if self.out.is_empty() {
                    return Written::done(wrote);
                }
                match stage.seal(self.out.slices()) {
                    Ok(n) => self.out.consume(n),
                    Err(e) => {
                        self.fail(e);
                        return Written::done(wrote);
                    }
                }
            }
            let data = stage.unwritten();
            let len = data.len();
            let sent = Sent::of(send_one(&self.sock, self.is_socket, data), len);
            let step = self.after_send(sent, &mut wrote, |d, n| {
                d.crypto.as_mut().map_or(0, |stage| stage.consume(n))
            });
            if let Some(end) = step {
                return end;
            }
        }
    }

    /// Sleeps (see [`super::waitset`]) and does the I/O it reports.
    fn wait<H: Handler + ?Sized>(&mut self, h: &mut H, blocked: bool, sync: Sync) {
        let throttled = sync.throttled;
        if self.read_again > 0 && !throttled {
            // The last read filled the buffer: more is very likely there,
            // so read again without sleeping (a bounded number of
            // times, so that the wakeup and alt fds are still looked at).
            self.read_again -= 1;
            match self.read() {
                Read::Full => return,
                Read::Some => {
                    // Deliver what came before sleeping.
                    self.read_again = 0;
                    return;
                }
                Read::Nothing => self.read_again = 0,
            }
        }
        let fds = Fds {
            wake: self.conn.shared.wakeup.fd(),
            sock: self.sock.as_fd(),
            alt: self.alt.as_ref().filter(|_| self.poll_alt).map(AsFd::as_fd),
        };
        let want = Want {
            read: !throttled,
            write: blocked,
            unread: self.unread,
        };
        // Polling for an answer only makes sense where the wait would sleep
        // for input.
        let started =
            (sync.awaited > 0 && want.read && !want.write && !want.unread).then(Instant::now);
        let mut ready = Ok(Ready::default());
        if let Some(t0) = started {
            let window = self.answer_poll.window();
            let now = Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            while ready == Ok(Ready::default()) && t0.elapsed() < window {
                // The peer (or whatever else is runnable here) goes first
                // when it shares this CPU: polling must not delay it.
                std::thread::yield_now();
                ready = self.waitset.wait(fds, want, Some(&now));
            }
        }
        if ready == Ok(Ready::default()) {
            ready = self.waitset.wait(fds, want, self.timeout.as_ref());
        }
        let ready = match ready {
            Ok(r) => r,
            Err(Errno::INTR) => return,
            Err(e) => {
                self.conn
                    .lock_quiet()
                    .link
                    .fail(LinkError::Io(io::Error::from(e).to_string()));
                self.conn.shared.down.store(true, Ordering::Release);
                return;
            }
        };

        if ready.wake {
            self.conn.shared.wakeup.drain();
            // Read-modify-write, so that it orders after the poker's
            // swap(true) and its queued message is seen below.
            self.conn.shared.wake_pending.swap(false, Ordering::AcqRel);
        }
        self.closing |= ready.sock_closing;
        if ready.sock_read {
            let waited = started.map(|t0| t0.elapsed());
            if self.read() == Read::Full {
                self.read_again = READ_AGAIN;
            }
            // Only an answer adapts the window (other input while one is
            // awaited says nothing about how fast answers come).
            if let (Some(w), Some(now)) = (waited, self.synced) {
                if now.awaited < sync.awaited {
                    self.answer_poll.answered_after(w);
                }
            }
        }
        if ready.alt_readable {
            h.alt_readable(&self.conn);
            self.synced = None;
        }
        if ready.alt_gone {
            // STATE.md §10b row 25: a hung-up alt fd is dropped from the
            // wait set instead of reported (and spun on) forever.
            self.poll_alt = false;
            if let Some(alt) = &self.alt {
                self.waitset.forget_alt(alt.as_fd());
            }
            h.alt_hangup(&self.conn);
            self.synced = None;
        }
    }

    /// One read from the socket into the engine.
    fn read(&mut self) -> Read {
        // An encrypted link keeps the bytes of an incomplete chunk at the
        // front of the buffer and reads after them. They are moved there
        // now, not right after the last read: until now its plaintext
        // stayed where it was, for the frames relayed from it.
        if let Some(stage) = self.crypto.as_mut() {
            stage.keep_tail(&mut self.rbuf);
        }
        let held = self.crypto.as_ref().map_or(0, CryptoStage::held);
        let room = self.rbuf.len().saturating_sub(held);
        let buf = self.rbuf.get_mut(held..).unwrap_or_default();
        let got = if self.is_socket {
            // `recv` goes straight to the socket; `read` passes through the
            // generic file layer first (measurably slower per call).
            rustix::net::recv(&self.sock, buf, RecvFlags::empty()).map(|(n, _)| n)
        } else {
            rustix::io::read(&self.sock, buf)
        };
        // A read shorter than the buffer, or EAGAIN, drained the socket
        // (unless the peer shut down: its end of stream is still to read).
        self.unread = match got {
            Ok(n) => n == room || self.closing,
            Err(Errno::INTR) => true,
            Err(_) => false,
        };
        match got {
            Ok(0) => self.fail(LinkError::Eof),
            Ok(n) => {
                let mut len = n;
                if let Some(stage) = self.crypto.as_mut() {
                    let buf = self.rbuf.get_mut(..held + n).unwrap_or_default();
                    match stage.open_in_place(buf) {
                        Ok(plain) => len = plain,
                        Err(e) => {
                            // A bad tag (STATE.md §10 row 18): nothing of
                            // this read reaches the link; it goes down.
                            self.fail(e);
                            return Read::Some;
                        }
                    }
                }
                let data = self.rbuf.get(..len).unwrap_or(&[]);
                let mut g = self.conn.lock_quiet();
                if self.in_place {
                    g.link.receive_in_place(data);
                } else {
                    g.link.receive(data);
                }
                // Take the queue and the events in the same hold.
                self.synced = Some(sync_locked(
                    &mut g,
                    &self.conn.shared,
                    &mut self.out,
                    &mut self.events,
                    &mut self.written,
                ));
                drop(g);
                return if n == room { Read::Full } else { Read::Some };
            }
            Err(Errno::AGAIN) | Err(Errno::INTR) => return Read::Nothing,
            Err(e) => self.fail(LinkError::Io(io::Error::from(e).to_string())),
        }
        // EOF or an error: the link is down, with events to deliver.
        Read::Some
    }
}

/// One hold of the lock of a driver (see [`Driver::sync`]), on the parts
/// of it that it touches.
fn sync_locked(
    g: &mut Locked,
    shared: &Shared,
    out: &mut TxQueue,
    events: &mut VecDeque<Event>,
    written: &mut usize,
) -> Sync {
    g.link.tx_written(std::mem::take(written));
    if g.link.is_down() {
        out.clear();
    } else if out.is_empty() {
        g.link.take_tx(out);
    }
    // While the driver holds unwritten bytes, Conn::flush does not write
    // (they go first).
    shared.driver_out.store(!out.is_empty(), Ordering::Release);
    let took_all = g.link.pending_len() == 0;
    g.link.take_events(events);
    let down = g.link.is_down();
    if down {
        shared.down.store(true, Ordering::Release);
    }
    let queued = g.link.tx_len();
    if g.waiters > 0 && (down || queued < shared.tx_limit) {
        shared.drained.notify_all();
    }
    Sync {
        awaited: g.link.awaited_answers(),
        waiters: g.waiters > 0,
        took_all,
        // Reading stops only at twice the limit: other threads already
        // wait at the limit, so only the driver's own callbacks (which
        // never wait) can get the queue this far. Stopping at the limit
        // itself deadlocks two peers that both send more than it to
        // each other: both queues full, neither driver reading.
        throttled: queued >= shared.tx_limit.saturating_mul(2),
    }
}

/// Clears a request flag and says whether it was set. A plain load first:
/// the flags are almost always clear, and a locked read-modify-write on
/// every iteration costs more than the check. A request set just after the
/// load is not lost: whoever sets one also wakes the driver, which then
/// loops again.
fn take_flag(flag: &AtomicBool) -> bool {
    flag.load(Ordering::Acquire) && flag.swap(false, Ordering::AcqRel)
}

/// The first two items of `it`.
fn two_first<T>(mut it: impl Iterator<Item = T>) -> (Option<T>, Option<T>) {
    let first = it.next();
    (first, it.next())
}

/// [`send`] of one buffer: `send` with `MSG_NOSIGNAL` on a socket, `write`
/// on anything else. Cheaper than a one-element `sendmsg` (no message
/// header or vector for the kernel to copy in).
fn send_one(sock: &OwnedFd, is_socket: bool, buf: &[u8]) -> rustix::io::Result<usize> {
    if is_socket {
        rustix::net::send(sock, buf, rustix::net::SendFlags::NOSIGNAL)
    } else {
        rustix::io::write(sock, buf)
    }
}

impl AsFd for Driver {
    fn as_fd(&self) -> rustix::fd::BorrowedFd<'_> {
        self.sock.as_fd()
    }
}

/// One write of the first [`MAX_IOV`] of `slices` (see [`send`]; a single
/// buffer goes out with [`send_one`], no vector built), classified.
pub(crate) fn send_slices<'a>(
    sock: &OwnedFd,
    is_socket: bool,
    slices: impl Iterator<Item = &'a [u8]> + Clone,
) -> Sent {
    if let (Some(one), None) = two_first(slices.clone()) {
        // One buffer (the usual case of small messages, which the queue
        // packs together): a plain send.
        return Sent::of(send_one(sock, is_socket, one), one.len());
    }
    let mut iov = [IoSlice::new(&[]); MAX_IOV];
    let mut n = 0;
    let mut bytes = 0;
    for (slot, s) in iov.iter_mut().zip(slices) {
        *slot = IoSlice::new(s);
        n += 1;
        bytes += s.len();
    }
    Sent::of(send(sock, is_socket, iov.get(..n).unwrap_or(&[])), bytes)
}

/// One gathered write to the stream: `sendmsg` with `MSG_NOSIGNAL` on a
/// socket, `writev` on anything else (a pipe: a C program using pipes
/// ignores `SIGPIPE`, as the hammer2 tools do).
fn send(sock: &OwnedFd, is_socket: bool, iov: &[IoSlice<'_>]) -> rustix::io::Result<usize> {
    if is_socket {
        rustix::net::sendmsg(
            sock,
            iov,
            &mut rustix::net::SendAncillaryBuffer::default(),
            rustix::net::SendFlags::NOSIGNAL,
        )
    } else {
        rustix::io::writev(sock, iov)
    }
}
