//! Volconf workers (STATE.md §9.3) over real sockets: a node gets
//! `LNK_CONN` + `LNK_VOLCONF` from a "kernel" peer on a socketpair, as the
//! HAMMER2 mount sends them, and keeps TCP connections to the `span:`
//! copies on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod service_support;

use dmsg::lnk::{LinkId, LnkError};
use dmsg::runtime::session::{Session, Transaction};
use dmsg::service::{
    master_conn, ListenerHandle, Node, ServeOptions, ServiceEvent, ServiceHandle, SlotInfo,
    SlotState, VolconfConfig,
};
use dmsg::wire::{Label, LnkConn, LnkVolconf, Message, Uuid, VolData};
use service_support::*;
use std::net::TcpListener;
use std::os::unix::net::UnixStream;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

const MEDIA: Uuid = Uuid([0x3d; 16]);

/// Short backoff so that retries come quickly; fixed seed.
fn test_cfg() -> VolconfConfig {
    VolconfConfig {
        backoff_initial: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        jitter_percent: 10,
        seed: 42,
        connect_timeout: Duration::from_secs(2),
        serve: None,
    }
}

/// The node under test, with volconf enabled, and its kernel peer: a
/// session on a socketpair with its `LNK_CONN` (media `MEDIA`) open.
struct Rig {
    node: Node,
    rx: Receiver<ServiceEvent>,
    svc: Option<ServiceHandle>,
    kernel: Session,
    conn: Option<Transaction>,
}

impl Rig {
    fn new() -> Rig {
        Rig::with(test_cfg())
    }

    fn with(cfg: VolconfConfig) -> Rig {
        let (node, rx) = node(1, "a");
        assert!(node.enable_volconf(cfg));
        assert!(!node.enable_volconf(test_cfg()), "only once");
        let (sa, sb) = UnixStream::pair().unwrap();
        let svc = node.serve(sa, ServeOptions::new("kernel")).unwrap();
        let kernel = Session::spawn(sb).unwrap();
        let lnk = LnkConn {
            mediaid: MEDIA,
            ..master_conn()
        };
        let conn = kernel.open(Message::with_body(0, &lnk)).unwrap();
        assert!(wait_until(
            || node.with_hub(|h, _| h.media_config(&MEDIA).is_some())
        ));
        Rig {
            node,
            rx,
            svc: Some(svc),
            kernel,
            conn: Some(conn),
        }
    }

    /// Sends a volconf for slot `index` inside the open LNK_CONN (same
    /// msgid, no CREATE/DELETE).
    fn volconf(&self, index: i32, copyid: u8, path: &str) {
        let v = LnkVolconf {
            copy: VolData {
                copyid,
                path: Label::new(path).unwrap(),
                ..VolData::default()
            },
            index,
            mediaid: MEDIA,
            ..LnkVolconf::default()
        };
        self.conn
            .as_ref()
            .unwrap()
            .send(Message::with_body(0, &v))
            .unwrap();
    }

    fn slot(&self, index: u16) -> Option<SlotInfo> {
        self.node
            .volconf_slots()
            .into_iter()
            .find(|s| s.mediaid == MEDIA && s.index == index)
    }

    /// Waits until slot `index` satisfies `f`; returns it.
    fn wait_slot(&self, index: u16, what: &str, f: impl Fn(&SlotInfo) -> bool) -> SlotInfo {
        let ok = wait_until(|| self.slot(index).is_some_and(|s| f(&s)));
        assert!(ok, "slot {index}: {what}; now {:?}", self.slot(index));
        self.slot(index).unwrap()
    }

    /// Waits for a refusal of the hub on the kernel link.
    fn wait_refused(&self, want: &LnkError) {
        let ok = wait_until(|| {
            self.rx
                .try_iter()
                .any(|e| matches!(&e, ServiceEvent::Refused { error, .. } if error == want))
        });
        assert!(ok, "no refusal {want:?}");
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.kernel.shutdown();
        self.node.shutdown();
        if let Some(s) = self.svc.take() {
            s.join();
        }
    }
}

/// A free loopback port (bound, then released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A listening node with one span named `name`.
fn listener(i: u8, name: &str, port: u16) -> (Node, ListenerHandle) {
    let (n, _rx) = node(i, name);
    let l = n
        .listen(("127.0.0.1", port), |_| ServeOptions::new("in"))
        .unwrap();
    (n, l)
}

/// Stops a listening node: no more accepts, its links shut down and
/// their services joined.
fn stop_listener(n: &Node, l: ListenerHandle) {
    let services = l.take_services();
    l.stop();
    n.shutdown();
    for s in services {
        s.join();
    }
}

fn sees(n: &Node, name: &str) -> bool {
    seen(n).contains_key(name)
}

