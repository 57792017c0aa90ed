//! The DBG protocol (STATE.md §8.3): `dmsg_msg_dbg`,
//! `dmsg_circuit_printf`, and the daemon's default shell.
//!
//! A peer sends a command line as a `DBG_SHELL` message (one-way, or
//! opening a transaction) whose aux data is the NUL-terminated text. The
//! node hands the line to its [`Shell`], which prints back with
//! [`ShellCtx::print`] (one-way `DBG_SHELL|REPLY` messages on the circuit
//! the command came in on), then answers the command itself with an
//! `LNK_ERROR|REPLY` carrying error 0, which a shell client takes as "print
//! the prompt". Received `DBG_SHELL|REPLY` text goes to a callback
//! (stderr by default).

use super::net::connect;
use super::{Node, ServeOptions};
use crate::link::SendError;
use crate::lnk::LinkId;
use crate::runtime::Conn;
use crate::state::TxnInfo;
use crate::wire::cmd::{self, REPLY};
use crate::wire::Message;
use std::fmt;
use std::sync::Arc;

/// Most bytes of text one [`circuit_printf`] sends (the C library formats
/// into 1024 bytes, NUL included); longer text is cut.
pub const PRINTF_MAX: usize = 1023;

/// The text of a `DBG_SHELL` message: its aux data up to the first NUL
/// (the whole aux if there is none), invalid UTF-8 replaced.
pub fn shell_text(msg: &Message) -> String {
    let end = msg
        .aux
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(msg.aux.len());
    String::from_utf8_lossy(msg.aux.get(..end).unwrap_or(&[])).into_owned()
}

/// `dmsg_circuit_printf`: sends `text` (cut to [`PRINTF_MAX`] bytes) and a
/// NUL as a one-way `DBG_SHELL|REPLY` on `circuit` of `conn`.
pub fn circuit_printf(conn: &Conn, circuit: u64, text: &str) -> Result<(), SendError> {
    let mut end = text.len().min(PRINTF_MAX);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut m = Message::new(cmd::DBG_SHELL | REPLY);
    m.hdr.circuit = circuit;
    m.aux.reserve(end + 1);
    m.aux
        .extend_from_slice(text.as_bytes().get(..end).unwrap_or(&[]));
    m.aux.push(0);
    conn.with_link(|l| l.send_oneway(m))
}

/// Where a shell command runs: the node, the link and circuit it came on,
/// and the way to print back.
pub struct ShellCtx<'a> {
    node: &'a Node,
    conn: &'a Conn,
    link: LinkId,
    circuit: u64,
}

impl fmt::Debug for ShellCtx<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShellCtx")
            .field("link", &self.link)
            .field("circuit", &self.circuit)
            .finish_non_exhaustive()
    }
}

impl<'a> ShellCtx<'a> {
    /// The context of a command received on `circuit` of `link` (`conn`).
    pub fn new(node: &'a Node, conn: &'a Conn, link: LinkId, circuit: u64) -> ShellCtx<'a> {
        ShellCtx {
            node,
            conn,
            link,
            circuit,
        }
    }

    /// Prints `text` back to the peer ([`circuit_printf`] on the command's
    /// circuit).
    pub fn print(&self, text: &str) -> Result<(), SendError> {
        circuit_printf(self.conn, self.circuit, text)
    }

    /// The node the command runs on.
    pub fn node(&self) -> &Node {
        self.node
    }

    /// The connection the command came on.
    pub fn conn(&self) -> &Conn {
        self.conn
    }

    /// The link the command came on.
    pub fn link(&self) -> LinkId {
        self.link
    }

    /// The circuit the command came on (0 = the link itself).
    pub fn circuit(&self) -> u64 {
        self.circuit
    }
}

