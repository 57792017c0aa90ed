//! CRC-32C (Castagnoli), as WIRE.md §4 specifies for `hdr_crc` and `aux_crc`.
//!
//! The `crc32c` crate uses the SSE 4.2 / ARMv8 CRC instructions when the CPU
//! has them and a table otherwise.

/// CRC-32C of `data` (init `0xFFFFFFFF`, final XOR `0xFFFFFFFF`): `dmsg_icrc32`.
pub fn crc32c(data: &[u8]) -> u32 {
    crc32c::crc32c(data)
}

/// Continue a CRC-32C: `crc32c_append(crc32c(a), b) == crc32c(a ++ b)`, the
/// C library's `dmsg_icrc32c`.
pub fn crc32c_append(crc: u32, data: &[u8]) -> u32 {
    crc32c::crc32c_append(crc, data)
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
    fn continuation() {
        let whole = crc32c(b"hello world");
        assert_eq!(crc32c_append(crc32c(b"hello "), b"world"), whole);
    }

    #[test]
    fn aux_crc_covers_padding() {
        let mut padded = b"tree\0".to_vec();
        padded.resize(64, 0);
        assert_eq!(aux_crc(b"tree\0"), crc32c(&padded));
        assert_eq!(aux_crc(b"tree\0"), 0xB1E3_FFE0);
    }
}
