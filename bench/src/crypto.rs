//! `dmsg-bench-crypto`: one-way throughput of an encrypted link against a
//! plaintext one, over TCP loopback, in the same run.
//!
//! Run with `cargo run --release -p dmsg-bench --bin dmsg-bench-crypto`.
//! `DMSG_BENCH_SECS` sets the length of each measurement (default 1.0);
//! an argument `4096` or `65536` runs one message size only.
//!
//! Both ends negotiate with `dmsg::runtime::crypto::negotiate` against one
//! temporary key directory holding a fresh key pair, whose public key is
//! also `remote/127.0.0.1.pub` (each end is the other's 127.0.0.1), so the
//! encrypted link runs the real handshake. A user thread sends `DBG_SHELL`
//! messages with 4 KiB or 64 KiB of aux data through `Conn::with_link`
//! (64 per call); the sending driver seals and writes them, the receiving
//! driver opens, decodes and counts them. The plaintext run is the same
//! with `remote/127.0.0.1.none`. Also printed: sealing and opening alone
//! (`ChunkSealer::seal`, `ChunkOpener::open` of 64 KiB buffers on one
//! thread), the bounds the link cannot beat.
//!
//! Wall-clock figures on a shared machine move with its load, so each line
//! also gives the CPU time it took: for sealing and opening alone, GB per
//! CPU-second of the thread; for the links, CPU-seconds of the whole
//! process (both drivers, the sending thread, system calls) per GB. Those
//! move much less with the load. With `c` CPU-seconds per GB and two idle
//! cores, the link cannot exceed `2 / c` GB/s.

mod common;

