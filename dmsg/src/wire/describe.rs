//! One-line message descriptions for debug output (what `dmsg_msg_str`
//! prints, without the transaction state the C version adds).

use super::cmd::{basecmd_str, flags_str};
use super::Message;

impl Message {
    /// A one-line description of the message:
    ///
    /// `msg=<basecmd><flags> err=<error> msgid=<16 hex> circuit=<16 hex> aux=<bytes>`
    ///
    /// with the name and flags of [`basecmd_str`] and [`flags_str`], e.g.
    /// `msg=LNK_CONN|CREATE err=0 msgid=0000000801c17000 circuit=0000000000000000 aux=0`.
    pub fn describe(&self) -> String {
        format!(
            "msg={}{} err={} msgid={:016x} circuit={:016x} aux={}",
            basecmd_str(self.hdr.cmd),
            flags_str(self.hdr.cmd),
            self.hdr.error,
            self.hdr.msgid,
            self.hdr.circuit,
            self.aux.len()
        )
    }
}

#[cfg(test)]
mod tests {
    use crate::wire::{cmd, Message};

    #[test]
    fn one_line() {
        let mut m = Message::new(cmd::LNK_ERROR | cmd::REPLY | cmd::DELETE);
        m.hdr.msgid = 0x0000_0008_01c1_7000;
        m.hdr.circuit = 0x7f;
        m.hdr.error = 0x21;
        m.aux = b"x\0".to_vec();
        assert_eq!(
            m.describe(),
            "msg=LNK_RETURN|DELETE|REPLY err=33 msgid=0000000801c17000 \
             circuit=000000000000007f aux=2"
        );
    }
}
