//! `distcache local`: a whole cluster in one process on loopback, the
//! zero-setup way to try distcache. Three masters by default (a majority of
//! three agrees on the cluster map while any one is down) listen on
//! consecutive ports from `--port` (8081 by default, where the seed README's
//! load balancer was); auxiliaries take free ports and register with every
//! master. Nothing outlives the run: the auxiliaries keep their items in
//! memory only, so each master's Raft directory is emptied at start rather
//! than bring back a map of auxiliaries that are gone.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use distcache_core::clock::system_clock;
use distcache_server::auxiliary::{self, AuxListeners};
use distcache_server::config::{AuxConfig, CommonConfig, MasterConfig, WriteQuorum};
use distcache_server::master;
use distcache_server::security::{AuxSecurity, ClusterConfig, MasterSecurity, PublicAuthConfig};
use distcache_server::shutdown::Shutdown;
use tokio::task::JoinSet;

/// Masters `distcache local` starts unless told otherwise: the smallest
/// number whose majority survives the loss of one.
pub const DEFAULT_LOCAL_MASTERS: u16 = 3;

/// Options of `distcache local`.
#[derive(Args, Debug, Clone)]
pub struct LocalArgs {
    /// Number of masters (3 survive the loss of any one; 2 stop changing the cluster map while either is down)
    #[arg(long, default_value_t = DEFAULT_LOCAL_MASTERS, value_parser = clap::value_parser!(u16).range(1..=16))]
    pub masters: u16,
    /// Number of auxiliaries
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub auxiliaries: u16,
    /// Port of the first master; the others take the next ports
    #[arg(long, default_value_t = 8081)]
    pub port: u16,
    /// Port of the first master's Redis-protocol (RESP) listener; the others take the next ports [default: no RESP listener, so that `local` starts beside a Redis on 6379]
    #[arg(long)]
    pub resp_port: Option<u16>,
    /// Items per auxiliary
    #[arg(long, default_value_t = distcache_server::config::DEFAULT_CACHE_SIZE)]
    pub cache_size: usize,
    /// Copies of each key
    #[arg(long, default_value_t = distcache_server::config::DEFAULT_REPLICAS)]
    pub replicas: usize,
    /// Seconds between health checks
    #[arg(long, default_value_t = 1.0)]
    pub health_check_interval: f64,
    /// Where each master keeps its Raft log for the run (`master-N/raft-PORT`, emptied at start) and each auxiliary its snapshot and mutation log (`aux-N/`): the snapshot is written when `local` stops (Ctrl-C), every write and delete goes to the log before it is answered, and both are read back when `local` starts again, so keys survive a restart, a crash included; no periodic snapshots
    #[arg(long, default_value = "./backup/local")]
    pub backup_dir: PathBuf,
    /// Bearer tokens the masters accept, `token:role,...` (role: read, write or admin), as AUTH_TOKENS [default: none: the API is open]
    #[arg(long, env = "AUTH_TOKENS", hide_env_values = true)]
    pub auth_tokens: Option<String>,
    /// File of bearer tokens, one `token:role` a line, as AUTH_TOKENS_FILE
    #[arg(long, env = "AUTH_TOKENS_FILE")]
    pub auth_tokens_file: Option<PathBuf>,
    /// The cluster secret of every node, as CLUSTER_SECRET (an auxiliary started beside the cluster needs the same) [default: none, or a random one for this run when tokens are given]
    #[arg(long, env = "CLUSTER_SECRET", hide_env_values = true)]
    pub cluster_secret: Option<String>,
}

impl LocalArgs {
    /// The nodes' cluster settings: the secret given, or, when tokens are
    /// given without one, a random secret for this run (nodes refuse tokens
    /// without a secret, and within one process nobody else needs it).
    fn cluster(&self) -> ClusterConfig {
        let cluster_secret = self.cluster_secret.clone().or_else(|| {
            self.has_tokens().then(|| {
                let bytes: [u8; 32] = rand::random();
                bytes.iter().map(|b| format!("{b:02x}")).collect()
            })
        });
        ClusterConfig {
            cluster_secret,
            ..ClusterConfig::default()
        }
    }

    fn has_tokens(&self) -> bool {
        self.auth_tokens.is_some() || self.auth_tokens_file.is_some()
    }
}

