//! The LNK globals of `<dmsg.h>`: `DMsgRNSS` and `dmsg_node_handler`.
//!
//! Not routed to a header by `tools/gen-headers`: their Rust types are
//! atomics, so the header declares them verbatim (with their C types,
//! which have the same layout). Used by `lnk.rs`.
#![allow(non_upper_case_globals)]

use core::ffi::c_void;
use core::ptr;
use std::sync::atomic::{AtomicPtr, AtomicU32};

/// The rnss of the default node (C: `uint32_t DMsgRNSS`), added to the
/// rnss of every span it relays. Set it before the first LNK use; if it is
/// still 0 then, a random non-zero value is chosen and stored here.
#[no_mangle]
pub static DMsgRNSS: AtomicU32 = AtomicU32::new(0);

/// The node handler (C: `void (*dmsg_node_handler)(void **opaquep,
/// struct dmsg_msg *msg, int op)`, NULL by default): called when a node
/// appears (`DMSG_NODEOP_ADD`) or goes away (`DMSG_NODEOP_DEL`) in any
/// node of the process, outside every library lock. `opaquep` points to
/// the node's opaque slot (NULL on ADD; what the handler stores there is
/// kept and handed back on DEL); `msg` holds the span that created the
/// node (`msg->any.lnk_span`; `msg->iocom`, `circuit` and `state` are
/// NULL) and is freed when the handler returns. It has the layout of a
/// C function pointer; C code assigns it directly.
#[no_mangle]
pub static dmsg_node_handler: AtomicPtr<c_void> = AtomicPtr::new(ptr::null_mut());
