//! Configuration of each role: one struct per role, read from environment
//! variables and command-line flags (flags win), with named defaults and
//! validation at start. The variable names are a contract with operators
//! (DESIGN: configuration); `--help` lists each with its default.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

/// Default HTTP port of a master.
pub const DEFAULT_MASTER_PORT: u16 = 8000;
/// Default HTTP port of an auxiliary.
pub const DEFAULT_AUX_PORT: u16 = 3001;
/// An auxiliary's data port is its HTTP port plus this, unless set.
pub const DATA_PORT_OFFSET: u16 = 10_000;
/// Default items per auxiliary (the seed's `CACHE_SIZE`).
pub const DEFAULT_CACHE_SIZE: usize = 1000;
/// Default copies of each key.
pub const DEFAULT_REPLICAS: usize = 2;
/// Default seconds between health checks.
pub const DEFAULT_HEALTH_CHECK_INTERVAL_SECS: f64 = 10.0;
/// Default longest wait for one auxiliary, in milliseconds.
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 1000;

/// `MASTER_LEASE_MS`: four renewal rounds (every 375 ms) fit in one lease.
pub const DEFAULT_MASTER_LEASE_MS: u64 = 1_500;
/// Default largest value, in bytes of JSON text.
pub const DEFAULT_MAX_VALUE_BYTES: usize = 1024 * 1024;
/// Default largest request body, in bytes.
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
/// Default most entries in one bulk request.
pub const DEFAULT_MAX_BATCH: usize = 1000;
/// Default near-cache items per master (0 = off; docs/performance.md
/// says why it is off).
pub const DEFAULT_NEAR_CACHE_SIZE: usize = 0;
/// Default seconds a near-cached entry is served (the staleness bound for
/// writes through other masters).
pub const DEFAULT_NEAR_CACHE_TTL_SECS: f64 = 1.0;
/// Default port of a master's Redis-protocol listener (Redis's own).
pub const DEFAULT_RESP_PORT: u16 = 6379;
/// Default longest wait for a RESP client to read its replies, in
/// milliseconds.
pub const DEFAULT_RESP_OUTPUT_TIMEOUT_MS: u64 = 30_000;
/// Default bound on the messages queued for one Pub/Sub subscriber, in
/// bytes: Redis's `client-output-buffer-limit pubsub` hard limit.
pub const DEFAULT_RESP_PUBSUB_BUFFER_BYTES: usize = 32 * 1024 * 1024;
/// `SLOWLOG_SLOWER_THAN_US` when not set: Redis's
/// `slowlog-log-slower-than`, 10 ms.
pub const DEFAULT_SLOWLOG_SLOWER_THAN_US: i64 = 10_000;
/// `SLOWLOG_MAX_LEN` when not set: Redis's `slowlog-max-len`.
pub const DEFAULT_SLOWLOG_MAX_LEN: usize = 128;
/// Most `SLOWLOG_MAX_LEN`: an entry keeps up to 32 arguments of 128
/// bytes, so a million entries could hold 4 GiB.
pub const MAX_SLOWLOG_MAX_LEN: usize = 100_000;

/// Most `RESP_THREADS`.
pub const MAX_RESP_THREADS: usize = 256;

/// `RESP_ANNOUNCE_ADDR` split into its host (an IPv6 address without its
/// brackets) and port, if it is host:port.
pub fn announced_host_port(addr: &str) -> Option<(String, u16)> {
    let (host, port) = addr.rsplit_once(':')?;
    if !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let port = port.parse::<u16>().ok().filter(|&p| p != 0)?;
    // An IPv6 address only in brackets (`[::1]:6379`), so that the port is
    // not read from it.
    let (host, v6) = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(inner) => (inner, true),
        None => (host, false),
    };
    let plain = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') || (v6 && c == ':'));
    plain.then(|| (host.to_owned(), port))
}

/// `RESP_THREADS` when not set, on a machine with `cores` cores: one below
/// four cores, else three quarters of them. One thread serves every
/// connection without handing work between cores; on two cores shared
/// with auxiliaries it costs a tenth less CPU per request than two
/// (docs/performance.md, "RESP threads"). Past that, as Redis advises for
/// its I/O threads, leave a quarter of the cores to the kernel's network
/// work and the master's other tasks.
pub fn default_resp_threads(cores: usize) -> usize {
    if cores < 4 { 1 } else { cores * 3 / 4 }
}
/// Default seconds a delete's tombstone is kept.
pub const DEFAULT_TOMBSTONE_GRACE_SECS: u64 = 300;
/// A master's Raft directory, inside `BACKUP_DIR`, unless `RAFT_DIR` is set.
pub const DEFAULT_RAFT_SUBDIR: &str = "raft";

