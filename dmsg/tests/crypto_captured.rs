//! The crypto layer against the captured encrypted run of the original C
//! library (`testdata/vectors/crypto/`): handshakes, derived session keys,
//! and the AES-256-GCM chunk streams, byte for byte.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod crypto_support;

use std::fs;

use crypto_support::{captured, hex, link_keys};
use dmsg::crypto::{
    open_handshake, seal_handshake, ChunkOpener, ChunkSealer, HandshakeBlock, SessionKey,
    StreamError, HANDSHAKE_SIZE, WIRE_CHUNK_SIZE,
};

/// One captured direction of a link.
struct Direction {
    link: &'static str,
    name: &'static str,
    sender: &'static str,
    receiver: &'static str,
    /// Which `==` section of `<link>.handshake.txt` describes it.
    section: usize,
}

const DIRECTIONS: [Direction; 4] = [
    Direction {
        link: "AB",
        name: "A2B",
        sender: "A",
        receiver: "B",
        section: 0,
    },
    Direction {
        link: "AB",
        name: "B2A",
        sender: "B",
        receiver: "A",
        section: 1,
    },
    Direction {
        link: "BC",
        name: "B2C",
        sender: "B",
        receiver: "C",
        section: 0,
    },
    Direction {
        link: "BC",
        name: "C2B",
        sender: "C",
        receiver: "B",
        section: 1,
    },
];

impl Direction {
    fn wire(&self) -> Vec<u8> {
        fs::read(captured(&format!("{}.{}.wire.bin", self.link, self.name))).unwrap()
    }

    fn plain(&self) -> Vec<u8> {
        fs::read(captured(&format!("{}.{}.plain.bin", self.link, self.name))).unwrap()
    }

    fn dump(&self) -> Section {
        let text = fs::read_to_string(captured(&format!("{}.handshake.txt", self.link))).unwrap();
        parse_sections(&text).remove(self.section)
    }

    /// The receiver decrypts the first 512 bytes.
    fn decrypted(&self) -> HandshakeBlock {
        let keys = link_keys(self.receiver, self.sender);
        open_handshake(&keys, &self.wire()[..HANDSHAKE_SIZE]).unwrap()
    }
}

/// What `<link>.handshake.txt` says about one direction.
#[derive(Default)]
struct Section {
    cipher: Vec<u8>,
    plain: Vec<u8>,
    key_hex: String,
    iv_hex: String,
}

/// Splits a handshake dump into its `==` sections: the hex rows before
/// "decrypted:" (ciphertext), those after it (plaintext), and the
/// "=> AES-256-GCM key K  fixed IV V" line.
fn parse_sections(text: &str) -> Vec<Section> {
    let mut out: Vec<Section> = Vec::new();
    let mut after_decrypted = false;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with("== ") {
            out.push(Section::default());
            after_decrypted = false;
            continue;
        }
        let Some(cur) = out.last_mut() else { continue };
        if t == "decrypted:" {
            after_decrypted = true;
        } else if let Some(rest) = t.strip_prefix("=> AES-256-GCM key ") {
            let mut words = rest.split_whitespace();
            cur.key_hex = words.next().unwrap().to_owned();
            assert_eq!(words.next(), Some("fixed"));
            assert_eq!(words.next(), Some("IV"));
            cur.iv_hex = words.next().unwrap().to_owned();
        } else if t.len() > 8
            && t.as_bytes()[6] == b':'
            && t[..6].bytes().all(|b| b.is_ascii_hexdigit())
        {
            let bytes_part = t[7..].split('|').next().unwrap();
            let row: Vec<u8> = bytes_part
                .split_whitespace()
                .map(|h| u8::from_str_radix(h, 16).unwrap())
                .collect();
            assert_eq!(row.len(), 16, "row {t:?}");
            if after_decrypted {
                cur.plain.extend(row);
            } else {
                cur.cipher.extend(row);
            }
        }
    }
    out
}

