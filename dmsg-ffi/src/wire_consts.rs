//! The constants of `<sys/dmsg.h>` (WIRE.md §1–§6), with their C names.
//!
//! Every constant of this file goes to `include/sys/dmsg.h`. The generator
//! copies each integer literal as written here (hex stays hex), and gives
//! `u32` constants a `U` suffix so that C sees them unsigned. The tests at
//! the end tie them to the values of the core crate.
//! The function-like macros (`DMSG_DOALIGN`, `DMSG_LNK`, ...) are verbatim
//! C in `tools/gen-headers/src/main.rs`.

/// Header magic in the sender's byte order.
pub const DMSG_HDR_MAGIC: u16 = 0x4832;
/// The magic as read from an opposite-endian peer.
pub const DMSG_HDR_MAGIC_REV: u16 = 0x3248;
/// Offset of `salt` (defined by C, unused: the CRC covers the whole header).
pub const DMSG_HDR_CRCOFF: usize = 4;
/// Header bytes after `DMSG_HDR_CRCOFF` (defined by C, unused).
pub const DMSG_HDR_CRCBYTES: usize = 60;

/// Alignment of headers and aux data.
pub const DMSG_ALIGN: usize = 64;
/// `DMSG_ALIGN - 1`.
pub const DMSG_ALIGNMASK: usize = 63;

/// Largest extended header, `sizeof(dmsg_any_t)`.
pub const DMSG_HDR_MAX: usize = 2048;
/// Largest aligned aux data.
pub const DMSG_AUX_MAX: usize = 65536;
/// Per-direction staging FIFO size.
pub const DMSG_BUF_SIZE: usize = 8192;
/// `DMSG_BUF_SIZE - 1`.
pub const DMSG_BUF_MASK: usize = 8191;

/// First message of a command or reply sequence.
pub const DMSGF_CREATE: u32 = 0x80000000;
/// Last message of a command or reply sequence.
pub const DMSGF_DELETE: u32 = 0x40000000;
/// The message travels in the reply direction.
pub const DMSGF_REPLY: u32 = 0x20000000;
/// Abort request.
pub const DMSGF_ABORT: u32 = 0x10000000;
/// Out-of-band aux data (never used).
pub const DMSGF_AUXOOB: u32 = 0x08000000;
/// Unused flag.
pub const DMSGF_FLAG2: u32 = 0x04000000;
/// Unused flag.
pub const DMSGF_FLAG1: u32 = 0x02000000;
/// Unused flag.
pub const DMSGF_FLAG0: u32 = 0x01000000;
/// All flag bits.
pub const DMSGF_FLAGS: u32 = 0xFF000000;
/// Protocol field.
pub const DMSGF_PROTOS: u32 = 0x00F00000;
/// Command field.
pub const DMSGF_CMDS: u32 = 0x000FFF00;
/// Extended header size field, in 64-byte units.
pub const DMSGF_SIZE: u32 = 0x000000FF;
/// `CMDS | SIZE | PROTOS | REPLY` (WIRE.md prints 0x200FFFFF; the C macro
/// and the formula give this value).
pub const DMSGF_CMDSWMASK: u32 = 0x20FFFFFF;
/// `CMDS | SIZE | PROTOS`: the base command.
pub const DMSGF_BASECMDMASK: u32 = 0x00FFFFFF;
/// `CMDS | SIZE | PROTOS | REPLY | CREATE | DELETE`.
pub const DMSGF_TRANSMASK: u32 = 0xE0FFFFFF;

/// Link protocol.
pub const DMSG_PROTO_LNK: u32 = 0x00000000;
/// Debug protocol.
pub const DMSG_PROTO_DBG: u32 = 0x00100000;
/// Domain protocol.
pub const DMSG_PROTO_DOM: u32 = 0x00200000;
/// Cache coherency protocol.
pub const DMSG_PROTO_CAC: u32 = 0x00300000;
/// Quorum protocol.
pub const DMSG_PROTO_QRM: u32 = 0x00400000;
/// Block device protocol.
pub const DMSG_PROTO_BLK: u32 = 0x00500000;
/// VFS protocol.
pub const DMSG_PROTO_VOP: u32 = 0x00600000;

