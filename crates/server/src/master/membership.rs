//! Membership: which auxiliaries exist, which are up, and the ring derived
//! from the live ones.
//!
//! - Auxiliaries register with `POST /nodes` (idempotent: a second
//!   registration of the same node changes nothing). A master passes every
//!   registration and decommission on to its peers (`MASTER_PEERS`), marked
//!   as forwarded so that it travels one hop only. At start a master also
//!   asks its peers for the nodes they know.
//! - One health task probes every auxiliary's `/health` each
//!   `HEALTH_CHECK_INTERVAL`, all probes concurrently, each bounded by
//!   `REQUEST_TIMEOUT_MS`. A node that fails or hangs (a stopped process
//!   hangs) is marked down and leaves the ring; when it answers again it
//!   rejoins. A data call that fails asks for a probe at once, so a dead
//!   node leaves the ring without waiting for the next tick.
//! - The ring is a pure function of the live member ids, so masters that see
//!   the same members compute the same ring and epoch.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::http::StatusCode;
use distcache_core::Ring;
use futures_util::future::join_all;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tracing::{debug, info, warn};

use super::{Master, NodeRef, RingView};
use crate::config::is_host_port;
use crate::http::ApiError;

/// Header that marks a membership call as passed on by a peer master.
pub const FORWARDED_HEADER: &str = "x-distcache-forwarded";

/// An auxiliary's state as this master sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    /// Registered, not yet seen healthy: not in the ring.
    Joining,
    /// Healthy: in the ring.
    Up,
    /// Failed its last health check: not in the ring.
    Down,
    /// Being decommissioned: not in the ring.
    Leaving,
}

/// What this master knows of one auxiliary.
#[derive(Clone, Debug, Serialize)]
pub struct NodeInfo {
    /// The node's id.
    pub id: String,
    /// Its HTTP address (health, metrics).
    pub addr: String,
    /// Its data-protocol address, once known.
    pub data_addr: Option<String>,
    /// Up, down, joining or leaving.
    pub state: NodeState,
    /// Items held, at the last health check.
    pub items: u64,
    /// Bytes of keys and values held, at the last health check.
    pub bytes: u64,
    /// Unix milliseconds of the last successful health check.
    pub last_seen: Option<u64>,
    /// The node process's incarnation, if it said.
    pub incarnation: Option<u64>,
}

/// A registration, from an auxiliary or an operator.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    /// The node's id; defaults to `addr`.
    pub id: Option<String>,
    /// HTTP `host:port` of the auxiliary.
    pub addr: String,
    /// Data-protocol `host:port`; learned from the node's `/health` if absent.
    pub data_addr: Option<String>,
    /// The node process's incarnation.
    pub incarnation: Option<u64>,
}

/// The membership table and the signal that asks for a probe now.
#[derive(Default)]
pub struct Members {
    table: Mutex<Table>,
    probe_now: Notify,
}

#[derive(Default)]
struct Table {
    nodes: BTreeMap<String, NodeInfo>,
    /// Decommissioned ids and the incarnation that was running then; that
    /// incarnation may not register again (a restarted process may).
    decommissioned: HashMap<String, Option<u64>>,
    /// Data connections by node id, kept across ring changes.
    clients: HashMap<String, Arc<NodeRef>>,
}

impl Members {
    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        // A panic while holding the lock cannot leave the table half-updated
        // in a way that matters more than losing membership: keep serving.
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every known node, by id.
    pub fn list(&self) -> Vec<NodeInfo> {
        self.table().nodes.values().cloned().collect()
    }

    /// One node.
    pub fn get(&self, id: &str) -> Option<NodeInfo> {
        self.table().nodes.get(id).cloned()
    }

    /// Asks the health task to probe every node now.
    pub fn probe_soon(&self) {
        self.probe_now.notify_one();
    }
}

/// Starts the membership tasks of `master`.
pub fn start(master: &Arc<Master>) {
    let m = master.clone();
    master.shutdown.spawn(async move { health_loop(m).await });
    if !master.config.master_peers.is_empty() {
        let m = master.clone();
        master
            .shutdown
            .spawn(async move { learn_from_peers(m).await });
    }
    for addr in master.config.aux_servers.clone() {
        let m = master.clone();
        master
            .shutdown
            .spawn(async move { watch_static_aux(m, addr).await });
    }
}

