//! The master service (STATE.md §8.2): one connection served on a node.

use super::dbg::{self, Shell};
use super::{master_conn, Node};
use crate::crypto::{KeyDir, OsRandom, Session};
use crate::link::{Event, Link, LinkConfig, LinkError};
use crate::lnk::{CircuitId, Handled, LinkId};
use crate::runtime::crypto::{is_inet_socket, DEFAULT_HANDSHAKE_TIMEOUT};
use crate::runtime::{Conn, Driver, DriverConfig, Handler};
use crate::state::Origin;
use crate::wire::cmd::{self, CREATE};
use crate::wire::{err, FrameRef, LnkConn};
use rustix::fd::{AsRawFd, OwnedFd};
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Receives what neither the LNK layer nor the DBG protocol took (the C
/// library's `usrmsg_callback` / `dbgmsg_callback` for non-shell DBG):
/// messages of other protocols, transactions the peer opened for the
/// application, closed transactions the hub does not track, relayed
/// circuit traffic. Runs on the service thread with no lock held.
pub type MessageCallback = Box<dyn FnMut(&Conn, Event) + Send>;

/// Receives the text of a received `DBG_SHELL|REPLY` (up to its NUL).
pub type TextCallback = Box<dyn FnMut(&str) + Send>;

/// Called once when the service ends, after the socket is closed, with
/// why the link went down (the C library's `exit_callback`).
pub type ExitCallback = Box<dyn FnOnce(&LinkError) + Send>;

/// A negotiation step run on the socket on the service thread before the
/// driver starts. It may return a crypto [`Session`] (negotiated its own
/// way, e.g. with [`crate::runtime::crypto::negotiate_keys`] on a
/// socketpair), which the driver then encrypts with. An error ends the
/// service: the socket is closed and the exit callback gets the error.
/// For the usual key-directory negotiation use [`ServeOptions::keydir`].
pub type Negotiate = Box<dyn FnOnce(&OwnedFd) -> Result<Option<Session>, LinkError> + Send>;

/// How to serve one connection: [`Node::serve`] and [`Node::serve_here`].
///
/// Defaults: our `LNK_CONN` is [`master_conn`], no shell (a `DBG_SHELL`
/// line is answered with a short notice and the prompt), received shell
/// text goes to stderr, unclaimed transactions the peer opens are refused
/// with `DMSG_ERR_NOSUPP`, `via` is the socket's fd number.
pub struct ServeOptions {
    label: String,
    via: Option<i64>,
    lnk_conn: Option<LnkConn>,
    shell: Option<Arc<dyn Shell>>,
    on_message: Option<MessageCallback>,
    on_shell_reply: Option<TextCallback>,
    on_exit: Option<ExitCallback>,
    negotiate: Option<Negotiate>,
    keydir: Option<KeyDir>,
    handshake_timeout: Duration,
    driver: DriverConfig,
    link: LinkConfig,
}

impl fmt::Debug for ServeOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServeOptions")
            .field("label", &self.label)
            .field("via", &self.via)
            .field("lnk_conn", &self.lnk_conn.is_some())
            .field("shell", &self.shell.is_some())
            .field("on_message", &self.on_message.is_some())
            .field("on_shell_reply", &self.on_shell_reply.is_some())
            .field("on_exit", &self.on_exit.is_some())
            .field("negotiate", &self.negotiate.is_some())
            .field("keydir", &self.keydir)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("driver", &self.driver)
            .field("link", &self.link)
            .finish()
    }
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions::new("")
    }
}

impl ServeOptions {
    /// Defaults, with `label` naming the connection in events and logs.
    pub fn new(label: impl Into<String>) -> ServeOptions {
        ServeOptions {
            label: label.into(),
            via: None,
            lnk_conn: Some(master_conn()),
            shell: None,
            on_message: None,
            on_shell_reply: None,
            on_exit: None,
            negotiate: None,
            keydir: None,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            driver: DriverConfig::default(),
            link: LinkConfig::default(),
        }
    }

    /// The label of the connection.
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    /// The number the tree dump prints as `via` (default: the fd number).
    pub fn via(mut self, via: i64) -> Self {
        self.via = Some(via);
        self
    }

