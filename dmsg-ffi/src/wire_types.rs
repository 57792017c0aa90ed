//! `#[repr(C)]` mirrors of the wire structs of WIRE.md §2 and §5, with the
//! C tag and member names of `<sys/dmsg.h>`.
//!
//! Every public type of this file goes to `include/sys/dmsg.h` (see the
//! routing table in `tools/gen-headers`). A struct keeps its C tag name
//! (`struct dmsg_hdr`), and the C typedef is a type alias with the `_t`
//! name (`typedef struct dmsg_hdr dmsg_hdr_t;`). Sizes and offsets are
//! checked at compile time at the end of this file, and again from C by
//! `c-tests/abi.c`.
#![allow(non_camel_case_types)]

use core::ffi::c_char;
use core::fmt;

/// The BSD `struct uuid` (16 bytes, host byte order): C `uuid_t`.
///
/// The header does not emit this struct from Rust: it is defined in a
/// guarded block of `sys/dmsg.h`, and members of this type are written as
/// `struct uuid` so that the layout never depends on what `uuid_t` means
/// on the including system.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Uuid {
    /// Low 32 bits of the time stamp.
    pub time_low: u32,
    /// Middle 16 bits of the time stamp.
    pub time_mid: u16,
    /// High 12 bits of the time stamp and the 4-bit version.
    pub time_hi_and_version: u16,
    /// Clock sequence high bits and the variant.
    pub clock_seq_hi_and_reserved: u8,
    /// Clock sequence low bits.
    pub clock_seq_low: u8,
    /// Node id.
    pub node: [u8; 6],
}

/// The 64-byte core message header (WIRE.md §2), in the sender's byte order.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct dmsg_hdr {
    /// `DMSG_HDR_MAGIC` in the sender's byte order.
    pub magic: u16,
    /// Reserved, 0.
    pub reserved02: u16,
    /// Low byte: per-direction sequence number; upper 24 bits: noise.
    pub salt: u32,
    /// Transaction id.
    pub msgid: u64,
    /// Virtual-circuit id, 0 for the link itself.
    pub circuit: u64,
    /// Reserved, 0.
    pub reserved18: u64,
    /// Flags, protocol, command and header size.
    pub cmd: u32,
    /// CRC-32C of the aligned aux data.
    pub aux_crc: u32,
    /// Unaligned aux data length.
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

/// `dmsg_hdr_t`.
pub type dmsg_hdr_t = dmsg_hdr;

/// `LNK_AUTH` body (defined, never sent by libdmsg). No typedef in C.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct dmsg_lnk_auth {
    /// Core header.
    pub head: dmsg_hdr_t,
    /// Unused.
    pub dummy: [c_char; 64],
}

/// `LNK_CONN` body, circuit-era layout (456 bytes, H = 512).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct dmsg_lnk_conn {
    /// Core header.
    pub head: dmsg_hdr_t,
    /// Media configuration id.
    pub mediaid: Uuid,
    /// Cluster (rendezvous) uuid.
    pub pfs_clid: Uuid,
    /// Unique PFS uuid.
    pub pfs_fsid: Uuid,
    /// Bit N set: relay SPANs whose peer_type is N.
    pub peer_mask: u64,
    /// `DMSG_PEER_*` of the sender.
    pub peer_type: u8,
    /// `DMSG_PFSTYPE_*` of the sender.
    pub pfs_type: u8,
    /// Protocol version, 0.
    pub proto_version: u16,
    /// Status, 0.
    pub status: u32,
    /// The node's generated RNSS (unused by libdmsg).
    pub rnss: u32,
    /// Reserved.
    pub reserved02: [u8; 8],
    /// Reserved.
    pub reserved03: [u32; 12],
    /// Bit N set: relay SPANs whose pfs_type is N.
    pub pfs_mask: u64,
    /// Cluster label filter.
    pub cl_label: [c_char; 128],
    /// PFS label.
    pub fs_label: [c_char; 128],
}

