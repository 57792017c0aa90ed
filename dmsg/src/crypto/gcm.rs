//! AES-256-GCM over independent 64-byte chunks, batched (WIRE.md §7.4).
//!
//! Each chunk is one GCM message: 12-byte IV = 4 fixed bytes ‖ 64-bit
//! big-endian chunk counter, no AAD, 64 bytes of data, 16-byte tag. With a
//! 96-bit IV, GCM defines `J0 = IV ‖ 0x00000001`; the data is XORed with
//! `E(IV ‖ 2) … E(IV ‖ 5)`, and the tag is
//! `GHASH_H(C1 ‖ C2 ‖ C3 ‖ C4 ‖ len) ⊕ E(J0)` with `H = E(0^128)` and
//! `len = be64(0) ‖ be64(512)`.
//!
//! # How the work is split
//!
//! One chunk needs five AES blocks, all independent of the data, and a
//! GHASH of five blocks. Neither GCM crate API fits: a per-message AEAD
//! call sets up a fresh counter and hash for every 64 bytes. So the two
//! halves go separately to the RustCrypto primitives:
//!
//! * **AES (`aes` 0.9):** the key stream of [`BATCH_CHUNKS`] chunks (per
//!   chunk `E(J0)` then the four data blocks: 320 blocks) is computed by one
//!   `encrypt_blocks` call. The crate picks its back end at run time
//!   (`cpufeatures`): VAES with 512-bit registers (64 blocks per step),
//!   VAES with 256-bit registers (30 blocks), AES-NI (8 blocks), else a
//!   bitsliced constant-time software AES. 320 blocks are five whole steps
//!   of the widest back end and 40 of AES-NI, so no block goes through the
//!   crate's one-block-at-a-time tail. [`ChunkStream`] keeps the key stream
//!   between calls, so the batches stay whole however the caller cuts the
//!   data (a 64-byte frame header, then its aux data, …).
//! * **GHASH through POLYVAL (`polyval` 0.7):** RFC 8452, appendix A:
//!   `GHASH_H(X1…Xn) = rev(POLYVAL_{mulX(rev(H))}(rev(X1)…rev(Xn)))`, with
//!   `rev` reversing the 16 bytes of a block. The four ciphertext blocks of
//!   a chunk are exactly one of the crate's 4-block aggregated steps
//!   (`proc_par_blocks`: four multiplications and one reduction with
//!   PCLMULQDQ), and the length block one more multiplication.
//!
//! Why these crates: `dmsg` forbids `unsafe`, and a target-feature
//! intrinsic cannot be called without it, so the hardware paths must come
//! from a crate that does the runtime detection and the unsafe calls
//! inside. These do, with AES-NI/VAES and PCLMULQDQ, and their software
//! fallbacks are constant-time (bitsliced AES, no table lookups indexed by
//! secret data). The output is checked against the older, independent
//! `aes-gcm` 0.10 (`aes` 0.8 and `ghash` 0.5) and against the captured
//! stream of the original library in the tests.

use aes::cipher::array::Array;
use aes::cipher::{BlockCipherEncrypt, KeyInit};
use aes::{Aes256, Block};
use polyval::universal_hash::{Reset, UhfBackend, UniversalHash};
use polyval::{ParBlocks, Polyval};

use super::{CHUNK_SIZE, IV_FIXED_SIZE, KEY_SIZE, TAG_SIZE, WIRE_CHUNK_SIZE};

/// AES blocks per chunk: J0 (tag mask) plus four data blocks.
const BLOCKS_PER_CHUNK: usize = 5;
/// Chunks whose key stream is computed in one AES call: 320 blocks, five
/// whole 64-block steps of the VAES-512 back end.
pub const BATCH_CHUNKS: usize = 64;
/// The GHASH length block of a 64-byte message without AAD
/// (`be64(0) ‖ be64(512)`), byte-reversed for POLYVAL.
static LEN_BLOCK: Block = Array([0x00, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
/// The reduction of POLYVAL's field, `x^128 = x^127 + x^126 + x^121 + 1`,
/// as a little-endian bit mask.
const POLYVAL_REDUCE: u128 = (1 << 127) | (1 << 126) | (1 << 121) | 1;

/// The five key stream blocks of one chunk: `E(J0)`, then the four data
/// blocks.
type ChunkKeys = [Block; BLOCKS_PER_CHUNK];

/// The key and fixed IV part of one direction of a link.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionKey {
    key: [u8; KEY_SIZE],
    fixed_iv: [u8; IV_FIXED_SIZE],
}

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey { .. }")
    }
}