/// Settings every role shares.
#[derive(Args, Debug, Clone)]
pub struct CommonConfig {
    /// Stable, unique id of this node [default: host name and port]
    #[arg(long, env = "NODE_ID")]
    pub node_id: Option<String>,

    /// Address to listen on
    #[arg(long, env = "BIND_ADDR", default_value = "0.0.0.0")]
    pub bind_addr: IpAddr,

    /// Where snapshots and cluster backups are written
    #[arg(long, env = "BACKUP_DIR", default_value = "./backup")]
    pub backup_dir: PathBuf,
}

/// Default `SCRIPT_TIME_LIMIT_MS`: half the default `REQUEST_TIMEOUT_MS`,
/// so that a master still waits for the answer of a script stopped at the
/// limit.
pub const DEFAULT_SCRIPT_TIME_LIMIT_MS: u64 =
    distcache_core::script::DEFAULT_TIME_LIMIT.as_millis() as u64;

/// Default `LOG_MAX_BYTES`: 64 MiB, as Redis's `auto-aof-rewrite-min-size`.
pub const DEFAULT_LOG_MAX_BYTES: u64 = 64 * 1024 * 1024;

/// `LOG_FSYNC`: when the mutation log reaches the disk.
#[derive(clap::ValueEnum, serde::Serialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFsync {
    /// Written before each acknowledgement, synced once a second.
    Everysec,
    /// Synced before each acknowledgement (group commit).
    Always,
    /// No log.
    Off,
}

/// Configuration of an auxiliary (storage node).
#[derive(Args, Debug, Clone)]
pub struct AuxConfig {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: CommonConfig,

    /// HTTP port (health, metrics); 0 picks a free port
    #[arg(long, env = "PORT", default_value_t = DEFAULT_AUX_PORT)]
    pub port: u16,

    /// Port of the internal data protocol [default: PORT + 10000; 0 when PORT is 0]
    #[arg(long, env = "DATA_PORT")]
    pub data_port: Option<u16>,

    /// host:port where masters reach this node's HTTP port [default: BIND_ADDR:PORT if BIND_ADDR is one address, else NODE_ID's host and PORT]
    #[arg(long, env = "ADVERTISE_ADDR")]
    pub advertise_addr: Option<String>,

    /// host:port where masters and other auxiliaries reach this node's data port, when a port mapping or a proxy puts it elsewhere [default: ADVERTISE_ADDR's host and DATA_PORT]
    #[arg(long, env = "ADVERTISE_DATA_ADDR")]
    pub advertise_data_addr: Option<String>,

    /// Masters or the load balancer to register with, comma-separated
    #[arg(
        long,
        env = "MASTER_ADDRESS",
        default_value = "nginx:80",
        value_delimiter = ','
    )]
    pub master_address: Vec<String>,

    /// Most items held
    #[arg(long, env = "CACHE_SIZE", default_value_t = DEFAULT_CACHE_SIZE)]
    pub cache_size: usize,

    /// Most bytes of keys and values held [default: no limit]
    #[arg(long, env = "CACHE_MAX_BYTES")]
    pub cache_max_bytes: Option<u64>,

    /// Independently locked shards of the store (1 = exact global LRU order)
    #[arg(long, env = "CACHE_SHARDS", default_value_t = distcache_core::store::DEFAULT_SHARDS)]
    pub cache_shards: usize,

    /// Longest a Lua script (EVAL) may run, in milliseconds; then it is stopped, keeping the writes it made. Keep it below the masters' REQUEST_TIMEOUT_MS
    #[arg(long, env = "SCRIPT_TIME_LIMIT_MS", default_value_t = DEFAULT_SCRIPT_TIME_LIMIT_MS)]
    pub script_time_limit_ms: u64,

    /// Seconds a delete's tombstone is kept so a late older write cannot revive the key
    #[arg(long, env = "TOMBSTONE_GRACE", default_value_t = DEFAULT_TOMBSTONE_GRACE_SECS)]
    pub tombstone_grace: u64,

    /// Seconds between snapshots (0 = off)
    #[arg(long, env = "BACKUP_INTERVAL", default_value_t = 60)]
    pub backup_interval: u64,

    /// When the mutation log is synced to disk: everysec (a machine crash
    /// loses at most about the last second), always (before every
    /// acknowledgement), off (no log: a restart keeps only the last snapshot)
    #[arg(long, env = "LOG_FSYNC", value_enum, default_value_t = LogFsync::Everysec)]
    pub log_fsync: LogFsync,

    /// Bytes the mutation log may grow to (or the last snapshot's size, if
    /// larger) before a snapshot empties it
    #[arg(long, env = "LOG_MAX_BYTES", default_value_t = DEFAULT_LOG_MAX_BYTES)]
    pub log_max_bytes: u64,

    /// On SIGTERM, hand every key to its new owners before exiting
    #[arg(long, env = "LEAVE_ON_SHUTDOWN", default_value_t = true, action = clap::ArgAction::Set)]
    pub leave_on_shutdown: bool,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub security: crate::security::AuxSecurity,
}

