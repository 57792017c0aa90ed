//! The transmit queue of a link: encoded frames waiting for the socket.
//!
//! Small frames are packed back to back into shared buffers, so many of
//! them go out in one `writev` element. Aux data of [`ZERO_COPY_AUX`] bytes
//! or more is not copied: its `Vec` is padded in place and queued as a
//! segment of its own. Its header goes into the open packing buffer if
//! there is one, else (right after another such aux, as in a stream of
//! 4 KiB writes) into a small header buffer of its own, not a new packing
//! buffer. Every segment is a multiple of 64 bytes, so an encrypting
//! driver can cut the stream into 64-byte chunks anywhere.

use crate::wire::{doalign, zero_pad, EncodeError, Encoder, FrameRef, Message};
use std::collections::VecDeque;

/// Aux data at least this long is queued without copying.
pub const ZERO_COPY_AUX: usize = 4096;

/// A packing buffer is closed once it holds this many bytes.
const PACK_LIMIT: usize = 64 * 1024;

/// Emptied packing buffers kept for reuse, at most.
const MAX_SPARE: usize = 8;

/// Capacity of a header buffer (a header with its extension, before an
/// aux queued without copying): the fixed header and a short extension
/// fit; a longer one grows it.
const HEAD_CAP: usize = 256;

/// Emptied header buffers kept for reuse, at most (one per message of a
/// whole 256 KiB read of 4 KiB messages, twice over).
const MAX_SPARE_HEADS: usize = 128;

/// Encoded bytes waiting to be written, in order.
#[derive(Debug, Default)]
pub struct TxQueue {
    segs: VecDeque<Vec<u8>>,
    /// Bytes of the front segment already written.
    front_done: usize,
    /// Unwritten bytes in all segments.
    len: usize,
    /// The last segment is a packing buffer that may take more frames.
    tail_packs: bool,
    /// Emptied packing buffers kept for reuse.
    spare: Vec<Vec<u8>>,
    /// Emptied header buffers kept for reuse.
    spare_heads: Vec<Vec<u8>>,
}

impl TxQueue {
    /// Unwritten bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The open packing buffer, opened first if there is none or it is
    /// full. Inlined into every push (a small frame costs about 200
    /// instructions, and a call with two lookups of the last segment
    /// was 35 of them); opening a buffer is out of line.
    #[inline]
    fn packing_tail(&mut self) -> &mut Vec<u8> {
        let reuse = self.tail_packs && self.segs.back().is_some_and(|s| s.len() < PACK_LIMIT);
        if !reuse {
            self.open_packing();
        }
        match self.segs.back_mut() {
            Some(seg) => seg,
            None => unreachable!("a segment was pushed above"),
        }
    }