/// Registers a node. Returns 201 for a new node, 200 for a known one.
pub fn register(
    master: &Arc<Master>,
    reg: Registration,
    forwarded: bool,
) -> Result<(StatusCode, NodeInfo), ApiError> {
    if !is_host_port(&reg.addr) {
        return Err(ApiError::bad_request(
            "bad_addr",
            format!("addr {:?} is not host:port", reg.addr),
        ));
    }
    if let Some(data) = &reg.data_addr {
        if !is_host_port(data) {
            return Err(ApiError::bad_request(
                "bad_addr",
                format!("data_addr {data:?} is not host:port"),
            ));
        }
    }
    let id = reg.id.clone().unwrap_or_else(|| reg.addr.clone());
    if id.is_empty() || id.len() > 255 {
        return Err(ApiError::bad_request("bad_id", "id must be 1 to 255 bytes"));
    }
    let (status, info, changed) = {
        let mut table = master.members.table();
        if let Some(gone) = table.decommissioned.get(&id) {
            if reg.incarnation.is_some() && *gone == reg.incarnation {
                return Err(ApiError::new(
                    StatusCode::GONE,
                    "decommissioned",
                    format!("node {id} was decommissioned; restart it to join again"),
                ));
            }
            table.decommissioned.remove(&id);
        }
        match table.nodes.get_mut(&id) {
            Some(node) => {
                let same = node.addr == reg.addr
                    && (reg.data_addr.is_none() || node.data_addr == reg.data_addr)
                    && (reg.incarnation.is_none() || node.incarnation == reg.incarnation);
                if !same {
                    node.addr = reg.addr.clone();
                    if reg.data_addr.is_some() {
                        node.data_addr = reg.data_addr.clone();
                    }
                    if reg.incarnation.is_some() {
                        node.incarnation = reg.incarnation;
                    }
                }
                (StatusCode::OK, node.clone(), !same)
            }
            None => {
                let node = NodeInfo {
                    id: id.clone(),
                    addr: reg.addr.clone(),
                    data_addr: reg.data_addr.clone(),
                    state: NodeState::Joining,
                    items: 0,
                    bytes: 0,
                    last_seen: None,
                    incarnation: reg.incarnation,
                };
                table.nodes.insert(id.clone(), node.clone());
                (StatusCode::CREATED, node, true)
            }
        }
    };
    if changed {
        info!(node = %id, addr = %reg.addr, data_addr = ?reg.data_addr, forwarded, "auxiliary registered");
        master.members.probe_soon();
        if !forwarded {
            forward_to_peers(
                master,
                reqwest::Method::POST,
                "/nodes".to_string(),
                Some(reg),
            );
        }
    } else {
        debug!(node = %id, "registration repeated; nothing changed");
    }
    Ok((status, info))
}

/// Removes a node from membership and the ring and tells the peers.
pub fn decommission(master: &Arc<Master>, id: &str, forwarded: bool) -> Result<NodeInfo, ApiError> {
    let removed = {
        let mut table = master.members.table();
        let removed = table.nodes.remove(id);
        if let Some(node) = &removed {
            table
                .decommissioned
                .insert(id.to_string(), node.incarnation);
            table.clients.remove(id);
        }
        removed
    };
    let Some(mut node) = removed else {
        return Err(ApiError::not_found(
            "node_not_found",
            format!("no auxiliary with id {id:?}"),
        ));
    };
    node.state = NodeState::Leaving;
    info!(node = %id, forwarded, "auxiliary decommissioned");
    master.metrics.aux_up.remove_label_values(&[id]).ok();
    rebuild_view(master);
    if !forwarded {
        let path = format!("/nodes/{}", encode_path_segment(id));
        forward_to_peers(master, reqwest::Method::DELETE, path, None);
    }
    Ok(node)
}