use common::{send_batch, send_marker, Count, Quiet, Res};
use dmsg::crypto::{generate_keys, ChunkOpener, ChunkSealer, KeyDir, OsRandom, SessionKey};
use dmsg::link::{Link, LinkError};
use dmsg::runtime::crypto::{negotiate, DEFAULT_HANDSHAKE_TIMEOUT};
use dmsg::runtime::{Conn, Driver, DriverConfig, Handler};
use rustix::time::{clock_gettime, ClockId};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// CPU time of `clock` so far, in seconds.
fn cpu_secs(clock: ClockId) -> f64 {
    let t = clock_gettime(clock);
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

/// Messages queued per `Conn::with_link` call.
const PER_LOCK: usize = 64;

/// A temporary key directory (removed on drop) whose own public key is
/// also trusted, or marked plaintext, for 127.0.0.1.
struct TempKeys(PathBuf);

impl TempKeys {
    fn new() -> Res<TempKeys> {
        let dir = std::env::temp_dir().join(format!("dmsg-bench-crypto-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        generate_keys(&dir)?;
        std::fs::create_dir_all(dir.join("remote"))?;
        Ok(TempKeys(dir))
    }

    fn path(&self) -> &Path {
        &self.0
    }

    /// Switches 127.0.0.1 to encrypted (`.pub`) or plaintext (`.none`).
    fn set_encrypted(&self, on: bool) -> Res<()> {
        let pub_path = self.0.join("remote/127.0.0.1.pub");
        let none_path = self.0.join("remote/127.0.0.1.none");
        let _ = std::fs::remove_file(&pub_path);
        let _ = std::fs::remove_file(&none_path);
        if on {
            std::fs::copy(self.0.join("rsa.pub"), pub_path)?;
        } else {
            std::fs::write(none_path, b"")?;
        }
        Ok(())
    }
}

impl Drop for TempKeys {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A negotiated driver over `sock`, running `h` on its own thread.
fn driver<H: Handler + Send + 'static>(
    sock: TcpStream,
    dir: &KeyDir,
    mut h: H,
    name: &str,
) -> Res<(Conn, thread::JoinHandle<LinkError>, bool)> {
    sock.set_nodelay(true)?;
    let session = negotiate(&sock, dir, DEFAULT_HANDSHAKE_TIMEOUT, &mut OsRandom)?;
    let encrypted = session.is_some();
    let (mut d, conn) = Driver::new(sock.into(), None, Link::default(), DriverConfig::default())?;
    if let Some(s) = session {
        d.set_session(s);
    }
    let t = thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || d.run(&mut h))?;
    Ok((conn, t, encrypted))
}

/// A throughput and the CPU time it took.
struct Rate {
    /// Bytes per second (wall clock).
    per_sec: f64,
    /// Bytes per CPU-second.
    per_cpu_sec: f64,
}

/// One-way messages of `aux` bytes over loopback TCP; returns wire bytes
/// per second (and per CPU-second of the process) and whether the link was
/// encrypted.
fn stream(keys: &TempKeys, aux: usize, dur: Duration) -> Res<(Rate, bool)> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    let addr = l.local_addr()?;
    let dir = KeyDir::new(keys.path());
    let dir2 = dir.clone();
    let client = thread::spawn(move || -> Result<_, String> {
        let s = TcpStream::connect(addr).map_err(|e| e.to_string())?;
        driver(s, &dir2, Quiet, "tx-driver").map_err(|e| e.to_string())
    });
    let (srv, _) = l.accept()?;
    let (done_tx, done_rx) = mpsc::channel();
    let (rx_conn, rx_thread, enc_rx) = driver(srv, &dir, Count::new(done_tx), "rx-driver")?;
    let (tx_conn, tx_thread, enc_tx) = client.join().map_err(|_| "client panicked")??;
    if enc_rx != enc_tx {
        return Err("the two ends disagree on encryption".into());
    }
    let template = vec![0xA5u8; aux];
    let cpu_start = cpu_secs(ClockId::ProcessCPUTime);
    let start = Instant::now();
    while start.elapsed() < dur {
        for _ in 0..16 {
            send_batch(&tx_conn, &template, PER_LOCK)?;
        }
    }
    send_marker(&tx_conn)?;
    let (n, end) = done_rx.recv_timeout(Duration::from_secs(60))?;
    let cpu = (cpu_secs(ClockId::ProcessCPUTime) - cpu_start).max(1e-9);
    let secs = end.duration_since(start).as_secs_f64().max(1e-9);
    tx_conn.shutdown();
    rx_conn.shutdown();
    tx_thread.join().map_err(|_| "driver panicked")?;
    rx_thread.join().map_err(|_| "driver panicked")?;
    let wire = 64 + aux.div_ceil(64) * 64;
    let bytes = n as f64 * wire as f64;
    Ok((
        Rate {
            per_sec: bytes / secs,
            per_cpu_sec: bytes / cpu,
        },
        enc_tx,
    ))
}

/// `ChunkSealer::seal` alone on 64 KiB buffers: plaintext bytes per second
/// (and per CPU-second of the thread).
fn seal_alone(dur: Duration) -> Rate {
    let mut sealer = ChunkSealer::new(&SessionKey::new([7u8; 32], [1u8; 4]));
    let plain = vec![0x5Au8; 64 << 10];
    let mut out = Vec::with_capacity(80 << 10);
    let cpu_start = cpu_secs(ClockId::ThreadCPUTime);
    let start = Instant::now();
    let mut bytes = 0u64;
    while start.elapsed() < dur {
        for _ in 0..64 {
            out.clear();
            let _ = sealer.seal(&plain, &mut out);
            bytes += plain.len() as u64;
        }
    }
    let secs = start.elapsed().as_secs_f64().max(1e-9);
    let cpu = (cpu_secs(ClockId::ThreadCPUTime) - cpu_start).max(1e-9);
    Rate {
        per_sec: bytes as f64 / secs,
        per_cpu_sec: bytes as f64 / cpu,
    }
}

/// `ChunkOpener::open` alone on 64 KiB of plaintext (80 KiB of wire
/// bytes): plaintext bytes per second (and per CPU-second of the thread).
fn open_alone(dur: Duration) -> Rate {
    let key = SessionKey::new([7u8; 32], [1u8; 4]);
    let plain = vec![0x5Au8; 64 << 10];
    let mut wire = Vec::new();
    let _ = ChunkSealer::new(&key).seal(&plain, &mut wire);
    let mut out = Vec::with_capacity(64 << 10);
    let cpu_start = cpu_secs(ClockId::ThreadCPUTime);
    let start = Instant::now();
    let mut bytes = 0u64;
    while start.elapsed() < dur {
        for _ in 0..64 {
            // Every opener starts at counter 0, as the sealer did.
            let mut opener = ChunkOpener::new(&key);
            out.clear();
            let _ = opener.open(&wire, &mut out);
            bytes += out.len() as u64;
        }
    }
    let secs = start.elapsed().as_secs_f64().max(1e-9);
    let cpu = (cpu_secs(ClockId::ThreadCPUTime) - cpu_start).max(1e-9);
    Rate {
        per_sec: bytes as f64 / secs,
        per_cpu_sec: bytes as f64 / cpu,
    }
}

fn main() -> Res<()> {
    let secs: f64 = std::env::var("DMSG_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let dur = Duration::from_secs_f64(secs);
    let sizes: Vec<usize> = match std::env::args().nth(1) {
        Some(a) => vec![a.parse()?],
        None => vec![4096, 65536],
    };
    let keys = TempKeys::new()?;
    println!("Encrypted vs plaintext one-way messages over TCP loopback (64 per lock):");
    let seal = seal_alone(dur);
    println!(
        "  sealing alone (ChunkSealer, 64 KiB buffers, one thread)   {:8.3} GB/s  ({:.3} GB per CPU-second)",
        seal.per_sec / 1e9,
        seal.per_cpu_sec / 1e9
    );
    let open = open_alone(dur);
    println!(
        "  opening alone (ChunkOpener, 64 KiB buffers, one thread)   {:8.3} GB/s  ({:.3} GB per CPU-second)",
        open.per_sec / 1e9,
        open.per_cpu_sec / 1e9
    );
    for aux in sizes {
        keys.set_encrypted(false)?;
        let (plain, enc) = stream(&keys, aux, dur)?;
        if enc {
            return Err("the plaintext run was encrypted".into());
        }
        keys.set_encrypted(true)?;
        let (crypt, enc) = stream(&keys, aux, dur)?;
        if !enc {
            return Err("the encrypted run was plaintext".into());
        }
        let target = if aux >= 65536 {
            if crypt.per_sec >= 1e9 {
                "  (target 1 GB/s: met)"
            } else {
                "  (target 1 GB/s: NOT met)"
            }
        } else {
            ""
        };
        println!(
            "  {aux:>6} B aux: plaintext {:7.3} GB/s, encrypted {:7.3} GB/s, ratio {:5.1}%{target}",
            plain.per_sec / 1e9,
            crypt.per_sec / 1e9,
            100.0 * crypt.per_sec / plain.per_sec.max(1.0)
        );
        println!(
            "  {aux:>6} B aux: CPU-seconds per GB (whole process): plaintext {:.3}, encrypted {:.3}",
            1e9 / plain.per_cpu_sec.max(1.0),
            1e9 / crypt.per_cpu_sec.max(1.0)
        );
    }
    Ok(())
}
