//! The batched GCM of `dmsg::crypto::gcm` against the `aes-gcm` crate (one
//! GCM message per 64-byte chunk, nonce = fixed IV ‖ be64 counter, no AAD).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod crypto_support;

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce, Tag};
use crypto_support::XorShift;
use dmsg::crypto::gcm::{ChunkCipher, TagMismatch};
use dmsg::crypto::{ChunkOpener, ChunkSealer, SessionKey, CHUNK_SIZE, WIRE_CHUNK_SIZE};

fn random_key(rng: &mut XorShift) -> SessionKey {
    let k = rng.bytes(32);
    let iv = rng.bytes(4);
    SessionKey::new(k.try_into().unwrap(), iv.try_into().unwrap())
}

/// The reference: `aes-gcm`, chunk by chunk.
fn reference_seal(key: &SessionKey, first: u64, plain: &[u8]) -> Vec<u8> {
    let cipher = Aes256Gcm::new(key.key().into());
    let mut out = Vec::new();
    let mut counter = first;
    for chunk in plain.chunks_exact(CHUNK_SIZE) {
        let mut nonce = [0u8; 12];
        nonce[..4].copy_from_slice(key.fixed_iv());
        nonce[4..].copy_from_slice(&counter.to_be_bytes());
        let mut buf = chunk.to_vec();
        let tag = cipher
            .encrypt_in_place_detached(Nonce::from_slice(&nonce), b"", &mut buf)
            .unwrap();
        out.extend_from_slice(&buf);
        out.extend_from_slice(&tag);
        counter = counter.wrapping_add(1);
    }
    out
}

#[test]
fn seal_matches_aes_gcm_across_batches_and_counter_wrap() {
    let mut rng = XorShift(0x5eed_0001);
    // 0, 1, a batch boundary (32), several batches and a remainder.
    for chunks in [0usize, 1, 2, 31, 32, 33, 100] {
        for first in [0u64, 1, 0xffff_ffff, u64::MAX - 40] {
            let key = random_key(&mut rng);
            let plain = rng.bytes(chunks * CHUNK_SIZE);
            let expected = reference_seal(&key, first, &plain);
            let mut wire = vec![0u8; chunks * WIRE_CHUNK_SIZE];
            let done = ChunkCipher::new(&key).seal(first, &plain, &mut wire);
            assert_eq!(done, chunks);
            assert_eq!(wire, expected, "chunks {chunks} first {first:#x}");

            let mut back = vec![0u8; plain.len()];
            assert_eq!(
                ChunkCipher::new(&key).open(first, &wire, &mut back),
                Ok(chunks)
            );
            assert_eq!(back, plain);
        }
    }
}

#[test]
fn aes_gcm_opens_what_the_sealer_made() {
    let mut rng = XorShift(0x5eed_0002);
    let key = random_key(&mut rng);
    let plain = rng.bytes(70 * CHUNK_SIZE);
    let mut sealer = ChunkSealer::new(&key);
    let mut wire = Vec::new();
    sealer.seal(&plain[..640], &mut wire).unwrap();
    sealer.seal(&plain[640..], &mut wire).unwrap();
    assert_eq!(sealer.counter(), 70);

    let cipher = Aes256Gcm::new(key.key().into());
    for (i, (chunk, orig)) in wire
        .chunks_exact(WIRE_CHUNK_SIZE)
        .zip(plain.chunks_exact(CHUNK_SIZE))
        .enumerate()
    {
        let mut nonce = [0u8; 12];
        nonce[..4].copy_from_slice(key.fixed_iv());
        nonce[4..].copy_from_slice(&(i as u64).to_be_bytes());
        let mut buf = chunk[..CHUNK_SIZE].to_vec();
        cipher
            .decrypt_in_place_detached(
                Nonce::from_slice(&nonce),
                b"",
                &mut buf,
                Tag::from_slice(&chunk[CHUNK_SIZE..]),
            )
            .unwrap();
        assert_eq!(buf, orig);
    }
}

#[test]
fn open_stops_at_the_first_bad_chunk() {
    let mut rng = XorShift(0x5eed_0003);
    let key = random_key(&mut rng);
    let plain = rng.bytes(40 * CHUNK_SIZE);
    let mut wire = reference_seal(&key, 7, &plain);
    wire[35 * WIRE_CHUNK_SIZE + 66] ^= 0x80;
    let mut out = vec![0u8; plain.len()];
    assert_eq!(
        ChunkCipher::new(&key).open(7, &wire, &mut out),
        Err(TagMismatch { index: 35 })
    );
    assert_eq!(out[..35 * CHUNK_SIZE], plain[..35 * CHUNK_SIZE]);
    assert!(out[35 * CHUNK_SIZE..].iter().all(|&b| b == 0));

    // The wrong counter fails on the first chunk.
    let wire = reference_seal(&key, 7, &plain);
    assert_eq!(
        ChunkCipher::new(&key).open(8, &wire, &mut out),
        Err(TagMismatch { index: 0 })
    );
}

#[test]
fn opener_in_random_pieces_equals_plaintext() {
    let mut rng = XorShift(0x5eed_0004);
    let key = random_key(&mut rng);
    let plain = rng.bytes(90 * CHUNK_SIZE);
    let wire = reference_seal(&key, 0, &plain);
    let mut opener = ChunkOpener::new(&key);
    let mut out = Vec::new();
    let mut rest = &wire[..];
    while !rest.is_empty() {
        let n = ((rng.next_u64() % 300) as usize).min(rest.len());
        let (piece, tail) = rest.split_at(n);
        opener.open(piece, &mut out).unwrap();
        assert_eq!(
            opener.pending(),
            (wire.len() - tail.len()) % WIRE_CHUNK_SIZE
        );
        rest = tail;
    }
    assert_eq!(out, plain);
    assert_eq!(opener.counter(), 90);
}
