//! The C ABI of dmsg: builds `libdmsg.so` and `libdmsg.a`, a drop-in
//! replacement for the seed-era `libdmsg`. All unsafe code of the project
//! lives in this crate.
