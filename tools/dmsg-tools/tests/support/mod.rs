//! Shared by the tests that run the `dmsgd` binary.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

/// How long a test waits for anything the daemon does.
pub const DAEMON_WAIT: Duration = Duration::from_secs(30);

/// A running `dmsgd`, killed when the test ends however it ends: its
/// stderr lines, and the address it listens on.
pub struct Daemon {
    child: Child,
    /// Every line the daemon writes to stderr, in order.
    pub log: Receiver<String>,
    /// Where it listens (`127.0.0.1:PORT`).
    pub addr: String,
}

impl Daemon {
    /// Starts `dmsgd --listen 127.0.0.1:0 --label LABEL ARGS...` and waits
    /// for it to say where it listens.
    pub fn start(label: &str, args: &[&OsStr]) -> Daemon {
        let mut child = Command::new(env!("CARGO_BIN_EXE_dmsgd"))
            .args(["--listen", "127.0.0.1:0", "--label", label])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, log) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut daemon = Daemon {
            child,
            log,
            addr: String::new(),
        };
        // Its own node ADD may come first, then the address.
        let prefix = format!("dmsgd: {label} listening on ");
        daemon.addr = loop {
            let line = daemon
                .log
                .recv_timeout(DAEMON_WAIT)
                .expect("dmsgd did not say where it listens");
            if let Some(a) = line.strip_prefix(&prefix) {
                break a.to_owned();
            }
        };
        daemon
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `f` until it holds, at most [`DAEMON_WAIT`].
pub fn wait_until(mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + DAEMON_WAIT;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}
