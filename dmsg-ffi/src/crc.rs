//! `dmsg_icrc32`, `dmsg_icrc32c` and `dmsg_bswap_head` (C-ABI.md §4,
//! icrc.c and msg.c). Declared in `include/dmsg.h`.

use crate::wire_types::dmsg_hdr_t;
use core::ffi::c_void;
use dmsg::wire::{crc, Header};

/// Views `size` bytes at `buf` as a slice; `None` for a null pointer or a
/// size no object can have (more than `isize::MAX` bytes).
///
/// # Safety
/// When `buf` is not null and `size <= isize::MAX`, `buf` must point to
/// `size` readable bytes that stay unchanged for `'a`.
unsafe fn bytes<'a>(buf: *const c_void, size: usize) -> Option<&'a [u8]> {
    if buf.is_null() || isize::try_from(size).is_err() {
        return None;
    }
    // SAFETY: not null and size fits isize (checked above); the caller
    // guarantees that `size` bytes at `buf` are readable for 'a.
    Some(unsafe { core::slice::from_raw_parts(buf.cast::<u8>(), size) })
}

/// CRC-32C (Castagnoli) of `size` bytes at `buf`; "123456789" gives
/// 0xE3069283.
///
/// A null `buf`, or a `size` above `PTRDIFF_MAX`, counts as no data:
/// the result is then the CRC of zero bytes, 0.
///
/// # Safety
/// When `buf` is not null it must point to `size` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn dmsg_icrc32(buf: *const c_void, size: usize) -> u32 {
    // SAFETY: forwarded from this function's contract.
    let data = unsafe { bytes(buf, size) };
    crc::crc32c(data.unwrap_or(&[]))
}

/// Continues a CRC-32C: `dmsg_icrc32c(b, n, dmsg_icrc32(a, m))` equals the
/// CRC of `a` followed by `b`, and `dmsg_icrc32c(b, n, 0)` equals
/// `dmsg_icrc32(b, n)`.
///
/// A null `buf`, or a `size` above `PTRDIFF_MAX`, counts as no data: `crc`
/// is returned unchanged.
///
/// # Safety
/// When `buf` is not null it must point to `size` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn dmsg_icrc32c(buf: *const c_void, size: usize, crc: u32) -> u32 {
    // SAFETY: forwarded from this function's contract.
    let data = unsafe { bytes(buf, size) };
    crc::crc32c_append(crc, data.unwrap_or(&[]))
}

/// Reverses the byte order of every field of the 64-byte core header at
/// `head`, in place (what a receiver does after seeing
/// `DMSG_HDR_MAGIC_REV`). The extended header after it is not touched.
/// A null `head` is ignored.
///
/// # Safety
/// When `head` is not null it must point to a writable `dmsg_hdr_t`
/// (any alignment) that no other thread accesses during the call.
#[no_mangle]
pub unsafe extern "C" fn dmsg_bswap_head(head: *mut dmsg_hdr_t) {
    if head.is_null() {
        return;
    }
    // SAFETY: not null; the caller guarantees a readable dmsg_hdr_t. Every
    // bit pattern is a valid dmsg_hdr_t (integers only).
    let raw = unsafe { head.read_unaligned() };
    let mut h = to_header(&raw);
    h.swap_bytes();
    // SAFETY: same pointer, writable per the caller's contract.
    unsafe { head.write_unaligned(from_header(&h)) };
}

/// The repr(C) header as the core crate's `Header` (same fields).
fn to_header(r: &dmsg_hdr_t) -> Header {
    Header {
        magic: r.magic,
        reserved02: r.reserved02,
        salt: r.salt,
        msgid: r.msgid,
        circuit: r.circuit,
        reserved18: r.reserved18,
        cmd: r.cmd,
        aux_crc: r.aux_crc,
        aux_bytes: r.aux_bytes,
        error: r.error,
        aux_descr: r.aux_descr,
        reserved38: r.reserved38,
        hdr_crc: r.hdr_crc,
    }
}

