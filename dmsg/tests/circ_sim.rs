//! Circuits in the simulator: forging, transactions end to end, teardown,
//! lifetime, and no leaks.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use dmsg::link::CircuitRole;
use dmsg::lnk::{CircuitEvent, CircuitId, CircuitKind};
use dmsg::sim::{Delivered, Sim, SimConfig, Topology};
use dmsg::state::Origin;
use dmsg::wire::{cmd, err, Message};

const STEPS: usize = 500;

fn line(n: usize) -> Sim {
    let mut sim = Sim::with_topology(Topology::Line(n), SimConfig::default());
    sim.run_until_idle(STEPS).unwrap();
    sim.check().unwrap();
    sim
}

/// A user transaction command (DBG protocol, not LNK).
fn user_msg(text: &str) -> Message {
    let mut m = Message::new(cmd::DBG_SHELL | cmd::CREATE);
    m.aux = text.as_bytes().to_vec();
    m
}

fn texts(inbox: &[Delivered]) -> Vec<String> {
    inbox
        .iter()
        .filter(|d| cmd::base(d.msg.hdr.cmd) == cmd::DBG_SHELL)
        .map(|d| String::from_utf8_lossy(&d.msg.aux).into_owned())
        .collect()
}

#[test]
fn circuit_over_a_line_of_three_runs_a_transaction_and_closes() {
    let mut sim = line(3);
    let c = sim.open_circuit(0, 2).unwrap();
    sim.run_until_idle(STEPS).unwrap();
    assert_eq!(sim.take_circuit_events(0), vec![CircuitEvent::Up(c)]);
    let acc = sim.take_circuit_events(2);
    assert!(
        matches!(acc.as_slice(), [CircuitEvent::Accepted(_)]),
        "{acc:?}"
    );
    assert_eq!(sim.hub(1).unwrap().circuit_count(), 1);
    assert_eq!(sim.hub(1).unwrap().circuits()[0].kind, CircuitKind::Relay);
    sim.check().unwrap();

    // A transaction from 0 to 2 and back.
    let l = sim.circuit_link(0, c).unwrap();
    let t = l.open(c.id, user_msg("ping")).unwrap();
    sim.run_until_idle(STEPS).unwrap();
    let at2 = sim.take_inbox(2);
    assert_eq!(texts(&at2), vec!["ping"]);
    assert_eq!(at2[0].txn.unwrap().origin, Origin::Remote);
    let at0 = sim.take_inbox(0);
    assert_eq!(texts(&at0), vec!["ping"]);
    assert_eq!(
        at0[0].msg.hdr.cmd & (cmd::REPLY | cmd::CREATE),
        cmd::REPLY | cmd::CREATE
    );
    assert_eq!(at0[0].msg.hdr.circuit, c.id);
    // Close it.
    let l = sim.circuit_link(0, c).unwrap();
    l.reply(t, 0).unwrap();
    sim.run_until_idle(STEPS).unwrap();
    assert!(sim.errors().is_empty(), "{:?}", sim.errors());
    sim.check().unwrap();

    assert!(sim.close_circuit(0, c));
    sim.run_until_idle(STEPS).unwrap();
    assert_eq!(
        sim.take_circuit_events(0),
        vec![CircuitEvent::Down {
            circuit: c,
            error: 0
        }]
    );
    assert!(matches!(
        sim.take_circuit_events(2).as_slice(),
        [CircuitEvent::Down { error: 0, .. }]
    ));
    assert_eq!(sim.circuit_total(), 0);
    assert!(sim.errors().is_empty(), "{:?}", sim.errors());
    sim.check().unwrap();
    let _ = (
        CircuitRole::Relay,
        CircuitId {
            link: c.link,
            id: 0,
        },
        err::CANTCIRC,
    );
}

