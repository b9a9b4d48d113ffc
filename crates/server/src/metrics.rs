//! Every metric this crate exports, declared once, each with help text and
//! the `distcache_` prefix. Each node owns its own [`Registry`], so the
//! nodes of `distcache local` keep separate metrics in one process.
//! Labels are bounded: route templates, methods, statuses and node ids,
//! never keys.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use distcache_core::StoreStats;
use prometheus::local::{LocalHistogram, LocalIntCounter};
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Latency buckets in seconds, fine below a millisecond where a cache lives.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0,
];

const PREFIX: &str = "distcache";

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let metric = IntCounterVec::new(Opts::new(name, help).namespace(PREFIX), labels)
        .expect("metric definition is valid");
    registry
        .register(Box::new(metric.clone()))
        .expect("metric names are unique");
    metric
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let metric =
        IntCounter::with_opts(Opts::new(name, help).namespace(PREFIX)).expect("valid metric");
    registry
        .register(Box::new(metric.clone()))
        .expect("metric names are unique");
    metric
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let metric =
        IntGauge::with_opts(Opts::new(name, help).namespace(PREFIX)).expect("valid metric");
    registry
        .register(Box::new(metric.clone()))
        .expect("metric names are unique");
    metric
}

fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let metric = IntGaugeVec::new(Opts::new(name, help).namespace(PREFIX), labels)
        .expect("metric definition is valid");
    registry
        .register(Box::new(metric.clone()))
        .expect("metric names are unique");
    metric
}

fn histogram_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    let metric = HistogramVec::new(
        HistogramOpts::new(name, help)
            .namespace(PREFIX)
            .buckets(LATENCY_BUCKETS.to_vec()),
        labels,
    )
    .expect("metric definition is valid");
    registry
        .register(Box::new(metric.clone()))
        .expect("metric names are unique");
    metric
}

fn histogram(registry: &Registry, name: &str, help: &str) -> Histogram {
    histogram_with_buckets(registry, name, help, LATENCY_BUCKETS)
}

fn histogram_with_buckets(
    registry: &Registry,
    name: &str,
    help: &str,
    buckets: &[f64],
) -> Histogram {
    let metric = Histogram::with_opts(
        HistogramOpts::new(name, help)
            .namespace(PREFIX)
            .buckets(buckets.to_vec()),
    )
    .expect("metric definition is valid");
    registry
        .register(Box::new(metric.clone()))
        .expect("metric names are unique");
    metric
}

/// A fresh registry holding the process collector (CPU, memory, open files).
pub fn new_registry() -> Registry {
    let registry = Registry::new();
    let process = prometheus::process_collector::ProcessCollector::for_self();
    // Only fails on duplicate registration, which cannot happen on a fresh registry.
    let _ = registry.register(Box::new(process));
    registry
}

/// What every node says about itself: its version and role, the memory it
/// may use, and how often it snapshots. Set once at start.
#[derive(Clone, Debug)]
pub struct NodeMetrics {
    /// Always 1; the labels carry the information.
    pub build_info: IntGaugeVec,
    /// The memory limit of the node's cgroup (0 = none found).
    pub memory_limit_bytes: IntGauge,
    /// `BACKUP_INTERVAL` (0 = snapshots off).
    pub snapshot_interval_seconds: IntGauge,
}

impl NodeMetrics {
    /// Registers the node metrics in `registry` and sets them.
    pub fn new(registry: &Registry, role: &str, backup_interval_secs: u64) -> Self {
        let metrics = NodeMetrics {
            build_info: gauge_vec(
                registry,
                "build_info",
                "Always 1: the version and role of this node.",
                &["version", "role"],
            ),
            memory_limit_bytes: gauge(
                registry,
                "memory_limit_bytes",
                "Memory limit of this process's cgroup (container limit); 0 = no limit found.",
            ),
            snapshot_interval_seconds: gauge(
                registry,
                "snapshot_interval_seconds",
                "Seconds between snapshots (BACKUP_INTERVAL); 0 = snapshots off.",
            ),
        };
        metrics
            .build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION"), role])
            .set(1);
        let limit = crate::cgroup::memory_limit_bytes().unwrap_or(0);
        metrics
            .memory_limit_bytes
            .set(i64::try_from(limit).unwrap_or(i64::MAX));
        metrics
            .snapshot_interval_seconds
            .set(i64::try_from(backup_interval_secs).unwrap_or(i64::MAX));
        metrics
    }
}

/// Renders a registry in the Prometheus text format.
pub fn render(registry: &Registry) -> String {
    let mut out = Vec::with_capacity(16 * 1024);
    let families = registry.gather();
    if let Err(e) = TextEncoder::new().encode(&families, &mut out) {
        tracing::error!(error = %e, "encoding metrics failed");
    }
    String::from_utf8(out).unwrap_or_default()
}

