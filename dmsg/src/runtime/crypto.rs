//! The crypto layer of a link over a real socket (WIRE.md §7): the
//! blocking negotiation run before the driver starts ([`negotiate`]), and
//! the stage the driver puts between its transmit queue and `writev`, and
//! between `read` and [`Link::receive`](crate::link::Link::receive)
//! ([`CryptoStage`]).
//!
//! # Negotiation
//!
//! [`negotiate`] looks up the peer's numeric address with `getpeername`
//! (IPv4 `a.b.c.d`, IPv6 in its numeric form, an IPv4-mapped IPv6 address
//! as its IPv4 form) and asks the key directory
//! ([`KeyDir::link_mode`]):
//!
//! * `remote/<addr>.none` → plaintext, nothing is exchanged (`Ok(None)`);
//! * `remote/<addr>.pub` → both sides write their 512-byte handshake block
//!   and read the peer's, each step bounded by one deadline (the handshake
//!   timeout, [`DEFAULT_HANDSHAKE_TIMEOUT`] unless configured), and the
//!   received block is decrypted and validated (`Ok(Some(session))`);
//! * neither, or an unusable key, or a failed exchange → a
//!   [`NegotiateError`] that names the file and the peer.
//!
//! [`negotiate_keys`] runs the exchange with keys chosen by the caller (a
//! socketpair has no peer address: tests and benchmarks force crypto on
//! with it).
//!
//! # The stage in the driver
//!
//! With a session, the driver seals what it takes from the queue (every
//! segment is a multiple of 64 bytes: frames are 64-byte aligned) straight
//! into a ciphertext buffer kept for the link, 80 wire bytes per 64-byte
//! chunk, and writes that buffer with the same batching as plaintext; the
//! link is told that plaintext bytes were written as the chunks holding
//! them are written. Read bytes are opened in place in the driver's read
//! buffer ([`ChunkOpener::open_in_place`]): the plaintext ends up packed at
//! its front and goes to the link from there, and the bytes of an
//! incomplete last chunk move to the front for the next read to complete.
//! So each direction makes one pass over the data besides the socket's
//! copy. A bad GCM tag takes the link down with [`LinkError::Crypto`] and
//! [`ioq_error::MACFAIL`]; nothing of the failed read reaches the link,
//! and the opener refuses everything after it. Without a session the
//! driver's plaintext path is unchanged: the stage is an `Option` looked
//! at once per read and once per batch of writes.

use crate::crypto::{
    ChunkOpener, ChunkSealer, Handshake, HandshakeError, KeyDir, KeyError, LinkKeys, LinkMode,
    RandomSource, Session, StreamError, CHUNK_SIZE, HANDSHAKE_SIZE, WIRE_CHUNK_SIZE,
};
use crate::link::LinkError;
use crate::wire::ioq_error;
use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::fd::AsFd;
use rustix::io::Errno;
use rustix::net::{AddressFamily, SendFlags, SocketAddrAny};
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// The handshake timeout used unless configured: each side must have
/// written its block and read the peer's within this time.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Plaintext sealed per batch: the ciphertext buffer holds at most
/// 1.25 times this. Small enough to stay in the cache between sealing and
/// writing, large enough for few system calls.
pub(crate) const SEAL_BATCH: usize = 256 << 10;

/// Why [`negotiate`] failed. Every variant names the peer; the key
/// variants name the file.
#[derive(Debug)]
#[non_exhaustive]
pub enum NegotiateError {
    /// The socket's peer address could not be found.
    PeerAddress {
        /// The error of `getpeername`.
        source: io::Error,
    },
    /// A key file is missing, unreadable or unusable (names the file and
    /// the peer).
    Key(KeyError),
    /// The handshake block could not be built, or the received one does
    /// not decrypt and validate.
    Handshake {
        /// The peer address.
        peer: String,
        /// What failed.
        source: HandshakeError,
    },
    /// The handshake did not complete in time.
    Timeout {
        /// The peer address.
        peer: String,
        /// The timeout.
        timeout: Duration,
        /// Bytes of our block written when it expired.
        sent: usize,
        /// Bytes of the peer's block read when it expired.
        received: usize,
    },
    /// The peer closed the connection during the handshake.
    Eof {
        /// The peer address.
        peer: String,
        /// Bytes of the peer's block read before.
        received: usize,
    },
    /// Reading or writing the socket failed.
    Io {
        /// The peer address.
        peer: String,
        /// The error.
        source: io::Error,
    },
}

