//! The 512-byte `struct dmsg_handshake` block (WIRE.md §7.2) and its
//! validation (§7.3).
//!
//! Layout (x86_64, multi-byte fields little endian):
//!
//! | field    | offset | size | content |
//! |----------|--------|------|---------|
//! | pad1     | 0x000  | 8    | random, byte 0 masked with 0x3F, bytes 4..8 tweak counter |
//! | magic    | 0x008  | 2    | 0x4832 |
//! | version  | 0x00A  | 2    | 1 |
//! | flags    | 0x00C  | 4    | 0 |
//! | sess     | 0x010  | 64   | session material: key = sess\[0..32\], fixed IV = sess\[32..36\] |
//! | verf     | 0x050  | 16   | verf\[k\] = XOR of sess\[4k..4k+4\] |
//! | quickmsg | 0x060  | 32   | "Testing 1 2 3" and a NUL |
//! | junk080  | 0x080  | 128  | random |
//! | pad2     | 0x100  | 8    | random, byte 0 masked with 0x3F, bytes 4..8 tweak counter |
//! | junk100  | 0x108  | 248  | random |

use super::gcm::SessionKey;
use super::{HandshakeError, RandomSource, HANDSHAKE_SIZE, IV_FIXED_SIZE, KEY_SIZE};

/// Magic value of the block, as the sender stores it (host order).
pub const HANDSHAKE_MAGIC: u16 = 0x4832;
/// The magic as it reads when the sender had the other byte order.
pub const HANDSHAKE_MAGIC_REV: u16 = 0x3248;
/// The only handshake version.
pub const HANDSHAKE_VERSION: u16 = 1;
/// The message placed in `quickmsg` (only logged by the receiver).
pub const QUICKMSG: &[u8] = b"Testing 1 2 3";

const OFF_PAD1: usize = 0x000;
const OFF_MAGIC: usize = 0x008;
const OFF_VERSION: usize = 0x00A;
const OFF_FLAGS: usize = 0x00C;
const OFF_SESS: usize = 0x010;
const SESS_SIZE: usize = 64;
const OFF_VERF: usize = 0x050;
const VERF_SIZE: usize = 16;
const OFF_QUICKMSG: usize = 0x060;
const QUICKMSG_SIZE: usize = 32;
const OFF_PAD2: usize = 0x100;

/// Offset of the tweak counter inside each RSA block.
pub const TWEAK_OFFSET: usize = 4;

/// One `dmsg_handshake` block in plaintext.
#[derive(Clone, PartialEq, Eq)]
pub struct HandshakeBlock {
    bytes: [u8; HANDSHAKE_SIZE],
}

impl std::fmt::Debug for HandshakeBlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The session material is secret: show only the public fields.
        f.debug_struct("HandshakeBlock")
            .field("magic", &format_args!("{:#06x}", self.magic()))
            .field("version", &self.version())
            .field("flags", &self.flags())
            .field("quickmsg", &self.quickmsg())
            .finish_non_exhaustive()
    }
}

impl HandshakeBlock {
    /// Builds the block to send: the whole block from `rng`, then the named
    /// fields (pad byte masks, magic, version, flags, verifier, quickmsg).
    ///
    /// Only the first 14 bytes of `quickmsg` (the text and its NUL) are
    /// written; the rest keeps its random bytes, as in the original library
    /// (the captured handshakes show this).
    pub fn build(rng: &mut dyn RandomSource) -> Result<Self, HandshakeError> {
        let mut bytes = [0u8; HANDSHAKE_SIZE];
        rng.fill(&mut bytes)?;
        if bytes.iter().all(|&b| b == 0) {
            return Err(HandshakeError::Random {
                detail: "random source returned all zeros".into(),
            });
        }
        bytes[OFF_PAD1] &= 0x3F;
        bytes[OFF_PAD2] &= 0x3F;
        bytes[OFF_MAGIC..OFF_MAGIC + 2].copy_from_slice(&HANDSHAKE_MAGIC.to_le_bytes());
        bytes[OFF_VERSION..OFF_VERSION + 2].copy_from_slice(&HANDSHAKE_VERSION.to_le_bytes());
        bytes[OFF_FLAGS..OFF_FLAGS + 4].copy_from_slice(&0u32.to_le_bytes());
        let verf = compute_verf(&bytes);
        bytes[OFF_VERF..OFF_VERF + VERF_SIZE].copy_from_slice(&verf);
        for (dst, src) in bytes[OFF_QUICKMSG..OFF_QUICKMSG + QUICKMSG_SIZE]
            .iter_mut()
            .zip(QUICKMSG.iter().chain(std::iter::once(&0u8)))
        {
            *dst = *src;
        }
        Ok(HandshakeBlock { bytes })
    }

