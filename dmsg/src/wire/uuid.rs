//! DragonFly's `struct uuid` as it travels inside message bodies.
//!
//! The 16 bytes are the C struct in the sender's host order (little endian
//! for us), not RFC 4122 network order:
//!
//! ```text
//! 0 time_low u32   4 time_mid u16   6 time_hi_and_version u16
//! 8 clock_seq_hi u8   9 clock_seq_low u8   10 node[6]
//! ```
//!
//! The text form is the one `uuid_to_string(3)` prints: lowercase
//! `8-4-4-4-12` hex, the first three groups being the integer fields.

use std::fmt;
use std::str::FromStr;

/// A 16-byte `uuid_t` in wire (host, little endian) byte order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Uuid(pub [u8; 16]);

/// Why a string is not a uuid of the `8-4-4-4-12` form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UuidParseError;

impl fmt::Display for UuidParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a uuid of the form xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx")
    }
}

impl std::error::Error for UuidParseError {}

impl Uuid {
    /// The nil uuid (all zero).
    pub const NIL: Uuid = Uuid([0; 16]);

    /// Builds a uuid from the fields of `struct uuid`.
    pub fn from_fields(
        time_low: u32,
        time_mid: u16,
        time_hi_and_version: u16,
        clock_seq_hi: u8,
        clock_seq_low: u8,
        node: [u8; 6],
    ) -> Uuid {
        let mut b = [0u8; 16];
        let parts: [&[u8]; 6] = [
            &time_low.to_le_bytes(),
            &time_mid.to_le_bytes(),
            &time_hi_and_version.to_le_bytes(),
            &[clock_seq_hi],
            &[clock_seq_low],
            &node,
        ];
        let mut at = 0;
        for part in parts {
            if let Some(dst) = b.get_mut(at..at + part.len()) {
                dst.copy_from_slice(part);
            }
            at += part.len();
        }
        Uuid(b)
    }

    /// The raw wire bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// True for the nil uuid.
    pub fn is_nil(&self) -> bool {
        self.0 == [0; 16]
    }

    /// `time_low`.
    pub fn time_low(&self) -> u32 {
        let [a, b, c, d, ..] = self.0;
        u32::from_le_bytes([a, b, c, d])
    }

    /// `time_mid`.
    pub fn time_mid(&self) -> u16 {
        let [_, _, _, _, a, b, ..] = self.0;
        u16::from_le_bytes([a, b])
    }

    /// `time_hi_and_version`.
    pub fn time_hi_and_version(&self) -> u16 {
        let [_, _, _, _, _, _, a, b, ..] = self.0;
        u16::from_le_bytes([a, b])
    }

    /// `clock_seq_hi_and_reserved`.
    pub fn clock_seq_hi(&self) -> u8 {
        let [_, _, _, _, _, _, _, _, a, ..] = self.0;
        a
    }

    /// `clock_seq_low`.
    pub fn clock_seq_low(&self) -> u8 {
        let [_, _, _, _, _, _, _, _, _, a, ..] = self.0;
        a
    }

    /// `node[6]`.
    pub fn node(&self) -> [u8; 6] {
        let [_, _, _, _, _, _, _, _, _, _, n @ ..] = self.0;
        n
    }
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:08x}-{:04x}-{:04x}-{:02x}{:02x}-",
            self.time_low(),
            self.time_mid(),
            self.time_hi_and_version(),
            self.clock_seq_hi(),
            self.clock_seq_low()
        )?;
        for b in self.node() {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Parses exactly `digits` hex digits.
fn hex_group(s: &str, digits: usize) -> Result<u64, UuidParseError> {
    if s.len() != digits || !s.bytes().all(|c| c.is_ascii_hexdigit()) {
        return Err(UuidParseError);
    }
    u64::from_str_radix(s, 16).map_err(|_| UuidParseError)
}

impl FromStr for Uuid {
    type Err = UuidParseError;

    /// Parses the `8-4-4-4-12` form (either case), as `uuid_from_string(3)`.
    fn from_str(s: &str) -> Result<Uuid, UuidParseError> {
        let mut groups = s.split('-');
        let mut next = |digits: usize| hex_group(groups.next().ok_or(UuidParseError)?, digits);
        let time_low = next(8)? as u32;
        let time_mid = next(4)? as u16;
        let time_hi = next(4)? as u16;
        let clock = next(4)? as u16;
        let node = next(12)?;
        if groups.next().is_some() {
            return Err(UuidParseError);
        }
        let [hi, lo] = clock.to_be_bytes();
        let [_, _, n0, n1, n2, n3, n4, n5] = node.to_be_bytes();
        Ok(Uuid::from_fields(
            time_low,
            time_mid,
            time_hi,
            hi,
            lo,
            [n0, n1, n2, n3, n4, n5],
        ))
    }
}

impl From<[u8; 16]> for Uuid {
    fn from(b: [u8; 16]) -> Uuid {
        Uuid(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_host_order_fields() {
        // WIRE.md §8.2: pfs_clid on the wire and as text.
        let u = Uuid([
            0x3e, 0x1a, 0x8f, 0x3b, 0x1d, 0x6c, 0xe2, 0x11, 0x9d, 0x6a, 0x0a, 0x1b, 0x2c, 0x3d,
            0x4e, 0x5f,
        ]);
        assert_eq!(u.to_string(), "3b8f1a3e-6c1d-11e2-9d6a-0a1b2c3d4e5f");
        assert_eq!("3b8f1a3e-6c1d-11e2-9d6a-0a1b2c3d4e5f".parse(), Ok(u));
        assert_eq!("3B8F1A3E-6C1D-11E2-9D6A-0A1B2C3D4E5F".parse(), Ok(u));
        assert_eq!(
            Uuid::NIL.to_string(),
            "00000000-0000-0000-0000-000000000000"
        );
        assert!(Uuid::NIL.is_nil() && !u.is_nil());
    }

    #[test]
    fn rejects_malformed_text() {
        for s in [
            "",
            "3b8f1a3e-6c1d-11e2-9d6a",
            "3b8f1a3e-6c1d-11e2-9d6a-0a1b2c3d4e5f-00",
            "3b8f1a3e6c1d-11e2-9d6a-0a1b2c3d4e5f",
            "3b8f1a3g-6c1d-11e2-9d6a-0a1b2c3d4e5f",
            "+b8f1a3e-6c1d-11e2-9d6a-0a1b2c3d4e5f",
            "3b8f1a3e-6c1d-11e2-9d6a-0a1b2c3d4e5",
        ] {
            assert_eq!(s.parse::<Uuid>(), Err(UuidParseError), "{s:?}");
        }
    }
}
