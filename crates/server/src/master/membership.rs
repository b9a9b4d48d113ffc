//! Membership: the cluster map as this master applied it, and the work
//! around it.
//!
//! - The map ([`ClusterMap`], a pure engine in `distcache_core::cluster`)
//!   changes only through events committed by the masters' Raft group
//!   ([`super::consensus`]). Every master proposes what it is told:
//!   registrations (`POST /nodes`, from auxiliaries or operators) and
//!   decommissions (`DELETE /nodes/{id}`); a follower's proposal goes to the
//!   leader. A registration that changes nothing is answered from the map
//!   this master applied, without a trip through the log: auxiliaries
//!   register again every few seconds.
//! - Every master follows the map it applied: each new map becomes a new
//!   [`RingView`] (rings, connections, the epoch), so every master that
//!   applied the same map routes every key the same way.
//! - Every master probes every auxiliary's `/health` each
//!   `HEALTH_CHECK_INTERVAL` (for `GET /nodes`, `/stats` and metrics), all
//!   probes concurrently, each bounded by `REQUEST_TIMEOUT_MS`. Only the
//!   Raft leader turns what it sees into verdicts (a node down after
//!   [`FAILS_BEFORE_DOWN`] failures in a row or a refused connection, up
//!   again when it answers as itself) and proposes those that change the
//!   map. A data call that fails asks for a probe at once.
//! - When a master starts, it proposes its `REPLICAS` and `VIRTUAL_NODES`
//!   before anything else; a cluster takes them once, before its first
//!   node joins, and a master started later with other settings says so
//!   in its log and routes by the cluster's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use distcache_core::Ring;
use distcache_core::cluster::{
    self, Accepted, ClusterConfig, ClusterMap, Command, Event, Node, Rejection, Routing,
};
use futures_util::future::join_all;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, watch};
use tracing::{debug, info, warn};

use super::consensus::{self, ProposeError, Replicated};
use super::{Master, NodeRef, Placement, RingView};
use crate::config::is_host_port;
use crate::control_api::AuxHealth;
use crate::http::ApiError;

pub use distcache_core::cluster::NodeState;

impl Replicated for ClusterMap {
    type Event = Event;
    /// `None` only as the default value the trait asks for.
    type Output = Option<cluster::Applied>;

    fn apply(&mut self, event: Event) -> Option<cluster::Applied> {
        Some(ClusterMap::apply(self, event))
    }
}

/// One auxiliary as `GET /nodes` shows it: the map's record, and what this
/// master's own probes saw.
#[derive(Clone, Debug, Serialize)]
pub struct NodeInfo {
    /// The node's id.
    pub id: String,
    /// Its HTTP address (health, metrics).
    pub addr: String,
    /// Its data-protocol address, once known.
    pub data_addr: Option<String>,
    /// Up, down, joining or leaving, as the map says (an up node whose
    /// keys have not reached it yet shows as joining).
    pub state: NodeState,
    /// Items held, at this master's last probe.
    pub items: u64,
    /// Bytes of keys and values held, at this master's last probe.
    pub bytes: u64,
    /// Unix milliseconds of this master's last successful probe.
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
    /// The highest cluster-map epoch the node has seen: a map rebuilt from
    /// scratch moves its epochs past it.
    #[serde(default)]
    pub epoch: Option<u64>,
}

/// What this master's own probes saw of one node.
#[derive(Clone, Debug, Default)]
struct Seen {
    /// Probes failed in a row.
    failures: u32,
    items: u64,
    bytes: u64,
    last_seen: Option<u64>,
}

/// This master's side of membership: its probes' findings, its data
/// connections, and the signals between its tasks.
pub struct Members {
    seen: Mutex<HashMap<String, Seen>>,
    /// Data connections by node id, kept across maps.
    clients: Mutex<HashMap<String, Arc<NodeRef>>>,
    probe_now: Notify,
    /// True once this master's settings were proposed and answered:
    /// registrations wait for it, so that a cluster's first node cannot
    /// join before its settings are in the map.
    configured: watch::Sender<bool>,
}

impl Default for Members {
    fn default() -> Self {
        Members {
            seen: Mutex::default(),
            clients: Mutex::default(),
            probe_now: Notify::new(),
            configured: watch::Sender::new(false),
        }
    }
}

