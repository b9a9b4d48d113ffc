//! An in-process cluster: masters and auxiliaries started inside the test
//! process by their `run` functions, on listeners bound to `127.0.0.1:0`,
//! as `distcache local` starts them, each with its own [`Shutdown`]. The
//! nodes talk over real loopback sockets (HTTP, the internal protocol, Raft
//! RPCs), so what is tested is the real code path, minus process start-up:
//! a cluster is up in well under a second.
//!
//! Time: every test runs under `tokio::time::pause` (`start_paused`), and
//! the nodes' clock ([`tokio_clock`], which versions and expiry times are
//! read from) follows tokio's time. So a health interval, a request
//! timeout, a Raft election or a TTL takes no real time: when every task
//! waits, tokio jumps to the next timer. That is safe with real sockets
//! here because everything is on loopback in one process: an answer is
//! ready to read as soon as its write returns, so tokio sees it before it
//! would move time on, and tokio does not move time while a blocking task
//! (a Raft log write) runs. Paused time needs the current-thread runtime:
//! a whole cluster runs on the test's one thread. A timeout can thus fire
//! only because virtual time passed, never because the machine was slow.

#![allow(dead_code)]

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use distcache_core::clock::{Clock, unix_ms};
use distcache_server::auxiliary::{self, AuxListeners};
use distcache_server::config::{AuxConfig, CommonConfig, MasterConfig, WriteQuorum};
use distcache_server::error::StartError;
use distcache_server::master;
use distcache_server::security::{AuxSecurity, MasterSecurity};
use distcache_server::shutdown::Shutdown;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Seconds between the masters' health checks. Time is paused, so this
/// costs nothing; the value is the one `distcache local` uses.
pub const HEALTH_CHECK_INTERVAL_S: f64 = 1.0;

/// Longest wait for one auxiliary: the default.
pub const REQUEST_TIMEOUT_MS: u64 = distcache_server::config::DEFAULT_REQUEST_TIMEOUT_MS;

/// The nodes' clock: Unix milliseconds that follow tokio's time, so that
/// under `tokio::time::pause` a sleep of the test moves every node's clock,
/// expiry included.
pub fn tokio_clock() -> Clock {
    let base = unix_ms();
    let start = tokio::time::Instant::now();
    Arc::new(move || base + start.elapsed().as_millis() as u64)
}

/// A node running in this process.
pub struct Node {
    pub id: String,
    /// Its HTTP address.
    pub addr: SocketAddr,
    /// Its data port (auxiliaries only).
    pub data_addr: Option<SocketAddr>,
    stop: Shutdown,
    task: JoinHandle<Result<(), StartError>>,
}

impl Node {
    /// Stops the node as Ctrl-C would (an auxiliary does not hand its keys
    /// over: `LEAVE_ON_SHUTDOWN` is off here) and waits until it has.
    pub async fn stop(self) {
        self.stop.trigger();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .unwrap_or_else(|_| panic!("{} did not stop within 30 s", self.id))
            .expect("the node's task")
            .unwrap_or_else(|e| panic!("{} failed: {e}", self.id));
    }
}

/// A cluster of masters and auxiliaries in this process.
pub struct Cluster {
    pub masters: Vec<Node>,
    pub auxes: Vec<Node>,
    pub http: reqwest::Client,
    clock: Clock,
    dir: PathBuf,
    replicas: usize,
}

/// A directory of its own under the system's temporary directory.
fn temp_dir() -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "distcache-inproc-{}-{}-{}",
        std::process::id(),
        unix_ms(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    dir
}

fn common(node_id: &str, backup_dir: PathBuf) -> CommonConfig {
    CommonConfig {
        node_id: Some(node_id.to_owned()),
        bind_addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
        backup_dir,
    }
}

impl Cluster {
    /// Starts `masters` masters and `auxiliaries` auxiliaries (`aux-1`...)
    /// on [`tokio_clock`], and waits until every master sees them all up.
    pub async fn start(masters: usize, auxiliaries: usize) -> Cluster {
        Cluster::start_with_replicas(
            masters,
            auxiliaries,
            distcache_server::config::DEFAULT_REPLICAS,
        )
        .await
    }