    /// Queues a new (or reused) packing buffer as the last segment.
    #[cold]
    #[inline(never)]
    fn open_packing(&mut self) {
        let buf = self
            .spare
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(PACK_LIMIT + 2048));
        self.segs.push_back(buf);
        self.tail_packs = true;
    }

    /// A new (or reused) header buffer as the last segment. It takes one
    /// header: the aux segment follows it.
    fn head_buffer(&mut self) -> &mut Vec<u8> {
        let buf = self
            .spare_heads
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(HEAD_CAP));
        self.segs.push_back(buf);
        self.tail_packs = false;
        match self.segs.back_mut() {
            Some(seg) => seg,
            None => unreachable!("a segment was pushed above"),
        }
    }

    /// Encodes `msg` onto the queue.
    pub fn push(&mut self, enc: &mut Encoder, mut msg: Message) -> Result<(), EncodeError> {
        let cmd = msg.hdr.cmd;
        self.push_as(enc, &mut msg, cmd)
    }

    /// Encodes `msg` onto the queue with `cmd` in place of `msg.hdr.cmd`;
    /// aux data queued without copying is taken out of `msg`.
    ///
    /// The message is worked on where it is, never moved: a user has
    /// usually just written its fields, and copying it in 16-byte blocks
    /// over those fresh, narrower stores stalls store forwarding.
    pub(crate) fn push_as(
        &mut self,
        enc: &mut Encoder,
        msg: &mut Message,
        cmd: u32,
    ) -> Result<(), EncodeError> {
        let before = self.len;
        if msg.aux.len() >= ZERO_COPY_AUX {
            let tail = if self.tail_packs {
                self.packing_tail()
            } else {
                self.head_buffer()
            };
            let start = tail.len();
            enc.encode_head_as(msg, cmd, tail)?;
            self.len += tail.len() - start;
            let mut aux = std::mem::take(&mut msg.aux);
            aux.resize(doalign(aux.len()), 0);
            self.len += aux.len();
            self.segs.push_back(aux);
            self.tail_packs = false;
        } else {
            let tail = self.packing_tail();
            let start = tail.len();
            enc.encode_as(msg, cmd, tail)?;
            self.len += tail.len() - start;
        }
        debug_assert!(self.len > before);
        Ok(())
    }

    /// Encodes a frame given by parts onto the queue, its aux data copied
    /// into the packing buffers whatever its size: the bytes it borrows
    /// (a relay's read buffer) are reused as soon as this returns.
    pub fn push_frame(
        &mut self,
        enc: &mut Encoder,
        frame: &FrameRef<'_>,
    ) -> Result<(), EncodeError> {
        let tail = self.packing_tail();
        let start = tail.len();
        let pad = enc.encode_frame_head(frame, tail)?;
        tail.extend_from_slice(frame.aux);
        tail.extend_from_slice(zero_pad(pad));
        self.len += tail.len() - start;
        Ok(())
    }

    /// The unwritten bytes, as consecutive slices.
    pub fn slices(&self) -> impl Iterator<Item = &[u8]> + Clone {
        let skip = self.front_done;
        self.segs.iter().enumerate().map(move |(i, s)| {
            if i == 0 {
                s.get(skip..).unwrap_or(&[])
            } else {
                &s[..]
            }
        })
    }

    /// Marks `n` bytes as written.
    pub fn consume(&mut self, mut n: usize) {
        n = n.min(self.len);
        self.len -= n;
        while n > 0 {
            let Some(front) = self.segs.front() else {
                break;
            };
            let left = front.len() - self.front_done;
            if n < left {
                self.front_done += n;
                return;
            }
            n -= left;
            self.pop_front();
        }
        if self
            .segs
            .front()
            .is_some_and(|s| s.len() == self.front_done)
        {
            self.pop_front();
        }
    }

    fn pop_front(&mut self) {
        self.front_done = 0;
        if let Some(mut seg) = self.segs.pop_front() {
            if self.segs.is_empty() {
                self.tail_packs = false;
            }
            let cap = seg.capacity();
            if (PACK_LIMIT..=2 * PACK_LIMIT).contains(&cap) && self.spare.len() < MAX_SPARE {
                seg.clear();
                self.spare.push(seg);
            } else if (HEAD_CAP..ZERO_COPY_AUX).contains(&cap)
                && self.spare_heads.len() < MAX_SPARE_HEADS
            {
                // A header buffer (an aux segment is at least
                // ZERO_COPY_AUX long, so never taken for one).
                seg.clear();
                self.spare_heads.push(seg);
            }
        }
    }

    /// Moves every queued byte, in order, to the end of `into`, and takes
    /// back the emptied buffers `into` kept for reuse. A writer thread uses
    /// this to write outside the lock that guards the queue: it takes the
    /// bytes under the lock, writes them after releasing it, and gives the
    /// buffers back at the next take.
    pub fn move_to(&mut self, into: &mut TxQueue) {
        while self.spare.len() < MAX_SPARE {
            match into.spare.pop() {
                Some(buf) => self.spare.push(buf),
                None => break,
            }
        }
        while self.spare_heads.len() < MAX_SPARE_HEADS {
            match into.spare_heads.pop() {
                Some(buf) => self.spare_heads.push(buf),
                None => break,
            }
        }
        if self.len == 0 {
            return;
        }
        if into.segs.is_empty() {
            std::mem::swap(&mut into.segs, &mut self.segs);
            into.front_done = self.front_done;
        } else {
            let mut first = true;
            while let Some(seg) = self.segs.pop_front() {
                if first && self.front_done > 0 {
                    // `into` is not empty, so its front offset stays; copy
                    // the unwritten rest of a partly written segment.
                    into.segs
                        .push_back(seg.get(self.front_done..).unwrap_or(&[]).to_vec());
                } else {
                    into.segs.push_back(seg);
                }
                first = false;
            }
        }
        into.len += self.len;
        into.tail_packs = false;
        self.front_done = 0;
        self.len = 0;
        self.tail_packs = false;
    }

    /// Drops everything queued.
    pub fn clear(&mut self) {
        while !self.segs.is_empty() {
            self.pop_front();
        }
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{cmd, Decoder};

    #[test]
    fn packs_small_frames_and_keeps_big_aux_apart() {
        let mut q = TxQueue::default();
        let mut enc = Encoder::new(1);
        let mut big = Message::new(cmd::DBG_SHELL);
        big.aux = vec![7; 10_000];
        q.push(&mut enc, Message::new(cmd::LNK_PING)).unwrap();
        q.push(&mut enc, Message::new(cmd::LNK_PING)).unwrap();
        q.push(&mut enc, big.clone()).unwrap();
        q.push(&mut enc, Message::new(cmd::LNK_PING)).unwrap();
        let segs: Vec<usize> = q.slices().map(<[u8]>::len).collect();
        assert_eq!(segs, vec![192, doalign(10_000), 64]);
        assert_eq!(q.len(), 192 + doalign(10_000) + 64);

        // Write it out in odd pieces and decode what came out.
        let mut wire = Vec::new();
        while !q.is_empty() {
            let piece: Vec<u8> = q
                .slices()
                .next()
                .unwrap()
                .iter()
                .take(100)
                .copied()
                .collect();
            wire.extend_from_slice(&piece);
            q.consume(piece.len());
        }
        let mut dec = Decoder::new();
        let mut input = &wire[..];
        let mut got = Vec::new();
        while let Some(m) = dec.decode(&mut input).unwrap() {
            got.push(m);
        }
        assert_eq!(got.len(), 4);
        assert_eq!(got[2].aux, big.aux);
    }

    #[test]
    fn a_frame_by_parts_encodes_as_its_message_does() {
        let (mut by_msg, mut by_parts) = (TxQueue::default(), TxQueue::default());
        let (mut e1, mut e2) = (Encoder::new(5), Encoder::new(5));
        for (c, aux) in [
            (cmd::LNK_PING, 0),
            (cmd::DBG_SHELL, 7),
            (cmd::LNK_SPAN | cmd::CREATE, 100),
            (cmd::BLK_WRITE, 4096),
            (cmd::BLK_WRITE, 65536),
        ] {
            let mut m = Message::new(c);
            m.hdr.msgid = 0x77;
            m.hdr.circuit = 0x1234;
            m.ext = (0..m.ext.len()).map(|i| i as u8).collect();
            m.aux = (0..aux).map(|i| (i * 7) as u8).collect();
            let frame = FrameRef {
                hdr: m.hdr,
                ext: &m.ext,
                aux: &m.aux,
            };
            by_parts.push_frame(&mut e2, &frame).unwrap();
            by_msg.push(&mut e1, m).unwrap();
        }
        let bytes = |q: &TxQueue| q.slices().flatten().copied().collect::<Vec<u8>>();
        assert_eq!(bytes(&by_parts), bytes(&by_msg));
        assert_eq!(by_parts.len(), by_msg.len());
        // The aux is copied, never queued as a segment of its own.
        assert!(by_parts.segs.iter().all(|s| s.capacity() >= PACK_LIMIT));
    }

    #[test]
    fn headers_between_big_aux_get_small_buffers_that_are_reused() {
        let mut q = TxQueue::default();
        let mut enc = Encoder::new(1);
        let big = |n: u8| {
            let mut m = Message::new(cmd::DBG_SHELL);
            m.aux = vec![n; 4096];
            m
        };
        for n in 0..4 {
            q.push(&mut enc, big(n)).unwrap();
        }
        q.push(&mut enc, Message::new(cmd::LNK_PING)).unwrap();
        q.push(&mut enc, big(9)).unwrap();
        let segs: Vec<usize> = q.slices().map(<[u8]>::len).collect();
        // Each header alone before its aux; the ping opens a packing
        // buffer, which the next header joins.
        assert_eq!(
            segs,
            vec![64, 4096, 64, 4096, 64, 4096, 64, 4096, 128, 4096]
        );
        assert!(q
            .segs
            .iter()
            .take(8)
            .step_by(2)
            .all(|s| s.capacity() < PACK_LIMIT));

        // A driver takes it all, writes it, and gives the buffers back.
        let mut out = TxQueue::default();
        q.move_to(&mut out);
        assert!(q.is_empty());
        let mut wire = Vec::new();
        while !out.is_empty() {
            let s: Vec<u8> = out.slices().next().unwrap().to_vec();
            wire.extend_from_slice(&s);
            out.consume(s.len());
        }
        assert_eq!(out.spare_heads.len(), 4);
        assert_eq!(out.spare.len(), 1);
        // The next take gives them back to the link's queue.
        q.move_to(&mut out);
        assert_eq!((q.spare_heads.len(), out.spare_heads.len()), (4, 0));
        q.push(&mut enc, big(7)).unwrap();
        assert_eq!(q.spare_heads.len(), 3, "a header buffer was reused");

        let mut dec = Decoder::new();
        let mut input = &wire[..];
        let mut got = Vec::new();
        while let Some(m) = dec.decode(&mut input).unwrap() {
            got.push(m);
        }
        assert_eq!(got.len(), 6);
        assert!(got[3].aux.iter().all(|&b| b == 3));
        assert!(got[5].aux.iter().all(|&b| b == 9));
    }
}