/// Opens a circuit from `a` to `b`, forges it, runs one echo transaction
/// each way (from `a`, then from `b` on its accepted end) and returns it.
fn forge_and_ping(sim: &mut Sim, a: usize, b: usize) -> CircuitId {
    let c = sim.open_circuit(a, b).unwrap();
    sim.run_until_idle(STEPS).unwrap();
    assert!(
        sim.take_circuit_events(a).contains(&CircuitEvent::Up(c)),
        "circuit {a}->{b} not up"
    );
    let accepted = sim
        .take_circuit_events(b)
        .into_iter()
        .find_map(|e| match e {
            CircuitEvent::Accepted(x) => Some(x),
            _ => None,
        })
        .expect("accepted");
    // a -> b: CREATE|DELETE answered with the echo and DELETE.
    let l = sim.circuit_link(a, c).unwrap();
    l.open(c.id, {
        let mut m = user_msg(&format!("{a}->{b}"));
        m.hdr.cmd |= cmd::DELETE;
        m
    })
    .unwrap();
    // b -> a on the accepted end.
    let l = sim.circuit_link(b, accepted).unwrap();
    l.open(accepted.id, {
        let mut m = user_msg(&format!("{b}->{a}"));
        m.hdr.cmd |= cmd::DELETE;
        m
    })
    .unwrap();
    sim.run_until_idle(STEPS).unwrap();
    let at_a = texts(&sim.take_inbox(a));
    let at_b = texts(&sim.take_inbox(b));
    let fwd = format!("{a}->{b}");
    let back = format!("{b}->{a}");
    assert!(at_a.contains(&fwd) && at_a.contains(&back), "{at_a:?}");
    assert!(at_b.contains(&fwd) && at_b.contains(&back), "{at_b:?}");
    c
}

/// Every link's transactions and circuit ids, for leak checks.
fn baseline(sim: &Sim) -> Vec<(usize, usize, Vec<u64>)> {
    (0..sim.len())
        .flat_map(|i| sim.ports(i).into_iter().map(move |l| (i, l)))
        .map(|(i, l)| {
            let link = sim.link_end(l).unwrap();
            (i, link.txn_count(), sim.hub(i).unwrap().circuit_ids(l))
        })
        .collect()
}

#[test]
fn multi_hop_circuit_through_two_relays() {
    // A — R1 — R2 — B
    let mut sim = line(4);
    let before = baseline(&sim);
    let c = forge_and_ping(&mut sim, 0, 3);
    for r in [1, 2] {
        let v = sim.hub(r).unwrap().circuits();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].kind, CircuitKind::Relay);
        assert!(v[0].acked);
        // Rewritten per hop: the two ids differ.
        assert_ne!(v[0].near.id, v[0].far.unwrap().id);
    }
    sim.check().unwrap();
    assert!(sim.close_circuit(0, c));
    sim.run_until_idle(STEPS).unwrap();
    assert_eq!(sim.circuit_total(), 0);
    assert_eq!(baseline(&sim), before);
    assert!(sim.errors().is_empty(), "{:?}", sim.errors());
    sim.check().unwrap();
}

#[test]
fn dbg_shell_tree_over_the_circuit_like_the_captures() {
    let mut sim = line(3);
    let c = sim.open_circuit(0, 2).unwrap();
    sim.run_until_idle(STEPS).unwrap();
    let mut m = Message::new(cmd::DBG_SHELL);
    m.hdr.circuit = c.id;
    m.aux = b"tree\0".to_vec();
    sim.circuit_link(0, c).unwrap().send_oneway(m).unwrap();
    sim.run_until_idle(STEPS).unwrap();
    let got = sim.take_inbox(0);
    let want: Vec<String> = sim
        .hub(2)
        .unwrap()
        .tree_lines()
        .into_iter()
        .map(|l| format!("{l}\0"))
        .collect();
    assert!(!want.is_empty());
    assert_eq!(texts(&got), want);
    assert!(got
        .iter()
        .all(|d| d.msg.hdr.circuit == c.id && d.txn.is_none()));
    let last = got.last().unwrap();
    assert_eq!(last.msg.hdr.cmd, cmd::LNK_ERROR | cmd::REPLY);
    assert_eq!(last.msg.hdr.error, 0);
    assert!(got[..got.len() - 1]
        .iter()
        .all(|d| d.msg.hdr.cmd == cmd::DBG_SHELL | cmd::REPLY));
}