/// Configuration of a master (coordinator).
#[derive(Args, Debug, Clone)]
pub struct MasterConfig {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: CommonConfig,

    /// HTTP port of the public API; 0 picks a free port
    #[arg(long, env = "PORT", default_value_t = DEFAULT_MASTER_PORT)]
    pub port: u16,

    /// Port of the Redis-protocol (RESP) listener, for redis-cli and Redis client libraries (0 = off)
    #[arg(long, env = "RESP_PORT", default_value_t = DEFAULT_RESP_PORT)]
    pub resp_port: u16,

    /// Longest time a RESP client may leave its replies unread (no reply byte taken), in milliseconds; then it is disconnected
    #[arg(long, env = "RESP_OUTPUT_TIMEOUT_MS", default_value_t = DEFAULT_RESP_OUTPUT_TIMEOUT_MS)]
    pub resp_output_timeout_ms: u64,

    /// Most bytes of Pub/Sub messages waiting to be sent to one RESP subscriber; past it the subscriber is disconnected, as Redis's `client-output-buffer-limit pubsub` does
    #[arg(long, env = "RESP_PUBSUB_BUFFER_BYTES", default_value_t = DEFAULT_RESP_PUBSUB_BUFFER_BYTES)]
    pub resp_pubsub_buffer_bytes: usize,

    /// SLOWLOG keeps the RESP commands that took at least this many microseconds, from their start to their reply (negative: keep none; 0: keep every command)
    #[arg(long, env = "SLOWLOG_SLOWER_THAN_US", default_value_t = DEFAULT_SLOWLOG_SLOWER_THAN_US, allow_negative_numbers = true)]
    pub slowlog_slower_than_us: i64,

    /// Most entries SLOWLOG keeps; the oldest go first
    #[arg(long, env = "SLOWLOG_MAX_LEN", default_value_t = DEFAULT_SLOWLOG_MAX_LEN)]
    pub slowlog_max_len: usize,

    /// host:port that CLUSTER SLOTS, SHARDS and NODES give Redis Cluster clients for this master: a load balancer's or a NAT's address when clients cannot reach the master's own [default: the address each client connected to]
    #[arg(long, env = "RESP_ANNOUNCE_ADDR")]
    pub resp_announce_addr: Option<String>,

    /// Threads that serve RESP connections, each a single-threaded runtime with its own connections to the auxiliaries [default: 1 below 4 cores, else three quarters of the cores]
    #[arg(long, env = "RESP_THREADS")]
    pub resp_threads: Option<usize>,

    /// The masters (host:port), comma-separated: the others, or every master with this one included (its own ADVERTISE_ADDR is skipped), spelled as each advertises itself
    #[arg(long, env = "MASTER_PEERS", value_delimiter = ',')]
    pub master_peers: Vec<String>,

    /// host:port where the other masters reach this one (its Raft address), spelled as in their MASTER_PEERS; https:// when it serves TLS [default: BIND_ADDR:PORT if BIND_ADDR is one address, else NODE_ID's host (or the host name) and PORT]
    #[arg(long, env = "ADVERTISE_ADDR")]
    pub advertise_addr: Option<String>,

    /// Directory of this master's Raft log, vote and snapshot, never shared between masters; if lost, the master rejoins empty and catches up from the others [default: BACKUP_DIR/raft]
    #[arg(long, env = "RAFT_DIR")]
    pub raft_dir: Option<PathBuf>,

    /// Auxiliaries (HTTP host:port) to watch from the start, comma-separated
    #[arg(long, env = "AUX_SERVERS", value_delimiter = ',')]
    pub aux_servers: Vec<String>,

    /// Copies of each key (capped at the number of live auxiliaries)
    #[arg(long, env = "REPLICAS", default_value_t = DEFAULT_REPLICAS)]
    pub replicas: usize,

    /// Acknowledge a write once `all` live replicas or `one` replica stored it
    #[arg(long, env = "WRITE_QUORUM", default_value = "all")]
    pub write_quorum: WriteQuorum,

