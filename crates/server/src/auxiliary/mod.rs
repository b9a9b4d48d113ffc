//! The auxiliary (storage node): holds keys in a [`Store`], serves them to
//! masters over the internal protocol ([`data`]), answers `/health` and
//! `/metrics` over HTTP, registers with the masters ([`register`]), and
//! reclaims expired keys in the background, and snapshots its store
//! ([`snapshot`]): restored at start before serving, written every
//! `BACKUP_INTERVAL` and at shutdown.
//!
//! Start-up: bind both listeners ([`AuxListeners::bind`]), then [`run`],
//! which returns once the node has shut down.

mod data;
pub mod handoff;
mod mutation_log;
mod register;
mod snapshot;

pub use register::LEAVE_TIMEOUT;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use distcache_core::clock::Clock;
use distcache_core::store::{Store, StoreConfig};
use serde_json::json;
use tokio::net::TcpListener;
use tracing::info;

use crate::config::{AuxConfig, LogFsync, default_advertise_addr, host_name};
use crate::error::StartError;
use crate::http;
use crate::metrics::{self, AuxMetrics};
use crate::shutdown::{SHUTDOWN_DEADLINE, Shutdown};

pub use data::{DataHandler, EpochFence};

/// How often expired keys are reclaimed.
pub const EXPIRY_SWEEP_INTERVAL: Duration = Duration::from_millis(100);
/// Largest body the auxiliary's HTTP port accepts (internal calls only).
const AUX_MAX_BODY_BYTES: usize = 64 * 1024 * 1024;
/// Most entries one sweep step removes before yielding.
const EXPIRY_SWEEP_BUDGET: usize = 4096;

/// The two sockets an auxiliary listens on, bound before it starts so that
/// callers (tests, `distcache local`) know the real ports.
#[derive(Debug)]
pub struct AuxListeners {
    /// HTTP: health and metrics.
    pub http: TcpListener,
    /// The internal data protocol.
    pub data: TcpListener,
}

impl AuxListeners {
    /// Binds `BIND_ADDR:PORT` and `BIND_ADDR:DATA_PORT`.
    pub async fn bind(config: &AuxConfig) -> Result<Self, StartError> {
        let ip = config.common.bind_addr;
        let http = TcpListener::bind((ip, config.port))
            .await
            .map_err(|cause| StartError::bind(format!("{ip}:{}", config.port), "PORT", cause))?;
        let data_port = config.data_port();
        let data = TcpListener::bind((ip, data_port))
            .await
            .map_err(|cause| StartError::bind(format!("{ip}:{data_port}"), "DATA_PORT", cause))?;
        Ok(AuxListeners { http, data })
    }
}

/// Who this auxiliary is, as masters see it.
#[derive(Clone, Debug)]
pub struct Identity {
    /// `NODE_ID`.
    pub node_id: String,
    /// Random per process start, so masters can tell a restarted node from
    /// a replayed registration.
    pub incarnation: u64,
    /// Where masters reach the HTTP port.
    pub addr: String,
    /// Where masters and peers reach the data port.
    pub data_addr: String,
}

impl Identity {
    fn resolve(config: &AuxConfig, http: SocketAddr, data: SocketAddr) -> Self {
        let node_id = config
            .common
            .node_id
            .clone()
            .unwrap_or_else(|| format!("{}:{}", host_name(), http.port()));
        let addr = config
            .advertise_addr
            .clone()
            .unwrap_or_else(|| default_advertise_addr(http.ip(), http.port(), &node_id));
        let data_addr = config.advertise_data_addr.clone().unwrap_or_else(|| {
            let host = addr.rsplit_once(':').map(|(h, _)| h).unwrap_or(&addr);
            format!("{host}:{}", data.port())
        });
        Identity {
            node_id,
            incarnation: random_u64(),
            addr,
            data_addr,
        }
    }
}

