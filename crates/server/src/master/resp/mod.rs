//! The Redis protocol (RESP2, and RESP3 after `HELLO 3`) on `RESP_PORT`, so
//! that redis-cli, redis-benchmark and Redis client libraries use the
//! cluster with no code change.
//!
//! # Layout
//!
//! - this file: the accept loop (TLS when `TLS_CERT`/`TLS_KEY` are set, a
//!   cap on clients) and the registry of open connections that `CLIENT
//!   LIST` and `INFO clients` read.
//! - [`threads`]: the RESP threads the accept loop hands connections to,
//!   each with a single-threaded runtime and its own connections to the
//!   auxiliaries.
//! - [`connection`]: one task per connection: read what has arrived, run
//!   every whole request in order, write all their replies in one write.
//! - [`front`]: the commands the listener answers itself (PING, HELLO,
//!   AUTH, CLIENT, INFO, CONFIG, COMMAND...), declared once in its table.
//!   Every other command goes, after the role check, to the
//!   [`CommandSession`](super::commands::CommandSession) both command front
//!   ends share.
//! - [`info`]: the text of INFO and the values of CONFIG GET.
//!
//! # Bounded memory per connection
//!
//! A request is bounded by [`RespLimits`] (a bulk over `MAX_BODY_BYTES` is
//! Redis's `Protocol error: invalid bulk length`, then close) and the read
//! buffer by twice that. Requests are run a window at a time (their data
//! commands batched per auxiliary), each window sized from the sizes of
//! the last one's replies, so that one comes to about 256 KiB (8 requests
//! in a connection's first window, when the sizes are not yet known; 1 to
//! 64 after). Replies are written once [`REPLY_FLUSH_BYTES`] have piled up
//! or the requests that arrived are all answered, and no request is read
//! while replies wait: a client that does not read its
//! replies stops being read (TCP pushes back) and, once no reply byte has
//! left for `RESP_OUTPUT_TIMEOUT_MS`, is disconnected, as Redis's
//! `client-output-buffer-limit` does. Like Redis (`timeout 0`), an idle
//! connection is kept.

mod cluster;
mod connection;
mod front;
mod info;
mod pubsub;
mod slowlog;
mod threads;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use distcache_core::command::Protocol;
use distcache_wire::resp::RespLimits;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use threads::{Accepted, RespThreads};

use super::Master;
use crate::security::serve::accept_next;

/// Redis's `maxclients` default: connections past it are answered `ERR max
/// number of clients reached` and closed.
pub const MAX_CLIENTS: usize = 10_000;
/// Replies are written once this many bytes wait, even if more requests
/// have arrived.
pub const REPLY_FLUSH_BYTES: usize = 64 * 1024;
/// The Redis version reported to clients (HELLO, INFO): one whose commands
/// and replies (RESP3, `CLIENT SETINFO`) clients may rely on.
pub const REDIS_VERSION: &str = "7.2.0";

/// What every connection of one listener shares.
pub(super) struct RespServer {
    master: Arc<Master>,
    limits: RespLimits,
    /// The same for a client not authenticated yet (where tokens are on).
    limits_before_auth: RespLimits,
    /// Most bytes a connection's read buffer may hold.
    max_query_bytes: usize,
    output_timeout: Duration,
    port: u16,
    started: Instant,
    started_at: SystemTime,
    /// A random id for this run, as Redis's `run_id`.
    run_id: String,
    clients: Mutex<BTreeMap<u64, Arc<Mutex<ClientInfo>>>>,
    /// Connections waiting in a blocking command (INFO's
    /// `blocked_clients`).
    blocked_clients: AtomicUsize,
    /// The commands answered slowly (SLOWLOG).
    slowlog: slowlog::SlowLog,
}

/// What `CLIENT LIST` shows of one connection.
#[derive(Debug, Clone)]
pub(super) struct ClientInfo {
    id: u64,
    addr: SocketAddr,
    laddr: SocketAddr,
    created: Instant,
    last_command_at: Instant,
    name: Option<String>,
    lib_name: Option<String>,
    lib_ver: Option<String>,
    protocol: Protocol,
    /// Commands queued since MULTI, -1 outside a transaction.
    multi: i64,
    /// Channels, patterns and shard channels subscribed to (`sub=`,
    /// `psub=`, `ssub=`).
    subscriptions: [usize; 3],
    /// The last command, as Redis names it (`client|list`).
    last_command: &'static str,
    /// Cancelled by CLIENT KILL: the connection closes once its replies
    /// so far are written.
    kill: tokio_util::sync::CancellationToken,
}