/// The label sets of the data path, whose metric children are looked up
/// once and kept: `with_label_values` hashes the labels and takes a lock on
/// every call, and formatting the status allocates, which every request
/// would pay (docs/performance.md).
const HOT_REQUESTS: &[(&str, &str, u16)] = &[
    ("/data/{*key}", "GET", 200),
    ("/data/{*key}", "GET", 404),
    ("/data", "POST", 200),
    ("/data/{*key}", "DELETE", 200),
    ("/data/{*key}", "DELETE", 404),
];

/// The operations of the data path's calls to auxiliaries (the commands'
/// `execute` and `apply_changes` among them: every command over RESP or
/// `POST /` makes one or two), and the outcomes of a call; their children
/// are kept the same way.
const HOT_OPS: &[&str] = &[
    "get",
    "set",
    "delete",
    "set_many",
    "get_many",
    "execute",
    "apply_changes",
];
const OUTCOMES: &[&str] = &["ok", "refused", "timeout", "error"];

/// HTTP request metrics, on every node.
#[derive(Clone, Debug)]
pub struct HttpMetrics {
    requests: IntCounterVec,
    latency: HistogramVec,
    hot: Arc<[OnceLock<(IntCounter, Histogram)>]>,
}

impl HttpMetrics {
    /// Registers the HTTP metrics in `registry`.
    pub fn new(registry: &Registry) -> Self {
        HttpMetrics {
            requests: counter_vec(
                registry,
                "http_requests_total",
                "HTTP requests answered, by route template, method and status.",
                &["route", "method", "status"],
            ),
            latency: histogram_vec(
                registry,
                "http_request_duration_seconds",
                "Time from request to response, by route template.",
                &["route"],
            ),
            hot: HOT_REQUESTS.iter().map(|_| OnceLock::new()).collect(),
        }
    }

    /// Records one answered request. A method other than HTTP's standard
    /// ones counts as `other`: the label stays bounded whatever a client
    /// sends (each new value would be a series kept for ever).
    pub fn observe(&self, route: &str, method: &str, status: u16, took: Duration) {
        let method = bounded_method(method);
        let hot = HOT_REQUESTS
            .iter()
            .position(|&(r, m, s)| s == status && r == route && m == method);
        if let Some(i) = hot {
            let (requests, latency) = self.hot[i].get_or_init(|| {
                let status = status.to_string();
                (
                    self.requests
                        .with_label_values(&[route, method, status.as_str()]),
                    self.latency.with_label_values(&[route]),
                )
            });
            requests.inc();
            latency.observe(took.as_secs_f64());
            return;
        }
        let status = status.to_string();
        self.requests
            .with_label_values(&[route, method, status.as_str()])
            .inc();
        self.latency
            .with_label_values(&[route])
            .observe(took.as_secs_f64());
    }
}

/// `method` when it is one of HTTP's standard methods, else `other`.
fn bounded_method(method: &str) -> &str {
    const STANDARD: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    ];
    if STANDARD.contains(&method) {
        method
    } else {
        "other"
    }
}

impl MasterMetrics {
    /// Records one call to an auxiliary: its latency by operation, and its
    /// count by operation and outcome (`ok`, `refused`, `timeout`, `error`).
    pub fn observe_aux_call(&self, op: &str, outcome: &str, took: Duration) {
        let hot_op = HOT_OPS.iter().position(|&o| o == op);
        let hot_outcome = OUTCOMES.iter().position(|&o| o == outcome);
        match (hot_op, hot_outcome) {
            (Some(i), Some(j)) => {
                let children = &self.aux_call_children[i];
                children
                    .latency
                    .get_or_init(|| self.aux_call_latency.with_label_values(&[op]))
                    .observe(took.as_secs_f64());
                children.outcomes[j]
                    .get_or_init(|| self.aux_calls.with_label_values(&[op, outcome]))
                    .inc();
            }
            _ => {
                self.aux_call_latency
                    .with_label_values(&[op])
                    .observe(took.as_secs_f64());
                self.aux_calls.with_label_values(&[op, outcome]).inc();
            }
        }
    }
}

/// Metrics of a master's Redis-protocol (RESP) listener. The `command`
/// label is bounded: a name of the command table or of the listener's own
/// commands, else `unknown`.
#[derive(Clone, Debug)]
pub struct RespMetrics {
    /// Open RESP connections.
    pub connections: IntGauge,
    /// RESP connections accepted since start.
    pub connections_accepted: IntCounter,
    /// Commands received, by command.
    pub commands: IntCounterVec,
    /// Connections closed or refused by a limit, by reason.
    pub rejected: IntCounterVec,
}

