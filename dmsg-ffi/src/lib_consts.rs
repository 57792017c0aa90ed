//! The library's own constants of `<dmsg.h>` (C-ABI.md §2).
//!
//! Every constant of this file goes to `include/dmsg.h`. The string
//! constants `DMSG_DEFAULT_DIR` and `DMSG_PATH_REMOTE` are verbatim C in
//! `tools/gen-headers/src/main.rs` (cbindgen cannot emit string literals).

/// TCP port of the cluster service.
pub const DMSG_LISTEN_PORT: i32 = 987;

/// Plaintext bytes per encrypted chunk (`DMSG_ALIGN`).
pub const DMSG_CRYPTO_CHUNK_SIZE: usize = 64;
/// Largest IV of any algorithm.
pub const DMSG_MAX_IV_SIZE: usize = 32;
/// AES-256-GCM: fixed part of the IV.
pub const DMSG_CRYPTO_GCM_IV_FIXED_SIZE: usize = 4;
/// AES-256-GCM: IV size.
pub const DMSG_CRYPTO_GCM_IV_SIZE: usize = 12;
/// AES-256-GCM: key size.
pub const DMSG_CRYPTO_GCM_KEY_SIZE: usize = 32;
/// AES-256-GCM: tag size.
pub const DMSG_CRYPTO_GCM_TAG_SIZE: usize = 16;
/// Index of AES-256-GCM in the algorithm table.
pub const DMSG_CRYPTO_ALGO_GCM_IDX: i32 = 0;
/// The algorithm in use.
pub const DMSG_CRYPTO_ALGO: i32 = 0;

/// `dmsg_state.flags`: in a state tree.
pub const DMSG_STATE_INSERTED: i32 = 0x0001;
/// `dmsg_state.flags`: allocated by the library.
pub const DMSG_STATE_DYNAMIC: i32 = 0x0002;
/// `dmsg_state.flags`: node id state.
pub const DMSG_STATE_NODEID: i32 = 0x0004;

/// `dmsg_ioq.state`: reading the core header.
pub const DMSG_MSGQ_STATE_HEADER1: i32 = 0;
/// `dmsg_ioq.state`: reading the extended header.
pub const DMSG_MSGQ_STATE_HEADER2: i32 = 1;
/// `dmsg_ioq.state`: reading aux data.
pub const DMSG_MSGQ_STATE_AUXDATA1: i32 = 2;
/// `dmsg_ioq.state`: aux data complete.
pub const DMSG_MSGQ_STATE_AUXDATA2: i32 = 3;
/// `dmsg_ioq.state`: the queue is in error.
pub const DMSG_MSGQ_STATE_ERROR: i32 = 4;

/// Bad magic.
pub const DMSG_IOQ_ERROR_SYNC: i32 = 1;
/// End of file.
pub const DMSG_IOQ_ERROR_EOF: i32 = 2;
/// Socket error.
pub const DMSG_IOQ_ERROR_SOCK: i32 = 3;
/// Field out of range.
pub const DMSG_IOQ_ERROR_FIELD: i32 = 4;
/// Core header CRC.
pub const DMSG_IOQ_ERROR_HCRC: i32 = 5;
/// Extended header CRC.
pub const DMSG_IOQ_ERROR_XCRC: i32 = 6;
/// Aux data CRC.
pub const DMSG_IOQ_ERROR_ACRC: i32 = 7;
/// Illegal transaction state.
pub const DMSG_IOQ_ERROR_STATE: i32 = 8;
/// No peer.
pub const DMSG_IOQ_ERROR_NOPEER: i32 = 9;
/// No remote public key.
pub const DMSG_IOQ_ERROR_NORKEY: i32 = 10;
/// No local key.
pub const DMSG_IOQ_ERROR_NOLKEY: i32 = 11;
/// Key exchange failed.
pub const DMSG_IOQ_ERROR_KEYXCHGFAIL: i32 = 12;
/// Bad key format.
pub const DMSG_IOQ_ERROR_KEYFMT: i32 = 13;
/// Bad random source.
pub const DMSG_IOQ_ERROR_BADURANDOM: i32 = 14;
/// Sequence byte mismatch.
pub const DMSG_IOQ_ERROR_MSGSEQ: i32 = 15;
/// Already handled.
pub const DMSG_IOQ_ERROR_EALREADY: i32 = 16;
/// Transaction error.
pub const DMSG_IOQ_ERROR_TRANS: i32 = 17;
/// IV wrap.
pub const DMSG_IOQ_ERROR_IVWRAP: i32 = 18;
/// GCM tag failure.
pub const DMSG_IOQ_ERROR_MACFAIL: i32 = 19;
/// Bad algorithm.
pub const DMSG_IOQ_ERROR_ALGO: i32 = 20;
/// Message was routed.
pub const DMSG_IOQ_ERROR_ROUTED: i32 = 21;
/// Unknown circuit.
pub const DMSG_IOQ_ERROR_BAD_CIRCUIT: i32 = 22;
/// Unused.
pub const DMSG_IOQ_ERROR_UNUSED23: i32 = 23;
/// Asymmetric crypto configuration.
pub const DMSG_IOQ_ERROR_ASSYM: i32 = 24;

