//! Scale: a 1,000-node random mesh (average degree 4) converges.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use dmsg::sim::{Sim, SimConfig, Topology};
use std::time::Instant;

#[test]
fn thousand_node_mesh_converges() {
    let t = Instant::now();
    let mut sim = Sim::with_topology(
        Topology::Random { n: 1000, degree: 4 },
        SimConfig::default(),
    );
    let rounds = sim.run_until_idle(1000).expect("converges");
    let conv = t.elapsed();
    let st = sim.stats();
    eprintln!(
        "1000 nodes: {rounds} rounds, {} messages, {} bytes, {:?}",
        st.messages, st.bytes, conv
    );
    let hub = sim.hub(0).unwrap();
    eprintln!("node 0: {:?}", hub.stats());
    // Spot checks (the full check is quadratic in memory of views).
    let hops = sim.hops(0);
    let views = hub.nodes();
    let reachable = hops.iter().filter(|h| h.is_some_and(|h| h <= 17)).count();
    assert_eq!(views.len(), reachable);
    assert_eq!(hub.pending_changes(), 0);
    sim.check().expect("converged state is consistent");
    eprintln!("total {:?}", t.elapsed());
}
