//! `dmsgd`: a dmsg node daemon.
//!
//! ```text
//! dmsgd [--listen ADDR:PORT] [--connect HOST[:PORT]]... [--label NAME]
//!       [--peer-type hammer2|cluster] [--cluster UUID]
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
#![forbid(unsafe_code)]

use dmsg::crypto::{OsRandom, RandomSource};
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
defaults: --listen 0.0.0.0:987, --label dmsgd-<pid>, --peer-type hammer2";

struct Args {
    listen: String,
    connect: Vec<String>,
    label: String,
    peer_type: u8,
    cluster: Uuid,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        listen: format!("0.0.0.0:{}", dmsg::wire::LISTEN_PORT),
        connect: Vec::new(),
        label: format!("dmsgd-{}", std::process::id()),
        peer_type: PEER_HAMMER2,
        cluster: SIM_CLUSTER,
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

/// Keeps a connection to `host`: reconnects after a failure or a loss,
/// waiting 1 s, then twice as long each time up to a minute (reset after a
/// link that lived).
fn keep_connected(node: Node, host: String) {
    let mut backoff = Duration::from_secs(1);
    loop {
        match connect(&host) {
            Ok(s) => {
                let opts = ServeOptions::new(format!("to {host}")).shell(Arc::new(NodeShell));
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
    node.enable_volconf(VolconfConfig {
        serve: Some(Arc::new(|host: &str| {
            ServeOptions::new(format!("volconf {host}")).shell(Arc::new(NodeShell))
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

    let listener = match node.listen(args.listen.as_str(), |peer| {
        ServeOptions::new(format!("from {peer}")).shell(Arc::new(NodeShell))
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
        std::thread::spawn(move || keep_connected(n, host));
    }
    loop {
        std::thread::park();
    }
}
