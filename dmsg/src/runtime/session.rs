//! A connection on its own thread, with transactions as handles.
//!
//! [`Session::spawn`] runs a [`Driver`] over a stream on a new thread. Then:
//!
//! - [`Session::open`] opens a transaction and returns a [`Transaction`]:
//!   [`Transaction::send`] sends inside it, [`Transaction::recv`] returns
//!   the peer's messages in order and `None` once the peer's direction is
//!   closed (the closing message itself is returned first), and
//!   [`Transaction::reply`] / [`Transaction::close`] close ours.
//! - What the peer starts arrives on [`Session::recv`] as an [`Incoming`]:
//!   a transaction (its first message and its handle), a one-way message,
//!   or a protocol violation the engine refused.
//! - When the link goes down, every open transaction gets its terminal
//!   ABORT|DELETE message (an `LNK_ERROR` carrying the `DMSG_IOQ_ERROR_*`
//!   code) exactly once, [`Session::recv`] returns `None` after the last
//!   incoming item, and [`Session::wait_down`] says why.
//!
//! Dropping a [`Transaction`] whose side is still open closes it with
//! ABORT|DELETE. Dropping the [`Session`] shuts the link down and joins its
//! thread.
//!
//! ```
//! use dmsg::runtime::session::{Incoming, Session};
//! use dmsg::wire::{cmd, Message};
//! use std::os::unix::net::UnixStream;
//!
//! let (a, b) = UnixStream::pair().unwrap();
//! let client = Session::spawn(a).unwrap();
//! let server = Session::spawn(b).unwrap();
//!
//! let mut req = Message::new(cmd::DBG_SHELL);
//! req.aux = b"help\0".to_vec();
//! let txn = client.open(req).unwrap();
//!
//! let Some(Incoming::Transaction { msg, txn: theirs }) = server.recv() else { panic!() };
//! assert_eq!(msg.aux, b"help\0");
//! let mut out = Message::new(cmd::DBG_SHELL);
//! out.aux = b"no help here\0".to_vec();
//! theirs.send(out).unwrap();
//! theirs.reply(0).unwrap();
//!
//! assert_eq!(txn.recv().unwrap().aux, b"no help here\0");
//! let last = txn.recv().unwrap();
//! assert_eq!(last.hdr.cmd & cmd::DELETE, cmd::DELETE);
//! txn.reply(0).unwrap();
//! assert!(txn.recv().is_none());
//! ```

use super::answer_poll::AnswerPoll;
use super::{Conn, Driver, DriverConfig, Handler};
use crate::link::{Event, Link, LinkConfig, LinkError, SendError};
use crate::state::{Origin, TxnId, TxnInfo, Violation};
use crate::wire::cmd::{self, ABORT, CREATE, DELETE, REPLY};
use crate::wire::{Header, Message};
use rustix::fd::OwnedFd;
use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::io;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Something the peer started, as [`Session::recv`] returns it.
#[derive(Debug)]
pub enum Incoming {
    /// The peer opened a transaction.
    Transaction {
        /// Its first message (with CREATE).
        msg: Message,
        /// The handle to answer it with.
        txn: Transaction,
    },
    /// A message outside any transaction.
    OneWay(Message),
    /// The peer broke the transaction rules (STATE.md §10 rows 4–8): the
    /// message was dropped; if it named an open transaction, that one was
    /// failed at both ends and its handle got the abort.
    Violation {
        /// What was wrong.
        violation: Violation,
        /// The header of the offending message.
        hdr: Header,
    },
}

/// What the session keeps per transaction: where its messages go, and what
/// the application attached to it.
struct Route {
    tx: Option<Sender<Message>>,
    data: Option<Box<dyn Any + Send>>,
}

