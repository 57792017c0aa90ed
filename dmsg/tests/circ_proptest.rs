//! Property: on random topologies, circuits between random pairs forge end
//! to end, carry a transaction each way, close, and leave nothing behind;
//! and random link failures with circuits open leave no circuit or
//! transaction dangling.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use dmsg::lnk::{CircuitEvent, CircuitId};
use dmsg::sim::{Rng, Sim, SimConfig, Topology};
use dmsg::wire::{cmd, Message};
use proptest::prelude::*;

fn msg(text: String) -> Message {
    let mut m = Message::new(cmd::DBG_SHELL | cmd::CREATE | cmd::DELETE);
    m.aux = text.into_bytes();
    m
}

fn texts(sim: &mut Sim, i: usize) -> Vec<String> {
    sim.take_inbox(i)
        .into_iter()
        .filter(|d| cmd::base(d.msg.hdr.cmd) == cmd::DBG_SHELL)
        .map(|d| String::from_utf8_lossy(&d.msg.aux).into_owned())
        .collect()
}

/// Per live link: (node, transactions on the link, circuit ids the hub uses).
fn baseline(sim: &Sim) -> Vec<(usize, usize, Vec<u64>)> {
    (0..sim.len())
        .flat_map(|i| sim.ports(i).into_iter().map(move |l| (i, l)))
        .map(|(i, l)| {
            (
                i,
                sim.link_end(l).unwrap().txn_count(),
                sim.hub(i).unwrap().circuit_ids(l),
            )
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]
    #[test]
    fn random_pairs_forge_talk_and_close(
        n in 2usize..12,
        degree in 2usize..5,
        seed in any::<u64>(),
        pairs in 1usize..6,
    ) {
        let mut sim = Sim::with_topology(Topology::Random { n, degree }, SimConfig { seed, max_relays: 2 });
        prop_assert!(sim.run_until_idle(400).is_ok());
        let before = baseline(&sim);
        let mut rng = Rng::new(seed ^ 0xC1C);
        let mut open: Vec<(usize, usize, CircuitId)> = Vec::new();
        for _ in 0..pairs {
            let (a, b) = (rng.below(n), rng.below(n));
            if a == b {
                continue;
            }
            open.push((a, b, sim.open_circuit(a, b).unwrap()));
        }
        prop_assert!(sim.run_until_idle(400).is_ok());
        prop_assert_eq!(sim.check(), Ok(()));
        // Every circuit is up at its origin and accepted at its target.
        let mut accepted: Vec<Vec<CircuitId>> = vec![Vec::new(); n];
        for (i, acc) in accepted.iter_mut().enumerate() {
            for e in sim.take_circuit_events(i) {
                if let CircuitEvent::Accepted(c) = e {
                    acc.push(c);
                }
            }
        }
        for (k, &(a, b, c)) in open.iter().enumerate() {
            prop_assert!(sim.hub(a).unwrap().circuit(c).unwrap().acked);
            sim.circuit_link(a, c).unwrap().open(c.id, msg(format!("fwd {k}"))).unwrap();
            prop_assert!(!accepted[b].is_empty());
        }
        // Answer from each target on each circuit it accepted.
        for (b, acc) in accepted.iter().enumerate() {
            for (j, &c) in acc.iter().enumerate() {
                sim.circuit_link(b, c).unwrap().open(c.id, msg(format!("back {b}.{j}"))).unwrap();
            }
        }
        prop_assert!(sim.run_until_idle(400).is_ok());
        let mut got: Vec<Vec<String>> = (0..n).map(|i| texts(&mut sim, i)).collect();
        for (k, &(a, b, _)) in open.iter().enumerate() {
            let want = format!("fwd {k}");
            // Seen by the target (request) and the origin (echo).
            prop_assert!(got[b].contains(&want), "{} missing at {}", want, b);
            prop_assert!(got[a].contains(&want), "{} echo missing at {}", want, a);
        }
        for (b, acc) in accepted.iter().enumerate() {
            for j in 0..acc.len() {
                let want = format!("back {b}.{j}");
                prop_assert!(got[b].contains(&want));
                got[b].retain(|t| *t != want);
            }
        }
        prop_assert_eq!(sim.errors(), &Vec::new());
        prop_assert_eq!(sim.check(), Ok(()));
        // Close half from the origin, half from the target (accepted
        // circuits do not name their origin: any one of the target's).
        for (k, &(a, b, c)) in open.iter().enumerate() {
            if k % 2 == 0 {
                let _ = sim.close_circuit(a, c);
            } else if let Some(x) = accepted[b].pop() {
                prop_assert!(sim.close_circuit(b, x));
            }
        }
        prop_assert!(sim.run_until_idle(400).is_ok());
        // Whatever is left closes from the origins.
        for &(a, _, c) in &open {
            let _ = sim.close_circuit(a, c);
        }
        prop_assert!(sim.run_until_idle(400).is_ok());
        prop_assert_eq!(sim.circuit_total(), 0);
        prop_assert_eq!(baseline(&sim), before);
        prop_assert_eq!(sim.check(), Ok(()));
    }

    #[test]
    fn link_failures_leave_no_circuit_behind(
        n in 3usize..12,
        degree in 2usize..4,
        seed in any::<u64>(),
        cuts in 1usize..4,
    ) {
        let mut sim = Sim::with_topology(Topology::Random { n, degree }, SimConfig { seed, max_relays: 2 });
        prop_assert!(sim.run_until_idle(400).is_ok());
        let mut rng = Rng::new(seed ^ 0xD1E);
        for _ in 0..4 {
            let (a, b) = (rng.below(n), rng.below(n));
            if a != b {
                let c = sim.open_circuit(a, b).unwrap();
                sim.circuit_link(a, c).unwrap().open(c.id, Message::new(cmd::DBG_SHELL | cmd::CREATE)).unwrap();
            }
        }
        prop_assert!(sim.run_until_idle(400).is_ok());
        for _ in 0..cuts {
            let edges = sim.edges();
            if !edges.is_empty() {
                let (e, _, _) = edges[rng.below(edges.len())];
                sim.remove_edge(e);
            }
            prop_assert!(sim.run_until_idle(400).is_ok());
        }
        prop_assert_eq!(sim.check(), Ok(()));
        // Close every circuit still standing.
        for i in 0..n {
            let mine: Vec<CircuitId> = sim.hub(i).unwrap().circuits().iter()
                .filter(|v| v.kind != dmsg::lnk::CircuitKind::Relay).map(|v| v.near).collect();
            for c in mine {
                prop_assert!(sim.close_circuit(i, c));
            }
        }
        prop_assert!(sim.run_until_idle(400).is_ok());
        prop_assert_eq!(sim.circuit_total(), 0);
        prop_assert_eq!(sim.check(), Ok(()));
        for i in 0..n {
            for l in sim.ports(i) {
                prop_assert_eq!(sim.link_end(l).unwrap().txn_count(), sim.hub(i).unwrap().txn_count(l));
            }
        }
    }
}