/// The RESP listener, its threads started ([`start`]), ready to serve.
pub struct RespListener {
    listener: TcpListener,
    server: Arc<RespServer>,
    threads: RespThreads,
    tls: bool,
}

/// Starts the RESP threads for `listener`: an error stops the master at
/// start rather than leave a port bound that never answers.
pub async fn start(
    listener: TcpListener,
    master: Arc<Master>,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> std::io::Result<RespListener> {
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    let max_bulk = master.config.max_body_bytes;
    let server = Arc::new(RespServer {
        limits: RespLimits {
            max_bulk_bytes: max_bulk,
            ..RespLimits::default()
        },
        limits_before_auth: RespLimits {
            max_bulk_bytes: max_bulk,
            before_auth: true,
            ..RespLimits::default()
        },
        max_query_bytes: max_bulk.saturating_mul(2),
        output_timeout: Duration::from_millis(master.config.resp_output_timeout_ms),
        port,
        started: Instant::now(),
        started_at: SystemTime::now(),
        run_id: (0..20)
            .map(|_| format!("{:02x}", rand::random::<u8>()))
            .collect(),
        clients: Mutex::new(BTreeMap::new()),
        blocked_clients: AtomicUsize::new(0),
        slowlog: slowlog::SlowLog::new(
            master.config.slowlog_slower_than_us,
            master.config.slowlog_max_len,
        ),
        master,
    });
    // RESP clients offer no ALPN protocol; the HTTP listener's `http/1.1`
    // would refuse one that offered another.
    let acceptor = tls.map(|config| {
        let mut config = (*config).clone();
        config.alpn_protocols.clear();
        TlsAcceptor::from(Arc::new(config))
    });
    let threads = RespThreads::start(
        server.master.config.resp_threads(),
        &server,
        acceptor.as_ref(),
    )
    .await?;
    Ok(RespListener {
        listener,
        server,
        threads,
        tls: acceptor.is_some(),
    })
}

impl RespListener {
    /// Accepts connections and hands them to the RESP threads until the
    /// master shuts down.
    pub async fn serve(self) {
        let RespListener {
            listener,
            server,
            mut threads,
            tls,
        } = self;
        let port = server.port;
        info!(
            port,
            tls,
            threads = server.master.config.resp_threads(),
            max_clients = MAX_CLIENTS,
            "RESP listening"
        );
        let slots = Arc::new(Semaphore::new(MAX_CLIENTS));
        let shutdown = server.master.shutdown.clone();
        while let Some((stream, peer)) = accept_next(&listener, &shutdown, "RESP").await {
            let _ = stream.set_nodelay(true);
            let metrics = &server.master.metrics.resp;
            metrics.connections_accepted.inc();
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                metrics.rejected.with_label_values(&["max_clients"]).inc();
                debug!(peer = %peer, "RESP connection over the client limit");
                shutdown.spawn(connection::refuse_max_clients(stream));
                continue;
            };
            // Off this runtime's reactor, onto the thread's.
            match stream.into_std() {
                Ok(stream) => threads.hand_over(Accepted { stream, peer, slot }),
                Err(e) => warn!(peer = %peer, error = %e, "RESP connection dropped"),
            }
        }
        info!(port, "RESP listener stopped");
    }
}

impl RespServer {
    /// Adds a connection to the registry; dropping the guard removes it.
    fn register(self: &Arc<Self>, info: ClientInfo) -> Registered {
        let id = info.id;
        let shared = Arc::new(Mutex::new(info));
        self.clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, shared.clone());
        self.master.metrics.resp.connections.inc();
        Registered {
            server: self.clone(),
            id,
            info: shared,
        }
    }

    /// Every open connection, by id.
    fn client_list(&self) -> Vec<ClientInfo> {
        let clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        clients
            .values()
            .map(|c| c.lock().unwrap_or_else(|p| p.into_inner()).clone())
            .collect()
    }

    fn connected_clients(&self) -> usize {
        self.clients.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// A connection's entry in the registry, removed when the connection ends
/// however it ends.
struct Registered {
    server: Arc<RespServer>,
    id: u64,
    info: Arc<Mutex<ClientInfo>>,
}

impl Registered {
    fn update(&self, change: impl FnOnce(&mut ClientInfo)) {
        change(&mut self.info.lock().unwrap_or_else(|p| p.into_inner()));
    }

    fn snapshot(&self) -> ClientInfo {
        self.info.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.server
            .clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
        self.server.master.metrics.resp.connections.dec();
    }
}
