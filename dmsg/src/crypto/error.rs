//! Typed errors of the crypto layer: key files, the handshake, the stream.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Formats " (peer X)" when a peer address is known, else nothing.
struct PeerSuffix<'a>(Option<&'a str>);

impl fmt::Display for PeerSuffix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(peer) => write!(f, " (peer {peer})"),
            None => Ok(()),
        }
    }
}

/// A problem with the key files of a key directory (WIRE.md §7.1).
///
/// Every variant names the file concerned and, when the keys were loaded for
/// a link, the peer address.
#[derive(Debug)]
#[non_exhaustive]
pub enum KeyError {
    /// Neither `remote/<peer>.pub` nor `remote/<peer>.none` exists (`NORKEY`).
    NoPeerKey {
        /// The peer address.
        peer: String,
        /// The `.pub` file looked for first.
        pub_path: PathBuf,
        /// The `.none` file looked for next.
        none_path: PathBuf,
    },
    /// An own key file (`rsa.prv` or `rsa.pub`) does not exist (`NOLKEY`).
    Missing {
        /// The missing file.
        path: PathBuf,
        /// The peer the keys were loaded for, if any.
        peer: Option<String>,
    },
    /// A key file exists but could not be read.
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The peer the keys were loaded for, if any.
        peer: Option<String>,
        /// The I/O error.
        source: io::Error,
    },
    /// A key file does not hold the expected PEM key (`KEYFMT`).
    BadPem {
        /// The file.
        path: PathBuf,
        /// The peer the keys were loaded for, if any.
        peer: Option<String>,
        /// What OpenSSL said.
        detail: String,
    },
    /// The own private, own public and peer public keys differ in size (`KEYFMT`).
    SizeMismatch {
        /// The peer address.
        peer: String,
        /// The peer's public key file.
        peer_path: PathBuf,
        /// Size in bytes of the own private key.
        private_size: usize,
        /// Size in bytes of the own public key.
        public_size: usize,
        /// Size in bytes of the peer's public key.
        peer_size: usize,
    },
    /// The RSA block size does not divide the 512-byte handshake block (`KEYFMT`).
    BadBlockSize {
        /// The peer address.
        peer: String,
        /// The peer's public key file.
        peer_path: PathBuf,
        /// The key size in bytes.
        size: usize,
    },
    /// The peer address cannot name a file in `remote/` (empty, or holds `/` or NUL).
    BadPeerName {
        /// The rejected address.
        peer: String,
    },
    /// Key generation refused to overwrite an existing key file.
    AlreadyExists {
        /// The existing file.
        path: PathBuf,
    },
    /// Writing a generated key file (or creating its directory) failed.
    Write {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// OpenSSL failed to generate or encode a key.
    Generate {
        /// What OpenSSL said.
        detail: String,
    },
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::NoPeerKey {
                peer,
                pub_path,
                none_path,
            } => write!(
                f,
                "no key for peer {peer}: neither {} nor {} exists",
                pub_path.display(),
                none_path.display()
            ),
            KeyError::Missing { path, peer } => write!(
                f,
                "missing key file {}{}",
                path.display(),
                PeerSuffix(peer.as_deref())
            ),
            KeyError::Unreadable { path, peer, source } => write!(
                f,
                "cannot read key file {}{}: {source}",
                path.display(),
                PeerSuffix(peer.as_deref())
            ),
            KeyError::BadPem { path, peer, detail } => write!(
                f,
                "bad PEM key in {}{}: {detail}",
                path.display(),
                PeerSuffix(peer.as_deref())
            ),
            KeyError::SizeMismatch {
                peer,
                peer_path,
                private_size,
                public_size,
                peer_size,
            } => write!(
                f,
                "RSA key sizes differ for peer {peer}: rsa.prv {private_size} bytes, \
                 rsa.pub {public_size} bytes, {} {peer_size} bytes",
                peer_path.display()
            ),
            KeyError::BadBlockSize {
                peer,
                peer_path,
                size,
            } => write!(
                f,
                "RSA key size {size} bytes of {} (peer {peer}) does not divide \
                 the 512-byte handshake block",
                peer_path.display()
            ),
            KeyError::BadPeerName { peer } => {
                write!(f, "peer address {peer:?} cannot name a key file")
            }
            KeyError::AlreadyExists { path } => {
                write!(
                    f,
                    "key file {} already exists, not overwritten",
                    path.display()
                )
            }
            KeyError::Write { path, source } => {
                write!(f, "cannot write {}: {source}", path.display())
            }
            KeyError::Generate { detail } => write!(f, "RSA key generation failed: {detail}"),
        }
    }
}

impl std::error::Error for KeyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            KeyError::Unreadable { source, .. } | KeyError::Write { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// A failed handshake (WIRE.md §7.3).
#[derive(Debug)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The received handshake is not exactly 512 bytes.
    BadLength {
        /// The length received.
        len: usize,
    },
    /// An RSA operation failed (e.g. a block not below the modulus).
    Rsa {
        /// Which step failed.
        step: &'static str,
        /// What OpenSSL said.
        detail: String,
    },
    /// No tweak value gave a signature with its top two bits clear.
    TweakExhausted,
    /// The random source failed or returned all zeros.
    Random {
        /// Why.
        detail: String,
    },
    /// The decrypted block does not validate (`KEYXCHGFAIL`): wrong keys, or
    /// a corrupted or forged block.
    KeyExchangeFailed {
        /// The received `version` (after any byte swap).
        version: u16,
        /// Whether the `verf` bytes checked out.
        verf_ok: bool,
    },
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::BadLength { len } => {
                write!(f, "handshake block is {len} bytes, expected 512")
            }
            HandshakeError::Rsa { step, detail } => write!(f, "RSA {step} failed: {detail}"),
            HandshakeError::TweakExhausted => {
                write!(f, "no tweak value gave a usable RSA signature")
            }
            HandshakeError::Random { detail } => write!(f, "random source failed: {detail}"),
            HandshakeError::KeyExchangeFailed { version, verf_ok } => write!(
                f,
                "key exchange failed: version {version}, verifier {} \
                 (wrong keys or a corrupted handshake)",
                if *verf_ok { "ok" } else { "mismatch" }
            ),
        }
    }
}

impl std::error::Error for HandshakeError {}

/// A failure of the encrypted chunk stream (WIRE.md §7.4).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StreamError {
    /// Plaintext to seal is not a multiple of 64 bytes.
    NotChunkAligned {
        /// The length given.
        len: usize,
    },
    /// A chunk's GCM tag did not verify (`DMSG_IOQ_ERROR_MACFAIL`). Sticky:
    /// the opener refuses all further input.
    BadTag {
        /// The counter (chunk number) of the chunk that failed.
        chunk: u64,
    },
}

impl fmt::Display for StreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamError::NotChunkAligned { len } => {
                write!(f, "plaintext of {len} bytes is not a multiple of 64")
            }
            StreamError::BadTag { chunk } => {
                write!(f, "GCM tag mismatch on encrypted chunk {chunk}")
            }
        }
    }
}

impl std::error::Error for StreamError {}
