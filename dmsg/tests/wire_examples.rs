//! The four worked examples of WIRE.md §8, byte for byte, in both
//! directions: our encoder must produce exactly these bytes from the
//! header values the spec gives, and our decoder must read them back to the
//! same values. Every byte of every vector is covered: changing any one of
//! them makes the decoder refuse the frame (checked byte by byte below).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use dmsg::wire::constants::{PEER_BLOCK, PEER_CLUSTER, PFSTYPE_SERVER};
use dmsg::wire::{
    cmd, DbgShell, DecodeError, Decoder, Encoder, Label, LnkConn, LnkSpan, Media, MediaBlock,
    Message, Uuid,
};

/// WIRE.md §8.1: LNK_CONN|CREATE from `dmsg_master_service()`, seq 0 (512 bytes).
const CONN: &str = "\
0000: 32 48 00 00 00 1e 3c 5a 00 70 c1 01 08 00 00 00\n\
0010: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00\n\
0020: 08 11 00 80 00 00 00 00 00 00 00 00 00 00 00 00\n\
0030: 00 00 00 00 00 00 00 00 00 00 00 00 20 b1 2b ae\n\
0040: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00\n\
0050: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00\n\
0060: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00\n\
0070: ff ff ff ff ff ff ff ff 01 00 00 00 00 00 00 00\n\
0080: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00\n\
0090: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00\n\
00a0: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00\n\
00b0: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00\n\
00c0: ff ff ff ff ff ff ff ff 00 00 00 00 00 00 00 00\n\
00d0: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00\n\
00e0: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00\n\
00f0: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00\n\
0100: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00\n\
0110: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00\n\
0120: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00\n\
0130: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00\n\
0140: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00\n\
0150: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00\n\
0160: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00\n\
0170: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00\n\
0180: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00\n\
0190: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00\n\
01a0: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00\n\
01b0: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00\n\
01c0: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00\n\
01d0: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00\n\
01e0: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00\n\
01f0: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00\n\
";

/// WIRE.md §8.2: LNK_SPAN|CREATE relayed for a block device, seq 1 (448 bytes).
const SPAN: &str = "\
0000: 32 48 00 00 01 56 34 12 00 a4 c2 01 08 00 00 00\n\
0010: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00\n\
0020: 07 12 00 80 00 00 00 00 00 00 00 00 00 00 00 00\n\
0030: 00 00 00 00 00 00 00 00 00 00 00 00 7c 0a 07 27\n\
0040: 3e 1a 8f 3b 1d 6c e2 11 9d 6a 0a 1b 2c 3d 4e 5f\n\
0050: 10 7c 2e 5d 1d 6c e2 11 9d 6a 0a 1b 2c 3d 4e 5f\n\
0060: 03 02 00 00 00 00 00 00 00 00 00 00 00 00 00 00\n\
0070: 01 00 00 00 67 45 8b 6b 00 60 11 c1 d1 01 00 00\n\
0080: 00 02 00 00 00 00 00 00 00 00 00 00 00 00 00 00\n\
0090: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00\n\
00a0: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00\n\
00b0: 6e 6f 64 65 31 2f 64 61 30 00 00 00 00 00 00 00\n\
00c0: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00\n\
00d0: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00\n\
00e0: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00\n\
00f0: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00\n\
0100: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00\n\
0110: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00\n\
0120: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00\n\
0130: 57 44 2d 57 43 41 56 31 32 33 34 35 36 37 38 00\n\
0140: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00\n\
0150: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00\n\
0160: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00\n\
0170: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00\n\
0180: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00\n\
0190: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00\n\
01a0: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00\n\
01b0: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00\n\
";

/// WIRE.md §8.3: one-way DBG_SHELL "tree", seq 2 (64 + 64 bytes).
const SHELL: &str = "\
0000: 32 48 00 00 02 cd ab 00 00 00 00 00 00 00 00 00\n\
0010: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00\n\
0020: 01 01 10 00 e0 ff e3 b1 05 00 00 00 00 00 00 00\n\
0030: 00 00 00 00 00 00 00 00 00 00 00 00 a8 66 e8 41\n\
0040: 74 72 65 65 00 00 00 00 00 00 00 00 00 00 00 00\n\
0050: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00\n\
0060: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00\n\
0070: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00\n\
";

/// WIRE.md §8.4: LNK_ERROR|REPLY|CREATE answering §8.1, seq 0 (64 bytes).
const RESULT: &str = "\
0000: 32 48 00 00 00 55 66 77 00 70 c1 01 08 00 00 00\n\
0010: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00\n\
0020: 01 ff 0f a0 00 00 00 00 00 00 00 00 00 00 00 00\n\
0030: 00 00 00 00 00 00 00 00 00 00 00 00 15 bb dd 57\n\
";