impl SessionKey {
    /// A key from its parts: AES-256 key and the 4 fixed bytes of the IV.
    pub fn new(key: [u8; KEY_SIZE], fixed_iv: [u8; IV_FIXED_SIZE]) -> Self {
        SessionKey { key, fixed_iv }
    }

    /// The AES-256 key (`sess[0..32]`).
    pub fn key(&self) -> &[u8; KEY_SIZE] {
        &self.key
    }

    /// The fixed IV part (`sess[32..36]`).
    pub fn fixed_iv(&self) -> &[u8; IV_FIXED_SIZE] {
        &self.fixed_iv
    }
}

/// The expanded AES key, the GHASH key and the fixed IV of one direction.
/// Stateless: every call names the counter of its first chunk.
#[derive(Clone)]
pub struct ChunkCipher {
    aes: Aes256,
    /// POLYVAL keyed with `mulX(rev(H))`, at its initial state.
    ghash: Polyval,
    fixed_iv: [u8; IV_FIXED_SIZE],
}

impl std::fmt::Debug for ChunkCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChunkCipher { .. }")
    }
}

/// The chunk at counter `first + index` failed its tag check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TagMismatch {
    /// Index of the failing chunk within the call.
    pub index: usize,
}

/// The 16 bytes of `x` in reverse order (GHASH's bit order to POLYVAL's).
#[inline(always)]
fn rev(x: [u8; 16]) -> Block {
    Block::from(u128::from_be_bytes(x).to_le_bytes())
}

/// `x · X` in POLYVAL's field (RFC 8452, `mulX_POLYVAL`), branch-free.
fn mulx(x: [u8; 16]) -> [u8; 16] {
    let v = u128::from_le_bytes(x);
    let carry = v >> 127;
    ((v << 1) ^ (POLYVAL_REDUCE & 0u128.wrapping_sub(carry))).to_le_bytes()
}

impl ChunkCipher {
    /// Expands `key` and derives the GHASH key from `H = E_K(0)`.
    pub fn new(key: &SessionKey) -> Self {
        let aes = Aes256::new(&key.key.into());
        let mut h = Block::default();
        aes.encrypt_block(&mut h);
        let k = mulx(rev(h.into()).into());
        ChunkCipher {
            aes,
            ghash: Polyval::new(&k.into()),
            fixed_iv: key.fixed_iv,
        }
    }

    /// Fills `ks` (whole chunks of five blocks) with the key stream of the
    /// chunks numbered `first`, `first + 1`, …: per chunk `E(J0)` then the
    /// four data blocks, all in one AES call.
    fn key_stream(&self, first: u64, ks: &mut [ChunkKeys]) {
        // A counter block is `fixed ‖ be64(counter) ‖ be32(n)`; read as a
        // little-endian u128 that is `fixed` in bits 0..32, the counter
        // byte-swapped in bits 32..96 and `n` byte-swapped in bits 96..128,
        // so one byte swap per chunk builds all five.
        let fixed = u128::from(u32::from_le_bytes(self.fixed_iv));
        let mut counter = first;
        for chunk in ks.iter_mut() {
            let base = fixed | (u128::from(counter.swap_bytes()) << 32);
            for (n, block) in (1u32..).zip(chunk.iter_mut()) {
                *block = Block::from((base | (u128::from(n.swap_bytes()) << 96)).to_le_bytes());
            }
            counter = counter.wrapping_add(1);
        }
        self.aes.encrypt_blocks(ks.as_flattened_mut());
    }

    /// Seals a group of chunks with their key streams, in passes over the
    /// group: every ciphertext (and its byte-reversed copy for POLYVAL into
    /// `rev_ct`), then the hashes ([`Self::hash_group`]), then every tag.
    ///
    /// Why passes: the POLYVAL crate takes its input and keeps its
    /// accumulator in memory, and reading 16 bytes just written as two
    /// 8-byte stores (the byte reversal, the accumulator returned in two
    /// registers) stalls the load until the stores reach the cache. Chunk
    /// after chunk, every step would wait for the one before; pass after
    /// pass over a group, each value is written long before it is read.
    fn seal_group(
        lanes: &mut [Polyval],
        rev_ct: &mut [ParBlocks],
        ks: &[ChunkKeys],
        plain: &[[u8; CHUNK_SIZE]],
        wire: &mut [[u8; WIRE_CHUNK_SIZE]],
    ) {
        for (((pt, out), k), h) in plain
            .iter()
            .zip(wire.iter_mut())
            .zip(ks)
            .zip(rev_ct.iter_mut())
        {
            let [_, data_ks @ ..] = k;
            for (((o, p), k), h) in out
                .as_chunks_mut::<16>()
                .0
                .iter_mut()
                .zip(pt.as_chunks::<16>().0)
                .zip(data_ks)
                .zip(h.iter_mut())
            {
                let c = (u128::from_ne_bytes(*p) ^ u128::from_ne_bytes(k.0)).to_ne_bytes();
                *o = c;
                *h = rev(c);
            }
        }
        Self::hash_group(lanes, rev_ct.get(..ks.len()).unwrap_or_default());
        for ((out, [mask, ..]), lane) in wire.iter_mut().zip(ks).zip(lanes.iter_mut()) {
            let tag = Self::finish(lane, mask);
            if let Some(t) = out.as_chunks_mut::<16>().0.get_mut(4) {
                *t = tag;
            }
        }
    }