/// A random number from the standard library's randomly keyed hasher; good
/// enough for an incarnation id, and no extra dependency.
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

/// Everything the auxiliary's tasks share.
struct Node {
    identity: Identity,
    store: Arc<Store>,
    clock: Clock,
    metrics: AuxMetrics,
    registry: prometheus::Registry,
    handoffs: handoff::Handoffs,
    /// `CACHE_SIZE` and `CACHE_MAX_BYTES`, for `/health`.
    capacity: (usize, Option<u64>),
    snapshots: snapshot::Snapshots,
    /// `None` with `LOG_FSYNC=off`.
    log: Option<Arc<mutation_log::MutationLog>>,
    credentials: Arc<crate::security::secret::Credentials>,
    /// The highest cluster-map epoch seen, for `/health` and `/metrics`.
    fence: Arc<EpochFence>,
}

/// Runs an auxiliary on already-bound listeners until `stop` triggers. Then,
/// unless `LEAVE_ON_SHUTDOWN` is off, it leaves the cluster first: it asks a
/// master to decommission it and keeps serving while its keys move to their
/// new owners, and only then stops.
pub async fn run(
    config: AuxConfig,
    listeners: AuxListeners,
    clock: Clock,
    stop: Shutdown,
) -> Result<(), StartError> {
    // Every task runs under `shutdown`, which triggers only after leaving.
    let shutdown = Shutdown::new();
    let http_local = listeners
        .http
        .local_addr()
        .map_err(StartError::io("reading the bound address"))?;
    let data_local = listeners
        .data
        .local_addr()
        .map_err(StartError::io("reading the bound address"))?;
    let identity = Identity::resolve(&config, http_local, data_local);
    info!(
        node = %identity.node_id,
        http = %http_local,
        data = %data_local,
        advertise = %identity.addr,
        "auxiliary starting"
    );

    distcache_core::script::set_time_limit(std::time::Duration::from_millis(
        config.script_time_limit_ms,
    ));
    let store = Arc::new(Store::new(StoreConfig {
        max_items: config.cache_size,
        max_bytes: config.cache_max_bytes,
        shards: config.cache_shards,
        tombstone_grace_ms: config.tombstone_grace.saturating_mul(1000),
    }));
    info!(
        items = config.cache_size,
        max_bytes = ?config.cache_max_bytes,
        shards = config.cache_shards,
        "store ready"
    );
    let snapshots = snapshot::Snapshots::new(
        &config.common.backup_dir,
        &identity.node_id,
        config.backup_interval,
    );
    let registry = metrics::new_registry();
    let aux_metrics = AuxMetrics::new(&registry);
    // Before the data port serves or the node registers: nothing can have
    // written yet, so the snapshot and the log never land over live data.
    let from_generation =
        snapshot::restore_at_start(snapshots.path.clone(), store.clone(), clock.clone()).await;
    let log = open_log(
        &config,
        &identity.node_id,
        from_generation,
        &store,
        &clock,
        &aux_metrics,
    )
    .await;
    crate::security::tls::install_crypto_provider();
    let credentials = crate::security::secret::Credentials::load(&config.security.cluster)?;
    if credentials.secret.is_none() {
        tracing::warn!(
            "CLUSTER SECRET IS OFF: no CLUSTER_SECRET or CLUSTER_SECRET_FILE is set, so anyone \
             who reaches this node's data port can read and write its keys"
        );
    }
    metrics::NodeMetrics::new(&registry, "auxiliary", config.backup_interval);
    aux_metrics.set_capacity(config.cache_size, config.cache_max_bytes);
    // Not persisted: the node starts closed and opens at the epoch a master
    // answers its registration with (see `EpochFence`).
    let fence = Arc::new(EpochFence::until_registered());
    let node = Arc::new(Node {
        identity: identity.clone(),
        store: store.clone(),
        clock: clock.clone(),
        metrics: aux_metrics.clone(),
        registry,
        handoffs: handoff::Handoffs::default(),
        capacity: (config.cache_size, config.cache_max_bytes),
        snapshots,
        log: log.clone(),
        credentials: credentials.clone(),
        fence: fence.clone(),
    });

    // The internal data protocol.
    let handler = Arc::new(
        DataHandler::new(
            store.clone(),
            clock.clone(),
            fence.clone(),
            aux_metrics.clone(),
        )
        .with_secret(credentials.secret.clone())
        .with_log(log.clone()),
    );
    let token = shutdown.token().clone();
    shutdown.spawn(distcache_wire::serve(listeners.data, handler, token));

    // Active expiry.
    shutdown.spawn(expiry_loop(
        store.clone(),
        clock.clone(),
        aux_metrics.clone(),
        shutdown.clone(),
    ));

    // Snapshots every BACKUP_INTERVAL and when the log asks; the log's sync.
    shutdown.spawn(snapshot::snapshot_loop(node.clone(), shutdown.clone()));
    if let Some(log) = log
        .as_ref()
        .filter(|_| config.log_fsync == LogFsync::Everysec)
    {
        shutdown.spawn(mutation_log::everysec_loop(log.clone(), shutdown.clone()));
    }

    // Registration with the masters.
    // Registration stops as soon as the node starts leaving.
    let registering = Shutdown::child_of(&shutdown);
    let caller = register::Caller::new(&config.security.cluster, credentials.clone())?;
    shutdown.spawn(register::register_loop(
        identity.clone(),
        config.master_address.clone(),
        caller.clone(),
        fence.clone(),
        registering.clone(),
        shutdown.clone(),
    ));
    {
        let shutdown = shutdown.clone();
        let masters = config.master_address.clone();
        let identity = identity.clone();
        let leave = config.leave_on_shutdown;
        tokio::spawn(async move {
            tokio::select! {
                _ = stop.triggered() => {}
                _ = shutdown.triggered() => return,
            }
            registering.trigger();
            if leave {
                register::leave(&identity, &masters, &caller).await;
            }
            shutdown.trigger();
        });
    }

    // HTTP: health and metrics, and the internal routes masters call.
    let limits = Arc::new(crate::security::limits::RequestLimits {
        max_header_bytes: config.security.limits.max_header_bytes,
        max_body_bytes: AUX_MAX_BODY_BYTES,
        body_read_timeout: config.security.limits.body_read_timeout(),
    });
    let app = Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics_text))
        .route("/internal/handoff", post(handoff_route))
        .route(
            "/internal/snapshot",
            post(snapshot::post_route).get(snapshot::get_route),
        )
        .fallback(http::route_not_found)
        .method_not_allowed_fallback(http::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            limits.clone(),
            crate::security::limits::read_body,
        ))
        .layer(axum::middleware::from_fn_with_state(
            credentials.secret.clone(),
            crate::security::secret::require_for_internal,
        ))
        .layer(axum::middleware::from_fn_with_state(
            limits,
            crate::security::limits::check_headers,
        ))
        .layer(axum::middleware::from_fn_with_state(
            aux_metrics.http.clone(),
            http::track_requests,
        ))
        .with_state(node.clone());
    info!(node = %identity.node_id, "auxiliary ready");
    crate::security::serve::serve(
        listeners.http,
        app,
        crate::security::serve::ServeOptions::from_limits(&config.security.limits),
        shutdown.clone(),
    )
    .await
    .map_err(StartError::io("the HTTP server"))?;

    info!(node = %identity.node_id, "auxiliary stopping");
    shutdown.trigger();
    if !shutdown.wait_for_tasks(SHUTDOWN_DEADLINE).await {
        tracing::warn!(node = %identity.node_id, "some tasks did not stop within the deadline");
    }
    snapshot::on_shutdown(&node).await;
    info!(node = %identity.node_id, "auxiliary stopped");
    Ok(())
}

