//! What the benchmark binaries share: the one-way message counter that
//! ends a measurement at a marker message, and named driver threads.
//! Each binary includes it as a module and uses a part of it.
#![allow(dead_code)]

use dmsg::link::{Event, Link, LinkError, SendError};
use dmsg::runtime::{Conn, Driver, DriverConfig, Handler};
use dmsg::wire::{cmd, Message};
use std::os::unix::net::UnixStream;
use std::sync::mpsc;
use std::thread;
use std::time::Instant;

/// The error type of the benchmark binaries.
pub type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// Msgid of the one-way message that ends a measurement.
pub const MARKER: u64 = u64::MAX;

/// A handler that ignores everything.
pub struct Quiet;
impl Handler for Quiet {}

/// Counts one-way messages until the marker, then reports the count and
/// the time the marker arrived.
pub struct Count {
    /// Messages counted so far.
    pub n: u64,
    /// Where the count goes when the marker arrives.
    pub done: Option<mpsc::Sender<(u64, Instant)>>,
}

impl Count {
    /// A counter that reports to `done`.
    pub fn new(done: mpsc::Sender<(u64, Instant)>) -> Count {
        Count {
            n: 0,
            done: Some(done),
        }
    }
}

impl Handler for Count {
    fn event(&mut self, _: &Conn, ev: Event) {
        if let Event::Message { msg, txn: None } = ev {
            if msg.hdr.msgid == MARKER {
                if let Some(d) = self.done.take() {
                    let _ = d.send((self.n, Instant::now()));
                }
            } else {
                self.n += 1;
            }
        }
    }
}

/// Spawns a thread with a name (so that profiles tell the threads apart).
pub fn named<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> thread::JoinHandle<T> {
    thread::Builder::new()
        .name(name.to_string())
        .spawn(f)
        .unwrap_or_else(|e| panic!("cannot spawn a thread: {e}"))
}

/// A plain driver over `sock` running `h` on a thread called `name`.
pub fn driver<H: Handler + Send + 'static>(
    name: &str,
    sock: UnixStream,
    mut h: H,
) -> Res<(Conn, thread::JoinHandle<LinkError>)> {
    let (mut d, conn) = Driver::new(sock.into(), None, Link::default(), DriverConfig::default())?;
    Ok((conn, named(name, move || d.run(&mut h))))
}

/// Queues `per_lock` one-way `DBG_SHELL` messages in one call of
/// `Conn::with_link`, each with its own copy of `aux` (the user's cost of
/// producing the data).
pub fn send_batch(conn: &Conn, aux: &[u8], per_lock: usize) -> Res<()> {
    conn.with_link(|l| {
        for _ in 0..per_lock {
            let mut m = Message::new(cmd::DBG_SHELL);
            m.aux = aux.to_vec();
            l.send_oneway(m)?;
        }
        Ok::<_, SendError>(())
    })?;
    Ok(())
}

/// Queues the message that ends a measurement (see [`Count`]).
pub fn send_marker(conn: &Conn) -> Res<()> {
    let mut marker = Message::new(cmd::DBG_SHELL);
    marker.hdr.msgid = MARKER;
    conn.with_link(|l| l.send_oneway(marker))?;
    Ok(())
}