/// `DMSG_LNK(0x000, dmsg_hdr)`.
pub const DMSG_LNK_PAD: u32 = 0x00000001;
/// `DMSG_LNK(0x001, dmsg_hdr)`.
pub const DMSG_LNK_PING: u32 = 0x00000101;
/// `DMSG_LNK(0x010, dmsg_lnk_auth)`.
pub const DMSG_LNK_AUTH: u32 = 0x00001002;
/// `DMSG_LNK(0x011, dmsg_lnk_conn)`.
pub const DMSG_LNK_CONN: u32 = 0x00001108;
/// `DMSG_LNK(0x012, dmsg_lnk_span)`.
pub const DMSG_LNK_SPAN: u32 = 0x00001207;
/// `DMSG_LNK(0x013, dmsg_lnk_circ)`.
pub const DMSG_LNK_CIRC: u32 = 0x00001302;
/// `DMSG_LNK(0x020, dmsg_lnk_volconf)`.
pub const DMSG_LNK_VOLCONF: u32 = 0x00002008;
/// `DMSG_LNK(0xFFF, dmsg_hdr)`.
pub const DMSG_LNK_ERROR: u32 = 0x000FFF01;
/// `DMSG_DBG(0x001, dmsg_dbg_shell)`.
pub const DMSG_DBG_SHELL: u32 = 0x00100101;
/// `DMSG_BLK(0x001, dmsg_blk_open)`.
pub const DMSG_BLK_OPEN: u32 = 0x00500102;
/// `DMSG_BLK(0x002, dmsg_blk_open)`.
pub const DMSG_BLK_CLOSE: u32 = 0x00500202;
/// `DMSG_BLK(0x003, dmsg_blk_read)`.
pub const DMSG_BLK_READ: u32 = 0x00500302;
/// `DMSG_BLK(0x004, dmsg_blk_write)`.
pub const DMSG_BLK_WRITE: u32 = 0x00500402;
/// `DMSG_BLK(0x005, dmsg_blk_flush)`.
pub const DMSG_BLK_FLUSH: u32 = 0x00500502;
/// `DMSG_BLK(0x006, dmsg_blk_freeblks)`.
pub const DMSG_BLK_FREEBLKS: u32 = 0x00500602;
/// `DMSG_BLK(0xFFF, dmsg_blk_error)`.
pub const DMSG_BLK_ERROR: u32 = 0x005FFF03;

/// Peer type: none.
pub const DMSG_PEER_NONE: u8 = 0;
/// Peer type: cluster controller.
pub const DMSG_PEER_CLUSTER: u8 = 1;
/// Peer type: block device.
pub const DMSG_PEER_BLOCK: u8 = 2;
/// Peer type: HAMMER2 mount.
pub const DMSG_PEER_HAMMER2: u8 = 3;

/// PFS type: none.
pub const DMSG_PFSTYPE_NONE: u8 = 0;
/// PFS type: administrative.
pub const DMSG_PFSTYPE_ADMIN: u8 = 1;
/// PFS type: client.
pub const DMSG_PFSTYPE_CLIENT: u8 = 2;
/// PFS type: server.
pub const DMSG_PFSTYPE_SERVER: u8 = 3;
/// Number of PFS types (0-15 for dmsg, 16-31 reserved by HAMMER2).
pub const DMSG_PFSTYPE_MAX: u8 = 32;

/// Wire error: not supported.
pub const DMSG_ERR_NOSUPP: u32 = 0x20;
/// Wire error: link lost.
pub const DMSG_ERR_LOSTLINK: u32 = 0x21;
/// Wire error: generic I/O error.
pub const DMSG_ERR_IO: u32 = 0x22;
/// Wire error: generic parameter error.
pub const DMSG_ERR_PARAM: u32 = 0x23;
/// Wire error: cannot build the circuit.
pub const DMSG_ERR_CANTCIRC: u32 = 0x24;

/// LNK_SPAN protocol version.
pub const DMSG_SPAN_PROTO_1: u32 = 1;

/// Number of volume configuration slots.
pub const DMSG_COPYID_COUNT: usize = 256;
/// `dmsg_vol_data.flags`: copy enabled.
pub const DMSG_VOLF_ENABLED: u16 = 0x0001;
/// `dmsg_vol_data.flags`: copy in progress.
pub const DMSG_VOLF_INPROG: u16 = 0x0002;
/// `dmsg_vol_data.priority`: round robin.
pub const DMSG_VOLF_CONN_RR: u8 = 0x80;
/// `dmsg_vol_data.priority`: EF.
pub const DMSG_VOLF_CONN_EF: u8 = 0x40;
/// `dmsg_vol_data.priority`: priority bits.
pub const DMSG_VOLF_CONN_PRI: u8 = 0x0F;