/// Parses hex dump rows `OOOO: xx xx ...`; every row must follow the one
/// before it, so an elided row is a test bug, not silently zero.
fn hex(rows: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for line in rows.lines() {
        let (off, bytes) = line.split_once(": ").expect("row");
        assert_eq!(usize::from_str_radix(off, 16).unwrap(), out.len(), "{line}");
        out.extend(
            bytes
                .split_whitespace()
                .map(|b| u8::from_str_radix(b, 16).unwrap()),
        );
    }
    out
}

fn uuid(s: &str) -> Uuid {
    s.parse().unwrap()
}

/// The messages as the spec describes them, before the encoder stamps
/// magic, salt, aux_bytes and the CRCs.
fn conn_msg() -> Message {
    let conn = LnkConn {
        peer_mask: !0,
        peer_type: PEER_CLUSTER,
        pfs_mask: !0,
        ..LnkConn::default()
    };
    let mut m = Message::with_body(cmd::CREATE, &conn);
    m.hdr.msgid = 0x0000_0008_01c1_7000;
    m
}

fn span_body() -> LnkSpan {
    LnkSpan {
        pfs_clid: uuid("3b8f1a3e-6c1d-11e2-9d6a-0a1b2c3d4e5f"),
        pfs_fsid: uuid("5d2e7c10-6c1d-11e2-9d6a-0a1b2c3d4e5f"),
        pfs_type: PFSTYPE_SERVER,
        peer_type: PEER_BLOCK,
        dist: 1,
        rnss: 0x6b8b_4567,
        media: Media::from_block(MediaBlock {
            bytes: 2_000_398_934_016,
            blksize: 512,
        }),
        cl_label: Label::new("node1/da0").unwrap(),
        fs_label: Label::new("WD-WCAV12345678").unwrap(),
        ..LnkSpan::default()
    }
}

fn span_msg() -> Message {
    let mut m = Message::with_body(cmd::CREATE, &span_body());
    m.hdr.msgid = 0x0000_0008_01c2_a400;
    m
}

fn shell_msg() -> Message {
    let mut m = Message::with_body(0, &DbgShell);
    m.aux = b"tree\0".to_vec();
    m
}

fn result_msg() -> Message {
    let mut m = Message::new(cmd::LNK_ERROR | cmd::REPLY | cmd::CREATE);
    m.hdr.msgid = 0x0000_0008_01c1_7000;
    m
}

/// (name, message, salt, expected bytes)
fn examples() -> Vec<(&'static str, Message, u32, Vec<u8>)> {
    vec![
        ("8.1 LNK_CONN", conn_msg(), 0x5a3c_1e00, hex(CONN)),
        ("8.2 LNK_SPAN", span_msg(), 0x1234_5601, hex(SPAN)),
        ("8.3 DBG_SHELL", shell_msg(), 0x00ab_cd02, hex(SHELL)),
        ("8.4 LNK_ERROR", result_msg(), 0x7766_5500, hex(RESULT)),
    ]
}

fn encode(msg: &Message, salt: u32) -> Vec<u8> {
    let mut enc = Encoder::with_seq(1, (salt & 0xFF) as u8);
    let mut out = Vec::new();
    let pad = enc.encode_head_with_salt(msg, salt, &mut out).unwrap();
    out.extend_from_slice(&msg.aux);
    out.resize(out.len() + pad, 0);
    assert_eq!(enc.next_seq(), ((salt & 0xFF) as u8).wrapping_add(1));
    out
}

fn decode_one(bytes: &[u8], seq: u8) -> Result<Option<Message>, DecodeError> {
    let mut dec = Decoder::with_seq(seq);
    let mut input = bytes;
    let got = dec.decode(&mut input);
    if let Ok(Some(_)) = got {
        assert!(input.is_empty(), "a vector is exactly one frame");
    }
    got
}

#[test]
fn encoder_reproduces_every_example() {
    for (name, msg, salt, want) in examples() {
        assert_eq!(encode(&msg, salt), want, "{name}");
    }
}

#[test]
fn encode_head_leaves_the_aux_to_the_caller() {
    let mut out = Vec::new();
    let pad = Encoder::with_seq(1, 2)
        .encode_head_with_salt(&shell_msg(), 0x00ab_cd00, &mut out)
        .unwrap();
    assert_eq!(out, hex(SHELL)[..64]);
    assert_eq!(pad, 59);
}