impl Members {
    fn seen(&self) -> std::sync::MutexGuard<'_, HashMap<String, Seen>> {
        // Probe findings are advisory: after a panic elsewhere, keep serving.
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Asks the health task to probe every node now.
    pub fn probe_soon(&self) {
        self.probe_now.notify_one();
    }
}

impl Master {
    /// Every node of the map this master applied, by id.
    pub(super) fn nodes(&self) -> Vec<NodeInfo> {
        let applied = self.map();
        let seen = self.members.seen();
        applied
            .state
            .nodes()
            .map(|n| node_info(&applied.state, n, seen.get(&n.id)))
            .collect()
    }

    /// One node of the map this master applied.
    pub(super) fn node(&self, id: &str) -> Option<NodeInfo> {
        let applied = self.map();
        let node = applied.state.node(id)?;
        Some(node_info(&applied.state, node, self.members.seen().get(id)))
    }

    /// The committed ring's members, if any round has finished.
    pub(super) fn committed(&self) -> Option<Vec<String>> {
        self.map().state.committed_members().map(<[String]>::to_vec)
    }

    /// Proposes `event` to the map and returns what applying it did.
    pub(super) async fn propose(&self, event: Event) -> Result<cluster::Applied, ApiError> {
        match self.consensus.propose(event).await {
            Ok(Some(applied)) => Ok(applied),
            Ok(None) => Err(ApiError::unavailable(
                "map_unavailable",
                "the cluster map gave no answer",
            )),
            Err(e) => Err(propose_error(e)),
        }
    }
}

fn node_info(map: &ClusterMap, node: &Node, seen: Option<&Seen>) -> NodeInfo {
    let seen = seen.cloned().unwrap_or_default();
    NodeInfo {
        id: node.id.clone(),
        addr: node.addr.clone(),
        data_addr: node.data_addr.clone(),
        state: map.shown_state(node),
        items: seen.items,
        bytes: seen.bytes,
        last_seen: seen.last_seen,
        incarnation: node.incarnation,
    }
}

/// A failed proposal as a client sees it: the map could not change now.
fn propose_error(e: ProposeError) -> ApiError {
    match e {
        ProposeError::NoLeader { .. } => ApiError::unavailable(
            "no_leader",
            format!(
                "the cluster map cannot change now: {e} (is a majority of the masters up and reachable?)"
            ),
        ),
        ProposeError::Unknown { .. } => ApiError::unavailable(
            "map_change_unconfirmed",
            format!("{e}; it may still take effect: repeat the request to be sure"),
        ),
        ProposeError::Rejected { .. } | ProposeError::Stopped | ProposeError::NotLeader => {
            ApiError::unavailable("map_unavailable", e.to_string())
        }
    }
}

/// A refusal of the map as a client sees it.
pub(super) fn rejection_error(r: Rejection) -> ApiError {
    let message = r.to_string();
    match r {
        Rejection::UnknownNode { .. } => ApiError::not_found("node_not_found", message),
        Rejection::BadId { .. } => ApiError::bad_request("bad_id", message),
        Rejection::BadAddr { .. } => ApiError::bad_request("bad_addr", message),
        Rejection::NoDataAddr { .. } => ApiError::bad_request("bad_addr", message),
        Rejection::Decommissioned { .. } => {
            ApiError::new(StatusCode::GONE, "decommissioned", message)
        }
        Rejection::LastNode { .. } => ApiError::new(StatusCode::CONFLICT, "last_node", message),
        Rejection::NoAuxiliaries => ApiError::unavailable("no_auxiliaries", message),
        Rejection::StaleRound { .. } | Rejection::Configured { .. } => {
            ApiError::new(StatusCode::CONFLICT, "conflict", message)
        }
    }
}

/// Starts the membership tasks of `master`, which proposes `settings`.
pub fn start(master: &Arc<Master>, settings: ClusterConfig) {
    let m = master.clone();
    master.shutdown.spawn(async move { follow_map(m).await });
    let m = master.clone();
    master
        .shutdown
        .spawn(async move { propose_settings(m, settings).await });
    let m = master.clone();
    master.shutdown.spawn(async move { health_loop(m).await });
    for addr in master.config.aux_servers.clone() {
        let m = master.clone();
        master
            .shutdown
            .spawn(async move { watch_static_aux(m, addr).await });
    }
}

