//! The message bodies of WIRE.md §5: the C structs that follow the 64-byte
//! core header inside the extended header.
//!
//! Each body type implements [`Body`]: `parse` reads it from
//! [`Message::ext`] (the bytes after the core header, so struct offset 64 is
//! `ext[0]`), `emit` writes it back. Parsing is total: an `ext` shorter than
//! the struct is a [`BodyError`], never a panic. Bytes of `ext` past the
//! struct (the padding up to a multiple of 64), and the compiler padding
//! inside a struct (4 bytes at 188 of `LNK_CONN`), are neither read nor
//! written.
//!
//! Parsing then emitting reproduces every field exactly, with one
//! exception: label fields are read up to their first NUL, so whatever
//! follows that NUL comes back as zeros, and a label that fills its whole
//! field comes back with its last byte zeroed (see [`super::label::Label`]).

mod blk;
mod dbg;
mod fields;
mod lnk;
mod volconf;

pub use blk::{BlkError, BlkOpen, BlkRead};
pub use dbg::DbgShell;
pub use lnk::{LnkAuth, LnkCirc, LnkConn, LnkSpan, Media, MediaBlock};
pub use volconf::{LnkVolconf, VolData};

use super::{cmd, Message};
use std::fmt;

/// Why a body could not be read from or written to a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyError {
    /// The extended header is shorter than the body (a peer sent a smaller
    /// `H` than the struct needs).
    Short {
        /// Bytes the body needs after the core header.
        need: usize,
        /// Bytes there are.
        have: usize,
    },
    /// The message's base command is not one this body belongs to.
    Command {
        /// The body's base command.
        expected: u32,
        /// The message's `cmd` word.
        got: u32,
    },
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyError::Short { need, have } => write!(
                f,
                "extended header too short for the body: need {need} bytes, have {have}"
            ),
            BodyError::Command { expected, got } => write!(
                f,
                "command {got:#010x} does not carry a {} body",
                cmd::basecmd_str(*expected)
            ),
        }
    }
}

impl std::error::Error for BodyError {}

/// A message body: a C struct that starts with the core header.
pub trait Body: Sized {
    /// The base command (`cmd & BASECMDMASK`) of messages carrying it.
    const CMD: u32;
    /// `sizeof` the C struct, core header included.
    const SIZE: usize;

    /// True when a message with command word `cmd` carries this body. By
    /// default its base command must equal [`Body::CMD`]: like the C
    /// library's `switch` statements, the size bits count, so a peer that
    /// sends a longer or shorter header for a known command does not match.
    fn accepts(cmd: u32) -> bool {
        cmd::base(cmd) == Self::CMD
    }

    /// Reads the body from the bytes after the core header.
    fn parse(ext: &[u8]) -> Result<Self, BodyError>;

    /// Writes the body into the bytes after the core header; `ext` must hold
    /// at least `SIZE - 64` bytes. Bytes past the struct are left alone.
    fn emit(&self, ext: &mut [u8]) -> Result<(), BodyError>;
}

impl Message {
    /// A message carrying `body`, with command `T::CMD | flags` (for example
    /// `CREATE`) and a zeroed extended header of the size that command
    /// announces.
    pub fn with_body<T: Body>(flags: u32, body: &T) -> Message {
        let mut msg = Message::new(T::CMD | (flags & cmd::FLAGS));
        // `T::CMD` announces at least `T::SIZE` bytes (a test checks every
        // body), so this write always fits.
        let _fits = body.emit(&mut msg.ext);
        debug_assert!(_fits.is_ok());
        msg
    }

    /// A message carrying `body` with the full command word `cmd`, for
    /// bodies shared by several commands (`BLK_WRITE` with [`BlkRead`],
    /// `BLK_CLOSE` with [`BlkOpen`]).
    pub fn with_body_cmd<T: Body>(cmd: u32, body: &T) -> Result<Message, BodyError> {
        if !T::accepts(cmd) {
            return Err(BodyError::Command {
                expected: T::CMD,
                got: cmd,
            });
        }
        let mut msg = Message::new(cmd);
        body.emit(&mut msg.ext)?;
        Ok(msg)
    }

    /// Reads the body, after checking that the message's command carries
    /// one of type `T` ([`Body::accepts`]). Use `T::parse(&msg.ext)` to skip
    /// the command check.
    pub fn body<T: Body>(&self) -> Result<T, BodyError> {
        if !T::accepts(self.hdr.cmd) {
            return Err(BodyError::Command {
                expected: T::CMD,
                got: self.hdr.cmd,
            });
        }
        T::parse(&self.ext)
    }

    /// Overwrites the body bytes of this message with `body` (the command
    /// word is not checked or changed).
    pub fn set_body<T: Body>(&mut self, body: &T) -> Result<(), BodyError> {
        body.emit(&mut self.ext)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::HEADER_SIZE;

    fn sizes<T: Body>() -> (u32, usize) {
        (T::CMD, T::SIZE)
    }

    #[test]
    fn every_command_announces_room_for_its_body() {
        let all = [
            sizes::<LnkAuth>(),
            sizes::<LnkConn>(),
            sizes::<LnkSpan>(),
            sizes::<LnkCirc>(),
            sizes::<LnkVolconf>(),
            sizes::<DbgShell>(),
            sizes::<BlkOpen>(),
            sizes::<BlkRead>(),
            sizes::<BlkError>(),
        ];
        for (c, size) in all {
            assert_eq!(cmd::make(cmd::proto(c), (c & cmd::CMDS) >> 8, size), c);
            assert!(cmd::header_size(c) >= size);
        }
    }

    fn short_is_an_error<T: Body + fmt::Debug>() {
        let need = T::SIZE - HEADER_SIZE;
        for len in 0..need {
            let ext = vec![0xA5u8; len];
            assert_eq!(
                T::parse(&ext).err(),
                Some(BodyError::Short { need, have: len })
            );
        }
        let mut out = vec![0u8; need.saturating_sub(1)];
        if need > 0 {
            let body = T::parse(&vec![0; need]).unwrap();
            assert!(matches!(body.emit(&mut out), Err(BodyError::Short { .. })));
        }
    }

    #[test]
    fn short_ext_never_panics() {
        short_is_an_error::<LnkAuth>();
        short_is_an_error::<LnkConn>();
        short_is_an_error::<LnkSpan>();
        short_is_an_error::<LnkCirc>();
        short_is_an_error::<LnkVolconf>();
        short_is_an_error::<DbgShell>();
        short_is_an_error::<BlkOpen>();
        short_is_an_error::<BlkRead>();
        short_is_an_error::<BlkError>();
    }

    #[test]
    fn body_checks_the_command() {
        let msg = Message::with_body(
            cmd::CREATE,
            &LnkCirc {
                reserved01: 0,
                target: 7,
            },
        );
        assert_eq!(msg.hdr.cmd, cmd::LNK_CIRC | cmd::CREATE);
        assert_eq!(msg.body::<LnkCirc>().unwrap().target, 7);
        assert_eq!(
            msg.body::<LnkSpan>().err(),
            Some(BodyError::Command {
                expected: cmd::LNK_SPAN,
                got: cmd::LNK_CIRC | cmd::CREATE
            })
        );
        let w = Message::with_body_cmd(cmd::BLK_WRITE, &BlkRead::default()).unwrap();
        assert!(w.body::<BlkRead>().is_ok());
        assert!(Message::with_body_cmd(cmd::BLK_OPEN, &BlkRead::default()).is_err());
    }
}
