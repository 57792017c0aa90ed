//! The simulator on every topology: convergence, the best distance equals
//! the hop count, nothing relayed back, and clean teardown after failures.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use dmsg::sim::{Sim, SimConfig, Topology};

fn converge(sim: &mut Sim) {
    sim.run_until_idle(500)
        .expect("converges within 500 rounds");
    if let Err(problems) = sim.check() {
        panic!(
            "{} problems, first: {:#?}",
            problems.len(),
            &problems[..problems.len().min(10)]
        );
    }
    assert!(sim.errors().is_empty(), "{:?}", sim.errors());
}

fn topo(t: Topology, seed: u64) -> Sim {
    let mut sim = Sim::with_topology(
        t,
        SimConfig {
            seed,
            ..SimConfig::default()
        },
    );
    converge(&mut sim);
    sim
}

#[test]
fn line_sees_everyone_at_hop_distance() {
    let sim = topo(Topology::Line(6), 1);
    let far = sim.hub(0).unwrap().nodes();
    assert_eq!(far.len(), 6);
    let n5 = far
        .iter()
        .find(|v| v.span.fs_label.as_bytes() == b"node5")
        .unwrap();
    assert_eq!(n5.links[0].dist, 5);
}

#[test]
fn ring_star_grid_random() {
    topo(Topology::Ring(9), 2);
    topo(Topology::Star(12), 3);
    topo(Topology::Grid(5, 4), 4);
    topo(Topology::Random { n: 40, degree: 4 }, 5);
}

#[test]
fn long_line_stops_at_maxdist() {
    // 20 nodes in a line: node 0 sees nodes up to 17 hops away only.
    let sim = topo(Topology::Line(20), 6);
    let seen = sim.hub(0).unwrap().nodes();
    assert_eq!(seen.len(), 18);
    assert!(seen.iter().all(|v| v.links[0].dist <= 17));
}

#[test]
fn link_loss_and_repair_reconverge_without_leftovers() {
    let mut sim = topo(Topology::Ring(8), 7);
    let before: Vec<_> = (0..8).map(|i| sim.hub(i).unwrap().stats()).collect();
    let (e, a, b) = sim.edges()[3];
    sim.remove_edge(e);
    converge(&mut sim);
    // Now a line: the two ends of the cut are 7 hops apart.
    let seen = sim.hub(a).unwrap().nodes();
    let far = seen
        .iter()
        .find(|v| v.span.fs_label.as_bytes() == format!("node{b}").as_bytes())
        .unwrap();
    assert_eq!(far.links[0].dist, 7);
    sim.add_edge(a, b);
    converge(&mut sim);
    let after: Vec<_> = (0..8).map(|i| sim.hub(i).unwrap().stats()).collect();
    for (x, y) in before.iter().zip(&after) {
        assert_eq!(
            (x.nodes, x.links, x.relays, x.conns, x.txns),
            (y.nodes, y.links, y.relays, y.conns, y.txns)
        );
    }
}

#[test]
fn node_removal_deletes_its_node_everywhere() {
    let mut sim = topo(Topology::Grid(4, 4), 8);
    sim.remove_node(5);
    converge(&mut sim);
    for i in (0..16).filter(|&i| i != 5) {
        let hub = sim.hub(i).unwrap();
        assert_eq!(hub.stats().nodes, 15);
        assert!(hub
            .nodes()
            .iter()
            .all(|v| v.span.fs_label.as_bytes() != b"node5"));
    }
    // Cutting a node off entirely leaves its neighbours' entries empty of it
    // and it alone with itself.
    sim.restart_node(5);
    sim.add_edge(5, 1);
    converge(&mut sim);
    assert_eq!(sim.hub(5).unwrap().stats().nodes, 16);
}

#[test]
fn withdrawn_span_disappears_and_partition_isolates() {
    let mut sim = topo(Topology::Line(5), 9);
    sim.remove_local_span(4);
    converge(&mut sim);
    assert_eq!(sim.hub(0).unwrap().stats().nodes, 4);
    // Cut the middle: each half sees only itself.
    let mid = sim
        .edges()
        .into_iter()
        .find(|&(_, a, b)| (a, b) == (1, 2))
        .unwrap()
        .0;
    sim.remove_edge(mid);
    converge(&mut sim);
    assert_eq!(sim.hub(0).unwrap().stats().nodes, 2);
    assert_eq!(sim.hub(3).unwrap().stats().nodes, 2); // node2 and node3
    assert_eq!(sim.hub(4).unwrap().stats().nodes, 2);
}
