//! The master (coordinator): the public REST API. It owns no data. The
//! masters agree on one cluster map through Raft ([`consensus`]); every
//! master routes every request by the map it applied ([`membership`] turns
//! it into a [`RingView`]), and the Raft leader makes the health verdicts
//! and drives rebalancing rounds ([`rebalance`]). [`data`] routes requests
//! to the key's replicas, [`routes`] answers clients on the routes
//! [`route_table`] declares (the command routes in [`command_api`], over
//! [`commands`]), [`backup`] writes cluster backups and restores them.
//! [`resp`] serves the same data commands to Redis clients on `RESP_PORT`,
//! and Pub/Sub, which [`pubsub`] carries across the masters.
//!
//! The ring is read on every request and changes rarely, so it lives in an
//! [`ArcSwap`]: requests load it without locking, and the membership task
//! swaps in a new [`RingView`] whenever this master applies a new map.

mod backup;
mod command_api;
pub mod commands;
pub mod consensus;
mod control;
mod data;
mod lease;
mod membership;
pub mod near_cache;
pub mod pubsub;
mod rebalance;
pub mod resp;
pub mod route_table;
mod routes;
pub mod scripts;
mod service;
mod stats;

use arc_swap::ArcSwap;
use distcache_core::Ring;
use distcache_core::clock::Clock;
use distcache_core::cluster::{ClusterConfig, ClusterMap};
use distcache_core::version::{HybridClock, origin_id};
use std::sync::Arc;
use tokio::net::TcpListener;
use tracing::info;

use crate::config::{MasterConfig, WriteQuorum, host_name};
use crate::error::StartError;
use crate::metrics::{self, MasterMetrics};
use crate::shutdown::{SHUTDOWN_DEADLINE, Shutdown};

pub use membership::{NodeInfo, NodeState};

/// The consensus group of the masters, replicating the cluster map.
pub type MapConsensus = consensus::Consensus<ClusterMap>;

/// A connection to one auxiliary's data port.
#[derive(Debug)]
pub struct NodeRef {
    /// The auxiliary's id.
    pub id: String,
    /// Its multiplexed data connection.
    pub client: distcache_wire::Client,
}

/// A ring and, for each member, a connection if the member is live.
#[derive(Debug)]
pub struct Placement {
    /// The ring.
    pub ring: Ring,
    /// `nodes[i]` serves `ring.members()[i]`; `None` while it is not live.
    pub nodes: Vec<Option<Arc<NodeRef>>>,
}

impl Placement {
    fn empty(vnodes: u32) -> Self {
        Placement {
            ring: Ring::new(Vec::<String>::new(), vnodes),
            nodes: Vec::new(),
        }
    }
}

/// How requests are routed now, as one immutable value built from the
/// cluster map this master applied.
///
/// `target` is the ring over the up auxiliaries. While keys move to it,
/// `committed` is the ring whose copies are in place, `abandoned` the
/// targets of rounds given up since (copies may have moved there), and
/// `leaving` the live nodes on their way out: writes go to the replicas of
/// `committed` and `target`, and reads ask every one of them and keep the
/// highest version, so no key is unreadable and no old copy wins while a
/// join, leave or failure is being handled.
#[derive(Debug)]
pub struct RingView {
    /// The map this view was built from: what `/nodes`, `/ring` and
    /// `/health` show, so that they always agree with the routing.
    pub map: Arc<consensus::Applied<ClusterMap>>,
    /// The map's epoch: every data request carries it.
    pub epoch: u64,
    /// Copies per key and ring points, as the map says.
    pub config: ClusterConfig,
    /// The ring over the up auxiliaries.
    pub target: Placement,
    /// The ring whose copies are in place, while it differs from `target`.
    pub committed: Option<Placement>,
    /// Targets of rounds given up since the last commit.
    pub abandoned: Vec<Placement>,
    /// Live nodes that are leaving: they hold copies until they are gone.
    pub leaving: Vec<Arc<NodeRef>>,
    /// A round is in progress.
    pub moving: bool,
}

impl RingView {
    fn empty(config: ClusterConfig) -> Self {
        RingView {
            map: Arc::default(),
            epoch: 0,
            config,
            target: Placement::empty(config.virtual_nodes),
            committed: None,
            abandoned: Vec::new(),
            leaving: Vec::new(),
            moving: false,
        }
    }

    /// True while keys may be moving: a round runs, or copies may be away
    /// from the target ring's replicas.
    pub fn rebalancing(&self) -> bool {
        self.moving || self.committed.is_some() || !self.abandoned.is_empty()
    }

