//! The C ABI of dmsg: builds `libdmsg.so` and `libdmsg.a`, a drop-in
//! replacement for the seed-era `libdmsg`. All unsafe code of the project
//! lives in this crate.
//!
//! Each module is routed to one C header by `tools/gen-headers`:
//! `wire_types` and `wire_consts` to `include/sys/dmsg.h`; `lib_consts`,
//! `handshake`, `crc`, `types`, `iocom`, `msg`, `circuit`, `debug`, `subs`,
//! `lnk`, `service` and `crypto` to `include/dmsg.h`. `mirror` (the library's private
//! state of an iocom and the `dmsg_state` mirrors) and `globals` (atomics
//! declared verbatim in the header) are not routed.
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod circuit;
pub mod crc;
pub mod crypto;
pub mod debug;
pub mod globals;
pub mod handshake;
pub mod iocom;
pub mod lib_consts;
pub mod lnk;
pub mod mirror;
pub mod msg;
pub mod service;
pub mod subs;
pub mod types;
pub mod wire_consts;
pub mod wire_types;
