//! Configuration of each role: one struct per role, read from environment
//! variables and command-line flags (flags win), with named defaults and
//! validation at start. The variable names are a contract with operators
//! (DESIGN: configuration); `--help` lists each with its default.

use std::net::IpAddr;
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
/// Default seconds a delete's tombstone is kept.
pub const DEFAULT_TOMBSTONE_GRACE_SECS: u64 = 300;

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

    /// Seconds a delete's tombstone is kept so a late older write cannot revive the key
    #[arg(long, env = "TOMBSTONE_GRACE", default_value_t = DEFAULT_TOMBSTONE_GRACE_SECS)]
    pub tombstone_grace: u64,

    /// Seconds between snapshots (0 = off)
    #[arg(long, env = "BACKUP_INTERVAL", default_value_t = 60)]
    pub backup_interval: u64,

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

    /// The other masters (host:port), comma-separated
    #[arg(long, env = "MASTER_PEERS", value_delimiter = ',')]
    pub master_peers: Vec<String>,

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

/// True for `host:port` with a non-empty host and a numeric port.
pub fn is_host_port(addr: &str) -> bool {
    match addr.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok(),
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
    /// Drops empty list entries, applies the `REPLICATION_FACTOR` alias, and
    /// checks every setting.
    pub fn validate(mut self) -> Result<Self, ConfigError> {
        self.master_peers.retain(|a| !a.trim().is_empty());
        self.aux_servers.retain(|a| !a.trim().is_empty());
        check_node_addr_list("MASTER_PEERS", &self.master_peers)?;
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
        if let Some(id) = &self.common.node_id {
            if id.trim().is_empty() {
                return Err(invalid("NODE_ID", "must not be empty"));
            }
        }
        Ok(self)
    }

    /// The health-check period.
    pub fn health_check_interval(&self) -> Duration {
        Duration::from_secs_f64(self.health_check_interval)
    }

    /// Where the other masters reach this one (its Raft address): the
    /// loopback address when bound to loopback, else the host name, with
    /// this master's port.
    pub fn raft_address(&self, port: u16) -> String {
        let ip = self.common.bind_addr;
        if ip.is_loopback()
            || ip.is_unspecified() && self.master_peers.iter().all(|p| p.starts_with("127."))
        {
            format!("127.0.0.1:{port}")
        } else {
            format!("{}:{port}", host_name())
        }
    }

    /// This master's Raft directory: beside its cluster backups.
    pub fn raft_dir(&self) -> std::path::PathBuf {
        self.common.backup_dir.join("raft")
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
