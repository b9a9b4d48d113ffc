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

use axum::http::StatusCode;
use distcache_core::Ring;
use futures_util::future::join_all;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tracing::{debug, info, warn};

use super::{Master, NodeRef, Placement, RingView};
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
    /// Whether the last health check succeeded.
    #[serde(skip)]
    last_ok: bool,
    /// Health checks failed in a row.
    #[serde(skip)]
    failures: u32,
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
    /// The members of the ring whose copies are in place; `None` until this
    /// master's first handoff completes (copies may then be anywhere).
    committed: Option<Vec<String>>,
}

impl Members {
    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        // A panic while holding the lock cannot leave the table half-updated
        // in a way that matters more than losing membership: keep serving.
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every known node, by id. A node that is up but whose keys have not
    /// reached it yet shows as joining.
    pub fn list(&self) -> Vec<NodeInfo> {
        let table = self.table();
        table.nodes.values().map(|n| table.shown(n)).collect()
    }

    /// One node.
    pub fn get(&self, id: &str) -> Option<NodeInfo> {
        let table = self.table();
        table.nodes.get(id).map(|n| table.shown(n))
    }

    /// The committed ring's members, if known.
    pub fn committed(&self) -> Option<Vec<String>> {
        self.table().committed.clone()
    }

    /// Marks `members` as the ring whose copies are in place, and removes the
    /// leaving nodes that handed their keys over (`handed_over`).
    pub(super) fn commit(&self, members: Vec<String>, handed_over: &[String]) -> Vec<String> {
        let mut table = self.table();
        table.committed = Some(members);
        let mut removed = Vec::new();
        for id in handed_over {
            if table
                .nodes
                .get(id)
                .is_some_and(|n| n.state == NodeState::Leaving)
            {
                let node = table.nodes.remove(id).expect("present");
                table.decommissioned.insert(id.clone(), node.incarnation);
                table.clients.remove(id);
                removed.push(id.clone());
            }
        }
        removed
    }

    /// True if node `id` is up or leaving and answered its last check.
    pub(super) fn is_live(&self, id: &str) -> bool {
        self.table().nodes.get(id).is_some_and(is_live)
    }

    /// Live nodes (up or leaving, answering): id and HTTP address.
    pub(super) fn live(&self) -> Vec<(String, String)> {
        self.table()
            .nodes
            .values()
            .filter(|n| is_live(n))
            .map(|n| (n.id.clone(), n.addr.clone()))
            .collect()
    }

