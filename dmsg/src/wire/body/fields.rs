//! Byte-range access to a body inside `Message::ext`.
//!
//! Offsets are written as in the C struct tables of WIRE.md §5, that is from
//! the start of the extended header (the core header is bytes 0..64), and
//! translated here to `ext` offsets. Callers check the length once with
//! [`check_len`]; after that every access is in bounds, and an access that
//! is not (a bug) reads zeros or writes nothing instead of panicking.

use super::BodyError;
use crate::wire::label::Label;
use crate::wire::uuid::Uuid;
use crate::wire::HEADER_SIZE;

/// Fails unless `ext` holds the body of a struct of `size` bytes (head
/// included).
pub(super) fn check_len(ext: &[u8], size: usize) -> Result<(), BodyError> {
    let need = size.saturating_sub(HEADER_SIZE);
    if ext.len() < need {
        return Err(BodyError::Short {
            need,
            have: ext.len(),
        });
    }
    Ok(())
}

/// Read access to the body bytes.
pub(super) struct Fields<'a>(pub(super) &'a [u8]);

impl Fields<'_> {
    /// `K` bytes at struct offset `off`.
    pub(super) fn bytes<const K: usize>(&self, off: usize) -> [u8; K] {
        let mut out = [0u8; K];
        let src = off
            .checked_sub(HEADER_SIZE)
            .and_then(|at| self.0.get(at..at.checked_add(K)?));
        if let Some(src) = src {
            out.copy_from_slice(src);
        }
        out
    }

    pub(super) fn u8(&self, off: usize) -> u8 {
        let [b] = self.bytes::<1>(off);
        b
    }

    pub(super) fn u16(&self, off: usize) -> u16 {
        u16::from_le_bytes(self.bytes(off))
    }

    pub(super) fn u32(&self, off: usize) -> u32 {
        u32::from_le_bytes(self.bytes(off))
    }

    pub(super) fn i32(&self, off: usize) -> i32 {
        i32::from_le_bytes(self.bytes(off))
    }

    pub(super) fn u64(&self, off: usize) -> u64 {
        u64::from_le_bytes(self.bytes(off))
    }

    pub(super) fn uuid(&self, off: usize) -> Uuid {
        Uuid(self.bytes(off))
    }

    pub(super) fn label<const N: usize>(&self, off: usize) -> Label<N> {
        Label::read(&self.bytes::<N>(off))
    }
}

/// Write access to the body bytes.
pub(super) struct FieldsMut<'a>(pub(super) &'a mut [u8]);

impl FieldsMut<'_> {
    /// Copies `src` to struct offset `off`.
    pub(super) fn put(&mut self, off: usize, src: &[u8]) {
        let dst = off
            .checked_sub(HEADER_SIZE)
            .and_then(|at| self.0.get_mut(at..at.checked_add(src.len())?));
        if let Some(dst) = dst {
            dst.copy_from_slice(src);
        }
    }

    pub(super) fn u8(&mut self, off: usize, v: u8) {
        self.put(off, &[v]);
    }

    pub(super) fn u16(&mut self, off: usize, v: u16) {
        self.put(off, &v.to_le_bytes());
    }

    pub(super) fn u32(&mut self, off: usize, v: u32) {
        self.put(off, &v.to_le_bytes());
    }

    pub(super) fn i32(&mut self, off: usize, v: i32) {
        self.put(off, &v.to_le_bytes());
    }

    pub(super) fn u64(&mut self, off: usize, v: u64) {
        self.put(off, &v.to_le_bytes());
    }

    pub(super) fn uuid(&mut self, off: usize, v: &Uuid) {
        self.put(off, v.as_bytes());
    }

    pub(super) fn label<const N: usize>(&mut self, off: usize, v: &Label<N>) {
        let mut field = [0u8; N];
        v.write(&mut field);
        self.put(off, &field);
    }
}
