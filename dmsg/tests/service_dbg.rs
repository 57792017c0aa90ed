//! The DBG protocol of the master service (STATE.md §8.3): a client sends
//! shell lines and gets the text back, then the prompt (`LNK_ERROR|REPLY`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod service_support;

use dmsg::link::Event;
use dmsg::runtime::session::{Incoming, Session};
use dmsg::service::{Node, NodeShell, ServeOptions, ServiceHandle};
use dmsg::wire::{cmd, err, Message};
use service_support::*;
use std::os::unix::net::UnixStream;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

/// A node with span "A" served over a socketpair with `opts`, and a client
/// session on the other end.
fn rig(opts: ServeOptions) -> (Node, ServiceHandle, Session) {
    let (a, _rx) = node(1, "A");
    let (s, c) = UnixStream::pair().unwrap();
    let h = a.serve(s, opts).unwrap();
    let client = Session::spawn(c).unwrap();
    (a, h, client)
}

fn shell_rig() -> (Node, ServiceHandle, Session) {
    rig(ServeOptions::new("shell").shell(Arc::new(NodeShell)))
}

/// Sends `line` as a one-way DBG_SHELL and collects the text until the
/// prompt; returns the text and the prompt's header.
fn run(client: &Session, line: &str) -> (String, dmsg::wire::Header) {
    let mut m = Message::new(cmd::DBG_SHELL);
    m.aux = format!("{line}\0").into_bytes();
    client.send_oneway(m).unwrap();
    let mut text = String::new();
    loop {
        match client.recv_timeout(WAIT).expect("no prompt") {
            Incoming::OneWay(m) if m.hdr.cmd & cmd::BASECMDMASK == cmd::DBG_SHELL => {
                assert_eq!(m.hdr.cmd & cmd::REPLY, cmd::REPLY);
                assert_eq!(m.aux.last(), Some(&0), "text ends in its NUL");
                text.push_str(std::str::from_utf8(&m.aux[..m.aux.len() - 1]).unwrap());
            }
            Incoming::OneWay(m) => return (text, m.hdr),
            // The node's LNK_CONN: a shell client does not join, dropping
            // the handle refuses it (ABORT|DELETE), as the hammer2 shell
            // refuses it.
            Incoming::Transaction { msg, txn } => {
                assert_eq!(msg.hdr.cmd & cmd::BASECMDMASK, cmd::LNK_CONN);
                drop(txn);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

fn assert_prompt(h: &dmsg::wire::Header) {
    assert_eq!(h.cmd, cmd::LNK_ERROR | cmd::REPLY);
    assert_eq!(h.error, 0);
    assert_eq!(h.circuit, 0);
}

#[test]
fn tree_comes_back_then_the_prompt() {
    let (a, h, client) = shell_rig();
    let (text, prompt) = run(&client, "tree");
    assert_prompt(&prompt);
    assert_eq!(text, a.tree());
    assert!(text.contains("    Node "), "{text}");
    assert!(text.contains("(A)"), "{text}");
    h.shutdown();
    h.join();
}

#[test]
fn bad_commands_get_error_lines_and_the_shell_lives_on() {
    let (_a, h, client) = shell_rig();
    // STATE.md §10 row 21: `circ` without an argument.
    let (text, prompt) = run(&client, "circ");
    assert_prompt(&prompt);
    assert_eq!(text, "circ: missing msgid (circ <msgid>)\n");
    let (text, _) = run(&client, "circ zz");
    assert!(text.starts_with("circ: bad msgid"), "{text}");
    let (text, _) = run(&client, "circ 0000000000001234");
    assert_eq!(text, "circ: no span with msgid 0000000000001234\n");
    let (text, _) = run(&client, "frobnicate now");
    assert_eq!(text, "frobnicate: unknown command (try help)\n");
    let (text, _) = run(&client, "span");
    assert!(text.starts_with("span: missing host"), "{text}");
    let (text, prompt) = run(&client, "");
    assert_eq!(text, "", "an empty line prints nothing");
    assert_prompt(&prompt);
    let (text, _) = run(&client, "help");
    for c in ["help", "tree", "span", "circ"] {
        assert!(text.contains(c), "{text}");
    }
    // Still serving.
    assert!(h.conn().is_some_and(|c| !c.is_down()));
    h.shutdown();
    h.join();
}

#[test]
fn span_connects_and_serves_the_new_link() {
    let (a, h, client) = shell_rig();
    let (b, _rb) = node(2, "B");
    let lb = b
        .listen("127.0.0.1:0", |_| ServeOptions::new("accepted"))
        .unwrap();
    let port = lb.local_addr().port();
    let (text, prompt) = run(&client, &format!("span 127.0.0.1:{port}"));
    assert_prompt(&prompt);
    assert!(
        text.starts_with(&format!("span 127.0.0.1:{port}: connected")),
        "{text}"
    );
    assert!(wait_until(|| seen(&a) == dists(&[("A", 0), ("B", 1)])));
    let (text, _) = run(&client, "tree");
    assert!(text.contains("(B)"), "{text}");

    // A refused connection is an error line naming the host.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = closed.local_addr().unwrap().port();
    drop(closed);
    let (text, _) = run(&client, &format!("span 127.0.0.1:{dead}"));
    assert!(
        text.starts_with(&format!("span: 127.0.0.1:{dead}: ")),
        "{text}"
    );

    a.shutdown();
    h.join();
    b.shutdown();
    lb.stop();
    assert!(wait_until(|| a.links().is_empty() && b.links().is_empty()));
}

#[test]
fn shell_text_received_goes_to_the_callback() {
    let (tx, rx) = mpsc::channel();
    let (_a, h, client) = rig(ServeOptions::new("x").on_shell_reply(move |t| {
        tx.send(t.to_owned()).unwrap();
    }));
    let mut m = Message::new(cmd::DBG_SHELL | cmd::REPLY);
    m.aux = b"hello from the peer\0".to_vec();
    client.send_oneway(m).unwrap();
    assert_eq!(rx.recv_timeout(WAIT).unwrap(), "hello from the peer");
    h.shutdown();
    h.join();
}

#[test]
fn without_a_shell_the_line_gets_a_notice_and_the_prompt() {
    let (_a, h, client) = rig(ServeOptions::new("no shell"));
    let (text, prompt) = run(&client, "tree");
    assert_eq!(text, "no shell on this link\n");
    assert_prompt(&prompt);
    h.shutdown();
    h.join();
}

#[test]
fn a_line_opening_a_transaction_is_answered_by_closing_it() {
    let (_a, h, client) = shell_rig();
    let mut m = Message::new(cmd::DBG_SHELL | cmd::CREATE);
    m.aux = b"help\0".to_vec();
    let txn = client.open(m).unwrap();
    let last = txn.recv_timeout(WAIT).unwrap();
    assert_eq!(
        last.hdr.cmd & (cmd::BASECMDMASK | cmd::REPLY | cmd::DELETE),
        cmd::LNK_ERROR | cmd::REPLY | cmd::DELETE
    );
    assert_eq!(last.hdr.error, 0);
    h.shutdown();
    h.join();
}

#[test]
fn other_traffic_goes_to_the_message_callback_or_is_refused() {
    // Without a callback, a transaction the peer opens is refused.
    let (_a, h, client) = rig(ServeOptions::new("plain"));
    let txn = client
        .open(Message::new(cmd::LNK_PING | cmd::CREATE))
        .unwrap();
    let ans = txn.recv_timeout(WAIT).unwrap();
    assert_eq!(ans.hdr.error, err::NOSUPP);
    assert_eq!(ans.hdr.cmd & cmd::DELETE, cmd::DELETE);
    h.shutdown();
    h.join();

    // With one, it gets the message and may answer.
    let (tx, rx) = mpsc::channel();
    let (_a, h, client) = rig(ServeOptions::new("app").on_message(move |conn, ev| {
        if let Event::Message { msg, txn: Some(t) } = ev {
            if msg.hdr.cmd & cmd::BASECMDMASK == cmd::LNK_PING {
                conn.with_link(|l| l.reply(t.id, 7)).unwrap();
                tx.send(msg.hdr.cmd).unwrap();
            }
        }
    }));
    let txn = client
        .open(Message::new(cmd::LNK_PING | cmd::CREATE))
        .unwrap();
    let ans = txn.recv_timeout(Duration::from_secs(20)).unwrap();
    assert_eq!(ans.hdr.error, 7);
    assert_eq!(rx.recv_timeout(WAIT).unwrap() & cmd::CREATE, cmd::CREATE);
    h.shutdown();
    h.join();
}