impl NegotiateError {
    /// The `DMSG_IOQ_ERROR_*` code the C library reports for this failure
    /// (`NORKEY`, `NOLKEY`, `KEYFMT`, `KEYXCHGFAIL`, `BADURANDOM`,
    /// `NOPEER`).
    pub fn ioq_error(&self) -> u32 {
        match self {
            NegotiateError::PeerAddress { .. } => ioq_error::NOPEER,
            NegotiateError::Key(k) => match k {
                KeyError::NoPeerKey { .. } => ioq_error::NORKEY,
                KeyError::Missing { .. } => ioq_error::NOLKEY,
                KeyError::Unreadable { path, .. } => {
                    if path.parent().and_then(|p| p.file_name()) == Some("remote".as_ref()) {
                        ioq_error::NORKEY
                    } else {
                        ioq_error::NOLKEY
                    }
                }
                KeyError::BadPeerName { .. } => ioq_error::NOPEER,
                _ => ioq_error::KEYFMT,
            },
            NegotiateError::Handshake {
                source: HandshakeError::Random { .. },
                ..
            } => ioq_error::BADURANDOM,
            // The C library reports any failed read or write of the
            // handshake as a failed key exchange too.
            NegotiateError::Handshake { .. }
            | NegotiateError::Timeout { .. }
            | NegotiateError::Eof { .. }
            | NegotiateError::Io { .. } => ioq_error::KEYXCHGFAIL,
        }
    }

    /// The link error that ends a link whose negotiation failed:
    /// [`LinkError::Crypto`] with [`NegotiateError::ioq_error`] and this
    /// error's text.
    pub fn to_link_error(&self) -> LinkError {
        LinkError::Crypto {
            code: self.ioq_error(),
            reason: self.to_string(),
        }
    }
}

impl fmt::Display for NegotiateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NegotiateError::PeerAddress { source } => {
                write!(f, "cannot find the peer address of the socket: {source}")
            }
            NegotiateError::Key(k) => write!(f, "{k}"),
            NegotiateError::Handshake { peer, source } => {
                write!(f, "handshake with peer {peer} failed: {source}")
            }
            NegotiateError::Timeout {
                peer,
                timeout,
                sent,
                received,
            } => write!(
                f,
                "handshake with peer {peer} timed out after {timeout:?} \
                 ({sent} of 512 bytes sent, {received} of 512 received)"
            ),
            NegotiateError::Eof { peer, received } => write!(
                f,
                "peer {peer} closed the connection during the handshake \
                 ({received} of 512 bytes received)"
            ),
            NegotiateError::Io { peer, source } => {
                write!(f, "handshake with peer {peer}: socket error: {source}")
            }
        }
    }
}

impl std::error::Error for NegotiateError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            NegotiateError::PeerAddress { source } | NegotiateError::Io { source, .. } => {
                Some(source)
            }
            NegotiateError::Key(k) => Some(k),
            NegotiateError::Handshake { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<KeyError> for NegotiateError {
    fn from(e: KeyError) -> Self {
        NegotiateError::Key(e)
    }
}

/// Whether `sock` is a TCP/IP socket (`AF_INET` or `AF_INET6`): the
/// sockets the C-ABI negotiates crypto on. Unix sockets, pipes and files
/// give `false`.
pub fn is_inet_socket(sock: impl AsFd) -> bool {
    matches!(
        rustix::net::sockopt::socket_domain(sock),
        Ok(AddressFamily::INET) | Ok(AddressFamily::INET6)
    )
}

/// The numeric form of an address the key files are named by: IPv4
/// `a.b.c.d`, IPv6 numeric, an IPv4-mapped IPv6 address as its IPv4 form.
pub fn peer_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => v6.to_string(),
        },
        IpAddr::V4(v4) => v4.to_string(),
    }
}