/// What to do when a master's port is taken: the masters hold `--port` and
/// the ports after it, so the way out is another first port.
fn busy_port_hint(port: u16, masters: u16) -> String {
    let range = match masters {
        1 => format!("local's master takes --port ({port})"),
        n => format!(
            "local's {n} masters take --port and the next {} ports ({port} to {})",
            n - 1,
            u32::from(port) + u32::from(n) - 1
        ),
    };
    format!("{range}: choose free ports with --port")
}

/// What to do when a master's RESP port is taken.
fn busy_resp_port_hint(port: u16, masters: u16) -> String {
    let range = match masters {
        1 => format!("local's master takes --resp-port ({port})"),
        n => format!(
            "local's {n} masters take --resp-port and the next {} ports ({port} to {})",
            n - 1,
            u32::from(port) + u32::from(n) - 1
        ),
    };
    format!("{range}: choose free ports with --resp-port")
}

fn common(node_id: String, backup_dir: PathBuf) -> CommonConfig {
    CommonConfig {
        node_id: Some(node_id),
        bind_addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
        backup_dir,
    }
}

/// Starts the cluster and runs it until `shutdown` triggers.
pub async fn run(args: LocalArgs, shutdown: Shutdown) -> anyhow::Result<()> {
    let master_ports: Vec<u16> = (0..args.masters)
        .map(|i| {
            args.port
                .checked_add(i)
                .context("--port plus --masters is past 65535")
        })
        .collect::<anyhow::Result<_>>()?;
    let resp_ports: Option<Vec<u16>> = match args.resp_port {
        None | Some(0) => None,
        Some(first) => Some(
            (0..args.masters)
                .map(|i| {
                    first
                        .checked_add(i)
                        .context("--resp-port plus --masters is past 65535")
                })
                .collect::<anyhow::Result<_>>()?,
        ),
    };
    let master_addrs: Vec<String> = master_ports
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect();
    let cluster = args.cluster();
    let mut nodes = JoinSet::new();

    // Every master's port is bound before any master starts, so that a
    // busy port stops `local` with one line and no half-started cluster.
    let mut masters = Vec::new();
    for (i, (&port, own_addr)) in master_ports.iter().zip(&master_addrs).enumerate() {
        let master_dir = args.backup_dir.join(format!("master-{}", i + 1));
        // Keyed by port: two `local` runs cannot hold the same port, so they
        // never share a Raft directory, even with the same --backup-dir.
        let raft_dir = master_dir.join(format!("raft-{port}"));
        let config = MasterConfig {
            common: common(format!("master-{}", i + 1), master_dir),
            port,
            master_peers: master_addrs
                .iter()
                .filter(|a| *a != own_addr)
                .cloned()
                .collect(),
            advertise_addr: Some(own_addr.clone()),
            raft_dir: Some(raft_dir.clone()),
            aux_servers: Vec::new(),
            replicas: args.replicas,
            write_quorum: WriteQuorum::All,
            virtual_nodes: None,
            health_check_interval: args.health_check_interval,
            request_timeout_ms: distcache_server::config::DEFAULT_REQUEST_TIMEOUT_MS,
            master_lease_ms: distcache_server::config::DEFAULT_MASTER_LEASE_MS,
            max_value_bytes: distcache_server::config::DEFAULT_MAX_VALUE_BYTES,
            max_body_bytes: distcache_server::config::DEFAULT_MAX_BODY_BYTES,
            max_batch: distcache_server::config::DEFAULT_MAX_BATCH,
            backup_interval: 0,
            near_cache_size: distcache_server::config::DEFAULT_NEAR_CACHE_SIZE,
            near_cache_ttl: distcache_server::config::DEFAULT_NEAR_CACHE_TTL_SECS,
            clock_offset_ms: 0,
            resp_port: resp_ports.as_ref().map_or(0, |ports| ports[i]),
            resp_output_timeout_ms: distcache_server::config::DEFAULT_RESP_OUTPUT_TIMEOUT_MS,
            resp_pubsub_buffer_bytes: distcache_server::config::DEFAULT_RESP_PUBSUB_BUFFER_BYTES,
            resp_threads: None,
            resp_announce_addr: None,
            slowlog_slower_than_us: distcache_server::config::DEFAULT_SLOWLOG_SLOWER_THAN_US,
            slowlog_max_len: distcache_server::config::DEFAULT_SLOWLOG_MAX_LEN,
            security: MasterSecurity {
                auth: PublicAuthConfig {
                    auth_tokens: args.auth_tokens.clone(),
                    auth_tokens_file: args.auth_tokens_file.clone(),
                    ..PublicAuthConfig::default()
                },
                cluster: cluster.clone(),
                ..MasterSecurity::default()
            },
        }
        .validate()?;
        let listeners =
            master::MasterListeners::bind(&config)
                .await
                .map_err(|e| match &resp_ports {
                    Some(ports) if e.bind_setting() == Some("RESP_PORT") => e
                        .naming_setting(|_| "--resp-port".to_owned())
                        .with_bind_hint(busy_resp_port_hint(ports[0], args.masters)),
                    _ => e
                        .naming_setting(|_| "--port".to_owned())
                        .with_bind_hint(busy_port_hint(args.port, args.masters)),
                })?;
        // Only after the bind: holding the port proves no other run uses
        // this directory.
        match std::fs::remove_dir_all(&raft_dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e).with_context(|| format!("emptying {}", raft_dir.display()));
            }
        }
        masters.push((config, listeners));
    }
    for (config, listeners) in masters {
        let node = Shutdown::child_of(&shutdown);
        nodes.spawn(master::run(config, listeners, system_clock(), node));
    }

    let mut aux_addrs = Vec::new();
    for i in 0..args.auxiliaries {
        let config = AuxConfig {
            common: common(
                format!("aux-{}", i + 1),
                args.backup_dir.join(format!("aux-{}", i + 1)),
            ),
            port: 0,
            data_port: Some(0),
            advertise_addr: None,
            advertise_data_addr: None,
            master_address: master_addrs.clone(),
            cache_size: args.cache_size,
            cache_max_bytes: None,
            cache_shards: distcache_core::store::DEFAULT_SHARDS,
            script_time_limit_ms: distcache_server::config::DEFAULT_SCRIPT_TIME_LIMIT_MS,
            tombstone_grace: distcache_server::config::DEFAULT_TOMBSTONE_GRACE_SECS,
            backup_interval: 0,
            // What Ctrl-C or a crash would lose since the last snapshot is
            // in the log, as on any auxiliary.
            log_fsync: distcache_server::config::LogFsync::Everysec,
            log_max_bytes: distcache_server::config::DEFAULT_LOG_MAX_BYTES,
            // The whole cluster stops together: nobody to hand keys to.
            leave_on_shutdown: false,
            security: AuxSecurity {
                cluster: cluster.clone(),
                ..AuxSecurity::default()
            },
        }
        .validate()?;
        let listeners = AuxListeners::bind(&config).await?;
        aux_addrs.push(listeners.http.local_addr()?);
        let node = Shutdown::child_of(&shutdown);
        nodes.spawn(auxiliary::run(config, listeners, system_clock(), node));
    }

    println!("distcache local cluster is up:");
    for (i, addr) in master_addrs.iter().enumerate() {
        println!("  master     http://{addr}   (REST API, /health, /metrics)");
        if let Some(ports) = &resp_ports {
            println!(
                "  master     redis://127.0.0.1:{}   (RESP: redis-cli, Redis clients)",
                ports[i]
            );
        }
    }
    for (i, addr) in aux_addrs.iter().enumerate() {
        println!(
            "  auxiliary  http://{addr}   aux-{} (/health, /metrics)",
            i + 1
        );
    }
    // With tokens, the hints carry a placeholder for one.
    let auth = if args.has_tokens() {
        " -H 'Authorization: Bearer <token>'"
    } else {
        ""
    };
    println!(
        "Try:  curl{auth} -X POST http://{}/data -d '{{\"key\":\"user1\",\"value\":\"John Doe\",\"ttl\":3600}}'",
        master_addrs[0]
    );
    println!("      curl{auth} http://{}/data/user1", master_addrs[0]);
    match &resp_ports {
        Some(ports) => {
            let auth = if args.has_tokens() {
                " --pass <token>"
            } else {
                ""
            };
            println!("      redis-cli -p {}{auth} SET user1 'John Doe'", ports[0]);
        }
        None => println!(
            "      (--resp-port 6380 adds a Redis-protocol listener to each master, for redis-cli)"
        ),
    }
    if !args.has_tokens() {
        println!(
            "The API is open to anyone who can reach these ports (--auth-tokens to close it)."
        );
    }
    println!("Press Ctrl-C to stop.");

    // If any node stops on its own, stop them all.
    let mut first_error = None;
    while let Some(result) = nodes.join_next().await {
        shutdown.trigger();
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                first_error.get_or_insert(anyhow::Error::from(e));
            }
            Err(e) => {
                first_error.get_or_insert(anyhow::anyhow!("a node task failed: {e}"));
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