/// (node, "Encryption"/"Decryption", key hex, iv hex) from node-printed-keys.txt.
fn printed_keys() -> Vec<(String, String, String, String)> {
    let text = fs::read_to_string(captured("node-printed-keys.txt")).unwrap();
    let mut out = Vec::new();
    let mut pending: Option<(String, String, String)> = None;
    for line in text.lines() {
        let Some((node, rest)) = line.split_once(": ") else {
            continue;
        };
        let rest = rest.trim();
        for kind in ["Encryption", "Decryption"] {
            if let Some(k) = rest.strip_prefix(&format!("{kind} key:")) {
                pending = Some((node.to_owned(), kind.to_owned(), k.trim().to_owned()));
            } else if let Some(iv) = rest.strip_prefix(&format!("{kind} iv:")) {
                let (n, kd, key) = pending.take().unwrap();
                assert_eq!((n.as_str(), kd.as_str()), (node, kind));
                let iv = iv.split_whitespace().next().unwrap().to_owned();
                out.push((n, kd, key, iv));
            }
        }
    }
    assert_eq!(out.len(), 8, "two directions per node and link");
    out
}

fn key_of(block: &HandshakeBlock) -> SessionKey {
    block.session_key()
}

#[test]
fn dumps_match_the_wire_files() {
    for d in &DIRECTIONS {
        let s = d.dump();
        assert_eq!(
            s.cipher,
            d.wire()[..HANDSHAKE_SIZE],
            "{}.{}",
            d.link,
            d.name
        );
        assert_eq!(s.plain.len(), HANDSHAKE_SIZE);
    }
}

#[test]
fn captured_handshakes_decrypt_and_validate() {
    for d in &DIRECTIONS {
        let block = d.decrypted();
        block.validate().unwrap();
        assert_eq!(block.magic(), 0x4832);
        assert_eq!(block.version(), 1);
        assert_eq!(block.flags(), 0);
        assert_eq!(block.quickmsg(), "Testing 1 2 3");
        let s = d.dump();
        assert_eq!(block.as_bytes()[..], s.plain[..], "{}.{}", d.link, d.name);
        let key = key_of(&block);
        assert_eq!(hex(key.key()), s.key_hex);
        assert_eq!(hex(key.fixed_iv()), s.iv_hex);
    }
}

#[test]
fn derived_keys_equal_the_keys_the_nodes_printed() {
    let printed = printed_keys();
    for d in &DIRECTIONS {
        let key = key_of(&d.decrypted());
        let entry = |node: &str, kind: &str| {
            printed.iter().any(|(n, k, key_hex, iv_hex)| {
                n == node
                    && k == kind
                    && *key_hex == hex(key.key())
                    && *iv_hex == hex(key.fixed_iv())
            })
        };
        assert!(entry(d.sender, "Encryption"), "{} {}", d.link, d.name);
        assert!(entry(d.receiver, "Decryption"), "{} {}", d.link, d.name);
    }
}

/// The decrypted plaintext already holds the final tweak values (the
/// sender bumps the tweak before each signature and sends the block it last
/// signed). So one step back on each tweak, the send loop stops after its
/// first bump and reproduces the captured bytes exactly; run on the
/// plaintext as is, it bumps past the captured value and cannot.
#[test]
fn reencrypting_the_plaintext_reproduces_the_captured_handshake() {
    for d in &DIRECTIONS {
        let captured_wire = d.wire()[..HANDSHAKE_SIZE].to_vec();
        let plain = d.decrypted();
        let keys = link_keys(d.sender, d.receiver);
        assert_eq!(keys.block_size(), 256);

        let mut rewound = plain.clone();
        for off in [4usize, 256 + 4] {
            let b = rewound.as_bytes_mut();
            let v = i32::from_le_bytes(b[off..off + 4].try_into().unwrap());
            b[off..off + 4].copy_from_slice(&v.wrapping_sub(1).to_le_bytes());
        }
        let wire = seal_handshake(&keys, &mut rewound).unwrap();
        assert_eq!(wire[..], captured_wire[..], "{}.{}", d.link, d.name);
        assert_eq!(rewound, plain, "the loop ends on the captured tweaks");

        let mut as_is = plain.clone();
        let wire = seal_handshake(&keys, &mut as_is).unwrap();
        assert_ne!(wire[..], captured_wire[..]);
        assert_ne!(as_is, plain);
    }
}

