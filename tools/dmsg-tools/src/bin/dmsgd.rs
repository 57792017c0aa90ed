//! `dmsgd`: a dmsg node daemon.
//!
//! ```text
//! dmsgd [--listen ADDR:PORT] [--connect HOST[:PORT]]... [--label NAME]
//!       [--peer-type hammer2|cluster] [--cluster UUID]
//!       [--keydir DIR | --plaintext]
//! ```
//!
//! Registers one local span for its own PFS (a fresh pfs_fsid, `fs_label`
//! = the label), accepts connections on the listen address (default
//! `0.0.0.0:987`), keeps a connection to every `--connect` peer (reconnects
//! with backoff when it is lost), serves every link with the master service
//! and the default shell (`help`, `tree`, `span`, `circ`), runs the volconf
//! workers (every `span:<host>` copy a HAMMER2 mount announces with
//! `LNK_VOLCONF` is kept connected, with backoff: see
//! `dmsg::service::volconf`), and logs links and node events to stderr.
//! Runs until killed.
//!
//! Every TCP link negotiates crypto first, as the hammer2 service does,
//! with the key files of `--keydir` (default `/etc/hammer2`):
//! `remote/<peer>.pub` encrypts the link, `remote/<peer>.none` leaves it
//! plaintext, and without either (or without `rsa.prv`/`rsa.pub`) the link
//! fails with an error that names the missing file and the peer.
//! `--plaintext` skips the negotiation on every link (for tests and for
//! clients that do not negotiate, such as `dmsg shell`).
#![forbid(unsafe_code)]

use dmsg::crypto::{KeyDir, OsRandom, RandomSource};
use dmsg::link::LinkError;
use dmsg::lnk::HubEvent;
use dmsg::service::{connect, Node, NodeShell, ServeOptions, ServiceEvent, VolconfConfig};
use dmsg::sim::SIM_CLUSTER;
use dmsg::wire::constants::{peer_type_str, PEER_CLUSTER, PEER_HAMMER2, PFSTYPE_SERVER};
use dmsg::wire::{Label, LnkSpan, Uuid};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

const USAGE: &str = "\
usage: dmsgd [--listen ADDR:PORT] [--connect HOST[:PORT]]... [--label NAME]
             [--peer-type hammer2|cluster] [--cluster UUID]
             [--keydir DIR | --plaintext]
defaults: --listen 0.0.0.0:987, --label dmsgd-<pid>, --peer-type hammer2,
          --keydir /etc/hammer2 (crypto negotiated on every TCP link)";

