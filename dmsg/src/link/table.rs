//! The transaction tables of a link: every live transaction by its id, and
//! by its wire identity (circuit, origin, msgid).
//!
//! They are consulted on every open, received message and close, so the
//! hashing is chosen by who picks the keys:
//!
//! - transaction ids and the msgids of the transactions we open are chosen
//!   by this link, so they are hashed with one multiplication
//!   ([`IdHasher`]); a peer can make us *look up* any msgid there (a REPLY
//!   names one) but cannot add entries, so it cannot crowd a bucket;
//! - the msgids of the transactions the peer opens are the peer's choice,
//!   so that table keeps the standard library's keyed SipHash (a peer that
//!   cannot see the key cannot pick colliding msgids).

use crate::state::{Origin, TxnId, TxnInfo};
use crate::wire::cmd::CREATE;
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};

/// A hasher for keys this link chooses itself (never for a peer's): each
/// `u64` written is mixed in with a rotation, an xor and a multiplication
/// by an odd constant, which spreads consecutive values over the table.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct IdHasher(u64);

/// 2^64 divided by the golden ratio, odd.
const MIX: u64 = 0x9E37_79B9_7F4A_7C15;

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(MIX);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(29) ^ n).wrapping_mul(MIX);
    }

    fn write_u128(&mut self, n: u128) {
        // Both halves; truncation intended.
        self.write_u64((n >> 64) as u64);
        self.write_u64(n as u64);
    }
}

type Ids = BuildHasherDefault<IdHasher>;

/// (circuit, msgid) of a transaction: hashed as one 16-byte write (two
/// `u64` writes cost SipHash a second trip through its buffering).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Wire {
    circuit: u64,
    msgid: u64,
}

impl Hash for Wire {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u128(u128::from(self.circuit) << 64 | u128::from(self.msgid));
    }
}

/// The live transactions of a link; see the module documentation.
#[derive(Debug, Default)]
pub(crate) struct Table {
    txns: HashMap<TxnId, TxnInfo, Ids>,
    /// Transactions we opened ([`Origin::Local`]).
    ours: HashMap<Wire, TxnId, Ids>,
    /// Transactions the peer opened ([`Origin::Remote`]).
    theirs: HashMap<Wire, TxnId, RandomState>,
    /// How many of them are [`unanswered`].
    unanswered: usize,
}

/// A transaction we opened that has received nothing from the peer yet.
fn unanswered(t: &TxnInfo) -> bool {
    t.origin == Origin::Local && t.rxcmd & CREATE == 0
}

impl Table {
    /// The transaction with this wire identity. No lookup at all while
    /// no transaction of that origin is open (one-way traffic): inlined,
    /// so that the check for that costs no call.
    #[inline]
    pub(crate) fn find(&self, circuit: u64, origin: Origin, msgid: u64) -> Option<TxnId> {
        let map_key = Wire { circuit, msgid };
        match origin {
            Origin::Local if !self.ours.is_empty() => self.lookup(Origin::Local, &map_key),
            Origin::Remote if !self.theirs.is_empty() => self.lookup(Origin::Remote, &map_key),
            _ => None,
        }
    }

    /// The map lookup of [`Table::find`], out of line.
    #[inline(never)]
    fn lookup(&self, origin: Origin, key: &Wire) -> Option<TxnId> {
        match origin {
            Origin::Local => self.ours.get(key).copied(),
            Origin::Remote => self.theirs.get(key).copied(),
        }
    }

    /// The transaction `id`.
    pub(crate) fn get(&self, id: TxnId) -> Option<&TxnInfo> {
        self.txns.get(&id)
    }

    /// Adds `flags` to what transaction `id` has sent; returns it as it
    /// is now.
    pub(crate) fn mark_sent(&mut self, id: TxnId, flags: u32) -> Option<TxnInfo> {
        let t = self.txns.get_mut(&id)?;
        t.txcmd |= flags;
        Some(*t)
    }

