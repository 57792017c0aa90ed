//! Framing (WIRE.md §1): a message is an extended header of `H` bytes (a
//! multiple of 64, 64..=2048) followed by its aux data padded with zeros to a
//! multiple of 64. [`Encoder`] writes that, [`Decoder`] reads it back with
//! every receiver check of §1.

use super::crc::{aux_crc, crc32c, crc32c_append, crc32c_append_zero4, crc32c_last4_zeroed};
use super::header::{Header, HDR_CRC_OFFSET, HEADER_SIZE};
use super::{cmd, doalign, pad_len, ALIGN, AUX_MAX, HDR_MAX, MAGIC, MAGIC_REV};
use std::fmt;

/// One message: the core header, the rest of the extended header, and the
/// aux data.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Message {
    /// The core header. On decode: as received. On encode, `magic`, `salt`,
    /// `aux_bytes` and `hdr_crc` are filled in by the encoder, and `aux_crc`
    /// when it is 0 and there is aux data.
    pub hdr: Header,
    /// The extended header past the 64-byte core: exactly `H - 64` bytes,
    /// where `H` comes from the size bits of `hdr.cmd`.
    pub ext: Vec<u8>,
    /// The aux data, exactly `aux_bytes` long (no padding).
    pub aux: Vec<u8>,
}

impl Message {
    /// A message with command `cmd` and a zeroed extended header of the size
    /// `cmd` announces (clamped to the legal range).
    #[inline]
    pub fn new(cmd: u32) -> Message {
        let h = cmd::header_size(cmd).clamp(HEADER_SIZE, HDR_MAX);
        Message {
            hdr: Header {
                cmd,
                ..Header::default()
            },
            ext: if h == HEADER_SIZE {
                Vec::new()
            } else {
                vec![0; h - HEADER_SIZE]
            },
            aux: Vec::new(),
        }
    }

    /// Total encoded size: `H + DOALIGN(aux)`.
    pub fn wire_size(&self) -> usize {
        HEADER_SIZE + self.ext.len() + doalign(self.aux.len())
    }
}

/// A whole received frame seen in place, in the bytes it was read into:
/// what [`Decoder::decode_in_place`] gives for a frame that a read holds
/// entirely, every receiver check passed. A relay forwards such a frame
/// from its read buffer, with no [`Message`] built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameRef<'a> {
    /// The core header, as received.
    pub hdr: Header,
    /// The extended header past the 64-byte core.
    pub ext: &'a [u8],
    /// The aux data, exactly `aux_bytes` long (no padding).
    pub aux: &'a [u8],
}

impl FrameRef<'_> {
    /// The frame as an owned message.
    pub fn to_message(&self) -> Message {
        Message {
            hdr: self.hdr,
            ext: owned(self.ext),
            aux: owned(self.aux),
        }
    }
}

/// `bytes` in a vector of their own (none allocated when empty).
#[inline]
fn owned(bytes: &[u8]) -> Vec<u8> {
    if bytes.is_empty() {
        Vec::new()
    } else {
        bytes.to_vec()
    }
}

/// Why a frame was refused by the decoder. Every one of these is terminal
/// for the stream: the link is closed with this reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Magic is neither 0x4832 nor 0x3248 (`DMSG_IOQ_ERROR_SYNC`).
    BadMagic(u16),
    /// The peer is of the opposite byte order (magic 0x3248). We refuse such
    /// peers: the original swaps only the core header and leaves every body
    /// in the wrong order, so nothing past the header could be trusted.
    OppositeEndian,
    /// `H` is outside 64..=2048 (`DMSG_IOQ_ERROR_FIELD`).
    HeaderSize(usize),
    /// Aligned aux data is over 65536 bytes (`DMSG_IOQ_ERROR_FIELD`).
    AuxTooLarge(u32),
    /// Header CRC mismatch (`DMSG_IOQ_ERROR_XCRC`).
    HeaderCrc {
        /// The CRC carried in the header.
        carried: u32,
        /// The CRC computed over the received bytes.
        computed: u32,
    },
    /// Aux data CRC mismatch (`DMSG_IOQ_ERROR_ACRC`).
    AuxCrc {
        /// The CRC carried in the header.
        carried: u32,
        /// The CRC computed over the received aux data.
        computed: u32,
    },
    /// The salt's sequence byte is not the next one (`DMSG_IOQ_ERROR_MSGSEQ`).
    Sequence {
        /// The sequence byte we expected.
        expected: u8,
        /// The sequence byte received.
        received: u8,
    },
}

