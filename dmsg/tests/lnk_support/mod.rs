//! A hub wired to test-controlled peers over real `Link`s in memory.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use dmsg::link::{CircuitRole, Event, Link, LinkConfig, SendError};
use dmsg::lnk::{Hub, HubConfig, HubEvent, LinkId, Links, LnkError};
use dmsg::state::TxnId;
use dmsg::wire::{cmd, Header, LnkSpan, Message};
use std::collections::BTreeMap;

/// Our end and the peer's end of each link.
pub struct Ends(pub BTreeMap<LinkId, (Link, Link)>);

impl Ends {
    fn ours(&mut self, id: LinkId) -> Result<&mut Link, SendError> {
        self.0
            .get_mut(&id)
            .map(|e| &mut e.0)
            .ok_or(SendError::LinkDown)
    }
}

impl Links for Ends {
    fn open(&mut self, link: LinkId, msg: Message) -> Result<(TxnId, u64), SendError> {
        let l = self.ours(link)?;
        let id = l.open(0, msg)?;
        Ok((id, l.txn(id).unwrap().msgid))
    }
    fn send(&mut self, link: LinkId, txn: TxnId, msg: Message) -> Result<(), SendError> {
        self.ours(link)?.send(txn, msg)
    }
    fn reply(&mut self, link: LinkId, txn: TxnId, error: u32) -> Result<(), SendError> {
        self.ours(link)?.reply(txn, error)
    }
    fn result(&mut self, link: LinkId, txn: TxnId, error: u32) -> Result<(), SendError> {
        self.ours(link)?.result(txn, error)
    }
    fn reply_oneway(&mut self, link: LinkId, to: &Header, error: u32) -> Result<(), SendError> {
        self.ours(link)?.reply_oneway(to, error)
    }
    fn forward(&mut self, link: LinkId, msg: Message) -> Result<(), SendError> {
        self.ours(link)?.forward(msg)
    }
    fn add_circuit(&mut self, link: LinkId, id: u64, role: CircuitRole) -> Result<(), SendError> {
        self.ours(link)?.add_circuit(id, role);
        Ok(())
    }
    fn remove_circuit(&mut self, link: LinkId, id: u64, error: u32) {
        if let Ok(l) = self.ours(link) {
            l.remove_circuit(id, error);
        }
    }
}

/// The hub under test and its peers.
pub struct Rig {
    pub hub: Hub,
    pub ends: Ends,
    pub errors: Vec<(LinkId, LnkError)>,
    pub hub_events: Vec<HubEvent>,
    pub peer_events: BTreeMap<LinkId, Vec<Event>>,
    /// Messages the hub's links delivered on circuits ending at the hub.
    pub hub_circuit_msgs: Vec<(LinkId, Message)>,
}

impl Rig {
    pub fn new(cfg: HubConfig) -> Rig {
        Rig {
            hub: Hub::new(cfg),
            ends: Ends(BTreeMap::new()),
            errors: Vec::new(),
            hub_events: Vec::new(),
            peer_events: BTreeMap::new(),
            hub_circuit_msgs: Vec::new(),
        }
    }

    /// A new link whose peer sends `dmsg_master_service`'s LNK_CONN.
    pub fn connect(&mut self, id: u64) -> LinkId {
        let l = self.link(id);
        self.peer(l)
            .open(
                0,
                Message::with_body(cmd::CREATE, &dmsg::sim::master_conn()),
            )
            .unwrap();
        self.pump();
        assert!(self.hub.has_conn(l));
        l
    }

    /// A new link, no LNK_CONN.
    pub fn link(&mut self, id: u64) -> LinkId {
        let l = LinkId(id);
        let cfg = |m| LinkConfig {
            first_msgid: m,
            salt_seed: id as u32,
        };
        self.ends
            .0
            .insert(l, (Link::new(cfg(0x1000)), Link::new(cfg(0x9000_0000))));
        self.hub.add_link(l, id as i64 + 100);
        l
    }

    pub fn peer(&mut self, l: LinkId) -> &mut Link {
        &mut self.ends.0.get_mut(&l).unwrap().1
    }

    /// Moves bytes and events until quiet; the hub signals after each batch.
    pub fn pump(&mut self) {
        loop {
            let mut moved = false;
            let ids: Vec<LinkId> = self.ends.0.keys().copied().collect();
            for l in ids {
                let (ours, peer) = self.ends.0.get_mut(&l).unwrap();
                let a: Vec<u8> = ours.pending_tx().flatten().copied().collect();
                ours.consume_tx(a.len());
                let b: Vec<u8> = peer.pending_tx().flatten().copied().collect();
                peer.consume_tx(b.len());
                moved |= !a.is_empty() || !b.is_empty();
                peer.receive(&a);
                ours.receive(&b);
                while let Some(ev) = self.ends.0.get_mut(&l).unwrap().1.poll_event() {
                    moved = true;
                    self.peer_events.entry(l).or_default().push(ev);
                }
                while let Some(ev) = self.ends.0.get_mut(&l).unwrap().0.poll_event() {
                    moved = true;
                    if let Err(e) = self.hub.on_event(l, &ev, &mut self.ends) {
                        self.errors.push((l, e));
                    }
                    if let Event::Message { msg, .. } = &ev {
                        if msg.hdr.circuit != 0 && !matches!(ev, Event::Relay { .. }) {
                            self.hub_circuit_msgs.push((l, msg.clone()));
                        }
                    }
                }
            }
            self.hub.signal(&mut self.ends);
            while let Some(e) = self.hub.poll_event() {
                self.hub_events.push(e);
            }
            if !moved {
                return;
            }
        }
    }

    /// Takes the peer's events of link `l`.
    pub fn take_peer(&mut self, l: LinkId) -> Vec<Event> {
        self.peer_events.remove(&l).unwrap_or_default()
    }

    /// The SPAN CREATEs the peer of `l` received, with their bodies.
    pub fn spans_received(&mut self, l: LinkId) -> Vec<LnkSpan> {
        self.take_peer(l)
            .into_iter()
            .filter_map(|e| match e {
                Event::Message { msg, .. }
                    if cmd::base(msg.hdr.cmd) == cmd::LNK_SPAN
                        && msg.hdr.cmd & cmd::CREATE != 0 =>
                {
                    Some(msg.body::<LnkSpan>().unwrap())
                }
                _ => None,
            })
            .collect()
    }
}

/// A span of node `name` at `dist`.
pub fn span(name: &str, dist: u32) -> LnkSpan {
    let mut s = dmsg::sim::default_span(0);
    s.fs_label = dmsg::wire::Label::new(name).unwrap();
    s.pfs_fsid = dmsg::wire::Uuid([name.len() as u8; 16]);
    s.dist = dist;
    s
}