/// Runs the command lines a peer sends (the C library's
/// `dbgmsg_callback`; `hammer2_shell_parse` in the hammer2 tool). Called on
/// the service thread with no lock held; the prompt is sent after it
/// returns.
pub trait Shell: Send + Sync {
    /// Runs one command line (without its NUL).
    fn run(&self, ctx: &ShellCtx<'_>, line: &str);
}

impl<F> Shell for F
where
    F: Fn(&ShellCtx<'_>, &str) + Send + Sync,
{
    fn run(&self, ctx: &ShellCtx<'_>, line: &str) {
        self(ctx, line)
    }
}

/// `dmsg_msg_dbg` for one received message: a `DBG_SHELL` line runs
/// `shell` (or prints a notice when there is none) and is answered with
/// the prompt (`LNK_ERROR|REPLY`, error 0: closing the transaction the line
/// opened, or one-way); a `DBG_SHELL|REPLY` gives its text to `on_reply`.
/// Returns false for other DBG commands (the application's).
pub fn msg_dbg(
    ctx: &ShellCtx<'_>,
    msg: &Message,
    txn: Option<&TxnInfo>,
    shell: Option<&dyn Shell>,
    on_reply: &mut dyn FnMut(&str),
) -> bool {
    if msg.hdr.cmd & cmd::BASECMDMASK != cmd::DBG_SHELL {
        return false;
    }
    if msg.hdr.cmd & REPLY != 0 {
        on_reply(&shell_text(msg));
        return true;
    }
    let line = shell_text(msg);
    match shell {
        Some(s) => s.run(ctx, &line),
        None => {
            let _ = ctx.print("no shell on this link\n");
        }
    }
    let _ = ctx.conn.with_link(|l| match txn {
        Some(t) if !t.tx_closed() => l.reply(t.id, 0),
        _ => l.reply_oneway(&msg.hdr, 0),
    });
    true
}

/// The text of `help`.
const HELP: &str = "\
help                 this text (also ?)
tree                 the span tree of this node
span <host[:port]>   connect to a node and serve the link here
circ <msgid>         open a virtual circuit over a received span
";

/// The shell of the node daemon (what the hammer2 tool's
/// `hammer2_shell_parse` does): `help`, `tree`, `span <host[:port]>`,
/// `circ <msgid>`. Unknown commands and bad arguments get an error line;
/// nothing the peer sends can crash it.
#[derive(Clone, Copy, Debug, Default)]
pub struct NodeShell;

impl NodeShell {
    /// `span <host>`: connect and serve the link on this node (with this
    /// shell).
    fn span(&self, ctx: &ShellCtx<'_>, host: &str) {
        let stream = match connect(host) {
            Ok(s) => s,
            Err(e) => {
                let _ = ctx.print(&format!("span: {e}\n"));
                return;
            }
        };
        let opts = ServeOptions::new(format!("span {host}")).shell(Arc::new(NodeShell));
        match ctx.node().serve(stream, opts) {
            Ok(h) => {
                let _ = ctx.print(&format!("span {host}: connected (via {})\n", h.via()));
            }
            Err(e) => {
                let _ = ctx.print(&format!("span {host}: cannot start the service: {e}\n"));
            }
        }
    }

    /// `circ <msgid>`: forge a virtual circuit over the received span with
    /// that msgid (`dmsg_debug_findspan`, then `LNK_CIRC|CREATE` with
    /// `target` = the msgid, as the hammer2 tool does) and print its id.
    /// The circuit has no handle: it lives until the far end closes it or
    /// its path or span goes away (see [`Node::forge_circuit`]).
    fn circ(&self, ctx: &ShellCtx<'_>, msgid: u64) {
        let Some(span) = ctx.node().findspan(msgid) else {
            let _ = ctx.print(&format!("circ: no span with msgid {msgid:016x}\n"));
            return;
        };
        let Some(link) = span.link else {
            let _ = ctx.print(&format!("circ: span {msgid:016x} is a local span\n"));
            return;
        };
        match ctx.node().forge_circuit(link, msgid) {
            Ok(c) => {
                let _ = ctx.print(&format!(
                    "circ: opened circuit {:016x} on link {} to span {msgid:016x} (dist={})\n",
                    c.id, c.link.0, span.dist
                ));
            }
            Err(e) => {
                let _ = ctx.print(&format!("circ: span {msgid:016x}: {e}\n"));
            }
        }
    }
}

/// A msgid as the tree dump prints it: hexadecimal, `0x` optional.
fn parse_msgid(s: &str) -> Option<u64> {
    let digits = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    u64::from_str_radix(digits, 16).ok()
}

impl Shell for NodeShell {
    fn run(&self, ctx: &ShellCtx<'_>, line: &str) {
        let mut words = line.split_whitespace();
        let Some(command) = words.next() else {
            return;
        };
        match command {
            "help" | "?" => {
                let _ = ctx.print(HELP);
            }
            "tree" => {
                for l in ctx.node().tree_lines() {
                    if ctx.print(&l).is_err() {
                        break;
                    }
                }
            }
            "span" => match words.next() {
                Some(host) => self.span(ctx, host),
                None => {
                    let _ = ctx.print("span: missing host (span <host[:port]>)\n");
                }
            },
            "circ" => match words.next() {
                None => {
                    let _ = ctx.print("circ: missing msgid (circ <msgid>)\n");
                }
                Some(arg) => match parse_msgid(arg) {
                    Some(id) => self.circ(ctx, id),
                    None => {
                        let _ = ctx.print(&format!("circ: bad msgid {arg:?} (hexadecimal)\n"));
                    }
                },
            },
            other => {
                let _ = ctx.print(&format!("{other}: unknown command (try help)\n"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msgids_parse_as_hex() {
        assert_eq!(parse_msgid("0000000000010000"), Some(0x10000));
        assert_eq!(parse_msgid("0x1f"), Some(0x1f));
        assert_eq!(parse_msgid("zz"), None);
        assert_eq!(parse_msgid(""), None);
    }

    #[test]
    fn shell_text_stops_at_the_nul() {
        let mut m = Message::new(cmd::DBG_SHELL);
        m.aux = b"tree\0junk".to_vec();
        assert_eq!(shell_text(&m), "tree");
        m.aux = b"no nul".to_vec();
        assert_eq!(shell_text(&m), "no nul");
        m.aux.clear();
        assert_eq!(shell_text(&m), "");
    }
}