/// Replays the mutation log on top of the snapshot (whatever `LOG_FSYNC` is
/// now: what an earlier run acknowledged must not be lost), then opens a new
/// generation unless the log is off. A log that held records asks for a
/// snapshot right away, which folds it in and deletes it.
async fn open_log(
    config: &AuxConfig,
    node_id: &str,
    from_generation: u64,
    store: &Arc<Store>,
    clock: &Clock,
    metrics: &AuxMetrics,
) -> Option<Arc<mutation_log::MutationLog>> {
    let dir = config.common.backup_dir.clone();
    let replay = {
        let (dir, node_id, store, clock, metrics) = (
            dir.clone(),
            node_id.to_string(),
            store.clone(),
            clock.clone(),
            metrics.log.clone(),
        );
        tokio::task::spawn_blocking(move || {
            mutation_log::replay_at_start(
                &dir,
                &node_id,
                from_generation,
                &store,
                clock(),
                &metrics,
            )
        })
        .await
        .unwrap_or_default()
    };
    if replay.files > 0 {
        info!(
            files = replay.files,
            records = replay.records,
            applied = replay.applied,
            "mutation log replayed"
        );
    }
    if config.log_fsync == LogFsync::Off {
        tracing::warn!(
            "MUTATION LOG IS OFF (LOG_FSYNC=off): writes and deletes since the last snapshot are \
             lost when this node restarts"
        );
        metrics.log.durable.set(0);
        return None;
    }
    metrics.log.enabled.set(1);
    let generation = from_generation.max(replay.last_generation) + 1;
    let log = mutation_log::MutationLog::open(
        &dir,
        node_id,
        config.log_fsync,
        config.log_max_bytes,
        generation,
        metrics.log.clone(),
    );
    if replay.records > 0 {
        log.ask_for_snapshot();
    }
    Some(Arc::new(log))
}