    /// Ring points per auxiliary (alias REPLICATION_FACTOR) [default: 1200, for an even spread]
    #[arg(long, env = "VIRTUAL_NODES", alias = "replication-factor")]
    pub virtual_nodes: Option<u32>,

    /// Milliseconds a master serves data by its cluster map after it last reached enough of the other masters to know the map is current (more than half of them, with it, out of three or more masters); 0 = serve by the last map whatever
    #[arg(long, env = "MASTER_LEASE_MS", default_value_t = DEFAULT_MASTER_LEASE_MS)]
    pub master_lease_ms: u64,

    /// Seconds between health checks of each auxiliary (fractions allowed)
    #[arg(long, env = "HEALTH_CHECK_INTERVAL", default_value_t = DEFAULT_HEALTH_CHECK_INTERVAL_SECS)]
    pub health_check_interval: f64,

    /// Longest wait for one auxiliary, in milliseconds
    #[arg(long, env = "REQUEST_TIMEOUT_MS", default_value_t = DEFAULT_REQUEST_TIMEOUT_MS)]
    pub request_timeout_ms: u64,

    /// Largest value accepted, in bytes of JSON text
    #[arg(long, env = "MAX_VALUE_BYTES", default_value_t = DEFAULT_MAX_VALUE_BYTES)]
    pub max_value_bytes: usize,

    /// Largest request body accepted, in bytes
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,

    /// Most entries in one bulk request
    #[arg(long, env = "MAX_BATCH", default_value_t = DEFAULT_MAX_BATCH)]
    pub max_batch: usize,

    /// Seconds between cluster backups (0 = off)
    #[arg(long, env = "BACKUP_INTERVAL", default_value_t = 120)]
    pub backup_interval: u64,

    /// Items this master caches from recent reads (0 = no near cache)
    #[arg(long, env = "NEAR_CACHE_SIZE", default_value_t = DEFAULT_NEAR_CACHE_SIZE)]
    pub near_cache_size: usize,

    /// Seconds a near-cached entry is served: how long a write through
    /// another master may go unseen here (fractions allowed)
    #[arg(long, env = "NEAR_CACHE_TTL", default_value_t = DEFAULT_NEAR_CACHE_TTL_SECS)]
    pub near_cache_ttl: f64,

    /// For tests: milliseconds to add to this host's clock (negative = behind),
    /// to show that versions order operations across masters whatever
    /// their clocks say. Never set it in production
    #[arg(
        long,
        env = "CLOCK_OFFSET_MS",
        default_value_t = 0,
        allow_hyphen_values = true
    )]
    pub clock_offset_ms: i64,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub security: crate::security::MasterSecurity,
}

/// How many replicas must store a write before it is acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum WriteQuorum {
    /// Every live replica in the key's replica set.
    All,
    /// Any one replica; the others are written in the background.
    One,
}

/// A setting with a value that cannot work, named as operators set it.
#[derive(Debug, thiserror::Error)]
#[error("invalid setting {setting}: {reason}")]
pub struct ConfigError {
    /// The environment variable's name.
    pub setting: &'static str,
    /// What is wrong.
    pub reason: String,
}

fn invalid(setting: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        setting,
        reason: reason.into(),
    }
}

/// The host name of this machine, for default node ids.
pub fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

fn check_addr_list(setting: &'static str, list: &[String]) -> Result<(), ConfigError> {
    for addr in list {
        if !is_host_port(addr) {
            return Err(invalid(setting, format!("{addr:?} is not host:port")));
        }
    }
    Ok(())
}

/// Addresses of masters: `host:port`, or with `http://` or `https://`.
fn check_node_addr_list(setting: &'static str, list: &[String]) -> Result<(), ConfigError> {
    for addr in list {
        if !crate::security::is_node_address(addr) {
            return Err(invalid(
                setting,
                format!("{addr:?} is not host:port (optionally with http:// or https://)"),
            ));
        }
    }
    Ok(())
}

/// Where other nodes reach a node listening on `bind` and `port` when its
/// `ADVERTISE_ADDR` is not set: that address when `BIND_ADDR` is one address
/// (a loopback one included), else `node_id`'s host (a trailing `:port`
/// dropped) and `port`. Both roles derive their addresses with it.
pub fn default_advertise_addr(bind: IpAddr, port: u16, node_id: &str) -> String {
    if !bind.is_unspecified() {
        return SocketAddr::new(bind, port).to_string();
    }
    let host = match node_id.rsplit_once(':') {
        Some((host, p)) if p.parse::<u16>().is_ok() => host,
        _ => node_id,
    };
    format!("{host}:{port}")
}