impl DecodeError {
    /// The `DMSG_IOQ_ERROR_*` code the C library reports for this error.
    pub fn ioq_error(&self) -> u32 {
        use super::ioq_error as e;
        match self {
            DecodeError::BadMagic(_) | DecodeError::OppositeEndian => e::SYNC,
            DecodeError::HeaderSize(_) | DecodeError::AuxTooLarge(_) => e::FIELD,
            DecodeError::HeaderCrc { .. } => e::XCRC,
            DecodeError::AuxCrc { .. } => e::ACRC,
            DecodeError::Sequence { .. } => e::MSGSEQ,
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::BadMagic(m) => write!(f, "bad magic {m:#06x}"),
            DecodeError::OppositeEndian => {
                write!(
                    f,
                    "peer is big endian (magic 0x3248), which is not supported"
                )
            }
            DecodeError::HeaderSize(h) => write!(f, "header size {h} outside 64..=2048"),
            DecodeError::AuxTooLarge(n) => write!(f, "aux data of {n} bytes exceeds 65536"),
            DecodeError::HeaderCrc { carried, computed } => write!(
                f,
                "header CRC mismatch: carried {carried:#010x}, computed {computed:#010x}"
            ),
            DecodeError::AuxCrc { carried, computed } => write!(
                f,
                "aux CRC mismatch: carried {carried:#010x}, computed {computed:#010x}"
            ),
            DecodeError::Sequence { expected, received } => {
                write!(f, "sequence byte {received}, expected {expected}")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

/// Why a message could not be encoded (a local API misuse, never peer input).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// `H` from the cmd size bits is outside 64..=2048.
    HeaderSize(usize),
    /// `ext` is not `H - 64` bytes long.
    ExtLength {
        /// `H - 64`.
        expected: usize,
        /// `ext.len()`.
        actual: usize,
    },
    /// Aux data over 65536 bytes.
    AuxTooLarge(usize),
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::HeaderSize(h) => write!(f, "header size {h} outside 64..=2048"),
            EncodeError::ExtLength { expected, actual } => write!(
                f,
                "extended header is {actual} bytes, the cmd word says {expected}"
            ),
            EncodeError::AuxTooLarge(n) => write!(f, "aux data of {n} bytes exceeds 65536"),
        }
    }
}

impl std::error::Error for EncodeError {}

/// Checks that `msg` can be encoded.
pub fn validate(msg: &Message) -> Result<(), EncodeError> {
    validate_parts(msg.hdr.cmd, msg.ext.len(), msg.aux.len())
}

/// [`validate`] of a message with command `cmd`, `ext` bytes of extended
/// header and `aux` bytes of aux data.
fn validate_parts(cmd: u32, ext: usize, aux: usize) -> Result<(), EncodeError> {
    let h = cmd::header_size(cmd);
    if !(HEADER_SIZE..=HDR_MAX).contains(&h) {
        return Err(EncodeError::HeaderSize(h));
    }
    if ext != h - HEADER_SIZE {
        return Err(EncodeError::ExtLength {
            expected: h - HEADER_SIZE,
            actual: ext,
        });
    }
    if aux > AUX_MAX {
        return Err(EncodeError::AuxTooLarge(aux));
    }
    Ok(())
}

/// The transmit side of one direction of a link: stamps the magic, the salt
/// with its sequence byte, `aux_bytes` and both CRCs.
///
/// The upper 24 bits of the salt are noise; the receiver ignores them. They
/// come from a small generator seeded by the caller, so output is
/// reproducible.
#[derive(Clone, Debug)]
pub struct Encoder {
    seq: u8,
    noise: u32,
}

impl Default for Encoder {
    fn default() -> Self {
        Encoder::new(0x2545_F491)
    }
}

impl Encoder {
    /// An encoder whose first message has sequence byte 0 and whose salt noise
    /// is drawn from `seed`.
    pub fn new(seed: u32) -> Encoder {
        Encoder {
            seq: 0,
            noise: seed | 1,
        }
    }

