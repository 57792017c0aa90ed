//! The wire format of WIRE.md: the core header, the `cmd` word, CRC-32C,
//! message bodies, and the frame encoder and decoder.
//!
//! **Byte order.** We speak little endian only. A peer whose magic reads as
//! 0x3248 is refused with [`DecodeError::OppositeEndian`]: the original
//! swaps only the 64-byte core header and never the bodies, so no body from
//! such a peer can be read correctly.

pub mod body;
pub mod cmd;
pub mod constants;
pub mod crc;
mod describe;
pub mod frame;
pub mod header;
pub mod label;
pub mod uuid;

pub use body::{
    BlkError, BlkOpen, BlkRead, Body, BodyError, DbgShell, LnkAuth, LnkCirc, LnkConn, LnkSpan,
    LnkVolconf, Media, MediaBlock, VolData,
};
pub use frame::{
    validate, zero_pad, DecodeError, Decoder, EncodeError, Encoder, FrameRef, Message,
};
pub use header::{Header, HEADER_SIZE};
pub use label::{Label, LabelError};
pub use uuid::{Uuid, UuidParseError};

/// `DMSG_HDR_MAGIC`.
pub const MAGIC: u16 = 0x4832;
/// `DMSG_HDR_MAGIC_REV`: the magic as an opposite-endian peer's bytes read.
pub const MAGIC_REV: u16 = 0x3248;
/// `DMSG_ALIGN`: every header and aux block is a multiple of this.
pub const ALIGN: usize = 64;
/// `DMSG_ALIGNMASK`.
pub const ALIGN_MASK: usize = ALIGN - 1;
/// `DMSG_HDR_MAX`: largest extended header, and `sizeof(dmsg_any_t)`.
pub const HDR_MAX: usize = 2048;
/// `DMSG_AUX_MAX`: largest aligned aux data.
pub const AUX_MAX: usize = 65536;
/// `DMSG_BUF_SIZE`.
pub const BUF_SIZE: usize = HDR_MAX * 4;
/// `DMSG_BUF_MASK`.
pub const BUF_MASK: usize = BUF_SIZE - 1;
/// `DMSG_IOQ_MAXIOVEC`.
pub const IOQ_MAXIOVEC: usize = 16;
/// `DMSG_LISTEN_PORT`.
pub const LISTEN_PORT: u16 = 987;

/// `DMSG_DOALIGN(n)`: `n` rounded up to a multiple of 64.
pub const fn doalign(n: usize) -> usize {
    (n + ALIGN_MASK) & !ALIGN_MASK
}

/// Zero bytes that follow `n` bytes of aux data.
pub const fn pad_len(n: usize) -> usize {
    doalign(n) - n
}

/// `DMSG_IOQ_ERROR_*`: the library's local link error codes (WIRE.md §6).
/// They reach the wire only in synthesized `LNK_ERROR` messages.
pub mod ioq_error {
    /// Bad magic.
    pub const SYNC: u32 = 1;
    /// End of file.
    pub const EOF: u32 = 2;
    /// Socket error.
    pub const SOCK: u32 = 3;
    /// Field out of range.
    pub const FIELD: u32 = 4;
    /// Header CRC (unused).
    pub const HCRC: u32 = 5;
    /// Extended header CRC.
    pub const XCRC: u32 = 6;
    /// Aux data CRC.
    pub const ACRC: u32 = 7;
    /// Illegal transaction state.
    pub const STATE: u32 = 8;
    /// No peer.
    pub const NOPEER: u32 = 9;
    /// No remote public key.
    pub const NORKEY: u32 = 10;
    /// No local key.
    pub const NOLKEY: u32 = 11;
    /// Key exchange failed.
    pub const KEYXCHGFAIL: u32 = 12;
    /// Bad key format.
    pub const KEYFMT: u32 = 13;
    /// Bad random source.
    pub const BADURANDOM: u32 = 14;
    /// Sequence byte mismatch.
    pub const MSGSEQ: u32 = 15;
    /// Already handled (a message that is dropped silently).
    pub const EALREADY: u32 = 16;
    /// Transaction error.
    pub const TRANS: u32 = 17;
    /// IV wrap.
    pub const IVWRAP: u32 = 18;
    /// GCM tag failure.
    pub const MACFAIL: u32 = 19;
    /// Bad algorithm.
    pub const ALGO: u32 = 20;
    /// Message was routed (not an error).
    pub const ROUTED: u32 = 21;
    /// Unknown circuit.
    pub const BAD_CIRCUIT: u32 = 22;
    /// Unused.
    pub const UNUSED23: u32 = 23;
    /// Asymmetric crypto configuration.
    pub const ASSYM: u32 = 24;
}

/// Protocol error codes carried in `head.error` (`DMSG_ERR_*`).
pub mod err {
    /// Not supported.
    pub const NOSUPP: u32 = 0x20;
    /// Link lost.
    pub const LOSTLINK: u32 = 0x21;
    /// Generic I/O error.
    pub const IO: u32 = 0x22;
    /// Generic parameter error.
    pub const PARAM: u32 = 0x23;
    /// Cannot build the circuit (typically a lost span).
    pub const CANTCIRC: u32 = 0x24;
}