    /// The `LNK_CONN` opened on the link; `None` opens none (the peer's
    /// spans are then still received, but we relay nothing to it).
    pub fn lnk_conn(mut self, conn: Option<LnkConn>) -> Self {
        self.lnk_conn = conn;
        self
    }

    /// The shell that runs received `DBG_SHELL` lines.
    pub fn shell(mut self, shell: Arc<dyn Shell>) -> Self {
        self.shell = Some(shell);
        self
    }

    /// Where unclaimed traffic goes (see [`MessageCallback`]).
    pub fn on_message(mut self, f: impl FnMut(&Conn, Event) + Send + 'static) -> Self {
        self.on_message = Some(Box::new(f));
        self
    }

    /// Where received shell text goes (default: stderr).
    pub fn on_shell_reply(mut self, f: impl FnMut(&str) + Send + 'static) -> Self {
        self.on_shell_reply = Some(Box::new(f));
        self
    }

    /// Called once at the end (see [`ExitCallback`]).
    pub fn on_exit(mut self, f: impl FnOnce(&LinkError) + Send + 'static) -> Self {
        self.on_exit = Some(Box::new(f));
        self
    }

    /// A step run on the socket before the driver starts (see
    /// [`Negotiate`]).
    pub fn negotiate(
        mut self,
        f: impl FnOnce(&OwnedFd) -> Result<Option<Session>, LinkError> + Send + 'static,
    ) -> Self {
        self.negotiate = Some(Box::new(f));
        self
    }

    /// Negotiates crypto on TCP/IP sockets (`AF_INET`, `AF_INET6`) with the
    /// key files of `dir` before the driver starts, as the C library's
    /// `dmsg_crypto_negotiate` (see [`crate::runtime::crypto::negotiate`]):
    /// `remote/<peer>.pub` encrypts the link, `remote/<peer>.none` leaves
    /// it plaintext, anything else (no key for the peer, a missing own key,
    /// a failed or timed-out handshake) ends the service with
    /// [`LinkError::Crypto`], whose text names the file and the peer.
    /// Unix sockets are served plaintext. Skipped when a
    /// [`ServeOptions::negotiate`] step returned a session. Default: no
    /// crypto.
    pub fn keydir(mut self, dir: KeyDir) -> Self {
        self.keydir = Some(dir);
        self
    }

    /// How long the handshake may take (default
    /// [`DEFAULT_HANDSHAKE_TIMEOUT`], 10 s).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// The driver's settings.
    pub fn driver(mut self, cfg: DriverConfig) -> Self {
        self.driver = cfg;
        self
    }

    /// The link's settings.
    pub fn link_config(mut self, cfg: LinkConfig) -> Self {
        self.link = cfg;
        self
    }
}

/// Shared between a [`ServiceHandle`] and its service.
#[derive(Debug, Default)]
struct Ctl {
    conn: Mutex<Option<Conn>>,
    stop: AtomicBool,
}

impl Ctl {
    fn set_conn(&self, conn: &Conn) {
        let mut g = self
            .conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *g = Some(conn.clone());
        if self.stop.load(Ordering::Acquire) {
            conn.shutdown();
        }
    }

    fn conn(&self) -> Option<Conn> {
        self.conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn shutdown(&self) {
        self.stop.store(true, Ordering::Release);
        if let Some(c) = self.conn() {
            c.shutdown();
        }
    }
}

/// A connection served on its own thread by [`Node::serve`]. Dropping the
/// handle detaches the service (it runs on until its link goes down).
#[derive(Debug)]
pub struct ServiceHandle {
    link: LinkId,
    via: i64,
    ctl: Arc<Ctl>,
    thread: Option<JoinHandle<LinkError>>,
}

impl ServiceHandle {
    /// The link's id on the node.
    pub fn link(&self) -> LinkId {
        self.link
    }

    /// The link's `via` label in the tree dump.
    pub fn via(&self) -> i64 {
        self.via
    }

    /// The link's handle, once the driver exists (after the negotiation
    /// step).
    pub fn conn(&self) -> Option<Conn> {
        self.ctl.conn()
    }

    /// Takes the link down ([`LinkError::Shutdown`]); the service then
    /// ends as on any link loss.
    pub fn shutdown(&self) {
        self.ctl.shutdown();
    }

