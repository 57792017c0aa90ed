//! `dmsgd` runs the volconf workers: a `span:` copy announced by a
//! HAMMER2-like peer with `LNK_VOLCONF` is connected once its listener
//! comes up.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod support;

use dmsg::runtime::session::Session;
use dmsg::service::{connect, master_conn, Node, ServeOptions};
use dmsg::wire::{Label, LnkConn, LnkSpan, LnkVolconf, Message, Uuid, VolData};
use std::net::TcpListener;
use std::time::{Duration, Instant};
use support::{wait_until, Daemon};

const WAIT: Duration = Duration::from_secs(20);

#[test]
fn dmsgd_connects_a_span_copy_when_its_listener_comes_up() {
    let daemon = Daemon::start("vnode", &["--plaintext".as_ref()]);
    let (rx, addr) = (&daemon.log, daemon.addr.clone());

    // A port nobody listens on yet.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();

    // The "kernel": LNK_CONN, then LNK_VOLCONF inside it.
    let kernel = Session::spawn(connect(&addr).unwrap()).unwrap();
    let lnk = LnkConn {
        mediaid: Uuid([0x4e; 16]),
        ..master_conn()
    };
    let conn = kernel.open(Message::with_body(0, &lnk)).unwrap();
    let v = LnkVolconf {
        copy: VolData {
            copyid: 1,
            path: Label::new(format!("span:127.0.0.1:{port}")).unwrap(),
            ..VolData::default()
        },
        index: 1,
        mediaid: lnk.mediaid,
        ..LnkVolconf::default()
    };
    conn.send(Message::with_body(0, &v)).unwrap();

    // dmsgd took the volconf; give its worker time to try (and fail) at
    // least once, then start the listener.
    let deadline = Instant::now() + WAIT;
    let mut logged = false;
    while !logged && Instant::now() < deadline {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(100)) {
            logged = l.contains("volconf slot 1");
        }
    }
    assert!(logged, "dmsgd logs the volconf");
    std::thread::sleep(Duration::from_millis(300));
    let listener = Node::default();
    listener.add_local_span(LnkSpan {
        fs_label: Label::truncated("lst"),
        pfs_fsid: Uuid([0x11; 16]),
        ..LnkSpan::default()
    });
    let lh = listener
        .listen(("127.0.0.1", port), |_| ServeOptions::new("in"))
        .unwrap();
    let sees_vnode = || {
        listener
            .nodes()
            .iter()
            .any(|n| n.span.fs_label.as_str() == Some("vnode"))
    };
    assert!(wait_until(sees_vnode), "the listener sees dmsgd's span");

    let services = lh.take_services();
    lh.stop();
    listener.shutdown();
    for s in services {
        s.join();
    }
    drop(kernel);
    drop(daemon);
}