    /// Copies of each key in a ring of `members` auxiliaries.
    pub fn replicas(&self, members: usize) -> usize {
        self.config.replicas_for(members)
    }
}

/// Everything a master's tasks and handlers share.
pub struct Master {
    /// `NODE_ID`.
    pub id: String,
    config: MasterConfig,
    versions: HybridClock,
    clock: Clock,
    metrics: MasterMetrics,
    registry: prometheus::Registry,
    view: ArcSwap<RingView>,
    near: Option<near_cache::NearCache>,
    consensus: MapConsensus,
    members: membership::Members,
    rounds: rebalance::Rounds,
    backups: backup::Backups,
    control: control::AuxControl,
    shutdown: Shutdown,
    gate: Arc<crate::security::auth::Gate>,
    credentials: Arc<crate::security::secret::Credentials>,
    pubsub: Arc<pubsub::PubSub>,
    scripts: Arc<scripts::Scripts>,
    lease: lease::Lease,
}

impl Master {
    fn quorum(&self) -> WriteQuorum {
        self.config.write_quorum
    }

    /// The cluster map this master routes by now (the last it applied,
    /// once its view is rebuilt from it).
    fn map(&self) -> Arc<consensus::Applied<ClusterMap>> {
        self.view.load().map.clone()
    }
}

/// A master's listeners, bound before it starts so that a busy port stops
/// the start with one line naming its setting.
#[derive(Debug)]
pub struct MasterListeners {
    /// The public HTTP API (`PORT`).
    pub http: TcpListener,
    /// The Redis protocol (`RESP_PORT`), unless it is 0.
    pub resp: Option<TcpListener>,
}

impl MasterListeners {
    /// Binds `BIND_ADDR:PORT` and, unless `RESP_PORT` is 0,
    /// `BIND_ADDR:RESP_PORT`.
    pub async fn bind(config: &MasterConfig) -> Result<Self, StartError> {
        let ip = config.common.bind_addr;
        let http = TcpListener::bind((ip, config.port))
            .await
            .map_err(|cause| StartError::bind(format!("{ip}:{}", config.port), "PORT", cause))?;
        let resp =
            match config.resp_port {
                0 => None,
                port => Some(TcpListener::bind((ip, port)).await.map_err(|cause| {
                    StartError::bind(format!("{ip}:{port}"), "RESP_PORT", cause)
                })?),
            };
        Ok(MasterListeners { http, resp })
    }
}

