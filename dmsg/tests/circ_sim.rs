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
