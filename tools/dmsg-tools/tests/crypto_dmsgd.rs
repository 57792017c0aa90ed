//! `dmsgd --keydir DIR`: keys made with `dmsg rsainit DIR`, an encrypted
//! link to a node that trusts them, and a link from a peer without a key
//! file refused with a log line naming the file and the peer.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod support;

use dmsg::crypto::{generate_keys, KeyDir};
use dmsg::link::LinkError;
use dmsg::service::{connect, Node, ServeOptions};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use support::{wait_until, Daemon};

const WAIT: Duration = Duration::from_secs(20);

fn trust(dir: &Path, other: &Path) {
    std::fs::create_dir_all(dir.join("remote")).unwrap();
    std::fs::copy(other.join("rsa.pub"), dir.join("remote/127.0.0.1.pub")).unwrap();
}

#[test]
fn dmsgd_encrypts_with_its_keydir_and_names_a_missing_key() {
    let daemon_keys = tempfile::tempdir().unwrap();
    let node_keys = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_dmsg"))
        .arg("rsainit")
        .arg(daemon_keys.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    generate_keys(node_keys.path()).unwrap();
    trust(daemon_keys.path(), node_keys.path());
    trust(node_keys.path(), daemon_keys.path());

    let daemon = Daemon::start(
        "cnode",
        &["--keydir".as_ref(), daemon_keys.path().as_os_str()],
    );
    let (rx, addr) = (&daemon.log, daemon.addr.clone());

    // An encrypted link: the node sees dmsgd's span.
    let node = Node::default();
    let h = node
        .serve(
            connect(&addr).unwrap(),
            ServeOptions::new("to dmsgd").keydir(KeyDir::new(node_keys.path())),
        )
        .unwrap();
    let sees_cnode = || {
        node.nodes()
            .iter()
            .any(|v| v.span.fs_label.as_str() == Some("cnode"))
    };
    assert!(wait_until(sees_cnode), "the node sees dmsgd's span");
    h.shutdown();
    assert_eq!(h.join(), LinkError::Shutdown);

    // dmsgd loses the key of 127.0.0.1: the next link is refused, and the
    // log names the file and the peer.
    std::fs::remove_file(daemon_keys.path().join("remote/127.0.0.1.pub")).unwrap();
    let h = node
        .serve(
            connect(&addr).unwrap(),
            ServeOptions::new("to dmsgd").keydir(KeyDir::new(node_keys.path())),
        )
        .unwrap();
    assert!(matches!(h.join(), LinkError::Crypto { .. }));
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx.recv_timeout(left).expect("dmsgd logs the missing key");
        if line.contains("remote/127.0.0.1.pub") {
            assert!(line.contains("peer 127.0.0.1"), "{line}");
            break;
        }
    }
}
