//! CRC-32C (Castagnoli), as WIRE.md §4 specifies for `hdr_crc` and `aux_crc`.
//!
//! Whole blocks go through the `crc-fast` crate (folding with carry-less
//! multiplication, VPCLMULQDQ/AVX-512 or PCLMULQDQ on x86-64, PMULL on
//! ARMv8, tables elsewhere): on 64 KiB of aux data it runs at several times
//! the speed of the `crc32` instruction loop, and it is no slower on a
//! 64-byte header. Continuations ([`crc32c_append`], a few bytes of
//! padding or an extended header) use the `crc32c` crate, which takes a
//! running CRC.

/// CRC-32C of `data` (init `0xFFFFFFFF`, final XOR `0xFFFFFFFF`): `dmsg_icrc32`.
#[inline]
pub fn crc32c(data: &[u8]) -> u32 {
    crc_fast::crc32_iscsi(data)
}

/// Continue a CRC-32C: `crc32c_append(crc32c(a), b) == crc32c(a ++ b)`, the
/// C library's `dmsg_icrc32c`.
pub fn crc32c_append(crc: u32, data: &[u8]) -> u32 {
    crc32c::crc32c_append(crc, data)
}

/// The reflected CRC-32C polynomial.
const POLY: u32 = 0x82F6_3B78;

/// One-byte steps of the CRC-32C register (no init, no final XOR).
// Built at compile time; `i` stays below 256.
#[allow(clippy::indexing_slicing)]
const TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut r = i as u32;
        let mut k = 0;
        while k < 8 {
            r = if r & 1 != 0 { (r >> 1) ^ POLY } else { r >> 1 };
            k += 1;
        }
        t[i] = r;
        i += 1;
    }
    t
};

/// Runs the bare CRC register (no init, no final XOR) over four bytes.
fn register4(mut r: u32, bytes: [u8; 4]) -> u32 {
    for b in bytes {
        // The index is masked to 0..=255, so the lookup never misses.
        let step = TABLE.get(((r ^ u32::from(b)) & 0xFF) as usize);
        r = step.copied().unwrap_or(0) ^ (r >> 8);
    }
    r
}

/// `crc32c_append(crc, &[0; 4])`, without a call into the CRC library.
pub fn crc32c_append_zero4(crc: u32) -> u32 {
    !register4(!crc, [0; 4])
}

/// The CRC-32C of `block` as if its last four bytes were zero, from one
/// pass over the block as it is: `hdr_crc` of a 64-byte header as received.
///
/// The CRC is affine in its input, so zeroing the last four bytes changes
/// it by the bare register run over those four bytes. A block shorter than
/// four bytes is taken as it is.
pub fn crc32c_last4_zeroed(block: &[u8]) -> u32 {
    let tail = block
        .len()
        .checked_sub(4)
        .and_then(|at| block.get(at..))
        .and_then(|t| <[u8; 4]>::try_from(t).ok())
        .unwrap_or([0; 4]);
    crc32c(block) ^ register4(0, tail)
}

/// 64 zero bytes, the most padding one message can need.
const ZEROS: [u8; super::ALIGN] = [0; super::ALIGN];

/// `aux_crc`: the CRC of `aux` followed by the zero padding up to the next
/// multiple of 64 bytes.
pub fn aux_crc(aux: &[u8]) -> u32 {
    let pad = super::pad_len(aux.len());
    crc32c_append(crc32c(aux), ZEROS.get(..pad).unwrap_or(&[]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_value() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn block_and_running_crcs_agree() {
        // crc-fast's whole-block CRC and crc32c's running CRC, over sizes
        // around every folding width and tail case.
        let data: Vec<u8> = (0..70_000u32).map(|i| (i * 131 + 7) as u8).collect();
        for len in (0..300).chain([1023, 1024, 4095, 4096, 4097, 65536, 65600, 70_000]) {
            let d = &data[..len];
            assert_eq!(crc32c(d), crc32c::crc32c(d), "length {len}");
            assert_eq!(crc32c_append(0, d), crc32c(d), "length {len}");
        }
    }

    #[test]
    fn continuation() {
        let whole = crc32c(b"hello world");
        assert_eq!(crc32c_append(crc32c(b"hello "), b"world"), whole);
    }

    #[test]
    fn zero_tail_shortcuts() {
        let mut block: Vec<u8> = (0..64u32).map(|i| (i * 37 + 11) as u8).collect();
        let as_is = crc32c_last4_zeroed(&block);
        block[60..].fill(0);
        assert_eq!(as_is, crc32c(&block));
        assert_eq!(crc32c_last4_zeroed(&[1, 2, 3]), crc32c(&[1, 2, 3]));
        let c = crc32c(b"hello");
        assert_eq!(crc32c_append_zero4(c), crc32c_append(c, &[0; 4]));
    }

    #[test]
    fn aux_crc_covers_padding() {
        let mut padded = b"tree\0".to_vec();
        padded.resize(64, 0);
        assert_eq!(aux_crc(b"tree\0"), crc32c(&padded));
        assert_eq!(aux_crc(b"tree\0"), 0xB1E3_FFE0);
    }
}