    /// Data addresses of the given nodes.
    pub(super) fn data_addrs(&self, ids: &[String]) -> Vec<Option<String>> {
        let table = self.table();
        ids.iter()
            .map(|id| table.nodes.get(id).and_then(|n| n.data_addr.clone()))
            .collect()
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
                    last_ok: false,
                    failures: 0,
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

/// How long `DELETE /nodes/{id}` waits for the node's keys to move.
pub const DECOMMISSION_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Decommissions a node: it leaves the ring at once, hands its keys to their
/// new owners, and is removed once they have them (a node that is down is
/// removed at once; its keys are copied from their other replicas). Tells
/// the peers, and waits for the removal up to [`DECOMMISSION_WAIT`]: the
/// answer says whether the node is gone (`removed`) or still `leaving`.
pub async fn decommission(
    master: &Arc<Master>,
    id: &str,
    forwarded: bool,
) -> Result<(bool, NodeInfo), ApiError> {
    let (node, removed_now) = {
        let mut table = master.members.table();
        let Some(node) = table.nodes.get_mut(id) else {
            return Err(ApiError::not_found(
                "node_not_found",
                format!("no auxiliary with id {id:?}"),
            ));
        };
        if is_live(node) {
            node.state = NodeState::Leaving;
            let node = node.clone();
            let others_up = table
                .nodes
                .values()
                .any(|n| n.id != id && n.state == NodeState::Up);
            if !others_up {
                table.nodes.get_mut(id).expect("present").state = NodeState::Up;
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "last_node",
                    format!("{id} is the last auxiliary up: nobody could take its keys"),
                ));
            }
            (node, false)
        } else {
            let node = table.nodes.remove(id).expect("present");
            table
                .decommissioned
                .insert(id.to_string(), node.incarnation);
            table.clients.remove(id);
            (node, true)
        }
    };
    info!(node = %id, forwarded, live = !removed_now, "auxiliary decommissioned; its keys move away");
    if removed_now {
        master.metrics.forget_node(id);
    }
    rebuild_view(master);
    if !forwarded {
        let path = format!("/nodes/{}", encode_path_segment(id));
        forward_to_peers(master, reqwest::Method::DELETE, path, None);
    }
    if removed_now {
        return Ok((true, node));
    }
    let started = std::time::Instant::now();
    while started.elapsed() < DECOMMISSION_WAIT {
        if !master.members.table().nodes.contains_key(id) {
            let mut node = node;
            node.state = NodeState::Leaving;
            return Ok((true, node));
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    Ok((false, master.members.get(id).unwrap_or(node)))
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
        let url = format!("{}{path}", crate::security::base_url(&peer));
        let body = body.clone();
        let credentials = master.credentials.clone();
        master.shutdown.spawn(async move {
            let mut req = credentials
                .sign(client.request(method, &url))
                .header(FORWARDED_HEADER, "1");
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
        let url = format!("{}/nodes", crate::security::base_url(&peer));
        let request = master.credentials.sign(master.control.get(&url));
        let nodes: Vec<NodeInfo> = match request.send().await {
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
            last_ok: false,
            failures: 0,
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

/// Health checks a node must fail in a row before it is marked down, unless
/// its connection is refused outright. One slow answer on a busy machine
/// must not take a node out of the ring and start a rebalance.
pub const FAILS_BEFORE_DOWN: u32 = 2;

/// Why a health check failed.
#[derive(Debug)]
pub(super) struct ProbeError {
    /// Nothing listens there (or the network is unreachable): the node is
    /// certainly not serving.
    pub refused: bool,
    /// What happened.
    pub message: String,
}

impl std::fmt::Display for ProbeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

async fn probe(master: &Master, addr: &str) -> Result<AuxHealth, ProbeError> {
    fetch_health(master, addr).await
}

/// An auxiliary's `/health` answer as `T`, within `REQUEST_TIMEOUT_MS`.
pub(super) async fn fetch_health<T: serde::de::DeserializeOwned>(
    master: &Master,
    addr: &str,
) -> Result<T, ProbeError> {
    let url = format!("http://{addr}/health");
    let failed = |message: String| ProbeError {
        refused: false,
        message,
    };
    let call = async {
        let resp = master
            .control
            .get(&url)
            .send()
            .await
            .map_err(|e| ProbeError {
                refused: e.is_connect(),
                message: e.to_string(),
            })?;
        if !resp.status().is_success() {
            return Err(failed(format!("status {}", resp.status())));
        }
        resp.json::<T>().await.map_err(|e| failed(e.to_string()))
    };
    tokio::time::timeout(master.config.request_timeout(), call)
        .await
        .unwrap_or_else(|_| Err(failed("timed out".to_string())))
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
                    node.last_ok = true;
                    node.failures = 0;
                    master
                        .metrics
                        .health_checks
                        .with_label_values(&["ok"])
                        .inc();
                    node.items = health.items;
                    node.bytes = health.bytes;
                    let m = &master.metrics;
                    m.aux_items
                        .with_label_values(&[id.as_str()])
                        .set(clamp(health.items));
                    m.aux_bytes
                        .with_label_values(&[id.as_str()])
                        .set(clamp(health.bytes));
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
                    node.last_ok = false;
                    if node.state != NodeState::Leaving {
                        node.state = NodeState::Down;
                    }
                }
                Err(reason) => {
                    master
                        .metrics
                        .health_checks
                        .with_label_values(&["failed"])
                        .inc();
                    node.failures += 1;
                    let certain = reason.refused || node.failures >= FAILS_BEFORE_DOWN;
                    if !certain {
                        debug!(node = %id, addr = %addr, error = %reason, "health check failed once; checking again");
                        master.members.probe_soon();
                        continue;
                    }
                    node.last_ok = false;
                    if node.state == NodeState::Up || node.state == NodeState::Joining {
                        warn!(node = %id, addr = %addr, error = %reason, "health check failed; node is down");
                        node.state = NodeState::Down;
                    }
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

fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// True for a node whose copies can be read and sent: up, or leaving but
/// still answering.
fn is_live(node: &NodeInfo) -> bool {
    node.data_addr.is_some()
        && matches!(node.state, NodeState::Up | NodeState::Leaving)
        && node.last_ok
}

/// Swaps in a new view from the membership table: the target ring over the
/// live nodes that are not leaving, and the committed ring while it differs.
/// Wakes the rebalancer when keys need to move.
pub(super) fn rebuild_view(master: &Arc<Master>) {
    // The table lock is held until the new view is stored, so two rebuilds
    // can never store out of order.
    let mut table = master.members.table();
    let current = master.view.load();
    let vnodes = master.config.virtual_nodes();
    let target_ids: Vec<String> = table
        .nodes
        .values()
        .filter(|n| n.state == NodeState::Up && n.data_addr.is_some())
        .map(|n| n.id.clone())
        .collect();
    let target_ring = Ring::new(target_ids.iter().cloned(), vnodes);
    let target = Placement {
        nodes: target_ring
            .members()
            .iter()
            .map(|id| table.connection(id, master))
            .collect(),
        ring: target_ring,
    };
    let committed = match table.committed.clone() {
        Some(ids) if ids != target.ring.members() => {
            let ring = Ring::new(ids, vnodes);
            Some(Placement {
                nodes: ring
                    .members()
                    .iter()
                    .map(|id| table.connection(id, master))
                    .collect(),
                ring,
            })
        }
        _ => None,
    };
    let rebalancing = committed.is_some() || table.committed.is_none() && !target.ring.is_empty();
    if target.ring.epoch() != current.target.ring.epoch() {
        info!(
            epoch = %format!("{:016x}", target.ring.epoch()),
            members = ?target.ring.members(),
            "ring changed"
        );
        master.metrics.ring_changes.inc();
    }
    master
        .metrics
        .ring_members
        .set(target.ring.members().len() as i64);
    master
        .metrics
        .ring_epoch
        .set((target.ring.epoch() & ((1 << 53) - 1)) as i64);
    master.metrics.rebalance_pending.set(i64::from(rebalancing));
    master.view.store(Arc::new(RingView { target, committed }));
    drop(table);
    if rebalancing {
        master.rebalancer.wake();
    }
}

impl Table {
    /// A node as clients see it: up but not yet holding its keys shows as
    /// joining.
    fn shown(&self, node: &NodeInfo) -> NodeInfo {
        let mut shown = node.clone();
        let committed = self
            .committed
            .as_ref()
            .is_some_and(|c| c.contains(&node.id));
        if node.state == NodeState::Up && !committed {
            shown.state = NodeState::Joining;
        }
        shown
    }

    /// The data connection to a live node, made once and kept.
    fn connection(&mut self, id: &str, master: &Master) -> Option<Arc<NodeRef>> {
        let node = self.nodes.get(id).filter(|n| is_live(n))?;
        let data = node.data_addr.clone()?;
        match self.clients.get(id) {
            Some(c) if c.client.addr() == data => Some(c.clone()),
            _ => {
                let c = Arc::new(NodeRef {
                    id: id.to_string(),
                    client: distcache_wire::Client::new(data, master.wire_config()),
                });
                self.clients.insert(id.to_string(), c.clone());
                Some(c)
            }
        }
    }
}
