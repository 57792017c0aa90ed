//! Bodies of the block-device protocol (WIRE.md §5.7), used by the kernel's
//! disk and xdisk code.

use super::fields::{check_len, Fields, FieldsMut};
use super::{Body, BodyError};
use crate::wire::cmd;
use crate::wire::label::Label;

/// `struct dmsg_blk_open` (72 bytes, H = 128), for `BLK_OPEN` and
/// `BLK_CLOSE`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct BlkOpen {
    /// `BLKOPEN_RD` | `BLKOPEN_WR`.
    pub modes: u32,
    /// Reserved.
    pub reserved01: u32,
}

impl Body for BlkOpen {
    const CMD: u32 = cmd::BLK_OPEN;
    const SIZE: usize = 72;

    fn accepts(c: u32) -> bool {
        matches!(cmd::base(c), cmd::BLK_OPEN | cmd::BLK_CLOSE)
    }

    fn parse(ext: &[u8]) -> Result<Self, BodyError> {
        check_len(ext, Self::SIZE)?;
        let f = Fields(ext);
        Ok(BlkOpen {
            modes: f.u32(64),
            reserved01: f.u32(68),
        })
    }

    fn emit(&self, ext: &mut [u8]) -> Result<(), BodyError> {
        check_len(ext, Self::SIZE)?;
        let mut f = FieldsMut(ext);
        f.u32(64, self.modes);
        f.u32(68, self.reserved01);
        Ok(())
    }
}

/// `struct dmsg_blk_read` (96 bytes, H = 128), the same layout as
/// `dmsg_blk_write`, `dmsg_blk_flush` and `dmsg_blk_freeblks`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct BlkRead {
    /// Key id.
    pub keyid: u64,
    /// Byte offset on the device.
    pub offset: u64,
    /// Byte count.
    pub bytes: u32,
    /// Flags.
    pub flags: u32,
    /// Reserved.
    pub reserved01: u32,
    /// Reserved.
    pub reserved02: u32,
}

impl Body for BlkRead {
    const CMD: u32 = cmd::BLK_READ;
    const SIZE: usize = 96;

    fn accepts(c: u32) -> bool {
        matches!(
            cmd::base(c),
            cmd::BLK_READ | cmd::BLK_WRITE | cmd::BLK_FLUSH | cmd::BLK_FREEBLKS
        )
    }

    fn parse(ext: &[u8]) -> Result<Self, BodyError> {
        check_len(ext, Self::SIZE)?;
        let f = Fields(ext);
        Ok(BlkRead {
            keyid: f.u64(64),
            offset: f.u64(72),
            bytes: f.u32(80),
            flags: f.u32(84),
            reserved01: f.u32(88),
            reserved02: f.u32(92),
        })
    }

    fn emit(&self, ext: &mut [u8]) -> Result<(), BodyError> {
        check_len(ext, Self::SIZE)?;
        let mut f = FieldsMut(ext);
        f.u64(64, self.keyid);
        f.u64(72, self.offset);
        f.u32(80, self.bytes);
        f.u32(84, self.flags);
        f.u32(88, self.reserved01);
        f.u32(92, self.reserved02);
        Ok(())
    }
}

/// `struct dmsg_blk_error` (144 bytes, H = 192).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct BlkError {
    /// Key id.
    pub keyid: u64,
    /// Bytes not transferred.
    pub resid: u32,
    /// Reserved.
    pub reserved02: u32,
    /// `buf[64]` at 80: a message text.
    pub buf: Label<64>,
}

impl Body for BlkError {
    const CMD: u32 = cmd::BLK_ERROR;
    const SIZE: usize = 144;

    fn parse(ext: &[u8]) -> Result<Self, BodyError> {
        check_len(ext, Self::SIZE)?;
        let f = Fields(ext);
        Ok(BlkError {
            keyid: f.u64(64),
            resid: f.u32(72),
            reserved02: f.u32(76),
            buf: f.label(80),
        })
    }

    fn emit(&self, ext: &mut [u8]) -> Result<(), BodyError> {
        check_len(ext, Self::SIZE)?;
        let mut f = FieldsMut(ext);
        f.u64(64, self.keyid);
        f.u32(72, self.resid);
        f.u32(76, self.reserved02);
        f.label(80, &self.buf);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::constants::BLKOPEN_RD;
    use crate::wire::Message;

    #[test]
    fn blk_layouts() {
        let open = Message::with_body(
            cmd::CREATE,
            &BlkOpen {
                modes: BLKOPEN_RD,
                reserved01: 0,
            },
        );
        assert_eq!(open.hdr.cmd, 0x8050_0102);
        assert_eq!(&open.ext[..8], &[1, 0, 0, 0, 0, 0, 0, 0]);

        let rd = BlkRead {
            keyid: 0x0102_0304_0506_0708,
            offset: 0x1000,
            bytes: 0x200,
            flags: 3,
            ..BlkRead::default()
        };
        let m = Message::with_body_cmd(cmd::BLK_WRITE | cmd::CREATE, &rd).unwrap();
        assert_eq!(&m.ext[..8], &[8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(&m.ext[8..16], &[0, 0x10, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&m.ext[16..24], &[0, 2, 0, 0, 3, 0, 0, 0]);
        assert_eq!(m.body::<BlkRead>(), Ok(rd));

        let e = BlkError {
            keyid: 9,
            resid: 512,
            buf: Label::new("EIO").unwrap(),
            ..BlkError::default()
        };
        let m = Message::with_body(cmd::REPLY, &e);
        assert_eq!(m.ext.len(), 128);
        assert_eq!(&m.ext[8..12], &[0, 2, 0, 0]);
        assert_eq!(&m.ext[16..20], b"EIO\0");
        assert_eq!(m.body::<BlkError>(), Ok(e));
    }
}
