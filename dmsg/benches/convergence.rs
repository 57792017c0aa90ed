//! Convergence and link-flap cost of the LNK layer on random meshes
//! (average degree 4): messages and time to converge; then one link flap
//! (down, reconverge, up, reconverge) against one full rescan of every
//! node × connection (what the C library does on every signal).
//!
//! Run: `cargo bench --bench convergence` (optional argument: the largest
//! node count, default 10000). Memory grows as nodes × span sources ×
//! degree, so meshes above 1,000 nodes advertise spans from 100 nodes only.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use dmsg::sim::{default_span, NodeSpec, Rng, Sim, SimConfig, Topology};
use std::time::Instant;

fn rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096 / (1024 * 1024))
}

fn scans(sim: &Sim) -> (u64, u64) {
    (0..sim.len())
        .filter_map(|i| sim.hub(i))
        .map(|h| (h.stats().scans, h.stats().c_scans))
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
}

fn run(n: usize, sources: usize) {
    let cfg = SimConfig {
        seed: 42,
        max_relays: 2,
    };
    let mut rng = Rng::new(7);
    let specs = (0..n)
        .map(|i| NodeSpec {
            rnss: (rng.next_u64() as u32) | 1,
            span: (i % (n / sources).max(1) == 0).then(|| default_span(i)),
        })
        .collect();
    let mut sim = Sim::with_nodes(specs, cfg);
    for (a, b) in (Topology::Random { n, degree: 4 }).edges(&mut rng) {
        sim.add_edge(a, b);
    }
    let t = Instant::now();
    let rounds = sim.run_until_idle(10_000).expect("converges");
    let conv = t.elapsed();
    let m0 = sim.stats().messages;
    let (s0, c0) = scans(&sim);
    println!(
        "n={n:>6} spans={sources:>5}  converge: {rounds:>3} rounds, {m0:>10} messages, {:>9.3} s, {s0:>11} scans (C: {c0}), rss {} MiB",
        conv.as_secs_f64(),
        rss_mib()
    );

    // One flap of a random link.
    let edges = sim.edges();
    let (e, a, b) = edges[rng.below(edges.len())];
    let t = Instant::now();
    sim.remove_edge(e);
    sim.run_until_idle(10_000).expect("converges after down");
    sim.add_edge(a, b);
    sim.run_until_idle(10_000).expect("converges after up");
    let flap = t.elapsed();
    let m1 = sim.stats().messages - m0;
    let (s1, c1) = scans(&sim);
    let (s1, c1) = (s1 - s0, c1 - c0);
    println!(
        "             flap:     {m1:>10} messages, {:>9.6} s, {s1:>11} scans; the C code's full rescans per signal: {c1} scans",
        flap.as_secs_f64()
    );

    // One full rescan of every node × connection: sends nothing (the
    // relays already agree) but does all the work the C code does per
    // signal; the C code runs it on every node for every batch of
    // messages of a flap.
    let t = Instant::now();
    sim.full_rescan();
    let full = t.elapsed();
    let s2 = scans(&sim).0 - s0 - s1;
    let per_scan = full.as_secs_f64() / s2.max(1) as f64;
    println!(
        "             one full rescan:  {:>21.6} s, {s2:>11} scans; the C flap's rescans alone ~ {:.3} s; ours / C's scans: {:.5}",
        full.as_secs_f64(),
        per_scan * c1 as f64,
        s1 as f64 / c1.max(1) as f64
    );
    assert_eq!(
        sim.stats().messages - m0 - m1,
        0,
        "a full rescan changes nothing"
    );
}

fn main() {
    let max: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(10_000);
    for n in [100, 1_000, 10_000] {
        if n > max {
            break;
        }
        let sources = if n <= 1_000 { n } else { 100 };
        run(n, sources);
    }
}
