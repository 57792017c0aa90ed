//! `DBG_SHELL` (WIRE.md §5.5): the struct is the core header only; the
//! command line or output text travels as aux data (a NUL-terminated
//! string, `aux_bytes = strlen + 1`).

use super::{Body, BodyError};
use crate::wire::cmd;

/// `struct dmsg_dbg_shell`: no fields past the core header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct DbgShell;

impl Body for DbgShell {
    const CMD: u32 = cmd::DBG_SHELL;
    const SIZE: usize = 64;

    fn parse(_ext: &[u8]) -> Result<Self, BodyError> {
        Ok(DbgShell)
    }

    fn emit(&self, _ext: &mut [u8]) -> Result<(), BodyError> {
        Ok(())
    }
}
