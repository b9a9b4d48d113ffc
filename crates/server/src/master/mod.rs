//! The master (coordinator): the public REST API. It owns no data. It keeps
//! the membership of auxiliaries ([`membership`]), derives the hash ring
//! from the live ones, routes every request to the key's replicas
//! ([`data`]), and answers clients ([`routes`]). It writes cluster backups
//! and restores them ([`backup`]). [`consensus`] is the Raft group through
//! which the masters will agree on one cluster map (not wired in yet).
//!
//! The ring is read on every request and changes rarely, so it lives in an
//! [`ArcSwap`]: requests load it without locking, and the membership task
//! swaps in a new [`RingView`] when the set of live auxiliaries changes.

mod backup;
pub mod consensus;
mod data;
mod membership;
pub mod near_cache;
mod rebalance;
mod routes;
mod service;
mod stats;

use arc_swap::ArcSwap;
use distcache_core::Ring;
use distcache_core::clock::Clock;
use distcache_core::version::{HybridClock, origin_id};
use std::sync::Arc;
use tokio::net::TcpListener;
use tracing::info;

use crate::config::{MasterConfig, WriteQuorum, host_name};
use crate::error::StartError;
use crate::metrics::{self, MasterMetrics};
use crate::shutdown::{SHUTDOWN_DEADLINE, Shutdown};

pub use membership::{NodeInfo, NodeState};

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
    /// `nodes[i]` serves `ring.members()[i]`; `None` while it is down.
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

/// How requests are routed now, as one immutable value.
///
/// `target` is the ring over the live auxiliaries (not leaving). While keys
/// move to it, `committed` is the ring whose copies are in place: reads ask
/// its live replicas first, writes go to the replicas of both, so no key is
/// unreadable and no write is lost while a join, leave or failure is being
/// handled. Once every auxiliary has handed its keys over, `committed`
/// becomes `None` again.
#[derive(Debug)]
pub struct RingView {
    /// The ring over the live auxiliaries.
    pub target: Placement,
    /// The ring whose copies are in place, while it differs from `target`.
    pub committed: Option<Placement>,
}

impl RingView {
    fn empty(vnodes: u32) -> Self {
        RingView {
            target: Placement::empty(vnodes),
            committed: None,
        }
    }

    /// True while keys are moving to the target ring.
    pub fn rebalancing(&self) -> bool {
        self.committed.is_some()
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
    members: membership::Members,
    rebalancer: rebalance::Rebalancer,
    backups: backup::Backups,
    control: reqwest::Client,
    shutdown: Shutdown,
    gate: Arc<crate::security::auth::Gate>,
    credentials: Arc<crate::security::secret::Credentials>,
}

impl Master {
    /// Copies of each key in a ring of `members` auxiliaries.
    fn replicas(&self, members: usize) -> usize {
        self.config.replicas.min(members)
    }

    fn quorum(&self) -> WriteQuorum {
        self.config.write_quorum
    }
}

/// Binds the master's HTTP port.
pub async fn bind(config: &MasterConfig) -> Result<TcpListener, StartError> {
    let ip = config.common.bind_addr;
    TcpListener::bind((ip, config.port))
        .await
        .map_err(|source| StartError::Bind {
            addr: format!("{ip}:{}", config.port),
            setting: "PORT",
            source,
        })
}

/// Runs a master on an already-bound listener until `shutdown` triggers.
pub async fn run(
    config: MasterConfig,
    listener: TcpListener,
    clock: Clock,
    shutdown: Shutdown,
) -> Result<(), StartError> {
    let clock = distcache_core::clock::offset(clock, config.clock_offset_ms);
    let local = listener
        .local_addr()
        .map_err(StartError::io("reading the bound address"))?;
    let id = config
        .common
        .node_id
        .clone()
        .unwrap_or_else(|| format!("{}:{}", host_name(), local.port()));
    info!(
        node = %id,
        addr = %local,
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
    let serve_options = crate::security::serve::ServeOptions {
        tls,
        ..crate::security::serve::ServeOptions::from_limits(&security.limits)
    };
    let registry = metrics::new_registry();
    let master_metrics = MasterMetrics::new(&registry);
    metrics::NodeMetrics::new(&registry, "master", config.backup_interval);
    let control = crate::security::tls::client_builder(security.cluster.tls_ca.as_deref())?
        .timeout(config.request_timeout())
        .build()
        .map_err(|e| StartError::Client(e.to_string()))?;
    let master = Arc::new(Master {
        versions: HybridClock::new(origin_id(&id)),
        view: ArcSwap::from_pointee(RingView::empty(config.virtual_nodes())),
        near: near_cache::NearCache::new(config.near_cache_size, config.near_cache_ttl_ms()),
        members: membership::Members::default(),
        rebalancer: rebalance::Rebalancer::default(),
        backups: backup::Backups::default(),
        id: id.clone(),
        clock,
        metrics: master_metrics.clone(),
        registry,
        control,
        shutdown: shutdown.clone(),
        gate,
        credentials,
        config,
    });

    membership::start(&master);
    rebalance::start(&master);
    backup::start(&master);

    let app = service::MasterService::new(master.clone());
    info!(node = %id, "master ready");
    crate::security::serve::serve(listener, app, serve_options, shutdown.clone())
        .await
        .map_err(StartError::io("the HTTP server"))?;

    info!(node = %id, "master stopping");
    shutdown.trigger();
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
        }
    }
}