#[test]
fn decoder_reads_every_example() {
    for (name, msg, salt, bytes) in examples() {
        let got = decode_one(&bytes, (salt & 0xFF) as u8)
            .unwrap()
            .unwrap_or_else(|| panic!("{name}: incomplete"));
        assert_eq!(got.hdr.magic, 0x4832, "{name}");
        assert_eq!(got.hdr.salt, salt, "{name}");
        assert_eq!(got.hdr.cmd, msg.hdr.cmd, "{name}");
        assert_eq!(got.hdr.msgid, msg.hdr.msgid, "{name}");
        assert_eq!(got.hdr.circuit, 0, "{name}");
        assert_eq!(got.hdr.error, 0, "{name}");
        assert_eq!(got.ext, msg.ext, "{name}");
        assert_eq!(got.aux, msg.aux, "{name}");
    }
}

#[test]
fn decoded_examples_carry_the_spec_values() {
    let conn = decode_one(&hex(CONN), 0).unwrap().unwrap();
    assert_eq!(conn.hdr.hdr_crc, 0xAE2B_B120);
    let body: LnkConn = conn.body().unwrap();
    assert_eq!((body.peer_mask, body.peer_type, body.pfs_mask), (!0, 1, !0));
    assert!(body.cl_label.is_empty() && body.fs_label.is_empty());
    assert!(body.pfs_clid.is_nil());

    let span = decode_one(&hex(SPAN), 1).unwrap().unwrap();
    assert_eq!(span.hdr.hdr_crc, 0x2707_0A7C);
    let body: LnkSpan = span.body().unwrap();
    assert_eq!(body, span_body());
    assert_eq!(
        body.pfs_clid.to_string(),
        "3b8f1a3e-6c1d-11e2-9d6a-0a1b2c3d4e5f"
    );
    assert_eq!(
        body.pfs_fsid.to_string(),
        "5d2e7c10-6c1d-11e2-9d6a-0a1b2c3d4e5f"
    );
    assert_eq!(body.media.block().bytes, 2_000_398_934_016);
    assert_eq!(body.media.block().blksize, 512);
    assert_eq!(body.cl_label.as_str(), Some("node1/da0"));
    assert_eq!(body.fs_label.as_str(), Some("WD-WCAV12345678"));

    let shell = decode_one(&hex(SHELL), 2).unwrap().unwrap();
    assert_eq!(shell.hdr.aux_crc, 0xB1E3_FFE0);
    assert_eq!(shell.hdr.hdr_crc, 0x41E8_66A8);
    assert_eq!(shell.hdr.aux_bytes, 5);
    assert_eq!(shell.aux, b"tree\0");
    assert_eq!(shell.body::<DbgShell>(), Ok(DbgShell));

    let result = decode_one(&hex(RESULT), 0).unwrap().unwrap();
    assert_eq!(result.hdr.hdr_crc, 0x57DD_BB15);
    assert_eq!(cmd::basecmd_str(result.hdr.cmd), "LNK_RESULT");
}

#[test]
fn examples_decode_as_one_stream_in_any_split() {
    // §8.1 then §8.2 then §8.3 is one direction of a link (seq 0, 1, 2).
    let stream: Vec<u8> = [hex(CONN), hex(SPAN), hex(SHELL)].concat();
    for cut in 0..=stream.len() {
        let mut dec = Decoder::new();
        let mut got = Vec::new();
        for part in [&stream[..cut], &stream[cut..]] {
            let mut input = part;
            while let Some(m) = dec.decode(&mut input).unwrap() {
                got.push(m);
            }
            assert!(input.is_empty());
        }
        let cmds: Vec<u32> = got.iter().map(|m| m.hdr.cmd).collect();
        assert_eq!(
            cmds,
            [0x8000_1108, 0x8000_1207, 0x0010_0101],
            "cut at {cut}"
        );
        assert!(dec.is_idle());
    }
}

#[test]
fn changing_any_byte_of_an_example_is_refused() {
    for (name, _, salt, bytes) in examples() {
        for i in 0..bytes.len() {
            for flip in [0x01u8, 0x80, 0xFF] {
                let mut bad = bytes.clone();
                bad[i] ^= flip;
                let got = decode_one(&bad, (salt & 0xFF) as u8);
                assert!(
                    !matches!(got, Ok(Some(_))),
                    "{name}: byte {i:#x} ^ {flip:#x} still decodes: {got:?}"
                );
            }
        }
    }
}

#[test]
fn examples_need_the_right_sequence_byte() {
    for (name, _, salt, bytes) in examples() {
        let seq = (salt & 0xFF) as u8;
        let got = decode_one(&bytes, seq.wrapping_add(1));
        assert_eq!(
            got,
            Err(DecodeError::Sequence {
                expected: seq.wrapping_add(1),
                received: seq
            }),
            "{name}"
        );
    }
}