impl RespMetrics {
    /// Registers the RESP listener's metrics in `registry`.
    pub fn new(registry: &Registry) -> Self {
        RespMetrics {
            connections: gauge(
                registry,
                "resp_connections",
                "Open connections on the Redis-protocol (RESP) port.",
            ),
            connections_accepted: counter(
                registry,
                "resp_connections_accepted_total",
                "Connections accepted on the RESP port since start.",
            ),
            commands: counter_vec(
                registry,
                "resp_commands_total",
                "Commands received on the RESP port, by command (lower case; `unknown` for names no table has).",
                &["command"],
            ),
            rejected: counter_vec(
                registry,
                "resp_rejected_total",
                "RESP connections closed or refused by a limit, by reason: protocol (a malformed or oversized request), query_buffer (a request past the read limit), output_stalled (a client that stopped reading its replies), max_clients.",
                &["reason"],
            ),
        }
    }
}

/// Pub/Sub on a master.
#[derive(Clone, Debug)]
pub struct PubSubMetrics {
    /// Channels with a subscriber on this master.
    pub channels: IntGauge,
    /// Patterns with a subscriber on this master.
    pub patterns: IntGauge,
    /// Shard channels with a subscriber on this master.
    pub shard_channels: IntGauge,
    /// Messages queued for this master's subscribers.
    pub delivered: IntCounter,
    /// Messages dropped because their subscriber passed its output bound
    /// (and was disconnected).
    pub dropped: IntCounter,
    /// Messages forwarded to other masters, by result.
    pub forwarded: IntCounterVec,
}

impl PubSubMetrics {
    /// Registers the Pub/Sub metrics in `registry`.
    pub fn new(registry: &Registry) -> Self {
        PubSubMetrics {
            channels: gauge(
                registry,
                "pubsub_channels",
                "Channels with at least one subscriber on this master (INFO's pubsub_channels).",
            ),
            patterns: gauge(
                registry,
                "pubsub_patterns",
                "Patterns with at least one subscriber on this master (INFO's pubsub_patterns).",
            ),
            shard_channels: gauge(
                registry,
                "pubsub_shard_channels",
                "Shard channels (SSUBSCRIBE) with at least one subscriber on this master (INFO's pubsubshard_channels).",
            ),
            delivered: counter(
                registry,
                "pubsub_messages_delivered_total",
                "Messages queued for a subscriber of this master (message, pmessage and smessage; one per receiving subscription).",
            ),
            dropped: counter(
                registry,
                "pubsub_messages_dropped_total",
                "Messages dropped because their subscriber passed RESP_PUBSUB_BUFFER_BYTES of unsent messages; each such subscriber is disconnected.",
            ),
            forwarded: counter_vec(
                registry,
                "pubsub_peer_publishes_total",
                "PUBLISH and SPUBLISH messages forwarded to other masters, by result: ok (the peer answered), failed (the call failed or timed out; the message may be lost), queue_full (dropped: the queue to that peer was full), not_awaited (the publisher stopped waiting for the peer's count and counted 0; the message is still forwarded).",
                &["result"],
            ),
        }
    }
}

/// Metrics of a master.
#[derive(Clone, Debug)]
pub struct MasterMetrics {
    /// Request counts and latencies.
    pub http: HttpMetrics,
    /// 1 when this master sees the auxiliary up, 0 otherwise.
    pub aux_up: IntGaugeVec,
    /// Items each auxiliary reported at its last health check.
    pub aux_items: IntGaugeVec,
    /// Bytes each auxiliary reported at its last health check.
    pub aux_bytes: IntGaugeVec,
    /// Auxiliaries in the ring.
    pub ring_members: IntGauge,
    /// Low 53 bits of the ring epoch (exact in a float), to see changes.
    pub ring_epoch: IntGauge,
    /// Ring changes seen.
    pub ring_changes: IntCounter,
    /// Calls to auxiliaries by operation and outcome.
    pub aux_calls: IntCounterVec,
    /// Latency of calls to auxiliaries by operation.
    pub aux_call_latency: HistogramVec,
    /// Health checks by outcome.
    pub health_checks: IntCounterVec,
    /// Reads answered by a replica after the leader failed or missed.
    pub read_fallbacks: IntCounter,
    /// Writes and deletes stamped again after a replica held a newer version.
    pub restamped: IntCounter,
    /// Writes and deletes that a concurrent newer one superseded on a replica.
    pub superseded: IntCounter,
    /// Replicas sent a key's whole value after they refused a command's
    /// changes as not fitting what they held (they had missed an operation).
    pub command_repairs: IntCounter,
    /// Calls an auxiliary refused because this master's map was older than
    /// one it had acted on.
    pub fenced: IntCounter,
    /// Reads answered from the near cache.
    pub near_cache_hits: IntCounter,
    /// Reads the near cache could not answer (only while it is on).
    pub near_cache_misses: IntCounter,
    /// Copies moved between auxiliaries by rebalancing.
    pub keys_moved: IntCounter,
    /// Rebalance rounds by outcome (done, failed).
    pub rebalances: IntCounterVec,
    /// 1 while a rebalance round runs.
    pub rebalance_in_progress: IntGauge,
    /// Time of one rebalance round.
    pub rebalance_duration: Histogram,
    /// 1 while the committed ring differs from the target ring.
    pub rebalance_pending: IntGauge,
    /// 1 while this master's lease holds (it serves data by its map).
    pub lease_holds: IntGauge,
    /// Requests refused because the lease had lapsed.
    pub lease_refusals: IntCounter,
    /// Map changes this master waited a lease for before routing by them:
    /// a node it stopped routing to did not hear of the change.
    pub lease_waits: IntCounter,
    /// Cluster backups written by this master.
    pub snapshots: SnapshotMetrics,
    /// Data commands, by command (both command front ends).
    pub commands: CommandMetrics,
    /// The Redis-protocol listener.
    pub resp: RespMetrics,
    /// Pub/Sub.
    pub pubsub: PubSubMetrics,
    /// Kept children of `aux_calls` and `aux_call_latency` for [`HOT_OPS`].
    aux_call_children: Arc<[AuxCallChildren]>,
}

