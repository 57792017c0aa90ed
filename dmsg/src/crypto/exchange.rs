//! The raw-RSA exchange of the handshake block (WIRE.md §7.3), as a sans-IO
//! state machine: [`Handshake::start`] gives the 512 bytes to send, and
//! [`Handshake::finish`] takes the 512 bytes received and yields the
//! [`Session`] (the two stream directions).
//!
//! Sending, per RSA block `P` of the 512 bytes: increment the little-endian
//! `int` at block offset 4 and sign `S = P^d mod n` (own private key, no
//! padding) until `S` has its top two bits clear, so that `S` is below any
//! peer modulus of the same size; then send `C = S^e' mod n'` (peer's public
//! key, no padding). Receiving undoes both steps in reverse order.

use openssl::rsa::Padding;

pub use super::gcm::SessionKey;
use super::handshake::TWEAK_OFFSET;
use super::{
    ChunkOpener, ChunkSealer, HandshakeBlock, HandshakeError, LinkKeys, RandomSource,
    HANDSHAKE_SIZE,
};

/// Upper bound on tweak values tried per block. Each try succeeds with a
/// probability of at least 1/4, so this is never reached with sane keys; it
/// only guarantees the loop ends.
const MAX_TWEAKS: u32 = 4096;

fn rsa_err(step: &'static str) -> impl Fn(openssl::error::ErrorStack) -> HandshakeError {
    move |e| HandshakeError::Rsa {
        step,
        detail: e.to_string(),
    }
}

/// Adds one to the native-endian (little-endian) `int` at `TWEAK_OFFSET`.
fn bump_tweak(block: &mut [u8]) {
    if let Some(field) = block.get_mut(TWEAK_OFFSET..TWEAK_OFFSET + 4) {
        let mut v = [0u8; 4];
        v.copy_from_slice(field);
        let next = i32::from_le_bytes(v).wrapping_add(1);
        field.copy_from_slice(&next.to_le_bytes());
    }
}

/// Encrypts a plaintext handshake block for the peer, running the tweak loop
/// on each RSA block (so `block` is updated with the final tweak values,
/// which is what the peer will decrypt).
pub fn seal_handshake(
    keys: &LinkKeys,
    block: &mut HandshakeBlock,
) -> Result<[u8; HANDSHAKE_SIZE], HandshakeError> {
    let size = keys.block_size();
    let mut out = [0u8; HANDSHAKE_SIZE];
    let mut sig = vec![0u8; size];
    for (plain, cipher) in block
        .as_bytes_mut()
        .chunks_exact_mut(size)
        .zip(out.chunks_exact_mut(size))
    {
        let mut tries = 0u32;
        loop {
            bump_tweak(plain);
            keys.local()
                .private()
                .private_encrypt(plain, &mut sig, Padding::NONE)
                .map_err(rsa_err("private encrypt (sign)"))?;
            if sig.first().is_some_and(|b| b & 0xC0 == 0) {
                break;
            }
            tries += 1;
            if tries >= MAX_TWEAKS {
                return Err(HandshakeError::TweakExhausted);
            }
        }
        keys.peer()
            .rsa()
            .public_encrypt(&sig, cipher, Padding::NONE)
            .map_err(rsa_err("public encrypt"))?;
    }
    Ok(out)
}

/// Decrypts a received handshake: per RSA block, the own private key, then
/// the peer's public key. The result is not validated; see
/// [`HandshakeBlock::validate`].
pub fn open_handshake(keys: &LinkKeys, wire: &[u8]) -> Result<HandshakeBlock, HandshakeError> {
    if wire.len() != HANDSHAKE_SIZE {
        return Err(HandshakeError::BadLength { len: wire.len() });
    }
    let size = keys.block_size();
    let mut out = [0u8; HANDSHAKE_SIZE];
    let mut sig = vec![0u8; size];
    for (cipher, plain) in wire.chunks_exact(size).zip(out.chunks_exact_mut(size)) {
        keys.local()
            .private()
            .private_decrypt(cipher, &mut sig, Padding::NONE)
            .map_err(rsa_err("private decrypt"))?;
        keys.peer()
            .rsa()
            .public_decrypt(&sig, plain, Padding::NONE)
            .map_err(rsa_err("public decrypt (verify)"))?;
    }
    Ok(HandshakeBlock::from_bytes(out))
}

/// A handshake in progress: our block has been built and encrypted, the
/// peer's has not arrived yet.
#[derive(Debug)]
pub struct Handshake {
    keys: LinkKeys,
    sent: HandshakeBlock,
}

impl Handshake {
    /// Builds our block from `rng`, encrypts it, and returns the state with
    /// the 512 bytes to write to the peer. Both sides write first, then read.
    pub fn start(
        keys: LinkKeys,
        rng: &mut dyn RandomSource,
    ) -> Result<(Handshake, [u8; HANDSHAKE_SIZE]), HandshakeError> {
        let mut sent = HandshakeBlock::build(rng)?;
        let wire = seal_handshake(&keys, &mut sent)?;
        Ok((Handshake { keys, sent }, wire))
    }

    /// Our plaintext block as sent (with its final tweak values).
    pub fn sent_block(&self) -> &HandshakeBlock {
        &self.sent
    }

    /// Takes the peer's 512 bytes, decrypts and validates them, and returns
    /// the session: transmit with our `sess`, receive with the peer's.
    pub fn finish(self, received: &[u8]) -> Result<Session, HandshakeError> {
        let peer_block = open_handshake(&self.keys, received)?;
        peer_block.validate()?;
        let tx_key = self.sent.session_key();
        let rx_key = peer_block.session_key();
        Ok(Session {
            sealer: ChunkSealer::new(&tx_key),
            opener: ChunkOpener::new(&rx_key),
            tx_key,
            rx_key,
            peer_message: peer_block.quickmsg(),
        })
    }
}

/// The outcome of a successful handshake: both directions of the stream.
#[derive(Debug)]
pub struct Session {
    sealer: ChunkSealer,
    opener: ChunkOpener,
    tx_key: SessionKey,
    rx_key: SessionKey,
    peer_message: String,
}

impl Session {
    /// The key and fixed IV we transmit with (our own `sess`).
    pub fn tx_key(&self) -> &SessionKey {
        &self.tx_key
    }

    /// The key and fixed IV we receive with (the peer's `sess`).
    pub fn rx_key(&self) -> &SessionKey {
        &self.rx_key
    }

    /// The peer's `quickmsg` ("Testing 1 2 3"), for the log.
    pub fn peer_message(&self) -> &str {
        &self.peer_message
    }

    /// The transmit direction.
    pub fn sealer(&mut self) -> &mut ChunkSealer {
        &mut self.sealer
    }

    /// The receive direction.
    pub fn opener(&mut self) -> &mut ChunkOpener {
        &mut self.opener
    }

    /// Splits the session into its two directions.
    pub fn into_parts(self) -> (ChunkSealer, ChunkOpener) {
        (self.sealer, self.opener)
    }
}