/// True for `host:port` with a non-empty host (no `/` or white space, so
/// `ftp://host:port` is not one) and a numeric port.
pub fn is_host_port(addr: &str) -> bool {
    match addr.rsplit_once(':') {
        Some((host, port)) => {
            !host.is_empty()
                && !host.contains(|c: char| c == '/' || c.is_whitespace())
                && port.parse::<u16>().is_ok()
        }
        None => false,
    }
}

impl AuxConfig {
    /// Drops empty list entries and checks every setting.
    pub fn validate(mut self) -> Result<Self, ConfigError> {
        self.master_address.retain(|a| !a.trim().is_empty());
        if self.master_address.is_empty() {
            return Err(invalid("MASTER_ADDRESS", "at least one master is needed"));
        }
        check_node_addr_list("MASTER_ADDRESS", &self.master_address)?;
        self.security.validate()?;
        if self.cache_size == 0 {
            return Err(invalid("CACHE_SIZE", "must be at least 1"));
        }
        if self.cache_max_bytes == Some(0) {
            return Err(invalid(
                "CACHE_MAX_BYTES",
                "must be at least 1 (omit it for no limit)",
            ));
        }
        if self.cache_shards == 0 || self.cache_shards > 1024 {
            return Err(invalid("CACHE_SHARDS", "must be between 1 and 1024"));
        }
        if self.script_time_limit_ms == 0 || self.script_time_limit_ms > 60_000 {
            return Err(invalid(
                "SCRIPT_TIME_LIMIT_MS",
                "must be between 1 and 60000",
            ));
        }
        if self.data_port.is_none() && self.port != 0 && self.port > u16::MAX - DATA_PORT_OFFSET {
            return Err(invalid(
                "DATA_PORT",
                format!(
                    "PORT {} + {DATA_PORT_OFFSET} is past 65535; set DATA_PORT",
                    self.port
                ),
            ));
        }
        if let Some(addr) = &self.advertise_addr {
            if !is_host_port(addr) {
                return Err(invalid(
                    "ADVERTISE_ADDR",
                    format!("{addr:?} is not host:port"),
                ));
            }
        }
        if let Some(addr) = &self.advertise_data_addr {
            if !is_host_port(addr) {
                return Err(invalid(
                    "ADVERTISE_DATA_ADDR",
                    format!("{addr:?} is not host:port"),
                ));
            }
        }
        if let Some(id) = &self.common.node_id {
            if id.trim().is_empty() {
                return Err(invalid("NODE_ID", "must not be empty"));
            }
        }
        Ok(self)
    }

    /// The data port to bind: `DATA_PORT`, else `PORT + 10000` (0 stays 0).
    pub fn data_port(&self) -> u16 {
        match (self.data_port, self.port) {
            (Some(p), _) => p,
            (None, 0) => 0,
            (None, p) => p + DATA_PORT_OFFSET,
        }
    }
}

impl MasterConfig {
    /// How many threads serve RESP connections: `RESP_THREADS`, else
    /// [`default_resp_threads`] of this machine's cores.
    pub fn resp_threads(&self) -> usize {
        self.resp_threads.unwrap_or_else(|| {
            default_resp_threads(
                std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
            )
        })
    }

