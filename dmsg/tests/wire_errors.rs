//! One test per decoder error of WIRE.md §1 ("Limits enforced by the
//! receiver"), each on a frame that is valid but for the one defect, plus
//! the properties every error shares: it is reported with the C library's
//! `DMSG_IOQ_ERROR_*` code and it is terminal for the stream.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use dmsg::wire::crc::crc32c;
use dmsg::wire::{cmd, ioq_error, DecodeError, Decoder, Encoder, Message, AUX_MAX};

/// A valid encoded frame at sequence `seq`.
fn frame(c: u32, aux: &[u8], seq: u8) -> Vec<u8> {
    let mut m = Message::new(c);
    m.hdr.msgid = 0xABCD;
    m.aux = aux.to_vec();
    let mut out = Vec::new();
    Encoder::with_seq(99, seq).encode(&m, &mut out).unwrap();
    out
}

/// Recomputes `hdr_crc` after a test edited the header of `f`.
fn fix_hdr_crc(f: &mut [u8]) {
    let h = usize::from(f[0x20]) * 64;
    f[0x3C..0x40].fill(0);
    let crc = crc32c(&f[..h]);
    f[0x3C..0x40].copy_from_slice(&crc.to_le_bytes());
}

fn set_u32(f: &mut [u8], off: usize, v: u32) {
    f[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

/// Feeds all of `bytes` and returns the first error, checking that the
/// stream is dead afterwards.
fn first_error(bytes: &[u8]) -> DecodeError {
    let mut dec = Decoder::new();
    let mut input = bytes;
    let e = loop {
        match dec.decode(&mut input) {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("no error; {} bytes left", input.len()),
            Err(e) => break e,
        }
    };
    assert_eq!(dec.error(), Some(e));
    // Terminal: the same error again, nothing consumed, even for good input.
    let good = frame(cmd::LNK_PING, b"", 0);
    let mut more = &good[..];
    assert_eq!(dec.decode(&mut more), Err(e));
    assert_eq!(more.len(), good.len());
    e
}

#[test]
fn bad_magic() {
    let mut f = frame(cmd::LNK_PING, b"", 0);
    f[0..2].copy_from_slice(&0x1234u16.to_le_bytes());
    fix_hdr_crc(&mut f);
    let e = first_error(&f);
    assert_eq!(e, DecodeError::BadMagic(0x1234));
    assert_eq!(e.ioq_error(), ioq_error::SYNC);
}

#[test]
fn opposite_endian_peer_is_refused() {
    let mut f = frame(cmd::LNK_PING, b"", 0);
    f[0..2].copy_from_slice(&[0x48, 0x32]);
    fix_hdr_crc(&mut f);
    let e = first_error(&f);
    assert_eq!(e, DecodeError::OppositeEndian);
    assert_eq!(e.ioq_error(), ioq_error::SYNC);
}

#[test]
fn header_size_too_small() {
    let mut f = frame(cmd::LNK_PING, b"", 0);
    f[0x20] = 0; // cmd size bits: H = 0
    let e = first_error(&f);
    assert_eq!(e, DecodeError::HeaderSize(0));
    assert_eq!(e.ioq_error(), ioq_error::FIELD);
}

#[test]
fn header_size_too_large() {
    let mut f = frame(cmd::LNK_PING, b"", 0);
    f[0x20] = 33; // H = 2112 > 2048; refused before the rest arrives
    let e = first_error(&f);
    assert_eq!(e, DecodeError::HeaderSize(33 * 64));
    assert_eq!(e.ioq_error(), ioq_error::FIELD);
}

#[test]
fn largest_header_is_accepted() {
    let f = frame(cmd::make(cmd::PROTO_LNK, 0x7FF, 2048), b"", 0);
    assert_eq!(f.len(), 2048);
    let mut input = &f[..];
    let m = Decoder::new().decode(&mut input).unwrap().unwrap();
    assert_eq!(m.ext.len(), 2048 - 64);
}

#[test]
fn aux_too_large() {
    let mut f = frame(cmd::LNK_PING, b"", 0);
    set_u32(&mut f, 0x28, AUX_MAX as u32 + 1);
    fix_hdr_crc(&mut f);
    let e = first_error(&f);
    assert_eq!(e, DecodeError::AuxTooLarge(AUX_MAX as u32 + 1));
    assert_eq!(e.ioq_error(), ioq_error::FIELD);
    // Near u32::MAX the alignment must not wrap around to a small size.
    set_u32(&mut f, 0x28, u32::MAX);
    fix_hdr_crc(&mut f);
    assert_eq!(first_error(&f), DecodeError::AuxTooLarge(u32::MAX));
}

#[test]
fn largest_aux_is_accepted() {
    let aux: Vec<u8> = (0..AUX_MAX).map(|i| (i * 7) as u8).collect();
    let f = frame(cmd::DBG_SHELL, &aux, 0);
    assert_eq!(f.len(), 64 + AUX_MAX);
    let mut input = &f[..];
    let m = Decoder::new().decode(&mut input).unwrap().unwrap();
    assert_eq!(m.aux, aux);
}

#[test]
fn header_crc_mismatch() {
    let mut f = frame(cmd::LNK_CONN | cmd::CREATE, b"", 0);
    f[300] ^= 0x40; // inside the body, past the core header
    let e = first_error(&f);
    assert!(
        matches!(e, DecodeError::HeaderCrc { carried, computed } if carried != computed),
        "{e:?}"
    );
    assert_eq!(e.ioq_error(), ioq_error::XCRC);
}

#[test]
fn aux_crc_mismatch() {
    let mut f = frame(cmd::DBG_SHELL, b"tree\0", 0);
    f[64 + 1] ^= 1;
    let e = first_error(&f);
    assert!(matches!(e, DecodeError::AuxCrc { .. }), "{e:?}");
    assert_eq!(e.ioq_error(), ioq_error::ACRC);
}

#[test]
fn aux_padding_is_covered_by_the_crc() {
    let mut f = frame(cmd::DBG_SHELL, b"tree\0", 0);
    f[127] = 1;
    assert!(matches!(first_error(&f), DecodeError::AuxCrc { .. }));
}

#[test]
fn sequence_mismatch() {
    let mut stream = frame(cmd::LNK_PING, b"", 0);
    stream.extend(frame(cmd::LNK_PING, b"", 2)); // seq 1 skipped
    let e = first_error(&stream);
    assert_eq!(
        e,
        DecodeError::Sequence {
            expected: 1,
            received: 2
        }
    );
    assert_eq!(e.ioq_error(), ioq_error::MSGSEQ);
}

#[test]
fn sequence_wraps_after_255() {
    let mut stream = frame(cmd::LNK_PING, b"", 255);
    stream.extend(frame(cmd::LNK_PING, b"", 0));
    let mut dec = Decoder::with_seq(255);
    let mut input = &stream[..];
    assert!(dec.decode(&mut input).unwrap().is_some());
    assert!(dec.decode(&mut input).unwrap().is_some());
    assert_eq!(dec.next_seq(), 1);
}

#[test]
fn errors_display_their_values() {
    let shown = [
        DecodeError::BadMagic(0x1234).to_string(),
        DecodeError::HeaderSize(2112).to_string(),
        DecodeError::Sequence {
            expected: 1,
            received: 2,
        }
        .to_string(),
    ];
    assert!(shown[0].contains("0x1234"), "{}", shown[0]);
    assert!(shown[1].contains("2112"), "{}", shown[1]);
    assert!(
        shown[2].contains('1') && shown[2].contains('2'),
        "{}",
        shown[2]
    );
}
