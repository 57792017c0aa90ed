//! The 32-bit `cmd` word of WIRE.md §3: flags, protocol, command and
//! extended-header size.
//!
//! ```text
//!  31 30 29 28 27 26 25 24 | 23..20 | 19.........8 | 7........0
//!   C  D  R  A  X  F2 F1 F0 | proto  | command(12b) | hdr size /64
//! ```

/// First message of a command or reply sequence; opens a transaction.
pub const CREATE: u32 = 0x8000_0000;
/// Last message of a command or reply sequence.
pub const DELETE: u32 = 0x4000_0000;
/// The message travels in the reply direction.
pub const REPLY: u32 = 0x2000_0000;
/// Abort request.
pub const ABORT: u32 = 0x1000_0000;
/// Aux data is out of band (never used).
pub const AUXOOB: u32 = 0x0800_0000;
/// Unused flag bit 2.
pub const FLAG2: u32 = 0x0400_0000;
/// Unused flag bit 1.
pub const FLAG1: u32 = 0x0200_0000;
/// Unused flag bit 0.
pub const FLAG0: u32 = 0x0100_0000;
/// All flag bits.
pub const FLAGS: u32 = 0xFF00_0000;
/// The protocol field.
pub const PROTOS: u32 = 0x00F0_0000;
/// The command field.
pub const CMDS: u32 = 0x000F_FF00;
/// The extended-header size field, in units of 64 bytes.
pub const SIZE: u32 = 0x0000_00FF;
/// `CMDS | SIZE | PROTOS | REPLY`.
pub const CMDSWMASK: u32 = CMDS | SIZE | PROTOS | REPLY;
/// `CMDS | SIZE | PROTOS`: the base command of a transaction (`icmd`).
pub const BASECMDMASK: u32 = CMDS | SIZE | PROTOS;
/// `CMDS | SIZE | PROTOS | REPLY | CREATE | DELETE`.
pub const TRANSMASK: u32 = CMDS | SIZE | PROTOS | REPLY | CREATE | DELETE;

/// Link protocol.
pub const PROTO_LNK: u32 = 0x0000_0000;
/// Debug shell protocol.
pub const PROTO_DBG: u32 = 0x0010_0000;
/// Domain protocol (unused).
pub const PROTO_DOM: u32 = 0x0020_0000;
/// Cache coherency protocol (unused).
pub const PROTO_CAC: u32 = 0x0030_0000;
/// Quorum protocol (unused).
pub const PROTO_QRM: u32 = 0x0040_0000;
/// Block device protocol.
pub const PROTO_BLK: u32 = 0x0050_0000;
/// VFS protocol (unused).
pub const PROTO_VOP: u32 = 0x0060_0000;

/// Builds a command value: `proto | code << 8 | ceil(struct_size / 64)`.
pub const fn make(proto: u32, code: u32, struct_size: usize) -> u32 {
    proto | (code << 8) | (struct_size as u32).div_ceil(64)
}

/// Padding message.
pub const LNK_PAD: u32 = make(PROTO_LNK, 0x000, 64);
/// Ping.
pub const LNK_PING: u32 = make(PROTO_LNK, 0x001, 64);
/// Authentication (defined, never sent).
pub const LNK_AUTH: u32 = make(PROTO_LNK, 0x010, 128);
/// Connection identification.
pub const LNK_CONN: u32 = make(PROTO_LNK, 0x011, 456);
/// Span advertisement.
pub const LNK_SPAN: u32 = make(PROTO_LNK, 0x012, 432);
/// Virtual circuit.
pub const LNK_CIRC: u32 = make(PROTO_LNK, 0x013, 80);
/// Volume configuration (seed era).
pub const LNK_VOLCONF: u32 = make(PROTO_LNK, 0x020, 472);
/// Error / result / return.
pub const LNK_ERROR: u32 = make(PROTO_LNK, 0xFFF, 64);
/// Debug shell line.
pub const DBG_SHELL: u32 = make(PROTO_DBG, 0x001, 64);
/// Block device open.
pub const BLK_OPEN: u32 = make(PROTO_BLK, 0x001, 72);
/// Block device close.
pub const BLK_CLOSE: u32 = make(PROTO_BLK, 0x002, 72);
/// Block read.
pub const BLK_READ: u32 = make(PROTO_BLK, 0x003, 96);
/// Block write.
pub const BLK_WRITE: u32 = make(PROTO_BLK, 0x004, 96);
/// Block flush.
pub const BLK_FLUSH: u32 = make(PROTO_BLK, 0x005, 96);
/// Block free.
pub const BLK_FREEBLKS: u32 = make(PROTO_BLK, 0x006, 96);
/// Block error.
pub const BLK_ERROR: u32 = make(PROTO_BLK, 0xFFF, 144);

/// The extended-header size `H` in bytes that a `cmd` word announces
/// (`(cmd & 0xFF) * 64`; may be out of the legal range 64..=2048).
pub const fn header_size(cmd: u32) -> usize {
    ((cmd & SIZE) as usize) * super::ALIGN
}

/// The base command (`cmd & BASECMDMASK`).
pub const fn base(cmd: u32) -> u32 {
    cmd & BASECMDMASK
}

/// The protocol field (`cmd & PROTOS`).
pub const fn proto(cmd: u32) -> u32 {
    cmd & PROTOS
}