#[test]
fn captured_streams_decrypt_to_the_captured_plaintext() {
    for d in &DIRECTIONS {
        let wire = d.wire();
        let stream = &wire[HANDSHAKE_SIZE..];
        assert_eq!(stream.len() % WIRE_CHUNK_SIZE, 0);
        let key = key_of(&d.decrypted());

        let mut opener = ChunkOpener::new(&key);
        let mut out = Vec::new();
        opener.open(stream, &mut out).unwrap();
        assert_eq!(out, d.plain(), "{}.{}", d.link, d.name);
        assert_eq!(opener.counter(), (stream.len() / WIRE_CHUNK_SIZE) as u64);
        assert_eq!(opener.pending(), 0);

        // The same bytes in awkward pieces.
        let mut opener = ChunkOpener::new(&key);
        let mut out = Vec::new();
        let mut rest = stream;
        for size in [1usize, 7, 79, 80, 81, 3, 200, 77].iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (piece, tail) = rest.split_at((*size).min(rest.len()));
            opener.open(piece, &mut out).unwrap();
            rest = tail;
        }
        assert_eq!(out, d.plain(), "{}.{} in pieces", d.link, d.name);
    }
}

#[test]
fn sealing_the_captured_plaintext_reproduces_the_captured_stream() {
    for d in &DIRECTIONS {
        let key = key_of(&d.decrypted());
        let mut sealer = ChunkSealer::new(&key);
        let mut out = Vec::new();
        sealer.seal(&d.plain(), &mut out).unwrap();
        assert_eq!(out[..], d.wire()[HANDSHAKE_SIZE..], "{}.{}", d.link, d.name);

        // Message by message (a 64-byte multiple each) gives the same bytes.
        let mut sealer = ChunkSealer::new(&key);
        let mut out2 = Vec::new();
        for piece in d.plain().chunks(192) {
            sealer.seal(piece, &mut out2).unwrap();
        }
        assert_eq!(out2, out);
    }
}

#[test]
fn flipped_bits_give_a_sticky_tag_error_and_no_plaintext() {
    let d = &DIRECTIONS[0];
    let key = key_of(&d.decrypted());
    let stream = d.wire()[HANDSHAKE_SIZE..].to_vec();

    // A ciphertext bit, a tag bit, in the first chunk and in a later one.
    for (pos, chunk) in [
        (0usize, 0u64),
        (64, 0),
        (79, 0),
        (5 * 80 + 17, 5),
        (5 * 80 + 70, 5),
    ] {
        let mut bad = stream.clone();
        bad[pos] ^= 0x10;
        let mut opener = ChunkOpener::new(&key);
        let mut out = Vec::new();
        assert_eq!(
            opener.open(&bad, &mut out),
            Err(StreamError::BadTag { chunk })
        );
        assert!(out.is_empty(), "no plaintext from a failing call");
        assert_eq!(opener.error(), Some(&StreamError::BadTag { chunk }));
        // Sticky: even good bytes are refused now.
        assert_eq!(
            opener.open(&stream[..80], &mut out),
            Err(StreamError::BadTag { chunk })
        );
        assert!(out.is_empty());
    }

    // Chunks opened by earlier calls stay; the failing call adds nothing.
    let mut bad = stream.clone();
    bad[2 * 80 + 3] ^= 1;
    let mut opener = ChunkOpener::new(&key);
    let mut out = Vec::new();
    opener.open(&bad[..2 * 80 + 40], &mut out).unwrap();
    assert_eq!(out, d.plain()[..128]);
    assert_eq!(
        opener.open(&bad[2 * 80 + 40..], &mut out),
        Err(StreamError::BadTag { chunk: 2 })
    );
    assert_eq!(out, d.plain()[..128]);
}

#[test]
fn unaligned_plaintext_is_refused() {
    let key = key_of(&DIRECTIONS[0].decrypted());
    let mut sealer = ChunkSealer::new(&key);
    let mut out = Vec::new();
    assert_eq!(
        sealer.seal(&[0u8; 65], &mut out),
        Err(StreamError::NotChunkAligned { len: 65 })
    );
    assert!(out.is_empty());
    assert_eq!(sealer.counter(), 0);
}