    /// POLYVAL of each chunk of a group, one state (`lanes[j]`, at its
    /// initial state) per chunk: `C1…C4` of every chunk in one 4-block step
    /// each, then the length block of every chunk.
    fn hash_group(lanes: &mut [Polyval], rev_ct: &[ParBlocks]) {
        for (lane, h) in lanes.iter_mut().zip(rev_ct) {
            lane.proc_par_blocks(h);
        }
        for lane in lanes.iter_mut().take(rev_ct.len()) {
            lane.proc_block(&LEN_BLOCK);
        }
    }

    /// The tag of a chunk from its hashed lane: `rev(POLYVAL) ⊕ E(J0)`.
    /// Leaves the lane at its initial state.
    #[inline(always)]
    fn finish(lane: &mut Polyval, mask: &Block) -> [u8; TAG_SIZE] {
        let s = lane.finalize_reset();
        (u128::from_le_bytes(s.0) ^ u128::from_be_bytes(mask.0)).to_be_bytes()
    }

    /// The byte-reversed ciphertext blocks of each chunk of a group, for
    /// POLYVAL (the first pass of opening, see [`Self::seal_group`]).
    fn reverse_group<'a>(
        rev_ct: &mut [ParBlocks],
        wire: impl Iterator<Item = &'a [u8; WIRE_CHUNK_SIZE]>,
    ) {
        for (h, input) in rev_ct.iter_mut().zip(wire) {
            for (h, c) in h.iter_mut().zip(input.as_chunks::<16>().0) {
                *h = rev(*c);
            }
        }
    }

    /// Checks the tag of one chunk (hashed in `lane`, which is left at its
    /// initial state) and decrypts it, or `None` if the tag fails.
    #[inline(always)]
    fn open_chunk(
        lane: &mut Polyval,
        ks: &ChunkKeys,
        input: &[u8; WIRE_CHUNK_SIZE],
    ) -> Option<[u8; CHUNK_SIZE]> {
        let [mask, data_ks @ ..] = ks;
        let tag = Self::finish(lane, mask);
        let (blocks, _) = input.as_chunks::<16>();
        if !blocks.get(4).is_some_and(|t| tags_equal(&tag, t)) {
            return None;
        }
        let mut pt = [0u8; CHUNK_SIZE];
        for ((p, c), k) in pt
            .as_chunks_mut::<16>()
            .0
            .iter_mut()
            .zip(blocks)
            .zip(data_ks)
        {
            *p = (u128::from_ne_bytes(*c) ^ u128::from_ne_bytes(k.0)).to_ne_bytes();
        }
        Some(pt)
    }

    /// Opens a group of chunks from `wire` into `plain`; returns the index
    /// of the first chunk whose tag fails (the ones before it are written).
    fn open_group(
        lanes: &mut [Polyval],
        rev_ct: &mut [ParBlocks],
        ks: &[ChunkKeys],
        wire: &[[u8; WIRE_CHUNK_SIZE]],
        plain: &mut [[u8; CHUNK_SIZE]],
    ) -> Result<(), usize> {
        Self::reverse_group(rev_ct, wire.iter());
        Self::hash_group(lanes, rev_ct.get(..ks.len()).unwrap_or_default());
        for (i, ((input, pt), (k, lane))) in wire
            .iter()
            .zip(plain.iter_mut())
            .zip(ks.iter().zip(lanes.iter_mut()))
            .enumerate()
        {
            let Some(p) = Self::open_chunk(lane, k, input) else {
                reset_lanes(lanes);
                return Err(i);
            };
            *pt = p;
        }
        Ok(())
    }

    /// Seals whole chunks: `plain` (64 bytes per chunk) into `wire` (80
    /// bytes per chunk), the first chunk under counter `first`. Chunks that
    /// do not fit both buffers are left alone; returns how many were sealed.
    pub fn seal(&self, first: u64, plain: &[u8], wire: &mut [u8]) -> usize {
        let mut stream = ChunkStream::from_cipher(self.clone(), first);
        stream.seal(plain, wire)
    }

    /// Opens whole chunks: `wire` (80 bytes per chunk) into `plain` (64
    /// bytes per chunk), the first chunk under counter `first`. Each tag is
    /// checked before its plaintext is written. Returns how many chunks were
    /// opened, or the index of the first chunk whose tag fails (the chunks
    /// before it have been written to `plain`).
    pub fn open(&self, first: u64, wire: &[u8], plain: &mut [u8]) -> Result<usize, TagMismatch> {
        let mut stream = ChunkStream::from_cipher(self.clone(), first);
        stream.open(wire, plain)
    }
}

