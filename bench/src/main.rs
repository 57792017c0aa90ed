//! `dmsg-bench`: end-to-end figures of dmsg over a Unix socketpair, each
//! printed with its ratio to a ceiling measured in the same run by plain
//! `write`/`read` of frames of the same size.
//!
//! Run with `cargo run --release -p dmsg-bench` (about 20 seconds).
//! `DMSG_BENCH_SECS` sets the length of each measurement (default 1.0).

mod common;

use common::{driver, named, send_batch, send_marker, Count, Quiet, Res};
use dmsg::link::{Event, Link};
use dmsg::runtime::session::Session;
use dmsg::runtime::{Conn, Driver, DriverConfig, Handler};
use dmsg::state::Origin;
use dmsg::wire::cmd::{self, CREATE, DELETE};
use dmsg::wire::Message;
use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;

use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Bytes per read, ours and the ceiling's.
const READ: usize = 256 << 10;

/// A measured rate.
#[derive(Clone, Copy, Debug)]
struct Rate {
    /// Operations (messages, frames, round trips) per second.
    ops: f64,
    /// Bytes on the wire per second.
    bytes: f64,
    /// Operations counted.
    n: u64,
}

impl Rate {
    fn new(ops: u64, bytes_each: usize, secs: f64) -> Rate {
        let secs = secs.max(1e-9);
        Rate {
            ops: ops as f64 / secs,
            bytes: (ops as f64) * (bytes_each as f64) / secs,
            n: ops,
        }
    }
}

fn wire_size(aux: usize) -> usize {
    64 + aux.div_ceil(64) * 64
}

// ----- ceilings ----------------------------------------------------------

/// Frames of `frame` bytes written back to back, many per `write`, read in
/// large chunks: the batched ceiling of a stream.
fn raw_stream(frame: usize, dur: Duration) -> Res<Rate> {
    let (mut a, mut b) = UnixStream::pair()?;
    let per_write = (READ / frame).max(1);
    let buf = vec![0x5Au8; frame * per_write];
    let start = Instant::now();
    let writer = named("raw-writer", move || -> std::io::Result<()> {
        while start.elapsed() < dur {
            a.write_all(&buf)?;
        }
        a.shutdown(Shutdown::Write)
    });
    let reader = named("raw-reader", move || -> std::io::Result<(u64, Instant)> {
        let mut rbuf = vec![0u8; READ];
        let mut total = 0u64;
        loop {
            let n = b.read(&mut rbuf)?;
            if n == 0 {
                return Ok((total, Instant::now()));
            }
            total += n as u64;
        }
    });
    let (total, end) = reader.join().map_err(|_| "reader panicked")??;
    let secs = end.duration_since(start).as_secs_f64();
    writer.join().map_err(|_| "writer panicked")??;
    Ok(Rate::new(total / frame as u64, frame, secs))
}

/// 64-byte frames bounced between two threads, one in flight.
fn raw_ping_pong(dur: Duration) -> Res<Rate> {
    let (mut a, mut b) = UnixStream::pair()?;
    let echo = named("raw-echo", move || -> std::io::Result<()> {
        let mut f = [0u8; 64];
        loop {
            if b.read_exact(&mut f).is_err() {
                return Ok(());
            }
            b.write_all(&f)?;
        }
    });
    let mut f = [7u8; 64];
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < dur {
        for _ in 0..64 {
            a.write_all(&f)?;
            a.read_exact(&mut f)?;
        }
        n += 64;
    }
    let secs = start.elapsed().as_secs_f64();
    a.shutdown(Shutdown::Both)?;
    echo.join().map_err(|_| "echo panicked")??;
    Ok(Rate::new(n, 64, secs))
}

