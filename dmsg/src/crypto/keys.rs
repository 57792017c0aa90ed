//! Key files (WIRE.md §7.1): loading the own key pair and a peer's public
//! key from a key directory, and generating a fresh key pair.
//!
//! Layout of a key directory (default [`DEFAULT_KEY_DIR`](super::DEFAULT_KEY_DIR)):
//!
//! * `rsa.prv`: own private key, PEM PKCS#1 (`BEGIN RSA PRIVATE KEY`);
//! * `rsa.pub`: own public key, PEM SubjectPublicKeyInfo (`BEGIN PUBLIC KEY`);
//! * `remote/<addr>.pub`: a peer's public key; the link is encrypted;
//! * `remote/<addr>.none`: any file; the link is not encrypted and no
//!   handshake bytes are exchanged.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use openssl::pkey::{Private, Public};
use openssl::rsa::Rsa;

use super::{KeyError, HANDSHAKE_SIZE};

/// Bits of a key made by [`generate_keys`] (as `hammer2 rsainit`).
pub const GENERATED_KEY_BITS: u32 = 2048;

/// An RSA public key.
#[derive(Clone)]
pub struct PublicKey(Rsa<Public>);

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({} bits)", self.0.size() * 8)
    }
}

impl PublicKey {
    /// Parses a PEM `PUBLIC KEY` (SubjectPublicKeyInfo), as `PEM_read_RSA_PUBKEY`.
    pub fn from_pem(pem: &[u8]) -> Result<Self, openssl::error::ErrorStack> {
        Rsa::public_key_from_pem(pem).map(PublicKey)
    }

    /// Reads a PEM public key file.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        load_public(path, None)
    }

    /// Size of the modulus in bytes (`RSA_size`).
    pub fn size(&self) -> usize {
        self.0.size() as usize
    }

    pub(crate) fn rsa(&self) -> &Rsa<Public> {
        &self.0
    }
}

/// The own key pair of a node: `rsa.prv` and `rsa.pub`.
#[derive(Clone)]
pub struct LocalKeys {
    private: Rsa<Private>,
    public: PublicKey,
}

impl std::fmt::Debug for LocalKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LocalKeys({} bits)", self.private.size() * 8)
    }
}

impl LocalKeys {
    /// Loads `rsa.pub` then `rsa.prv` from `dir`.
    pub fn load(dir: &Path) -> Result<Self, KeyError> {
        load_local(dir, None)
    }

    /// The own public key (`rsa.pub`).
    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    pub(crate) fn private(&self) -> &Rsa<Private> {
        &self.private
    }
}

/// Everything an encrypted handshake with one peer needs; sizes checked.
#[derive(Debug, Clone)]
pub struct LinkKeys {
    local: LocalKeys,
    peer: PublicKey,
    peer_name: String,
    block_size: usize,
}

impl LinkKeys {
    /// Pairs the own keys with a peer's public key, checking (WIRE.md §7.3)
    /// that all three keys have the same size and that it divides 512.
    /// `peer_name` and `peer_path` only serve the error message.
    pub fn new(
        local: LocalKeys,
        peer: PublicKey,
        peer_name: &str,
        peer_path: &Path,
    ) -> Result<Self, KeyError> {
        let private_size = local.private.size() as usize;
        let public_size = local.public.size();
        let peer_size = peer.size();
        if private_size != public_size || private_size != peer_size {
            return Err(KeyError::SizeMismatch {
                peer: peer_name.to_owned(),
                peer_path: peer_path.to_owned(),
                private_size,
                public_size,
                peer_size,
            });
        }
        if peer_size == 0 || !HANDSHAKE_SIZE.is_multiple_of(peer_size) {
            return Err(KeyError::BadBlockSize {
                peer: peer_name.to_owned(),
                peer_path: peer_path.to_owned(),
                size: peer_size,
            });
        }
        Ok(LinkKeys {
            local,
            peer,
            peer_name: peer_name.to_owned(),
            block_size: peer_size,
        })
    }

    /// The own keys.
    pub fn local(&self) -> &LocalKeys {
        &self.local
    }

    /// The peer's public key.
    pub fn peer(&self) -> &PublicKey {
        &self.peer
    }

    /// The peer's address, as given.
    pub fn peer_name(&self) -> &str {
        &self.peer_name
    }

    /// The RSA block size in bytes (the common key size).
    pub fn block_size(&self) -> usize {
        self.block_size
    }
}

/// What the key directory says about a link to one peer.
#[derive(Debug, Clone)]
pub enum LinkMode {
    /// `remote/<peer>.pub` exists: run the handshake, then encrypt.
    Encrypted(LinkKeys),
    /// `remote/<peer>.none` exists: plaintext link, no handshake bytes.
    Plaintext,
}

/// A key directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyDir {
    dir: PathBuf,
}

impl Default for KeyDir {
    fn default() -> Self {
        KeyDir::new(super::DEFAULT_KEY_DIR)
    }
}

impl KeyDir {
    /// A key directory at `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        KeyDir { dir: dir.into() }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// `remote/<peer>.pub`.
    pub fn peer_pub_path(&self, peer: &str) -> PathBuf {
        self.dir.join("remote").join(format!("{peer}.pub"))
    }

    /// `remote/<peer>.none`.
    pub fn peer_none_path(&self, peer: &str) -> PathBuf {
        self.dir.join("remote").join(format!("{peer}.none"))
    }

