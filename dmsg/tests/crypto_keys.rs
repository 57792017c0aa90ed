//! Key directory outcomes (WIRE.md §7.1): lookup order, plaintext links,
//! and errors that name the file and the peer; key generation.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod crypto_support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crypto_support::node_dir;
use dmsg::crypto::{generate_keys, KeyDir, KeyError, LinkMode, DEFAULT_KEY_DIR};
use openssl::rsa::Rsa;

const PEER: &str = "10.0.0.5";

/// A key directory holding the captured keys of node `node`.
fn keydir_with(node: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in ["rsa.prv", "rsa.pub"] {
        fs::copy(node_dir(node).join(f), dir.path().join(f)).unwrap();
    }
    fs::create_dir(dir.path().join("remote")).unwrap();
    dir
}

fn put_peer_pub(dir: &Path, pem: &[u8]) {
    fs::write(dir.join("remote").join(format!("{PEER}.pub")), pem).unwrap();
}

#[test]
fn default_dir_is_etc_hammer2() {
    assert_eq!(DEFAULT_KEY_DIR, "/etc/hammer2");
    assert_eq!(KeyDir::default().path(), Path::new("/etc/hammer2"));
}

#[test]
fn pub_file_means_encrypted() {
    let dir = keydir_with("A");
    put_peer_pub(
        dir.path(),
        &fs::read(node_dir("B").join("rsa.pub")).unwrap(),
    );
    // A .none beside the .pub does not matter: .pub is looked up first.
    fs::write(dir.path().join("remote").join(format!("{PEER}.none")), b"").unwrap();
    match KeyDir::new(dir.path()).link_mode(PEER).unwrap() {
        LinkMode::Encrypted(keys) => {
            assert_eq!(keys.block_size(), 256);
            assert_eq!(keys.peer_name(), PEER);
        }
        LinkMode::Plaintext => panic!("expected an encrypted link"),
    }
}

#[test]
fn none_file_means_plaintext_without_own_keys() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("remote")).unwrap();
    fs::write(dir.path().join("remote").join(format!("{PEER}.none")), b"x").unwrap();
    // No rsa.prv/rsa.pub at all: not needed for a plaintext link.
    assert!(matches!(
        KeyDir::new(dir.path()).link_mode(PEER).unwrap(),
        LinkMode::Plaintext
    ));
}

#[test]
fn neither_file_is_an_error_naming_both_and_the_peer() {
    let dir = keydir_with("A");
    let err = KeyDir::new(dir.path()).link_mode(PEER).unwrap_err();
    assert!(matches!(err, KeyError::NoPeerKey { .. }), "{err:?}");
    let text = err.to_string();
    let pub_path = dir.path().join("remote/10.0.0.5.pub");
    let none_path = dir.path().join("remote/10.0.0.5.none");
    assert!(text.contains(PEER), "{text}");
    assert!(text.contains(&pub_path.display().to_string()), "{text}");
    assert!(text.contains(&none_path.display().to_string()), "{text}");
}

#[test]
fn missing_own_key_names_the_file_and_the_peer() {
    let dir = keydir_with("A");
    put_peer_pub(
        dir.path(),
        &fs::read(node_dir("B").join("rsa.pub")).unwrap(),
    );
    for missing in ["rsa.prv", "rsa.pub"] {
        let saved = fs::read(dir.path().join(missing)).unwrap();
        fs::remove_file(dir.path().join(missing)).unwrap();
        let err = KeyDir::new(dir.path()).link_mode(PEER).unwrap_err();
        let path = dir.path().join(missing);
        assert!(
            matches!(&err, KeyError::Missing { path: p, peer: Some(peer) } if *p == path && peer == PEER),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!("missing key file {} (peer {PEER})", path.display())
        );
        fs::write(dir.path().join(missing), saved).unwrap();
    }
}

#[test]
fn bad_pem_names_the_file_and_the_peer() {
    let dir = keydir_with("A");
    put_peer_pub(
        dir.path(),
        b"-----BEGIN PUBLIC KEY-----\ngarbage\n-----END PUBLIC KEY-----\n",
    );
    let err = KeyDir::new(dir.path()).link_mode(PEER).unwrap_err();
    let path = dir.path().join("remote/10.0.0.5.pub");
    assert!(
        matches!(&err, KeyError::BadPem { path: p, .. } if *p == path),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "bad PEM key in {} (peer {PEER}): ",
            path.display()
        )),
        "{text}"
    );

    // A private key where the public one belongs is also bad PEM.
    let dir = keydir_with("A");
    put_peer_pub(
        dir.path(),
        &fs::read(node_dir("B").join("rsa.pub")).unwrap(),
    );
    fs::copy(dir.path().join("rsa.prv"), dir.path().join("rsa.pub")).unwrap();
    let err = KeyDir::new(dir.path()).link_mode(PEER).unwrap_err();
    assert!(
        matches!(&err, KeyError::BadPem { path: p, .. } if *p == dir.path().join("rsa.pub")),
        "{err:?}"
    );
}

