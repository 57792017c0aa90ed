//! Encrypted links between nodes over TCP loopback, with fresh RSA keys in
//! temporary key directories (`ServeOptions::keydir`): spans and
//! transactions cross an encrypted link whose bytes are not plaintext; a
//! flipped ciphertext bit closes only that link with `MACFAIL` (STATE.md
//! §10 row 18) while the node's other link lives on; `.none` gives a
//! plaintext link; a missing key fails the link with the file's name; a
//! silent peer times out; Unix sockets stay plaintext.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod crypto_link_support;

use crypto_link_support::*;
use dmsg::crypto::KeyDir;
use dmsg::link::LinkError;
use dmsg::lnk::HubConfig;
use dmsg::service::{connect, Node, NodeShell, ServeOptions, ServiceEvent};
use dmsg::wire::constants::{PEER_HAMMER2, PFSTYPE_SERVER};
use dmsg::wire::{cmd, ioq_error, Label, LnkSpan, Message, Uuid};
use std::collections::BTreeSet;
use std::net::TcpListener;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A HAMMER2 server span named `name`.
fn span(i: u8, name: &str) -> LnkSpan {
    LnkSpan {
        pfs_clid: Uuid([0x5e; 16]),
        pfs_fsid: Uuid([i; 16]),
        pfs_type: PFSTYPE_SERVER,
        peer_type: PEER_HAMMER2,
        proto_version: 1,
        fs_label: Label::truncated(name),
        ..LnkSpan::default()
    }
}

fn node(i: u8, name: &str) -> Node {
    let n = Node::new(HubConfig::new(u32::from(i) * 7 + 1));
    n.add_local_span(span(i, name));
    n
}

