//! The C ABI of dmsg: builds `libdmsg.so` and `libdmsg.a`, a drop-in
//! replacement for the seed-era `libdmsg`. All unsafe code of the project
//! lives in this crate.
//!
//! Each module is routed to one C header by `tools/gen-headers`:
//! `wire_types` and `wire_consts` to `include/sys/dmsg.h`; `lib_consts`,
//! `handshake` and `crc` to `include/dmsg.h`.
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod crc;
pub mod handshake;
pub mod lib_consts;
pub mod wire_consts;
pub mod wire_types;