    /// An encoder whose first message has sequence byte `seq`, e.g. to
    /// continue a captured stream.
    pub fn with_seq(seed: u32, seq: u8) -> Encoder {
        Encoder {
            seq,
            ..Encoder::new(seed)
        }
    }

    /// The sequence byte the next message will carry.
    pub fn next_seq(&self) -> u8 {
        self.seq
    }

    fn next_noise(&mut self) -> u32 {
        // xorshift32: cheap, deterministic, never zero.
        let mut x = self.noise;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.noise = x;
        x
    }

    /// Appends the extended header of `msg` (H bytes, CRCs filled in) to
    /// `out` and returns the number of zero bytes that must follow the aux
    /// data. The salt's noise bits are drawn from the encoder.
    pub fn encode_head(&mut self, msg: &Message, out: &mut Vec<u8>) -> Result<usize, EncodeError> {
        let noise = self.next_noise() << 8;
        self.encode_head_with_salt(msg, noise, out)
    }

    /// Like [`Encoder::encode_head`], with the salt's upper 24 bits given by
    /// the caller (`salt_noise & !0xFF`), to reproduce captured streams.
    pub fn encode_head_with_salt(
        &mut self,
        msg: &Message,
        salt_noise: u32,
        out: &mut Vec<u8>,
    ) -> Result<usize, EncodeError> {
        self.head(msg, msg.hdr.cmd, salt_noise, out)
    }

    /// [`Encoder::encode_head`] of `msg` with `cmd` in place of
    /// `msg.hdr.cmd` (a link adjusts the flags of what it sends without
    /// writing into the message first).
    pub(crate) fn encode_head_as(
        &mut self,
        msg: &Message,
        cmd: u32,
        out: &mut Vec<u8>,
    ) -> Result<usize, EncodeError> {
        let noise = self.next_noise() << 8;
        self.head(msg, cmd, noise, out)
    }

    /// Encodes the header straight into `out`: the fields are read one by
    /// one and written as 64-bit words, the CRC is computed over the bytes
    /// written and stored in place. (Building the header in a local array
    /// and copying it reads 16-byte blocks back over narrower fresh
    /// stores, which stalls store forwarding: that cost more than the CRC.)
    fn head(
        &mut self,
        msg: &Message,
        cmd: u32,
        salt_noise: u32,
        out: &mut Vec<u8>,
    ) -> Result<usize, EncodeError> {
        self.head_of(&msg.hdr, &msg.ext, &msg.aux, cmd, salt_noise, out)
    }

    /// [`Encoder::encode_head`] of a frame given by parts (a frame being
    /// relayed from where it was read).
    pub(crate) fn encode_frame_head(
        &mut self,
        frame: &FrameRef<'_>,
        out: &mut Vec<u8>,
    ) -> Result<usize, EncodeError> {
        let noise = self.next_noise() << 8;
        self.head_of(&frame.hdr, frame.ext, frame.aux, frame.hdr.cmd, noise, out)
    }

    /// The header of a frame by its parts, each read where it is (the
    /// header is not copied first: see [`Encoder::head`]).
    #[inline]
    fn head_of(
        &mut self,
        from: &Header,
        ext: &[u8],
        aux: &[u8],
        cmd: u32,
        salt_noise: u32,
        out: &mut Vec<u8>,
    ) -> Result<usize, EncodeError> {
        validate_parts(cmd, ext.len(), aux.len())?;
        let aux_len = aux.len();
        let mut aux_crc_field = from.aux_crc;
        if aux_len != 0 && aux_crc_field == 0 {
            aux_crc_field = aux_crc(aux);
        }
        let hdr = Header {
            magic: MAGIC,
            salt: (salt_noise & !0xFF) | u32::from(self.seq),
            cmd,
            aux_crc: aux_crc_field,
            // Checked above to be at most 65536.
            aux_bytes: aux_len as u32,
            hdr_crc: 0,
            ..*from
        };
        let at = out.len();
        out.extend_from_slice(&[0; HEADER_SIZE]);
        if let Some(core) = out
            .get_mut(at..)
            .and_then(|s| s.first_chunk_mut::<HEADER_SIZE>())
        {
            hdr.emit(core);
            let mut crc = crc32c(core);
            if !ext.is_empty() {
                crc = crc32c_append(crc, ext);
            }
            // `hdr_crc` ends the core header.
            if let Some(field) = core.last_chunk_mut::<4>() {
                *field = crc.to_le_bytes();
            }
        }
        out.extend_from_slice(ext);
        self.seq = self.seq.wrapping_add(1);
        Ok(pad_len(aux_len))
    }

