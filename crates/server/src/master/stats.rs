//! `GET /stats`: a summary for people (and `distcache stats`). For each
//! auxiliary this master knows: its state as this master sees it, and what
//! the node says of itself right now (items, bytes, capacity, hits, misses,
//! evictions, expirations), asked of every node at once with the usual
//! `REQUEST_TIMEOUT_MS`. A node that does not answer shows the size from its
//! last health check and no counters. Totals count copies: with
//! `REPLICAS=2` every key is counted twice.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use futures_util::future::join_all;
use serde::{Deserialize, Serialize};

use super::Master;
use super::membership::{NodeInfo, NodeState};

/// What an auxiliary's `/health` says about its store.
#[derive(Debug, Default, Deserialize)]
struct StoreHealth {
    items: u64,
    bytes: u64,
    #[serde(default)]
    capacity_items: Option<u64>,
    #[serde(default)]
    capacity_bytes: Option<u64>,
    #[serde(default)]
    hits: u64,
    #[serde(default)]
    misses: u64,
    #[serde(default)]
    evictions: u64,
    #[serde(default)]
    expirations: u64,
}

/// One auxiliary in the answer.
#[derive(Debug, Serialize)]
pub struct NodeStats {
    id: String,
    addr: String,
    state: NodeState,
    /// Whether the node answered just now.
    answered: bool,
    /// Why it did not, if it did not.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    items: u64,
    bytes: u64,
    capacity_items: Option<u64>,
    /// `None` when the node has no byte limit.
    capacity_bytes: Option<u64>,
    hits: Option<u64>,
    misses: Option<u64>,
    /// hits / (hits + misses) since the node started; `None` before any read.
    hit_ratio: Option<f64>,
    evictions: Option<u64>,
    expirations: Option<u64>,
    last_seen: Option<u64>,
}

/// Sums over the nodes that answered (items and bytes over all nodes).
#[derive(Debug, Default, Serialize)]
pub struct Totals {
    nodes: usize,
    nodes_up: usize,
    items: u64,
    bytes: u64,
    hits: u64,
    misses: u64,
    hit_ratio: Option<f64>,
    evictions: u64,
    expirations: u64,
}

/// The whole answer.
#[derive(Debug, Serialize)]
pub struct ClusterStats {
    master: String,
    ring_epoch: u64,
    ring_members: usize,
    rebalancing: bool,
    nodes: Vec<NodeStats>,
    totals: Totals,
}

fn ratio(hits: u64, misses: u64) -> Option<f64> {
    let reads = hits + misses;
    (reads > 0).then(|| hits as f64 / reads as f64)
}

async fn ask(master: &Master, addr: &str) -> Result<StoreHealth, String> {
    master
        .control
        .health_as(addr)
        .await
        .map_err(|e| e.to_string())
}

fn node_stats(info: NodeInfo, answer: Result<StoreHealth, String>) -> NodeStats {
    let mut stats = NodeStats {
        id: info.id,
        addr: info.addr,
        state: info.state,
        answered: answer.is_ok(),
        error: None,
        items: info.items,
        bytes: info.bytes,
        capacity_items: None,
        capacity_bytes: None,
        hits: None,
        misses: None,
        hit_ratio: None,
        evictions: None,
        expirations: None,
        last_seen: info.last_seen,
    };
    match answer {
        Ok(h) => {
            stats.items = h.items;
            stats.bytes = h.bytes;
            stats.capacity_items = h.capacity_items;
            stats.capacity_bytes = h.capacity_bytes;
            stats.hits = Some(h.hits);
            stats.misses = Some(h.misses);
            stats.hit_ratio = ratio(h.hits, h.misses);
            stats.evictions = Some(h.evictions);
            stats.expirations = Some(h.expirations);
        }
        Err(e) => stats.error = Some(e),
    }
    stats
}

fn totals(nodes: &[NodeStats]) -> Totals {
    let mut t = Totals {
        nodes: nodes.len(),
        nodes_up: nodes.iter().filter(|n| n.state == NodeState::Up).count(),
        ..Totals::default()
    };
    for n in nodes {
        t.items += n.items;
        t.bytes += n.bytes;
        t.hits += n.hits.unwrap_or(0);
        t.misses += n.misses.unwrap_or(0);
        t.evictions += n.evictions.unwrap_or(0);
        t.expirations += n.expirations.unwrap_or(0);
    }
    t.hit_ratio = ratio(t.hits, t.misses);
    t
}

/// `GET /stats`.
pub async fn stats(State(master): State<Arc<Master>>) -> Json<ClusterStats> {
    let nodes = master.nodes();
    let answers = join_all(nodes.iter().map(|n| ask(&master, &n.addr))).await;
    let nodes: Vec<NodeStats> = nodes
        .into_iter()
        .zip(answers)
        .map(|(n, a)| node_stats(n, a))
        .collect();
    let view = master.view.load();
    Json(ClusterStats {
        master: master.id.clone(),
        ring_epoch: view.epoch,
        ring_members: view.target.ring.members().len(),
        rebalancing: view.rebalancing(),
        totals: totals(&nodes),
        nodes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(items: u64, hits: Option<u64>, misses: Option<u64>, state: NodeState) -> NodeStats {
        NodeStats {
            id: "a".into(),
            addr: "a:1".into(),
            state,
            answered: hits.is_some(),
            error: None,
            items,
            bytes: items * 10,
            capacity_items: None,
            capacity_bytes: None,
            hits,
            misses,
            hit_ratio: None,
            evictions: None,
            expirations: None,
            last_seen: None,
        }
    }

    #[test]
    fn totals_sum_answers_and_the_ratio_is_over_all_reads() {
        let nodes = [
            node(5, Some(3), Some(1), NodeState::Up),
            node(7, Some(0), Some(4), NodeState::Up),
            node(2, None, None, NodeState::Down),
        ];
        let t = totals(&nodes);
        assert_eq!((t.nodes, t.nodes_up), (3, 2));
        assert_eq!((t.items, t.bytes), (14, 140));
        assert_eq!((t.hits, t.misses), (3, 5));
        assert_eq!(t.hit_ratio, Some(3.0 / 8.0));
    }

    #[test]
    fn no_reads_means_no_ratio() {
        assert_eq!(ratio(0, 0), None);
        assert_eq!(ratio(1, 0), Some(1.0));
    }
}