#[derive(Debug, Default)]
struct AuxCallChildren {
    latency: OnceLock<Histogram>,
    outcomes: [OnceLock<IntCounter>; 4],
}

impl MasterMetrics {
    /// Registers a master's metrics in `registry`.
    pub fn new(registry: &Registry) -> Self {
        MasterMetrics {
            http: HttpMetrics::new(registry),
            aux_up: gauge_vec(
                registry,
                "aux_up",
                "1 if this master sees the auxiliary as up, 0 if down.",
                &["node"],
            ),
            aux_items: gauge_vec(
                registry,
                "aux_items",
                "Items the auxiliary reported at this master's last successful health check of it.",
                &["node"],
            ),
            aux_bytes: gauge_vec(
                registry,
                "aux_bytes",
                "Bytes of keys and values the auxiliary reported at this master's last successful health check of it.",
                &["node"],
            ),
            ring_members: gauge(
                registry,
                "ring_members",
                "Auxiliaries in this master's ring.",
            ),
            ring_epoch: gauge(
                registry,
                "ring_epoch",
                "The ring epoch (a hash of the member set), low 53 bits; equal on masters that agree.",
            ),
            ring_changes: counter(
                registry,
                "ring_changes_total",
                "Times this master's ring changed.",
            ),
            aux_calls: counter_vec(
                registry,
                "aux_calls_total",
                "Calls from this master to auxiliaries, by operation and outcome.",
                &["op", "outcome"],
            ),
            aux_call_latency: histogram_vec(
                registry,
                "aux_call_duration_seconds",
                "Time for one call to an auxiliary, by operation.",
                &["op"],
            ),
            health_checks: counter_vec(
                registry,
                "health_checks_total",
                "Health checks of auxiliaries, by outcome (ok, failed).",
                &["outcome"],
            ),
            read_fallbacks: counter(
                registry,
                "read_fallbacks_total",
                "Reads served by another replica after the leader failed or missed.",
            ),
            command_repairs: counter(
                registry,
                "command_repairs_total",
                "Replicas sent a key's whole value because they had missed an operation and refused a command's changes.",
            ),
            restamped: counter(
                registry,
                "writes_restamped_total",
                "Writes and deletes stamped again because a replica held a newer version.",
            ),
            fenced: counter(
                registry,
                "fenced_calls_total",
                "Calls to auxiliaries refused because this master routed by an older cluster map than one the auxiliary had acted on; the master caught up and routed again.",
            ),
            superseded: counter(
                registry,
                "writes_superseded_total",
                "Writes and deletes acknowledged as ordered just before a concurrent newer one that a replica already held.",
            ),
            near_cache_hits: counter(
                registry,
                "near_cache_hits_total",
                "Reads this master answered from its near cache, without an auxiliary.",
            ),
            near_cache_misses: counter(
                registry,
                "near_cache_misses_total",
                "Reads this master's near cache could not answer (counted only while NEAR_CACHE_SIZE > 0).",
            ),
            keys_moved: counter(
                registry,
                "keys_moved_total",
                "Copies of keys moved between auxiliaries by rebalancing (stored by a new owner).",
            ),
            rebalances: counter_vec(
                registry,
                "rebalances_total",
                "Rebalance rounds, by outcome (done, failed).",
                &["outcome"],
            ),
            rebalance_in_progress: gauge(
                registry,
                "rebalance_in_progress",
                "1 while a rebalance round is moving keys.",
            ),
            rebalance_duration: histogram_with_buckets(
                registry,
                "rebalance_duration_seconds",
                "Time of one rebalance round, from start to the committed ring.",
                &[
                    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
                ],
            ),
            rebalance_pending: gauge(
                registry,
                "rebalance_pending",
                "1 while keys still have to move: the committed ring differs from the target ring.",
            ),
            lease_holds: gauge(
                registry,
                "master_lease_holds",
                "1 while this master's lease holds: it reached enough masters within MASTER_LEASE_MS to know its cluster map is current, and serves data; 0 while it refuses data requests (503 no_master_quorum).",
            ),
            lease_refusals: counter(
                registry,
                "lease_refusals_total",
                "Calls to auxiliaries this master did not make because its lease had lapsed (a request that needed several counts each; it is answered 503 no_master_quorum).",
            ),
            lease_waits: counter(
                registry,
                "lease_route_waits_total",
                "Cluster map changes this master routed by only after waiting a lease, because a node it stopped routing to could not be told of the change.",
            ),
            snapshots: SnapshotMetrics::new(registry),
            commands: CommandMetrics::new(registry),
            resp: RespMetrics::new(registry),
            pubsub: PubSubMetrics::new(registry),
            aux_call_children: HOT_OPS.iter().map(|_| AuxCallChildren::default()).collect(),
        }
    }