/// One direction of the chunk stream with its counter: a [`ChunkCipher`]
/// plus the key stream of the next chunks, computed [`BATCH_CHUNKS`] at a
/// time whatever the sizes of the calls.
#[derive(Clone)]
pub struct ChunkStream {
    cipher: ChunkCipher,
    /// One POLYVAL per chunk of a group, each at its initial state between
    /// groups.
    lanes: Box<[Polyval; BATCH_CHUNKS]>,
    /// Key stream of the chunks `counter - pos …`; `pos` is the next unused
    /// one (`BATCH_CHUNKS`: none left).
    ks: Box<[ChunkKeys; BATCH_CHUNKS]>,
    /// The byte-reversed ciphertext of a group of chunks, for POLYVAL.
    rev_ct: Box<[ParBlocks; BATCH_CHUNKS]>,
    pos: usize,
    counter: u64,
}

impl std::fmt::Debug for ChunkStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkStream")
            .field("counter", &self.counter)
            .finish_non_exhaustive()
    }
}

impl ChunkStream {
    /// A stream whose first chunk has counter `first`.
    pub fn new(key: &SessionKey, first: u64) -> Self {
        Self::from_cipher(ChunkCipher::new(key), first)
    }

    fn from_cipher(cipher: ChunkCipher, first: u64) -> Self {
        ChunkStream {
            lanes: Box::new(std::array::from_fn(|_| cipher.ghash.clone())),
            cipher,
            ks: Box::new([ChunkKeys::default(); BATCH_CHUNKS]),
            rev_ct: Box::new([ParBlocks::default(); BATCH_CHUNKS]),
            pos: BATCH_CHUNKS,
            counter: first,
        }
    }

    /// The counter of the next chunk.
    pub fn counter(&self) -> u64 {
        self.counter
    }

    /// How many of the next `want` chunks (at most) have their key stream
    /// ready, computing the next batch when none is left.
    fn ready(&mut self, want: usize) -> usize {
        if self.pos >= BATCH_CHUNKS {
            self.cipher.key_stream(self.counter, &mut self.ks[..]);
            self.pos = 0;
        }
        want.min(BATCH_CHUNKS - self.pos)
    }

    /// Uses up `n` chunks of the key stream.
    fn advance(&mut self, n: usize) {
        self.pos += n;
        self.counter = self.counter.wrapping_add(n as u64);
    }

    /// Seals whole chunks of `plain` into `wire` (80 bytes per chunk), as
    /// many as fit both; returns how many.
    pub fn seal(&mut self, plain: &[u8], wire: &mut [u8]) -> usize {
        let plain = plain.as_chunks::<CHUNK_SIZE>().0;
        let wire = wire.as_chunks_mut::<WIRE_CHUNK_SIZE>().0;
        let total = plain.len().min(wire.len());
        let mut done = 0;
        while done < total {
            let n = self.ready(total - done);
            let (Some(ks), Some(pt), Some(out)) = (
                self.ks.get(self.pos..self.pos + n),
                plain.get(done..done + n),
                wire.get_mut(done..done + n),
            ) else {
                break;
            };
            ChunkCipher::seal_group(&mut self.lanes[..], &mut self.rev_ct[..], ks, pt, out);
            self.advance(n);
            done += n;
        }
        done
    }

