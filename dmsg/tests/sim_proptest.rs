//! Property: random small topologies with random link failures, repairs
//! and node restarts always re-converge to a consistent state.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use dmsg::sim::{Rng, Sim, SimConfig, Topology};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn random_failures_reconverge(
        n in 2usize..14,
        degree in 2usize..5,
        seed in any::<u64>(),
        max_relays in 1usize..4,
        ops in proptest::collection::vec(0u8..4, 1..8),
    ) {
        let mut sim = Sim::with_topology(
            Topology::Random { n, degree },
            SimConfig { seed, max_relays },
        );
        let mut rng = Rng::new(seed ^ 77);
        prop_assert!(sim.run_until_idle(400).is_ok());
        prop_assert_eq!(sim.check(), Ok(()));
        for op in ops {
            match op {
                0 | 1 => {
                    let edges = sim.edges();
                    if !edges.is_empty() {
                        let (e, _, _) = edges[rng.below(edges.len())];
                        sim.remove_edge(e);
                    }
                }
                2 => {
                    let (a, b) = (rng.below(n), rng.below(n));
                    if a != b && sim.is_alive(a) && sim.is_alive(b) {
                        sim.add_edge(a, b);
                    }
                }
                _ => {
                    let x = rng.below(n);
                    if sim.is_alive(x) {
                        sim.remove_node(x);
                    } else {
                        sim.restart_node(x);
                        let y = rng.below(n);
                        if y != x && sim.is_alive(y) {
                            sim.add_edge(x, y);
                        }
                    }
                }
            }
            prop_assert!(sim.run_until_idle(400).is_ok());
            prop_assert_eq!(sim.check(), Ok(()));
            prop_assert!(sim.errors().is_empty());
        }
    }
}
