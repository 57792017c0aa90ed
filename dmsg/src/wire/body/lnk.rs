//! Bodies of the link protocol: `LNK_AUTH`, `LNK_CONN`, `LNK_SPAN` and
//! `LNK_CIRC` (WIRE.md §5.1-5.4, circuit-era layouts).

use super::fields::{check_len, Fields, FieldsMut};
use super::{Body, BodyError};
use crate::wire::cmd;
use crate::wire::label::Label;
use crate::wire::uuid::Uuid;

/// `struct dmsg_lnk_auth` (128 bytes): defined, never sent by libdmsg.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LnkAuth {
    /// `dummy[64]` at 64.
    pub dummy: [u8; 64],
}

impl Default for LnkAuth {
    fn default() -> Self {
        LnkAuth { dummy: [0; 64] }
    }
}

impl Body for LnkAuth {
    const CMD: u32 = cmd::LNK_AUTH;
    const SIZE: usize = 128;

    fn parse(ext: &[u8]) -> Result<Self, BodyError> {
        check_len(ext, Self::SIZE)?;
        Ok(LnkAuth {
            dummy: Fields(ext).bytes(64),
        })
    }

    fn emit(&self, ext: &mut [u8]) -> Result<(), BodyError> {
        check_len(ext, Self::SIZE)?;
        FieldsMut(ext).put(64, &self.dummy);
        Ok(())
    }
}

/// `struct dmsg_lnk_conn` (456 bytes, H = 512), circuit-era layout with
/// `pfs_mask` at 192 and `cl_label` at 200.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LnkConn {
    /// Media configuration id (groups the connections of one media).
    pub mediaid: Uuid,
    /// Cluster (rendezvous) uuid; a span filter when not nil.
    pub pfs_clid: Uuid,
    /// Unique PFS uuid.
    pub pfs_fsid: Uuid,
    /// Bit N set: relay spans whose `peer_type` is N.
    pub peer_mask: u64,
    /// `DMSG_PEER_*` of the sender.
    pub peer_type: u8,
    /// `DMSG_PFSTYPE_*` of the sender.
    pub pfs_type: u8,
    /// Protocol version (0 in practice).
    pub proto_version: u16,
    /// Status (0 in practice).
    pub status: u32,
    /// The node's generated random sub-sort (unused by libdmsg).
    pub rnss: u32,
    /// `reserved02[8]` at 132.
    pub reserved02: [u8; 8],
    /// `reserved03[12]` (u32) at 140, as raw bytes.
    pub reserved03: [u8; 48],
    /// Bit N set: relay spans whose `pfs_type` is N.
    pub pfs_mask: u64,
    /// Cluster label filter.
    pub cl_label: Label<128>,
    /// PFS label.
    pub fs_label: Label<128>,
}

impl Default for LnkConn {
    fn default() -> Self {
        LnkConn {
            mediaid: Uuid::NIL,
            pfs_clid: Uuid::NIL,
            pfs_fsid: Uuid::NIL,
            peer_mask: 0,
            peer_type: 0,
            pfs_type: 0,
            proto_version: 0,
            status: 0,
            rnss: 0,
            reserved02: [0; 8],
            reserved03: [0; 48],
            pfs_mask: 0,
            cl_label: Label::empty(),
            fs_label: Label::empty(),
        }
    }
}

impl Body for LnkConn {
    const CMD: u32 = cmd::LNK_CONN;
    const SIZE: usize = 456;

    fn parse(ext: &[u8]) -> Result<Self, BodyError> {
        check_len(ext, Self::SIZE)?;
        let f = Fields(ext);
        Ok(LnkConn {
            mediaid: f.uuid(64),
            pfs_clid: f.uuid(80),
            pfs_fsid: f.uuid(96),
            peer_mask: f.u64(112),
            peer_type: f.u8(120),
            pfs_type: f.u8(121),
            proto_version: f.u16(122),
            status: f.u32(124),
            rnss: f.u32(128),
            reserved02: f.bytes(132),
            reserved03: f.bytes(140),
            pfs_mask: f.u64(192),
            cl_label: f.label(200),
            fs_label: f.label(328),
        })
    }