    /// Drops empty list entries, applies the `REPLICATION_FACTOR` alias, and
    /// checks every setting.
    pub fn validate(mut self) -> Result<Self, ConfigError> {
        self.master_peers.retain(|a| !a.trim().is_empty());
        self.aux_servers.retain(|a| !a.trim().is_empty());
        if let Some(addr) = &self.advertise_addr {
            if !crate::security::is_node_address(addr) {
                return Err(invalid(
                    "ADVERTISE_ADDR",
                    format!("{addr:?} is not host:port (optionally with http:// or https://)"),
                ));
            }
        }
        if let Some(id) = &self.common.node_id {
            if id.trim().is_empty() {
                return Err(invalid("NODE_ID", "must not be empty"));
            }
        }
        if self.resp_port != 0 && self.resp_port == self.port {
            return Err(invalid(
                "RESP_PORT",
                format!(
                    "{} is PORT too: the two listeners need their own ports",
                    self.port
                ),
            ));
        }
        if self.slowlog_max_len > MAX_SLOWLOG_MAX_LEN {
            return Err(invalid(
                "SLOWLOG_MAX_LEN",
                format!("must be at most {MAX_SLOWLOG_MAX_LEN}"),
            ));
        }
        if let Some(addr) = &self.resp_announce_addr {
            if announced_host_port(addr).is_none() {
                return Err(invalid(
                    "RESP_ANNOUNCE_ADDR",
                    format!("{addr:?} is not host:port (a port from 1 to 65535)"),
                ));
            }
        }
        if self.resp_pubsub_buffer_bytes < 1024 {
            return Err(invalid("RESP_PUBSUB_BUFFER_BYTES", "must be at least 1024"));
        }
        if self.resp_output_timeout_ms == 0 || self.resp_output_timeout_ms > 3_600_000 {
            return Err(invalid(
                "RESP_OUTPUT_TIMEOUT_MS",
                "must be between 1 and 3600000",
            ));
        }
        if self
            .resp_threads
            .is_some_and(|n| n == 0 || n > MAX_RESP_THREADS)
        {
            return Err(invalid(
                "RESP_THREADS",
                format!("must be between 1 and {MAX_RESP_THREADS}"),
            ));
        }
        check_node_addr_list("MASTER_PEERS", &self.master_peers)?;
        self.skip_own_address_in_peers()?;
        self.security.validate()?;
        check_addr_list("AUX_SERVERS", &self.aux_servers)?;
        if self.virtual_nodes.is_none() {
            if let Ok(alias) = std::env::var("REPLICATION_FACTOR") {
                let n = alias.trim().parse::<u32>().map_err(|_| {
                    invalid(
                        "REPLICATION_FACTOR",
                        format!("{alias:?} is not a whole number"),
                    )
                })?;
                self.virtual_nodes = Some(n);
            }
        }
        if let Some(v) = self.virtual_nodes {
            if v == 0 || v > 65_536 {
                return Err(invalid("VIRTUAL_NODES", "must be between 1 and 65536"));
            }
        }
        if self.replicas == 0 || self.replicas > distcache_core::MAX_REPLICAS {
            return Err(invalid(
                "REPLICAS",
                format!("must be between 1 and {}", distcache_core::MAX_REPLICAS),
            ));
        }
        if !(self.health_check_interval.is_finite()
            && self.health_check_interval >= 0.01
            && self.health_check_interval <= 86_400.0)
        {
            return Err(invalid(
                "HEALTH_CHECK_INTERVAL",
                "must be between 0.01 and 86400 seconds",
            ));
        }
        if self.request_timeout_ms == 0 || self.request_timeout_ms > 600_000 {
            return Err(invalid(
                "REQUEST_TIMEOUT_MS",
                "must be between 1 and 600000",
            ));
        }
        if self.master_lease_ms != 0 && !(100..=600_000).contains(&self.master_lease_ms) {
            return Err(invalid(
                "MASTER_LEASE_MS",
                "must be 0 (off) or between 100 and 600000",
            ));
        }
        if self.max_value_bytes == 0 {
            return Err(invalid("MAX_VALUE_BYTES", "must be at least 1"));
        }
        if self.max_body_bytes < 1024 {
            return Err(invalid("MAX_BODY_BYTES", "must be at least 1024"));
        }
        if self.max_batch == 0 {
            return Err(invalid("MAX_BATCH", "must be at least 1"));
        }
        if self.near_cache_size > 100_000_000 {
            return Err(invalid("NEAR_CACHE_SIZE", "must be at most 100000000"));
        }
        if !(self.near_cache_ttl.is_finite()
            && (self.near_cache_ttl == 0.0 || self.near_cache_ttl >= 0.001)
            && self.near_cache_ttl <= 86_400.0)
        {
            return Err(invalid(
                "NEAR_CACHE_TTL",
                "must be 0 or between 0.001 and 86400 seconds",
            ));
        }
        Ok(self)
    }

    /// Drops this master's own address from `MASTER_PEERS`, so that every
    /// master can be given the same list of all of them, and refuses an
    /// address listed twice. Addresses compare as the consensus derives
    /// node ids from them: `m1:8000` and `http://m1:8000/` are one master.
    /// With `PORT` 0 and no `ADVERTISE_ADDR` the own address is not known
    /// before binding, so nothing is dropped.
    fn skip_own_address_in_peers(&mut self) -> Result<(), ConfigError> {
        use crate::security::base_url;
        if self.advertise_addr.is_some() || self.port != 0 {
            let own = base_url(&self.advertise_addr(self.port));
            self.master_peers.retain(|peer| base_url(peer) != own);
        }
        let mut seen = std::collections::BTreeSet::new();
        for peer in &self.master_peers {
            if !seen.insert(base_url(peer)) {
                return Err(invalid(
                    "MASTER_PEERS",
                    format!("lists the master {peer:?} twice"),
                ));
            }
        }
        Ok(())
    }