/// The numeric peer address of a connected TCP/IP socket (see
/// [`peer_name`]); `None` when the socket is not an IPv4 or IPv6 one.
pub fn peer_address(sock: impl AsFd) -> io::Result<Option<String>> {
    let addr: Option<SocketAddrAny> = rustix::net::getpeername(sock)?;
    Ok(addr
        .and_then(|a| SocketAddr::try_from(a).ok())
        .map(|a| peer_name(a.ip())))
}

/// Negotiates the crypto of a link over the connected socket `sock`
/// (blocking or not): finds the peer address, asks `keydir`, and runs the
/// handshake when the peer has a `.pub` key, bounded by `timeout`.
/// `Ok(None)` means plaintext (`remote/<addr>.none`), with nothing sent.
pub fn negotiate(
    sock: impl AsFd,
    keydir: &KeyDir,
    timeout: Duration,
    rng: &mut dyn RandomSource,
) -> Result<Option<Session>, NegotiateError> {
    let peer = match peer_address(&sock) {
        Ok(Some(p)) => p,
        Ok(None) => {
            return Err(NegotiateError::PeerAddress {
                source: io::Error::new(io::ErrorKind::Unsupported, "not an IPv4 or IPv6 socket"),
            })
        }
        Err(source) => return Err(NegotiateError::PeerAddress { source }),
    };
    match keydir.link_mode(&peer)? {
        LinkMode::Plaintext => Ok(None),
        LinkMode::Encrypted(keys) => negotiate_keys(sock, keys, timeout, rng).map(Some),
    }
}

/// Runs the handshake over `sock` with the given keys (whatever the
/// socket's peer address): writes our 512 bytes, reads the peer's, both
/// within `timeout`, and returns the session.
pub fn negotiate_keys(
    sock: impl AsFd,
    keys: LinkKeys,
    timeout: Duration,
    rng: &mut dyn RandomSource,
) -> Result<Session, NegotiateError> {
    let peer = keys.peer_name().to_owned();
    let deadline = Instant::now() + timeout;
    let (hs, ours) = Handshake::start(keys, rng).map_err(|source| NegotiateError::Handshake {
        peer: peer.clone(),
        source,
    })?;
    let mut theirs = [0u8; HANDSHAKE_SIZE];
    let mut io = Exchange {
        sock: sock.as_fd(),
        peer: &peer,
        deadline,
        timeout,
        sent: 0,
        received: 0,
    };
    io.write_all(&ours)?;
    io.read_exact(&mut theirs)?;
    hs.finish(&theirs)
        .map_err(|source| NegotiateError::Handshake { peer, source })
}

/// The blocking I/O of the handshake, every wait bounded by the deadline.
struct Exchange<'a> {
    sock: rustix::fd::BorrowedFd<'a>,
    peer: &'a str,
    deadline: Instant,
    timeout: Duration,
    sent: usize,
    received: usize,
}