#[test]
fn key_sizes_that_differ_are_an_error() {
    let dir = keydir_with("A");
    let small = Rsa::generate(1024).unwrap();
    put_peer_pub(dir.path(), &small.public_key_to_pem().unwrap());
    let err = KeyDir::new(dir.path()).link_mode(PEER).unwrap_err();
    let path = dir.path().join("remote/10.0.0.5.pub");
    assert!(
        matches!(
            &err,
            KeyError::SizeMismatch {
                private_size: 256,
                public_size: 256,
                peer_size: 128,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "RSA key sizes differ for peer {PEER}: rsa.prv 256 bytes, rsa.pub 256 bytes, {} 128 bytes",
            path.display()
        )
    );
}

#[test]
fn key_size_not_dividing_512_is_an_error() {
    // Three 1536-bit (192-byte) keys: equal sizes, but 512 % 192 != 0.
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("remote")).unwrap();
    let own = Rsa::generate(1536).unwrap();
    let peer = Rsa::generate(1536).unwrap();
    fs::write(
        dir.path().join("rsa.prv"),
        own.private_key_to_pem().unwrap(),
    )
    .unwrap();
    fs::write(dir.path().join("rsa.pub"), own.public_key_to_pem().unwrap()).unwrap();
    put_peer_pub(dir.path(), &peer.public_key_to_pem().unwrap());
    let err = KeyDir::new(dir.path()).link_mode(PEER).unwrap_err();
    assert!(
        matches!(&err, KeyError::BadBlockSize { size: 192, .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains("192 bytes"), "{text}");
    assert!(text.contains(&format!("(peer {PEER})")), "{text}");
    assert!(text.contains("remote/10.0.0.5.pub"), "{text}");
}

#[test]
fn peer_names_that_escape_remote_are_refused() {
    let dir = keydir_with("A");
    for bad in ["", "..", "../rsa", "a/b", "x\0y"] {
        let err = KeyDir::new(dir.path()).link_mode(bad).unwrap_err();
        assert!(
            matches!(err, KeyError::BadPeerName { .. }),
            "{bad:?}: {err:?}"
        );
    }
}

#[test]
fn generated_keys_load_and_are_not_overwritten() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("hammer2");
    generate_keys(&dir).unwrap();
    let prv_mode = fs::metadata(dir.join("rsa.prv"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(prv_mode & 0o777, 0o600);
    let prv = fs::read_to_string(dir.join("rsa.prv")).unwrap();
    let public = fs::read_to_string(dir.join("rsa.pub")).unwrap();
    assert!(prv.starts_with("-----BEGIN RSA PRIVATE KEY-----"), "{prv}");
    assert!(public.starts_with("-----BEGIN PUBLIC KEY-----"), "{public}");

    let keys = KeyDir::new(&dir).local_keys().unwrap();
    assert_eq!(keys.public().size(), 256);

    let err = generate_keys(&dir).unwrap_err();
    assert!(
        matches!(&err, KeyError::AlreadyExists { path } if *path == dir.join("rsa.prv")),
        "{err:?}"
    );
    assert_eq!(fs::read_to_string(dir.join("rsa.prv")).unwrap(), prv);
    assert_eq!(fs::read_to_string(dir.join("rsa.pub")).unwrap(), public);

    // Only rsa.pub present: still refused, nothing written.
    let dir2 = parent.path().join("other");
    fs::create_dir(&dir2).unwrap();
    fs::write(dir2.join("rsa.pub"), b"keep").unwrap();
    assert!(matches!(
        generate_keys(&dir2),
        Err(KeyError::AlreadyExists { .. })
    ));
    assert!(!dir2.join("rsa.prv").exists());
    assert_eq!(fs::read(dir2.join("rsa.pub")).unwrap(), b"keep");
}

#[test]
fn unreadable_files_are_an_error_naming_file_and_peer() {
    // Root may read any file, so make the key file a directory instead.
    let dir = keydir_with("A");
    fs::create_dir(dir.path().join("remote/10.0.0.5.pub")).unwrap();
    let err = KeyDir::new(dir.path()).link_mode(PEER).unwrap_err();
    let path = dir.path().join("remote/10.0.0.5.pub");
    assert!(
        matches!(&err, KeyError::Unreadable { path: p, peer: Some(peer), .. } if *p == path && peer == PEER),
        "{err:?}"
    );
    assert!(
        err.to_string().starts_with(&format!(
            "cannot read key file {} (peer {PEER}): ",
            path.display()
        )),
        "{err}"
    );

    let dir = keydir_with("A");
    put_peer_pub(
        dir.path(),
        &fs::read(node_dir("B").join("rsa.pub")).unwrap(),
    );
    fs::remove_file(dir.path().join("rsa.prv")).unwrap();
    fs::create_dir(dir.path().join("rsa.prv")).unwrap();
    let err = KeyDir::new(dir.path()).link_mode(PEER).unwrap_err();
    assert!(
        matches!(&err, KeyError::Unreadable { path: p, .. } if *p == dir.path().join("rsa.prv")),
        "{err:?}"
    );
}