struct Shared {
    routes: Mutex<HashMap<TxnId, Route>>,
    down: Mutex<Option<LinkError>>,
    down_cv: Condvar,
    /// How long [`Transaction::recv`] polls for the answer to one of our
    /// transactions before it blocks (see [`super::answer_poll`]).
    answer_poll: Mutex<AnswerPoll>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One connection run on its own thread. See the module documentation.
pub struct Session {
    conn: Conn,
    shared: Arc<Shared>,
    incoming: Receiver<Incoming>,
    thread: Option<JoinHandle<LinkError>>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("conn", &self.conn)
            .finish_non_exhaustive()
    }
}

/// One transaction, ours or the peer's. See the module documentation.
pub struct Transaction {
    id: TxnId,
    /// We opened it: what `recv` waits for is an answer.
    ours: bool,
    conn: Conn,
    /// In a mutex so that the handle is `Sync`: threads may share it.
    rx: Mutex<Receiver<Message>>,
    shared: Arc<Shared>,
}

impl fmt::Debug for Transaction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transaction")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Runs a link with default settings over `stream` (a `UnixStream`,
    /// `TcpStream`, or any connected stream fd) on a new thread.
    pub fn spawn(stream: impl Into<OwnedFd>) -> io::Result<Session> {
        Session::spawn_with(
            stream,
            Link::new(LinkConfig::default()),
            DriverConfig::default(),
        )
    }

    /// Like [`Session::spawn`], with a given link and driver settings.
    ///
    /// In a session the thread that waits for an answer is the one that
    /// polls for it: [`Transaction::recv`] on a transaction we opened,
    /// for an adaptive window of at most [`DriverConfig::answer_poll`].
    /// The session's driver itself does not poll (it hands the answer
    /// on to that thread, whose wakeup would dominate the round trip;
    /// polling in both measured slower on two cores).
    pub fn spawn_with(
        stream: impl Into<OwnedFd>,
        link: Link,
        cfg: DriverConfig,
    ) -> io::Result<Session> {
        let driver_cfg = DriverConfig {
            answer_poll: Duration::ZERO,
            ..cfg
        };
        let (mut driver, conn) = Driver::new(stream.into(), None, link, driver_cfg)?;
        let shared = Arc::new(Shared {
            routes: Mutex::new(HashMap::new()),
            down: Mutex::new(None),
            down_cv: Condvar::new(),
            answer_poll: Mutex::new(AnswerPoll::new(cfg.answer_poll)),
        });
        let (in_tx, incoming) = mpsc::channel();
        let mut handler = SessionHandler {
            shared: Arc::clone(&shared),
            incoming: in_tx,
        };
        let thread = std::thread::Builder::new()
            .name("dmsg-link".into())
            .spawn(move || driver.run(&mut handler))?;
        Ok(Session {
            conn,
            shared,
            incoming,
            thread: Some(thread),
        })
    }

    /// The low-level handle of the link.
    pub fn conn(&self) -> &Conn {
        &self.conn
    }

    /// Opens a transaction on circuit 0 with `msg` (CREATE is added; REPLY
    /// must not be set). Waits while the transmit queue is over its limit.
    pub fn open(&self, msg: Message) -> Result<Transaction, SendError> {
        self.open_with(msg, None)
    }

    /// Like [`Session::open`], attaching `data` to the transaction: it is
    /// dropped when the transaction ends (see [`Transaction::attach`]).
    pub fn open_with(
        &self,
        mut msg: Message,
        data: Option<Box<dyn Any + Send>>,
    ) -> Result<Transaction, SendError> {
        msg.hdr.cmd |= CREATE;
        let (tx, rx) = mpsc::channel();
        let id = self.conn.with_link(|l| {
            let id = l.open(0, msg)?;
            // Registered under the link lock: the driver cannot deliver the
            // peer's answer before the route exists.
            lock(&self.shared.routes).insert(id, Route { tx: Some(tx), data });
            Ok::<_, SendError>(id)
        })?;
        Ok(Transaction {
            id,
            ours: true,
            conn: self.conn.clone(),
            rx: Mutex::new(rx),
            shared: Arc::clone(&self.shared),
        })
    }

    /// Sends a message outside any transaction (CREATE and DELETE are
    /// stripped). Waits while the transmit queue is over its limit.
    pub fn send_oneway(&self, msg: Message) -> Result<(), SendError> {
        self.conn.with_link(|l| l.send_oneway(msg))
    }

    /// Answers a one-way message with a one-way `LNK_ERROR` carrying `error`.
    pub fn reply_oneway(&self, to: &Header, error: u32) -> Result<(), SendError> {
        self.conn.with_link(|l| l.reply_oneway(to, error))
    }

    /// The next thing the peer started; `None` once the link is down and
    /// everything before has been returned.
    pub fn recv(&self) -> Option<Incoming> {
        self.incoming.recv().ok()
    }

    /// Like [`Session::recv`], giving up after `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Incoming, RecvTimeoutError> {
        self.incoming.recv_timeout(timeout)
    }

    /// Like [`Session::recv`], without waiting.
    pub fn try_recv(&self) -> Result<Incoming, TryRecvError> {
        self.incoming.try_recv()
    }

    /// Asks the link to go down ([`LinkError::Shutdown`]); returns at once.
    pub fn shutdown(&self) {
        self.conn.shutdown();
    }

    /// Why the link went down, once it has (after every transaction was
    /// ended).
    pub fn down_reason(&self) -> Option<LinkError> {
        lock(&self.shared.down).clone()
    }

    /// Waits until the link is down and returns why.
    pub fn wait_down(&self) -> LinkError {
        let mut g = lock(&self.shared.down);
        loop {
            if let Some(e) = g.as_ref() {
                return e.clone();
            }
            g = self
                .shared
                .down_cv
                .wait(g)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Transactions the session still tracks (open, or waiting for one
    /// side to close). 0 after the link is down.
    pub fn live_transactions(&self) -> usize {
        lock(&self.shared.routes).len()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.conn.shutdown();
        if let Some(t) = self.thread.take() {
            drop(t.join());
        }
    }
}

impl Transaction {
    /// The engine's id of this transaction.
    pub fn id(&self) -> TxnId {
        self.id
    }

    /// Its state, while it lives.
    pub fn info(&self) -> Option<TxnInfo> {
        self.conn.with_link_nowait(|l| l.txn(self.id))
    }

    /// Sends `msg` inside the transaction (CREATE, REPLY, msgid and circuit
    /// are set by the engine; DELETE in `msg` closes our side). Waits while
    /// the transmit queue is over its limit.
    pub fn send(&self, msg: Message) -> Result<(), SendError> {
        self.conn.with_link(|l| l.send(self.id, msg))
    }

    /// Sends `msg` with DELETE: our side is closed.
    pub fn close(&self, mut msg: Message) -> Result<(), SendError> {
        msg.hdr.cmd |= DELETE;
        self.send(msg)
    }

    /// Closes our side with an `LNK_ERROR` carrying `error`
    /// (`dmsg_state_reply`). A second call fails with
    /// [`SendError::Closed`]: one DELETE at most reaches the wire.
    pub fn reply(&self, error: u32) -> Result<(), SendError> {
        self.conn.with_link(|l| l.reply(self.id, error))
    }

    /// Sends an `LNK_ERROR` carrying `error` without closing our side
    /// (`dmsg_state_result`).
    pub fn result(&self, error: u32) -> Result<(), SendError> {
        self.conn.with_link(|l| l.result(self.id, error))
    }

    /// The peer's next message; `None` once the peer's side is closed (its
    /// DELETE, or the abort of a failed transaction or link, is returned
    /// first).
    ///
    /// On a transaction we opened, the calling thread first polls for the
    /// message, yielding the CPU between polls, for a window that adapts
    /// to how fast answers come (at most the session's
    /// [`DriverConfig::answer_poll`]; see [`Session::spawn_with`]), then
    /// blocks.
    pub fn recv(&self) -> Option<Message> {
        let rx = lock(&self.rx);
        if !self.ours {
            return rx.recv().ok();
        }
        let t0 = Instant::now();
        let window = lock(&self.shared.answer_poll).window();
        let got = loop {
            match rx.try_recv() {
                Ok(m) => break Some(m),
                Err(TryRecvError::Disconnected) => return None,
                Err(TryRecvError::Empty) if t0.elapsed() < window => std::thread::yield_now(),
                Err(TryRecvError::Empty) => break rx.recv().ok(),
            }
        };
        if got.is_some() {
            lock(&self.shared.answer_poll).answered_after(t0.elapsed());
        }
        got
    }

    /// Like [`Transaction::recv`], giving up after `timeout`;
    /// [`RecvTimeoutError::Disconnected`] means the peer's side is closed.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Message, RecvTimeoutError> {
        lock(&self.rx).recv_timeout(timeout)
    }

    /// Like [`Transaction::recv`], without waiting.
    pub fn try_recv(&self) -> Result<Message, TryRecvError> {
        lock(&self.rx).try_recv()
    }

    /// Attaches `data` to the transaction, replacing what was attached. It
    /// lives as long as the transaction (not the handle): it is dropped when
    /// both sides have closed or the link goes down. Returns false (and
    /// drops `data`) if the transaction is over already.
    pub fn attach(&self, data: Box<dyn Any + Send>) -> bool {
        let old = {
            let mut routes = lock(&self.shared.routes);
            match routes.get_mut(&self.id) {
                Some(r) => Ok(r.data.replace(data)),
                None => Err(data),
            }
        };
        old.is_ok()
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        let id = self.id;
        self.conn.with_link_nowait(|l| {
            if l.txn(id).is_some_and(|t| !t.tx_closed()) {
                drop(l.send(id, Message::new(cmd::LNK_ERROR | ABORT | DELETE)));
            }
        });
    }
}

/// The driver callbacks of a session.
struct SessionHandler {
    shared: Arc<Shared>,
    incoming: Sender<Incoming>,
}

impl SessionHandler {
    fn message(&mut self, conn: &Conn, msg: Message, t: TxnInfo) {
        let mut routes = lock(&self.shared.routes);
        if let Some(route) = routes.get_mut(&t.id) {
            if let Some(tx) = &route.tx {
                drop(tx.send(msg));
            }
            if t.rx_closed() {
                route.tx = None;
            }
            return;
        }
        let opens = t.origin == Origin::Remote && msg.hdr.cmd & (CREATE | REPLY) == CREATE;
        if !opens {
            // A transaction opened through the raw `Conn`, not ours to
            // route.
            return;
        }
        let (tx, rx) = mpsc::channel();
        let tx = (!t.rx_closed()).then_some(tx);
        routes.insert(t.id, Route { tx, data: None });
        drop(routes);
        let txn = Transaction {
            id: t.id,
            ours: false,
            conn: conn.clone(),
            rx: Mutex::new(rx),
            shared: Arc::clone(&self.shared),
        };
        drop(self.incoming.send(Incoming::Transaction { msg, txn }));
    }
}

impl Handler for SessionHandler {
    fn event(&mut self, conn: &Conn, ev: Event) {
        match ev {
            Event::Message { msg, txn: Some(t) } => self.message(conn, msg, t),
            Event::Message { msg, txn: None } => {
                // The final one-way LNK_ERROR of a link loss is not the
                // peer's: Down reports it.
                let synthesized =
                    conn.is_down() && msg.hdr.cmd == cmd::LNK_ERROR && msg.hdr.msgid == 0;
                if !synthesized {
                    drop(self.incoming.send(Incoming::OneWay(msg)));
                }
            }
            Event::Closed(id) => {
                let gone = lock(&self.shared.routes).remove(&id);
                // The attached data is dropped here, outside the lock.
                drop(gone);
            }
            Event::Violation { violation, hdr } => {
                drop(self.incoming.send(Incoming::Violation { violation, hdr }));
            }
            Event::Relay { .. } | Event::RelayFrame(_) => {}
            Event::Down(e) => {
                let left: Vec<Route> = lock(&self.shared.routes).drain().map(|(_, r)| r).collect();
                drop(left);
                *lock(&self.shared.down) = Some(e);
                self.shared.down_cv.notify_all();
            }
        }
    }
}
