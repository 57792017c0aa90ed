//! Property tests of the frame codec: random messages round-trip, chunking
//! does not matter, and no input, random or a damaged valid stream, makes the
//! decoder panic or return a malformed message.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use dmsg::wire::crc::{aux_crc, crc32c};
use dmsg::wire::{cmd, DecodeError, Decoder, Encoder, Message, AUX_MAX, HDR_MAX, MAGIC};
use proptest::prelude::*;

/// A `cmd` word: a known command or any protocol/code with a legal size,
/// plus any flags.
fn arb_cmd() -> impl Strategy<Value = u32> {
    let known = prop::sample::select(vec![
        cmd::LNK_PAD,
        cmd::LNK_PING,
        cmd::LNK_CONN,
        cmd::LNK_SPAN,
        cmd::LNK_CIRC,
        cmd::LNK_VOLCONF,
        cmd::LNK_ERROR,
        cmd::DBG_SHELL,
        cmd::BLK_READ,
        cmd::BLK_ERROR,
    ]);
    let any_cmd = (0u32..16, 0u32..0x1000, 1u32..=32).prop_map(|(p, c, s)| p << 20 | c << 8 | s);
    (prop_oneof![known, any_cmd], any::<u8>())
        .prop_map(|(base, flags)| base | u32::from(flags) << 24)
}

fn arb_aux() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => prop::collection::vec(any::<u8>(), 0..300),
        1 => prop::collection::vec(any::<u8>(), 0..=AUX_MAX),
    ]
}

prop_compose! {
    fn arb_message()(
        c in arb_cmd(),
        msgid in any::<u64>(),
        circuit in any::<u64>(),
        error in any::<u32>(),
        reserved in any::<(u16, u64, u64, u32)>(),
        ext in prop::collection::vec(any::<u8>(), HDR_MAX - 64),
        aux in arb_aux(),
    ) -> Message {
        let mut m = Message::new(c);
        m.hdr.msgid = msgid;
        m.hdr.circuit = circuit;
        m.hdr.error = error;
        (m.hdr.reserved02, m.hdr.reserved18, m.hdr.aux_descr, m.hdr.reserved38) = reserved;
        let n = m.ext.len();
        m.ext.copy_from_slice(&ext[..n]);
        m.aux = aux;
        m
    }
}

fn encode_all(msgs: &[Message], seed: u32) -> Vec<u8> {
    let mut enc = Encoder::new(seed);
    let mut out = Vec::new();
    for m in msgs {
        enc.encode(m, &mut out).unwrap();
    }
    out
}

/// Feeds `bytes` in chunks of the given sizes (cycled); returns the messages
/// and the error that ended the stream, if any. Never loops forever.
fn feed(bytes: &[u8], chunks: &[usize]) -> (Vec<Message>, Option<DecodeError>) {
    let mut dec = Decoder::new();
    let mut msgs = Vec::new();
    let mut rest = bytes;
    let mut sizes = chunks.iter().copied().cycle();
    while !rest.is_empty() {
        let n = sizes.next().unwrap_or(rest.len()).clamp(1, rest.len());
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        let mut input = chunk;
        loop {
            match dec.decode(&mut input) {
                Ok(Some(m)) => {
                    check_invariants(&m);
                    msgs.push(m);
                }
                Ok(None) => {
                    assert!(input.is_empty(), "Ok(None) with input left");
                    break;
                }
                Err(e) => return (msgs, Some(e)),
            }
        }
    }
    (msgs, None)
}

