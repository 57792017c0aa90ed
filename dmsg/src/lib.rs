//! # dmsg
//!
//! A Rust implementation of DragonFly BSD's `libdmsg`, the cluster messaging
//! library of the HAMMER2 file system.
//!
//! Layers, bottom up:
//! - [`wire`]: bytes on the wire (headers, bodies, CRCs, framing).
//! - [`state`]: the transaction rules.
//! - [`link`]: one connection, sans I/O: transactions, circuits, queues.
//! - [`runtime`]: the driver that runs a link over a real fd, and the
//!   thread-and-channel API on top of it.
//! - [`service`]: a node over real connections: the master service, the
//!   DBG shell protocol, TCP connect and listen.
#![forbid(unsafe_code)]
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod crypto;
pub mod link;
pub mod lnk;
pub mod runtime;
pub mod service;
pub mod sim;
pub mod state;
pub mod wire;