fn encode_path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b':') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn forward_to_peers(
    master: &Arc<Master>,
    method: reqwest::Method,
    path: String,
    body: Option<Registration>,
) {
    for peer in master.config.master_peers.clone() {
        let client = master.control.clone();
        let method = method.clone();
        let url = format!("http://{peer}{path}");
        let body = body.clone();
        master.shutdown.spawn(async move {
            let mut req = client.request(method, &url).header(FORWARDED_HEADER, "1");
            if let Some(body) = &body {
                req = req.json(body);
            }
            match req.send().await {
                Ok(resp)
                    if resp.status().is_success() || resp.status() == StatusCode::NOT_FOUND => {}
                Ok(resp) => {
                    warn!(peer = %peer, status = %resp.status(), "peer refused a membership change")
                }
                Err(e) => warn!(peer = %peer, error = %e, "could not reach peer master"),
            }
        });
    }
}

/// At start, adopt the nodes the peer masters already know.
async fn learn_from_peers(master: Arc<Master>) {
    for peer in master.config.master_peers.clone() {
        let url = format!("http://{peer}/nodes");
        let nodes: Vec<NodeInfo> = match master.control.get(&url).send().await {
            Ok(resp) if resp.status().is_success() => match resp.json::<PeerNodes>().await {
                Ok(list) => list.nodes,
                Err(e) => {
                    warn!(peer = %peer, error = %e, "peer's node list did not parse");
                    continue;
                }
            },
            Ok(resp) => {
                debug!(peer = %peer, status = %resp.status(), "peer did not list its nodes");
                continue;
            }
            Err(e) => {
                debug!(peer = %peer, error = %e, "peer not reachable at start");
                continue;
            }
        };
        for node in nodes {
            let reg = Registration {
                id: Some(node.id),
                addr: node.addr,
                data_addr: node.data_addr,
                incarnation: node.incarnation,
            };
            if let Err(e) = register(&master, reg, true) {
                debug!(peer = %peer, error = ?e.message, "could not adopt a peer's node");
            }
        }
    }
}

#[derive(Deserialize)]
struct PeerNodes {
    nodes: Vec<NodeInfo>,
}

impl<'de> Deserialize<'de> for NodeInfo {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Wire {
            id: String,
            addr: String,
            data_addr: Option<String>,
            incarnation: Option<u64>,
        }
        let w = Wire::deserialize(d)?;
        Ok(NodeInfo {
            id: w.id,
            addr: w.addr,
            data_addr: w.data_addr,
            state: NodeState::Joining,
            items: 0,
            bytes: 0,
            last_seen: None,
            incarnation: w.incarnation,
        })
    }
}

/// An `AUX_SERVERS` entry: probe it until it answers, then register it under
/// the id it reports. (It also registers itself; either way works.)
async fn watch_static_aux(master: Arc<Master>, addr: String) {
    let mut wait = std::time::Duration::from_millis(200);
    loop {
        if let Ok(health) = probe(&master, &addr).await {
            let reg = Registration {
                id: Some(health.node_id),
                addr: addr.clone(),
                data_addr: Some(health.data_addr),
                incarnation: health.incarnation,
            };
            if let Err(e) = register(&master, reg, false) {
                warn!(addr = %addr, error = %e.message, "could not register AUX_SERVERS entry");
            }
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = master.shutdown.triggered() => return,
        }
        wait = (wait * 2).min(master.config.health_check_interval());
    }
}

/// What an auxiliary's `/health` says.
#[derive(Debug, Deserialize)]
struct AuxHealth {
    node_id: String,
    data_addr: String,
    incarnation: Option<u64>,
    #[serde(default)]
    items: u64,
    #[serde(default)]
    bytes: u64,
}

async fn probe(master: &Master, addr: &str) -> Result<AuxHealth, String> {
    let url = format!("http://{addr}/health");
    let call = async {
        let resp = master
            .control
            .get(&url)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !resp.status().is_success() {
            return Err(format!("status {}", resp.status()));
        }
        resp.json::<AuxHealth>().await.map_err(|e| e.to_string())
    };
    tokio::time::timeout(master.config.request_timeout(), call)
        .await
        .unwrap_or_else(|_| Err("timed out".to_string()))
}

async fn health_loop(master: Arc<Master>) {
    let interval = master.config.health_check_interval();
    loop {
        check_all(&master).await;
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = master.members.probe_now.notified() => {}
            _ = master.shutdown.triggered() => return,
        }
    }
}

