//! The helpers of `<dmsg.h>` (C-ABI.md §4, subs.c): `dmsg_alloc`,
//! `dmsg_free`, `dmsg_uuid_to_str`, `dmsg_peer_type_to_str` and
//! `dmsg_pfs_type_to_str`.

use crate::mirror::malloc_str;
use crate::wire_types::Uuid;
use core::ffi::{c_char, c_void, CStr};
use dmsg::wire::constants::{peer_type_str, pfs_type_str};

/// Allocates `bytes` zeroed bytes (at least one); free with `dmsg_free`
/// (or `free`). Returns NULL when out of memory (the original asserts).
#[no_mangle]
pub extern "C" fn dmsg_alloc(bytes: usize) -> *mut c_void {
    // SAFETY: calloc has no preconditions.
    unsafe { libc::calloc(1, bytes.max(1)) }
}

/// Frees memory of `dmsg_alloc`. NULL is ignored.
///
/// # Safety
/// `ptr` is NULL or came from `dmsg_alloc` (or malloc) and is not used
/// after.
#[no_mangle]
pub unsafe extern "C" fn dmsg_free(ptr: *mut c_void) {
    // SAFETY: per the contract.
    unsafe { libc::free(ptr) }
}

/// Formats `uuid` as `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` into a new
/// malloc'd string stored in `*strp` (the previous `*strp`, if not NULL,
/// is freed) and returns it. Returns NULL, changing nothing, if `uuid` or
/// `strp` is NULL; NULL in `*strp` when out of memory.
///
/// # Safety
/// `uuid` is NULL or readable; `strp` is NULL or points to NULL or a
/// malloc'd string.
#[no_mangle]
pub unsafe extern "C" fn dmsg_uuid_to_str(
    uuid: *const Uuid,
    strp: *mut *mut c_char,
) -> *const c_char {
    if uuid.is_null() || strp.is_null() {
        return core::ptr::null();
    }
    // SAFETY: readable per the contract (any alignment).
    let u = unsafe { uuid.read_unaligned() };
    let text = dmsg::wire::Uuid::from_fields(
        u.time_low,
        u.time_mid,
        u.time_hi_and_version,
        u.clock_seq_hi_and_reserved,
        u.clock_seq_low,
        u.node,
    )
    .to_string();
    let s = malloc_str(&text);
    // SAFETY: `*strp` is NULL or malloc'd per the contract.
    unsafe {
        libc::free((*strp).cast::<c_void>());
        *strp = s;
    }
    s
}

/// A static C string with the same text as `s` (one of the names below).
fn static_name(s: &str, names: &[&'static CStr], unknown: &'static CStr) -> *const c_char {
    names
        .iter()
        .find(|n| n.to_bytes() == s.as_bytes())
        .copied()
        .unwrap_or(unknown)
        .as_ptr()
}

/// The name of a peer type: "NONE", "CLUSTER", "BLOCK", "HAMMER2", or
/// "?PEERTYPE?". A static string.
#[no_mangle]
pub extern "C" fn dmsg_peer_type_to_str(type_: u8) -> *const c_char {
    static_name(
        peer_type_str(type_),
        &[c"NONE", c"CLUSTER", c"BLOCK", c"HAMMER2"],
        c"?PEERTYPE?",
    )
}

/// The name of a PFS type: "NONE", "ADMIN", "CLIENT", "SERVER", or
/// "?PFSTYPE?". A static string.
#[no_mangle]
pub extern "C" fn dmsg_pfs_type_to_str(type_: u8) -> *const c_char {
    static_name(
        pfs_type_str(type_),
        &[c"NONE", c"ADMIN", c"CLIENT", c"SERVER"],
        c"?PFSTYPE?",
    )
}