/// The protocol prefix of a debug name, `"LNK_"` etc.; hex for protocols
/// that have no name.
fn proto_prefix(cmd: u32) -> String {
    let name = match proto(cmd) {
        PROTO_LNK => "LNK",
        PROTO_DBG => "DBG",
        PROTO_DOM => "DOM",
        PROTO_CAC => "CAC",
        PROTO_QRM => "QRM",
        PROTO_BLK => "BLK",
        PROTO_VOP => "VOP",
        other => return format!("{:x}_", other >> 20),
    };
    format!("{name}_")
}

/// The name debug output gives the base command of `cmd`, as the C
/// library's `dmsg_basecmd_str` does: `"LNK_CONN"`, `"LNK_SPAN"`,
/// `"LNK_CIRC"`, `"DBG_SHELL"`, and for `LNK_ERROR` `"LNK_RETURN"` when
/// `DELETE` is set, else `"LNK_RESULT"`. The whole base command counts,
/// size bits included; one without a name prints as its protocol prefix
/// and six hex digits of `cmd & BASECMDMASK` (e.g. `"LNK_001109"`).
pub fn basecmd_str(cmd: u32) -> String {
    let name = match base(cmd) {
        LNK_PAD => "PAD",
        LNK_PING => "PING",
        LNK_AUTH => "AUTH",
        LNK_CONN => "CONN",
        LNK_SPAN => "SPAN",
        LNK_CIRC => "CIRC",
        LNK_VOLCONF => "VOLCONF",
        LNK_ERROR if cmd & DELETE != 0 => "RETURN",
        LNK_ERROR => "RESULT",
        DBG_SHELL => "SHELL",
        BLK_OPEN => "OPEN",
        BLK_CLOSE => "CLOSE",
        BLK_READ => "READ",
        BLK_WRITE => "WRITE",
        BLK_FLUSH => "FLUSH",
        BLK_FREEBLKS => "FREEBLKS",
        BLK_ERROR => "ERROR",
        other => return format!("{}{:06x}", proto_prefix(cmd), other),
    };
    format!("{}{name}", proto_prefix(cmd))
}

/// The transaction flags of `cmd` as `"|CREATE|DELETE|REPLY|ABORT"` (only
/// those set, in that order; empty when none is).
pub fn flags_str(cmd: u32) -> String {
    let mut s = String::new();
    for (bit, name) in [
        (CREATE, "|CREATE"),
        (DELETE, "|DELETE"),
        (REPLY, "|REPLY"),
        (ABORT, "|ABORT"),
    ] {
        if cmd & bit != 0 {
            s.push_str(name);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_names() {
        assert_eq!(basecmd_str(LNK_CONN | CREATE), "LNK_CONN");
        assert_eq!(basecmd_str(LNK_SPAN | CREATE | DELETE), "LNK_SPAN");
        assert_eq!(basecmd_str(LNK_CIRC), "LNK_CIRC");
        assert_eq!(basecmd_str(DBG_SHELL | REPLY), "DBG_SHELL");
        assert_eq!(basecmd_str(LNK_ERROR | REPLY | CREATE), "LNK_RESULT");
        assert_eq!(basecmd_str(LNK_ERROR | DELETE), "LNK_RETURN");
        assert_eq!(basecmd_str(BLK_FREEBLKS), "BLK_FREEBLKS");
        assert_eq!(basecmd_str(LNK_CONN + 1), "LNK_001109");
        assert_eq!(basecmd_str(0x00A0_0101 | CREATE), "a_a00101");
        assert_eq!(
            flags_str(LNK_ERROR | CREATE | DELETE | REPLY),
            "|CREATE|DELETE|REPLY"
        );
        assert_eq!(flags_str(ABORT | LNK_PING), "|ABORT");
        assert_eq!(flags_str(LNK_PING), "");
    }

    #[test]
    fn command_values_match_the_spec_table() {
        let table = [
            (LNK_PAD, 0x0000_0001),
            (LNK_PING, 0x0000_0101),
            (LNK_AUTH, 0x0000_1002),
            (LNK_CONN, 0x0000_1108),
            (LNK_SPAN, 0x0000_1207),
            (LNK_CIRC, 0x0000_1302),
            (LNK_VOLCONF, 0x0000_2008),
            (LNK_ERROR, 0x000F_FF01),
            (DBG_SHELL, 0x0010_0101),
            (BLK_OPEN, 0x0050_0102),
            (BLK_CLOSE, 0x0050_0202),
            (BLK_READ, 0x0050_0302),
            (BLK_WRITE, 0x0050_0402),
            (BLK_FLUSH, 0x0050_0502),
            (BLK_FREEBLKS, 0x0050_0602),
            (BLK_ERROR, 0x005F_FF03),
        ];
        for (got, want) in table {
            assert_eq!(got, want, "{got:#010x} != {want:#010x}");
        }
        // WIRE.md §3 prints 0x200FFFFF, but its own definition
        // (CMDS | SIZE | PROTOS | REPLY), which is the C macro, gives this.
        assert_eq!(CMDSWMASK, 0x20FF_FFFF);
        assert_eq!(BASECMDMASK, 0x00FF_FFFF);
        assert_eq!(TRANSMASK, 0xE0FF_FFFF);
    }

    #[test]
    fn header_sizes() {
        assert_eq!(header_size(LNK_CONN), 512);
        assert_eq!(header_size(LNK_SPAN), 448);
        assert_eq!(header_size(LNK_ERROR | CREATE | REPLY), 64);
    }
}
