//! `dmsg-bench-relay`: throughput of 4 KiB one-way messages on a virtual
//! circuit through 1 and 3 relay nodes, against a direct link (circuit 0),
//! all measured in the same run.
//!
//! Every node is a threaded [`Node`] and every link a Unix socketpair
//! served by [`Node::serve`] (one driver thread per link end), all in this
//! process. A sender thread on the first node queues the messages (16 per
//! lock of the link); the last node counts what arrives, in the node's
//! message callback (direct) or circuit callback (relayed). Each figure
//! is the count over a fixed window after a warm-up.
//!
//! Each figure also gives the CPU time of the whole process per message
//! over its window, and each round measures the same stream over raw
//! sockets (no framing, no engine: threads that only `read` and `write`
//! the frames' bytes). On a machine where every thread of the line shares
//! a few cores, a relay's throughput is its CPU cost: a hop that costs `h`
//! more per message than the direct path's `d` makes at most `d / (d + h)`
//! of direct. The raw relay thread's CPU per message is the least a hop
//! costs in userland (one `read` and one `write` of the bytes, which the
//! kernel copies), so `d / (d + raw hop)` is the best ratio this machine
//! allows; the benchmark prints it beside the measured one.
//!
//! Run with `cargo run --release -p dmsg-bench --bin dmsg-bench-relay`.
//! `DMSG_BENCH_SECS` sets the length of each window (default 1.0),
//! `DMSG_BENCH_ROUNDS` the number of rounds (default 3; each measures the
//! three cases one after the other, and the ratios' median is the verdict),
//! `DMSG_BENCH_ONLY` (`direct`, `1`, `3` or `raw`) measures one case alone
//! (to profile it).

use dmsg::link::Event;
use dmsg::lnk::HubConfig;
use dmsg::service::{Node, ServeOptions, ServiceHandle};
use dmsg::sim::default_span;
use dmsg::wire::{cmd, Message};
use rustix::time::{clock_gettime, ClockId};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// Aux bytes per message.
const AUX: usize = 4096;
/// Messages queued per lock of the sending link.
const BATCH: usize = 16;
/// Longest wait for the nodes to see each other or a circuit to come up.
const SETUP: Duration = Duration::from_secs(20);

/// A line of nodes joined by served socketpairs.
struct Line {
    nodes: Vec<Node>,
    hops: Vec<(ServiceHandle, ServiceHandle)>,
    /// Messages the last node received.
    got: Arc<AtomicU64>,
}

