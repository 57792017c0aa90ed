//! Helpers of the crypto link tests: key directories with fresh keys, TCP
//! pairs on loopback, a recording (and bit-flipping) forwarding proxy.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use dmsg::crypto::generate_keys;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long any wait of these tests may take before it fails.
pub const WAIT: Duration = Duration::from_secs(20);

/// The peer address every loopback test link has.
pub const LOOPBACK: &str = "127.0.0.1";

/// Polls `f` every few milliseconds until it holds or [`WAIT`] passes.
pub fn wait_until(mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + WAIT;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A key directory with a fresh key pair, in a temporary directory.
pub struct Keys {
    pub tmp: tempfile::TempDir,
}

impl Keys {
    pub fn new() -> Keys {
        let tmp = tempfile::tempdir().unwrap();
        generate_keys(tmp.path()).unwrap();
        std::fs::create_dir_all(tmp.path().join("remote")).unwrap();
        Keys { tmp }
    }

    /// An empty key directory (no own keys, empty `remote/`).
    pub fn empty() -> Keys {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("remote")).unwrap();
        Keys { tmp }
    }

    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    pub fn dir(&self) -> dmsg::crypto::KeyDir {
        dmsg::crypto::KeyDir::new(self.path())
    }

    pub fn public_key(&self) -> PathBuf {
        self.path().join("rsa.pub")
    }

    /// Trusts `other`'s public key for peer `addr`.
    pub fn trust(&self, addr: &str, other: &Keys) {
        std::fs::copy(
            other.public_key(),
            self.path().join("remote").join(format!("{addr}.pub")),
        )
        .unwrap();
    }

    /// Marks peer `addr` plaintext (`remote/<addr>.none`).
    pub fn plaintext(&self, addr: &str) {
        std::fs::write(self.path().join("remote").join(format!("{addr}.none")), b"").unwrap();
    }
}

/// Two key directories that trust each other for 127.0.0.1.
pub fn trusting_pair() -> (Keys, Keys) {
    let (a, b) = (Keys::new(), Keys::new());
    a.trust(LOOPBACK, &b);
    b.trust(LOOPBACK, &a);
    (a, b)
}

/// A connected TCP pair on 127.0.0.1.
pub fn tcp_pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (s, _) = l.accept().unwrap();
    (c, s)
}

/// A forwarding proxy: accepts one connection on its own port, connects
/// to `target`, and copies both ways, recording the client-to-target
/// bytes. When `flip` is set, it flips one bit of the next client-to-target
/// bytes it forwards (then clears it).
pub struct Proxy {
    pub port: u16,
    pub recorded: Arc<Mutex<Vec<u8>>>,
    pub flip: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

fn copy(
    mut from: TcpStream,
    mut to: TcpStream,
    record: Option<Arc<Mutex<Vec<u8>>>>,
    flip: Option<Arc<AtomicBool>>,
) {
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let chunk = &mut buf[..n];
        if let Some(r) = &record {
            r.lock().unwrap().extend_from_slice(chunk);
        }
        if let Some(f) = &flip {
            if f.swap(false, Ordering::AcqRel) {
                chunk[n / 2] ^= 0x10;
            }
        }
        if to.write_all(chunk).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}

impl Proxy {
    pub fn start(target: u16) -> Proxy {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let recorded = Arc::new(Mutex::new(Vec::new()));
        let flip = Arc::new(AtomicBool::new(false));
        let (rec, fl) = (Arc::clone(&recorded), Arc::clone(&flip));
        let accept = std::thread::spawn(move || {
            let (client, _) = l.accept().unwrap();
            let server = TcpStream::connect(("127.0.0.1", target)).unwrap();
            let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            let up = std::thread::spawn(move || copy(client, server, Some(rec), Some(fl)));
            let down = std::thread::spawn(move || copy(s2, c2, None, None));
            let _ = up.join();
            let _ = down.join();
        });
        Proxy {
            port,
            recorded,
            flip,
            threads: vec![accept],
        }
    }

    /// The client-to-target bytes so far.
    pub fn recorded(&self) -> Vec<u8> {
        self.recorded.lock().unwrap().clone()
    }

    /// Waits for the copying threads (both sides have closed).
    pub fn join(self) {
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// Whether `needle` occurs in `hay`.
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}