/// The core crate's `Header` as the repr(C) header.
fn from_header(h: &Header) -> dmsg_hdr_t {
    dmsg_hdr_t {
        magic: h.magic,
        reserved02: h.reserved02,
        salt: h.salt,
        msgid: h.msgid,
        circuit: h.circuit,
        reserved18: h.reserved18,
        cmd: h.cmd,
        aux_crc: h.aux_crc,
        aux_bytes: h.aux_bytes,
        error: h.error,
        aux_descr: h.aux_descr,
        reserved38: h.reserved38,
        hdr_crc: h.hdr_crc,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::ptr;

    fn crc32(data: &[u8]) -> u32 {
        // SAFETY: a live slice.
        unsafe { dmsg_icrc32(data.as_ptr().cast(), data.len()) }
    }

    fn crc32c(data: &[u8], crc: u32) -> u32 {
        // SAFETY: a live slice.
        unsafe { dmsg_icrc32c(data.as_ptr().cast(), data.len(), crc) }
    }

    #[test]
    fn check_value_and_continuation() {
        assert_eq!(crc32(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b"56789", crc32(b"1234")), 0xE306_9283);
        assert_eq!(crc32c(b"123456789", 0), 0xE306_9283);
    }

    #[test]
    fn null_and_oversized_buffers_are_empty() {
        // SAFETY: null pointers are documented as "no data".
        unsafe {
            assert_eq!(dmsg_icrc32(ptr::null(), 9), 0);
            assert_eq!(dmsg_icrc32c(ptr::null(), 9, 0x1234_5678), 0x1234_5678);
        }
        let b = [0u8; 4];
        // SAFETY: the size is above isize::MAX and so documented as no data;
        // the pointer is never read.
        unsafe {
            assert_eq!(dmsg_icrc32(b.as_ptr().cast(), usize::MAX), 0);
            assert_eq!(dmsg_icrc32c(b.as_ptr().cast(), usize::MAX, 7), 7);
        }
    }

    #[test]
    fn bswap_head_swaps_every_field_and_is_an_involution() {
        let orig = dmsg_hdr_t {
            magic: 0x4832,
            reserved02: 0x0102,
            salt: 0x5a3c_1e00,
            msgid: 0x0000_0008_01c1_7000,
            circuit: 0x1122_3344_5566_7788,
            reserved18: 0x0a0b_0c0d_0e0f_1011,
            cmd: 0x8000_1108,
            aux_crc: 0xB1E3_FFE0,
            aux_bytes: 5,
            error: 0x21,
            aux_descr: 0x0102_0304_0506_0708,
            reserved38: 0xdead_beef,
            hdr_crc: 0xAE2B_B120,
        };
        let mut h = orig;
        // SAFETY: a live local.
        unsafe { dmsg_bswap_head(&mut h) };
        assert_eq!(h.magic, 0x3248);
        assert_eq!(h.reserved02, 0x0201);
        assert_eq!(h.salt, 0x001e_3c5a);
        assert_eq!(h.msgid, 0x0070_c101_0800_0000);
        assert_eq!(h.circuit, 0x8877_6655_4433_2211);
        assert_eq!(h.reserved18, 0x1110_0f0e_0d0c_0b0a);
        assert_eq!(h.cmd, 0x0811_0080);
        assert_eq!(h.aux_crc, 0xE0FF_E3B1);
        assert_eq!(h.aux_bytes, 0x0500_0000);
        assert_eq!(h.error, 0x2100_0000);
        assert_eq!(h.aux_descr, 0x0807_0605_0403_0201);
        assert_eq!(h.reserved38, 0xefbe_adde);
        assert_eq!(h.hdr_crc, 0x20B1_2BAE);
        // SAFETY: a live local.
        unsafe { dmsg_bswap_head(&mut h) };
        assert_eq!(h, orig);
        // SAFETY: null is documented as ignored.
        unsafe { dmsg_bswap_head(ptr::null_mut()) };
    }
}