/// `dmsg_lnk_conn_t`.
pub type dmsg_lnk_conn_t = dmsg_lnk_conn;

/// Media description of a `PEER_BLOCK` span (16 bytes with tail padding).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct dmsg_media_block {
    /// Device size in bytes.
    pub bytes: u64,
    /// Block size in bytes.
    pub blksize: u32,
}

/// `dmsg_media_block_t`.
pub type dmsg_media_block_t = dmsg_media_block;

/// The `media` member of `struct dmsg_lnk_span` (56 bytes). C declares it
/// as an anonymous union type; it has a tag here, which changes nothing
/// for `span.media.block.bytes`.
#[repr(C)]
#[derive(Clone, Copy)]
pub union dmsg_lnk_span_media {
    /// Raw view.
    pub reserved03: [u32; 14],
    /// Block device description (`DMSG_PEER_BLOCK`).
    pub block: dmsg_media_block_t,
}

impl fmt::Debug for dmsg_lnk_span_media {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("dmsg_lnk_span_media { .. }")
    }
}

/// `LNK_SPAN` body (432 bytes, H = 448).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct dmsg_lnk_span {
    /// Core header.
    pub head: dmsg_hdr_t,
    /// Cluster id.
    pub pfs_clid: Uuid,
    /// Node id.
    pub pfs_fsid: Uuid,
    /// `DMSG_PFSTYPE_*`.
    pub pfs_type: u8,
    /// `DMSG_PEER_*`.
    pub peer_type: u8,
    /// Protocol version.
    pub proto_version: u16,
    /// Status.
    pub status: u32,
    /// Reserved.
    pub reserved02: [u8; 8],
    /// Hop distance, +1 per relay.
    pub dist: u32,
    /// Random-number sub-sort.
    pub rnss: u32,
    /// Media description.
    pub media: dmsg_lnk_span_media,
    /// Cluster label.
    pub cl_label: [c_char; 128],
    /// File system label.
    pub fs_label: [c_char; 128],
}

/// `dmsg_lnk_span_t`.
pub type dmsg_lnk_span_t = dmsg_lnk_span;

/// `LNK_CIRC` body (80 bytes, H = 128).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct dmsg_lnk_circ {
    /// Core header.
    pub head: dmsg_hdr_t,
    /// Reserved, 0.
    pub reserved01: u64,
    /// msgid of an open SPAN received over the same link.
    pub target: u64,
}

/// `dmsg_lnk_circ_t`.
pub type dmsg_lnk_circ_t = dmsg_lnk_circ;

/// One copy of a volume configuration (exactly 128 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct dmsg_vol_data {
    /// Copy id, equal to its slot index; 0 = unused.
    pub copyid: u8,
    /// In progress.
    pub inprog: u8,
    /// Chain to.
    pub chain_to: u8,
    /// Chain from.
    pub chain_from: u8,
    /// `DMSG_VOLF_*`.
    pub flags: u16,
    /// Error.
    pub error: u8,
    /// Priority and `DMSG_VOLF_CONN_*` bits.
    pub priority: u8,
    /// Remote PFS type.
    pub remote_pfs_type: u8,
    /// Reserved.
    pub reserved08: [u8; 23],
    /// Cluster id.
    pub pfs_clid: Uuid,
    /// Label.
    pub label: [u8; 16],
    /// Target spec, e.g. `span:<host>`.
    pub path: [u8; 64],
}

/// `dmsg_vol_data_t`.
pub type dmsg_vol_data_t = dmsg_vol_data;

/// `LNK_VOLCONF` body (472 bytes, H = 512).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct dmsg_lnk_volconf {
    /// Core header.
    pub head: dmsg_hdr_t,
    /// The copy being configured.
    pub copy: dmsg_vol_data_t,
    /// Slot index.
    pub index: i32,
    /// Unused.
    pub unused01: i32,
    /// Media configuration id.
    pub mediaid: Uuid,
    /// Reserved.
    pub reserved02: [i64; 32],
}