    fn emit(&self, ext: &mut [u8]) -> Result<(), BodyError> {
        check_len(ext, Self::SIZE)?;
        let mut f = FieldsMut(ext);
        f.uuid(64, &self.mediaid);
        f.uuid(80, &self.pfs_clid);
        f.uuid(96, &self.pfs_fsid);
        f.u64(112, self.peer_mask);
        f.u8(120, self.peer_type);
        f.u8(121, self.pfs_type);
        f.u16(122, self.proto_version);
        f.u32(124, self.status);
        f.u32(128, self.rnss);
        f.put(132, &self.reserved02);
        f.put(140, &self.reserved03);
        f.u64(192, self.pfs_mask);
        f.label(200, &self.cl_label);
        f.label(328, &self.fs_label);
        Ok(())
    }
}

/// The block-device view of the span media union (`dmsg_media_block_t`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct MediaBlock {
    /// Device size in bytes.
    pub bytes: u64,
    /// Block size in bytes.
    pub blksize: u32,
}

/// The 56-byte media union of `LNK_SPAN` (`reserved03[14]` or `block`),
/// kept raw; [`Media::block`] is the `PEER_BLOCK` view.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Media(pub [u8; 56]);

impl Default for Media {
    fn default() -> Self {
        Media([0; 56])
    }
}

impl Media {
    /// Reads the union as `media.block` (bytes at +0, blksize at +8).
    pub fn block(&self) -> MediaBlock {
        let mut bytes = [0u8; 8];
        let mut blksize = [0u8; 4];
        if let Some(s) = self.0.get(0..8) {
            bytes.copy_from_slice(s);
        }
        if let Some(s) = self.0.get(8..12) {
            blksize.copy_from_slice(s);
        }
        MediaBlock {
            bytes: u64::from_le_bytes(bytes),
            blksize: u32::from_le_bytes(blksize),
        }
    }

    /// Writes `block` over the union's first 12 bytes (the rest is kept).
    pub fn set_block(&mut self, block: MediaBlock) {
        if let Some(d) = self.0.get_mut(0..8) {
            d.copy_from_slice(&block.bytes.to_le_bytes());
        }
        if let Some(d) = self.0.get_mut(8..12) {
            d.copy_from_slice(&block.blksize.to_le_bytes());
        }
    }

    /// A union holding `block` and zeros elsewhere.
    pub fn from_block(block: MediaBlock) -> Media {
        let mut m = Media::default();
        m.set_block(block);
        m
    }
}

/// `struct dmsg_lnk_span` (432 bytes, H = 448).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct LnkSpan {
    /// Cluster id.
    pub pfs_clid: Uuid,
    /// Node id (tells apart the nodes of a cluster).
    pub pfs_fsid: Uuid,
    /// `DMSG_PFSTYPE_*`.
    pub pfs_type: u8,
    /// `DMSG_PEER_*`.
    pub peer_type: u8,
    /// Span protocol version ([`crate::wire::constants::SPAN_PROTO_1`]).
    pub proto_version: u16,
    /// Status.
    pub status: u32,
    /// `reserved02[8]` at 104.
    pub reserved02: [u8; 8],
    /// Hop distance, +1 per relay.
    pub dist: u32,
    /// Random-number sub-sort; relays add their node-wide value.
    pub rnss: u32,
    /// The media union.
    pub media: Media,
    /// `PEER_BLOCK`: "host/device"; `PEER_HAMMER2`: usually empty.
    pub cl_label: Label<128>,
    /// `PEER_BLOCK`: serial number; `PEER_HAMMER2`: super-root directory.
    pub fs_label: Label<128>,
}

impl Body for LnkSpan {
    const CMD: u32 = cmd::LNK_SPAN;
    const SIZE: usize = 432;

    fn parse(ext: &[u8]) -> Result<Self, BodyError> {
        check_len(ext, Self::SIZE)?;
        let f = Fields(ext);
        Ok(LnkSpan {
            pfs_clid: f.uuid(64),
            pfs_fsid: f.uuid(80),
            pfs_type: f.u8(96),
            peer_type: f.u8(97),
            proto_version: f.u16(98),
            status: f.u32(100),
            reserved02: f.bytes(104),
            dist: f.u32(112),
            rnss: f.u32(116),
            media: Media(f.bytes(120)),
            cl_label: f.label(176),
            fs_label: f.label(304),
        })
    }

