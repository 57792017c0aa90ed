//! The batched chunk stream (`ChunkStream`, and `ChunkCipher`,
//! `ChunkSealer`, `ChunkOpener` on top of it) against a straightforward
//! per-chunk reference: the `aes-gcm` 0.10 crate (built on `aes` 0.8 and
//! `ghash` 0.5, none of the code under test), one GCM message per 64-byte
//! chunk. Random keys, fixed IVs, first counters (also right before the
//! 64-bit wrap) and ways of cutting the data into calls, which move the
//! chunks across the batches of the key stream; and every flipped bit is
//! caught at its own chunk.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce, Tag};
use dmsg::crypto::gcm::{ChunkCipher, ChunkStream, TagMismatch, BATCH_CHUNKS};
use dmsg::crypto::{
    ChunkOpener, ChunkSealer, SessionKey, StreamError, CHUNK_SIZE, WIRE_CHUNK_SIZE,
};
use proptest::prelude::*;

fn nonce(key: &SessionKey, counter: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[..4].copy_from_slice(key.fixed_iv());
    n[4..].copy_from_slice(&counter.to_be_bytes());
    n
}

/// The reference sealer: `aes-gcm`, chunk by chunk.
fn reference_seal(key: &SessionKey, first: u64, plain: &[u8]) -> Vec<u8> {
    let cipher = Aes256Gcm::new(key.key().into());
    let mut out = Vec::new();
    for (i, chunk) in plain.chunks_exact(CHUNK_SIZE).enumerate() {
        let n = nonce(key, first.wrapping_add(i as u64));
        let mut buf = chunk.to_vec();
        let tag = cipher
            .encrypt_in_place_detached(Nonce::from_slice(&n), b"", &mut buf)
            .unwrap();
        out.extend_from_slice(&buf);
        out.extend_from_slice(&tag);
    }
    out
}

/// The reference opener: the plaintext of every chunk, or the index of the
/// first one `aes-gcm` refuses.
fn reference_open(key: &SessionKey, first: u64, wire: &[u8]) -> Result<Vec<u8>, usize> {
    let cipher = Aes256Gcm::new(key.key().into());
    let mut out = Vec::new();
    for (i, chunk) in wire.chunks_exact(WIRE_CHUNK_SIZE).enumerate() {
        let n = nonce(key, first.wrapping_add(i as u64));
        let mut buf = chunk[..CHUNK_SIZE].to_vec();
        cipher
            .decrypt_in_place_detached(
                Nonce::from_slice(&n),
                b"",
                &mut buf,
                Tag::from_slice(&chunk[CHUNK_SIZE..]),
            )
            .map_err(|_| i)?;
        out.extend_from_slice(&buf);
    }
    Ok(out)
}

/// Cuts `total` chunks into calls of the sizes in `cuts` (cycled; a 0 is a
/// call with no chunk; all zeros count as ones).
fn pieces(total: usize, cuts: &[usize]) -> Vec<usize> {
    let cuts = if cuts.iter().all(|&c| c == 0) {
        &[1][..]
    } else {
        cuts
    };
    let mut out = Vec::new();
    let mut left = total;
    let mut i = 0;
    while left > 0 {
        let n = cuts[i % cuts.len()].min(left);
        out.push(n);
        left -= n;
        i += 1;
    }
    out
}

fn first_counter() -> impl Strategy<Value = u64> {
    prop_oneof![
        0u64..1000,
        any::<u64>(),
        // The 64-bit counter wraps inside the call.
        (u64::MAX - 300)..=u64::MAX,
    ]
}

/// Chunk counts around the batch size and its multiples.
fn chunk_count() -> impl Strategy<Value = usize> {
    prop_oneof![
        0usize..=3 * BATCH_CHUNKS + 2,
        Just(BATCH_CHUNKS - 1),
        Just(BATCH_CHUNKS),
        Just(BATCH_CHUNKS + 1),
        Just(2 * BATCH_CHUNKS),
    ]
}