/// Runs a master on already-bound listeners until `shutdown` triggers.
pub async fn run(
    config: MasterConfig,
    listeners: MasterListeners,
    clock: Clock,
    shutdown: Shutdown,
) -> Result<(), StartError> {
    let MasterListeners {
        http: listener,
        resp: resp_listener,
    } = listeners;
    let clock = distcache_core::clock::offset(clock, config.clock_offset_ms);
    let local = listener
        .local_addr()
        .map_err(StartError::io("reading the bound address"))?;
    let id = config
        .common
        .node_id
        .clone()
        .unwrap_or_else(|| format!("{}:{}", host_name(), local.port()));
    // PORT may be 0: the address others reach comes from the bound port.
    let own_addr = config.advertise_addr(local.port());
    info!(
        node = %id,
        addr = %local,
        advertise = %own_addr,
        replicas = config.replicas,
        quorum = ?config.write_quorum,
        virtual_nodes = config.virtual_nodes(),
        health_check_interval_s = config.health_check_interval,
        peers = ?config.master_peers,
        near_cache_size = config.near_cache_size,
        near_cache_ttl_s = config.near_cache_ttl,
        "master starting"
    );
    if config.clock_offset_ms != 0 {
        tracing::warn!(
            clock_offset_ms = config.clock_offset_ms,
            "CLOCK_OFFSET_MS is set: this master's clock is moved on purpose (a test setting)"
        );
    }
    let security = &config.security;
    let tokens = crate::security::auth::Tokens::load(&security.auth)?;
    let credentials = crate::security::secret::Credentials::load(&security.cluster)?;
    let gate = Arc::new(crate::security::auth::Gate::new(
        tokens,
        credentials.secret.clone(),
        security.auth.metrics_auth,
    ));
    crate::security::auth::warn_if_open(&gate, credentials.secret.is_some());
    if credentials.secret.is_none() {
        tracing::warn!(
            "CLUSTER SECRET IS OFF: no CLUSTER_SECRET or CLUSTER_SECRET_FILE is set, so any \
             process that reaches the cluster's ports can register as an auxiliary"
        );
    }
    let tls = match (&security.auth.tls_cert, &security.auth.tls_key) {
        (Some(cert), Some(key)) => Some(crate::security::tls::server_config(cert, key)?),
        _ => None,
    };
    let resp_tls = tls.clone();
    let serve_options = crate::security::serve::ServeOptions {
        tls,
        ..crate::security::serve::ServeOptions::from_limits(&security.limits)
    };
    let registry = metrics::new_registry();
    let master_metrics = MasterMetrics::new(&registry);
    metrics::NodeMetrics::new(&registry, "master", config.backup_interval);
    let control = control::AuxControl::new(&config, credentials.clone())?;

    let peers: Vec<String> = config
        .master_peers
        .iter()
        .filter(|p| consensus::node_id(p) != consensus::node_id(&own_addr))
        .cloned()
        .collect();
    let consensus_config = consensus::ConsensusConfig {
        data_dir: Some(config.raft_dir()),
        tls_ca: security.cluster.tls_ca.clone(),
        ..consensus::ConsensusConfig::new(own_addr.clone(), peers.clone(), credentials.clone())
    };
    info!(node = %id, raft_dir = %config.raft_dir().display(), "joining the masters' consensus");
    let consensus = MapConsensus::start(consensus_config)
        .await
        .map_err(|e| StartError::Consensus(e.to_string()))?;
    let cluster_config = ClusterConfig::new(config.replicas, config.virtual_nodes());
    let pubsub = Arc::new(pubsub::PubSub::new(
        pubsub::peers::PeerLinks::start(
            peers.clone(),
            consensus.peers().clone(),
            master_metrics.pubsub.clone(),
            &shutdown,
        ),
        master_metrics.pubsub.clone(),
        config.resp_pubsub_buffer_bytes,
    ));

    let scripts = Arc::new(scripts::Scripts::new(
        peers.clone(),
        consensus.peers().clone(),
    ));
    let master = Arc::new(Master {
        versions: HybridClock::new(origin_id(&id)),
        view: ArcSwap::from_pointee(RingView::empty(cluster_config)),
        near: near_cache::NearCache::new(config.near_cache_size, config.near_cache_ttl_ms()),
        members: membership::Members::default(),
        rounds: rebalance::Rounds::default(),
        backups: backup::Backups::default(),
        consensus: consensus.clone(),
        id: id.clone(),
        clock,
        metrics: master_metrics.clone(),
        registry,
        control,
        shutdown: shutdown.clone(),
        gate,
        credentials: credentials.clone(),
        lease: lease::Lease::new(
            peers.clone(),
            consensus.peers().clone(),
            config.master_lease_ms,
        ),
        config,
        pubsub: pubsub.clone(),
        scripts: scripts.clone(),
    });
    if master.lease.length().is_none() {
        master.metrics.lease_holds.set(1);
    }

    lease::start(&master);
    membership::start(&master, cluster_config);
    rebalance::start(&master);
    backup::start(&master);

    if let Some(resp_listener) = resp_listener {
        let resp = resp::start(resp_listener, master.clone(), resp_tls)
            .await
            .map_err(StartError::io("starting the RESP threads"))?;
        shutdown.spawn(resp.serve());
    }
    // The routes only masters call: Raft's, Pub/Sub's delivery, the
    // script cache's and the lease's renewals.
    let internal = consensus::router(&consensus)
        .merge(pubsub::internal::router(
            pubsub,
            credentials.clone(),
            master.config.max_body_bytes,
        ))
        .merge(scripts::router(scripts, credentials.clone()))
        .merge(lease::router(master.clone(), credentials));
    let app = service::MasterService::new(master.clone(), internal);
    info!(node = %id, "master ready");
    let served =
        crate::security::serve::serve(listener, app, serve_options, shutdown.clone()).await;

    info!(node = %id, "master stopping");
    shutdown.trigger();
    consensus.shutdown().await;
    served.map_err(StartError::io("the HTTP server"))?;
    if !shutdown.wait_for_tasks(SHUTDOWN_DEADLINE).await {
        tracing::warn!(node = %id, "some tasks did not stop within the deadline");
    }
    info!(node = %id, "master stopped");
    Ok(())
}

impl Master {
    fn wire_config(&self) -> distcache_wire::ClientConfig {
        distcache_wire::ClientConfig {
            request_timeout: self.config.request_timeout(),
            secret: self.credentials.wire_secret(),
            // Lane 0 for the shared runtime, one more for each RESP
            // thread (unused lanes never connect).
            lanes: 1 + self.config.resp_threads(),
        }
    }
}
