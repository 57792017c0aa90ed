//! Throughput of the frame codec (WIRE.md §1, §4): encoding and decoding
//! one message with 0 B, 4 KiB and 64 KiB of aux data. Decoding a large
//! message should cost about one copy of the aux data plus its CRC-32C.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dmsg::wire::{cmd, Decoder, Encoder, LnkSpan, Message};
use std::hint::black_box;

const AUX_SIZES: [usize; 3] = [0, 4096, 65536];

/// A `DBG_SHELL` reply with `aux` bytes of data; with no aux data an
/// `LNK_SPAN` (448-byte header) instead, the largest common header.
fn message(aux: usize) -> Message {
    let mut m = if aux == 0 {
        Message::with_body(cmd::CREATE, &LnkSpan::default())
    } else {
        Message::new(cmd::DBG_SHELL | cmd::REPLY)
    };
    m.hdr.msgid = 0x7f00_1234_5678;
    m.aux = (0..aux).map(|i| (i * 7 + 3) as u8).collect();
    m
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("codec/encode");
    for aux in AUX_SIZES {
        let msg = message(aux);
        group.throughput(Throughput::Bytes(msg.wire_size() as u64));
        let mut enc = Encoder::new(1);
        let mut out = Vec::with_capacity(msg.wire_size());
        group.bench_with_input(BenchmarkId::from_parameter(aux), &msg, |b, msg| {
            b.iter(|| {
                out.clear();
                enc.encode(black_box(msg), &mut out).unwrap();
                black_box(out.len())
            })
        });
    }
    group.finish();
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("codec/decode");
    for aux in AUX_SIZES {
        let msg = message(aux);
        let mut bytes = Vec::new();
        Encoder::new(1).encode(&msg, &mut bytes).unwrap();
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(aux), &bytes, |b, bytes| {
            b.iter(|| {
                let mut dec = Decoder::new();
                let mut input = black_box(&bytes[..]);
                let m = dec.decode(&mut input).unwrap().unwrap();
                black_box(m.aux.len())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, encode, decode);
criterion_main!(benches);
