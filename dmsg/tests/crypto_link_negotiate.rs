//! The crypto negotiation over real TCP sockets on loopback
//! (`dmsg::runtime::crypto::negotiate`): both sides agree on the session
//! keys, `.none` is plaintext with nothing sent, missing keys name the file
//! and the peer, a silent peer times out, wrong keys fail the exchange.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod crypto_link_support;

use crypto_link_support::*;
use dmsg::crypto::{KeyError, OsRandom};
use dmsg::runtime::crypto::{negotiate, peer_address, NegotiateError};
use dmsg::wire::ioq_error;
use std::io::{ErrorKind, Read};
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(10);

#[test]
fn peer_address_of_a_loopback_socket() {
    let (c, s) = tcp_pair();
    assert_eq!(peer_address(&c).unwrap().as_deref(), Some(LOOPBACK));
    assert_eq!(peer_address(&s).unwrap().as_deref(), Some(LOOPBACK));
    let (u, _v) = std::os::unix::net::UnixStream::pair().unwrap();
    assert_eq!(peer_address(&u).unwrap(), None);
    // IPv6 loopback, where the machine has it: the numeric form.
    if let Ok(l) = std::net::TcpListener::bind("[::1]:0") {
        let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        assert_eq!(peer_address(&c).unwrap().as_deref(), Some("::1"));
    }
    // An IPv4 client of a dual-stack IPv6 listener is seen as
    // ::ffff:127.0.0.1 and named by its IPv4 form.
    if let Ok(l) = std::net::TcpListener::bind("[::]:0") {
        let port = l.local_addr().unwrap().port();
        if let Ok(_c) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let (s, _) = l.accept().unwrap();
            assert_eq!(peer_address(&s).unwrap().as_deref(), Some(LOOPBACK));
        }
    }
}

#[test]
fn both_sides_agree_on_the_session_keys() {
    let (ka, kb) = trusting_pair();
    let (c, s) = tcp_pair();
    let dir_b = kb.dir();
    let t = std::thread::spawn(move || negotiate(&s, &dir_b, TIMEOUT, &mut OsRandom));
    let sa = negotiate(&c, &ka.dir(), TIMEOUT, &mut OsRandom)
        .unwrap()
        .expect("encrypted");
    let sb = t.join().unwrap().unwrap().expect("encrypted");
    assert_eq!(sa.tx_key(), sb.rx_key());
    assert_eq!(sa.rx_key(), sb.tx_key());
    assert_ne!(sa.tx_key(), sa.rx_key());
    assert_eq!(sa.peer_message(), "Testing 1 2 3");
}

#[test]
fn none_file_is_plaintext_and_nothing_is_sent() {
    let k = Keys::empty();
    k.plaintext(LOOPBACK);
    let (c, mut s) = tcp_pair();
    assert!(negotiate(&c, &k.dir(), TIMEOUT, &mut OsRandom)
        .unwrap()
        .is_none());
    s.set_nonblocking(true).unwrap();
    let mut b = [0u8; 1];
    let r = s.read(&mut b);
    assert_eq!(r.unwrap_err().kind(), ErrorKind::WouldBlock, "nothing sent");
}

#[test]
fn no_peer_key_names_both_files_and_the_peer() {
    let k = Keys::new();
    let (c, _s) = tcp_pair();
    let e = negotiate(&c, &k.dir(), TIMEOUT, &mut OsRandom).unwrap_err();
    assert!(matches!(e, NegotiateError::Key(KeyError::NoPeerKey { .. })));
    let text = e.to_string();
    assert!(text.contains("remote/127.0.0.1.pub"), "{text}");
    assert!(text.contains("remote/127.0.0.1.none"), "{text}");
    assert!(text.contains("peer 127.0.0.1"), "{text}");
    assert_eq!(e.ioq_error(), ioq_error::NORKEY);
    assert_eq!(e.to_link_error().code(), ioq_error::NORKEY);
}

#[test]
fn missing_private_key_names_the_file_and_the_peer() {
    let (ka, kb) = trusting_pair();
    std::fs::remove_file(ka.path().join("rsa.prv")).unwrap();
    let (c, _s) = tcp_pair();
    let e = negotiate(&c, &ka.dir(), TIMEOUT, &mut OsRandom).unwrap_err();
    let text = e.to_string();
    assert!(text.contains("rsa.prv"), "{text}");
    assert!(text.contains("127.0.0.1"), "{text}");
    assert_eq!(e.ioq_error(), ioq_error::NOLKEY);
    drop(kb);
}

#[test]
fn silent_peer_times_out_without_hanging() {
    let (ka, _kb) = trusting_pair();
    let (c, _s) = tcp_pair();
    let t0 = Instant::now();
    let e = negotiate(&c, &ka.dir(), Duration::from_millis(300), &mut OsRandom).unwrap_err();
    let took = t0.elapsed();
    assert!(
        matches!(
            e,
            NegotiateError::Timeout {
                sent: 512,
                received: 0,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(took >= Duration::from_millis(300), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    let text = e.to_string();
    assert!(
        text.contains("timed out") && text.contains("127.0.0.1"),
        "{text}"
    );
    assert_eq!(e.ioq_error(), ioq_error::KEYXCHGFAIL);
}

#[test]
fn peer_closing_during_the_handshake_is_an_error() {
    let (ka, _kb) = trusting_pair();
    let (c, s) = tcp_pair();
    drop(s);
    let e = negotiate(&c, &ka.dir(), TIMEOUT, &mut OsRandom).unwrap_err();
    assert!(
        matches!(e, NegotiateError::Eof { .. } | NegotiateError::Io { .. }),
        "{e:?}"
    );
}

#[test]
fn wrong_peer_key_fails_the_exchange() {
    let (ka, kb) = trusting_pair();
    // B trusts a third key for 127.0.0.1 instead of A's.
    let kc = Keys::new();
    std::fs::remove_file(kb.path().join("remote/127.0.0.1.pub")).unwrap();
    kb.trust(LOOPBACK, &kc);
    let (c, s) = tcp_pair();
    let dir_b = kb.dir();
    let t = std::thread::spawn(move || negotiate(&s, &dir_b, TIMEOUT, &mut OsRandom));
    let ra = negotiate(&c, &ka.dir(), TIMEOUT, &mut OsRandom);
    let rb = t.join().unwrap();
    let eb = rb.unwrap_err();
    assert_eq!(eb.ioq_error(), ioq_error::KEYXCHGFAIL, "{eb}");
    assert!(eb.to_string().contains("127.0.0.1"), "{eb}");
    // A decrypts B's block with A's own private key and B's true public
    // key: that one validates, A alone cannot tell.
    assert!(ra.is_ok() || ra.unwrap_err().ioq_error() == ioq_error::KEYXCHGFAIL);
}