    /// Drops the per-node series of an auxiliary that left the cluster, so
    /// that a removed node neither shows as down nor keeps its last size.
    pub fn forget_node(&self, id: &str) {
        self.aux_up.remove_label_values(&[id]).ok();
        self.aux_items.remove_label_values(&[id]).ok();
        self.aux_bytes.remove_label_values(&[id]).ok();
    }
}

/// Data commands run by a master, labelled by the command table's names
/// (lower case), so the label set is bounded: a name the table does not
/// know is counted as `unknown`.
#[derive(Clone, Debug)]
pub struct CommandMetrics {
    calls: IntCounterVec,
    latency: HistogramVec,
}

/// The `command` label of a name the command table does not know.
pub const UNKNOWN_COMMAND: &str = "unknown";

impl CommandMetrics {
    /// The `command` label of a command's name: its lower-case name in the
    /// table, or [`UNKNOWN_COMMAND`].
    pub fn label(name: &[u8]) -> &'static str {
        distcache_core::command::lookup(name).map_or(UNKNOWN_COMMAND, |spec| spec.name)
    }

    /// Registers the command metrics in `registry`.
    pub fn new(registry: &Registry) -> Self {
        CommandMetrics {
            calls: counter_vec(
                registry,
                "commands_total",
                "Data commands answered, by command (the table's lower-case name, or unknown) and result (ok, or error for an error reply, a refusal included).",
                &["command", "result"],
            ),
            latency: histogram_vec(
                registry,
                "command_duration_seconds",
                "Time to run one data command, by command; a transaction is timed once, as exec.",
                &["command"],
            ),
        }
    }

    /// Counts one command's answer, and times it when `took` is given (a
    /// command queued in a transaction is timed with the transaction).
    pub fn observe(&self, command: &str, ok: bool, took: Option<Duration>) {
        let result = if ok { "ok" } else { "error" };
        self.calls.with_label_values(&[command, result]).inc();
        if let Some(took) = took {
            self.latency
                .with_label_values(&[command])
                .observe(took.as_secs_f64());
        }
    }

    /// The series of `command`, looked up once for a front end that keeps
    /// them (a RESP connection): each lookup in a family hashes the labels
    /// and takes its lock.
    pub fn series(&self, command: &str) -> CommandSeries {
        CommandSeries {
            ok: self.calls.with_label_values(&[command, "ok"]).local(),
            error: self.calls.with_label_values(&[command, "error"]).local(),
            latency: self.latency.with_label_values(&[command]).local(),
        }
    }
}

/// One command's series of [`CommandMetrics`], kept by one task: answers
/// are added up locally and reach the shared series when the task calls
/// [`CommandSeries::flush`] (a RESP connection, once per window of
/// pipelined requests, before it writes their replies) or drops them.
/// Counted one by one, each answer took five atomic operations, which a
/// pipeline of 16 GETs paid 16 times.
#[derive(Debug)]
pub struct CommandSeries {
    ok: LocalIntCounter,
    error: LocalIntCounter,
    latency: LocalHistogram,
}

impl CommandSeries {
    /// Counts one answer and its time, as [`CommandMetrics::observe`].
    pub fn observe(&self, ok: bool, took: Duration) {
        if ok { &self.ok } else { &self.error }.inc();
        self.latency.observe(took.as_secs_f64());
    }

    /// Adds what was counted since the last flush to the shared series.
    pub fn flush(&self) {
        self.ok.flush();
        self.error.flush();
        self.latency.flush();
    }
}