/// The raw ping-pong as an event loop that also watches a wakeup fd runs
/// it: each side sleeps in `epoll_wait` on its socket and an eventfd, then
/// reads and answers. No dmsg code: what sleeping in a wait set instead of
/// a blocking `read` costs on this machine. Printed for reference, not a
/// ceiling.
fn raw_ping_pong_epoll(dur: Duration) -> Res<Rate> {
    use rustix::event::{epoll, eventfd, EventfdFlags};
    use rustix::net::{recv, send, RecvFlags, SendFlags};

    /// One side: sleep, read one frame, answer it; the initiator stops
    /// `until`, the echo at the end of the stream. Returns the frames read.
    fn side(s: &UnixStream, initiator: bool, until: Option<Instant>) -> std::io::Result<u64> {
        let wake = eventfd(0, EventfdFlags::NONBLOCK)?;
        let ep = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        epoll::add(&ep, s, epoll::EventData::new_u64(0), epoll::EventFlags::IN)?;
        epoll::add(
            &ep,
            &wake,
            epoll::EventData::new_u64(1),
            epoll::EventFlags::IN,
        )?;
        s.set_nonblocking(true)?;
        let mut f = [7u8; 64];
        let mut events = [epoll::Event {
            flags: epoll::EventFlags::empty(),
            data: epoll::EventData::new_u64(0),
        }; 2];
        let mut n = 0u64;
        if initiator {
            send(s, &f, SendFlags::NOSIGNAL)?;
        }
        loop {
            epoll::wait(&ep, &mut events[..], None)?;
            let got = match recv(s, &mut f, RecvFlags::empty()) {
                Ok((got, _)) => got,
                Err(rustix::io::Errno::AGAIN) => continue,
                Err(e) => return Err(e.into()),
            };
            if got == 0 {
                return Ok(n);
            }
            n += 1;
            if until.is_some_and(|t| Instant::now() >= t) {
                return Ok(n);
            }
            send(s, &f, SendFlags::NOSIGNAL)?;
        }
    }

    let (a, b) = UnixStream::pair()?;
    let echo = named("raw-epoll-echo", move || side(&b, false, None));
    let start = Instant::now();
    let n = side(&a, true, Some(start + dur))?;
    let secs = start.elapsed().as_secs_f64();
    a.shutdown(Shutdown::Both)?;
    echo.join().map_err(|_| "echo panicked")??;
    Ok(Rate::new(n, 64, secs))
}

// ----- ours ----------------------------------------------------------------

/// One-way messages of `aux` bytes sent from a user thread, `per_lock` per
/// call of `Conn::with_link`, counted by the receiving driver.
fn ours_stream(aux: usize, per_lock: usize, dur: Duration) -> Res<Rate> {
    let (a, b) = UnixStream::pair()?;
    let (done_tx, done_rx) = mpsc::channel();
    let (rx_conn, rx_thread) = driver("rx-driver", b, Count::new(done_tx))?;
    let (tx_conn, tx_thread) = driver("tx-driver", a, Quiet)?;
    let template = vec![0xA5u8; aux];
    let start = Instant::now();
    while start.elapsed() < dur {
        for _ in 0..(1024 / per_lock).max(1) {
            send_batch(&tx_conn, &template, per_lock)?;
        }
    }
    send_marker(&tx_conn)?;
    let (n, end) = done_rx.recv_timeout(Duration::from_secs(60))?;
    let secs = end.duration_since(start).as_secs_f64();
    tx_conn.shutdown();
    rx_conn.shutdown();
    tx_thread.join().map_err(|_| "driver panicked")?;
    rx_thread.join().map_err(|_| "driver panicked")?;
    Ok(Rate::new(n, wire_size(aux), secs))
}

/// Answers every transaction with a reply that closes it (the C model: the
/// receive callback answers on the I/O thread).
struct Responder;

impl Handler for Responder {
    fn event(&mut self, conn: &Conn, ev: Event) {
        if let Event::Message { msg, txn: Some(t) } = ev {
            if t.origin == Origin::Remote && msg.hdr.cmd & CREATE != 0 && !t.tx_closed() {
                let _ = conn.with_link(|l| l.reply(t.id, 0));
            }
        }
    }
}

/// Keeps `depth` single-message transactions in flight from the driver's
/// callbacks, counting the completed ones.
struct Initiator {
    depth: usize,
    done: u64,
    outstanding: usize,
    until: Instant,
    started: Option<Instant>,
    finished: Option<Instant>,
}

impl Initiator {
    fn open(&mut self, conn: &Conn) {
        let ok = conn.with_link(|l| {
            l.open(0, Message::new(cmd::LNK_PING | CREATE | DELETE))
                .is_ok()
        });
        if ok {
            self.outstanding += 1;
        }
    }
}