/// Sizes of the calls, in chunks.
fn cuts() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(
        prop_oneof![
            0usize..=3,
            1usize..=BATCH_CHUNKS + 1,
            Just(BATCH_CHUNKS),
            Just(1000)
        ],
        1..6,
    )
}

fn key_of(key: [u8; 32], iv: [u8; 4]) -> SessionKey {
    SessionKey::new(key, iv)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Sealing, whole or in pieces, is the reference byte for byte, and
    /// opening gives the plaintext back, in every way of calling it.
    #[test]
    fn batched_equals_per_chunk_reference(
        k in any::<[u8; 32]>(),
        iv in any::<[u8; 4]>(),
        first in first_counter(),
        chunks in chunk_count(),
        cuts in cuts(),
        seed in any::<u64>(),
    ) {
        let key = key_of(k, iv);
        let plain: Vec<u8> = (0..chunks * CHUNK_SIZE)
            .map(|i| (seed.wrapping_mul(i as u64 + 1) >> 29) as u8)
            .collect();
        let expected = reference_seal(&key, first, &plain);
        let calls = pieces(chunks, &cuts);

        // Stateless, in one call.
        let mut wire = vec![0u8; chunks * WIRE_CHUNK_SIZE];
        prop_assert_eq!(ChunkCipher::new(&key).seal(first, &plain, &mut wire), chunks);
        prop_assert_eq!(&wire, &expected);
        let mut back = vec![0u8; plain.len()];
        prop_assert_eq!(ChunkCipher::new(&key).open(first, &wire, &mut back), Ok(chunks));
        prop_assert_eq!(&back, &plain);

        // A stream, in pieces.
        let mut stream = ChunkStream::new(&key, first);
        let mut wire = vec![0u8; chunks * WIRE_CHUNK_SIZE];
        let mut at = 0;
        for &n in &calls {
            let done = stream.seal(
                &plain[at * CHUNK_SIZE..(at + n) * CHUNK_SIZE],
                &mut wire[at * WIRE_CHUNK_SIZE..],
            );
            prop_assert_eq!(done, n);
            at += n;
        }
        prop_assert_eq!(stream.counter(), first.wrapping_add(chunks as u64));
        prop_assert_eq!(&wire, &expected);

        // Opened by a stream in pieces, into a buffer and in place.
        let mut stream = ChunkStream::new(&key, first);
        let mut back = vec![0u8; plain.len()];
        let mut at = 0;
        for &n in &calls {
            let done = stream.open(
                &expected[at * WIRE_CHUNK_SIZE..(at + n) * WIRE_CHUNK_SIZE],
                &mut back[at * CHUNK_SIZE..],
            );
            prop_assert_eq!(done, Ok(n));
            at += n;
        }
        prop_assert_eq!(&back, &plain);

        let mut stream = ChunkStream::new(&key, first);
        let mut at = 0;
        for &n in &calls {
            let mut buf = expected[at * WIRE_CHUNK_SIZE..(at + n) * WIRE_CHUNK_SIZE].to_vec();
            // A partial chunk after the whole ones is left alone.
            buf.extend_from_slice(&[0xEE; WIRE_CHUNK_SIZE - 1]);
            prop_assert_eq!(stream.open_in_place(&mut buf), Ok(n));
            prop_assert_eq!(&buf[..n * CHUNK_SIZE], &plain[at * CHUNK_SIZE..(at + n) * CHUNK_SIZE]);
            prop_assert!(buf[n * WIRE_CHUNK_SIZE..].iter().all(|&b| b == 0xEE));
            at += n;
        }

        // The Vec-based sealer and opener (counter 0) agree too.
        if first == 0 {
            let mut sealer = ChunkSealer::new(&key);
            let mut out = Vec::new();
            let mut into = vec![0u8; wire.len()];
            let mut sealer2 = ChunkSealer::new(&key);
            let mut at = 0;
            for &n in &calls {
                let piece = &plain[at * CHUNK_SIZE..(at + n) * CHUNK_SIZE];
                sealer.seal(piece, &mut out).unwrap();
                prop_assert_eq!(
                    sealer2.seal_into(piece, &mut into[at * WIRE_CHUNK_SIZE..]).unwrap(),
                    piece.len()
                );
                at += n;
            }
            prop_assert_eq!(&out, &expected);
            prop_assert_eq!(&into, &expected);
            let mut opener = ChunkOpener::new(&key);
            let mut back = Vec::new();
            opener.open(&out, &mut back).unwrap();
            prop_assert_eq!(&back, &plain);
        }
    }

    /// A flipped bit anywhere fails the tag of exactly its chunk: every
    /// way of opening stops there, with the chunks before it intact, as
    /// `aes-gcm` does.
    #[test]
    fn a_flipped_bit_fails_its_own_chunk(
        k in any::<[u8; 32]>(),
        iv in any::<[u8; 4]>(),
        first in first_counter(),
        chunks in 1usize..=2 * BATCH_CHUNKS + 3,
        bit in any::<prop::sample::Index>(),
        cuts in cuts(),
    ) {
        let key = key_of(k, iv);
        let plain: Vec<u8> = (0..chunks * CHUNK_SIZE).map(|i| (i * 31 + 7) as u8).collect();
        let mut wire = reference_seal(&key, first, &plain);
        let bit = bit.index(wire.len() * 8);
        wire[bit / 8] ^= 1 << (bit % 8);
        let bad = bit / 8 / WIRE_CHUNK_SIZE;
        prop_assert_eq!(reference_open(&key, first, &wire), Err(bad));

        let mut out = vec![0u8; plain.len()];
        prop_assert_eq!(
            ChunkCipher::new(&key).open(first, &wire, &mut out),
            Err(TagMismatch { index: bad })
        );
        prop_assert_eq!(&out[..bad * CHUNK_SIZE], &plain[..bad * CHUNK_SIZE]);
        prop_assert!(out[bad * CHUNK_SIZE..].iter().all(|&b| b == 0));

        // In pieces: the call holding the bad chunk fails at it.
        let calls = pieces(chunks, &cuts);
        let mut stream = ChunkStream::new(&key, first);
        let mut in_place = ChunkStream::new(&key, first);
        let mut at = 0;
        for &n in &calls {
            let piece = &wire[at * WIRE_CHUNK_SIZE..(at + n) * WIRE_CHUNK_SIZE];
            let mut out = vec![0u8; n * CHUNK_SIZE];
            let mut buf = piece.to_vec();
            if (at..at + n).contains(&bad) {
                let want = Err(TagMismatch { index: bad - at });
                prop_assert_eq!(stream.open(piece, &mut out), want);
                prop_assert_eq!(in_place.open_in_place(&mut buf), want);
                prop_assert_eq!(stream.counter(), first.wrapping_add(bad as u64));
                prop_assert_eq!(in_place.counter(), first.wrapping_add(bad as u64));
                let good = (bad - at) * CHUNK_SIZE;
                prop_assert_eq!(&out[..good], &plain[at * CHUNK_SIZE..at * CHUNK_SIZE + good]);
                prop_assert_eq!(&buf[..good], &plain[at * CHUNK_SIZE..at * CHUNK_SIZE + good]);
                break;
            }
            prop_assert_eq!(stream.open(piece, &mut out), Ok(n));
            prop_assert_eq!(in_place.open_in_place(&mut buf), Ok(n));
            at += n;
        }

        // The opener's in-place path reports the chunk's counter and stays
        // failed.
        if first == 0 {
            let mut opener = ChunkOpener::new(&key);
            let mut buf = wire.clone();
            let err = StreamError::BadTag { chunk: bad as u64 };
            prop_assert_eq!(opener.open_in_place(&mut buf), Err(err.clone()));
            prop_assert_eq!(opener.open_in_place(&mut []), Err(err.clone()));
            prop_assert_eq!(opener.open(&[], &mut Vec::new()), Err(err));
        }
    }
}
