//! Looking into a [`Hub`]: the tree dump of STATE.md §9.7
//! (`dmsg_shell_tree`), `dmsg_debug_findspan`, and views of nodes and
//! relays for tests and the circuit layer.

use super::{Hub, Idx, LinkId, LnkSpan, NodeId, Src};
use crate::state::TxnId;
use crate::wire::constants::peer_type_str;
use std::sync::Arc;

/// A received span, as [`Hub::findspan`] and [`Hub::relay`] name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpanRef {
    /// The link it came on; `None` for a local span.
    pub link: Option<LinkId>,
    /// Its transaction on that link (`None` for a local span).
    pub txn: Option<TxnId>,
    /// Its msgid as the peer chose it (0 for a local span).
    pub msgid: u64,
    /// The node it advertises.
    pub node: NodeId,
    /// Its distance.
    pub dist: u32,
    /// Its rnss.
    pub rnss: u32,
}

/// One node of the registry.
#[derive(Clone, Debug)]
pub struct NodeView {
    /// Its id.
    pub id: NodeId,
    /// The body of its first span.
    pub span: Arc<LnkSpan>,
    /// Its span links, best first.
    pub links: Vec<SpanRef>,
}

/// One relay: a span this node sends on a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelayView {
    /// The link the relayed SPAN is sent on.
    pub link: LinkId,
    /// Our transaction of that SPAN.
    pub txn: TxnId,
    /// Its msgid.
    pub msgid: u64,
    /// The span link it copies.
    pub source: SpanRef,
}

impl Hub {
    fn span_ref(&self, l: Idx) -> Option<SpanRef> {
        let sl = self.links.get(l)?;
        let node = self.nodes.get(sl.node)?.id;
        let (link, txn, msgid) = match sl.src {
            Src::Remote { link, txn, msgid } => (Some(link), Some(txn), msgid),
            Src::Local(_) => (None, None, 0),
        };
        Some(SpanRef {
            link,
            txn,
            msgid,
            node,
            dist: sl.dist,
            rnss: sl.rnss,
        })
    }

    fn via(&self, link: Option<LinkId>) -> i64 {
        link.and_then(|l| self.ports.get(&l)).map_or(-1, |p| p.via)
    }

    /// The tree dump of STATE.md §9.7, one `dmsg_circuit_printf` call per
    /// line (each ends in a newline). `via` is the number given to
    /// [`Hub::add_link`]; local spans show msgid 0 and via -1.
    pub fn tree_lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (key, &ci) in &self.clusters {
            let Some(cluster) = self.cluster_slab.get(ci) else {
                continue;
            };
            out.push(format!(
                "Cluster {} {} ({})\n",
                peer_type_str(key.0),
                key.1,
                key.2
            ));
            for &ni in cluster.nodes.values() {
                let Some(node) = self.nodes.get(ni) else {
                    continue;
                };
                out.push(format!(
                    "    Node {:02x} {} ({})\n",
                    node.body.pfs_type, node.body.pfs_fsid, node.body.fs_label
                ));
                for &l in &node.links {
                    let Some(r) = self.span_ref(l) else {
                        continue;
                    };
                    out.push(format!(
                        "\tSLink msgid {:016x} dist={} via {}\n",
                        r.msgid,
                        r.dist,
                        self.via(r.link)
                    ));
                    for (&pl, port) in &self.ports {
                        let Some(v) = port.conn.as_ref().and_then(|c| c.relays.get(&ni)) else {
                            continue;
                        };
                        for rec in v.iter().filter(|rec| rec.src == l) {
                            out.push(format!(
                                "\t    Relay-out msgid {:016x} via {}\n",
                                rec.msgid,
                                self.via(Some(pl))
                            ));
                        }
                    }
                }
            }
        }
        out
    }

    /// The whole tree dump as one string.
    pub fn tree(&self) -> String {
        self.tree_lines().concat()
    }

    /// `dmsg_debug_findspan`: the first received span (in registry order)
    /// whose msgid is `msgid`. msgids are chosen by the peers, so several
    /// links may carry the same one.
    pub fn findspan(&self, msgid: u64) -> Option<SpanRef> {
        self.links
            .iter()
            .filter(|(_, sl)| matches!(sl.src, Src::Remote { msgid: m, .. } if m == msgid))
            .find_map(|(l, _)| self.span_ref(l))
    }

    /// The relay we sent as transaction `txn` on `link`, with the span it
    /// copies (what a `LNK_CIRC` naming that SPAN is forwarded along).
    pub fn relay(&self, link: LinkId, txn: TxnId) -> Option<RelayView> {
        let &super::Role::RelayOut(ni) = self.txns.get(&(link, txn))? else {
            return None;
        };
        let conn = self.ports.get(&link)?.conn.as_ref()?;
        let rec = conn.relays.get(&ni)?.iter().find(|r| r.txn == txn)?;
        Some(RelayView {
            link,
            txn,
            msgid: rec.msgid,
            source: self.span_ref(rec.src)?,
        })
    }

    /// Every node, in registry order.
    pub fn nodes(&self) -> Vec<NodeView> {
        let mut out = Vec::with_capacity(self.nodes.len());
        for &ci in self.clusters.values() {
            let Some(cluster) = self.cluster_slab.get(ci) else {
                continue;
            };
            for &ni in cluster.nodes.values() {
                if let Some(n) = self.nodes.get(ni) {
                    out.push(NodeView {
                        id: n.id,
                        span: Arc::clone(&n.body),
                        links: n.links.iter().filter_map(|&l| self.span_ref(l)).collect(),
                    });
                }
            }
        }
        out
    }

    /// Every live relay, by link, node and rank.
    pub fn relays(&self) -> Vec<RelayView> {
        let mut out = Vec::with_capacity(self.relay_count);
        for (&pl, port) in &self.ports {
            let Some(conn) = port.conn.as_ref() else {
                continue;
            };
            let mut nodes: Vec<&Idx> = conn.relays.keys().collect();
            nodes.sort();
            for ni in nodes {
                for rec in conn.relays.get(ni).into_iter().flatten() {
                    if let Some(source) = self.span_ref(rec.src) {
                        out.push(RelayView {
                            link: pl,
                            txn: rec.txn,
                            msgid: rec.msgid,
                            source,
                        });
                    }
                }
            }
        }
        out
    }
}