/// `dmsg_lnk_volconf_t`.
pub type dmsg_lnk_volconf_t = dmsg_lnk_volconf;

/// `DBG_SHELL` body: the header only; the text travels as aux data.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct dmsg_dbg_shell {
    /// Core header.
    pub head: dmsg_hdr_t,
}

/// `dmsg_dbg_shell_t`.
pub type dmsg_dbg_shell_t = dmsg_dbg_shell;

/// `BLK_OPEN` / `BLK_CLOSE` body (72 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct dmsg_blk_open {
    /// Core header.
    pub head: dmsg_hdr_t,
    /// `DMSG_BLKOPEN_*`.
    pub modes: u32,
    /// Reserved.
    pub reserved01: u32,
}

/// `dmsg_blk_open_t`.
pub type dmsg_blk_open_t = dmsg_blk_open;

/// `BLK_READ` body (96 bytes; also the layout of write, flush, freeblks).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct dmsg_blk_read {
    /// Core header.
    pub head: dmsg_hdr_t,
    /// Key id.
    pub keyid: u64,
    /// Byte offset.
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

/// `dmsg_blk_read_t`.
pub type dmsg_blk_read_t = dmsg_blk_read;

/// `BLK_WRITE` body (96 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct dmsg_blk_write {
    /// Core header.
    pub head: dmsg_hdr_t,
    /// Key id.
    pub keyid: u64,
    /// Byte offset.
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

/// `dmsg_blk_write_t`.
pub type dmsg_blk_write_t = dmsg_blk_write;

/// `BLK_FLUSH` body (96 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct dmsg_blk_flush {
    /// Core header.
    pub head: dmsg_hdr_t,
    /// Key id.
    pub keyid: u64,
    /// Byte offset.
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

/// `dmsg_blk_flush_t`.
pub type dmsg_blk_flush_t = dmsg_blk_flush;

/// `BLK_FREEBLKS` body (96 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct dmsg_blk_freeblks {
    /// Core header.
    pub head: dmsg_hdr_t,
    /// Key id.
    pub keyid: u64,
    /// Byte offset.
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

/// `dmsg_blk_freeblks_t`.
pub type dmsg_blk_freeblks_t = dmsg_blk_freeblks;

/// `BLK_ERROR` body (144 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct dmsg_blk_error {
    /// Core header.
    pub head: dmsg_hdr_t,
    /// Key id.
    pub keyid: u64,
    /// Residual byte count.
    pub resid: u32,
    /// Reserved.
    pub reserved02: u32,
    /// Error text.
    pub buf: [c_char; 64],
}

/// `dmsg_blk_error_t`.
pub type dmsg_blk_error_t = dmsg_blk_error;

/// Any extended header, `DMSG_HDR_MAX` (2048) bytes.
#[repr(C)]
#[derive(Clone, Copy)]
pub union dmsg_any {
    /// Raw bytes.
    pub buf: [c_char; 2048],
    /// Core header.
    pub head: dmsg_hdr_t,
    /// `LNK_CONN` body.
    pub lnk_conn: dmsg_lnk_conn_t,
    /// `LNK_SPAN` body.
    pub lnk_span: dmsg_lnk_span_t,
    /// `LNK_CIRC` body.
    pub lnk_circ: dmsg_lnk_circ_t,
    /// `LNK_VOLCONF` body (seed era).
    pub lnk_volconf: dmsg_lnk_volconf_t,
    /// `BLK_OPEN` body.
    pub blk_open: dmsg_blk_open_t,
    /// `BLK_ERROR` body.
    pub blk_error: dmsg_blk_error_t,
    /// `BLK_READ` body.
    pub blk_read: dmsg_blk_read_t,
    /// `BLK_WRITE` body.
    pub blk_write: dmsg_blk_write_t,
    /// `BLK_FLUSH` body.
    pub blk_flush: dmsg_blk_flush_t,
    /// `BLK_FREEBLKS` body.
    pub blk_freeblks: dmsg_blk_freeblks_t,
}

