//! `connect` (`dmsg_connect`): names and numbers, IPv4 and IPv6, ports,
//! and errors that name the host.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod service_support;

use dmsg::service::{connect, connect_timeout, connect_unless, split_host_port};
use service_support::full_listener;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

/// Connects with `host` to `listener` and checks the stream reaches it.
fn check(listener: &TcpListener, host: &str) {
    let mut c = connect(host).unwrap_or_else(|e| panic!("{host}: {e}"));
    assert!(c.nodelay().unwrap(), "nodelay is on");
    let (mut s, _) = listener.accept().unwrap();
    c.write_all(b"ping").unwrap();
    let mut buf = [0u8; 4];
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ping");
}

#[test]
fn ipv4_numeric_and_by_name() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    check(&l, &format!("127.0.0.1:{port}"));
    // "localhost" may resolve to ::1 first: every address is tried.
    check(&l, &format!("localhost:{port}"));
}

#[test]
fn ipv6_with_brackets() {
    let Ok(l) = TcpListener::bind("[::1]:0") else {
        eprintln!("skipped: no ::1 on this machine");
        return;
    };
    let port = l.local_addr().unwrap().port();
    check(&l, &format!("[::1]:{port}"));
}

#[test]
fn errors_name_the_host() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    let host = format!("127.0.0.1:{port}");
    let e = connect_timeout(&host, Duration::from_secs(5)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConnectionRefused);
    assert!(e.to_string().starts_with(&format!("{host}: ")), "{e}");

    for bad in [
        "",
        "host:",
        "host:http",
        "host:70000",
        "[::1",
        "[::1]x",
        "[]:5",
        ":5",
    ] {
        let e = connect(bad).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{bad:?}: {e}");
        assert!(e.to_string().starts_with(&format!("{bad}: ")), "{e}");
    }
}

#[test]
fn host_forms_and_the_default_port() {
    assert_eq!(split_host_port("h").unwrap(), ("h".into(), 987));
    assert_eq!(split_host_port("h:1").unwrap(), ("h".into(), 1));
    assert_eq!(split_host_port("[::1]").unwrap(), ("::1".into(), 987));
    assert_eq!(
        split_host_port("[fe80::1]:8").unwrap(),
        ("fe80::1".into(), 8)
    );
    assert_eq!(split_host_port("::1").unwrap(), ("::1".into(), 987));
    assert_eq!(
        split_host_port("192.0.2.1").unwrap(),
        ("192.0.2.1".into(), dmsg::wire::LISTEN_PORT)
    );
}

#[test]
fn a_hanging_connect_times_out_or_gives_up_soon_after_it_is_asked_to() {
    let (_l, _queued, addr) = full_listener();
    let host = addr.to_string();
    let e = connect_timeout(&host, Duration::from_millis(300)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TimedOut, "{e}");
    assert!(e.to_string().starts_with(&format!("{host}: ")), "{e}");

    let start = Instant::now();
    let asked = start + Duration::from_millis(100);
    let e = connect_unless(&host, Duration::from_secs(30), || Instant::now() >= asked).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Interrupted, "{e}");
    assert!(e.to_string().starts_with(&format!("{host}: ")), "{e}");
    let took = start.elapsed();
    assert!(took < Duration::from_secs(5), "gave up after {took:?}");

    // Not asked to give up, it connects as connect does.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let c = connect_unless(&format!("127.0.0.1:{port}"), Duration::from_secs(5), || {
        false
    })
    .unwrap();
    assert!(c.nodelay().unwrap());
    let (_s, peer) = l.accept().unwrap();
    assert_eq!(peer, c.local_addr().unwrap());
}
