//! The demo, the shell client, and the binaries end to end (`dmsgd` with
//! `dmsg tree` and `dmsg shell`, `dmsg demo`, `dmsg rsainit`). Every wait is
//! bounded; every spawned process is killed at the end.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod support;

use dmsg::service::{Node, NodeShell, ServeOptions};
use dmsg_tools::client::ShellClient;
use dmsg_tools::demo::{self, DemoConfig, Shape};
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::Daemon;

const WAIT: Duration = Duration::from_secs(30);

fn run_demo(nodes: usize, shape: Shape) -> (demo::DemoReport, String) {
    let cfg = DemoConfig {
        nodes,
        shape,
        trees: true,
        ..DemoConfig::default()
    };
    let mut out = Vec::new();
    let r = demo::run(&cfg, &mut out);
    let text = String::from_utf8(out).unwrap();
    (r.unwrap_or_else(|e| panic!("{e}\n{text}")), text)
}

#[test]
fn demo_line_cut_in_the_middle() {
    let (r, text) = run_demo(4, Shape::Line);
    assert_eq!((r.nodes, r.links, r.cut), (4, 3, (1, 2)));
    // Each side loses the other two nodes.
    assert_eq!(r.dels, 8);
    assert!(r.messages > 0);
    assert!(text.contains("--- node3 tree ---"), "{text}");
    assert!(text.contains("dist=3 via"), "node0 sees node3 at 3: {text}");
    assert!(text.contains("demo OK: 4 nodes, 3 links (line)"), "{text}");
}

#[test]
fn demo_ring_reroutes_without_losing_anyone() {
    let (r, text) = run_demo(5, Shape::Ring);
    assert_eq!((r.links, r.cut, r.dels), (5, (4, 0), 0));
    let node0 = text.lines().find(|l| l.starts_with("  node0:")).unwrap();
    assert!(node0.contains("node4: dist 1→4"), "{text}");
}

#[test]
fn demo_star_loses_one_leaf() {
    let (r, _) = run_demo(4, Shape::Star);
    assert_eq!((r.links, r.cut), (3, (0, 3)));
    // Three nodes lose node3, node3 loses three.
    assert_eq!(r.dels, 6);
}

#[test]
fn demo_refuses_bad_sizes() {
    let cfg = DemoConfig {
        nodes: 1,
        ..DemoConfig::default()
    };
    assert!(demo::run(&cfg, &mut Vec::new()).is_err());
}

#[test]
fn shell_client_runs_commands_on_a_node() {
    let node = Node::default();
    node.add_local_span(dmsg::sim::default_span(7));
    let (a, b) = UnixStream::pair().unwrap();
    let h = node
        .serve(a, ServeOptions::new("shell").shell(Arc::new(NodeShell)))
        .unwrap();
    let c = ShellClient::over(b).unwrap();
    assert_eq!(c.command("tree", WAIT).unwrap(), node.tree());
    assert!(c
        .command("help", WAIT)
        .unwrap()
        .contains("span <host[:port]>"));
    assert_eq!(
        c.command("circ", WAIT).unwrap(),
        "circ: missing msgid (circ <msgid>)\n"
    );
    c.close();
    assert!(matches!(
        h.join(),
        dmsg::link::LinkError::Eof | dmsg::link::LinkError::Io(_)
    ));
}

/// Waits for `child` at most [`WAIT`]; kills it if it overstays.
fn finish(mut child: Child) -> Output {
    let deadline = Instant::now() + WAIT;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("process did not finish in {WAIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn dmsg_cmd(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dmsg"));
    c.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

#[test]
fn dmsg_demo_binary_exits_zero() {
    let out = finish(
        dmsg_cmd(&["demo", "--nodes", "3", "--no-trees"])
            .spawn()
            .unwrap(),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("demo OK: 3 nodes, 2 links (line)"), "{text}");
    let bad = finish(dmsg_cmd(&["demo", "--topology", "blob"]).spawn().unwrap());
    assert!(!bad.status.success());
}

#[test]
fn dmsgd_answers_dmsg_tree_and_dmsg_shell() {
    let daemon = Daemon::start("testnode", &["--plaintext".as_ref()]);
    let (rx, addr) = (&daemon.log, daemon.addr.clone());

    let out = finish(dmsg_cmd(&["tree", &addr]).spawn().unwrap());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("Cluster HAMMER2 "), "{text}");
    assert!(text.contains("(testnode)"), "{text}");
    assert!(
        text.contains("\tSLink msgid 0000000000000000 dist=0 via -1"),
        "{text}"
    );

    let mut shell = dmsg_cmd(&["shell", &addr])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    shell
        .stdin
        .take()
        .unwrap()
        .write_all(b"help\ncirc\nbogus\n")
        .unwrap();
    let out = finish(shell);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        text.contains("tree                 the span tree"),
        "{text}"
    );
    assert!(text.contains("circ: missing msgid"), "{text}");
    assert!(text.contains("bogus: unknown command"), "{text}");
    assert_eq!(text.matches("dmsg> ").count(), 4, "{text}");

    // The daemon logged the links of both clients coming and going.
    let deadline = Instant::now() + WAIT;
    let mut downs = 0;
    while downs < 2 && Instant::now() < deadline {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(100)) {
            if l.contains(" down: from 127.0.0.1:") {
                downs += 1;
            }
        }
    }
    assert_eq!(downs, 2, "dmsgd logs a link down per client");
    drop(daemon);
}

#[test]
fn rsainit_writes_a_key_pair_once() {
    let dir = std::env::temp_dir().join(format!("dmsg-rsainit-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let d = dir.to_str().unwrap();
    let out = finish(dmsg_cmd(&["rsainit", d]).spawn().unwrap());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.join("rsa.prv").is_file() && dir.join("rsa.pub").is_file());
    // A second run refuses to overwrite.
    let again = finish(dmsg_cmd(&["rsainit", d]).spawn().unwrap());
    assert!(!again.status.success());
    let _ = std::fs::remove_dir_all(&dir);
}
