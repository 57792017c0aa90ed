//! What a link reports to the layer above, and its errors.

use crate::state::{TxnId, TxnInfo, Violation};
use crate::wire::{ioq_error, DecodeError, EncodeError, FrameRef, Header, Message, HEADER_SIZE};
use std::fmt;

/// Something the link has to tell the layer above. Poll them with
/// [`super::Link::poll_event`] after every input.
#[derive(Debug)]
pub enum Event {
    /// A message for us: one-way (`txn` is `None`) or inside a transaction.
    /// `txn` shows the transaction after this message was accounted for. The
    /// aborts synthesized when a link or transaction fails arrive this way
    /// too, as `LNK_ERROR` with ABORT|DELETE and a non-zero error.
    Message {
        /// The message.
        msg: Message,
        /// Its transaction.
        txn: Option<TxnInfo>,
    },
    /// A transaction is over (both directions closed) and its id is dead.
    Closed(TxnId),
    /// The peer broke the transaction rules; the message was dropped, and
    /// when it named an open transaction, that transaction was failed.
    Violation {
        /// What was wrong.
        violation: Violation,
        /// The header of the offending message.
        hdr: Header,
    },
    /// A message on a circuit this link relays: hand it to the other half.
    Relay {
        /// The message, with `hdr.circuit` still as received.
        msg: Message,
    },
    /// [`Event::Relay`] of a frame left where it was read: only
    /// [`super::Link::receive_in_place`] reports these, for the frames on
    /// relay circuits that the bytes of that call hold whole. The frame
    /// is in those bytes ([`FrameAt::get`]), which the caller keeps until
    /// it has handled the event.
    RelayFrame(FrameAt),
    /// The link is down. Every transaction has been aborted before this
    /// event; nothing follows it.
    Down(LinkError),
}

/// Where a whole frame lies in the bytes given to
/// [`super::Link::receive_in_place`] ([`Event::RelayFrame`]). Only its
/// offset: an event that holds more (the header) makes every [`Event`]
/// slower to move, relayed or not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameAt {
    /// Offset of the frame's first byte.
    start: usize,
}

impl FrameAt {
    pub(super) fn new(start: usize) -> FrameAt {
        FrameAt { start }
    }

    /// The frame, in `input`: the bytes that were given to the
    /// [`super::Link::receive_in_place`] call that reported it (the
    /// decoder checked it there). `None` if `input` is too short to be
    /// those bytes.
    pub fn get<'a>(&self, input: &'a [u8]) -> Option<FrameRef<'a>> {
        let bytes = input.get(self.start..)?;
        let hdr = Header::parse(bytes.first_chunk::<HEADER_SIZE>()?);
        let aux_at = hdr.header_size();
        let aux_end = aux_at.checked_add(usize::try_from(hdr.aux_bytes).ok()?)?;
        Some(FrameRef {
            hdr,
            ext: bytes.get(HEADER_SIZE..aux_at)?,
            aux: bytes.get(aux_at..aux_end)?,
        })
    }
}

/// Why a link went down.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkError {
    /// The peer closed the stream.
    Eof,
    /// The transport failed.
    Io(String),
    /// The byte stream was refused by the frame decoder.
    Decode(DecodeError),
    /// The encrypted stream failed (bad tag, handshake failure).
    Crypto {
        /// The `DMSG_IOQ_ERROR_*` code.
        code: u32,
        /// What went wrong.
        reason: String,
    },
    /// We closed it.
    Shutdown,
}

impl LinkError {
    /// The `DMSG_IOQ_ERROR_*` code, as carried by the synthesized aborts.
    pub fn code(&self) -> u32 {
        match self {
            LinkError::Eof | LinkError::Shutdown => ioq_error::EOF,
            LinkError::Io(_) => ioq_error::SOCK,
            LinkError::Decode(e) => e.ioq_error(),
            LinkError::Crypto { code, .. } => *code,
        }
    }
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkError::Eof => f.write_str("peer closed the connection"),
            LinkError::Io(e) => write!(f, "transport error: {e}"),
            LinkError::Decode(e) => write!(f, "bad frame: {e}"),
            LinkError::Crypto { reason, .. } => write!(f, "crypto failure: {reason}"),
            LinkError::Shutdown => f.write_str("link shut down"),
        }
    }
}

impl std::error::Error for LinkError {}

/// Why a message could not be sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendError {
    /// The link is down.
    LinkDown,
    /// No such transaction (never existed, or already over).
    UnknownTxn(TxnId),
    /// Our side of the transaction is already closed.
    Closed(TxnId),
    /// A transaction is opened with CREATE and without REPLY; this message
    /// is not that.
    NotACreate(u32),
    /// The message itself is malformed.
    Encode(EncodeError),
    /// The link's transmit queue is far over its limit: a relay refuses to
    /// queue more on it (see `dmsg::service::RELAY_QUEUE_FACTOR`).
    Congested,
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::LinkDown => f.write_str("link is down"),
            SendError::UnknownTxn(t) => write!(f, "transaction {} does not exist", t.0),
            SendError::Closed(t) => write!(f, "transaction {} is closed on our side", t.0),
            SendError::NotACreate(c) => {
                write!(
                    f,
                    "cmd {c:#010x} cannot open a transaction (needs CREATE without REPLY)"
                )
            }
            SendError::Encode(e) => write!(f, "{e}"),
            SendError::Congested => f.write_str("transmit queue far over its limit"),
        }
    }
}

impl std::error::Error for SendError {}

impl From<EncodeError> for SendError {
    fn from(e: EncodeError) -> Self {
        SendError::Encode(e)
    }
}