    fn emit(&self, ext: &mut [u8]) -> Result<(), BodyError> {
        check_len(ext, Self::SIZE)?;
        let mut f = FieldsMut(ext);
        f.uuid(64, &self.pfs_clid);
        f.uuid(80, &self.pfs_fsid);
        f.u8(96, self.pfs_type);
        f.u8(97, self.peer_type);
        f.u16(98, self.proto_version);
        f.u32(100, self.status);
        f.put(104, &self.reserved02);
        f.u32(112, self.dist);
        f.u32(116, self.rnss);
        f.put(120, &self.media.0);
        f.label(176, &self.cl_label);
        f.label(304, &self.fs_label);
        Ok(())
    }
}

/// `struct dmsg_lnk_circ` (80 bytes, H = 128).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct LnkCirc {
    /// Reserved, 0.
    pub reserved01: u64,
    /// msgid of an open `LNK_SPAN` transaction that the sender received
    /// over this same link.
    pub target: u64,
}

impl Body for LnkCirc {
    const CMD: u32 = cmd::LNK_CIRC;
    const SIZE: usize = 80;

    fn parse(ext: &[u8]) -> Result<Self, BodyError> {
        check_len(ext, Self::SIZE)?;
        let f = Fields(ext);
        Ok(LnkCirc {
            reserved01: f.u64(64),
            target: f.u64(72),
        })
    }

    fn emit(&self, ext: &mut [u8]) -> Result<(), BodyError> {
        check_len(ext, Self::SIZE)?;
        let mut f = FieldsMut(ext);
        f.u64(64, self.reserved01);
        f.u64(72, self.target);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::constants::*;
    use crate::wire::Message;

    #[test]
    fn conn_as_master_service_sends_it() {
        // WIRE.md §8.1: all zero but peer_mask, peer_type and pfs_mask.
        let conn = LnkConn {
            peer_mask: !0,
            peer_type: PEER_CLUSTER,
            pfs_mask: !0,
            ..LnkConn::default()
        };
        let msg = Message::with_body(cmd::CREATE, &conn);
        assert_eq!(msg.hdr.cmd, 0x8000_1108);
        assert_eq!(msg.ext.len(), 512 - 64);
        let mut want = vec![0u8; 448];
        want[0x70 - 64..0x78 - 64].fill(0xff);
        want[0x78 - 64] = 1;
        want[0xc0 - 64..0xc8 - 64].fill(0xff);
        assert_eq!(msg.ext, want);
        assert_eq!(LnkConn::parse(&msg.ext), Ok(conn));
    }

    #[test]
    fn conn_labels_at_circuit_era_offsets() {
        let conn = LnkConn {
            cl_label: Label::new("cluster").unwrap(),
            fs_label: Label::new("fs").unwrap(),
            rnss: 0x0102_0304,
            ..LnkConn::default()
        };
        let mut ext = vec![0u8; 448];
        conn.emit(&mut ext).unwrap();
        assert_eq!(&ext[200 - 64..207 - 64], b"cluster");
        assert_eq!(&ext[328 - 64..330 - 64], b"fs");
        assert_eq!(&ext[128 - 64..132 - 64], &[4, 3, 2, 1]);
    }

    #[test]
    fn span_with_unterminated_labels_is_read_within_bounds() {
        let mut ext = vec![b'x'; 448];
        let span = LnkSpan::parse(&ext).unwrap();
        assert_eq!(span.cl_label.len(), 128);
        assert_eq!(span.fs_label.len(), 128);
        span.emit(&mut ext).unwrap();
        assert_eq!(ext[176 - 64 + 127], 0);
        assert_eq!(ext[304 - 64 + 127], 0);
        assert_eq!(ext[304 - 64 + 126], b'x');
    }

    #[test]
    fn media_block_view() {
        let mut span = LnkSpan {
            media: Media::from_block(MediaBlock {
                bytes: 2_000_398_934_016,
                blksize: 512,
            }),
            ..LnkSpan::default()
        };
        assert_eq!(
            &span.media.0[..16],
            &[0x00, 0x60, 0x11, 0xc1, 0xd1, 0x01, 0, 0, 0x00, 0x02, 0, 0, 0, 0, 0, 0]
        );
        span.media.0[20] = 9;
        span.media.set_block(MediaBlock::default());
        assert_eq!(span.media.0[20], 9);
        assert_eq!(span.media.block(), MediaBlock::default());
    }
}
