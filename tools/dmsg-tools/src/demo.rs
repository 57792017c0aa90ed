//! `dmsg demo`: N nodes in one process on loopback TCP, in a line, a ring
//! or a star; convergence, the tree dumps, one link cut, re-convergence.
//!
//! What "converged" means here: every node sees exactly the nodes it can
//! reach, each at its shortest hop count (the best span's `dist`). Before
//! the cut that is every node; after it, the nodes of its side.

use dmsg::lnk::{HubEvent, NodeOp};
use dmsg::service::{connect, ListenerHandle, Node, ServeOptions, ServiceEvent, ServiceHandle};
use dmsg::sim::{default_span, Rng, Topology};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::io::{self, Write};
use std::str::FromStr;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

/// The shape of the demo mesh.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// node0—node1—…—node(N-1).
    Line,
    /// A line closed into a ring (from 3 nodes).
    Ring,
    /// node0 joined to every other node.
    Star,
}

impl FromStr for Shape {
    type Err = String;
    fn from_str(s: &str) -> Result<Shape, String> {
        match s {
            "line" => Ok(Shape::Line),
            "ring" => Ok(Shape::Ring),
            "star" => Ok(Shape::Star),
            _ => Err(format!("unknown topology {s:?} (line, ring or star)")),
        }
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Shape::Line => "line",
            Shape::Ring => "ring",
            Shape::Star => "star",
        })
    }
}

/// Settings of a demo run.
#[derive(Clone, Copy, Debug)]
pub struct DemoConfig {
    /// Number of nodes (2 to [`MAX_NODES`]).
    pub nodes: usize,
    /// The mesh.
    pub shape: Shape,
    /// Longest wait for each convergence.
    pub timeout: Duration,
    /// Print every node's tree dump.
    pub trees: bool,
}

impl Default for DemoConfig {
    fn default() -> Self {
        DemoConfig {
            nodes: 5,
            shape: Shape::Line,
            timeout: Duration::from_secs(20),
            trees: true,
        }
    }
}

/// Most nodes a demo runs (each link costs two threads and four fds).
pub const MAX_NODES: usize = 64;

/// What a demo run measured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DemoReport {
    /// Nodes.
    pub nodes: usize,
    /// Links before the cut.
    pub links: usize,
    /// The link taken down.
    pub cut: (usize, usize),
    /// From the first connect to full convergence.
    pub converge: Duration,
    /// From the cut to re-convergence.
    pub reconverge: Duration,
    /// LNK messages the nodes' hubs sent.
    pub messages: u64,
    /// Node DEL events seen after the cut, all nodes together.
    pub dels: usize,
}

fn label(i: usize) -> String {
    format!("node{i}")
}

/// Hop counts from every node to every node it reaches over `edges`.
fn distances(n: usize, edges: &[(usize, usize)]) -> Vec<BTreeMap<String, u32>> {
    let mut adj = vec![Vec::new(); n];
    for &(a, b) in edges {
        if let Some(v) = adj.get_mut(a) {
            v.push(b);
        }
        if let Some(v) = adj.get_mut(b) {
            v.push(a);
        }
    }
    (0..n)
        .map(|s| {
            let mut dist = BTreeMap::new();
            let mut q = VecDeque::from([(s, 0u32)]);
            let mut done = BTreeSet::from([s]);
            while let Some((x, d)) = q.pop_front() {
                dist.insert(label(x), d);
                for &y in adj.get(x).into_iter().flatten() {
                    if done.insert(y) {
                        q.push_back((y, d + 1));
                    }
                }
            }
            dist
        })
        .collect()
}

/// fs_label → best dist of every node `n` sees.
fn seen(n: &Node) -> BTreeMap<String, u32> {
    n.nodes()
        .into_iter()
        .map(|v| {
            let l = v.span.fs_label.as_str().unwrap_or("?").to_owned();
            (l, v.links.first().map_or(u32::MAX, |s| s.dist))
        })
        .collect()
}