impl Drop for CommandSeries {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Metrics of an auxiliary. Store counters are kept by the store itself and
/// copied in at scrape time by [`AuxMetrics::update_store`].
#[derive(Clone, Debug)]
pub struct AuxMetrics {
    /// Request counts and latencies of the HTTP side.
    pub http: HttpMetrics,
    /// Internal-protocol requests by operation.
    pub data_requests: IntCounterVec,
    /// Data requests refused because they were routed by an older cluster
    /// map than one this auxiliary has seen.
    pub stale_epoch_refusals: IntCounter,
    /// Data requests refused because no master had answered this process's
    /// registration yet.
    pub unregistered_refusals: IntCounter,
    epoch: IntGauge,
    items: IntGauge,
    bytes: IntGauge,
    tombstones: IntGauge,
    tombstones_dropped_early: IntCounter,
    capacity_items: IntGauge,
    capacity_bytes: IntGauge,
    hits: IntCounter,
    misses: IntCounter,
    evictions: IntCounter,
    expirations: IntCounter,
    last: Arc<Mutex<StoreStats>>,
    /// Time spent purging expired entries per sweep.
    pub expiry_sweep: Histogram,
    /// Copies this node sent to others in handoffs.
    pub keys_sent: IntCounter,
    /// Copies this node dropped after handing them over.
    pub keys_dropped: IntCounter,
    /// Snapshot metrics (written by the snapshot worker).
    pub snapshots: SnapshotMetrics,
    /// Mutation log metrics.
    pub log: LogMetrics,
}

/// Metrics of an auxiliary's mutation log.
#[derive(Clone, Debug)]
pub struct LogMetrics {
    /// 1 when the log is on (`LOG_FSYNC` is not `off`).
    pub enabled: IntGauge,
    /// Bytes in the current log generation.
    pub bytes: IntGauge,
    /// 1 while every acknowledged mutation is on disk within the fsync
    /// window; 0 when the log is off or broken.
    pub durable: IntGauge,
    /// Time of one fsync of the log.
    pub fsync_seconds: Histogram,
    /// Failed fsyncs of the log.
    pub fsync_failures: IntCounter,
    /// Failed writes to the log (disk full, read-only, I/O errors).
    pub write_failures: IntCounter,
    /// Records replayed from the log at start.
    pub replayed_records: IntCounter,
    /// Log files found damaged at start, by kind (`torn_tail`, `corrupt`,
    /// `unreadable`), and `diverged`: changes records skipped because their
    /// key was held at another version than their base.
    pub replay_damage: IntCounterVec,
}

/// Buckets of the fsync histogram: from a page-cache-only fsync on tmpfs to
/// a slow disk.
const FSYNC_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0,
];

impl LogMetrics {
    /// Registers the log metrics in `registry`.
    pub fn new(registry: &Registry) -> Self {
        LogMetrics {
            enabled: gauge(
                registry,
                "log_enabled",
                "1 when the mutation log is on (LOG_FSYNC is everysec or always), 0 when off.",
            ),
            bytes: gauge(
                registry,
                "log_bytes",
                "Bytes in the current mutation log generation (emptied by each snapshot).",
            ),
            durable: gauge(
                registry,
                "log_durable",
                "1 while every acknowledged write and delete is in the mutation log or a snapshot on disk (within the LOG_FSYNC window); 0 when the log is off or failed.",
            ),
            fsync_seconds: histogram_with_buckets(
                registry,
                "log_fsync_duration_seconds",
                "Time of one fsync of the mutation log.",
                FSYNC_BUCKETS,
            ),
            fsync_failures: counter(
                registry,
                "log_fsync_failures_total",
                "Failed fsyncs of the mutation log.",
            ),
            write_failures: counter(
                registry,
                "log_write_failures_total",
                "Failed writes to the mutation log (disk full, read-only directory, I/O errors).",
            ),
            replayed_records: counter(
                registry,
                "log_replayed_records_total",
                "Mutation log records replayed on top of the snapshot at start.",
            ),
            replay_damage: counter_vec(
                registry,
                "log_replay_damage_total",
                "Mutation log files found damaged at start, by kind: torn_tail (cut, expected after a crash), corrupt (records after the damage skipped), unreadable; diverged counts changes records skipped because their key was held at another version than the one they change.",
                &["kind"],
            ),
        }
    }
}

/// Metrics of the snapshots a node writes (auxiliaries: their store;
/// masters: cluster backups).
#[derive(Clone, Debug)]
pub struct SnapshotMetrics {
    /// Unix time in seconds of the last snapshot written in full (0 = none
    /// yet); `time() - this` is the snapshot's age.
    pub last_success: prometheus::Gauge,
    /// Time to write one snapshot.
    pub duration: Histogram,
    /// Size of the last snapshot written, in bytes.
    pub bytes: IntGauge,
    /// Entries in the last snapshot written.
    pub entries: IntGauge,
    /// Snapshots that failed (disk full, permissions...).
    pub failures: IntCounter,
}