    /// True once the service thread has ended.
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Waits for the service thread to end; returns why the link went
    /// down.
    pub fn join(mut self) -> LinkError {
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(e)) => e,
            Some(Err(_)) => LinkError::Io("service thread panicked".into()),
            None => LinkError::Shutdown,
        }
    }
}

/// The [`Handler`] of a served link.
struct Service<'a> {
    node: &'a Node,
    link: LinkId,
    shell: Option<Arc<dyn Shell>>,
    on_message: Option<MessageCallback>,
    on_shell_reply: Option<TextCallback>,
    /// Relayed messages of the current batch, not yet handed to the node
    /// ([`Node::relay_batch`] at the end of the batch, or before any other
    /// event, so that the order of events is kept).
    relays: Vec<crate::wire::Message>,
}

impl Service<'_> {
    fn relay_pending(&mut self) {
        if !self.relays.is_empty() {
            self.node.relay_batch(self.link, self.relays.drain(..));
        }
    }

    fn not_mine(&mut self, conn: &Conn, ev: Event) {
        let Event::Message { msg, txn } = ev else {
            if let Some(cb) = self.on_message.as_mut() {
                cb(conn, ev);
            }
            return;
        };
        let circuit = txn.map_or(msg.hdr.circuit, |t| t.circuit);
        let (msg, txn) = if circuit == 0 {
            (msg, txn)
        } else {
            let c = CircuitId {
                link: self.link,
                id: circuit,
            };
            match self.node.to_circuit(c, msg, txn) {
                Some(back) => back,
                None => return,
            }
        };
        let base = txn.map_or(msg.hdr.cmd, |t| t.icmd);
        if base & cmd::PROTOS == cmd::PROTO_DBG {
            // Looked up only for DBG traffic (not per message of a stream).
            let node_shell = if circuit == 0 {
                None
            } else {
                self.node.shell()
            };
            let shell = node_shell.as_deref().or(self.shell.as_deref());
            let mut to_stderr = |text: &str| eprint!("{text}");
            let out: &mut dyn FnMut(&str) = match self.on_shell_reply.as_mut() {
                Some(cb) => cb.as_mut(),
                None => &mut to_stderr,
            };
            let ctx = dbg::ShellCtx::new(self.node, conn, self.link, msg.hdr.circuit);
            if dbg::msg_dbg(&ctx, &msg, txn.as_ref(), shell, out) {
                return;
            }
        }
        if circuit != 0 {
            if let Some(cb) = self.node.circuit_callback() {
                let c = CircuitId {
                    link: self.link,
                    id: circuit,
                };
                cb(conn, c, Event::Message { msg, txn });
                return;
            }
        }
        if let Some(cb) = self.on_message.as_mut() {
            cb(conn, Event::Message { msg, txn });
            return;
        }
        // Nobody serves it: refuse a transaction the peer opened, so that
        // it does not stay half open.
        if let Some(t) = txn {
            if t.origin == Origin::Remote && msg.hdr.cmd & CREATE != 0 && !t.tx_closed() {
                let _ = conn.with_link(|l| l.reply(t.id, err::NOSUPP));
            }
        }
    }
}

impl Handler for Service<'_> {
    fn event(&mut self, conn: &Conn, ev: Event) {
        let ev = match ev {
            // Relayed circuit traffic: by value, no hub bookkeeping to
            // signal; relayed at the end of the batch.
            Event::Relay { msg } => {
                self.relays.push(msg);
                return;
            }
            other => {
                self.relay_pending();
                other
            }
        };
        let down = matches!(ev, Event::Down(_));
        match self.node.dispatch(self.link, &ev) {
            Ok(Handled::NotMine) => self.not_mine(conn, ev),
            Ok(Handled::Done) | Err(_) => {}
        }
        if !down {
            // One relay selection per batch: the driver calls
            // Handler::signal before it next sleeps.
            conn.signal();
        }
    }

    fn batch_end(&mut self, _conn: &Conn) {
        self.relay_pending();
    }

    fn relays_in_place(&self) -> bool {
        true
    }

    fn relay_frames(&mut self, _conn: &Conn, frames: &[FrameRef<'_>]) {
        // Relayed messages that came before them go first.
        self.relay_pending();
        self.node.relay_frames(self.link, frames);
    }

    fn signal(&mut self, _conn: &Conn) {
        self.node.signal();
    }
}

