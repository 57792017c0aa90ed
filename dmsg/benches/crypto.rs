//! Throughput of the AES-256-GCM chunk stream (WIRE.md §7.4): sealing and
//! opening 4 KiB and 64 KiB messages, plus the `aes-gcm` crate with a reused
//! cipher (one call per 64-byte chunk) as the baseline the batched design
//! was chosen against.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dmsg::crypto::{ChunkOpener, ChunkSealer, SessionKey, CHUNK_SIZE, WIRE_CHUNK_SIZE};

const SIZES: [usize; 2] = [4096, 65536];

fn key() -> SessionKey {
    let mut k = [0u8; 32];
    for (i, b) in k.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(37).wrapping_add(11);
    }
    SessionKey::new(k, [0xde, 0xad, 0xbe, 0xef])
}

fn message(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + 3) as u8).collect()
}

fn seal(c: &mut Criterion) {
    let mut group = c.benchmark_group("crypto/seal");
    for &size in &SIZES {
        let plain = message(size);
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::from_parameter(size), &plain, |b, plain| {
            let mut sealer = ChunkSealer::new(&key());
            let mut out = Vec::with_capacity(size / CHUNK_SIZE * WIRE_CHUNK_SIZE);
            b.iter(|| {
                out.clear();
                sealer.seal(black_box(plain), &mut out).unwrap();
                black_box(&out);
            });
        });
    }
    group.finish();
}

fn open(c: &mut Criterion) {
    let mut group = c.benchmark_group("crypto/open");
    for &size in &SIZES {
        // Enough sealed messages, each under its own counter range, to cycle
        // through; the opener is reset when it runs out.
        let plain = message(size);
        let mut sealer = ChunkSealer::new(&key());
        let mut wire = Vec::new();
        const MESSAGES: usize = 64;
        for _ in 0..MESSAGES {
            sealer.seal(&plain, &mut wire).unwrap();
        }
        let msg_wire = size / CHUNK_SIZE * WIRE_CHUNK_SIZE;
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::from_parameter(size), &wire, |b, wire| {
            let mut opener = ChunkOpener::new(&key());
            let mut next = 0usize;
            let mut out = Vec::with_capacity(size);
            b.iter(|| {
                if next == MESSAGES {
                    opener = ChunkOpener::new(&key());
                    next = 0;
                }
                out.clear();
                let piece = &wire[next * msg_wire..(next + 1) * msg_wire];
                opener.open(black_box(piece), &mut out).unwrap();
                next += 1;
                black_box(&out);
            });
        });
    }
    group.finish();
}

fn baseline(c: &mut Criterion) {
    let mut group = c.benchmark_group("crypto/baseline-aes-gcm-per-chunk-seal");
    let k = key();
    let cipher = Aes256Gcm::new(k.key().into());
    for &size in &SIZES {
        let plain = message(size);
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::from_parameter(size), &plain, |b, plain| {
            let mut counter = 0u64;
            let mut out = Vec::with_capacity(size / CHUNK_SIZE * WIRE_CHUNK_SIZE);
            b.iter(|| {
                out.clear();
                for chunk in plain.chunks_exact(CHUNK_SIZE) {
                    let mut nonce = [0u8; 12];
                    nonce[..4].copy_from_slice(k.fixed_iv());
                    nonce[4..].copy_from_slice(&counter.to_be_bytes());
                    let mut buf = [0u8; CHUNK_SIZE];
                    buf.copy_from_slice(chunk);
                    let tag = cipher
                        .encrypt_in_place_detached(Nonce::from_slice(&nonce), b"", &mut buf)
                        .unwrap();
                    out.extend_from_slice(&buf);
                    out.extend_from_slice(&tag);
                    counter = counter.wrapping_add(1);
                }
                black_box(&out);
            });
        });
    }
    group.finish();
}

criterion_group!(benches, seal, open, baseline);
criterion_main!(benches);