    /// Where the other masters reach this one: its Raft address, which its
    /// node id is derived from. `ADVERTISE_ADDR` if set, else
    /// [`default_advertise_addr`] on `bound_port` (pass the listener's port:
    /// it differs from `PORT` when `PORT` is 0), with `https://` when this
    /// master serves TLS, as the other masters must then spell it.
    pub fn advertise_addr(&self, bound_port: u16) -> String {
        if let Some(addr) = &self.advertise_addr {
            return addr.clone();
        }
        let node_id = self.common.node_id.clone().unwrap_or_else(host_name);
        let addr = default_advertise_addr(self.common.bind_addr, bound_port, &node_id);
        if self.security.auth.tls_cert.is_some() {
            format!("https://{addr}")
        } else {
            addr
        }
    }

    /// The directory of this master's Raft log, vote and snapshot:
    /// `RAFT_DIR`, else `raft` inside `BACKUP_DIR`.
    pub fn raft_dir(&self) -> PathBuf {
        self.raft_dir
            .clone()
            .unwrap_or_else(|| self.common.backup_dir.join(DEFAULT_RAFT_SUBDIR))
    }

    /// The health-check period.
    pub fn health_check_interval(&self) -> Duration {
        Duration::from_secs_f64(self.health_check_interval)
    }

    /// How long a near-cached entry is served, in milliseconds.
    pub fn near_cache_ttl_ms(&self) -> u64 {
        (self.near_cache_ttl * 1000.0).round() as u64
    }

    /// The longest wait for one auxiliary.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// Ring points per auxiliary.
    pub fn virtual_nodes(&self) -> u32 {
        self.virtual_nodes
            .unwrap_or(distcache_core::DEFAULT_VIRTUAL_NODES)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        master: MasterConfig,
    }

    /// A master configured by `flags` alone (flags win over the
    /// environment, and every test passes the ones it reads).
    fn master(flags: &[&str]) -> Result<MasterConfig, ConfigError> {
        let args = std::iter::once("distcache").chain(flags.iter().copied());
        Cli::try_parse_from(args)
            .expect("flags parse")
            .master
            .validate()
    }

    fn refused(flags: &[&str]) -> ConfigError {
        master(flags).expect_err("refused")
    }

    #[test]
    fn master_peers_may_list_every_master_and_this_ones_own_address_is_skipped() {
        let all = "m1:8000,m2:8000,http://m3:8000/";
        for (own, others) in [
            ("m1:8000", vec!["m2:8000", "http://m3:8000/"]),
            ("http://m2:8000", vec!["m1:8000", "http://m3:8000/"]),
            ("m3:8000", vec!["m1:8000", "m2:8000"]),
        ] {
            let config = master(&["--advertise-addr", own, "--master-peers", all]).expect("valid");
            assert_eq!(config.master_peers, others, "as {own}");
            assert_eq!(config.advertise_addr(8000), own);
        }
        // Only the others, as before: unchanged.
        let config = master(&[
            "--advertise-addr",
            "m1:8000",
            "--master-peers",
            "m2:8000,m3:8000",
        ])
        .expect("valid");
        assert_eq!(config.master_peers, ["m2:8000", "m3:8000"]);
    }

    #[test]
    fn the_default_advertise_addr_is_skipped_from_master_peers_too() {
        let config = master(&[
            "--bind-addr",
            "127.0.0.1",
            "--port",
            "8081",
            "--master-peers",
            "127.0.0.1:8081,127.0.0.1:8082",
        ])
        .expect("valid");
        assert_eq!(config.advertise_addr(8081), "127.0.0.1:8081");
        assert_eq!(config.master_peers, ["127.0.0.1:8082"]);
    }

    #[test]
    fn a_resp_port_equal_to_port_is_refused_naming_resp_port() {
        let e = refused(&["--port", "7000", "--resp-port", "7000"]);
        assert_eq!(e.setting, "RESP_PORT");
        assert!(master(&["--port", "0", "--resp-port", "0"]).is_ok());
        assert_eq!(master(&[]).expect("defaults").resp_port, DEFAULT_RESP_PORT);
    }

    #[test]
    fn resp_announce_addr_must_be_host_and_port() {
        for bad in [
            "nginx",
            "nginx:0",
            "nginx:65536",
            ":6379",
            "a:b:c:6379",
            "nginx:+80",
            "a b:6379",
            "nginx:x",
        ] {
            assert_eq!(
                refused(&["--resp-announce-addr", bad]).setting,
                "RESP_ANNOUNCE_ADDR",
                "{bad}"
            );
        }
        let config = master(&["--resp-announce-addr", "cache.example.com:6379"]).expect("valid");
        assert_eq!(
            config.resp_announce_addr.as_deref(),
            Some("cache.example.com:6379")
        );
        assert_eq!(
            announced_host_port("[::1]:7000"),
            Some(("::1".to_owned(), 7000))
        );
        assert_eq!(
            announced_host_port("10.0.0.5:6379"),
            Some(("10.0.0.5".to_owned(), 6379))
        );
    }