impl Handler for Initiator {
    fn signal(&mut self, conn: &Conn) {
        self.started = Some(Instant::now());
        for _ in 0..self.depth {
            self.open(conn);
        }
    }
    fn event(&mut self, conn: &Conn, ev: Event) {
        if let Event::Closed(_) = ev {
            self.done += 1;
            self.outstanding = self.outstanding.saturating_sub(1);
            if Instant::now() < self.until {
                self.open(conn);
            } else if self.outstanding == 0 && self.finished.is_none() {
                self.finished = Some(Instant::now());
            }
        }
    }
    fn should_stop(&mut self) -> bool {
        self.finished.is_some()
    }
}

/// Round trips driven from the driver's callbacks on both ends.
fn ours_round_trips(depth: usize, cfg: DriverConfig, dur: Duration) -> Res<Rate> {
    let (a, b) = UnixStream::pair()?;
    let (_srv_conn, srv) = driver("responder", b, Responder)?;
    let (mut d, conn) = Driver::new(a.into(), None, Link::default(), cfg)?;
    let mut init = Initiator {
        depth,
        done: 0,
        outstanding: 0,
        until: Instant::now() + dur,
        started: None,
        finished: None,
    };
    conn.signal();
    d.run(&mut init);
    drop(d); // closes our end: the responder sees EOF
    srv.join().map_err(|_| "driver panicked")?;
    let (Some(s), Some(e)) = (init.started, init.finished) else {
        return Err("round trips did not finish".into());
    };
    Ok(Rate::new(init.done, 64, e.duration_since(s).as_secs_f64()))
}

/// Round trips through the session API: a user thread opens a transaction
/// and waits on its channel for the reply. With `cfg`, the session runs
/// with those driver settings instead of those of `Session::spawn`.
fn session_round_trips(depth: usize, cfg: Option<DriverConfig>, dur: Duration) -> Res<Rate> {
    let (a, b) = UnixStream::pair()?;
    let (srv_conn, srv) = driver("responder", b, Responder)?;
    let client = match cfg {
        Some(cfg) => Session::spawn_with(a, Link::default(), cfg)?,
        None => Session::spawn(a)?,
    };
    let ping = || client.open(Message::new(cmd::LNK_PING | CREATE | DELETE));
    let mut inflight = VecDeque::new();
    for _ in 0..depth {
        inflight.push_back(ping()?);
    }
    let start = Instant::now();
    let mut n = 0u64;
    while let Some(t) = inflight.pop_front() {
        if t.recv().is_none() {
            return Err("no reply".into());
        }
        n += 1;
        if start.elapsed() < dur {
            inflight.push_back(ping()?);
        }
    }
    let secs = start.elapsed().as_secs_f64();
    srv_conn.shutdown();
    srv.join().map_err(|_| "driver panicked")?;
    Ok(Rate::new(n, 64, secs))
}

// ----- report --------------------------------------------------------------

fn line(what: &str, r: Rate, ceiling: Rate, unit: &str, target: Option<f64>) {
    line_with(what, r, ceiling, unit, target, "");
}

/// [`line`] followed by `note`.
fn line_with(what: &str, r: Rate, ceiling: Rate, unit: &str, target: Option<f64>, note: &str) {
    let ratio = r.ops / ceiling.ops;
    let verdict = match target {
        Some(t) if ratio >= t => format!("  (target {:.0}%: met)", t * 100.0),
        Some(t) => format!("  (target {:.0}%: NOT met)", t * 100.0),
        None => String::new(),
    };
    println!(
        "{what:<44} {:>12.0} {unit:<5} {:>9.1} MB/s   {:>5.1}% of ceiling{note}{verdict}",
        r.ops,
        r.bytes / 1e6,
        ratio * 100.0
    );
}

fn ceiling(what: &str, r: Rate, unit: &str) {
    ceiling_with(what, r, unit, "");
}

/// [`ceiling`] followed by `note`.
fn ceiling_with(what: &str, r: Rate, unit: &str, note: &str) {
    println!(
        "{what:<44} {:>12.0} {unit:<5} {:>9.1} MB/s   (ceiling){note}",
        r.ops,
        r.bytes / 1e6
    );
}

/// One figure to measure.
type Measure<'a> = dyn Fn() -> Res<Rate> + 'a;