impl Exchange<'_> {
    fn timed_out(&self) -> NegotiateError {
        NegotiateError::Timeout {
            peer: self.peer.to_owned(),
            timeout: self.timeout,
            sent: self.sent,
            received: self.received,
        }
    }

    fn io_err(&self, e: Errno) -> NegotiateError {
        NegotiateError::Io {
            peer: self.peer.to_owned(),
            source: io::Error::from(e),
        }
    }

    /// Waits until the socket has `flags` (or fails or hangs up), or the
    /// deadline passes.
    fn wait(&self, flags: PollFlags) -> Result<(), NegotiateError> {
        loop {
            let left = self.deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(self.timed_out());
            }
            let ts = Timespec {
                tv_sec: i64::try_from(left.as_secs()).unwrap_or(i64::MAX),
                tv_nsec: i64::from(left.subsec_nanos()),
            };
            let mut fds = [PollFd::new(&self.sock, flags)];
            match poll(&mut fds, Some(&ts)) {
                Ok(0) | Err(Errno::INTR) => {}
                Ok(_) => return Ok(()),
                Err(e) => return Err(self.io_err(e)),
            }
        }
    }

    fn write_all(&mut self, data: &[u8]) -> Result<(), NegotiateError> {
        while let Some(rest) = data.get(self.sent..).filter(|r| !r.is_empty()) {
            self.wait(PollFlags::OUT)?;
            // MSG_NOSIGNAL: a peer that went away is an EPIPE error here,
            // never a SIGPIPE that kills a C program not ignoring it.
            let sent = match rustix::net::send(self.sock, rest, SendFlags::NOSIGNAL) {
                Err(Errno::NOTSOCK) => rustix::io::write(self.sock, rest),
                other => other,
            };
            match sent {
                Ok(n) => self.sent += n,
                Err(Errno::AGAIN) | Err(Errno::INTR) => {}
                Err(e) => return Err(self.io_err(e)),
            }
        }
        Ok(())
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), NegotiateError> {
        while let Some(rest) = buf.get_mut(self.received..).filter(|r| !r.is_empty()) {
            self.wait(PollFlags::IN)?;
            match rustix::io::read(self.sock, rest) {
                Ok(0) => {
                    return Err(NegotiateError::Eof {
                        peer: self.peer.to_owned(),
                        received: self.received,
                    })
                }
                Ok(n) => self.received += n,
                Err(Errno::AGAIN) | Err(Errno::INTR) => {}
                Err(e) => return Err(self.io_err(e)),
            }
        }
        Ok(())
    }
}

/// The crypto stage of a driver: both directions of a [`Session`] and the
/// ciphertext buffer between the transmit queue and the socket.
#[derive(Debug)]
pub struct CryptoStage {
    sealer: ChunkSealer,
    opener: ChunkOpener,
    /// Sealed bytes of the current batch: `cipher[..cipher_len]`. The
    /// buffer only grows, so sealing never clears or zeroes it.
    cipher: Vec<u8>,
    cipher_len: usize,
    /// How much of `cipher` is written.
    cipher_done: usize,
    /// Bytes of an incomplete chunk at the front of the read buffer.
    held: usize,
    /// Where the incomplete chunk of the last read is in the read buffer
    /// (moved to the front by [`CryptoStage::keep_tail`]), and its length;
    /// `None` once moved.
    tail: Option<(usize, usize)>,
}

impl CryptoStage {
    /// A stage for a fresh session (counters at 0 both ways).
    pub fn new(session: Session) -> Self {
        let (sealer, opener) = session.into_parts();
        Self::from_parts(sealer, opener)
    }

    /// A stage from its two directions.
    fn from_parts(sealer: ChunkSealer, opener: ChunkOpener) -> Self {
        CryptoStage {
            sealer,
            opener,
            cipher: Vec::new(),
            cipher_len: 0,
            cipher_done: 0,
            held: 0,
            tail: None,
        }
    }

    /// Sealed bytes not yet written.
    pub fn unwritten(&self) -> &[u8] {
        self.cipher
            .get(self.cipher_done..self.cipher_len)
            .unwrap_or_default()
    }

    /// Whether every sealed byte has been written.
    pub fn is_idle(&self) -> bool {
        self.cipher_done >= self.cipher_len
    }

    /// Seals plaintext slices (each a multiple of 64 bytes) into a new
    /// batch, at most 256 KiB of them (always at least the
    /// first slice), and returns how many plaintext bytes were taken. Only
    /// call it when [`CryptoStage::is_idle`].
    pub fn seal<'a>(
        &mut self,
        slices: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<usize, LinkError> {
        self.cipher_len = 0;
        self.cipher_done = 0;
        let mut taken = 0;
        for s in slices {
            if taken > 0 && taken + s.len() > SEAL_BATCH {
                break;
            }
            // s.len() / 64 * 80 fits: it is at most 1.25 times the length
            // of a slice.
            let end = self.cipher_len + s.len() / CHUNK_SIZE * WIRE_CHUNK_SIZE;
            if self.cipher.len() < end {
                self.cipher.resize(end, 0);
            }
            let dst = self
                .cipher
                .get_mut(self.cipher_len..end)
                .unwrap_or_default();
            let sealed = self.sealer.seal_into(s, dst).map_err(stream_failure)?;
            self.cipher_len += sealed / CHUNK_SIZE * WIRE_CHUNK_SIZE;
            taken += sealed;
            if sealed < s.len() {
                break;
            }
        }
        Ok(taken)
    }

