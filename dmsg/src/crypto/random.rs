//! The injectable random source of the handshake.

use super::HandshakeError;

/// Where the handshake block gets its random bytes (WIRE.md §7.2).
///
/// Production code uses [`OsRandom`]; tests pass a fixed source so that the
/// handshake becomes reproducible.
pub trait RandomSource {
    /// Fills `buf` entirely with random bytes.
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), HandshakeError>;
}

/// The operating system's randomness, through OpenSSL's CSPRNG (which is
/// seeded from the kernel).
#[derive(Debug, Default, Clone, Copy)]
pub struct OsRandom;

impl RandomSource for OsRandom {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), HandshakeError> {
        openssl::rand::rand_bytes(buf).map_err(|e| HandshakeError::Random {
            detail: e.to_string(),
        })
    }
}

impl<R: RandomSource + ?Sized> RandomSource for &mut R {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), HandshakeError> {
        (**self).fill(buf)
    }
}
