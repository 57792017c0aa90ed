//! The crypto layer of a link (WIRE.md §7), sans-IO: key files, the raw-RSA
//! handshake of the 512-byte `dmsg_handshake` block, and the AES-256-GCM
//! stream of 64-byte chunks.
//!
//! Nothing here touches a socket or a clock. Key files are read from a key
//! directory given as a [`std::path::Path`] (default [`DEFAULT_KEY_DIR`]);
//! randomness comes from a caller-supplied [`RandomSource`].
//!
//! # Choice of crates
//!
//! * **RSA: the `openssl` crate.** The protocol uses textbook RSA without
//!   padding (sign with the own private key, then encrypt with the peer's
//!   public key), so we need a library that exposes the raw operation. OpenSSL
//!   does (`Padding::NONE`) and blinds every private-key operation, which
//!   defends against timing attacks on the private exponent. The RustCrypto
//!   `rsa` crate was rejected: it carries advisory RUSTSEC-2023-0071 (the
//!   "Marvin" timing side channel in its private-key operations), with no
//!   fixed release. `aws-lc-rs` would also blind, but its API offers only
//!   padded RSA schemes (PKCS#1 v1.5, PSS, OAEP), not the raw operation.
//!   OpenSSL is also what the C library used, so key files load with exactly
//!   the same PEM readers.
//! * **AES-256-GCM: the RustCrypto `aes` (0.9) and `polyval` (0.7)
//!   crates**, assembled here into a batched GCM ([`gcm`]). Every 64-byte
//!   chunk is its own GCM message with its own nonce, so per-message setup
//!   dominates: the C library does a fresh `EVP_CipherInit` per chunk and
//!   reaches about 0.18 GB/s end to end, and `aes-gcm` with a reused cipher
//!   (one `encrypt_in_place_detached` per chunk) is slower than the
//!   batched design (compared in `benches/crypto.rs`). Instead the key
//!   stream of 64 chunks (four counter blocks for the data plus the J0
//!   block for the tag mask of each: 320 blocks) is computed in one call of
//!   `encrypt_blocks`, which `aes` 0.9 runs on VAES with 512-bit registers
//!   (64 blocks per step) where the CPU has it, else VAES-256 or AES-NI;
//!   and the four ciphertext blocks of a chunk are one aggregated 4-block
//!   POLYVAL step (PCLMULQDQ). Why these crates: `dmsg` forbids `unsafe`,
//!   and hardware intrinsics can only be called through `unsafe`, so the
//!   accelerated paths must come from crates that detect the CPU at run
//!   time and make the unsafe calls inside; both do, and fall back to
//!   constant-time software (bitsliced AES, no secret-indexed tables) on
//!   CPUs without them. The result is checked against the
//!   older, independent `aes-gcm` 0.10 and against the captured stream of
//!   the original library in the tests. All of it is safe Rust.

mod error;
pub mod exchange;
pub mod gcm;
pub mod handshake;
pub mod keys;
pub mod random;
pub mod stream;

pub use error::{HandshakeError, KeyError, StreamError};
pub use exchange::{open_handshake, seal_handshake, Handshake, Session};
pub use gcm::SessionKey;
pub use handshake::HandshakeBlock;
pub use keys::{generate_keys, KeyDir, LinkKeys, LinkMode, LocalKeys, PublicKey};
pub use random::{OsRandom, RandomSource};
pub use stream::{ChunkOpener, ChunkSealer};

/// The default key directory of the C library (`DMSG_DEFAULT_DIR`).
pub const DEFAULT_KEY_DIR: &str = "/etc/hammer2";

/// Size of the handshake block each side sends (`sizeof(struct dmsg_handshake)`).
pub const HANDSHAKE_SIZE: usize = 512;

/// Plaintext bytes per GCM chunk (`DMSG_CRYPTO_CHUNK_SIZE`).
pub const CHUNK_SIZE: usize = 64;

/// GCM tag bytes appended to each chunk (`DMSG_CRYPTO_GCM_TAG_SIZE`).
pub const TAG_SIZE: usize = 16;

/// Bytes one chunk occupies on the wire: ciphertext followed by its tag.
pub const WIRE_CHUNK_SIZE: usize = CHUNK_SIZE + TAG_SIZE;

/// AES-256 key bytes (`DMSG_CRYPTO_GCM_KEY_SIZE`).
pub const KEY_SIZE: usize = 32;

/// Fixed part of the 12-byte GCM IV (`DMSG_CRYPTO_GCM_IV_FIXED_SIZE`).
pub const IV_FIXED_SIZE: usize = 4;