/// What every message the decoder hands out satisfies.
fn check_invariants(m: &Message) {
    let h = cmd::header_size(m.hdr.cmd);
    assert!((64..=HDR_MAX).contains(&h));
    assert_eq!(m.ext.len(), h - 64);
    assert_eq!(m.aux.len(), m.hdr.aux_bytes as usize);
    assert!(m.aux.len() <= AUX_MAX);
    assert_eq!(m.hdr.magic, MAGIC);
    if !m.aux.is_empty() {
        assert_eq!(m.hdr.aux_crc, aux_crc(&m.aux));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn random_messages_round_trip(msgs in prop::collection::vec(arb_message(), 1..6), seed in any::<u32>()) {
        let bytes = encode_all(&msgs, seed);
        prop_assert_eq!(bytes.len(), msgs.iter().map(Message::wire_size).sum::<usize>());
        let (got, err) = feed(&bytes, &[bytes.len()]);
        prop_assert_eq!(err, None);
        prop_assert_eq!(got.len(), msgs.len());
        let mut again = Vec::new();
        let mut enc = Encoder::new(0);
        for (i, (g, m)) in got.iter().zip(&msgs).enumerate() {
            prop_assert_eq!(g.hdr.seq(), i as u8);
            prop_assert_eq!(g.hdr.cmd, m.hdr.cmd);
            prop_assert_eq!(g.hdr.msgid, m.hdr.msgid);
            prop_assert_eq!(g.hdr.circuit, m.hdr.circuit);
            prop_assert_eq!(g.hdr.error, m.hdr.error);
            prop_assert_eq!(g.hdr.reserved02, m.hdr.reserved02);
            prop_assert_eq!(g.hdr.reserved18, m.hdr.reserved18);
            prop_assert_eq!(g.hdr.aux_descr, m.hdr.aux_descr);
            prop_assert_eq!(g.hdr.reserved38, m.hdr.reserved38);
            prop_assert_eq!(&g.ext, &m.ext);
            prop_assert_eq!(&g.aux, &m.aux);
            // Re-encoding with the received salt gives the received bytes.
            let pad = enc.encode_head_with_salt(g, g.hdr.salt, &mut again).unwrap();
            again.extend_from_slice(&g.aux);
            again.resize(again.len() + pad, 0);
        }
        prop_assert!(again == bytes, "re-encoded stream differs");
    }

    #[test]
    fn chunking_does_not_matter(
        msgs in prop::collection::vec(arb_message(), 1..6),
        chunks in prop::collection::vec(1usize..700, 1..20),
    ) {
        let bytes = encode_all(&msgs, 5);
        let (whole, e1) = feed(&bytes, &[bytes.len()]);
        let (pieces, e2) = feed(&bytes, &chunks);
        prop_assert_eq!(e1, None);
        prop_assert_eq!(e2, None);
        prop_assert_eq!(whole, pieces);
    }

    #[test]
    fn random_bytes_never_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..5000),
        chunks in prop::collection::vec(1usize..300, 1..8),
    ) {
        feed(&bytes, &chunks);
    }

    #[test]
    fn random_headers_never_panic(
        mut core in prop::collection::vec(any::<u8>(), 64),
        size in 0u8..40,
        aux_bytes in prop_oneof![0u32..200, any::<u32>()],
        good_crc in any::<bool>(),
        tail in prop::collection::vec(any::<u8>(), 0..3000),
    ) {
        // Valid magic and plausible sizes reach the deeper decoder states.
        core[0..2].copy_from_slice(&MAGIC.to_le_bytes());
        core[4] = 0;
        core[0x20] = size;
        core[0x28..0x2C].copy_from_slice(&aux_bytes.to_le_bytes());
        let mut bytes = core;
        bytes.extend_from_slice(&tail);
        let h = usize::from(size) * 64;
        if good_crc && (64..=bytes.len()).contains(&h) {
            bytes[0x3C..0x40].fill(0);
            let crc = crc32c(&bytes[..h]);
            bytes[0x3C..0x40].copy_from_slice(&crc.to_le_bytes());
        }
        let (msgs, err) = feed(&bytes, &[bytes.len()]);
        if !(64..=HDR_MAX).contains(&h) {
            prop_assert_eq!(err, Some(DecodeError::HeaderSize(h)));
            prop_assert!(msgs.is_empty());
        }
    }

    #[test]
    fn damaged_streams_never_panic(
        msgs in prop::collection::vec(arb_message(), 1..4),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
        insert in prop::collection::vec(any::<u8>(), 0..100),
        chunks in prop::collection::vec(1usize..500, 1..8),
    ) {
        let good = encode_all(&msgs, 11);
        let mut bad = good.clone();
        for (at, v) in &edits {
            let i = at.index(bad.len());
            bad[i] = *v;
        }
        let at = cut.index(bad.len() + 1);
        bad.splice(at..at, insert.iter().copied());
        let (orig, _) = feed(&good, &[good.len()]);
        let (got, _) = feed(&bad, &chunks);
        // Both CRCs together cover every byte of a frame, so a damaged frame
        // is refused: what decodes is a prefix of what was sent, and it
        // holds at least every frame that ends before the first change.
        prop_assert!(got.len() <= orig.len());
        prop_assert_eq!(&got[..], &orig[..got.len()]);
        let first_change = good
            .iter()
            .zip(&bad)
            .position(|(a, b)| a != b)
            .unwrap_or(good.len().min(bad.len()));
        let mut end = 0;
        let intact = msgs
            .iter()
            .take_while(|m| {
                end += m.wire_size();
                end <= first_change
            })
            .count();
        prop_assert!(got.len() >= intact, "{} < {}", got.len(), intact);
    }
}