    /// As [`Cluster::start`], keeping `replicas` copies of each key.
    pub async fn start_with_replicas(
        masters: usize,
        auxiliaries: usize,
        replicas: usize,
    ) -> Cluster {
        let clock = tokio_clock();
        distcache_server::security::tls::install_crypto_provider();
        let dir = temp_dir();
        // Every master's port first: each must know the others' addresses.
        let mut listeners = Vec::new();
        for _ in 0..masters {
            listeners.push(TcpListener::bind("127.0.0.1:0").await.expect("bind"));
        }
        let addrs: Vec<String> = listeners
            .iter()
            .map(|l| l.local_addr().expect("address").to_string())
            .collect();
        let mut nodes = Vec::new();
        for (i, listener) in listeners.into_iter().enumerate() {
            let id = format!("master-{}", i + 1);
            let own = addrs[i].clone();
            let master_dir = dir.join(&id);
            let config = MasterConfig {
                common: common(&id, master_dir.clone()),
                port: listener.local_addr().expect("address").port(),
                master_peers: addrs.iter().filter(|a| **a != own).cloned().collect(),
                advertise_addr: Some(own),
                raft_dir: Some(master_dir.join("raft")),
                aux_servers: Vec::new(),
                replicas,
                write_quorum: WriteQuorum::All,
                virtual_nodes: None,
                health_check_interval: HEALTH_CHECK_INTERVAL_S,
                request_timeout_ms: REQUEST_TIMEOUT_MS,
                master_lease_ms: distcache_server::config::DEFAULT_MASTER_LEASE_MS,
                max_value_bytes: distcache_server::config::DEFAULT_MAX_VALUE_BYTES,
                max_body_bytes: distcache_server::config::DEFAULT_MAX_BODY_BYTES,
                max_batch: distcache_server::config::DEFAULT_MAX_BATCH,
                backup_interval: 0,
                near_cache_size: 0,
                near_cache_ttl: distcache_server::config::DEFAULT_NEAR_CACHE_TTL_SECS,
                clock_offset_ms: 0,
                resp_port: 0,
                resp_output_timeout_ms: distcache_server::config::DEFAULT_RESP_OUTPUT_TIMEOUT_MS,
                resp_pubsub_buffer_bytes:
                    distcache_server::config::DEFAULT_RESP_PUBSUB_BUFFER_BYTES,
                resp_threads: None,
                resp_announce_addr: None,
                slowlog_slower_than_us: distcache_server::config::DEFAULT_SLOWLOG_SLOWER_THAN_US,
                slowlog_max_len: distcache_server::config::DEFAULT_SLOWLOG_MAX_LEN,
                security: MasterSecurity::default(),
            }
            .validate()
            .expect("a valid master config");
            let addr = listener.local_addr().expect("address");
            let stop = Shutdown::new();
            let task = tokio::spawn(master::run(
                config,
                master::MasterListeners {
                    http: listener,
                    resp: None,
                },
                clock.clone(),
                stop.clone(),
            ));
            nodes.push(Node {
                id,
                addr,
                data_addr: None,
                stop,
                task,
            });
        }
        let mut cluster = Cluster {
            masters: nodes,
            auxes: Vec::new(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("an HTTP client"),
            clock,
            dir,
            replicas,
        };
        for i in 0..auxiliaries {
            cluster.add_aux(&format!("aux-{}", i + 1)).await;
        }
        cluster.wait_for_up(auxiliaries).await;
        cluster
    }

    /// Every master's address, as auxiliaries are told.
    pub fn master_addrs(&self) -> Vec<String> {
        self.masters.iter().map(|m| m.addr.to_string()).collect()
    }

    /// Starts auxiliary `id`, registering with every master.
    pub async fn add_aux(&mut self, id: &str) {
        let masters = self.master_addrs();
        self.add_aux_registering_with(id, masters).await;
    }

    /// Starts auxiliary `id`, registering with the masters `masters` only.
    pub async fn add_aux_registering_with(&mut self, id: &str, masters: Vec<String>) {
        self.add_aux_with(id, masters, Advertise::default()).await;
    }

    async fn add_aux_with(&mut self, id: &str, masters: Vec<String>, advertise: Advertise) {
        let config = AuxConfig {
            common: common(id, self.dir.join(id)),
            port: 0,
            data_port: Some(0),
            advertise_addr: advertise.http,
            advertise_data_addr: advertise.data,
            master_address: masters,
            cache_size: 10_000,
            cache_max_bytes: None,
            cache_shards: distcache_core::store::DEFAULT_SHARDS,
            script_time_limit_ms: distcache_server::config::DEFAULT_SCRIPT_TIME_LIMIT_MS,
            tombstone_grace: distcache_server::config::DEFAULT_TOMBSTONE_GRACE_SECS,
            backup_interval: 0,
            // No disk I/O on blocking threads under paused time: tokio
            // could advance the clock while one runs. Durability is tested
            // with real processes (proc_durability, proc_crash).
            log_fsync: distcache_server::config::LogFsync::Off,
            log_max_bytes: distcache_server::config::DEFAULT_LOG_MAX_BYTES,
            leave_on_shutdown: false,
            security: AuxSecurity::default(),
        }
        .validate()
        .expect("a valid auxiliary config");
        let listeners = AuxListeners::bind(&config).await.expect("bind");
        let addr = listeners.http.local_addr().expect("address");
        let data_addr = listeners.data.local_addr().expect("address");
        let stop = Shutdown::new();
        let task = tokio::spawn(auxiliary::run(
            config,
            listeners,
            self.clock.clone(),
            stop.clone(),
        ));
        self.auxes.push(Node {
            id: id.to_owned(),
            addr,
            data_addr: Some(data_addr),
            stop,
            task,
        });
    }

    /// Starts auxiliary `id` with its HTTP port behind a [`Freezer`]: the
    /// masters' health checks reach it through the freezer, so freezing it
    /// makes the node hang for them as a stopped (`SIGSTOP`) process would.
    pub async fn add_aux_behind_freezer(&mut self, id: &str) -> Freezer {
        let freezer = Freezer::bind().await;
        let advertise = Advertise {
            http: Some(freezer.addr.to_string()),
            data: None,
        };
        self.add_aux_with(id, self.master_addrs(), advertise).await;
        let target = self.auxes.last().expect("the new auxiliary").addr;
        freezer.forward_to(target);
        freezer
    }

    /// Starts auxiliary `id` with both its ports behind a [`Freezer`]
    /// each: every node reaches it through them. Answers (HTTP, data).
    pub async fn add_aux_behind_freezers(&mut self, id: &str) -> (Freezer, Freezer) {
        let (http, data) = (Freezer::bind().await, Freezer::bind().await);
        let advertise = Advertise {
            http: Some(http.addr.to_string()),
            data: Some(data.addr.to_string()),
        };
        self.add_aux_with(id, self.master_addrs(), advertise).await;
        let aux = self.auxes.last().expect("the new auxiliary");
        http.forward_to(aux.addr);
        data.forward_to(aux.data_addr.expect("a data port"));
        (http, data)
    }

    /// Stops auxiliary `id` (no hand-over) and forgets it.
    pub async fn stop_aux(&mut self, id: &str) {
        let i = self
            .auxes
            .iter()
            .position(|a| a.id == id)
            .unwrap_or_else(|| panic!("no auxiliary {id}"));
        self.auxes.remove(i).stop().await;
    }

    /// Copies of each key the masters keep.
    pub fn replicas(&self) -> usize {
        self.replicas
    }

    pub fn url(&self, master: usize, path: &str) -> String {
        format!("http://{}{path}", self.masters[master].addr)
    }

    /// `GET` of `path` on master `m`, as JSON (`Null` if it did not answer).
    pub async fn get_json(&self, m: usize, path: &str) -> Value {
        match self.http.get(self.url(m, path)).send().await {
            Ok(resp) => resp.json().await.unwrap_or(Value::Null),
            Err(_) => Value::Null,
        }
    }

    /// `POST /data` through master `m`.
    pub async fn set(&self, m: usize, key: &str, value: Value) -> StatusCode {
        self.http
            .post(self.url(m, "/data"))
            .json(&json!({"key": key, "value": value}))
            .send()
            .await
            .expect("POST /data")
            .status()
    }

    /// `POST /data` with a TTL through master `m`.
    pub async fn set_ttl(&self, m: usize, key: &str, value: Value, ttl: u64) -> StatusCode {
        self.http
            .post(self.url(m, "/data"))
            .json(&json!({"key": key, "value": value, "ttl": ttl}))
            .send()
            .await
            .expect("POST /data")
            .status()
    }

    /// The value of `key` through master `m`, `None` on a 404.
    pub async fn value(&self, m: usize, key: &str) -> Option<Value> {
        let resp = self
            .http
            .get(self.url(m, &format!("/data/{}", encode(key))))
            .send()
            .await
            .expect("GET /data");
        match resp.status() {
            StatusCode::NOT_FOUND => None,
            StatusCode::OK => {
                let body: Value = resp.json().await.expect("JSON");
                Some(body["value"].clone())
            }
            other => panic!("GET {key:?} through master {m}: {other}"),
        }
    }

    /// `DELETE /data/{key}` through master `m`.
    pub async fn delete(&self, m: usize, key: &str) -> StatusCode {
        self.http
            .delete(self.url(m, &format!("/data/{}", encode(key))))
            .send()
            .await
            .expect("DELETE /data")
            .status()
    }

    /// Master `m`'s view of auxiliary `id` in `GET /nodes`.
    pub async fn node_state(&self, m: usize, id: &str) -> Option<String> {
        let nodes = self.get_json(m, "/nodes").await;
        nodes["nodes"]
            .as_array()?
            .iter()
            .find(|n| n["id"] == json!(id))
            .and_then(|n| n["state"].as_str().map(str::to_owned))
    }

    /// Waits until every master has `n` auxiliaries up and is done moving
    /// keys.
    pub async fn wait_for_up(&self, n: usize) {
        for m in 0..self.masters.len() {
            wait_until(
                Duration::from_secs(30),
                "every auxiliary up",
                || async move {
                    let health = self.get_json(m, "/health").await;
                    let ring = self.get_json(m, "/ring").await;
                    health["auxiliaries_up"] == json!(n) && ring["rebalancing"] == json!(false)
                },
            )
            .await;
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in self.masters.iter().chain(&self.auxes) {
            node.stop.trigger();
            node.task.abort();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Where an auxiliary tells the masters it is reached; `None`: where it
/// listens.
#[derive(Default)]
struct Advertise {
    http: Option<String>,
    data: Option<String>,
}

/// A TCP forwarder in front of a node's port that can be frozen:
/// frozen, it accepts connections and reads requests but passes nothing on
/// in either direction, connections already open included, so that a
/// caller waits until its own timeout, as with a stopped process.
pub struct Freezer {
    pub addr: SocketAddr,
    listener: std::sync::Mutex<Option<TcpListener>>,
    frozen: tokio::sync::watch::Sender<bool>,
}

impl Freezer {
    async fn bind() -> Freezer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        Freezer {
            addr: listener.local_addr().expect("address"),
            listener: std::sync::Mutex::new(Some(listener)),
            frozen: tokio::sync::watch::channel(false).0,
        }
    }

    fn forward_to(&self, target: SocketAddr) {
        let listener = self
            .listener
            .lock()
            .expect("lock")
            .take()
            .expect("forwarding once");
        let frozen = self.frozen.clone();
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let Ok(outbound) = tokio::net::TcpStream::connect(target).await else {
                    continue;
                };
                let (in_read, in_write) = inbound.into_split();
                let (out_read, out_write) = outbound.into_split();
                tokio::spawn(pass_on(in_read, out_write, frozen.subscribe()));
                tokio::spawn(pass_on(out_read, in_write, frozen.subscribe()));
            }
        });
    }

    /// From now on nothing gets through.
    pub fn freeze(&self) {
        self.frozen.send_replace(true);
    }

    /// Everything gets through again, what was held first.
    pub fn thaw(&self) {
        self.frozen.send_replace(false);
    }
}

/// Copies `from` to `to`, holding each chunk while frozen.
async fn pass_on(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut frozen: tokio::sync::watch::Receiver<bool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if frozen.wait_for(|f| !*f).await.is_err() {
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// Percent-encodes a key as one URL path segment.
pub fn encode(key: &str) -> String {
    key.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Polls `cond` every 20 ms until it holds; panics with `what` after
/// `limit` of tokio's time (virtual under `start_paused`): a limit catches
/// a verdict that never comes, never a slow machine.
pub async fn wait_until<F, Fut>(limit: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = tokio::time::Instant::now();
    while !cond().await {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
