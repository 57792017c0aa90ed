//! The crypto handshake block `struct dmsg_handshake` (WIRE.md §7.2), which
//! C declares in the library header `<dmsg.h>`.
//!
//! Every public type of this file goes to `include/dmsg.h`.
#![allow(non_camel_case_types)]

use core::ffi::c_char;

/// The 512-byte block each side encrypts and sends during negotiation.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct dmsg_handshake {
    /// Random; byte 0 masked with 0x3F, bytes 4..7 a tweak counter.
    pub pad1: [c_char; 8],
    /// `DMSG_HDR_MAGIC` in host order.
    pub magic: u16,
    /// Handshake version, 1.
    pub version: u16,
    /// Flags, 0.
    pub flags: u32,
    /// Random session material (key and fixed IV part).
    pub sess: [u8; 64],
    /// `verf[k]` is the XOR of `sess[4k..4k+4]`.
    pub verf: [u8; 16],
    /// Greeting text, NUL terminated.
    pub quickmsg: [c_char; 32],
    /// Random filler.
    pub junk080: [c_char; 128],
    /// Random; byte 0 masked with 0x3F, bytes 4..7 a tweak counter.
    pub pad2: [c_char; 8],
    /// Random filler.
    pub junk100: [c_char; 248],
}

/// `dmsg_handshake_t`.
pub type dmsg_handshake_t = dmsg_handshake;

const _: () = assert!(core::mem::size_of::<dmsg_handshake>() == 512);
const _: () = assert!(core::mem::align_of::<dmsg_handshake>() == 4);
const _: () = assert!(core::mem::offset_of!(dmsg_handshake, magic) == 0x008);
const _: () = assert!(core::mem::offset_of!(dmsg_handshake, version) == 0x00A);
const _: () = assert!(core::mem::offset_of!(dmsg_handshake, flags) == 0x00C);
const _: () = assert!(core::mem::offset_of!(dmsg_handshake, sess) == 0x010);
const _: () = assert!(core::mem::offset_of!(dmsg_handshake, verf) == 0x050);
const _: () = assert!(core::mem::offset_of!(dmsg_handshake, quickmsg) == 0x060);
const _: () = assert!(core::mem::offset_of!(dmsg_handshake, junk080) == 0x080);
const _: () = assert!(core::mem::offset_of!(dmsg_handshake, pad2) == 0x100);
const _: () = assert!(core::mem::offset_of!(dmsg_handshake, junk100) == 0x108);
