//! `dmsg`: the client of dmsg nodes.
//!
//! ```text
//! dmsg shell HOST[:PORT]                          interactive DBG shell
//! dmsg tree HOST[:PORT]                           print a node's span tree
//! dmsg demo [--nodes N] [--topology line|ring|star]   local demo mesh
//! dmsg rsainit [DIR]                              generate rsa.prv/rsa.pub
//! ```
#![forbid(unsafe_code)]

use dmsg_tools::client::{Reply, ShellClient};
use dmsg_tools::demo::{self, DemoConfig};
use std::io::{self, BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const USAGE: &str = "\
usage: dmsg shell HOST[:PORT]
       dmsg tree HOST[:PORT]
       dmsg demo [--nodes N] [--topology line|ring|star] [--no-trees]
       dmsg rsainit [DIR]            (default DIR: /etc/hammer2)
HOST is a name, an IPv4 address or [IPv6]; PORT defaults to 987.";

const PROMPT: &str = "dmsg> ";

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("dmsg: {msg}");
    ExitCode::FAILURE
}

fn shell(host: &str) -> ExitCode {
    let client = match ShellClient::connect(host) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let sender = client.sender();
    // Commands sent and not yet answered by their prompt.
    let pending = Arc::new(AtomicUsize::new(0));
    let answered = Arc::clone(&pending);
    // Output thread: text as it comes, the prompt after each command.
    std::thread::spawn(move || loop {
        let reply = client.next(None);
        let mut out = io::stdout().lock();
        match reply {
            Reply::Text(t) => {
                let _ = write!(out, "{t}");
            }
            Reply::Prompt(e) => {
                if e != 0 {
                    let _ = writeln!(out, "(error {e:#x})");
                }
                let _ = write!(out, "{PROMPT}");
                let _ = answered.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                    Some(n.saturating_sub(1))
                });
            }
            Reply::Closed(e) => {
                let _ = writeln!(out, "\nconnection closed: {e}");
                let _ = out.flush();
                std::process::exit(0);
            }
            Reply::Timeout => {}
        }
        let _ = out.flush();
    });
    print!("{PROMPT}");
    let _ = io::stdout().flush();
    for line in io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        pending.fetch_add(1, Ordering::AcqRel);
        if let Err(e) = sender.send_line(line.trim_end()) {
            return fail(e);
        }
    }
    // End of input: let the last answers arrive (bounded), then leave.
    let deadline = Instant::now() + Duration::from_secs(10);
    while pending.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    println!();
    ExitCode::SUCCESS
}

fn tree(host: &str) -> ExitCode {
    let client = match ShellClient::connect(host) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    match client.command("tree", Duration::from_secs(10)) {
        Ok(text) => {
            print!("{text}");
            client.close();
            ExitCode::SUCCESS
        }
        Err(e) => fail(format!("{host}: {e}")),
    }
}

fn demo(args: &[String]) -> ExitCode {
    let mut cfg = DemoConfig::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--nodes" | "-n" => match it.next().map(|v| v.parse::<usize>()) {
                Some(Ok(n)) => cfg.nodes = n,
                _ => return fail("--nodes needs a number"),
            },
            "--topology" | "-t" => match it.next().map(|v| v.parse()) {
                Some(Ok(s)) => cfg.shape = s,
                Some(Err(e)) => return fail(e),
                None => return fail("--topology needs line, ring or star"),
            },
            "--no-trees" => cfg.trees = false,
            other => return fail(format!("demo: unknown argument {other:?}\n{USAGE}")),
        }
    }
    let mut out = io::stdout().lock();
    match demo::run(&cfg, &mut out) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = out.flush();
            fail(format!("demo FAILED: {e}"))
        }
    }
}

fn rsainit(dir: Option<&String>) -> ExitCode {
    let dir = dir.map_or_else(|| PathBuf::from("/etc/hammer2"), PathBuf::from);
    match dmsg::crypto::generate_keys(&dir) {
        Ok(()) => {
            println!(
                "wrote {} and {}",
                dir.join("rsa.prv").display(),
                dir.join("rsa.pub").display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (cmd, rest) = match args.split_first() {
        Some((c, r)) => (c.as_str(), r),
        None => return fail(USAGE),
    };
    match (cmd, rest) {
        ("shell", [host]) => shell(host),
        ("tree", [host]) => tree(host),
        ("demo", rest) => demo(rest),
        ("rsainit", []) => rsainit(None),
        ("rsainit", [dir]) => rsainit(Some(dir)),
        ("help" | "-h" | "--help", _) => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => fail(USAGE),
    }
}