impl fmt::Debug for dmsg_any {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("dmsg_any { .. }")
    }
}

/// `dmsg_any_t`.
pub type dmsg_any_t = dmsg_any;

// Layout checks against WIRE.md (x86_64). The build fails if one is wrong.
macro_rules! check_layout {
    ($ty:ty, $size:expr $(, $field:ident @ $off:expr)* $(,)?) => {
        const _: () = assert!(core::mem::size_of::<$ty>() == $size);
        $(const _: () = assert!(core::mem::offset_of!($ty, $field) == $off);)*
    };
}

check_layout!(Uuid, 16, time_low @ 0, time_mid @ 4, time_hi_and_version @ 6,
    clock_seq_hi_and_reserved @ 8, clock_seq_low @ 9, node @ 10);
check_layout!(dmsg_hdr, 64, magic @ 0x00, reserved02 @ 0x02, salt @ 0x04,
    msgid @ 0x08, circuit @ 0x10, reserved18 @ 0x18, cmd @ 0x20, aux_crc @ 0x24,
    aux_bytes @ 0x28, error @ 0x2C, aux_descr @ 0x30, reserved38 @ 0x38,
    hdr_crc @ 0x3C);
check_layout!(dmsg_lnk_auth, 128, head @ 0, dummy @ 64);
check_layout!(dmsg_lnk_conn, 456, mediaid @ 64, pfs_clid @ 80, pfs_fsid @ 96,
    peer_mask @ 112, peer_type @ 120, pfs_type @ 121, proto_version @ 122,
    status @ 124, rnss @ 128, reserved02 @ 132, reserved03 @ 140,
    pfs_mask @ 192, cl_label @ 200, fs_label @ 328);
check_layout!(dmsg_media_block, 16, bytes @ 0, blksize @ 8);
check_layout!(dmsg_lnk_span_media, 56);
check_layout!(dmsg_lnk_span, 432, pfs_clid @ 64, pfs_fsid @ 80, pfs_type @ 96,
    peer_type @ 97, proto_version @ 98, status @ 100, reserved02 @ 104,
    dist @ 112, rnss @ 116, media @ 120, cl_label @ 176, fs_label @ 304);
check_layout!(dmsg_lnk_circ, 80, reserved01 @ 64, target @ 72);
check_layout!(dmsg_vol_data, 128, copyid @ 0x00, inprog @ 0x01, chain_to @ 0x02,
    chain_from @ 0x03, flags @ 0x04, error @ 0x06, priority @ 0x07,
    remote_pfs_type @ 0x08, reserved08 @ 0x09, pfs_clid @ 0x20, label @ 0x30,
    path @ 0x40);
check_layout!(dmsg_lnk_volconf, 472, copy @ 64, index @ 192, unused01 @ 196,
    mediaid @ 200, reserved02 @ 216);
check_layout!(dmsg_dbg_shell, 64, head @ 0);
check_layout!(dmsg_blk_open, 72, modes @ 64, reserved01 @ 68);
check_layout!(dmsg_blk_read, 96, keyid @ 64, offset @ 72, bytes @ 80, flags @ 84,
    reserved01 @ 88, reserved02 @ 92);
check_layout!(dmsg_blk_write, 96, keyid @ 64, offset @ 72, bytes @ 80);
check_layout!(dmsg_blk_flush, 96, keyid @ 64, offset @ 72, bytes @ 80);
check_layout!(dmsg_blk_freeblks, 96, keyid @ 64, offset @ 72, bytes @ 80);
check_layout!(dmsg_blk_error, 144, keyid @ 64, resid @ 72, reserved02 @ 76,
    buf @ 80);
check_layout!(dmsg_any, 2048);