    /// Appends the whole encoded message to `out`.
    pub fn encode(&mut self, msg: &Message, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        self.encode_as(msg, msg.hdr.cmd, out)
    }

    /// [`Encoder::encode`] of `msg` with `cmd` in place of `msg.hdr.cmd`.
    pub(crate) fn encode_as(
        &mut self,
        msg: &Message,
        cmd: u32,
        out: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        let pad = self.encode_head_as(msg, cmd, out)?;
        if !msg.aux.is_empty() {
            out.extend_from_slice(&msg.aux);
            out.extend_from_slice(zero_pad(pad));
        }
        Ok(())
    }
}

/// Where the decoder is inside the current frame.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Phase {
    /// Collecting the first 64 bytes.
    Core,
    /// Collecting the rest of the extended header (`H` known).
    Extended { h: usize },
    /// Collecting `aligned` bytes of aux data.
    Aux { aligned: usize },
    /// A frame was refused; the stream is dead.
    Failed(DecodeError),
}

/// The receive side of one direction of a link: an incremental decoder.
///
/// Feed it byte slices of any size with [`Decoder::decode`]; it returns one
/// whole message at a time. Only a partial header is ever buffered; aux data
/// is copied once, straight into the message.
///
/// ```
/// use dmsg::wire::{cmd, Decoder, Encoder, Message};
/// let mut bytes = Vec::new();
/// let mut msg = Message::new(cmd::DBG_SHELL);
/// msg.aux = b"tree\0".to_vec();
/// Encoder::default().encode(&msg, &mut bytes).unwrap();
///
/// let mut dec = Decoder::new();
/// let mut input = &bytes[..];
/// let got = dec.decode(&mut input).unwrap().unwrap();
/// assert_eq!(got.aux, b"tree\0");
/// assert!(input.is_empty());
/// ```
#[derive(Clone, Debug)]
pub struct Decoder {
    phase: Phase,
    head: Vec<u8>,
    hdr: Header,
    aux: Vec<u8>,
    seq: u8,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new()
    }
}

/// Moves up to `want - buf.len()` bytes from the front of `input` to `buf`;
/// true when `buf` holds `want` bytes.
fn fill(buf: &mut Vec<u8>, want: usize, input: &mut &[u8]) -> bool {
    let need = want.saturating_sub(buf.len());
    let take = need.min(input.len());
    let (now, rest) = input.split_at(take);
    buf.extend_from_slice(now);
    *input = rest;
    buf.len() >= want
}

impl Decoder {
    /// A decoder expecting sequence byte 0 first.
    pub fn new() -> Decoder {
        Decoder {
            phase: Phase::Core,
            head: Vec::with_capacity(HDR_MAX),
            hdr: Header::default(),
            aux: Vec::new(),
            seq: 0,
        }
    }

    /// A decoder expecting sequence byte `seq` first, e.g. to pick up a
    /// captured stream in the middle.
    pub fn with_seq(seq: u8) -> Decoder {
        Decoder {
            seq,
            ..Decoder::new()
        }
    }

    /// The sequence byte the next message must carry.
    pub fn next_seq(&self) -> u8 {
        self.seq
    }

    /// The error that killed the stream, if one did.
    pub fn error(&self) -> Option<DecodeError> {
        match &self.phase {
            Phase::Failed(e) => Some(*e),
            _ => None,
        }
    }

    /// True when no partial frame is buffered.
    #[inline]
    pub fn is_idle(&self) -> bool {
        self.phase == Phase::Core && self.head.is_empty()
    }

    fn fail(&mut self, e: DecodeError) -> Result<Option<Message>, DecodeError> {
        self.phase = Phase::Failed(e);
        self.head = Vec::new();
        self.aux = Vec::new();
        Err(e)
    }

    /// Consumes bytes from the front of `input` and returns the next whole
    /// message, `Ok(None)` when `input` ran out first (the partial frame is
    /// kept), or the error that makes the stream unusable. After an error
    /// every call returns the same error and consumes nothing.
    #[inline(always)]
    pub fn decode(&mut self, input: &mut &[u8]) -> Result<Option<Message>, DecodeError> {
        if self.is_idle() {
            if let Some(msg) = self.decode_whole(input) {
                return Ok(Some(msg));
            }
        }
        self.decode_buffered(input)
    }