    #[test]
    fn resp_threads_out_of_range_are_refused_naming_resp_threads() {
        for bad in ["0", "257"] {
            assert_eq!(refused(&["--resp-threads", bad]).setting, "RESP_THREADS");
        }
        let config = master(&["--resp-threads", "3"]).expect("valid");
        assert_eq!(config.resp_threads(), 3);
    }

    #[test]
    fn resp_threads_default_to_one_below_four_cores_then_three_quarters() {
        let defaults: Vec<usize> = [1, 2, 3, 4, 8, 16, 64]
            .into_iter()
            .map(default_resp_threads)
            .collect();
        assert_eq!(defaults, [1, 1, 1, 3, 6, 12, 48]);
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        assert_eq!(
            master(&[]).expect("defaults").resp_threads(),
            default_resp_threads(cores)
        );
    }

    #[test]
    fn a_master_listed_twice_is_refused_naming_master_peers() {
        for peers in [
            "m2:8000,m2:8000",
            "m2:8000,http://m2:8000/",
            "m1:8000,m2:8000,m3:8000,m3:8000",
        ] {
            let e = refused(&["--advertise-addr", "m1:8000", "--master-peers", peers]);
            assert_eq!(e.setting, "MASTER_PEERS", "{peers}");
            assert!(e.reason.contains("twice"), "{peers}: {e}");
        }
    }

    #[test]
    fn a_bad_advertise_addr_is_refused_naming_it() {
        for addr in ["m1", "m1:", ":8000", "m1:port", "m1:70000", "ftp://m1:8000"] {
            let e = refused(&["--advertise-addr", addr]);
            assert_eq!(e.setting, "ADVERTISE_ADDR", "{addr}: {e}");
        }
        for addr in ["m1:8000", "https://m1:8000", "[::1]:8000", "10.0.0.7:8000"] {
            master(&["--advertise-addr", addr]).expect(addr);
        }
    }

    #[test]
    fn the_default_advertise_addr_follows_bind_addr_else_the_node_id_host() {
        let config = master(&["--bind-addr", "127.0.0.1", "--port", "8000"]).expect("valid");
        assert_eq!(config.advertise_addr(8000), "127.0.0.1:8000");
        // PORT 0: the caller passes the port it bound.
        assert_eq!(config.advertise_addr(41234), "127.0.0.1:41234");
        let config = master(&["--bind-addr", "::1", "--port", "8000"]).expect("valid");
        assert_eq!(config.advertise_addr(8000), "[::1]:8000");
        let config = master(&["--bind-addr", "0.0.0.0", "--node-id", "master-2"]).expect("valid");
        assert_eq!(config.advertise_addr(8000), "master-2:8000");
        let config =
            master(&["--bind-addr", "0.0.0.0", "--node-id", "master-2:9999"]).expect("valid");
        assert_eq!(config.advertise_addr(8000), "master-2:8000");
        let config = master(&["--bind-addr", "0.0.0.0"]).expect("valid");
        assert_eq!(config.advertise_addr(8000), format!("{}:8000", host_name()));
    }

    #[test]
    fn raft_dir_defaults_to_raft_inside_backup_dir() {
        let config = master(&["--backup-dir", "/data/m1"]).expect("valid");
        assert_eq!(config.raft_dir(), PathBuf::from("/data/m1/raft"));
        let config =
            master(&["--backup-dir", "/data/m1", "--raft-dir", "/fast/raft"]).expect("valid");
        assert_eq!(config.raft_dir(), PathBuf::from("/fast/raft"));
        // clap itself refuses an empty path, as a flag or as RAFT_DIR=.
        assert!(Cli::try_parse_from(["distcache", "--raft-dir", ""]).is_err());
    }

    #[test]
    fn both_roles_derive_a_default_address_the_same_way() {
        let any = IpAddr::from([0, 0, 0, 0]);
        assert_eq!(default_advertise_addr(any, 3001, "aux-1"), "aux-1:3001");
        assert_eq!(
            default_advertise_addr(any, 3001, "aux-1:3005"),
            "aux-1:3001"
        );
        assert_eq!(
            default_advertise_addr(IpAddr::from([10, 0, 0, 5]), 3001, "aux-1"),
            "10.0.0.5:3001"
        );
    }
}