    /// Opens whole chunks of `wire` into `plain` (64 bytes per chunk), as
    /// many as fit both, each tag checked before its plaintext is written.
    /// Returns how many, or the index of the first chunk whose tag fails
    /// (its counter is then [`Self::counter`]).
    pub fn open(&mut self, wire: &[u8], plain: &mut [u8]) -> Result<usize, TagMismatch> {
        let wire = wire.as_chunks::<WIRE_CHUNK_SIZE>().0;
        let plain = plain.as_chunks_mut::<CHUNK_SIZE>().0;
        let total = plain.len().min(wire.len());
        let mut done = 0;
        while done < total {
            let n = self.ready(total - done);
            let (Some(ks), Some(input), Some(out)) = (
                self.ks.get(self.pos..self.pos + n),
                wire.get(done..done + n),
                plain.get_mut(done..done + n),
            ) else {
                break;
            };
            if let Err(bad) =
                ChunkCipher::open_group(&mut self.lanes[..], &mut self.rev_ct[..], ks, input, out)
            {
                self.advance(bad);
                return Err(TagMismatch { index: done + bad });
            }
            self.advance(n);
            done += n;
        }
        Ok(done)
    }

    /// Opens the whole chunks of `buf` in place: the plaintext of chunk `i`
    /// goes to `buf[64 i .. 64 i + 64]`, so the plaintext ends up packed at
    /// the front. Bytes after the last whole chunk are left alone. Returns
    /// how many chunks were opened, or the index of the first chunk whose
    /// tag fails (as [`Self::open`]).
    pub fn open_in_place(&mut self, buf: &mut [u8]) -> Result<usize, TagMismatch> {
        let total = buf.len() / WIRE_CHUNK_SIZE;
        let mut done = 0;
        while done < total {
            let n = self.ready(total - done);
            let Some(ks) = self.ks.get(self.pos..self.pos + n) else {
                break;
            };
            let Some(group) = buf.get(done * WIRE_CHUNK_SIZE..(done + n) * WIRE_CHUNK_SIZE) else {
                break;
            };
            ChunkCipher::reverse_group(
                &mut self.rev_ct[..],
                group.as_chunks::<WIRE_CHUNK_SIZE>().0.iter(),
            );
            ChunkCipher::hash_group(
                &mut self.lanes[..],
                self.rev_ct.get(..n).unwrap_or_default(),
            );
            for (j, (k, lane)) in ks.iter().zip(self.lanes.iter_mut()).enumerate() {
                let i = done + j;
                // Chunk i is copied out before its plaintext is written: for
                // the first chunks the two ranges overlap.
                let Some(input) = buf
                    .get(i * WIRE_CHUNK_SIZE..)
                    .and_then(|s| s.first_chunk::<WIRE_CHUNK_SIZE>())
                    .copied()
                else {
                    // Not reached: the group is within `buf`.
                    reset_lanes(&mut self.lanes[..]);
                    self.advance(j);
                    return Ok(i);
                };
                let Some(pt) = ChunkCipher::open_chunk(lane, k, &input) else {
                    reset_lanes(&mut self.lanes[..]);
                    self.advance(j);
                    return Err(TagMismatch { index: i });
                };
                if let Some(dst) = buf
                    .get_mut(i * CHUNK_SIZE..)
                    .and_then(|s| s.first_chunk_mut::<CHUNK_SIZE>())
                {
                    *dst = pt;
                }
            }
            self.advance(n);
            done += n;
        }
        Ok(done)
    }
}

/// Puts every lane back at its initial state (after a group was left
/// half done).
fn reset_lanes(lanes: &mut [Polyval]) {
    lanes.iter_mut().for_each(Reset::reset);
}

/// Compares two tags without an early exit (one 128-bit comparison).
fn tags_equal(a: &[u8; TAG_SIZE], b: &[u8; TAG_SIZE]) -> bool {
    u128::from_ne_bytes(*a) ^ u128::from_ne_bytes(*b) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mulx_matches_rfc_8452() {
        // x·1 = x, and the example of RFC 8452, appendix A, as corrected
        // by its erratum: 9c98c04df9387ded828175a92ba652d8 gives
        // 3931819bf271fada0503eb52574ca572.
        assert_eq!(
            mulx([1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            [2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        let x = [
            0x9c, 0x98, 0xc0, 0x4d, 0xf9, 0x38, 0x7d, 0xed, 0x82, 0x81, 0x75, 0xa9, 0x2b, 0xa6,
            0x52, 0xd8,
        ];
        let want = [
            0x39, 0x31, 0x81, 0x9b, 0xf2, 0x71, 0xfa, 0xda, 0x05, 0x03, 0xeb, 0x52, 0x57, 0x4c,
            0xa5, 0x72,
        ];
        assert_eq!(mulx(x), want);
    }
}
