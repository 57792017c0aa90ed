//! The encrypted byte stream of a link: a sealer for the transmit direction
//! and an opener for the receive direction (WIRE.md §7.4).

use super::gcm::{ChunkStream, SessionKey};
use super::{StreamError, CHUNK_SIZE, WIRE_CHUNK_SIZE};

/// Encrypts the transmit direction: 64-byte plaintext chunks become 80-byte
/// wire chunks; the counter starts at 0 and grows by one per chunk.
#[derive(Debug, Clone)]
pub struct ChunkSealer {
    stream: ChunkStream,
}

impl ChunkSealer {
    /// A sealer starting at counter 0.
    pub fn new(key: &SessionKey) -> Self {
        ChunkSealer {
            stream: ChunkStream::new(key, 0),
        }
    }

    /// The counter the next chunk will be sealed with.
    pub fn counter(&self) -> u64 {
        self.stream.counter()
    }

    /// Seals `plain` (a multiple of 64 bytes) straight into `out`, 80 bytes
    /// per chunk, as many chunks as fit; returns how many plaintext bytes
    /// were sealed (all of `plain` when `out` has room for
    /// `plain.len() / 64 * 80` bytes). Nothing is sealed when `plain` is
    /// not chunk aligned.
    pub fn seal_into(&mut self, plain: &[u8], out: &mut [u8]) -> Result<usize, StreamError> {
        if !plain.len().is_multiple_of(CHUNK_SIZE) {
            return Err(StreamError::NotChunkAligned { len: plain.len() });
        }
        Ok(self.stream.seal(plain, out) * CHUNK_SIZE)
    }

    /// Seals `plain` (a multiple of 64 bytes) and appends 80 bytes per chunk
    /// to `out`. Nothing is appended when `plain` is not chunk aligned.
    pub fn seal(&mut self, plain: &[u8], out: &mut Vec<u8>) -> Result<(), StreamError> {
        if !plain.len().is_multiple_of(CHUNK_SIZE) {
            return Err(StreamError::NotChunkAligned { len: plain.len() });
        }
        let chunks = plain.len() / CHUNK_SIZE;
        let start = out.len();
        // chunks * 80 fits: it is at most 1.25 times the length of a slice.
        out.resize(start + chunks * WIRE_CHUNK_SIZE, 0);
        if let Some(dst) = out.get_mut(start..) {
            self.stream.seal(plain, dst);
        }
        Ok(())
    }
}

/// Decrypts the receive direction. Takes wire bytes in pieces of any size,
/// keeps an incomplete 80-byte chunk until the rest arrives, and appends the
/// plaintext of every authenticated chunk.
///
/// A tag mismatch is sticky: the opener then refuses all further input with
/// the same error, and the caller closes the link.
#[derive(Clone)]
pub struct ChunkOpener {
    stream: ChunkStream,
    partial: [u8; WIRE_CHUNK_SIZE],
    partial_len: usize,
    failed: Option<StreamError>,
}

impl std::fmt::Debug for ChunkOpener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkOpener")
            .field("counter", &self.stream.counter())
            .field("pending", &self.partial_len)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl ChunkOpener {
    /// An opener starting at counter 0.
    pub fn new(key: &SessionKey) -> Self {
        ChunkOpener {
            stream: ChunkStream::new(key, 0),
            partial: [0u8; WIRE_CHUNK_SIZE],
            partial_len: 0,
            failed: None,
        }
    }

    /// The counter the next chunk is expected under.
    pub fn counter(&self) -> u64 {
        self.stream.counter()
    }

    /// Bytes of an incomplete chunk held back, waiting for more input.
    pub fn pending(&self) -> usize {
        self.partial_len
    }

    /// The sticky error, if a tag has failed.
    pub fn error(&self) -> Option<&StreamError> {
        self.failed.as_ref()
    }

    /// Feeds wire bytes and appends the plaintext of every complete chunk to
    /// `out`. On a tag mismatch nothing of this call is appended, the error
    /// is returned, and every later call returns it again.
    pub fn open(&mut self, mut wire: &[u8], out: &mut Vec<u8>) -> Result<(), StreamError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let start = out.len();
        let result = self.open_inner(&mut wire, out);
        if let Err(e) = &result {
            out.truncate(start);
            self.partial_len = 0;
            self.failed = Some(e.clone());
        }
        result
    }

    fn open_inner(&mut self, wire: &mut &[u8], out: &mut Vec<u8>) -> Result<(), StreamError> {
        // Complete a held-back chunk first.
        if self.partial_len > 0 {
            let need = WIRE_CHUNK_SIZE - self.partial_len;
            let take = need.min(wire.len());
            let (head, rest) = wire.split_at(take);
            if let Some(dst) = self
                .partial
                .get_mut(self.partial_len..self.partial_len + take)
            {
                dst.copy_from_slice(head);
            }
            self.partial_len += take;
            *wire = rest;
            if self.partial_len < WIRE_CHUNK_SIZE {
                return Ok(());
            }
            let chunk = self.partial;
            self.partial_len = 0;
            self.open_whole(&chunk, out)?;
        }
        // Then every whole chunk straight from the input.
        let whole = wire.len() / WIRE_CHUNK_SIZE * WIRE_CHUNK_SIZE;
        let (body, tail) = wire.split_at(whole);
        self.open_whole(body, out)?;
        // Hold back the tail.
        if let Some(dst) = self.partial.get_mut(..tail.len()) {
            dst.copy_from_slice(tail);
            self.partial_len = tail.len();
        }
        Ok(())
    }

    /// Opens `wire` (whole chunks) and appends the plaintext.
    fn open_whole(&mut self, wire: &[u8], out: &mut Vec<u8>) -> Result<(), StreamError> {
        let chunks = wire.len() / WIRE_CHUNK_SIZE;
        if chunks == 0 {
            return Ok(());
        }
        let at = out.len();
        out.resize(at + chunks * CHUNK_SIZE, 0);
        let dst = out.get_mut(at..).unwrap_or_default();
        match self.stream.open(wire, dst) {
            Ok(_) => Ok(()),
            Err(_) => Err(StreamError::BadTag {
                chunk: self.stream.counter(),
            }),
        }
    }

    /// Opens the whole chunks at the front of `buf` in place, without a
    /// copy: the plaintext is packed at the front of `buf` and its length
    /// returned. The bytes after the last whole chunk (fewer than 80) are
    /// not used: the caller keeps them and puts them at the front of the
    /// next call. Only for a caller that does that instead of calling
    /// [`ChunkOpener::open`], which holds such bytes back itself (bytes it
    /// holds are not looked at here, and the next tag fails).
    ///
    /// On a tag mismatch the error is returned, `buf` holds nothing
    /// usable, and every later call (of either kind) returns the error
    /// again.
    pub fn open_in_place(&mut self, buf: &mut [u8]) -> Result<usize, StreamError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        match self.stream.open_in_place(buf) {
            Ok(n) => Ok(n * CHUNK_SIZE),
            Err(_) => {
                let e = StreamError::BadTag {
                    chunk: self.stream.counter(),
                };
                self.partial_len = 0;
                self.failed = Some(e.clone());
                Err(e)
            }
        }
    }
}