/// Probes every node once, concurrently, and applies the results.
async fn check_all(master: &Arc<Master>) {
    let targets: Vec<(String, String)> = master
        .members
        .table()
        .nodes
        .values()
        .map(|n| (n.id.clone(), n.addr.clone()))
        .collect();
    let results = join_all(targets.iter().map(|(_, addr)| probe(master, addr))).await;
    let now = (master.clock)();
    {
        let mut table = master.members.table();
        for ((id, addr), result) in targets.iter().zip(results) {
            let Some(node) = table.nodes.get_mut(id) else {
                continue; // decommissioned while probing
            };
            if node.addr != *addr {
                continue; // re-registered elsewhere while probing
            }
            let before = node.state;
            match result {
                Ok(health) if health.node_id == *id => {
                    master
                        .metrics
                        .health_checks
                        .with_label_values(&["ok"])
                        .inc();
                    node.items = health.items;
                    node.bytes = health.bytes;
                    node.last_seen = Some(now);
                    node.data_addr = Some(health.data_addr);
                    if health.incarnation.is_some() {
                        node.incarnation = health.incarnation;
                    }
                    if node.state != NodeState::Leaving {
                        node.state = NodeState::Up;
                    }
                }
                Ok(health) => {
                    master
                        .metrics
                        .health_checks
                        .with_label_values(&["failed"])
                        .inc();
                    warn!(node = %id, addr = %addr, answered_as = %health.node_id, "another node answers at this address");
                    node.state = NodeState::Down;
                }
                Err(reason) => {
                    master
                        .metrics
                        .health_checks
                        .with_label_values(&["failed"])
                        .inc();
                    if node.state != NodeState::Down {
                        warn!(node = %id, addr = %addr, error = %reason, "health check failed; node is down");
                    }
                    node.state = NodeState::Down;
                }
            }
            if before != node.state && node.state == NodeState::Up {
                info!(node = %id, addr = %addr, "node is up");
            }
            master
                .metrics
                .aux_up
                .with_label_values(&[id.as_str()])
                .set(i64::from(node.state == NodeState::Up));
        }
    }
    rebuild_view(master);
}

/// Swaps in a new ring if the set of live nodes (or their addresses) changed.
fn rebuild_view(master: &Arc<Master>) {
    // The table lock is held until the new view is stored, so two rebuilds
    // can never store out of order.
    let mut table = master.members.table();
    let current = master.view.load();
    let live: Vec<(String, String)> = table
        .nodes
        .values()
        .filter(|n| n.state == NodeState::Up)
        .filter_map(|n| n.data_addr.clone().map(|d| (n.id.clone(), d)))
        .collect();
    let unchanged = live.len() == current.nodes.len()
        && live
            .iter()
            .zip(current.ring.members().iter().zip(&current.nodes))
            .all(|((id, data), (member, node))| id == member && node.client.addr() == data);
    if unchanged {
        return;
    }
    let ring = Ring::new(
        live.iter().map(|(id, _)| id.clone()),
        master.config.virtual_nodes(),
    );
    let mut nodes = Vec::with_capacity(ring.members().len());
    for member in ring.members() {
        let data = &live
            .iter()
            .find(|(id, _)| id == member)
            .expect("member is live")
            .1;
        let node = match table.clients.get(member) {
            Some(node) if node.client.addr() == data => node.clone(),
            _ => {
                let node = Arc::new(NodeRef {
                    id: member.clone(),
                    client: distcache_wire::Client::new(data.clone(), master.wire_config()),
                });
                table.clients.insert(member.clone(), node.clone());
                node
            }
        };
        nodes.push(node);
    }
    let previous = if current.ring.is_empty() {
        None
    } else {
        Some((current.ring.clone(), current.nodes.clone()))
    };
    info!(
        epoch = %format!("{:016x}", ring.epoch()),
        members = ?ring.members(),
        "ring changed"
    );
    master.metrics.ring_members.set(ring.members().len() as i64);
    master
        .metrics
        .ring_epoch
        .set((ring.epoch() & ((1 << 53) - 1)) as i64);
    master.metrics.ring_changes.inc();
    master.view.store(Arc::new(RingView {
        ring,
        nodes,
        previous,
        since: Instant::now(),
    }));
}