#[test]
fn span_copy_connects_when_listener_starts_and_reconnects_after_restart() {
    let rig = Rig::new();
    let port = free_port();
    let path = format!("span:127.0.0.1:{port}");
    rig.volconf(1, 1, &path);

    // Nobody listens yet: CONNECT, and it keeps retrying.
    let s = rig.wait_slot(1, "connect failing", |s| {
        s.state == SlotState::Connect && s.failures >= 2
    });
    assert_eq!(s.connects, 0);
    assert_eq!(s.peer.as_deref(), Some(&path["span:".len()..]));
    assert!(s.last_error.is_some());

    // The listener comes up: the slot connects, both nodes see each other.
    let (b, lb) = listener(2, "b", port);
    let s = rig.wait_slot(1, "running", |s| s.state == SlotState::Running);
    assert_eq!(s.connects, 1);
    let first_link = s.link.expect("running slot has a link");
    let line = s.to_string();
    assert!(
        line.contains("slot 1 RUNNING span:127.0.0.1:") && line.contains("connects=1"),
        "{line}"
    );
    assert!(wait_until(|| sees(&rig.node, "b") && sees(&b, "a")));

    // The listener node goes away: the stream is lost, the slot retries.
    stop_listener(&b, lb);
    rig.wait_slot(1, "lost stream goes to CONNECT", |s| {
        s.state == SlotState::Connect
    });
    assert!(wait_until(|| !sees(&rig.node, "b")));
    drop(b);

    // Restarted on the same port: the slot reconnects by itself.
    let (b2, lb2) = listener(3, "b2", port);
    let s = rig.wait_slot(1, "reconnected", |s| {
        s.state == SlotState::Running && s.connects == 2
    });
    assert_ne!(s.link, Some(first_link), "a new connection");
    assert!(wait_until(|| sees(&rig.node, "b2") && sees(&b2, "a")));
    assert_eq!(rig.node.volconf_threads(), 1);

    // Node shutdown stops the worker and its connection.
    rig.node.shutdown();
    assert_eq!(rig.node.volconf_threads(), 0);
    assert!(rig.node.volconf_slots().is_empty());
    assert!(wait_until(|| !sees(&b2, "a")));
    stop_listener(&b2, lb2);
}

#[test]
fn bad_volconf_change_clear_and_conn_close() {
    let mut rig = Rig::new();
    let (b, lb) = listener(2, "b", 0);
    let (c, lc) = listener(3, "c", 0);
    let to_b = format!("span:127.0.0.1:{}", lb.local_addr().port());
    let to_c = format!("span:127.0.0.1:{}", lc.local_addr().port());

    rig.volconf(1, 1, &to_b);
    let s1 = rig.wait_slot(1, "running to b", |s| s.state == SlotState::Running);
    assert!(wait_until(|| sees(&b, "a") && sees(&rig.node, "b")));

    // Bad index, empty path: refused, and slot 1 keeps its connection.
    rig.volconf(300, 1, &to_c);
    rig.wait_refused(&LnkError::VolconfIndex(300));
    rig.volconf(1, 1, "");
    rig.wait_refused(&LnkError::VolconfPath);
    // The same copy again: taken, but nothing changes.
    rig.volconf(1, 1, &to_b);
    let s = rig.wait_slot(1, "same copy taken", |s| s.updates == s1.updates + 1);
    assert_eq!(
        (s.state, s.link, s.connects),
        (SlotState::Running, s1.link, 1)
    );
    assert_eq!(rig.node.volconf_slots().len(), 1);
    assert!(!sees(&c, "a"));

    // Another path: the connection moves from b to c.
    rig.volconf(1, 1, &to_c);
    let s = rig.wait_slot(1, "moved to c", |s| {
        s.state == SlotState::Running && s.connects == 2
    });
    assert_ne!(s.link, s1.link);
    assert!(wait_until(|| sees(&c, "a") && !sees(&b, "a")));
    assert!(rig.node.conn(s1.link.unwrap()).is_none(), "old link gone");

    // A second slot, to b; then slot 1 is cleared: its worker ends.
    rig.volconf(2, 2, &to_b);
    rig.wait_slot(2, "slot 2 running", |s| s.state == SlotState::Running);
    rig.volconf(1, 0, &to_c);
    assert!(wait_until(|| rig.slot(1).is_none()));
    assert!(wait_until(|| !sees(&c, "a") && sees(&b, "a")));
    assert!(wait_until(|| rig.node.volconf_threads() == 1));

    // Closing the LNK_CONN (media refs → 0) stops every slot.
    let conn = rig.conn.take().unwrap();
    conn.reply(0).unwrap();
    assert!(wait_until(|| rig.node.volconf_slots().is_empty()));
    assert!(wait_until(|| rig.node.volconf_threads() == 0));
    assert!(wait_until(|| !sees(&b, "a")));
    // Only the kernel link is left on the node.
    let links: Vec<LinkId> = rig.node.links().into_iter().map(|(l, _)| l).collect();
    assert_eq!(links.len(), 1, "{links:?}");

    stop_listener(&b, lb);
    stop_listener(&c, lc);
}

#[test]
fn a_shutdown_during_a_hanging_connect_ends_it_at_once() {
    let rig = Rig::with(VolconfConfig {
        connect_timeout: Duration::from_secs(60),
        ..test_cfg()
    });
    let (_l, _queued, addr) = full_listener();
    rig.volconf(1, 1, &format!("span:{addr}"));
    let s = rig.wait_slot(1, "connecting", |s| s.peer.is_some());
    assert_eq!((s.connects, s.failures), (0, 0));
    // Well into the connect (its SYN is dropped: it would take 60 s).
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(rig.slot(1).map(|s| (s.connects, s.failures)), Some((0, 0)));

    let start = Instant::now();
    rig.node.shutdown();
    let took = start.elapsed();
    assert_eq!(rig.node.volconf_threads(), 0);
    assert!(took < Duration::from_secs(5), "shutdown took {took:?}");
}
