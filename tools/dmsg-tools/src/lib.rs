//! The command-line tools of dmsg: the node daemon `dmsgd` and the client
//! `dmsg` (shell, tree dump, local demo mesh, key generation). The library
//! part holds what both binaries and the tests share.
#![forbid(unsafe_code)]

pub mod client;
pub mod demo;