    /// The general path of both decodes: buffers what a frame needs until
    /// it is whole, checking it as it comes.
    fn decode_buffered(&mut self, input: &mut &[u8]) -> Result<Option<Message>, DecodeError> {
        loop {
            match self.phase.clone() {
                Phase::Failed(e) => return Err(e),
                Phase::Core => {
                    if !fill(&mut self.head, HEADER_SIZE, input) {
                        return Ok(None);
                    }
                    let mut core = [0u8; HEADER_SIZE];
                    core.copy_from_slice(self.head.get(..HEADER_SIZE).unwrap_or(&[0; HEADER_SIZE]));
                    let hdr = Header::parse(&core);
                    if hdr.magic == MAGIC_REV {
                        return self.fail(DecodeError::OppositeEndian);
                    }
                    if hdr.magic != MAGIC {
                        return self.fail(DecodeError::BadMagic(hdr.magic));
                    }
                    let h = hdr.header_size();
                    if !(HEADER_SIZE..=HDR_MAX).contains(&h) {
                        return self.fail(DecodeError::HeaderSize(h));
                    }
                    // Same as DOALIGN(aux_bytes) > AUX_MAX (a multiple of
                    // 64), without the overflow the rounding risks.
                    if usize::try_from(hdr.aux_bytes).map_or(true, |n| n > AUX_MAX) {
                        return self.fail(DecodeError::AuxTooLarge(hdr.aux_bytes));
                    }
                    self.hdr = hdr;
                    self.phase = Phase::Extended { h };
                }
                Phase::Extended { h } => {
                    if !fill(&mut self.head, h, input) {
                        return Ok(None);
                    }
                    if let Some(field) = self.head.get_mut(HDR_CRC_OFFSET..HEADER_SIZE) {
                        field.fill(0);
                    }
                    let computed = crc32c(&self.head);
                    if computed != self.hdr.hdr_crc {
                        return self.fail(DecodeError::HeaderCrc {
                            carried: self.hdr.hdr_crc,
                            computed,
                        });
                    }
                    let aligned = doalign(self.hdr.aux_bytes as usize);
                    self.aux = Vec::with_capacity(aligned);
                    self.phase = Phase::Aux { aligned };
                }
                Phase::Aux { aligned } => {
                    if !fill(&mut self.aux, aligned, input) {
                        return Ok(None);
                    }
                    if aligned != 0 {
                        let computed = crc32c(&self.aux);
                        if computed != self.hdr.aux_crc {
                            return self.fail(DecodeError::AuxCrc {
                                carried: self.hdr.aux_crc,
                                computed,
                            });
                        }
                    }
                    if self.hdr.seq() != self.seq {
                        return self.fail(DecodeError::Sequence {
                            expected: self.seq,
                            received: self.hdr.seq(),
                        });
                    }
                    self.seq = self.seq.wrapping_add(1);
                    let mut aux = std::mem::take(&mut self.aux);
                    aux.truncate(self.hdr.aux_bytes as usize);
                    let ext = self.head.get(HEADER_SIZE..).unwrap_or(&[]).to_vec();
                    self.head.clear();
                    self.phase = Phase::Core;
                    return Ok(Some(Message {
                        hdr: self.hdr,
                        ext,
                        aux,
                    }));
                }
            }
        }
    }
}

impl Decoder {
    /// The circuit of the frame at the front of `input`, between frames,
    /// as its header says, unchecked: a hint of where the frame goes
    /// before it is decoded (and checked). `None` mid-frame or when
    /// `input` holds less than a header.
    #[inline]
    pub fn peek_circuit(&self, input: &[u8]) -> Option<u64> {
        if !self.is_idle() {
            return None;
        }
        let core: &[u8; HEADER_SIZE] = input.first_chunk()?;
        Some(Header::parse(core).circuit)
    }