struct Args {
    listen: String,
    connect: Vec<String>,
    label: String,
    peer_type: u8,
    cluster: Uuid,
    /// The key directory; `None` with `--plaintext`.
    keydir: Option<KeyDir>,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        listen: format!("0.0.0.0:{}", dmsg::wire::LISTEN_PORT),
        connect: Vec::new(),
        label: format!("dmsgd-{}", std::process::id()),
        peer_type: PEER_HAMMER2,
        cluster: SIM_CLUSTER,
        keydir: Some(KeyDir::default()),
    };
    let mut it = std::env::args().skip(1);
    while let Some(opt) = it.next() {
        let mut val = || {
            it.next()
                .ok_or_else(|| format!("{opt} needs a value\n{USAGE}"))
        };
        match opt.as_str() {
            "--listen" | "-l" => a.listen = val()?,
            "--connect" | "-c" => a.connect.push(val()?),
            "--label" => a.label = val()?,
            "--peer-type" => {
                a.peer_type = match val()?.as_str() {
                    "hammer2" => PEER_HAMMER2,
                    "cluster" => PEER_CLUSTER,
                    other => return Err(format!("bad peer type {other:?} (hammer2 or cluster)")),
                }
            }
            "--cluster" => {
                let v = val()?;
                a.cluster = v.parse().map_err(|_| format!("bad cluster uuid {v:?}"))?;
            }
            "--keydir" => a.keydir = Some(KeyDir::new(val()?)),
            "--plaintext" => a.keydir = None,
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(a)
}

fn log_event(ev: &ServiceEvent) {
    match ev {
        ServiceEvent::LinkUp { link, via, label } => {
            eprintln!("dmsgd: link {} up: {label} (via {via})", link.0)
        }
        ServiceEvent::LinkDown {
            link,
            label,
            reason,
        } => eprintln!("dmsgd: link {} down: {label}: {reason}", link.0),
        ServiceEvent::Hub(HubEvent::Node(n)) => eprintln!(
            "dmsgd: node {:?} {} {} ({}) dist={}",
            n.op,
            peer_type_str(n.span.peer_type),
            n.span.pfs_fsid,
            n.span.fs_label,
            n.span.dist
        ),
        ServiceEvent::Hub(HubEvent::Volconf {
            link, index, copy, ..
        }) => eprintln!("dmsgd: link {}: volconf slot {index}: {:?}", link.0, copy),
        ServiceEvent::Hub(HubEvent::MediaGone(id)) => {
            eprintln!("dmsgd: media group {id} gone")
        }
        ServiceEvent::Refused { link, error } => {
            eprintln!("dmsgd: link {}: refused: {error}", link.0)
        }
        ServiceEvent::Circuit(c) => eprintln!("dmsgd: circuit: {c:?}"),
    }
}

/// The options every link is served with: the default shell, crypto with
/// `keydir` (if any), and a log line when the link ends before it was up
/// (a failed crypto negotiation names the file and the peer).
fn serve_opts(label: String, keydir: Option<&KeyDir>) -> ServeOptions {
    let mut opts = ServeOptions::new(label.clone()).shell(Arc::new(NodeShell));
    if let Some(dir) = keydir {
        opts = opts.keydir(dir.clone());
    }
    opts.on_exit(move |why| {
        if matches!(why, LinkError::Crypto { .. }) {
            eprintln!("dmsgd: link {label}: {why}");
        }
    })
}

/// Keeps a connection to `host`: reconnects after a failure or a loss,
/// waiting 1 s, then twice as long each time up to a minute (reset after a
/// link that lived).
fn keep_connected(node: Node, host: String, keydir: Option<KeyDir>) {
    let mut backoff = Duration::from_secs(1);
    loop {
        match connect(&host) {
            Ok(s) => {
                let opts = serve_opts(format!("to {host}"), keydir.as_ref());
                match node.serve(s, opts) {
                    Ok(h) => {
                        h.join();
                        backoff = Duration::from_secs(1);
                        eprintln!("dmsgd: lost {host}, reconnecting in {backoff:?}");
                    }
                    Err(e) => eprintln!("dmsgd: {host}: {e}"),
                }
            }
            Err(e) => eprintln!("dmsgd: {e} (retry in {backoff:?})"),
        }
        std::thread::sleep(backoff);
        backoff = (backoff * 2).min(Duration::from_secs(60));
    }
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("dmsgd: {e}");
            return ExitCode::FAILURE;
        }
    };
    let node = Node::default();
    node.on_event(log_event);
    let keydir = args.keydir.clone();
    node.enable_volconf(VolconfConfig {
        serve: Some(Arc::new(move |host: &str| {
            serve_opts(format!("volconf {host}"), keydir.as_ref())
        })),
        ..VolconfConfig::default()
    });
    let mut fsid = [0u8; 16];
    if let Err(e) = OsRandom.fill(&mut fsid) {
        eprintln!("dmsgd: no random pfs_fsid: {e}");
        return ExitCode::FAILURE;
    }
    let span = LnkSpan {
        pfs_clid: args.cluster,
        pfs_fsid: Uuid(fsid),
        pfs_type: PFSTYPE_SERVER,
        peer_type: args.peer_type,
        proto_version: 1,
        fs_label: Label::truncated(&args.label),
        ..LnkSpan::default()
    };
    node.add_local_span(span);

    let keydir = args.keydir.clone();
    let listener = match node.listen(args.listen.as_str(), move |peer| {
        serve_opts(format!("from {peer}"), keydir.as_ref())
    }) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("dmsgd: listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    eprintln!(
        "dmsgd: {} listening on {}",
        args.label,
        listener.local_addr()
    );
    for host in args.connect {
        let n = node.clone();
        let keydir = args.keydir.clone();
        std::thread::spawn(move || keep_connected(n, host, keydir));
    }
    loop {
        std::thread::park();
    }
}