async fn expiry_loop(store: Arc<Store>, clock: Clock, metrics: AuxMetrics, shutdown: Shutdown) {
    let mut tick = tokio::time::interval(EXPIRY_SWEEP_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.triggered() => return,
        }
        let timer = metrics.expiry_sweep.start_timer();
        // Keep going while whole budgets are used up, yielding in between so
        // a burst of expiries never starves requests.
        while store.purge_expired(clock(), EXPIRY_SWEEP_BUDGET) == EXPIRY_SWEEP_BUDGET {
            tokio::task::yield_now().await;
        }
        timer.observe_duration();
    }
}

async fn handoff_route(
    State(node): State<Arc<Node>>,
    body: Result<bytes::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, http::ApiError> {
    let body = body?;
    let req: handoff::HandoffRequest = serde_json::from_slice(&body).map_err(|e| {
        http::ApiError::bad_request("bad_json", format!("malformed handoff request: {e}"))
    })?;
    let report = handoff::run(&node, req).await?;
    Ok(Json(report).into_response())
}

async fn health(State(node): State<Arc<Node>>) -> Response {
    let stats = node.store.stats();
    Json(json!({
        "status": "ok",
        "role": "auxiliary",
        "node_id": node.identity.node_id,
        "incarnation": node.identity.incarnation,
        "addr": node.identity.addr,
        "data_addr": node.identity.data_addr,
        "epoch": node.fence.current(),
        "registered": node.fence.is_open(),
        "items": stats.items,
        "bytes": stats.bytes,
        "capacity_items": node.capacity.0,
        "capacity_bytes": node.capacity.1,
        "hits": stats.hits,
        "misses": stats.misses,
        "evictions": stats.evictions,
        "expirations": stats.expirations,
        "durability": node.log.as_ref().map_or_else(mutation_log::LogHealth::off, |log| log.health()),
    }))
    .into_response()
}

async fn metrics_text(State(node): State<Arc<Node>>) -> Response {
    node.metrics.update_store(node.store.stats());
    node.metrics.set_epoch(node.fence.current());
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        metrics::render(&node.registry),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use distcache_core::{Entry, Version};

    /// A clock that follows tokio's (pausable) time from a fixed start.
    fn tokio_clock() -> Clock {
        let start = tokio::time::Instant::now();
        Arc::new(move || 1_700_000_000_000 + start.elapsed().as_millis() as u64)
    }

    /// An auxiliary configured by `flags` alone.
    fn aux_config(flags: &[&str]) -> Result<AuxConfig, crate::config::ConfigError> {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            aux: AuxConfig,
        }
        let args = std::iter::once("distcache").chain(flags.iter().copied());
        Cli::try_parse_from(args)
            .expect("flags parse")
            .aux
            .validate()
    }

    #[test]
    fn the_data_port_is_advertised_on_the_http_host_unless_advertise_data_addr_says_where() {
        let http: SocketAddr = "0.0.0.0:3001".parse().unwrap();
        let data: SocketAddr = "0.0.0.0:13001".parse().unwrap();
        let config = aux_config(&["--node-id", "aux-1", "--advertise-addr", "aux-1:3001"]).unwrap();
        let identity = Identity::resolve(&config, http, data);
        assert_eq!(identity.addr, "aux-1:3001");
        assert_eq!(identity.data_addr, "aux-1:13001");

        // A port mapping puts the data port elsewhere: what masters and
        // peers dial is what the setting says, whatever was bound.
        let config = aux_config(&[
            "--node-id",
            "aux-1",
            "--advertise-addr",
            "aux-1:3001",
            "--advertise-data-addr",
            "gateway:23001",
        ])
        .unwrap();
        let identity = Identity::resolve(&config, http, data);
        assert_eq!(identity.addr, "aux-1:3001");
        assert_eq!(identity.data_addr, "gateway:23001");

        for bad in [
            "gateway",
            "gateway:",
            "http://gateway:23001",
            "gateway:70000",
        ] {
            let e = aux_config(&["--advertise-data-addr", bad]).expect_err(bad);
            assert_eq!(e.setting, "ADVERTISE_DATA_ADDR", "{bad}: {e}");
        }
    }

    /// With time paused, expired keys leave the store through the background
    /// sweep alone (no read touches them), and keys without expiry stay.
    #[tokio::test(start_paused = true)]
    async fn the_expiry_loop_reclaims_expired_keys_without_reads() {
        let clock = tokio_clock();
        let store = Arc::new(Store::new(StoreConfig::default()));
        let registry = prometheus::Registry::new();
        let metrics = AuxMetrics::new(&registry);
        let now = clock();
        let entry = |ttl_ms: Option<u64>, n: u32| Entry {
            value: Bytes::from_static(b"1"),
            expires_at_ms: ttl_ms.map(|t| now + t),
            version: Version {
                millis: now,
                counter: n,
                origin: 1,
            },
        };
        for i in 0..100u32 {
            let ttl = if i % 2 == 0 { Some(5_000) } else { None };
            let key = format!("k{i}");
            store.set(key.as_bytes(), entry(ttl, i), now);
        }
        store.set(b"late", entry(Some(60_000), 999), now);
        assert_eq!(store.len(), 101);
        let shutdown = Shutdown::new();
        let task = tokio::spawn(expiry_loop(
            store.clone(),
            clock.clone(),
            metrics,
            shutdown.clone(),
        ));

        tokio::time::sleep(Duration::from_millis(4_900)).await;
        assert_eq!(store.len(), 101, "nothing has expired yet");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(store.len(), 51, "the 50 five-second keys are gone");
        assert_eq!(store.stats().expirations, 50);
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(store.len(), 50, "the one-minute key is gone too");
        assert_eq!(
            store.stats().hits + store.stats().misses,
            0,
            "no reads were made"
        );

        shutdown.trigger();
        task.await.expect("the loop stops on shutdown");
    }
}