    /// Consumes the frame at the front of `input` and returns it where it
    /// is, borrowed from `input`, if it is there whole, between frames,
    /// and passes every check. Otherwise consumes nothing and returns
    /// `None`: [`Decoder::decode`] then buffers it, or reports what is
    /// wrong with it.
    pub fn decode_in_place<'a>(&mut self, input: &mut &'a [u8]) -> Option<FrameRef<'a>> {
        if !self.is_idle() {
            return None;
        }
        let w = self.whole_at(input)?;
        let bytes: &'a [u8] = input;
        let frame = FrameRef {
            hdr: Header::parse(bytes.first_chunk()?),
            ext: bytes.get(HEADER_SIZE..w.h)?,
            aux: bytes.get(w.h..w.h.checked_add(w.aux_len)?)?,
        };
        *input = bytes.get(w.end..)?;
        self.seq = self.seq.wrapping_add(1);
        Some(frame)
    }

    /// The check of the fast path of both decodes: a whole, valid frame at
    /// the front of `bytes`, between frames, is checked straight in
    /// `bytes` without buffering its header. Anything else (a partial
    /// frame, or any check failing) is `None`, and the general path runs,
    /// so errors are reported exactly as it reports them.
    #[inline(always)]
    fn whole_at(&self, bytes: &[u8]) -> Option<Whole> {
        let core: &[u8; HEADER_SIZE] = bytes.first_chunk()?;
        let hdr = Header::parse(core);
        let h = hdr.header_size();
        if hdr.magic != MAGIC || !(HEADER_SIZE..=HDR_MAX).contains(&h) {
            return None;
        }
        let aux_len = usize::try_from(hdr.aux_bytes).ok()?;
        if aux_len > AUX_MAX || hdr.seq() != self.seq {
            return None;
        }
        let aligned = doalign(aux_len);
        let end = h + aligned;
        let frame = bytes.get(..end)?;
        let ext = frame.get(HEADER_SIZE..h)?;
        let aux = frame.get(h..)?;
        // One pass over the core header as received (the CRC field is
        // zeroed arithmetically), then the rest of the extended header.
        let crc = if ext.is_empty() {
            crc32c_last4_zeroed(core)
        } else {
            crc32c_append(
                crc32c_append_zero4(crc32c(core.get(..HDR_CRC_OFFSET)?)),
                ext,
            )
        };
        if crc != hdr.hdr_crc || (aligned != 0 && crc32c(aux) != hdr.aux_crc) {
            return None;
        }
        Some(Whole { h, aux_len, end })
    }

    /// The fast path of [`Decoder::decode`]: a whole frame
    /// ([`Decoder::whole_at`]) as a message, built straight from the bytes
    /// (a header parsed into a local and copied into the message once more
    /// stalls store forwarding).
    fn decode_whole(&mut self, input: &mut &[u8]) -> Option<Message> {
        let w = self.whole_at(input)?;
        let bytes: &[u8] = input;
        let msg = Message {
            hdr: Header::parse(bytes.first_chunk()?),
            ext: owned(bytes.get(HEADER_SIZE..w.h)?),
            aux: owned(bytes.get(w.h..w.h.checked_add(w.aux_len)?)?),
        };
        *input = bytes.get(w.end..)?;
        self.seq = self.seq.wrapping_add(1);
        Some(msg)
    }
}

/// Where the parts of a whole frame are ([`Decoder::whole_at`]).
#[derive(Clone, Copy)]
struct Whole {
    /// Header size: the aux data starts there.
    h: usize,
    /// Aux bytes, unpadded.
    aux_len: usize,
    /// Length of the frame, padding included.
    end: usize,
}