impl SnapshotMetrics {
    /// Registers the snapshot metrics in `registry`.
    pub fn new(registry: &Registry) -> Self {
        let last_success = prometheus::Gauge::with_opts(
            Opts::new(
                "snapshot_last_success_timestamp_seconds",
                "Unix time of the last snapshot written in full (0 = none yet).",
            )
            .namespace(PREFIX),
        )
        .expect("valid metric");
        registry
            .register(Box::new(last_success.clone()))
            .expect("metric names are unique");
        SnapshotMetrics {
            last_success,
            duration: histogram_with_buckets(
                registry,
                "snapshot_duration_seconds",
                "Time to write one snapshot.",
                &[
                    0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                ],
            ),
            bytes: gauge(
                registry,
                "snapshot_bytes",
                "Size of the last snapshot written, in bytes.",
            ),
            entries: gauge(
                registry,
                "snapshot_entries",
                "Entries in the last snapshot written.",
            ),
            failures: counter(
                registry,
                "snapshot_failures_total",
                "Snapshots that could not be written (the previous one is kept).",
            ),
        }
    }
}

impl AuxMetrics {
    /// Registers an auxiliary's metrics in `registry`.
    pub fn new(registry: &Registry) -> Self {
        AuxMetrics {
            http: HttpMetrics::new(registry),
            data_requests: counter_vec(
                registry,
                "data_requests_total",
                "Internal-protocol requests served, by operation.",
                &["op"],
            ),
            stale_epoch_refusals: counter(
                registry,
                "aux_stale_epoch_refusals_total",
                "Data requests refused because their sender routed by an older cluster map (epoch) than one this auxiliary has seen.",
            ),
            unregistered_refusals: counter(
                registry,
                "aux_unregistered_refusals_total",
                "Data requests refused because this auxiliary process had not been registered by a master yet (after a start or restart).",
            ),
            epoch: gauge(
                registry,
                "aux_epoch",
                "The highest cluster-map epoch this auxiliary has seen (0 = none yet); data requests at an older one are refused.",
            ),
            items: gauge(registry, "items", "Items held in the store."),
            bytes: gauge(
                registry,
                "bytes",
                "Bytes of keys and values held in the store.",
            ),
            tombstones: gauge(
                registry,
                "tombstones",
                "Tombstones held: keys deleted, or expired, within TOMBSTONE_GRACE.",
            ),
            tombstones_dropped_early: counter(
                registry,
                "tombstones_dropped_early_total",
                "Tombstones forgotten before TOMBSTONE_GRACE because the node held as many as CACHE_SIZE.",
            ),
            capacity_items: gauge(
                registry,
                "capacity_items",
                "Most items the store holds (CACHE_SIZE).",
            ),
            capacity_bytes: gauge(
                registry,
                "capacity_bytes",
                "Most bytes the store holds (CACHE_MAX_BYTES; 0 = no limit).",
            ),
            hits: counter(registry, "hits_total", "Reads that found a live value."),
            misses: counter(registry, "misses_total", "Reads that found nothing."),
            evictions: counter(
                registry,
                "evictions_total",
                "Items evicted to make room (LRU).",
            ),
            expirations: counter(
                registry,
                "expirations_total",
                "Items removed because their TTL ran out.",
            ),
            last: Arc::new(Mutex::new(StoreStats::default())),
            expiry_sweep: histogram(
                registry,
                "expiry_sweep_duration_seconds",
                "Time of one active-expiry sweep.",
            ),
            keys_sent: counter(
                registry,
                "handoff_keys_sent_total",
                "Copies of keys this auxiliary sent to new owners when the ring changed.",
            ),
            keys_dropped: counter(
                registry,
                "handoff_keys_dropped_total",
                "Copies this auxiliary dropped after their new owners had them.",
            ),
            snapshots: SnapshotMetrics::new(registry),
            log: LogMetrics::new(registry),
        }
    }

    /// Sets the capacity gauges.
    pub fn set_capacity(&self, items: usize, bytes: Option<u64>) {
        self.capacity_items.set(items as i64);
        self.capacity_bytes.set(bytes.unwrap_or(0) as i64);
    }

    /// Sets the epoch gauge (at scrape time, from the epoch fence).
    pub fn set_epoch(&self, epoch: u64) {
        // Epochs count map changes from 1: they never reach 2^63.
        self.epoch.set(i64::try_from(epoch).unwrap_or(i64::MAX));
    }