/// Proposes this master's settings until the map answers, then lets
/// registrations through.
async fn propose_settings(master: Arc<Master>, settings: ClusterConfig) {
    let mut wait = Duration::from_millis(200);
    loop {
        match master.propose(Event::Configure { config: settings }).await {
            Ok(applied) => {
                match applied.outcome {
                    Ok(Accepted::Changed) => {
                        info!(
                            replicas = settings.replicas,
                            virtual_nodes = settings.virtual_nodes,
                            "cluster settings set"
                        )
                    }
                    Ok(_) => debug!("cluster settings as configured"),
                    Err(e) => warn!(
                        error = %e,
                        replicas = settings.replicas,
                        virtual_nodes = settings.virtual_nodes,
                        "REPLICAS or VIRTUAL_NODES differ from the cluster's; this master routes by the cluster's"
                    ),
                }
                master.members.configured.send_replace(true);
                return;
            }
            Err(e) => debug!(error = %e.message, "settings not proposed yet; retrying"),
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = master.shutdown.triggered() => return,
        }
        wait = (wait * 2).min(Duration::from_secs(2));
    }
}

/// Waits until this master's settings are in the map (or it gives up).
async fn wait_configured(master: &Master) -> Result<(), ApiError> {
    let mut configured = master.members.configured.subscribe();
    let limit = Duration::from_secs(10);
    match tokio::time::timeout(limit, configured.wait_for(|done| *done)).await {
        Ok(Ok(_)) => Ok(()),
        _ => Err(ApiError::unavailable(
            "no_leader",
            "the masters have not agreed on the cluster map yet (is a majority of them up?)",
        )),
    }
}

/// What `POST /nodes` answers: the node, and the epoch of a map that holds
/// the registration as made. An auxiliary admits no routed request until
/// it has this answer, and then none routed by an older map (see
/// `EpochFence` on the auxiliary): a restart changes its incarnation, which
/// changes the map, so this epoch is past every map that routed to the
/// process before the restart.
#[derive(Clone, Debug, Serialize)]
pub struct Registered {
    /// The node as the map holds it.
    #[serde(flatten)]
    pub node: NodeInfo,
    /// The epoch of the map this master answers from.
    pub epoch: u64,
}