/// Bytes of the padding that [`Encoder::encode_head`] asks for, as a slice.
pub fn zero_pad(len: usize) -> &'static [u8] {
    const ZEROS: [u8; ALIGN] = [0; ALIGN];
    ZEROS.get(..len).unwrap_or(&[])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(cmd: u32, aux: &[u8]) -> Message {
        let mut m = Message::new(cmd);
        m.hdr.msgid = 0x1234;
        m.aux = aux.to_vec();
        m
    }

    #[test]
    fn in_place_decodes_whole_frames_where_they_are() {
        let mut msgs = [
            sample(cmd::LNK_PING, b""),
            sample(cmd::DBG_SHELL, b"tree\0"),
            sample(cmd::LNK_SPAN | cmd::CREATE, &[3; 4096]),
        ];
        msgs[1].hdr.circuit = 0x42;
        let mut enc = Encoder::new(3);
        let mut wire = Vec::new();
        for m in &msgs {
            enc.encode(m, &mut wire).unwrap();
        }
        let mut by_decode = Vec::new();
        let mut d = Decoder::new();
        let mut input = &wire[..];
        while let Some(m) = d.decode(&mut input).unwrap() {
            by_decode.push(m);
        }
        assert_eq!(by_decode.len(), 3);
        // Whole in one input: every frame in place, equal to what decode
        // gives, its circuit known before.
        let mut d = Decoder::new();
        let mut input = &wire[..];
        for want in &by_decode {
            assert_eq!(d.peek_circuit(input), Some(want.hdr.circuit));
            let f = d.decode_in_place(&mut input).expect("in place");
            assert_eq!(&f.to_message(), want);
            assert!(f.aux.is_empty() || wire.as_ptr_range().contains(&f.aux.as_ptr()));
        }
        assert!(input.is_empty());
        assert_eq!(d.peek_circuit(input), None);
        assert_eq!(d.decode_in_place(&mut input), None);

        // Cut in the second frame: the first in place; the second is not
        // (nothing consumed), decode buffers it, then completes it as a
        // message (no peeking meanwhile); the third in place again.
        let cut = 64 + 30;
        let mut d = Decoder::new();
        let mut input = &wire[..cut];
        assert!(d.decode_in_place(&mut input).is_some());
        assert_eq!(d.decode_in_place(&mut input), None);
        assert_eq!(input.len(), 30);
        assert_eq!(d.decode(&mut input), Ok(None));
        assert_eq!(d.peek_circuit(&wire[cut..]), None);
        let mut input = &wire[cut..];
        assert_eq!(d.decode_in_place(&mut input), None);
        assert_eq!(d.decode(&mut input), Ok(Some(by_decode[1].clone())));
        let f = d.decode_in_place(&mut input).expect("in place");
        assert_eq!(f.to_message(), by_decode[2]);

        // A damaged frame (the second one's aux) is not taken in place:
        // decode reports it.
        let mut bad = wire.clone();
        bad[64 * 2] ^= 1;
        let mut d = Decoder::new();
        let mut input = &bad[..];
        assert!(d.decode_in_place(&mut input).is_some());
        let before = input.len();
        assert_eq!(d.decode_in_place(&mut input), None);
        assert_eq!(input.len(), before);
        assert!(matches!(
            d.decode(&mut input),
            Err(DecodeError::AuxCrc { .. })
        ));
    }

    #[test]
    fn encode_decode_round_trip_byte_at_a_time() {
        let mut enc = Encoder::new(7);
        let mut bytes = Vec::new();
        let msgs = [
            sample(cmd::LNK_CONN | cmd::CREATE, b""),
            sample(cmd::DBG_SHELL, b"tree\0"),
            sample(cmd::LNK_ERROR, &[0xAB; 65536]),
        ];
        for m in &msgs {
            enc.encode(m, &mut bytes).unwrap();
        }
        let mut dec = Decoder::new();
        let mut out = Vec::new();
        for b in &bytes {
            let mut one = std::slice::from_ref(b);
            if let Some(m) = dec.decode(&mut one).unwrap() {
                out.push(m);
            }
            assert!(one.is_empty());
        }
        assert_eq!(out.len(), 3);
        for (i, (got, want)) in out.iter().zip(&msgs).enumerate() {
            assert_eq!(got.hdr.seq(), i as u8);
            assert_eq!(got.ext, want.ext);
            assert_eq!(got.aux, want.aux);
            assert_eq!(got.hdr.cmd, want.hdr.cmd);
        }
        assert!(dec.is_idle());
    }

    #[test]
    fn header_crc_error_is_sticky() {
        let mut bytes = Vec::new();
        Encoder::default()
            .encode(&sample(cmd::LNK_PING, b""), &mut bytes)
            .unwrap();
        bytes[9] ^= 1;
        let mut dec = Decoder::new();
        let mut input = &bytes[..];
        let e = dec.decode(&mut input).unwrap_err();
        assert!(matches!(e, DecodeError::HeaderCrc { .. }));
        assert_eq!(e.ioq_error(), super::super::ioq_error::XCRC);
        let mut more = &bytes[..];
        assert_eq!(dec.decode(&mut more), Err(e));
        assert_eq!(more.len(), bytes.len());
    }
}
