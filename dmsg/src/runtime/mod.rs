//! Running a [`Link`](crate::link::Link) over a real file descriptor.
//!
//! Two layers:
//!
//! - [`Driver`], [`Conn`] and [`Handler`]: the model of the C library's
//!   `dmsg_iocom_core`. The driver runs a poll loop on the caller's thread;
//!   [`Conn`] is the handle any thread uses to reach the link; the
//!   [`Handler`] callbacks run on the driver's thread with no lock held.
//! - [`session`]: an idiomatic API on top: a connection on its own thread,
//!   transactions as handles with a channel of replies, incoming traffic on
//!   a channel.
//!
//! # The loop
//!
//! ```text
//!  loop {
//!      shutdown requested?   → Link::fail(Shutdown)
//!      signal requested?     → Handler::signal
//!      lock: report what was written, take the queued bytes and the
//!            events; unlock (skipped right after a read: it did this in
//!            its own hold of the lock)
//!      events?               → Handler::event for each (no lock held);
//!                              return after Event::Down; loop again
//!      Handler::should_stop  → Link::fail(Shutdown)
//!      write what was taken (one send, or writev of up to MAX_IOV
//!            slices) until all is written or the socket is full; loop
//!            again if anything was written, unless all was and no thread
//!            can be waiting for the report (the next hold of the lock
//!            makes it; see the comment of Driver::may_sleep_unreported)
//!      sleep (a persistent epoll set on Linux, where a stream socket is
//!           edge-triggered and read until drained; poll elsewhere; while
//!           a transaction we opened awaits its answer, the same fds are
//!           first polled without sleeping for an adaptive window of at
//!           most DriverConfig::answer_poll, see answer_poll.rs) on
//!           wakeup fd: IN,
//!           socket: IN unless throttled, OUT if the last write blocked,
//!           alt fd: IN while it has not hung up
//!      wakeup  → drain it
//!      socket  → one read (up to DriverConfig::read_buffer bytes) into
//!                Link::receive, then the lock step above in the same
//!                hold; 0 bytes → Link::fail(Eof); error → Link::fail(Io)
//!      alt fd  → Handler::alt_readable; POLLHUP/POLLERR → Handler::alt_hangup
//!                and the alt fd is no longer polled (no spinning)
//!  }
//! ```
//!
//! With a crypto session ([`Driver::set_session`], negotiated with
//! [`crypto::negotiate`]) a crypto stage seals what is taken from the queue
//! before `writev` and opens what is read before `Link::receive`; see
//! [`crypto`].
//!
//! # Wakeups
//!
//! [`Conn::with_link`] from a thread other than the driver's pokes the
//! wakeup fd (an eventfd on Linux, a pipe elsewhere) when the link has bytes
//! to write or events to deliver afterwards, unless a poke is already
//! outstanding: a burst of sends between two iterations of the driver costs
//! one write to the wakeup fd. Calls from the driver's own thread never
//! poke: the loop looks at the queue after every batch of callbacks.
//! [`Conn::signal`] and [`Conn::shutdown`] also wake the poll (unlike the C
//! library's `dmsg_iocom_signal`), so the poll needs no timeout.
//!
//! # Write-through
//!
//! [`Conn::flush`] lets a thread that has just queued a batch (a relay,
//! after the messages of one read) write it to the socket itself, under
//! the link's lock, instead of waking the driver: it does so only while
//! the driver holds no bytes it took from the queue and has not written
//! (those go first), on a plaintext link, and never on the driver's own
//! thread. The socket is non-blocking: what it does not take stays queued
//! and the driver is woken for it. The driver's handle is the only strong
//! one on the socket whenever the link's lock is free, so dropping the
//! driver still closes it.
//!
//! # Backpressure: the bound on the transmit queue
//!
//! Let `L` be [`DriverConfig::tx_limit`] (4 MiB by default) and `R`
//! [`DriverConfig::read_buffer`] (256 KiB). The queue is *over the limit*
//! while it holds `L` bytes or more. Then:
//!
//! 1. [`Conn::with_link`] called from any thread but the driver's waits
//!    (on a condition variable) until the driver has written the queue
//!    below `L`, or the link is down, and only then runs its closure.
//!    [`Conn::try_with_link`] does not wait: it returns [`QueueFull`]
//!    without running the closure.
//! 2. While the queue holds `2L` bytes or more the driver does not read
//!    from the socket, so a peer that sends requests but does not read our
//!    answers stops being served: its own socket buffer fills and it is
//!    the one that blocks. Only the driver's own callbacks can take the
//!    queue past `L` (every other sender waits there), so two peers that
//!    both send more than `L` to each other keep reading each other and
//!    never deadlock (`tests/runtime_flood.rs`).
//! 3. Callbacks on the driver's thread are never blocked (blocking there
//!    would deadlock); they only run in answer to one read of at most `R`
//!    bytes, made while the queue was under `2L`.
//!
//! So the queue never holds more than
//! `2L + Q_cb + Σ Q_t + Q_nowait` bytes, where `Q_cb` is what the callbacks
//! queue in answer to one read of `R` bytes (for a handler that answers
//! every message with one message of the same size, `Q_cb ≤ R`), `Q_t` is
//! what one closure of each thread currently inside `with_link` or
//! `try_with_link` queues (one message is at most 2048 + 65536 bytes
//! encoded), and `Q_nowait` is what [`Conn::with_link_nowait`] calls
//! queue, which is not bounded by the driver (they are for the few
//! messages that must go out whatever the queue holds; a relaying node
//! queues the relayed messages of one read this way, then waits for the
//! far queue to fall below `L`, so a relayed stream adds at most one read,
//! `R`, past the limit). [`Conn::flush`] only takes bytes out of the
//! queue. On the receive
//! side the engine holds at most one partial frame (≤ 67,584 bytes) and
//! the events of one read. When the link goes down the queue is dropped
//! and every waiter returns.
//!
//! The [`session`] layer hands received messages to unbounded channels:
//! memory there is bounded by how fast the application reads them.
//!
//! # Example
//!
//! A driver answering every transaction of the peer, and a peer that opens
//! one:
//!
//! ```
//! use dmsg::link::{Event, Link, LinkError};
//! use dmsg::runtime::{Conn, Driver, DriverConfig, Handler};
//! use dmsg::runtime::session::Session;
//! use dmsg::wire::{cmd, Message};
//! use std::os::unix::net::UnixStream;
//!
//! struct Answer;
//! impl Handler for Answer {
//!     fn event(&mut self, conn: &Conn, ev: Event) {
//!         if let Event::Message { msg, txn: Some(t) } = ev {
//!             if msg.hdr.cmd & cmd::CREATE != 0 && !t.tx_closed() {
//!                 let _ = conn.with_link(|l| l.reply(t.id, 0));
//!             }
//!         }
//!     }
//! }
//!
//! let (a, b) = UnixStream::pair().unwrap();
//! let (mut driver, conn) = Driver::new(a.into(), None, Link::default(), DriverConfig::default()).unwrap();
//! let server = std::thread::spawn(move || driver.run(&mut Answer));
//!
//! let client = Session::spawn(b).unwrap();
//! let txn = client.open(Message::new(cmd::LNK_PING | cmd::CREATE | cmd::DELETE)).unwrap();
//! let answer = txn.recv().unwrap();
//! assert_eq!(answer.hdr.cmd & cmd::DELETE, cmd::DELETE);
//! assert!(txn.recv().is_none(), "the transaction is over");
//!
//! conn.shutdown();
//! assert_eq!(server.join().unwrap(), LinkError::Shutdown);
//! assert_eq!(client.wait_down(), LinkError::Eof);
//! ```

mod answer_poll;
mod conn;
pub mod crypto;
mod driver;
pub mod session;
mod waitset;
mod wakeup;

pub use conn::{Conn, QueueFull};
pub use driver::{Driver, DriverConfig, Handler, MAX_IOV};