/// The fs_labels `n` sees.
fn seen(n: &Node) -> BTreeSet<String> {
    n.nodes()
        .into_iter()
        .map(|v| v.span.fs_label.as_str().unwrap_or("?").to_owned())
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

/// `n` listening on loopback, serving with `dir`, the shell, and the exit
/// reasons sent to the returned channel.
fn listen(
    n: &Node,
    dir: KeyDir,
) -> (
    dmsg::service::ListenerHandle,
    u16,
    mpsc::Receiver<LinkError>,
) {
    let (tx, rx) = mpsc::channel();
    let l = n
        .listen("127.0.0.1:0", move |peer| {
            let tx = tx.clone();
            ServeOptions::new(format!("from {peer}"))
                .keydir(dir.clone())
                .shell(Arc::new(NodeShell))
                .on_exit(move |why| {
                    let _ = tx.send(why.clone());
                })
        })
        .unwrap();
    let port = l.local_addr().port();
    (l, port, rx)
}

#[test]
fn encrypted_link_carries_spans_and_transactions_and_hides_them() {
    let (ka, kb) = trusting_pair();
    let a = node(1, "A-label-xyzzy");
    let b = node(2, "B-label-xyzzy");
    let (la, port, _exits) = listen(&a, ka.dir());
    let proxy = Proxy::start(port);
    let (shell_tx, shell_rx) = mpsc::channel();
    let hb = b
        .serve(
            connect(&format!("127.0.0.1:{}", proxy.port)).unwrap(),
            ServeOptions::new("to A")
                .keydir(kb.dir())
                .on_shell_reply(move |t| {
                    let _ = shell_tx.send(t.to_owned());
                }),
        )
        .unwrap();
    let both = set(&["A-label-xyzzy", "B-label-xyzzy"]);
    assert!(
        wait_until(|| seen(&a) == both && seen(&b) == both),
        "A sees {:?}, B sees {:?}",
        seen(&a),
        seen(&b)
    );
    // A DBG_SHELL line crosses the link and the tree comes back.
    let mut m = Message::new(cmd::DBG_SHELL);
    m.aux = b"tree\0".to_vec();
    hb.conn().unwrap().with_link(|l| l.send_oneway(m)).unwrap();
    let deadline = Instant::now() + WAIT;
    let mut text = String::new();
    while !text.contains("B-label-xyzzy") {
        let left = deadline.saturating_duration_since(Instant::now());
        text.push_str(&shell_rx.recv_timeout(left).expect("no tree from A"));
    }
    assert!(text.contains("A-label-xyzzy"), "{text}");

    // What B sent: the 512-byte handshake, then 80-byte chunks that do not
    // show the span label, the shell line or the message header magic.
    let wire = proxy.recorded();
    assert!(wire.len() > 512 + 80, "{} bytes", wire.len());
    assert!(!contains(&wire, b"B-label-xyzzy"));
    assert!(!contains(&wire, b"tree\0"));

    hb.shutdown();
    assert_eq!(hb.join(), LinkError::Shutdown);
    assert!(wait_until(|| a.links().is_empty()));
    la.stop();
    proxy.join();
}

#[test]
fn flipped_bit_closes_only_that_link_with_macfail() {
    // B and C share one key pair: A knows one key for 127.0.0.1.
    let (ka, kbc) = trusting_pair();
    let a = node(1, "A");
    let b = node(2, "B");
    let c = node(3, "C");
    let events = a.subscribe();
    let (la, port, exits) = listen(&a, ka.dir());
    let proxy = Proxy::start(port);
    let hb = b
        .serve(
            connect(&format!("127.0.0.1:{}", proxy.port)).unwrap(),
            ServeOptions::new("B to A").keydir(kbc.dir()),
        )
        .unwrap();
    let hc = c
        .serve(
            connect(&format!("127.0.0.1:{port}")).unwrap(),
            ServeOptions::new("C to A").keydir(kbc.dir()),
        )
        .unwrap();
    let all = set(&["A", "B", "C"]);
    assert!(
        wait_until(|| seen(&a) == all && seen(&b) == all && seen(&c) == all),
        "A sees {:?}",
        seen(&a)
    );

    // The proxy flips a bit of B's next bytes: a new span of B.
    proxy.flip.store(true, std::sync::atomic::Ordering::Release);
    b.add_local_span(span(4, "B2"));

    let why = exits.recv_timeout(WAIT).expect("A's link from B ends");
    match &why {
        LinkError::Crypto { code, reason } => {
            assert_eq!(*code, ioq_error::MACFAIL, "{reason}");
            assert!(reason.contains("tag"), "{reason}");
        }
        other => panic!("expected MACFAIL, got {other:?}"),
    }
    let down = events
        .iter()
        .find_map(|e| match e {
            ServiceEvent::LinkDown { reason, .. } => Some(reason),
            _ => None,
        })
        .unwrap();
    assert_eq!(down, why);
    // B sees its link end (A closed it).
    assert!(wait_until(|| hb.is_finished()));
    assert!(!matches!(hb.join(), LinkError::Shutdown));

    // A and C live on: B is gone, B2 never arrived, and a new span of C
    // still crosses the encrypted link C—A.
    assert!(wait_until(|| seen(&a) == set(&["A", "C"])));
    assert!(wait_until(|| seen(&c) == set(&["A", "C"])));
    c.add_local_span(span(5, "C2"));
    assert!(wait_until(|| seen(&a) == set(&["A", "C", "C2"])));
    assert_eq!(a.links().len(), 1);

    hc.shutdown();
    hc.join();
    la.stop();
    proxy.join();
}

#[test]
fn none_on_both_sides_is_a_plaintext_link() {
    let (ka, kb) = (Keys::empty(), Keys::empty());
    ka.plaintext(LOOPBACK);
    kb.plaintext(LOOPBACK);
    let a = node(1, "A-plain-label");
    let b = node(2, "B-plain-label");
    let (la, port, _exits) = listen(&a, ka.dir());
    let proxy = Proxy::start(port);
    let hb = b
        .serve(
            connect(&format!("127.0.0.1:{}", proxy.port)).unwrap(),
            ServeOptions::new("to A").keydir(kb.dir()),
        )
        .unwrap();
    let both = set(&["A-plain-label", "B-plain-label"]);
    assert!(wait_until(|| seen(&a) == both && seen(&b) == both));
    let wire = proxy.recorded();
    assert!(contains(&wire, b"B-plain-label"), "the link is plaintext");
    hb.shutdown();
    hb.join();
    la.stop();
    proxy.join();
}

#[test]
fn missing_key_file_fails_the_link_naming_file_and_peer() {
    // A has its own keys but no remote/127.0.0.1.{pub,none}; B trusts A.
    let (ka, kb) = (Keys::new(), Keys::new());
    kb.trust(LOOPBACK, &ka);
    let a = node(1, "A");
    let b = node(2, "B");
    let (la, port, exits) = listen(&a, ka.dir());
    let hb = b
        .serve(
            connect(&format!("127.0.0.1:{port}")).unwrap(),
            ServeOptions::new("to A").keydir(kb.dir()),
        )
        .unwrap();
    let why = exits.recv_timeout(WAIT).expect("A's service ends");
    match &why {
        LinkError::Crypto { code, reason } => {
            assert_eq!(*code, ioq_error::NORKEY);
            assert!(reason.contains("remote/127.0.0.1.pub"), "{reason}");
            assert!(reason.contains("peer 127.0.0.1"), "{reason}");
        }
        other => panic!("expected NORKEY, got {other:?}"),
    }
    // B's handshake sees A close: a key-exchange failure, no hang.
    match hb.join() {
        LinkError::Crypto { code, reason } => {
            assert_eq!(code, ioq_error::KEYXCHGFAIL, "{reason}");
            assert!(reason.contains("127.0.0.1"), "{reason}");
        }
        other => panic!("expected KEYXCHGFAIL, got {other:?}"),
    }
    assert!(a.links().is_empty() && b.links().is_empty());
    la.stop();
}

#[test]
fn silent_peer_times_out_without_hanging() {
    let (_ka, kb) = trusting_pair();
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let b = node(2, "B");
    let t0 = Instant::now();
    let hb = b
        .serve(
            connect(&format!("127.0.0.1:{port}")).unwrap(),
            ServeOptions::new("to silent")
                .keydir(kb.dir())
                .handshake_timeout(Duration::from_millis(300)),
        )
        .unwrap();
    let (_held, _) = silent.accept().unwrap();
    let why = hb.join();
    let took = t0.elapsed();
    match &why {
        LinkError::Crypto { code, reason } => {
            assert_eq!(*code, ioq_error::KEYXCHGFAIL);
            assert!(reason.contains("timed out"), "{reason}");
            assert!(reason.contains("peer 127.0.0.1"), "{reason}");
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[test]
fn unix_sockets_stay_plaintext_with_a_keydir() {
    let empty = Keys::empty();
    let a = node(1, "A");
    let b = node(2, "B");
    let (sa, sb) = std::os::unix::net::UnixStream::pair().unwrap();
    let ha = a
        .serve(sa, ServeOptions::new("a").keydir(empty.dir()))
        .unwrap();
    let hb = b
        .serve(sb, ServeOptions::new("b").keydir(empty.dir()))
        .unwrap();
    assert!(wait_until(|| seen(&a) == set(&["A", "B"])));
    ha.shutdown();
    ha.join();
    hb.join();
}
