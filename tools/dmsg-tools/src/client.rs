//! The client side of the DBG shell (what `hammer2 shell` does): send
//! command lines, receive the text and the prompts.

use dmsg::link::{LinkError, SendError};
use dmsg::runtime::session::{Incoming, Session};
use dmsg::runtime::Conn;
use dmsg::service::{connect, shell_text};
use dmsg::wire::{cmd, Message};
use std::io;
use std::os::fd::OwnedFd;
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

/// What the node sent back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Shell output (a `DBG_SHELL|REPLY`).
    Text(String),
    /// The command is done: print the prompt (`LNK_ERROR|REPLY`, with its
    /// error code).
    Prompt(u32),
    /// The link went down.
    Closed(LinkError),
    /// Nothing came in time.
    Timeout,
}

/// Sends command lines on a [`ShellClient`]'s connection; `Send + Sync`.
#[derive(Clone, Debug)]
pub struct LineSender {
    conn: Conn,
}

impl LineSender {
    /// Sends one command line (a one-way `DBG_SHELL` with the text and a
    /// NUL).
    pub fn send_line(&self, line: &str) -> Result<(), SendError> {
        let mut m = Message::new(cmd::DBG_SHELL);
        m.aux = line.as_bytes().to_vec();
        m.aux.push(0);
        self.conn.with_link(|l| l.send_oneway(m))
    }
}

/// A shell connection to a node.
#[derive(Debug)]
pub struct ShellClient {
    session: Session,
}

impl ShellClient {
    /// Connects to `host` (`host`, `host:port`, `[v6]:port`; port 987 by
    /// default).
    pub fn connect(host: &str) -> io::Result<ShellClient> {
        ShellClient::over(connect(host)?)
    }

    /// A client over an already connected stream.
    pub fn over(stream: impl Into<OwnedFd>) -> io::Result<ShellClient> {
        Ok(ShellClient {
            session: Session::spawn(stream)?,
        })
    }

    /// Sends one command line (a one-way `DBG_SHELL` with the text and a
    /// NUL).
    pub fn send_line(&self, line: &str) -> Result<(), SendError> {
        self.sender().send_line(line)
    }

    /// A handle that sends lines from another thread.
    pub fn sender(&self) -> LineSender {
        LineSender {
            conn: self.session.conn().clone(),
        }
    }

    /// The next reply, waiting at most `timeout` (forever with `None`).
    /// The node's `LNK_CONN` is refused on the way (a shell client is not
    /// a cluster node); other traffic is skipped.
    pub fn next(&self, timeout: Option<Duration>) -> Reply {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let got = match deadline {
                None => self.session.recv().ok_or(RecvTimeoutError::Disconnected),
                Some(d) => self
                    .session
                    .recv_timeout(d.saturating_duration_since(Instant::now())),
            };
            match got {
                Ok(Incoming::OneWay(m)) => {
                    let base = m.hdr.cmd & cmd::BASECMDMASK;
                    let reply = m.hdr.cmd & cmd::REPLY != 0;
                    if base == cmd::DBG_SHELL && reply {
                        return Reply::Text(shell_text(&m));
                    }
                    if base == cmd::LNK_ERROR && reply {
                        return Reply::Prompt(m.hdr.error);
                    }
                }
                // Dropping the handle refuses the transaction.
                Ok(Incoming::Transaction { msg: _, txn }) => drop(txn),
                Ok(Incoming::Violation { .. }) => {}
                Err(RecvTimeoutError::Timeout) => return Reply::Timeout,
                Err(RecvTimeoutError::Disconnected) => {
                    return Reply::Closed(self.session.wait_down());
                }
            }
        }
    }

    /// Runs one command and returns its whole output (up to the prompt).
    pub fn command(&self, line: &str, timeout: Duration) -> Result<String, String> {
        self.send_line(line).map_err(|e| e.to_string())?;
        let deadline = Instant::now() + timeout;
        let mut text = String::new();
        loop {
            match self.next(Some(deadline.saturating_duration_since(Instant::now()))) {
                Reply::Text(t) => text.push_str(&t),
                Reply::Prompt(_) => return Ok(text),
                Reply::Closed(e) => return Err(format!("connection closed: {e}")),
                Reply::Timeout => return Err(format!("no answer within {timeout:?}")),
            }
        }
    }

    /// Closes the connection.
    pub fn close(self) {
        self.session.shutdown();
        self.session.wait_down();
    }
}