/// Most iovecs one write gathers.
pub const DMSG_IOQ_MAXIOVEC: i32 = 16;

/// `dmsg_iocom.flags`: stop the event loop.
pub const DMSG_IOCOMF_EOF: i32 = 0x0001;
/// Want POLLIN.
pub const DMSG_IOCOMF_RREQ: i32 = 0x0002;
/// Want POLLOUT.
pub const DMSG_IOCOMF_WREQ: i32 = 0x0004;
/// Socket readable.
pub const DMSG_IOCOMF_RWORK: i32 = 0x0008;
/// Socket writable.
pub const DMSG_IOCOMF_WWORK: i32 = 0x0010;
/// Wakeup pipe readable.
pub const DMSG_IOCOMF_PWORK: i32 = 0x0020;
/// Alt fd readable.
pub const DMSG_IOCOMF_ARWORK: i32 = 0x0040;
/// Alt fd writable (unused).
pub const DMSG_IOCOMF_AWWORK: i32 = 0x0080;
/// Call the signal callback.
pub const DMSG_IOCOMF_SWORK: i32 = 0x0100;
/// The link is encrypted.
pub const DMSG_IOCOMF_CRYPTED: i32 = 0x0200;
/// Close the alt fd in `dmsg_iocom_done`.
pub const DMSG_IOCOMF_CLOSEALT: i32 = 0x0400;

/// Node event: a node appeared.
pub const DMSG_NODEOP_ADD: i32 = 1;
/// Node event: a node went away.
pub const DMSG_NODEOP_DEL: i32 = 2;

#[cfg(test)]
mod tests {
    use super::*;
    use dmsg::wire::{self, ioq_error};

    #[test]
    fn ioq_errors_match_the_core_crate() {
        let table = [
            (DMSG_IOQ_ERROR_SYNC, ioq_error::SYNC),
            (DMSG_IOQ_ERROR_EOF, ioq_error::EOF),
            (DMSG_IOQ_ERROR_SOCK, ioq_error::SOCK),
            (DMSG_IOQ_ERROR_FIELD, ioq_error::FIELD),
            (DMSG_IOQ_ERROR_HCRC, ioq_error::HCRC),
            (DMSG_IOQ_ERROR_XCRC, ioq_error::XCRC),
            (DMSG_IOQ_ERROR_ACRC, ioq_error::ACRC),
            (DMSG_IOQ_ERROR_STATE, ioq_error::STATE),
            (DMSG_IOQ_ERROR_NOPEER, ioq_error::NOPEER),
            (DMSG_IOQ_ERROR_NORKEY, ioq_error::NORKEY),
            (DMSG_IOQ_ERROR_NOLKEY, ioq_error::NOLKEY),
            (DMSG_IOQ_ERROR_KEYXCHGFAIL, ioq_error::KEYXCHGFAIL),
            (DMSG_IOQ_ERROR_KEYFMT, ioq_error::KEYFMT),
            (DMSG_IOQ_ERROR_BADURANDOM, ioq_error::BADURANDOM),
            (DMSG_IOQ_ERROR_MSGSEQ, ioq_error::MSGSEQ),
            (DMSG_IOQ_ERROR_EALREADY, ioq_error::EALREADY),
            (DMSG_IOQ_ERROR_TRANS, ioq_error::TRANS),
            (DMSG_IOQ_ERROR_IVWRAP, ioq_error::IVWRAP),
            (DMSG_IOQ_ERROR_MACFAIL, ioq_error::MACFAIL),
            (DMSG_IOQ_ERROR_ALGO, ioq_error::ALGO),
            (DMSG_IOQ_ERROR_ROUTED, ioq_error::ROUTED),
            (DMSG_IOQ_ERROR_BAD_CIRCUIT, ioq_error::BAD_CIRCUIT),
            (DMSG_IOQ_ERROR_UNUSED23, ioq_error::UNUSED23),
            (DMSG_IOQ_ERROR_ASSYM, ioq_error::ASSYM),
        ];
        for (i, (ours, core)) in table.into_iter().enumerate() {
            assert_eq!(u32::try_from(ours).ok(), Some(core));
            // The codes are 1..=24 in order, with no gap.
            assert_eq!(usize::try_from(ours).ok(), Some(i + 1));
        }
    }

    #[test]
    fn misc_match_the_core_crate() {
        assert_eq!(
            u16::try_from(DMSG_LISTEN_PORT).ok(),
            Some(wire::LISTEN_PORT)
        );
        assert_eq!(
            usize::try_from(DMSG_IOQ_MAXIOVEC).ok(),
            Some(wire::IOQ_MAXIOVEC)
        );
        assert_eq!(DMSG_CRYPTO_CHUNK_SIZE, wire::ALIGN);
        assert_eq!(
            DMSG_CRYPTO_GCM_IV_SIZE,
            DMSG_CRYPTO_GCM_IV_FIXED_SIZE + core::mem::size_of::<u64>()
        );
    }
}