/// Registers a node. Returns 201 for a new node, 200 for a known one.
pub async fn register(
    master: &Arc<Master>,
    reg: Registration,
) -> Result<(StatusCode, Registered), ApiError> {
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
    let event = Event::Register {
        id: id.clone(),
        addr: reg.addr.clone(),
        data_addr: reg.data_addr.clone(),
        incarnation: reg.incarnation,
        seen_epoch: reg.epoch,
    };
    // Auxiliaries register again every few seconds: a registration the
    // applied map already holds is answered without a trip through the log.
    match master.map().state.preview(&event) {
        Ok(Accepted::Unchanged) => {
            if let Some(node) = master.node(&id) {
                debug!(node = %id, "registration repeated; nothing changed");
                let epoch = master.map().state.epoch();
                return Ok((StatusCode::OK, Registered { node, epoch }));
            }
        }
        Err(rejection @ (Rejection::BadId { .. } | Rejection::BadAddr { .. })) => {
            return Err(rejection_error(rejection));
        }
        _ => {}
    }
    wait_configured(master).await?;
    let applied = master.propose(event).await?;
    let accepted = applied.outcome.map_err(rejection_error)?;
    // The epoch the registration moved the map to, if it moved it.
    let moved_to = applied.commands.iter().find_map(|c| match c {
        Command::AnnounceEpoch { epoch } => Some(*epoch),
        _ => None,
    });
    if accepted != Accepted::Unchanged {
        info!(node = %id, addr = %reg.addr, data_addr = ?reg.data_addr, epoch = ?moved_to, "auxiliary registered");
        master.members.probe_soon();
    }
    let status = if accepted == Accepted::Added {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    // Once this master routes by a map that holds this incarnation (one
    // registered through another master a moment ago, which this one
    // proposed again and was told "unchanged", included), its epoch is past
    // every map that routed to an earlier process.
    let node = applied_node(master, &id, reg.incarnation).await;
    let epoch = moved_to.unwrap_or(0).max(master.map().state.epoch());
    let node = node.unwrap_or(NodeInfo {
        id,
        addr: reg.addr,
        data_addr: reg.data_addr,
        state: NodeState::Joining,
        items: 0,
        bytes: 0,
        last_seen: None,
        incarnation: reg.incarnation,
    });
    Ok((status, Registered { node, epoch }))
}

/// The node as this master shows it once it routes by a map that holds it
/// (a follower applies a committed entry shortly after the leader), so
/// that what a client does next sees the node.
async fn applied_node(master: &Master, id: &str, incarnation: Option<u64>) -> Option<NodeInfo> {
    routing_map(master, Duration::from_secs(2), |map| {
        map.node(id)
            .is_some_and(|n| incarnation.is_none() || n.incarnation == incarnation)
    })
    .await;
    master.node(id)
}

/// Waits, at most `limit`, until this master routes by a map for which
/// `done` holds; true if it does.
async fn routing_map(master: &Master, limit: Duration, done: impl Fn(&ClusterMap) -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    let mut applied = master.consensus.applied();
    loop {
        if done(&master.map().state) {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        // The view follows the applied map a moment after it changes.
        let step = Duration::from_millis(5);
        let _ = tokio::time::timeout(step, applied.changed()).await;
    }
}

/// How long `DELETE /nodes/{id}` waits for the node's keys to move.
pub const DECOMMISSION_WAIT: Duration = Duration::from_secs(60);

/// Decommissions a node: it leaves the ring at once, hands its keys to their
/// new owners, and is removed once they have them (a node that does not
/// answer is removed at once; its keys are copied from their other
/// replicas). Waits for the removal up to [`DECOMMISSION_WAIT`]: the answer
/// says whether the node is gone (`true`) or still leaving.
pub async fn decommission(master: &Arc<Master>, id: &str) -> Result<(bool, NodeInfo), ApiError> {
    // From the newest map this master applied, which its view may not show
    // yet: a node registered a moment ago is known.
    let known = {
        let applied = master.consensus.applied();
        let latest = applied.borrow();
        latest
            .state
            .node(id)
            .map(|n| node_info(&latest.state, n, master.members.seen().get(id)))
    };
    let Some(node) = known else {
        // Nothing to propose: the log needs no entry for a request it
        // would refuse.
        return Err(rejection_error(Rejection::UnknownNode { id: id.into() }));
    };
    let applied = master
        .propose(Event::Decommission { id: id.to_string() })
        .await?;
    let accepted = applied.outcome.map_err(rejection_error)?;
    info!(node = %id, removed_now = accepted == Accepted::Removed, "auxiliary decommissioned; its keys move away");
    if routing_map(master, DECOMMISSION_WAIT, |map| map.node(id).is_none()).await {
        Ok((
            true,
            NodeInfo {
                state: NodeState::Leaving,
                ..node
            },
        ))
    } else {
        Ok((false, master.node(id).unwrap_or(node)))
    }
}

/// Follows the map this master applies: every new one becomes the routing.
async fn follow_map(master: Arc<Master>) {
    let mut applied = master.consensus.applied();
    let mut announced = 0;
    // A master that starts does not know which nodes the others stopped
    // routing to while it was away: it routes by its first map once no
    // master on an older one holds a lease (see `super::lease`).
    let first = applied.borrow().state.epoch();
    if master.lease.length().is_some() {
        info!(
            epoch = first,
            "waiting out the leases of masters on older maps before routing"
        );
        master
            .lease
            .wait_out(first, master.shutdown.triggered())
            .await;
    }
    loop {
        let map = applied.borrow_and_update().clone();
        // One routing of the map for both: the nodes it leaves out, then
        // the view.
        let routing = map.state.routing();
        fence_dropped(&master, &routing).await;
        rebuild_view(&master, &map, routing);
        master.rounds.wake();
        let epoch = map.state.epoch();
        if epoch > announced && master.consensus.is_leader() {
            announce(&master, epoch);
            announced = epoch;
        }
        tokio::select! {
            changed = applied.changed() => if changed.is_err() { return },
            _ = master.shutdown.triggered() => return,
        }
    }
}

/// How long a master waits for a node that stopped being live to hear of
/// the map that says so, before it routes by that map anyway.
pub const DROPPED_FENCE_WAIT: Duration = Duration::from_millis(300);

/// Before this master routes by `map`, tells each node it routed to by the
/// previous map and that `map` no longer counts as live (judged down,
/// restarted, removed) the new epoch, and waits for the answers, at most
/// [`DROPPED_FENCE_WAIT`].
///
/// Why: by `map` such a node's keys are led elsewhere, and nobody reads the
/// node before running commands there (only live nodes are read). A node
/// judged down may still be running (a slow answer, a partition from the
/// map's leader only, a restart), and a master that has not applied `map`
/// yet would go on running commands on its copies: two leaders, two
/// histories of the same key, and whichever has the higher version would
/// later win, losing the other's acknowledged commands. Once the node has
/// the new epoch it refuses that master, which catches up. A node that
/// does not answer in time is dead, stopped or cut off from this master;
/// it learns the epoch from the next request that reaches it. The wait
/// delays this master's switch to `map`, by at most that bound: meanwhile
/// it routes by the previous map, and a request an auxiliary refuses as
/// routed by an older map waits for the switch, as it does for any map
/// this master has not applied yet.
async fn fence_dropped(master: &Master, routing: &Routing) {
    let epoch = routing.epoch;
    let dropped = connections(master, |node| !routing.live.contains_key(&node.id));
    let calls = dropped.iter().map(|node| async move {
        let answer = tokio::time::timeout(
            DROPPED_FENCE_WAIT,
            node.client.call_at(epoch, distcache_wire::Request::Ping),
        )
        .await;
        match answer {
            Ok(Ok(distcache_wire::Response::Pong)) => {
                debug!(node = %node.id, epoch, "a node no longer live has the new epoch");
                true
            }
            Ok(other) => {
                debug!(node = %node.id, epoch, answer = ?other, "a node no longer live did not take the new epoch");
                false
            }
            Err(_) => {
                debug!(node = %node.id, epoch, "a node no longer live did not answer in time");
                false
            }
        }
    });
    let unfenced: Vec<String> = join_all(calls)
        .await
        .into_iter()
        .zip(&dropped)
        .filter(|(fenced, _)| !fenced)
        .map(|(_, node)| node.id.clone())
        .collect();
    // A master cut off from the others together with such a node may
    // still read it by the older map: wait until its lease has lapsed,
    // calling the node meanwhile no more (see `super::lease`).
    if !unfenced.is_empty() && master.lease.length().is_some() {
        master.metrics.lease_waits.inc();
        info!(
            epoch,
            nodes = ?unfenced,
            "nodes no longer live did not hear of the new map: waiting out the lease of any master still routing to them"
        );
        master.lease.quarantine(unfenced);
        master
            .lease
            .wait_out(epoch, master.shutdown.triggered())
            .await;
        master.lease.release();
    }
}

/// This master's connections to the nodes it routes to, those `keep`
/// keeps.
fn connections(master: &Master, keep: impl Fn(&NodeRef) -> bool) -> Vec<Arc<NodeRef>> {
    master
        .members
        .clients
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .values()
        .filter(|node| keep(node))
        .cloned()
        .collect()
}

/// Tells every live auxiliary that the map is now at `epoch` (a `Ping`
/// stamped with it), so that each refuses requests routed by an older map
/// from then on, whether or not a master has sent it one under the new
/// map yet. Best effort: a node that misses it learns the epoch from the
/// next data request stamped with it.
fn announce(master: &Arc<Master>, epoch: u64) {
    for node in connections(master, |_| true) {
        let m = master.clone();
        master.shutdown.spawn(async move {
            match node
                .client
                .call_at(epoch, distcache_wire::Request::Ping)
                .await
            {
                Ok(distcache_wire::Response::Pong) => {}
                Ok(other) => {
                    debug!(node = %node.id, epoch, answer = ?other, "epoch announcement refused")
                }
                Err(e) => {
                    debug!(node = %node.id, epoch, error = %e, "epoch announcement failed");
                    m.members.probe_soon();
                }
            }
        });
    }
}

/// Swaps in `routing`, the applied map's: rings over its members with a
/// connection per live node, its epoch and settings.
fn rebuild_view(master: &Master, applied: &Arc<consensus::Applied<ClusterMap>>, routing: Routing) {
    let map = &applied.state;
    let vnodes = routing.config.virtual_nodes;
    let mut clients = master
        .members
        .clients
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    clients.retain(|id, _| routing.live.contains_key(id));
    let mut connection = |id: &str| -> Option<Arc<NodeRef>> {
        let data = routing.live.get(id)?;
        match clients.get(id) {
            Some(c) if c.client.addr() == data.as_str() => Some(c.clone()),
            _ => {
                let c = Arc::new(NodeRef {
                    id: id.to_string(),
                    client: distcache_wire::Client::new(data.clone(), master.wire_config()),
                });
                clients.insert(id.to_string(), c.clone());
                Some(c)
            }
        }
    };
    let mut placement = |ids: &[String]| {
        let ring = Ring::new(ids.iter().cloned(), vnodes);
        Placement {
            nodes: ring.members().iter().map(|id| connection(id)).collect(),
            ring,
        }
    };
    let target = placement(&routing.target);
    let committed = match &routing.committed {
        Some(ids) if *ids != routing.target => Some(placement(ids)),
        _ => None,
    };
    let abandoned: Vec<Placement> = routing.abandoned.iter().map(|ids| placement(ids)).collect();
    let leaving: Vec<Arc<NodeRef>> = routing
        .leaving
        .iter()
        .filter_map(|id| connection(id))
        .collect();
    drop(clients);
    let previous = master.view.load();
    if previous.epoch != routing.epoch {
        info!(
            epoch = routing.epoch,
            members = ?routing.target,
            committed = ?routing.committed,
            rebalancing = routing.rebalancing,
            "cluster map applied"
        );
        master.metrics.ring_changes.inc();
    }
    let view = RingView {
        map: applied.clone(),
        epoch: routing.epoch,
        config: routing.config,
        target,
        committed,
        abandoned,
        leaving,
        moving: routing.rebalancing,
    };
    let m = &master.metrics;
    m.ring_members.set(view.target.ring.members().len() as i64);
    m.ring_epoch
        .set(i64::try_from(view.epoch).unwrap_or(i64::MAX));
    m.rebalance_pending.set(i64::from(view.rebalancing()));
    master.view.store(Arc::new(view));
    for node in map.nodes() {
        m.aux_up
            .with_label_values(&[node.id.as_str()])
            .set(i64::from(node.state == NodeState::Up));
    }
    // Forget the probe findings and metric labels of nodes that left.
    let mut seen = master.members.seen();
    let gone: Vec<String> = seen
        .keys()
        .filter(|id| map.node(id).is_none())
        .cloned()
        .collect();
    for id in gone {
        seen.remove(&id);
        master.metrics.forget_node(&id);
    }
}

/// An `AUX_SERVERS` entry: probe it until it answers, then register it under
/// the id it reports. (It also registers itself; either way works.)
async fn watch_static_aux(master: Arc<Master>, addr: String) {
    let mut wait = Duration::from_millis(200);
    loop {
        if let Ok(health) = master.control.health(&addr).await {
            let reg = Registration {
                id: Some(health.node_id),
                addr: addr.clone(),
                data_addr: Some(health.data_addr),
                incarnation: health.incarnation,
                epoch: None,
            };
            match register(&master, reg).await {
                Ok(_) => return,
                Err(e) => {
                    warn!(addr = %addr, error = %e.message, "could not register AUX_SERVERS entry")
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = master.shutdown.triggered() => return,
        }
        wait = (wait * 2).min(master.config.health_check_interval());
    }
}

/// Health checks a node must fail in a row before it is judged down, unless
/// its connection is refused outright. One slow answer on a busy machine
/// must not take a node out of the ring and start a rebalance.
pub const FAILS_BEFORE_DOWN: u32 = 2;

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

/// What one probe found, as the leader judges it.
enum Finding {
    /// It answered as itself.
    Healthy(AuxHealth),
    /// It failed, but not yet for certain.
    Doubtful,
    /// It is down for certain: refused, failed often enough, or another
    /// node answers at its address.
    Down,
}

/// Probes every node of the map once, concurrently; records what was seen
/// and, on the leader, proposes the verdicts that change the map.
async fn check_all(master: &Arc<Master>) {
    // A master that believes it leads first makes sure a majority agrees:
    // one cut off from the others skips the round, probes and failure
    // counts alike. Its probes would fail for the auxiliaries the majority
    // reaches, and a split that heals before a new election would let it
    // confirm its lead afterwards and judge them down (finding 6b of
    // scripts/fault-attack/FINDINGS.md).
    let leading = master.consensus.is_leader();
    if leading && !master.consensus.confirm_leadership().await {
        info!("no majority confirms this master leads; its health round waits");
        return;
    }
    let applied = master.map();
    let targets: Vec<(String, String)> = applied
        .state
        .nodes()
        .map(|n| (n.id.clone(), n.addr.clone()))
        .collect();
    let results = join_all(targets.iter().map(|(_, addr)| master.control.health(addr))).await;
    let now = (master.clock)();
    let mut findings = Vec::with_capacity(targets.len());
    {
        let mut seen = master.members.seen();
        for ((id, addr), result) in targets.iter().zip(results) {
            let node = seen.entry(id.clone()).or_default();
            let m = &master.metrics;
            let finding = match result {
                Ok(health) if health.node_id == *id => {
                    m.health_checks.with_label_values(&["ok"]).inc();
                    node.failures = 0;
                    node.items = health.items;
                    node.bytes = health.bytes;
                    node.last_seen = Some(now);
                    m.aux_items
                        .with_label_values(&[id.as_str()])
                        .set(clamp(health.items));
                    m.aux_bytes
                        .with_label_values(&[id.as_str()])
                        .set(clamp(health.bytes));
                    Finding::Healthy(health)
                }
                Ok(health) => {
                    m.health_checks.with_label_values(&["failed"]).inc();
                    warn!(node = %id, addr = %addr, answered_as = %health.node_id, "another node answers at this address");
                    Finding::Down
                }
                Err(e) => {
                    m.health_checks.with_label_values(&["failed"]).inc();
                    node.failures += 1;
                    if e.refused() || node.failures >= FAILS_BEFORE_DOWN {
                        debug!(node = %id, addr = %addr, error = %e, "health check failed");
                        Finding::Down
                    } else {
                        debug!(node = %id, addr = %addr, error = %e, "health check failed once; checking again");
                        master.members.probe_soon();
                        Finding::Doubtful
                    }
                }
            };
            findings.push((id.clone(), finding));
        }
    }
    if !leading || !master.consensus.is_leader() {
        return;
    }
    // Verdicts are this leader's own view of the nodes: they go through the
    // log only if it still leads after the probes too (a leader cut off
    // with some of the nodes keeps believing it leads, and would judge the
    // others down), and only as its own proposals (see below).
    let mut confirmed = false;
    for ((id, addr), (_, finding)) in targets.into_iter().zip(findings) {
        // The probed address goes with the verdict: a node that registered
        // again elsewhere meanwhile is not judged by its old address.
        let event = match finding {
            Finding::Healthy(health) => Event::Verdict {
                id: id.clone(),
                healthy: true,
                data_addr: Some(health.data_addr),
                probed: Some(addr),
            },
            Finding::Down => Event::Verdict {
                id: id.clone(),
                healthy: false,
                data_addr: None,
                probed: Some(addr),
            },
            Finding::Doubtful => continue,
        };
        // Only verdicts that change the map go through the log.
        if !matches!(master.map().state.preview(&event), Ok(Accepted::Changed)) {
            continue;
        }
        if !confirmed {
            if !master.consensus.confirm_leadership().await {
                info!("no majority confirms this master leads; its health verdicts wait");
                return;
            }
            confirmed = true;
        }
        let healthy = matches!(event, Event::Verdict { healthy: true, .. });
        // Never forwarded: should this leader be deposed while the verdict
        // waits for its commit, the new leader must not commit what this
        // one saw from where it was.
        match master.consensus.propose_as_leader(event).await {
            Ok(_) if healthy => info!(node = %id, "node is up"),
            Ok(_) => warn!(node = %id, "node is down"),
            Err(e) => {
                warn!(node = %id, error = %e, "could not record a health verdict");
                return;
            }
        }
    }
}

fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
