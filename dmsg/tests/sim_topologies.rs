//! The simulator on every topology: convergence, the best distance equals
//! the hop count, nothing relayed back, and clean teardown after failures.

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