    /// Adds `flags` to what transaction `id` has received; returns it as
    /// it is now.
    pub(crate) fn mark_received(&mut self, id: TxnId, flags: u32) -> Option<TxnInfo> {
        let t = self.txns.get_mut(&id)?;
        let was = unanswered(t);
        t.rxcmd |= flags;
        let info = *t;
        if was && !unanswered(&info) {
            self.unanswered -= 1;
        }
        Some(info)
    }

    /// Adds a transaction (its id and wire identity are not in use).
    pub(crate) fn insert(&mut self, info: TxnInfo) {
        let key = Wire {
            circuit: info.circuit,
            msgid: info.msgid,
        };
        match info.origin {
            Origin::Local => self.ours.insert(key, info.id),
            Origin::Remote => self.theirs.insert(key, info.id),
        };
        if unanswered(&info) {
            self.unanswered += 1;
        }
        self.txns.insert(info.id, info);
    }

    /// Removes transaction `id` from every table.
    pub(crate) fn remove(&mut self, id: TxnId) -> Option<TxnInfo> {
        let t = self.txns.remove(&id)?;
        let key = Wire {
            circuit: t.circuit,
            msgid: t.msgid,
        };
        match t.origin {
            Origin::Local => self.ours.remove(&key),
            Origin::Remote => self.theirs.remove(&key),
        };
        if unanswered(&t) {
            self.unanswered -= 1;
        }
        Some(t)
    }

    /// How many transactions we opened have had no answer from the peer
    /// yet (nothing received on them).
    pub(crate) fn unanswered(&self) -> usize {
        self.unanswered
    }

    /// The ids of the transactions that `keep` selects, oldest first.
    pub(crate) fn ids(&self, keep: impl Fn(&TxnInfo) -> bool) -> Vec<TxnId> {
        let mut ids: Vec<TxnId> = self
            .txns
            .values()
            .filter(|t| keep(t))
            .map(|t| t.id)
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Number of live transactions.
    pub(crate) fn len(&self) -> usize {
        self.txns.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    fn info(id: u64, origin: Origin, circuit: u64, msgid: u64) -> TxnInfo {
        TxnInfo {
            id: TxnId(id),
            circuit,
            msgid,
            origin,
            icmd: 0,
            txcmd: 0,
            rxcmd: 0,
        }
    }

    #[test]
    fn origins_are_apart_and_removal_clears_every_table() {
        let mut t = Table::default();
        t.insert(info(1, Origin::Local, 0, 7));
        t.insert(info(2, Origin::Remote, 0, 7));
        t.insert(info(3, Origin::Remote, 5, 7));
        assert_eq!(t.find(0, Origin::Local, 7), Some(TxnId(1)));
        assert_eq!(t.find(0, Origin::Remote, 7), Some(TxnId(2)));
        assert_eq!(t.find(5, Origin::Remote, 7), Some(TxnId(3)));
        assert_eq!(t.find(5, Origin::Local, 7), None);
        assert_eq!(t.ids(|i| i.msgid == 7), vec![TxnId(1), TxnId(2), TxnId(3)]);
        assert_eq!(t.remove(TxnId(2)).map(|i| i.id), Some(TxnId(2)));
        assert_eq!(t.find(0, Origin::Remote, 7), None);
        assert!(t.get(TxnId(2)).is_none());
        assert_eq!(t.remove(TxnId(2)), None);
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn ids_are_oldest_first() {
        let mut t = Table::default();
        for id in (1..200).rev() {
            t.insert(info(id, Origin::Local, 0, id * 3));
        }
        let all = t.ids(|_| true);
        assert_eq!(all, (1..200).map(TxnId).collect::<Vec<_>>());
    }

    /// Consecutive ids land in different buckets of a small table.
    #[test]
    fn consecutive_ids_spread() {
        let b = Ids::default();
        let mut low: Vec<u64> = (0..64u64).map(|i| b.hash_one(TxnId(i)) & 63).collect();
        low.sort_unstable();
        low.dedup();
        assert_eq!(low.len(), 64);
    }
}