#[test]
fn circuit_dies_cleanly_when_a_link_on_its_path_dies() {
    let mut sim = line(4);
    let c = sim.open_circuit(0, 3).unwrap();
    sim.run_until_idle(STEPS).unwrap();
    assert_eq!(sim.take_circuit_events(0), vec![CircuitEvent::Up(c)]);
    let accepted = match sim.take_circuit_events(3).as_slice() {
        [CircuitEvent::Accepted(x)] => *x,
        e => panic!("{e:?}"),
    };
    // An open transaction each way.
    sim.circuit_link(0, c)
        .unwrap()
        .open(c.id, user_msg("a"))
        .unwrap();
    sim.circuit_link(3, accepted)
        .unwrap()
        .open(accepted.id, user_msg("b"))
        .unwrap();
    sim.run_until_idle(STEPS).unwrap();
    sim.take_inbox(0);
    sim.take_inbox(3);
    let e = sim.edge_between(1, 2).unwrap();
    sim.remove_edge(e);
    sim.run_until_idle(STEPS).unwrap();
    // Both ends saw the circuit go down, and their transactions aborted.
    let d0 = sim.take_circuit_events(0);
    assert!(
        matches!(d0.as_slice(), [CircuitEvent::Down { circuit, error }] if *circuit == c && *error != 0),
        "{d0:?}"
    );
    let d3 = sim.take_circuit_events(3);
    assert!(
        matches!(d3.as_slice(), [CircuitEvent::Down { error, .. }] if *error != 0),
        "{d3:?}"
    );
    for (i, inbox) in [(0, sim.take_inbox(0)), (3, sim.take_inbox(3))] {
        let aborts: Vec<_> = inbox
            .iter()
            .filter(|d| d.msg.hdr.cmd & (cmd::ABORT | cmd::DELETE) == cmd::ABORT | cmd::DELETE)
            .collect();
        assert_eq!(aborts.len(), 2, "node {i}: {inbox:?}");
    }
    assert_eq!(sim.circuit_total(), 0);
    assert!(sim.circuit_link(0, c).is_none());
    sim.check().unwrap();
    for i in 0..4 {
        for l in sim.ports(i) {
            assert_eq!(sim.link_end(l).unwrap().circuit_role(c.id), None);
            assert_eq!(
                sim.link_end(l).unwrap().txn_count(),
                sim.hub(i).unwrap().txn_count(l)
            );
        }
    }
}

#[test]
fn circuit_dies_when_its_span_is_withdrawn() {
    let mut sim = line(3);
    let before = baseline(&sim);
    let c = forge_and_ping(&mut sim, 0, 2);
    sim.remove_local_span(2);
    sim.run_until_idle(STEPS).unwrap();
    let d0 = sim.take_circuit_events(0);
    assert!(
        matches!(d0.as_slice(), [CircuitEvent::Down { circuit, error }] if *circuit == c && *error == err::CANTCIRC),
        "{d0:?}"
    );
    assert!(matches!(
        sim.take_circuit_events(2).as_slice(),
        [CircuitEvent::Down { error, .. }] if *error == err::CANTCIRC
    ));
    assert_eq!(sim.circuit_total(), 0);
    // Node 2's span and its relays are gone; otherwise back to before.
    let after = baseline(&sim);
    assert_eq!(after.len(), before.len());
    for ((_, _, ids_after), (_, _, ids_before)) in after.iter().zip(&before) {
        assert_eq!(ids_after, ids_before);
    }
    assert!(sim.errors().is_empty(), "{:?}", sim.errors());
    sim.check().unwrap();
}

#[test]
fn circuit_survives_flaps_of_links_it_does_not_use() {
    // A tree: 0-1-2-3 with 4 hanging off 1 and 5 off 2.
    let mut sim = Sim::new(6, SimConfig::default());
    for (a, b) in [(0, 1), (1, 2), (2, 3), (1, 4), (2, 5)] {
        sim.add_edge(a, b);
    }
    sim.run_until_idle(STEPS).unwrap();
    let c = forge_and_ping(&mut sim, 0, 3);
    for round in 0..3 {
        for (a, b) in [(1, 4), (2, 5)] {
            let e = sim.edge_between(a, b).unwrap();
            sim.remove_edge(e);
            sim.run_until_idle(STEPS).unwrap();
            sim.add_edge(a, b);
            sim.run_until_idle(STEPS).unwrap();
        }
        assert!(sim.take_circuit_events(0).is_empty(), "round {round}");
        assert!(sim.circuit_link(0, c).is_some());
        let l = sim.circuit_link(0, c).unwrap();
        let mut m = user_msg(&format!("round {round}"));
        m.hdr.cmd |= cmd::DELETE;
        l.open(c.id, m).unwrap();
        sim.run_until_idle(STEPS).unwrap();
        assert_eq!(texts(&sim.take_inbox(0)), vec![format!("round {round}")]);
        sim.check().unwrap();
    }
    assert!(sim.errors().is_empty(), "{:?}", sim.errors());
}
