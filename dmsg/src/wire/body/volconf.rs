//! `LNK_VOLCONF` and the 128-byte `dmsg_vol_data` it carries (WIRE.md §5.6,
//! seed era).

use super::fields::{check_len, Fields, FieldsMut};
use super::{Body, BodyError};
use crate::wire::cmd;
use crate::wire::label::Label;
use crate::wire::uuid::Uuid;
use crate::wire::HEADER_SIZE;

/// `struct dmsg_vol_data` (exactly 128 bytes): one copy of a volume
/// configuration, also embedded in the HAMMER2 volume header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct VolData {
    /// 0..255, equal to its slot index; 0 = unused.
    pub copyid: u8,
    /// In progress.
    pub inprog: u8,
    /// Chain to.
    pub chain_to: u8,
    /// Chain from.
    pub chain_from: u8,
    /// `VOLF_ENABLED`, `VOLF_INPROG`.
    pub flags: u16,
    /// Error.
    pub error: u8,
    /// `VOLF_CONN_RR`, `VOLF_CONN_EF`, `VOLF_CONN_PRI` bits.
    pub priority: u8,
    /// The remote PFS type.
    pub remote_pfs_type: u8,
    /// `reserved08[23]` at 0x09.
    pub reserved08: [u8; 23],
    /// Cluster id.
    pub pfs_clid: Uuid,
    /// `label[16]` at 0x30.
    pub label: Label<16>,
    /// `path[64]` at 0x40: the target spec, e.g. `"span:<host>"`.
    pub path: Label<64>,
}

impl VolData {
    /// Size of the struct in bytes.
    pub const SIZE: usize = 128;

    /// Reads the struct from the first 128 bytes of `b`.
    pub fn parse(b: &[u8]) -> Result<VolData, BodyError> {
        check_len(b, HEADER_SIZE + Self::SIZE)?;
        // Fields count offsets from the start of an extended header; the
        // struct's own offsets are shifted by that much.
        let f = Fields(b);
        let at = |off: usize| HEADER_SIZE + off;
        Ok(VolData {
            copyid: f.u8(at(0x00)),
            inprog: f.u8(at(0x01)),
            chain_to: f.u8(at(0x02)),
            chain_from: f.u8(at(0x03)),
            flags: f.u16(at(0x04)),
            error: f.u8(at(0x06)),
            priority: f.u8(at(0x07)),
            remote_pfs_type: f.u8(at(0x08)),
            reserved08: f.bytes(at(0x09)),
            pfs_clid: f.uuid(at(0x20)),
            label: f.label(at(0x30)),
            path: f.label(at(0x40)),
        })
    }

    /// Writes the struct into the first 128 bytes of `b`.
    pub fn emit(&self, b: &mut [u8]) -> Result<(), BodyError> {
        check_len(b, HEADER_SIZE + Self::SIZE)?;
        let mut f = FieldsMut(b);
        let at = |off: usize| HEADER_SIZE + off;
        f.u8(at(0x00), self.copyid);
        f.u8(at(0x01), self.inprog);
        f.u8(at(0x02), self.chain_to);
        f.u8(at(0x03), self.chain_from);
        f.u16(at(0x04), self.flags);
        f.u8(at(0x06), self.error);
        f.u8(at(0x07), self.priority);
        f.u8(at(0x08), self.remote_pfs_type);
        f.put(at(0x09), &self.reserved08);
        f.uuid(at(0x20), &self.pfs_clid);
        f.label(at(0x30), &self.label);
        f.label(at(0x40), &self.path);
        Ok(())
    }

    /// The encoded 128 bytes.
    pub fn to_bytes(&self) -> [u8; 128] {
        let mut b = [0u8; 128];
        // 128 bytes is exactly the size `emit` needs.
        let _ = self.emit(&mut b);
        b
    }
}

/// `struct dmsg_lnk_volconf` (472 bytes, H = 512): one copy of the volume
/// configuration, sent inside an open `LNK_CONN` transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LnkVolconf {
    /// The copy at 64.
    pub copy: VolData,
    /// Its slot index.
    pub index: i32,
    /// `unused01` at 196.
    pub unused01: i32,
    /// The media configuration id.
    pub mediaid: Uuid,
    /// `reserved02[32]` (i64) at 216, as raw bytes.
    pub reserved02: [u8; 256],
}

impl Default for LnkVolconf {
    fn default() -> Self {
        LnkVolconf {
            copy: VolData::default(),
            index: 0,
            unused01: 0,
            mediaid: Uuid::NIL,
            reserved02: [0; 256],
        }
    }
}

impl Body for LnkVolconf {
    const CMD: u32 = cmd::LNK_VOLCONF;
    const SIZE: usize = 472;

    fn parse(ext: &[u8]) -> Result<Self, BodyError> {
        check_len(ext, Self::SIZE)?;
        let f = Fields(ext);
        Ok(LnkVolconf {
            copy: VolData::parse(ext)?,
            index: f.i32(192),
            unused01: f.i32(196),
            mediaid: f.uuid(200),
            reserved02: f.bytes(216),
        })
    }

    fn emit(&self, ext: &mut [u8]) -> Result<(), BodyError> {
        check_len(ext, Self::SIZE)?;
        self.copy.emit(ext)?;
        let mut f = FieldsMut(ext);
        f.i32(192, self.index);
        f.i32(196, self.unused01);
        f.uuid(200, &self.mediaid);
        f.put(216, &self.reserved02);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::constants::*;

    #[test]
    fn vol_data_offsets() {
        let v = VolData {
            copyid: 3,
            flags: VOLF_ENABLED | VOLF_INPROG,
            priority: VOLF_CONN_RR | 5,
            remote_pfs_type: PFSTYPE_SERVER,
            pfs_clid: Uuid([0x11; 16]),
            label: Label::new("lbl").unwrap(),
            path: Label::new("span:host").unwrap(),
            ..VolData::default()
        };
        let b = v.to_bytes();
        assert_eq!(&b[..10], &[3, 0, 0, 0, 3, 0, 0, 0x85, 3, 0]);
        assert_eq!(&b[0x20..0x30], &[0x11; 16]);
        assert_eq!(&b[0x30..0x34], b"lbl\0");
        assert_eq!(&b[0x40..0x4a], b"span:host\0");
        assert_eq!(VolData::parse(&b), Ok(v));
    }

    #[test]
    fn volconf_round_trip() {
        let vc = LnkVolconf {
            copy: VolData {
                copyid: 1,
                ..VolData::default()
            },
            index: -2,
            mediaid: Uuid([7; 16]),
            ..LnkVolconf::default()
        };
        let mut ext = vec![0u8; 448];
        vc.emit(&mut ext).unwrap();
        assert_eq!(ext[0], 1);
        assert_eq!(&ext[192 - 64..196 - 64], &(-2i32).to_le_bytes());
        assert_eq!(&ext[200 - 64..216 - 64], &[7; 16]);
        assert_eq!(LnkVolconf::parse(&ext), Ok(vc));
    }
}
