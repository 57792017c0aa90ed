//! The 64-byte core header `struct dmsg_hdr` (WIRE.md §2).
//!
//! ```text
//! 0x00 magic u16   0x02 reserved02 u16   0x04 salt u32
//! 0x08 msgid u64   0x10 circuit u64      0x18 reserved18 u64
//! 0x20 cmd u32     0x24 aux_crc u32      0x28 aux_bytes u32   0x2C error u32
//! 0x30 aux_descr u64                     0x38 reserved38 u32  0x3C hdr_crc u32
//! ```
//!
//! Fields are in the sender's byte order. We are little endian on the wire
//! (every platform the original ran on was), see [`super::MAGIC_REV`].

/// Size of the core header in bytes.
pub const HEADER_SIZE: usize = 64;

/// Byte offset of `hdr_crc` in the core header.
pub const HDR_CRC_OFFSET: usize = 0x3C;

/// The core header, decoded to host values.
///
/// The fields are laid out in wire order (`repr(C)`, no padding), so that
/// on a little-endian host encoding and decoding compile to plain copies of
/// the 64 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Header {
    /// `DMSG_HDR_MAGIC` (0x4832) in the sender's byte order.
    pub magic: u16,
    /// Reserved, 0.
    pub reserved02: u16,
    /// Low 8 bits: per-direction sequence number; upper 24 bits: noise.
    pub salt: u32,
    /// Transaction id; 0 for one-way messages.
    pub msgid: u64,
    /// Virtual-circuit id; 0 is the link itself (circuit0).
    pub circuit: u64,
    /// Reserved, 0.
    pub reserved18: u64,
    /// Flags, protocol, command and header size (see [`super::cmd`]).
    pub cmd: u32,
    /// CRC-32C of the 64-aligned aux data, 0 without aux data.
    pub aux_crc: u32,
    /// Exact (unaligned) aux data length.
    pub aux_bytes: u32,
    /// Error code, 0 for none.
    pub error: u32,
    /// Out-of-band aux descriptor, always 0.
    pub aux_descr: u64,
    /// Reserved, 0.
    pub reserved38: u32,
    /// CRC-32C of the whole extended header with this field zeroed.
    pub hdr_crc: u32,
}

impl Header {
    /// The header as the eight little-endian 64-bit words of its layout.
    #[inline]
    fn words(&self) -> [u64; 8] {
        let pair = |lo: u32, hi: u32| u64::from(lo) | (u64::from(hi) << 32);
        [
            pair(
                u32::from(self.magic) | (u32::from(self.reserved02) << 16),
                self.salt,
            ),
            self.msgid,
            self.circuit,
            self.reserved18,
            pair(self.cmd, self.aux_crc),
            pair(self.aux_bytes, self.error),
            self.aux_descr,
            pair(self.reserved38, self.hdr_crc),
        ]
    }

    /// Decodes a little-endian core header.
    #[inline]
    pub fn parse(b: &[u8; HEADER_SIZE]) -> Header {
        let mut w = [0u64; 8];
        for (word, src) in w.iter_mut().zip(b.chunks_exact(8)) {
            let mut le = [0u8; 8];
            le.copy_from_slice(src);
            *word = u64::from_le_bytes(le);
        }
        let [w0, msgid, circuit, reserved18, w4, w5, aux_descr, w7] = w;
        let lo = |x: u64| x as u32;
        let hi = |x: u64| (x >> 32) as u32;
        Header {
            magic: w0 as u16,
            reserved02: (w0 >> 16) as u16,
            salt: hi(w0),
            msgid,
            circuit,
            reserved18,
            cmd: lo(w4),
            aux_crc: hi(w4),
            aux_bytes: lo(w5),
            error: hi(w5),
            aux_descr,
            reserved38: lo(w7),
            hdr_crc: hi(w7),
        }
    }

    /// Encodes the header little endian, every field as it is (no CRC is
    /// computed here; see [`super::Encoder`]).
    #[inline]
    pub fn emit(&self, b: &mut [u8; HEADER_SIZE]) {
        for (dst, word) in b.chunks_exact_mut(8).zip(self.words()) {
            dst.copy_from_slice(&word.to_le_bytes());
        }
    }

    /// The encoded bytes.
    #[inline]
    pub fn to_bytes(&self) -> [u8; HEADER_SIZE] {
        let mut b = [0u8; HEADER_SIZE];
        self.emit(&mut b);
        b
    }

    /// Swaps the byte order of every field (`dmsg_bswap_head`).
    pub fn swap_bytes(&mut self) {
        self.magic = self.magic.swap_bytes();
        self.reserved02 = self.reserved02.swap_bytes();
        self.salt = self.salt.swap_bytes();
        self.msgid = self.msgid.swap_bytes();
        self.circuit = self.circuit.swap_bytes();
        self.reserved18 = self.reserved18.swap_bytes();
        self.cmd = self.cmd.swap_bytes();
        self.aux_crc = self.aux_crc.swap_bytes();
        self.aux_bytes = self.aux_bytes.swap_bytes();
        self.error = self.error.swap_bytes();
        self.aux_descr = self.aux_descr.swap_bytes();
        self.reserved38 = self.reserved38.swap_bytes();
        self.hdr_crc = self.hdr_crc.swap_bytes();
    }

    /// The extended-header size `H` announced by `cmd`.
    pub fn header_size(&self) -> usize {
        super::cmd::header_size(self.cmd)
    }

    /// The per-direction sequence byte carried in the salt.
    pub fn seq(&self) -> u8 {
        (self.salt & 0xFF) as u8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_swap() {
        let h = Header {
            magic: 0x4832,
            salt: 0x5a3c_1e00,
            msgid: 0x0000_0008_01c1_7000,
            cmd: 0x8000_1108,
            hdr_crc: 0xAE2B_B120,
            ..Header::default()
        };
        let b = h.to_bytes();
        assert_eq!(&b[..8], &[0x32, 0x48, 0, 0, 0x00, 0x1e, 0x3c, 0x5a]);
        assert_eq!(Header::parse(&b), h);
        let mut s = h;
        s.swap_bytes();
        assert_eq!(s.magic, 0x3248);
        s.swap_bytes();
        assert_eq!(s, h);
    }
}