    /// Accounts for `n` sealed bytes written; returns how many plaintext
    /// bytes that completes (whole chunks only).
    pub fn consume(&mut self, n: usize) -> usize {
        let before = self.cipher_done / WIRE_CHUNK_SIZE;
        self.cipher_done = (self.cipher_done + n).min(self.cipher_len);
        let after = self.cipher_done / WIRE_CHUNK_SIZE;
        (after - before) * CHUNK_SIZE
    }

    /// Drops the unwritten batch (the link is down).
    pub fn clear(&mut self) {
        self.cipher_len = 0;
        self.cipher_done = 0;
    }

    /// Bytes of an incomplete chunk kept at the front of the read buffer:
    /// read after them.
    pub fn held(&self) -> usize {
        self.held
    }

    /// Opens the read buffer `buf` in place: the [`CryptoStage::held`]
    /// bytes at its front and the bytes just read after them. Returns the
    /// length of the plaintext, packed at the front of `buf`, or the link
    /// error of a bad tag. Call [`CryptoStage::keep_tail`] when the
    /// plaintext has been used, before the next read.
    pub fn open_in_place(&mut self, buf: &mut [u8]) -> Result<usize, LinkError> {
        let plain = self.opener.open_in_place(buf).map_err(stream_failure)?;
        let whole = plain / CHUNK_SIZE * WIRE_CHUNK_SIZE;
        self.tail = Some((whole, buf.len().saturating_sub(whole)));
        Ok(plain)
    }

    /// Moves the incomplete chunk at the end of the last opened read to the
    /// front of `buf` (over the used plaintext), for the next read. Once
    /// per opened read: another call before the next open does nothing.
    pub fn keep_tail(&mut self, buf: &mut [u8]) {
        let Some((at, len)) = self.tail.take() else {
            return;
        };
        if len > 0 && at + len <= buf.len() {
            buf.copy_within(at..at + len, 0);
            self.held = len;
        } else {
            self.held = 0;
        }
    }
}