    /// Wraps 512 bytes (e.g. a decrypted block) without checking them.
    pub fn from_bytes(bytes: [u8; HANDSHAKE_SIZE]) -> Self {
        HandshakeBlock { bytes }
    }

    /// The raw 512 bytes.
    pub fn as_bytes(&self) -> &[u8; HANDSHAKE_SIZE] {
        &self.bytes
    }

    /// Mutable access to the raw bytes (for the tweak loop and tests).
    pub fn as_bytes_mut(&mut self) -> &mut [u8; HANDSHAKE_SIZE] {
        &mut self.bytes
    }

    /// The magic as stored (little endian read).
    pub fn magic(&self) -> u16 {
        u16::from_le_bytes([self.bytes[OFF_MAGIC], self.bytes[OFF_MAGIC + 1]])
    }

    /// Whether the sender had the other byte order (magic reads 0x3248).
    fn reversed(&self) -> bool {
        self.magic() == HANDSHAKE_MAGIC_REV
    }

    /// The version, byte-swapped if the magic reads reversed.
    pub fn version(&self) -> u16 {
        let v = u16::from_le_bytes([self.bytes[OFF_VERSION], self.bytes[OFF_VERSION + 1]]);
        if self.reversed() {
            v.swap_bytes()
        } else {
            v
        }
    }

    /// The flags, byte-swapped if the magic reads reversed.
    pub fn flags(&self) -> u32 {
        let v = u32::from_le_bytes([
            self.bytes[OFF_FLAGS],
            self.bytes[OFF_FLAGS + 1],
            self.bytes[OFF_FLAGS + 2],
            self.bytes[OFF_FLAGS + 3],
        ]);
        if self.reversed() {
            v.swap_bytes()
        } else {
            v
        }
    }

    /// The 64 bytes of session material.
    pub fn sess(&self) -> [u8; SESS_SIZE] {
        let mut out = [0u8; SESS_SIZE];
        out.copy_from_slice(&self.bytes[OFF_SESS..OFF_SESS + SESS_SIZE]);
        out
    }

    /// The 16 verifier bytes as stored.
    pub fn verf(&self) -> [u8; VERF_SIZE] {
        let mut out = [0u8; VERF_SIZE];
        out.copy_from_slice(&self.bytes[OFF_VERF..OFF_VERF + VERF_SIZE]);
        out
    }

    /// The quick message up to its first NUL (lossy UTF-8).
    pub fn quickmsg(&self) -> String {
        let field = &self.bytes[OFF_QUICKMSG..OFF_QUICKMSG + QUICKMSG_SIZE];
        let text = field.split(|&b| b == 0).next().unwrap_or(field);
        String::from_utf8_lossy(text).into_owned()
    }

    /// The AES-256-GCM key and fixed IV this block's owner transmits with.
    pub fn session_key(&self) -> SessionKey {
        let mut key = [0u8; KEY_SIZE];
        key.copy_from_slice(&self.bytes[OFF_SESS..OFF_SESS + KEY_SIZE]);
        let mut fixed_iv = [0u8; IV_FIXED_SIZE];
        fixed_iv
            .copy_from_slice(&self.bytes[OFF_SESS + KEY_SIZE..OFF_SESS + KEY_SIZE + IV_FIXED_SIZE]);
        SessionKey::new(key, fixed_iv)
    }

    /// Checks a received, decrypted block (WIRE.md §7.3): the verifier must
    /// XOR to zero over `sess` and the version must be 1. The magic itself is
    /// only used to detect the byte order, and `quickmsg` is not checked.
    pub fn validate(&self) -> Result<(), HandshakeError> {
        let expected = compute_verf(&self.bytes);
        let verf_ok = expected == self.verf();
        let version = self.version();
        if verf_ok && version == HANDSHAKE_VERSION {
            Ok(())
        } else {
            Err(HandshakeError::KeyExchangeFailed { version, verf_ok })
        }
    }
}

