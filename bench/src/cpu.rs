//! `dmsg-bench-cpu`: the CPU time that one-way messages cost, per message,
//! over a Unix socketpair, summed over every thread of the process (the
//! sending user thread and both drivers, kernel time included).
//!
//! On a shared machine the rates of `dmsg-bench` swing with what else
//! runs; the CPU time per message moves much less, so it shows whether a
//! change removed work. The stream is the batched line of `dmsg-bench`:
//! fresh `DBG_SHELL` messages with `AUX` bytes of aux data cloned from a
//! template, as many per `Conn::with_link` as fill 256 KiB (at most 64),
//! counted by the receiving driver.
//!
//! ```text
//! cargo run --release -p dmsg-bench --bin dmsg-bench-cpu -- 0 30000000
//! cargo run --release -p dmsg-bench --bin dmsg-bench-cpu -- 65536 200000
//! ```
//!
//! Arguments: aux size (default 0), message count (default 10,000,000).
//! Linux only (reads `/proc/self/stat`, in ticks of 10 ms: run long enough).

mod common;

use common::{driver, send_batch, send_marker, Count, Quiet, Res};
use std::os::unix::net::UnixStream;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Clock ticks per second of `/proc/self/stat` (`USER_HZ`, 100 on Linux).
const TICKS: f64 = 100.0;

/// User and system CPU seconds of this process so far.
fn cpu_times() -> Res<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // Fields after the command name, which is in parentheses.
    let rest = stat.rsplit(')').next().ok_or("odd /proc/self/stat")?;
    let mut fields = rest.split_whitespace().skip(11);
    let mut next = || -> Res<f64> {
        let f = fields.next().ok_or("short /proc/self/stat")?;
        Ok(f.parse::<f64>()? / TICKS)
    };
    Ok((next()?, next()?))
}

fn main() -> Res<()> {
    let mut args = std::env::args().skip(1);
    let aux: usize = args.next().map_or(Ok(0), |s| s.parse())?;
    let count: u64 = args.next().map_or(Ok(10_000_000), |s| s.parse())?;
    let per_lock = (262_144 / (64 + aux.div_ceil(64) * 64)).clamp(1, 64);

    let (a, b) = UnixStream::pair()?;
    let (done_tx, done_rx) = mpsc::channel();
    let (rx_conn, rx_thread) = driver("rx-driver", b, Count::new(done_tx))?;
    let (tx_conn, tx_thread) = driver("tx-driver", a, Quiet)?;
    let template = vec![0xA5u8; aux];

    let before = cpu_times()?;
    let start = Instant::now();
    let mut sent = 0u64;
    while sent < count {
        send_batch(&tx_conn, &template, per_lock)?;
        sent += per_lock as u64;
    }
    send_marker(&tx_conn)?;
    let (n, _) = done_rx.recv_timeout(Duration::from_secs(300))?;
    let wall = start.elapsed().as_secs_f64();
    let after = cpu_times()?;

    let per = |secs: f64| secs * 1e9 / (n.max(1) as f64);
    let (user, sys) = (after.0 - before.0, after.1 - before.1);
    println!(
        "{aux} B aux, {per_lock} per lock: {n} messages in {wall:.2} s ({:.2} M msg/s); \
         CPU per message: user {:.0} ns, system {:.0} ns, total {:.0} ns",
        n as f64 / wall / 1e6,
        per(user),
        per(sys),
        per(user + sys)
    );
    tx_conn.shutdown();
    rx_conn.shutdown();
    tx_thread.join().map_err(|_| "driver panicked")?;
    rx_thread.join().map_err(|_| "driver panicked")?;
    Ok(())
}