    /// Loads the own key pair.
    pub fn local_keys(&self) -> Result<LocalKeys, KeyError> {
        load_local(&self.dir, None)
    }

    /// Decides how the link to `peer` (its numeric address, e.g. `10.0.0.5`)
    /// runs, in the order of the C library: `remote/<peer>.pub` → encrypted
    /// (then `rsa.pub` and `rsa.prv` are loaded and the sizes checked); else
    /// `remote/<peer>.none` → plaintext; else [`KeyError::NoPeerKey`].
    pub fn link_mode(&self, peer: &str) -> Result<LinkMode, KeyError> {
        if peer.is_empty() || peer.contains(['/', '\0']) || peer == "." || peer == ".." {
            return Err(KeyError::BadPeerName {
                peer: peer.to_owned(),
            });
        }
        let pub_path = self.peer_pub_path(peer);
        match fs::read(&pub_path) {
            Ok(pem) => {
                let peer_key = PublicKey::from_pem(&pem).map_err(|e| KeyError::BadPem {
                    path: pub_path.clone(),
                    peer: Some(peer.to_owned()),
                    detail: e.to_string(),
                })?;
                let local = load_local(&self.dir, Some(peer))?;
                LinkKeys::new(local, peer_key, peer, &pub_path).map(LinkMode::Encrypted)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let none_path = self.peer_none_path(peer);
                match fs::metadata(&none_path) {
                    Ok(_) => Ok(LinkMode::Plaintext),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Err(KeyError::NoPeerKey {
                        peer: peer.to_owned(),
                        pub_path,
                        none_path,
                    }),
                    Err(source) => Err(KeyError::Unreadable {
                        path: none_path,
                        peer: Some(peer.to_owned()),
                        source,
                    }),
                }
            }
            Err(source) => Err(KeyError::Unreadable {
                path: pub_path,
                peer: Some(peer.to_owned()),
                source,
            }),
        }
    }
}

fn read_key_file(path: &Path, peer: Option<&str>) -> Result<Vec<u8>, KeyError> {
    fs::read(path).map_err(|source| {
        if source.kind() == io::ErrorKind::NotFound {
            KeyError::Missing {
                path: path.to_owned(),
                peer: peer.map(str::to_owned),
            }
        } else {
            KeyError::Unreadable {
                path: path.to_owned(),
                peer: peer.map(str::to_owned),
                source,
            }
        }
    })
}

fn bad_pem(path: &Path, peer: Option<&str>, e: openssl::error::ErrorStack) -> KeyError {
    KeyError::BadPem {
        path: path.to_owned(),
        peer: peer.map(str::to_owned),
        detail: e.to_string(),
    }
}

fn load_public(path: &Path, peer: Option<&str>) -> Result<PublicKey, KeyError> {
    let pem = read_key_file(path, peer)?;
    PublicKey::from_pem(&pem).map_err(|e| bad_pem(path, peer, e))
}

fn load_local(dir: &Path, peer: Option<&str>) -> Result<LocalKeys, KeyError> {
    let public = load_public(&dir.join("rsa.pub"), peer)?;
    let prv_path = dir.join("rsa.prv");
    let pem = read_key_file(&prv_path, peer)?;
    let private = Rsa::private_key_from_pem(&pem).map_err(|e| bad_pem(&prv_path, peer, e))?;
    Ok(LocalKeys { private, public })
}

/// Writes a fresh 2048-bit key pair into `dir` (created if missing):
/// `rsa.prv` (PKCS#1 PEM, mode 0600) and `rsa.pub` (SubjectPublicKeyInfo
/// PEM, mode 0644), like `hammer2 rsainit`. Refuses to overwrite: if either
/// file exists, nothing is written and [`KeyError::AlreadyExists`] names it.
pub fn generate_keys(dir: &Path) -> Result<(), KeyError> {
    let prv_path = dir.join("rsa.prv");
    let pub_path = dir.join("rsa.pub");
    for path in [&prv_path, &pub_path] {
        if fs::symlink_metadata(path).is_ok() {
            return Err(KeyError::AlreadyExists { path: path.clone() });
        }
    }
    fs::create_dir_all(dir).map_err(|source| KeyError::Write {
        path: dir.to_owned(),
        source,
    })?;
    let generate_err = |e: openssl::error::ErrorStack| KeyError::Generate {
        detail: e.to_string(),
    };
    let rsa = Rsa::generate(GENERATED_KEY_BITS).map_err(generate_err)?;
    let prv_pem = rsa.private_key_to_pem().map_err(generate_err)?;
    let pub_pem = rsa.public_key_to_pem().map_err(generate_err)?;
    write_new(&prv_path, &prv_pem, 0o600)?;
    if let Err(e) = write_new(&pub_path, &pub_pem, 0o644) {
        // Do not leave half a key pair behind.
        let _ = fs::remove_file(&prv_path);
        return Err(e);
    }
    Ok(())
}

fn write_new(path: &Path, data: &[u8], mode: u32) -> Result<(), KeyError> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|source| {
            if source.kind() == io::ErrorKind::AlreadyExists {
                KeyError::AlreadyExists {
                    path: path.to_owned(),
                }
            } else {
                KeyError::Write {
                    path: path.to_owned(),
                    source,
                }
            }
        })?;
    file.write_all(data)
        .and_then(|()| file.sync_all())
        .map_err(|source| KeyError::Write {
            path: path.to_owned(),
            source,
        })
}
