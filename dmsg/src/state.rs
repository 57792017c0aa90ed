//! Transaction rules (STATE.md §2–§3): which transaction a received message
//! belongs to, and whether the sequence of flags is legal.
//!
//! A transaction has two directions. Each direction goes through the same
//! three states, tracked by the flag bits sent (`txcmd`) and received
//! (`rxcmd`):
//!
//! ```text
//!            CREATE                 DELETE
//!   IDLE ─────────────────► OPEN ─────────────────► CLOSED
//!     │                                               ▲
//!     └──────────────── CREATE|DELETE ────────────────┘
//!
//!   The transaction is freed once both directions are CLOSED.
//! ```
//!
//! The side that sent the first CREATE is the *initiator* ([`Origin::Local`]
//! on that side, [`Origin::Remote`] on the other); everything the other side
//! sends carries REPLY. A received message is looked up among the
//! transactions we initiated when it carries REPLY, otherwise among those the
//! peer initiated; msgids of the two tables never collide.
//!
//! The original library aborts the process on several illegal sequences
//! (STATE.md §10 rows 4–8). Here each one becomes an [`RxAction`]: a message
//! naming no transaction is dropped and reported, and an illegal sequence on
//! an open transaction closes that transaction with an error.

use crate::wire::cmd::{ABORT, CREATE, DELETE, REPLY};
use std::fmt;

/// Identifies one transaction of one link for its whole life. Never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TxnId(pub u64);

/// Which side opened a transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Origin {
    /// We sent the CREATE (the C library's `statewr_tree`).
    Local,
    /// The peer sent the CREATE (the C library's `staterd_tree`).
    Remote,
}

/// A snapshot of a transaction's state, as the C library's `dmsg_state`
/// shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxnInfo {
    /// The transaction.
    pub id: TxnId,
    /// The circuit it runs on (0 for the link itself).
    pub circuit: u64,
    /// Its msgid on the wire.
    pub msgid: u64,
    /// Who opened it.
    pub origin: Origin,
    /// Base command of the creating message.
    pub icmd: u32,
    /// Flags we have sent (REPLY set when we are the reply side).
    pub txcmd: u32,
    /// Flags we have received.
    pub rxcmd: u32,
}

impl TxnInfo {
    /// Our direction is closed: we sent DELETE.
    pub fn tx_closed(&self) -> bool {
        self.txcmd & DELETE != 0
    }

    /// The peer's direction is closed: it sent DELETE.
    pub fn rx_closed(&self) -> bool {
        self.rxcmd & DELETE != 0
    }

    /// Both directions are closed: the transaction is over.
    pub fn is_done(&self) -> bool {
        self.tx_closed() && self.rx_closed()
    }
}

/// A protocol violation found in a received message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Violation {
    /// CREATE reusing the msgid of a transaction the peer already has open
    /// (STATE.md §10 row 4).
    DuplicateCreate,
    /// DELETE for a msgid with no open transaction (row 5).
    DeleteUnknown,
    /// REPLY|CREATE for a transaction we never opened (row 6).
    ReplyCreateUnknown,
    /// REPLY|DELETE for a transaction we never opened (row 7).
    ReplyDeleteUnknown,
    /// REPLY|DELETE before any REPLY|CREATE on our transaction (row 8).
    ReplyDeleteBeforeCreate,
    /// A second DELETE, or a CREATE after DELETE, in one direction.
    AfterDelete,
    /// A message on a circuit this link does not know (row 2).
    UnknownCircuit,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Violation::DuplicateCreate => "CREATE reuses the msgid of an open transaction",
            Violation::DeleteUnknown => "DELETE for no open transaction",
            Violation::ReplyCreateUnknown => "REPLY|CREATE for a transaction we never opened",
            Violation::ReplyDeleteUnknown => "REPLY|DELETE for a transaction we never opened",
            Violation::ReplyDeleteBeforeCreate => "REPLY|DELETE before REPLY|CREATE",
            Violation::AfterDelete => "message after the peer's DELETE",
            Violation::UnknownCircuit => "message on an unknown circuit",
        })
    }
}

/// What to do with a received message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxAction {
    /// Deliver it, inside the transaction found (if any), after recording
    /// its CREATE/DELETE bits in `rxcmd`.
    Deliver,
    /// It opens a new transaction of the peer's.
    Open,
    /// Drop it without a word: an abort for a transaction already gone.
    Ignore,
    /// Drop it and report the violation; no transaction is touched.
    Reject(Violation),
    /// Drop it, report the violation and close the transaction it names
    /// with an error at both ends.
    Fail(Violation),
}

