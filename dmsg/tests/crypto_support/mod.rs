//! Helpers shared by the crypto tests: vector paths, hex, a fixed random
//! source.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::path::PathBuf;

use dmsg::crypto::{HandshakeError, LinkKeys, LocalKeys, PublicKey, RandomSource};

/// `testdata/vectors/<sub>` at the repository root.
pub fn vectors(sub: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("testdata/vectors")
        .join(sub)
}

/// A file of the captured crypto run.
pub fn captured(name: &str) -> PathBuf {
    vectors("crypto").join(name)
}

/// The key directory of captured node `node` ("A", "B" or "C").
pub fn node_dir(node: &str) -> PathBuf {
    captured("keys").join(node)
}

/// Keys for a link as seen by `me`, talking to `peer` (captured nodes).
pub fn link_keys(me: &str, peer: &str) -> LinkKeys {
    let local = LocalKeys::load(&node_dir(me)).unwrap();
    let peer_path = node_dir(peer).join("rsa.pub");
    let peer_key = PublicKey::load(&peer_path).unwrap();
    LinkKeys::new(local, peer_key, peer, &peer_path).unwrap()
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Bytes from hex.
pub fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex {s:?}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// A reproducible random source: xorshift64 (shifts 13, 7, 17) from `seed`,
/// each state emitted as 8 little-endian bytes.
#[derive(Debug, Clone)]
pub struct XorShift(pub u64);

impl XorShift {
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = vec![0u8; n];
        self.fill(&mut v).unwrap();
        v
    }
}

impl RandomSource for XorShift {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), HandshakeError> {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
        Ok(())
    }
}
