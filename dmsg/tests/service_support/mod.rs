//! Helpers of the node service tests: nodes with one span each, bounded
//! waits, views of what a node sees.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use dmsg::lnk::{HubConfig, HubEvent, HubStats, NodeOp};
use dmsg::service::{Node, ServiceEvent};
use dmsg::wire::constants::{PEER_HAMMER2, PFSTYPE_SERVER};
use dmsg::wire::{Label, LnkSpan, Uuid};
use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

/// How long any wait of these tests may take before it fails.
pub const WAIT: Duration = Duration::from_secs(20);

/// Polls `f` every few milliseconds until it holds or [`WAIT`] passes.
pub fn wait_until(mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + WAIT;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The cluster every test node belongs to.
pub const CLUSTER: Uuid = Uuid([0x5e; 16]);

/// A HAMMER2 server span named `name`.
pub fn span(i: u8, name: &str) -> LnkSpan {
    LnkSpan {
        pfs_clid: CLUSTER,
        pfs_fsid: Uuid([i; 16]),
        pfs_type: PFSTYPE_SERVER,
        peer_type: PEER_HAMMER2,
        proto_version: 1,
        fs_label: Label::truncated(name),
        ..LnkSpan::default()
    }
}

/// A node with a fixed rnss, its event channel, and one local span.
pub fn node(i: u8, name: &str) -> (Node, Receiver<ServiceEvent>) {
    let n = Node::new(HubConfig::new(u32::from(i) * 7 + 1));
    let rx = n.subscribe();
    n.add_local_span(span(i, name));
    (n, rx)
}

/// fs_label → best distance, of every node `n` sees.
pub fn seen(n: &Node) -> BTreeMap<String, u32> {
    n.nodes()
        .into_iter()
        .map(|v| {
            let label = v.span.fs_label.as_str().unwrap_or("?").to_owned();
            let dist = v.links.first().map_or(u32::MAX, |l| l.dist);
            (label, dist)
        })
        .collect()
}

/// `expect` as a map.
pub fn dists(expect: &[(&str, u32)]) -> BTreeMap<String, u32> {
    expect.iter().map(|(k, d)| ((*k).to_owned(), *d)).collect()
}

/// The node ADD/DEL events received so far, as (op, fs_label).
pub fn node_events(rx: &Receiver<ServiceEvent>, into: &mut Vec<(NodeOp, String)>) {
    while let Ok(ev) = rx.try_recv() {
        if let ServiceEvent::Hub(HubEvent::Node(e)) = ev {
            into.push((e.op, e.span.fs_label.as_str().unwrap_or("?").to_owned()));
        }
    }
}

/// The structural counts of a hub (the counters of work done left out).
pub fn shape(s: HubStats) -> (usize, usize, usize, usize, usize, usize, usize) {
    (
        s.clusters, s.nodes, s.links, s.relays, s.conns, s.media, s.txns,
    )
}

/// The `(Node` line for `label` and the lines under it up to the next
/// node or cluster line.
pub fn node_block(tree: &str, label: &str) -> Vec<String> {
    let head = format!("({label})");
    let mut out = Vec::new();
    let mut inside = false;
    for line in tree.lines() {
        let is_node = line.starts_with("    Node ");
        let is_cluster = line.starts_with("Cluster ");
        if is_node || is_cluster {
            inside = is_node && line.ends_with(&head);
        }
        if inside {
            out.push(line.to_owned());
        }
    }
    out
}

/// A loopback listener whose accept queue is full (backlog 0, one
/// connection made and never accepted): a further connect hangs, its SYN
/// dropped. Returns the listener, the queued connection and the address.
pub fn full_listener() -> (rustix::fd::OwnedFd, TcpStream, SocketAddr) {
    use rustix::net::{AddressFamily, SocketType};
    let l = rustix::net::socket(AddressFamily::INET, SocketType::STREAM, None).unwrap();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    rustix::net::bind(&l, &any).unwrap();
    rustix::net::listen(&l, 0).unwrap();
    let addr = match rustix::net::getsockname(&l).unwrap().try_into() {
        Ok(a) => a,
        Err(e) => panic!("not an inet address: {e:?}"),
    };
    let queued = TcpStream::connect(addr).unwrap();
    (l, queued, addr)
}

/// Aux data number `i` of a stream of relayed messages: sizes from none to
/// the largest, some a 4 KiB read holds whole and some not, the index
/// inside.
pub fn numbered_aux(i: usize) -> Vec<u8> {
    const SIZES: [usize; 8] = [0, 9, 100, 1000, 3000, 4096, 9000, 65536];
    let len = SIZES[i % SIZES.len()];
    (0..len).map(|k| (i * 31 + k) as u8).collect()
}