/// verf\[k\] = sess\[4k\] ^ sess\[4k+1\] ^ sess\[4k+2\] ^ sess\[4k+3\].
fn compute_verf(bytes: &[u8; HANDSHAKE_SIZE]) -> [u8; VERF_SIZE] {
    let mut verf = [0u8; VERF_SIZE];
    for (v, quad) in verf
        .iter_mut()
        .zip(bytes[OFF_SESS..OFF_SESS + SESS_SIZE].chunks_exact(4))
    {
        *v = quad.iter().fold(0, |acc, b| acc ^ b);
    }
    verf
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Counting(u8);
    impl RandomSource for Counting {
        fn fill(&mut self, buf: &mut [u8]) -> Result<(), HandshakeError> {
            for b in buf {
                *b = self.0;
                self.0 = self.0.wrapping_mul(13).wrapping_add(101);
            }
            Ok(())
        }
    }

    #[test]
    fn built_block_validates_and_has_fields() {
        let block = HandshakeBlock::build(&mut Counting(7)).unwrap();
        block.validate().unwrap();
        assert_eq!(block.magic(), 0x4832);
        assert_eq!(block.version(), 1);
        assert_eq!(block.flags(), 0);
        assert_eq!(block.quickmsg(), "Testing 1 2 3");
        assert_eq!(block.as_bytes()[0] & 0xC0, 0);
        assert_eq!(block.as_bytes()[0x100] & 0xC0, 0);
    }

    #[test]
    fn only_text_and_nul_of_quickmsg_are_written() {
        let mut raw = [0u8; HANDSHAKE_SIZE];
        Counting(7).fill(&mut raw).unwrap();
        let block = HandshakeBlock::build(&mut Counting(7)).unwrap();
        let b = block.as_bytes();
        assert_eq!(&b[OFF_QUICKMSG..OFF_QUICKMSG + 14], b"Testing 1 2 3\0");
        assert_eq!(
            b[OFF_QUICKMSG + 14..OFF_QUICKMSG + QUICKMSG_SIZE],
            raw[OFF_QUICKMSG + 14..OFF_QUICKMSG + QUICKMSG_SIZE]
        );
        // Everything outside the named fields is the random input.
        assert_eq!(b[1..4], raw[1..4]);
        assert_eq!(b[0x80..0x100], raw[0x80..0x100]);
        assert_eq!(b[0x101..], raw[0x101..]);
        assert_eq!(b[0], raw[0] & 0x3F);
    }

    #[test]
    fn corrupt_verf_or_version_fails() {
        let block = HandshakeBlock::build(&mut Counting(7)).unwrap();
        let mut bad = block.clone();
        bad.as_bytes_mut()[OFF_SESS + 5] ^= 1;
        assert!(matches!(
            bad.validate(),
            Err(HandshakeError::KeyExchangeFailed { verf_ok: false, .. })
        ));
        let mut bad = block.clone();
        bad.as_bytes_mut()[OFF_VERSION] = 2;
        assert!(matches!(
            bad.validate(),
            Err(HandshakeError::KeyExchangeFailed {
                version: 2,
                verf_ok: true
            })
        ));
    }

    #[test]
    fn reversed_magic_swaps_version() {
        let mut block = HandshakeBlock::build(&mut Counting(9)).unwrap();
        let b = block.as_bytes_mut();
        b[OFF_MAGIC..OFF_MAGIC + 2].copy_from_slice(&0x4832u16.to_be_bytes());
        b[OFF_VERSION..OFF_VERSION + 2].copy_from_slice(&1u16.to_be_bytes());
        assert_eq!(block.version(), 1);
        block.validate().unwrap();
    }

    #[test]
    fn all_zero_random_is_refused() {
        struct Zero;
        impl RandomSource for Zero {
            fn fill(&mut self, buf: &mut [u8]) -> Result<(), HandshakeError> {
                buf.fill(0);
                Ok(())
            }
        }
        assert!(matches!(
            HandshakeBlock::build(&mut Zero),
            Err(HandshakeError::Random { .. })
        ));
    }
}
