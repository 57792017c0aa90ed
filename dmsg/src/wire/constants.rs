//! The protocol constants of WIRE.md §6 that message bodies carry: peer
//! and PFS types, volume-configuration flags, BLK open modes, span and node
//! constants. (Error codes are in [`super::err`] and [`super::ioq_error`].)

/// `DMSG_PEER_NONE`.
pub const PEER_NONE: u8 = 0;
/// `DMSG_PEER_CLUSTER`: a cluster controller (the service daemon).
pub const PEER_CLUSTER: u8 = 1;
/// `DMSG_PEER_BLOCK`: a block device.
pub const PEER_BLOCK: u8 = 2;
/// `DMSG_PEER_HAMMER2`: a HAMMER2 mount.
pub const PEER_HAMMER2: u8 = 3;

/// `DMSG_PFSTYPE_NONE` (circuit-era numbering).
pub const PFSTYPE_NONE: u8 = 0;
/// `DMSG_PFSTYPE_ADMIN`.
pub const PFSTYPE_ADMIN: u8 = 1;
/// `DMSG_PFSTYPE_CLIENT`.
pub const PFSTYPE_CLIENT: u8 = 2;
/// `DMSG_PFSTYPE_SERVER`.
pub const PFSTYPE_SERVER: u8 = 3;
/// `DMSG_PFSTYPE_MAX`: 0-15 belong to dmsg, 16-31 are reserved for hammer2.
pub const PFSTYPE_MAX: u8 = 32;

/// `DMSG_SPAN_MAXDIST`: spans farther than this are not relayed.
pub const SPAN_MAXDIST: u32 = 16;
/// `DMSG_SPAN_PROTO_1`: the span protocol version.
pub const SPAN_PROTO_1: u16 = 1;
/// `DMSG_COPYID_COUNT`: slots of a volume configuration.
pub const COPYID_COUNT: usize = 256;

/// `DMSG_VOLF_ENABLED` (`dmsg_vol_data.flags`).
pub const VOLF_ENABLED: u16 = 0x0001;
/// `DMSG_VOLF_INPROG` (`dmsg_vol_data.flags`).
pub const VOLF_INPROG: u16 = 0x0002;
/// `DMSG_VOLF_CONN_RR` (`dmsg_vol_data.priority`): round robin.
pub const VOLF_CONN_RR: u8 = 0x80;
/// `DMSG_VOLF_CONN_EF` (`dmsg_vol_data.priority`): media errors flagged.
pub const VOLF_CONN_EF: u8 = 0x40;
/// `DMSG_VOLF_CONN_PRI` (`dmsg_vol_data.priority`): the priority bits.
pub const VOLF_CONN_PRI: u8 = 0x0F;

/// `DMSG_BLKOPEN_RD`.
pub const BLKOPEN_RD: u32 = 0x0001;
/// `DMSG_BLKOPEN_WR`.
pub const BLKOPEN_WR: u32 = 0x0002;

/// `DMSG_NODEOP_ADD`: a node appeared (node handler operation).
pub const NODEOP_ADD: i32 = 1;
/// `DMSG_NODEOP_DEL`: a node went away.
pub const NODEOP_DEL: i32 = 2;

/// `DMSG_DEFAULT_DIR`: where key files live.
pub const DEFAULT_DIR: &str = "/etc/hammer2";
/// `DMSG_PATH_REMOTE`: where peers' public keys live.
pub const PATH_REMOTE: &str = "/etc/hammer2/remote";

/// The name of a peer type as `dmsg_peer_type_to_str` gives it.
pub fn peer_type_str(peer_type: u8) -> &'static str {
    match peer_type {
        PEER_NONE => "NONE",
        PEER_CLUSTER => "CLUSTER",
        PEER_BLOCK => "BLOCK",
        PEER_HAMMER2 => "HAMMER2",
        _ => "?PEERTYPE?",
    }
}

/// The name of a (circuit-era) PFS type.
pub fn pfs_type_str(pfs_type: u8) -> &'static str {
    match pfs_type {
        PFSTYPE_NONE => "NONE",
        PFSTYPE_ADMIN => "ADMIN",
        PFSTYPE_CLIENT => "CLIENT",
        PFSTYPE_SERVER => "SERVER",
        _ => "?PFSTYPE?",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(peer_type_str(PEER_HAMMER2), "HAMMER2");
        assert_eq!(peer_type_str(9), "?PEERTYPE?");
        assert_eq!(pfs_type_str(PFSTYPE_SERVER), "SERVER");
        assert_eq!(pfs_type_str(PFSTYPE_MAX), "?PFSTYPE?");
    }
}