/// Decides what a received `cmd` does, given the `rxcmd` of the transaction
/// it names (looked up by REPLY as the module doc says), or `None`.
pub fn classify(cmd: u32, found: Option<u32>) -> RxAction {
    let abort = cmd & ABORT != 0;
    let quiet_or = |v| {
        if abort {
            RxAction::Ignore
        } else {
            RxAction::Reject(v)
        }
    };
    match (cmd & (CREATE | DELETE | REPLY), found) {
        // One-way, or mid-stream inside a transaction.
        (0, _) | (REPLY, _) => match found {
            Some(rx) if abort && (rx & CREATE == 0 || rx & DELETE != 0) => RxAction::Ignore,
            None if abort => RxAction::Ignore,
            _ => RxAction::Deliver,
        },
        (c, None) if c & CREATE != 0 && c & REPLY == 0 => RxAction::Open,
        (c, Some(_)) if c & CREATE != 0 && c & REPLY == 0 => {
            RxAction::Fail(Violation::DuplicateCreate)
        }
        (c, None) if c & CREATE != 0 => RxAction::Reject(Violation::ReplyCreateUnknown),
        (c, Some(rx)) if c & CREATE != 0 => {
            if rx & DELETE != 0 {
                quiet_or(Violation::AfterDelete)
            } else {
                RxAction::Deliver
            }
        }
        (DELETE, None) => quiet_or(Violation::DeleteUnknown),
        (_, None) => quiet_or(Violation::ReplyDeleteUnknown),
        (_, Some(rx)) if rx & DELETE != 0 => quiet_or(Violation::AfterDelete),
        // DELETE on the peer's transaction: its rxcmd always has CREATE.
        (DELETE, Some(_)) => RxAction::Deliver,
        // REPLY|DELETE on ours before the peer ever replied: an abort is a
        // legitimate way to refuse our transaction; anything else is not.
        (_, Some(rx)) if rx & CREATE == 0 && !abort => {
            RxAction::Fail(Violation::ReplyDeleteBeforeCreate)
        }
        (_, Some(_)) => RxAction::Deliver,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPEN_REMOTE: u32 = CREATE;
    const OPEN_LOCAL_REPLIED: u32 = REPLY | CREATE;
    const OPEN_LOCAL_UNREPLIED: u32 = REPLY;

    #[test]
    fn one_way_and_mid_stream() {
        assert_eq!(classify(0, None), RxAction::Deliver);
        assert_eq!(classify(REPLY, None), RxAction::Deliver);
        assert_eq!(classify(0, Some(OPEN_REMOTE)), RxAction::Deliver);
        assert_eq!(classify(ABORT, None), RxAction::Ignore);
        assert_eq!(classify(ABORT, Some(OPEN_REMOTE)), RxAction::Deliver);
        assert_eq!(
            classify(REPLY | ABORT, Some(OPEN_LOCAL_UNREPLIED)),
            RxAction::Ignore
        );
    }

    #[test]
    fn creates() {
        assert_eq!(classify(CREATE, None), RxAction::Open);
        assert_eq!(classify(CREATE | DELETE, None), RxAction::Open);
        assert_eq!(
            classify(CREATE, Some(OPEN_REMOTE)),
            RxAction::Fail(Violation::DuplicateCreate)
        );
        assert_eq!(
            classify(REPLY | CREATE, None),
            RxAction::Reject(Violation::ReplyCreateUnknown)
        );
        assert_eq!(
            classify(REPLY | CREATE, Some(OPEN_LOCAL_UNREPLIED)),
            RxAction::Deliver
        );
        assert_eq!(
            classify(REPLY | CREATE | DELETE, Some(OPEN_LOCAL_UNREPLIED)),
            RxAction::Deliver
        );
    }

    #[test]
    fn deletes() {
        assert_eq!(
            classify(DELETE, None),
            RxAction::Reject(Violation::DeleteUnknown)
        );
        assert_eq!(classify(DELETE | ABORT, None), RxAction::Ignore);
        assert_eq!(classify(DELETE, Some(OPEN_REMOTE)), RxAction::Deliver);
        assert_eq!(
            classify(DELETE, Some(OPEN_REMOTE | DELETE)),
            RxAction::Reject(Violation::AfterDelete)
        );
        assert_eq!(
            classify(REPLY | DELETE, None),
            RxAction::Reject(Violation::ReplyDeleteUnknown)
        );
        assert_eq!(classify(REPLY | DELETE | ABORT, None), RxAction::Ignore);
        assert_eq!(
            classify(REPLY | DELETE, Some(OPEN_LOCAL_UNREPLIED)),
            RxAction::Fail(Violation::ReplyDeleteBeforeCreate)
        );
        assert_eq!(
            classify(REPLY | DELETE | ABORT, Some(OPEN_LOCAL_UNREPLIED)),
            RxAction::Deliver
        );
        assert_eq!(
            classify(REPLY | DELETE, Some(OPEN_LOCAL_REPLIED)),
            RxAction::Deliver
        );
    }
}