/// The link error of a stream failure: `MACFAIL` for a bad tag.
fn stream_failure(e: StreamError) -> LinkError {
    let code = match e {
        StreamError::BadTag { .. } => ioq_error::MACFAIL,
        _ => ioq_error::ALGO,
    };
    LinkError::Crypto {
        code,
        reason: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::SessionKey;
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// xorshift64, for read and write sizes.
    struct Rng(u64);
    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n.max(1) as u64) as usize
        }
    }

    /// Segments as the transmit queue holds them (multiples of 64 bytes,
    /// some larger than a batch), all their bytes, and the wire bytes of a
    /// stage that sealed them batch by batch and wrote them in pieces of
    /// random sizes.
    fn sealed(key: &SessionKey, rng: &mut Rng) -> (Vec<u8>, Vec<u8>) {
        let sizes = [64, 4096, 64, 65536, 128, 300 << 10, 64, 64, SEAL_BATCH, 192];
        let segs: Vec<Vec<u8>> = sizes
            .iter()
            .map(|&n| (0..n).map(|i| (i * 7 + n / 64) as u8).collect())
            .collect();
        let all: Vec<u8> = segs.concat();
        let mut tx = CryptoStage::from_parts(ChunkSealer::new(key), ChunkOpener::new(key));
        let mut wire = Vec::new();
        let (mut seg, mut off) = (0, 0);
        let mut written = 0;
        loop {
            if tx.is_idle() {
                let rest = segs.get(seg..).unwrap_or_default();
                let slices = rest
                    .iter()
                    .enumerate()
                    .map(|(i, s)| if i == 0 { &s[off..] } else { &s[..] });
                let mut n = tx.seal(slices).unwrap();
                if n == 0 {
                    break;
                }
                while n > 0 {
                    let left = segs[seg].len() - off;
                    if n >= left {
                        n -= left;
                        seg += 1;
                        off = 0;
                    } else {
                        off += n;
                        n = 0;
                    }
                }
            }
            let k = (1 + rng.below(100_000)).min(tx.unwritten().len());
            wire.extend_from_slice(&tx.unwritten()[..k]);
            written += tx.consume(k);
        }
        assert_eq!(written, all.len());
        assert_eq!(wire.len(), all.len() / CHUNK_SIZE * WIRE_CHUNK_SIZE);
        (all, wire)
    }

    /// Reads `wire` through a stage the way the driver does (reads of
    /// random sizes after the held bytes, opened in place); returns the
    /// plaintext, or the error with the plaintext before it.
    fn received(key: &SessionKey, wire: &[u8], rng: &mut Rng) -> (Vec<u8>, Option<LinkError>) {
        let mut rx = CryptoStage::from_parts(ChunkSealer::new(key), ChunkOpener::new(key));
        let mut rbuf = vec![0u8; 4096];
        let mut out = Vec::new();
        let mut rest = wire;
        while !rest.is_empty() {
            let held = rx.held();
            assert!(held < WIRE_CHUNK_SIZE);
            let n = (1 + rng.below(rbuf.len() - held)).min(rest.len());
            rbuf[held..held + n].copy_from_slice(&rest[..n]);
            rest = &rest[n..];
            match rx.open_in_place(&mut rbuf[..held + n]) {
                Ok(len) => out.extend_from_slice(&rbuf[..len]),
                Err(e) => return (out, Some(e)),
            }
            rx.keep_tail(&mut rbuf);
        }
        assert_eq!(rx.held(), 0);
        (out, None)
    }

    #[test]
    fn the_stage_seals_batches_and_opens_reads_in_place() {
        let key = SessionKey::new([3u8; 32], [9, 8, 7, 6]);
        let mut rng = Rng(0x1234_5678_9abc_def1);
        for _ in 0..4 {
            let (all, wire) = sealed(&key, &mut rng);
            let (got, err) = received(&key, &wire, &mut rng);
            assert!(err.is_none());
            assert!(got == all, "plaintext differs");
        }
    }

    #[test]
    fn a_bad_tag_stops_the_stage_at_its_chunk() {
        let key = SessionKey::new([5u8; 32], [1, 2, 3, 4]);
        let mut rng = Rng(0xfeed_f00d_1234_5678);
        let (all, mut wire) = sealed(&key, &mut rng);
        let bad = 5000;
        wire[bad * WIRE_CHUNK_SIZE + 70] ^= 4;
        let (got, err) = received(&key, &wire, &mut rng);
        match err {
            Some(LinkError::Crypto { code, .. }) => assert_eq!(code, ioq_error::MACFAIL),
            other => panic!("expected a MACFAIL, got {other:?}"),
        }
        // Only whole reads before the bad one reached the output.
        assert!(got.len() <= bad * CHUNK_SIZE);
        assert!(got[..] == all[..got.len()]);
    }

    #[test]
    fn peer_names() {
        assert_eq!(
            peer_name(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 5))),
            "10.0.0.5"
        );
        let mapped = Ipv4Addr::new(192, 168, 1, 2).to_ipv6_mapped();
        assert_eq!(peer_name(IpAddr::V6(mapped)), "192.168.1.2");
        assert_eq!(peer_name(IpAddr::V6(Ipv6Addr::LOCALHOST)), "::1");
    }

    #[test]
    fn codes() {
        let e = NegotiateError::Key(KeyError::Missing {
            path: "/k/rsa.prv".into(),
            peer: Some("1.2.3.4".into()),
        });
        assert_eq!(e.ioq_error(), ioq_error::NOLKEY);
        let t = NegotiateError::Timeout {
            peer: "1.2.3.4".into(),
            timeout: Duration::from_secs(1),
            sent: 512,
            received: 0,
        };
        assert_eq!(t.ioq_error(), ioq_error::KEYXCHGFAIL);
        assert!(t.to_string().contains("1.2.3.4"));
    }
}