fn line(n: usize) -> Res<Line> {
    let got = Arc::new(AtomicU64::new(0));
    let mut nodes = Vec::new();
    for i in 0..n {
        let node = Node::new(HubConfig::new(u32::try_from(i)? * 7 + 1));
        node.add_local_span(default_span(i));
        nodes.push(node);
    }
    let last = n - 1;
    if let Some(sink) = nodes.get(last) {
        let g = Arc::clone(&got);
        sink.on_circuit_message(move |_, _, ev| {
            if let Event::Message { .. } = ev {
                g.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    let mut hops = Vec::new();
    for (i, pair) in nodes.windows(2).enumerate() {
        let [l, r] = pair else { continue };
        let (sl, sr) = UnixStream::pair()?;
        let hl = l.serve(sl, ServeOptions::new(format!("{i}>")))?;
        let mut opts = ServeOptions::new(format!("<{i}"));
        if i + 1 == last {
            let g = Arc::clone(&got);
            opts = opts.on_message(move |_, ev| {
                if let Event::Message { .. } = ev {
                    g.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        let hr = r.serve(sr, opts)?;
        hops.push((hl, hr));
    }
    let deadline = Instant::now() + SETUP;
    while nodes.iter().any(|x| x.nodes().len() < n) {
        if Instant::now() > deadline {
            return Err("the nodes did not converge".into());
        }
        thread::sleep(Duration::from_millis(2));
    }
    Ok(Line { nodes, hops, got })
}

impl Line {
    fn stop(self) {
        for (l, r) in self.hops {
            l.shutdown();
            l.join();
            r.join();
        }
    }
}

/// A measured rate of 4 KiB messages.
#[derive(Clone, Copy, Debug, Default)]
struct Rate {
    msgs: f64,
    /// CPU time of the process per message, in µs.
    cpu_us: f64,
}

impl Rate {
    fn mb(self) -> f64 {
        self.msgs * AUX as f64 / 1e6
    }
}

/// Streams messages from the first node to the last through `relays`
/// relay nodes (0: directly on circuit 0 of the link) and measures what
/// arrives over `window` after a warm-up of a fifth of it.
fn measure(relays: usize, window: Duration) -> Res<Rate> {
    let l = line(relays + 2)?;
    let first = l.nodes.first().ok_or("no nodes")?.clone();
    let (conn, circuit, handle) = if relays == 0 {
        let link = first.links().first().map(|x| x.0).ok_or("no link")?;
        (first.conn(link).ok_or("no conn")?, 0, None)
    } else {
        let far = default_span(relays + 1);
        let id = first
            .nodes()
            .into_iter()
            .find(|v| v.span.pfs_fsid == far.pfs_fsid)
            .map(|v| v.id)
            .ok_or("the far node is not seen")?;
        let c = first.open_circuit(id)?;
        let deadline = Instant::now() + SETUP;
        while !c.view().is_some_and(|v| v.acked) {
            if Instant::now() > deadline {
                return Err("the circuit did not come up".into());
            }
            thread::sleep(Duration::from_millis(2));
        }
        (c.conn().clone(), c.id().id, Some(c))
    };
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = Arc::clone(&stop);
    let sender = thread::Builder::new()
        .name("relay-sender".into())
        .spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                let r = conn.with_link(|lk| {
                    for _ in 0..BATCH {
                        let mut m = Message::new(cmd::BLK_WRITE);
                        m.hdr.circuit = circuit;
                        m.aux = vec![0x5a; AUX];
                        lk.send_oneway(m)?;
                    }
                    Ok::<_, dmsg::link::SendError>(())
                });
                if r.is_err() {
                    return;
                }
            }
        })?;
    let rate = count(&l.got, window);
    stop.store(true, Ordering::Relaxed);
    let _ = sender.join();
    drop(handle);
    l.stop();
    Ok(rate)
}

/// CPU seconds of `clock`.
fn cpu_secs(clock: ClockId) -> f64 {
    let t = clock_gettime(clock);
    t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
}

/// Counts what `got` gains over `window`, after a warm-up of a fifth of
/// it, with the process's CPU time over the same window.
fn count(got: &AtomicU64, window: Duration) -> Rate {
    thread::sleep(window / 5);
    let (n0, t0, c0) = (
        got.load(Ordering::Relaxed),
        Instant::now(),
        cpu_secs(ClockId::ProcessCPUTime),
    );
    thread::sleep(window);
    let (n1, t1, c1) = (
        got.load(Ordering::Relaxed),
        Instant::now(),
        cpu_secs(ClockId::ProcessCPUTime),
    );
    let n = n1.saturating_sub(n0).max(1) as f64;
    Rate {
        msgs: n / t1.duration_since(t0).as_secs_f64().max(1e-9),
        cpu_us: (c1 - c0) * 1e6 / n,
    }
}

/// Bytes of one frame of the stream: a header and 4 KiB of aux.
const FRAME: usize = 64 + AUX;

/// The raw line of one measurement of [`raw`].
struct Raw {
    direct: Rate,
    relayed: Rate,
    /// CPU time of the raw relay thread per message, in µs.
    hop_us: f64,
}

/// The same stream as [`measure`] over raw sockets: a thread writes
/// `BATCH` frames' worth of bytes per `write`, each relay thread reads up
/// to 256 KiB (the drivers' read buffer) and writes what it read to the
/// next socket, the last thread reads and counts. Measures the line
/// without a relay and with one, and the relay thread's own CPU time.
fn raw(window: Duration) -> Res<Raw> {
    let direct = raw_line(false, window)?.0;
    let (relayed, hop_us) = raw_line(true, window)?;
    Ok(Raw {
        direct,
        relayed,
        hop_us,
    })
}

fn raw_line(relay: bool, window: Duration) -> Res<(Rate, f64)> {
    let (mut w, r) = UnixStream::pair()?;
    let mut threads = Vec::new();
    let hop = Arc::new(AtomicU64::new(0));
    let mut end = r;
    if relay {
        let (w2, r2) = UnixStream::pair()?;
        let (mut from, mut to) = (end, w2);
        let hop = Arc::clone(&hop);
        threads.push(thread::spawn(move || {
            let mut buf = vec![0u8; 256 << 10];
            let (mut bytes, c0) = (0u64, cpu_secs(ClockId::ThreadCPUTime));
            while let Ok(n @ 1..) = from.read(&mut buf) {
                let Some(data) = buf.get(..n) else { break };
                if to.write_all(data).is_err() {
                    break;
                }
                bytes += n as u64;
            }
            let us = (cpu_secs(ClockId::ThreadCPUTime) - c0) * 1e6;
            let per = us / (bytes as f64 / FRAME as f64).max(1.0);
            hop.store(per.to_bits(), Ordering::Relaxed);
        }));
        end = r2;
    }
    let got = Arc::new(AtomicU64::new(0));
    let g = Arc::clone(&got);
    threads.push(thread::spawn(move || {
        let mut buf = vec![0u8; 256 << 10];
        let mut bytes = 0u64;
        while let Ok(n @ 1..) = end.read(&mut buf) {
            bytes += n as u64;
            g.store(bytes / FRAME as u64, Ordering::Relaxed);
        }
    }));
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = Arc::clone(&stop);
    let sender = thread::spawn(move || {
        let batch = vec![0x5au8; FRAME * BATCH];
        while !stop2.load(Ordering::Relaxed) {
            if w.write_all(&batch).is_err() {
                return;
            }
        }
    });
    let rate = count(&got, window);
    stop.store(true, Ordering::Relaxed);
    sender.join().map_err(|_| "raw sender panicked")?;
    for t in threads {
        t.join().map_err(|_| "raw thread panicked")?;
    }
    Ok((rate, f64::from_bits(hop.load(Ordering::Relaxed))))
}

/// The middle value (the upper one of an even count).
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn main() -> Res<()> {
    let env = |name: &str| std::env::var(name).ok();
    let secs: f64 = env("DMSG_BENCH_SECS")
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let rounds: usize = env("DMSG_BENCH_ROUNDS")
        .and_then(|s| s.parse().ok())
        .unwrap_or(3)
        .clamp(1, 20);
    let window = Duration::from_secs_f64(secs.clamp(0.05, 10.0));
    println!(
        "dmsg-bench-relay: {AUX} B one-way messages, {BATCH} per lock, threaded nodes over Unix socketpairs, {secs:.1} s per figure, {rounds} rounds\n"
    );
    // The direct figure swings with where the scheduler puts its three
    // threads far more than the relayed ones: each round measures all
    // three cases one after the other, and the verdict is on the median
    // of the rounds' ratios.
    let only = env("DMSG_BENCH_ONLY");
    let run = |case: &str| only.as_deref().is_none_or(|o| o == case);
    let (mut one, mut three, mut best) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=rounds {
        let direct = if run("direct") {
            measure(0, window)?
        } else {
            Rate::default()
        };
        let r1 = if run("1") {
            measure(1, window)?
        } else {
            Rate::default()
        };
        let r3 = if run("3") {
            measure(3, window)?
        } else {
            Rate::default()
        };
        let raw = if run("raw") { Some(raw(window)?) } else { None };
        if only.is_some() {
            // One case alone: its figures, no ratio.
            for (name, rate) in [("direct", direct), ("1 relay", r1), ("3 relays", r3)] {
                if rate.msgs > 0.0 {
                    println!(
                        "  round {round}: {name} {:>8.0} msg/s, CPU per message {:.2} µs",
                        rate.msgs, rate.cpu_us
                    );
                }
            }
            if let Some(raw) = raw {
                println!(
                    "  round {round}: raw sockets: direct {:>8.0} msg/s {:.2} µs, 1 relay {:>8.0} msg/s {:.2} µs; the raw hop's thread {:.2} µs",
                    raw.direct.msgs, raw.direct.cpu_us, raw.relayed.msgs, raw.relayed.cpu_us, raw.hop_us
                );
            }
            continue;
        }
        let base = direct.msgs.max(1e-9);
        one.push(r1.msgs / base);
        three.push(r3.msgs / base);
        println!(
            "  round {round}: direct A-B (circuit 0) {:>8.0} msg/s {:>7.1} MB/s | 1 relay {:>8.0} msg/s {:>5.1}% | 3 relays {:>8.0} msg/s {:>5.1}%",
            direct.msgs,
            direct.mb(),
            r1.msgs,
            r1.msgs / base * 100.0,
            r3.msgs,
            r3.msgs / base * 100.0
        );
        println!(
            "           CPU per message: direct {:.2} µs, 1 relay {:.2} µs (the hop {:+.2} µs), 3 relays {:.2} µs",
            direct.cpu_us,
            r1.cpu_us,
            r1.cpu_us - direct.cpu_us,
            r3.cpu_us
        );
        if let Some(raw) = raw {
            let ceiling = direct.cpu_us / (direct.cpu_us + raw.hop_us).max(1e-9);
            best.push(ceiling);
            println!(
                "           raw sockets: direct {:>8.0} msg/s {:.2} µs, 1 relay {:>8.0} msg/s {:.2} µs ({:.1}%); the raw hop's thread {:.2} µs: best ratio here {:.1}%",
                raw.direct.msgs,
                raw.direct.cpu_us,
                raw.relayed.msgs,
                raw.relayed.cpu_us,
                raw.relayed.msgs / raw.direct.msgs.max(1e-9) * 100.0,
                raw.hop_us,
                ceiling * 100.0
            );
        }
    }
    if only.is_some() {
        return Ok(());
    }
    let (m1, m3) = (median(one), median(three));
    let verdict = if m1 >= 0.80 { "met" } else { "NOT met" };
    println!(
        "\n  median of {rounds} rounds: circuit through 1 relay {:.1}% of direct (target >= 80%: {verdict}), through 3 relays {:.1}%",
        m1 * 100.0,
        m3 * 100.0
    );
    if !best.is_empty() {
        println!(
            "  best ratio that a relay hop costing only its raw read and write allows (median): {:.1}%",
            median(best) * 100.0
        );
    }
    Ok(())
}