/// `dmsg_blk_open.modes`: read.
pub const DMSG_BLKOPEN_RD: u32 = 0x0001;
/// `dmsg_blk_open.modes`: write.
pub const DMSG_BLKOPEN_WR: u32 = 0x0002;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire_types::*;
    use core::mem::size_of;
    use dmsg::wire::{self, cmd};

    /// `DMSG_HDR_ENCODE`: the size bits a struct gives its command.
    fn encode(size: usize) -> u32 {
        u32::try_from(size.div_ceil(DMSG_ALIGN)).unwrap_or(u32::MAX)
    }

    #[test]
    fn commands_match_the_core_crate_and_the_struct_sizes() {
        let table = [
            (DMSG_LNK_PAD, cmd::LNK_PAD, size_of::<dmsg_hdr>()),
            (DMSG_LNK_PING, cmd::LNK_PING, size_of::<dmsg_hdr>()),
            (DMSG_LNK_AUTH, cmd::LNK_AUTH, size_of::<dmsg_lnk_auth>()),
            (DMSG_LNK_CONN, cmd::LNK_CONN, size_of::<dmsg_lnk_conn>()),
            (DMSG_LNK_SPAN, cmd::LNK_SPAN, size_of::<dmsg_lnk_span>()),
            (DMSG_LNK_CIRC, cmd::LNK_CIRC, size_of::<dmsg_lnk_circ>()),
            (
                DMSG_LNK_VOLCONF,
                cmd::LNK_VOLCONF,
                size_of::<dmsg_lnk_volconf>(),
            ),
            (DMSG_LNK_ERROR, cmd::LNK_ERROR, size_of::<dmsg_hdr>()),
            (DMSG_DBG_SHELL, cmd::DBG_SHELL, size_of::<dmsg_dbg_shell>()),
            (DMSG_BLK_OPEN, cmd::BLK_OPEN, size_of::<dmsg_blk_open>()),
            (DMSG_BLK_CLOSE, cmd::BLK_CLOSE, size_of::<dmsg_blk_open>()),
            (DMSG_BLK_READ, cmd::BLK_READ, size_of::<dmsg_blk_read>()),
            (DMSG_BLK_WRITE, cmd::BLK_WRITE, size_of::<dmsg_blk_write>()),
            (DMSG_BLK_FLUSH, cmd::BLK_FLUSH, size_of::<dmsg_blk_flush>()),
            (
                DMSG_BLK_FREEBLKS,
                cmd::BLK_FREEBLKS,
                size_of::<dmsg_blk_freeblks>(),
            ),
            (DMSG_BLK_ERROR, cmd::BLK_ERROR, size_of::<dmsg_blk_error>()),
        ];
        for (ours, core, size) in table {
            assert_eq!(ours, core, "{ours:#010x} != {core:#010x}");
            assert_eq!(ours & DMSGF_SIZE, encode(size), "{ours:#010x}");
        }
    }

    #[test]
    fn flags_and_masks_match_the_core_crate() {
        let table = [
            (DMSGF_CREATE, cmd::CREATE),
            (DMSGF_DELETE, cmd::DELETE),
            (DMSGF_REPLY, cmd::REPLY),
            (DMSGF_ABORT, cmd::ABORT),
            (DMSGF_AUXOOB, cmd::AUXOOB),
            (DMSGF_FLAG2, cmd::FLAG2),
            (DMSGF_FLAG1, cmd::FLAG1),
            (DMSGF_FLAG0, cmd::FLAG0),
            (DMSGF_FLAGS, cmd::FLAGS),
            (DMSGF_PROTOS, cmd::PROTOS),
            (DMSGF_CMDS, cmd::CMDS),
            (DMSGF_SIZE, cmd::SIZE),
            (DMSGF_CMDSWMASK, cmd::CMDSWMASK),
            (DMSGF_BASECMDMASK, cmd::BASECMDMASK),
            (DMSGF_TRANSMASK, cmd::TRANSMASK),
            (DMSG_PROTO_LNK, cmd::PROTO_LNK),
            (DMSG_PROTO_DBG, cmd::PROTO_DBG),
            (DMSG_PROTO_DOM, cmd::PROTO_DOM),
            (DMSG_PROTO_CAC, cmd::PROTO_CAC),
            (DMSG_PROTO_QRM, cmd::PROTO_QRM),
            (DMSG_PROTO_BLK, cmd::PROTO_BLK),
            (DMSG_PROTO_VOP, cmd::PROTO_VOP),
        ];
        for (ours, core) in table {
            assert_eq!(ours, core, "{ours:#010x} != {core:#010x}");
        }
    }

    #[test]
    fn sizes_and_errors_match_the_core_crate() {
        assert_eq!(DMSG_HDR_MAGIC, wire::MAGIC);
        assert_eq!(DMSG_HDR_MAGIC_REV, wire::MAGIC_REV);
        assert_eq!(DMSG_HDR_MAGIC_REV, DMSG_HDR_MAGIC.swap_bytes());
        assert_eq!(DMSG_ALIGN, wire::ALIGN);
        assert_eq!(DMSG_ALIGNMASK, wire::ALIGN_MASK);
        assert_eq!(DMSG_HDR_MAX, wire::HDR_MAX);
        assert_eq!(DMSG_HDR_MAX, size_of::<dmsg_any>());
        assert_eq!(DMSG_AUX_MAX, wire::AUX_MAX);
        assert_eq!(DMSG_BUF_SIZE, wire::BUF_SIZE);
        assert_eq!(DMSG_BUF_MASK, wire::BUF_MASK);
        assert_eq!(DMSG_HDR_CRCOFF, core::mem::offset_of!(dmsg_hdr, salt));
        assert_eq!(DMSG_HDR_CRCOFF + DMSG_HDR_CRCBYTES, size_of::<dmsg_hdr>());
        assert_eq!(DMSG_ERR_NOSUPP, wire::err::NOSUPP);
        assert_eq!(DMSG_ERR_LOSTLINK, wire::err::LOSTLINK);
        assert_eq!(DMSG_ERR_IO, wire::err::IO);
        assert_eq!(DMSG_ERR_PARAM, wire::err::PARAM);
        assert_eq!(DMSG_ERR_CANTCIRC, wire::err::CANTCIRC);
    }
}