impl Node {
    /// Serves `sock` (a connected stream: `TcpStream`, `UnixStream`, or any
    /// fd) on a new thread: the master service of STATE.md §8.2. The thread
    /// runs the negotiation step if any, registers the link with the hub
    /// (`via` = the fd number unless set), opens our `LNK_CONN`, then feeds
    /// every event of the link to the hub (the relay selection runs once
    /// per batch), hands DBG traffic to the shell and the rest to the
    /// message callback. When the link goes down its spans are withdrawn,
    /// the socket is closed (once), the exit callback runs and the thread
    /// ends.
    pub fn serve(&self, sock: impl Into<OwnedFd>, opts: ServeOptions) -> io::Result<ServiceHandle> {
        let sock: OwnedFd = sock.into();
        let link = self.new_link_id();
        let via = opts.via.unwrap_or_else(|| i64::from(sock.as_raw_fd()));
        let ctl = Arc::new(Ctl::default());
        let node = self.clone();
        let ctl2 = Arc::clone(&ctl);
        let name = format!("dmsg-service-{}", link.0);
        let thread = std::thread::Builder::new()
            .name(name)
            .spawn(move || node.run_service(link, via, sock, opts, &ctl2))?;
        Ok(ServiceHandle {
            link,
            via,
            ctl,
            thread: Some(thread),
        })
    }

    /// Serves `sock` on the caller's thread (the C library's
    /// `dmsg_master_service` run as a pthread entry); returns, after the
    /// exit callback, why the link went down. See [`Node::serve`].
    pub fn serve_here(&self, sock: impl Into<OwnedFd>, opts: ServeOptions) -> LinkError {
        let sock: OwnedFd = sock.into();
        let link = self.new_link_id();
        let via = opts.via.unwrap_or_else(|| i64::from(sock.as_raw_fd()));
        self.run_service(link, via, sock, opts, &Ctl::default())
    }

    fn run_service(
        &self,
        link: LinkId,
        via: i64,
        sock: OwnedFd,
        opts: ServeOptions,
        ctl: &Ctl,
    ) -> LinkError {
        let ServeOptions {
            label,
            lnk_conn,
            shell,
            on_message,
            on_shell_reply,
            on_exit,
            negotiate,
            keydir,
            handshake_timeout,
            driver,
            link: link_cfg,
            via: _,
        } = opts;
        let finish = |why: LinkError| {
            if let Some(cb) = on_exit {
                cb(&why);
            }
            why
        };
        let mut session = None;
        if let Some(step) = negotiate {
            match step(&sock) {
                Ok(s) => session = s,
                Err(why) => {
                    drop(sock);
                    return finish(why);
                }
            }
        }
        if let (None, Some(dir)) = (&session, &keydir) {
            if is_inet_socket(&sock) {
                match crate::runtime::crypto::negotiate(
                    &sock,
                    dir,
                    handshake_timeout,
                    &mut OsRandom,
                ) {
                    Ok(s) => session = s,
                    Err(e) => {
                        drop(sock);
                        return finish(e.to_link_error());
                    }
                }
            }
        }
        let (mut drv, conn) = match Driver::new(sock, None, Link::new(link_cfg), driver) {
            Ok(x) => x,
            // The socket was dropped (closed) by Driver::new.
            Err(e) => return finish(LinkError::Io(e.to_string())),
        };
        if let Some(s) = session {
            drv.set_session(s);
        }
        ctl.set_conn(&conn);
        // An error here means the link is already down: the driver reports
        // that as Event::Down, which removes the link again.
        let _ = self.attach(link, conn.clone(), via, &label, lnk_conn.as_ref());
        let mut service = Service {
            node: self,
            link,
            shell,
            on_message,
            on_shell_reply,
            relays: Vec::new(),
        };
        let why = drv.run(&mut service);
        drop(service);
        // Closes the socket: the driver owns it, so exactly once.
        drop(drv);
        self.forget(link, &why);
        finish(why)
    }
}