fn wait(nodes: &[Node], want: &[BTreeMap<String, u32>], timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        let bad = nodes
            .iter()
            .zip(want)
            .enumerate()
            .find(|(_, (n, w))| seen(n) != **w);
        let Some((i, (n, w))) = bad else {
            return Ok(());
        };
        if Instant::now() >= deadline {
            return Err(format!(
                "{} did not converge in {timeout:?}: sees {:?}, expected {:?}",
                label(i),
                seen(n),
                w
            ));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn node_events(rx: &Receiver<ServiceEvent>, op: NodeOp) -> BTreeSet<String> {
    rx.try_iter()
        .filter_map(|e| match e {
            ServiceEvent::Hub(HubEvent::Node(ev)) if ev.op == op => {
                Some(ev.span.fs_label.as_str().unwrap_or("?").to_owned())
            }
            _ => None,
        })
        .collect()
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Everything a run started, torn down at the end (also on errors).
struct Mesh {
    nodes: Vec<Node>,
    listeners: Vec<ListenerHandle>,
    edges: Vec<((usize, usize), ServiceHandle)>,
}

impl Drop for Mesh {
    fn drop(&mut self) {
        for n in &self.nodes {
            n.shutdown();
        }
        for (_, h) in self.edges.drain(..) {
            h.shutdown();
            h.join();
        }
        for l in self.listeners.drain(..) {
            let accepted = l.take_services();
            l.stop();
            for h in accepted {
                h.shutdown();
                h.join();
            }
        }
    }
}

/// Runs the demo, printing to `out`; `Ok` only if everything converged as
/// expected before and after the cut.
pub fn run(cfg: &DemoConfig, out: &mut dyn Write) -> Result<DemoReport, String> {
    let n = cfg.nodes;
    if !(2..=MAX_NODES).contains(&n) {
        return Err(format!("--nodes must be 2 to {MAX_NODES}"));
    }
    let io = |e: io::Error| e.to_string();
    let topo = match cfg.shape {
        Shape::Line => Topology::Line(n),
        Shape::Ring => Topology::Ring(n),
        Shape::Star => Topology::Star(n),
    };
    let edges = topo.edges(&mut Rng::new(1));
    writeln!(
        out,
        "demo: {n} nodes, {} links ({}), loopback TCP",
        edges.len(),
        cfg.shape
    )
    .map_err(io)?;

    let mut mesh = Mesh {
        nodes: Vec::new(),
        listeners: Vec::new(),
        edges: Vec::new(),
    };
    let mut events = Vec::new();
    for i in 0..n {
        let node = Node::default();
        events.push(node.subscribe());
        node.add_local_span(default_span(i));
        let l = node
            .listen("127.0.0.1:0", move |peer| {
                ServeOptions::new(format!("{} from {peer}", label(i)))
            })
            .map_err(|e| format!("{}: listen: {e}", label(i)))?;
        writeln!(out, "  {} listens on {}", label(i), l.local_addr()).map_err(io)?;
        mesh.nodes.push(node);
        mesh.listeners.push(l);
    }

    let start = Instant::now();
    for &(a, b) in &edges {
        let (Some(na), Some(lb)) = (mesh.nodes.get(a), mesh.listeners.get(b)) else {
            continue;
        };
        let to = lb.local_addr().to_string();
        let s = connect(&to).map_err(|e| format!("{}: connect: {e}", label(a)))?;
        let h = na
            .serve(s, ServeOptions::new(format!("{}->{}", label(a), label(b))))
            .map_err(|e| format!("{}: serve: {e}", label(a)))?;
        mesh.edges.push(((a, b), h));
    }
    let want = distances(n, &edges);
    wait(&mesh.nodes, &want, cfg.timeout)?;
    let converge = start.elapsed();
    writeln!(
        out,
        "converged in {}: every node sees all {n} nodes at their shortest distance",
        ms(converge)
    )
    .map_err(io)?;
    for (i, rx) in events.iter().enumerate() {
        let adds = node_events(rx, NodeOp::Add);
        if adds.len() != n {
            return Err(format!(
                "{} saw {} node ADD events, not {n}",
                label(i),
                adds.len()
            ));
        }
    }
    if cfg.trees {
        for (i, node) in mesh.nodes.iter().enumerate() {
            writeln!(out, "\n--- {} tree ---", label(i)).map_err(io)?;
            write!(out, "{}", node.tree()).map_err(io)?;
        }
    }

    // Cut one link: the middle one of a line, the closing one of a ring,
    // the last spoke of a star.
    let cut_at = match cfg.shape {
        Shape::Line => (edges.len().saturating_sub(1)) / 2,
        Shape::Ring | Shape::Star => edges.len().saturating_sub(1),
    };
    if cut_at >= mesh.edges.len() {
        return Err("no link to cut".into());
    }
    let ((ca, cb), handle) = mesh.edges.remove(cut_at);
    let rest: Vec<(usize, usize)> = edges.iter().copied().filter(|&e| e != (ca, cb)).collect();
    let after = distances(n, &rest);
    writeln!(out, "\ncutting the link {}—{}", label(ca), label(cb)).map_err(io)?;
    let cut_start = Instant::now();
    handle.shutdown();
    handle.join();
    wait(&mesh.nodes, &after, cfg.timeout)?;
    let reconverge = cut_start.elapsed();

    let mut dels = 0;
    for (i, rx) in events.iter().enumerate() {
        let (Some(before), Some(now)) = (want.get(i), after.get(i)) else {
            continue;
        };
        let expect: BTreeSet<String> = before
            .keys()
            .filter(|k| !now.contains_key(*k))
            .cloned()
            .collect();
        let got = node_events(rx, NodeOp::Del);
        if got != expect {
            return Err(format!(
                "{}: node DEL events {got:?}, expected {expect:?}",
                label(i)
            ));
        }
        dels += got.len();
        let mut line = String::new();
        if !got.is_empty() {
            line.push_str(&format!(
                " DEL {}",
                got.iter().cloned().collect::<Vec<_>>().join(" ")
            ));
        }
        for (k, d) in now {
            match before.get(k) {
                Some(old) if old != d => line.push_str(&format!(" {k}: dist {old}→{d}")),
                _ => {}
            }
        }
        if line.is_empty() {
            line.push_str(" unchanged");
        }
        writeln!(out, "  {}:{line}", label(i)).map_err(io)?;
    }
    let messages = mesh.nodes.iter().map(Node::messages_sent).sum();
    let report = DemoReport {
        nodes: n,
        links: edges.len(),
        cut: (ca, cb),
        converge,
        reconverge,
        messages,
        dels,
    };
    writeln!(
        out,
        "\ndemo OK: {n} nodes, {} links ({}), converged in {}, re-converged in {} after cutting {}—{} ({} node DEL events), {} LNK messages",
        report.links,
        cfg.shape,
        ms(converge),
        ms(reconverge),
        label(ca),
        label(cb),
        dels,
        messages
    )
    .map_err(io)?;
    drop(mesh);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances_of_a_line_and_a_cut_line() {
        let d = distances(3, &[(0, 1), (1, 2)]);
        assert_eq!(d.first().and_then(|m| m.get("node2")), Some(&2));
        let d = distances(3, &[(0, 1)]);
        assert_eq!(d.first().map(BTreeMap::len), Some(2));
        assert_eq!(d.get(2).map(BTreeMap::len), Some(1));
    }

    #[test]
    fn shapes_parse() {
        assert_eq!("ring".parse::<Shape>(), Ok(Shape::Ring));
        assert!("mesh".parse::<Shape>().is_err());
    }
}
