//! Fixed-size, NUL-padded byte strings of message bodies (`char label[N]`).
//!
//! Reading is bounded: a label ends at its first NUL or at the end of its
//! field, so a peer that fills the field without a terminator (STATE.md §10
//! row 17) yields an `N`-byte label and nothing is read past the field.
//! Writing always leaves the last byte of the field 0, as C readers expect a
//! terminated string.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

/// A byte string read from or written to a `char[N]` field.
#[derive(Clone, Copy)]
pub struct Label<const N: usize> {
    /// The field as it will be emitted: the content, then zeros.
    buf: [u8; N],
    /// Content length, at most `N`.
    len: usize,
}

/// Why a byte string cannot be stored in a `char[N]` field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LabelError {
    /// Longer than `N - 1` bytes, so it would leave no room for the NUL.
    TooLong {
        /// The content length given.
        len: usize,
        /// The most the field holds (`N - 1`).
        max: usize,
    },
    /// The content holds a NUL byte, which would cut it short on the wire.
    InteriorNul(usize),
}

impl fmt::Display for LabelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LabelError::TooLong { len, max } => {
                write!(
                    f,
                    "label of {len} bytes exceeds its field ({max} bytes + NUL)"
                )
            }
            LabelError::InteriorNul(at) => write!(f, "label holds a NUL byte at {at}"),
        }
    }
}

impl std::error::Error for LabelError {}

impl<const N: usize> Label<N> {
    /// The size of the field in bytes.
    pub const FIELD: usize = N;
    /// The longest content [`Label::new`] accepts.
    pub const MAX: usize = N.saturating_sub(1);

    /// The empty label.
    pub const fn empty() -> Label<N> {
        Label {
            buf: [0; N],
            len: 0,
        }
    }

    /// A label holding `s`; refuses content that does not fit with its
    /// terminating NUL, or that holds a NUL.
    pub fn new(s: impl AsRef<[u8]>) -> Result<Label<N>, LabelError> {
        let s = s.as_ref();
        if let Some(at) = s.iter().position(|&b| b == 0) {
            return Err(LabelError::InteriorNul(at));
        }
        if s.len() > Self::MAX {
            return Err(LabelError::TooLong {
                len: s.len(),
                max: Self::MAX,
            });
        }
        Ok(Self::from_prefix(s))
    }

    /// A label holding `s` cut at its first NUL and at `N - 1` bytes.
    pub fn truncated(s: impl AsRef<[u8]>) -> Label<N> {
        let s = s.as_ref();
        let end = s.iter().position(|&b| b == 0).unwrap_or(s.len());
        let s = s.get(..end.min(Self::MAX)).unwrap_or(&[]);
        Self::from_prefix(s)
    }

    /// Reads a label field: the bytes before the first NUL, or the first `N`
    /// bytes (fewer if `field` is shorter) when there is no NUL.
    pub fn read(field: &[u8]) -> Label<N> {
        let field = field.get(..N).unwrap_or(field);
        let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
        Self::from_prefix(field.get(..end).unwrap_or(&[]))
    }

    /// `s` must be at most `N` bytes and NUL-free.
    fn from_prefix(s: &[u8]) -> Label<N> {
        let mut buf = [0u8; N];
        let len = s.len().min(N);
        if let (Some(dst), Some(src)) = (buf.get_mut(..len), s.get(..len)) {
            dst.copy_from_slice(src);
        }
        Label { buf, len }
    }

    /// Writes the field: the content, then zeros, the last byte always 0. A
    /// label read unterminated from a peer loses its last byte here. Writes
    /// at most `field.len()` bytes.
    pub fn write(&self, field: &mut [u8]) {
        let mut out = self.buf;
        if let Some(last) = out.last_mut() {
            *last = 0;
        }
        let n = field.len().min(N);
        if let (Some(dst), Some(src)) = (field.get_mut(..n), out.get(..n)) {
            dst.copy_from_slice(src);
        }
    }

    /// The content, without any NUL.
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }

    /// The content as UTF-8, if it is.
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(self.as_bytes()).ok()
    }

    /// Content length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for the empty label.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True when the label fills its whole field with no terminator, which
    /// only a peer can produce.
    pub fn is_unterminated(&self) -> bool {
        self.len >= N
    }
}

impl<const N: usize> Default for Label<N> {
    fn default() -> Self {
        Label::empty()
    }
}

impl<const N: usize> PartialEq for Label<N> {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl<const N: usize> Eq for Label<N> {}

impl<const N: usize> Hash for Label<N> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl<const N: usize> PartialOrd for Label<N> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<const N: usize> Ord for Label<N> {
    /// The order of `strcmp`: unsigned bytes, a prefix first.
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl<const N: usize> fmt::Display for Label<N> {
    /// The content, with invalid UTF-8 replaced.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(self.as_bytes()))
    }
}

impl<const N: usize> fmt::Debug for Label<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_bytes().escape_ascii().to_string())
    }
}

impl<const N: usize> TryFrom<&str> for Label<N> {
    type Error = LabelError;

    fn try_from(s: &str) -> Result<Self, LabelError> {
        Label::new(s)
    }
}

impl<const N: usize> std::str::FromStr for Label<N> {
    type Err = LabelError;

    fn from_str(s: &str) -> Result<Self, LabelError> {
        Label::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_stops_at_nul_or_bound() {
        let l = Label::<8>::read(b"abc\0def\0");
        assert_eq!(l.as_bytes(), b"abc");
        let full = Label::<8>::read(b"abcdefghXYZ");
        assert_eq!(full.as_bytes(), b"abcdefgh");
        assert!(full.is_unterminated());
        let short = Label::<8>::read(b"ab");
        assert_eq!(short.as_bytes(), b"ab");
    }

    #[test]
    fn write_keeps_last_byte_zero() {
        let mut field = [0xEEu8; 8];
        Label::<8>::read(b"abcdefgh").write(&mut field);
        assert_eq!(&field, b"abcdefg\0");
        Label::<8>::new("ab").unwrap().write(&mut field);
        assert_eq!(&field, b"ab\0\0\0\0\0\0");
    }

    #[test]
    fn new_refuses_what_does_not_fit() {
        assert_eq!(Label::<8>::new("abcdefg").unwrap().len(), 7);
        assert_eq!(
            Label::<8>::new("abcdefgh"),
            Err(LabelError::TooLong { len: 8, max: 7 })
        );
        assert_eq!(Label::<8>::new("a\0b"), Err(LabelError::InteriorNul(1)));
        assert_eq!(Label::<8>::truncated("abcdefghij").as_bytes(), b"abcdefg");
        assert_eq!(Label::<8>::truncated("ab\0cd").as_bytes(), b"ab");
    }

    #[test]
    fn order_is_strcmp() {
        let a = Label::<8>::new("ab").unwrap();
        let b = Label::<8>::new("abc").unwrap();
        let c = Label::<8>::new("b").unwrap();
        assert!(a < b && b < c);
        assert_eq!(a, Label::<8>::read(b"ab\0zz"));
    }
}