/// Runs `f` and also returns the CPU time the whole process used per
/// operation it counted, in microseconds.
fn with_cpu(f: impl FnOnce() -> Res<Rate>) -> Res<(Rate, f64)> {
    use rustix::time::{clock_gettime, ClockId};
    let cpu = || {
        let t = clock_gettime(ClockId::ProcessCPUTime);
        t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
    };
    let c0 = cpu();
    let r = f()?;
    let per = (cpu() - c0) / (r.n.max(1) as f64);
    Ok((r, per * 1e6))
}

/// The CPU time per round trip, as the note of a line.
fn cpu_note(us: f64) -> String {
    format!("   CPU {us:5.1} µs/rt")
}

fn main() -> Res<()> {
    let secs: f64 = std::env::var("DMSG_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let dur = Duration::from_secs_f64(secs.clamp(0.05, 10.0));

    println!("dmsg-bench: Unix socketpair, {secs:.1} s per figure; ratios against ceilings of this run\n");
    println!(
        "One-way messages (sender thread -> Conn::with_link -> driver; receiving driver counts):"
    );
    // An optional argument picks one aux size (0, 4096, 65536) or "rt".
    let only = std::env::args().nth(1);
    let wanted = |what: &str| !matches!(only.as_deref(), Some(o) if o != what);
    for (aux, target) in [(0usize, Some(0.25)), (4096, None), (65536, Some(0.50))] {
        if !wanted(&aux.to_string()) {
            continue;
        }
        let frame = wire_size(aux);
        let raw = raw_stream(frame, dur)?;
        ceiling(
            &format!("  raw batched write/read, {frame}-byte frames"),
            raw,
            "fr/s",
        );
        // The target applies to batched sends, the API's way to send many
        // messages: as many per `Conn::with_link` as fill 256 KiB (at most
        // 64), as the ceiling writes 256 KiB per `write`.
        let batch = (READ / frame).clamp(1, 64);
        let ours = ours_stream(aux, 1, dur)?;
        line(
            &format!("  dmsg one-way, {aux} B aux, 1 per lock"),
            ours,
            raw,
            "msg/s",
            None,
        );
        let ours = ours_stream(aux, batch, dur)?;
        line(
            &format!("  dmsg one-way, {aux} B aux, {batch} per lock"),
            ours,
            raw,
            "msg/s",
            target,
        );
    }

    if !wanted("rt") {
        return Ok(());
    }
    println!(
        "\nTransaction round trips (LNK_PING CREATE|DELETE -> LNK_ERROR REPLY|CREATE|DELETE):"
    );
    // Each line also gives the CPU time of the whole process per round
    // trip (both sides; setup included, which is small).
    let (raw, cpu) = with_cpu(|| raw_ping_pong(dur))?;
    ceiling_with(
        "  raw ping-pong, 64-byte frames",
        raw,
        "rt/s",
        &cpu_note(cpu),
    );
    let polling = DriverConfig::default();
    let sleeping = DriverConfig {
        answer_poll: Duration::ZERO,
        ..DriverConfig::default()
    };
    let figures: [(&str, &Measure<'_>, Option<f64>); 7] = [
        (
            "  raw ping-pong, each side sleeping in epoll",
            &|| raw_ping_pong_epoll(dur),
            None,
        ),
        (
            "  dmsg, driver callbacks, 1 in flight",
            &|| ours_round_trips(1, polling, dur),
            Some(0.80),
        ),
        (
            "    the same without answer polling",
            &|| ours_round_trips(1, sleeping, dur),
            None,
        ),
        (
            "  dmsg, driver callbacks, 64 in flight",
            &|| ours_round_trips(64, polling, dur),
            None,
        ),
        (
            "  dmsg, Session API thread, 1 in flight",
            &|| session_round_trips(1, None, dur),
            None,
        ),
        (
            "    the same without answer polling",
            &|| session_round_trips(1, Some(sleeping), dur),
            None,
        ),
        (
            "  dmsg, Session API thread, 64 in flight",
            &|| session_round_trips(64, None, dur),
            None,
        ),
    ];
    for (what, f, target) in figures {
        let (r, cpu) = with_cpu(f)?;
        line_with(what, r, raw, "rt/s", target, &cpu_note(cpu));
    }
    Ok(())
}