    /// Copies the store's counters and gauges into the metrics.
    pub fn update_store(&self, now: StoreStats) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        self.items.set(now.items as i64);
        self.bytes.set(now.bytes as i64);
        self.tombstones.set(now.tombstones as i64);
        self.tombstones_dropped_early.inc_by(
            now.tombstones_dropped_early
                .saturating_sub(last.tombstones_dropped_early),
        );
        self.hits.inc_by(now.hits.saturating_sub(last.hits));
        self.misses.inc_by(now.misses.saturating_sub(last.misses));
        self.evictions
            .inc_by(now.evictions.saturating_sub(last.evictions));
        self.expirations
            .inc_by(now.expirations.saturating_sub(last.expirations));
        *last = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whatever methods clients send, the `method` label takes ten values
    /// at most: a made-up method per request must not add a series each
    /// (an attacker grew a master by 26 MB this way, unauthenticated).
    #[test]
    fn made_up_methods_share_one_series() {
        let registry = new_registry();
        let http = HttpMetrics::new(&registry);
        for i in 0..100 {
            http.observe("/health", &format!("BOGUS{i}"), 405, Duration::ZERO);
        }
        http.observe("/health", "GET", 200, Duration::ZERO);
        let families = registry.gather();
        let requests = families
            .iter()
            .find(|f| f.name() == "distcache_http_requests_total")
            .expect("the family");
        let methods: Vec<&str> = requests
            .get_metric()
            .iter()
            .flat_map(|m| m.get_label())
            .filter(|l| l.name() == "method")
            .map(|l| l.value())
            .collect();
        assert_eq!(methods.len(), 2, "{methods:?}");
        assert!(methods.contains(&"other") && methods.contains(&"GET"));
        let other = requests
            .get_metric()
            .iter()
            .find(|m| m.get_label().iter().any(|l| l.value() == "other"))
            .unwrap();
        assert_eq!(other.get_counter().get_value(), 100.0);
    }

    /// Registering both roles' metrics in one registry would panic on a
    /// duplicate name; gathering proves every family has help text.
    #[test]
    fn metric_names_are_unique_and_documented() {
        let registry = new_registry();
        let aux = AuxMetrics::new(&registry);
        aux.update_store(StoreStats {
            items: 3,
            hits: 5,
            ..StoreStats::default()
        });
        NodeMetrics::new(&registry, "auxiliary", 60);
        let master_registry = new_registry();
        let master = MasterMetrics::new(&master_registry);
        NodeMetrics::new(&master_registry, "master", 120);
        master.aux_up.with_label_values(&["a"]).set(1);
        master.aux_items.with_label_values(&["a"]).set(1);
        master.aux_bytes.with_label_values(&["a"]).set(1);
        master.rebalances.with_label_values(&["done"]).inc();
        master.aux_calls.with_label_values(&["get", "ok"]).inc();
        master.health_checks.with_label_values(&["ok"]).inc();
        master
            .commands
            .observe("incr", true, Some(Duration::from_millis(1)));
        for registry in [&registry, &master_registry] {
            let mut seen = std::collections::HashSet::new();
            for family in registry.gather() {
                assert!(
                    family.name().starts_with("distcache_")
                        || family.name().starts_with("process_"),
                    "{} lacks the prefix",
                    family.name()
                );
                assert!(!family.help().is_empty(), "{} has no help", family.name());
                assert!(
                    seen.insert(family.name().to_string()),
                    "{} twice",
                    family.name()
                );
            }
        }
        // One family name for both roles means one meaning: a name that both
        // registries hold must be declared by the same shared code.
        let shared: Vec<String> = {
            let aux_names: std::collections::HashSet<String> = registry
                .gather()
                .iter()
                .map(|f| f.name().to_string())
                .collect();
            master_registry
                .gather()
                .iter()
                .map(|f| f.name().to_string())
                .filter(|n| aux_names.contains(n))
                .collect()
        };
        for name in &shared {
            assert!(
                name.starts_with("distcache_http_")
                    || name.starts_with("distcache_snapshot_")
                    || name.starts_with("process_")
                    || ["distcache_build_info", "distcache_memory_limit_bytes"]
                        .contains(&name.as_str()),
                "{name} is declared by both roles separately"
            );
        }
        let text = render(&registry);
        assert!(text.contains("distcache_hits_total 5"), "{text}");
        assert!(
            text.contains("distcache_build_info{role=\"auxiliary\",version=\""),
            "{text}"
        );
        assert!(text.contains("distcache_items 3"), "{text}");
    }

    #[test]
    fn store_counters_only_grow_by_the_difference() {
        let registry = Registry::new();
        let aux = AuxMetrics::new(&registry);
        aux.update_store(StoreStats {
            hits: 5,
            ..StoreStats::default()
        });
        aux.update_store(StoreStats {
            hits: 8,
            ..StoreStats::default()
        });
        assert_eq!(aux.hits.get(), 8);
    }
}
