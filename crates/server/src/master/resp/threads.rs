//! The threads that serve RESP connections (`RESP_THREADS`; see
//! [`default_resp_threads`](crate::config::default_resp_threads)): each
//! runs a single-threaded runtime of its own, and the accept loop hands
//! every new connection to the next thread in turn. A connection stays on
//! its thread for life.
//!
//! Why not the master's shared, work-stealing runtime: a data command's
//! round trip wakes four tasks (the connection's, then the writer and the
//! reader of the auxiliary's connection, then the connection's again), and
//! on a shared runtime each wake may hand the task to another core, with
//! the task's state following it between caches. Each thread here has its
//! own lane of connections to the auxiliaries
//! ([`distcache_wire::use_lane_on_this_thread`]), so a command, its frame,
//! the tasks that carry it and the answer all stay on one core, as a
//! proxy's worker threads do (docs/performance.md, "RESP threads").

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};
use tokio_rustls::TlsAcceptor;
use tracing::{debug, error};

use super::{RespServer, connection};
use crate::shutdown::{SHUTDOWN_DEADLINE, Shutdown};

/// Longest wait for a TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// An accepted connection on its way to a thread.
pub(super) struct Accepted {
    pub(super) stream: std::net::TcpStream,
    pub(super) peer: SocketAddr,
    /// The connection's place under `MAX_CLIENTS`, held while it is open.
    pub(super) slot: OwnedSemaphorePermit,
}

/// The RESP threads, as the accept loop sees them.
pub(super) struct RespThreads {
    threads: Vec<mpsc::UnboundedSender<Accepted>>,
    next: usize,
}

impl RespThreads {
    /// Starts `count` threads (at least one) serving connections with
    /// `server`, and returns once each has its runtime. They stop once the
    /// accept loop drops this value, or the master shuts down, and their
    /// connections (and the work those started) have ended, within
    /// [`SHUTDOWN_DEADLINE`] of that.
    pub(super) async fn start(
        count: usize,
        server: &Arc<RespServer>,
        acceptor: Option<&TlsAcceptor>,
    ) -> std::io::Result<RespThreads> {
        let mut threads = Vec::with_capacity(count.max(1));
        for index in 0..count.max(1) {
            let (sender, accepted) = mpsc::unbounded_channel();
            let (ready, started) = oneshot::channel();
            let server = server.clone();
            let acceptor = acceptor.cloned();
            // The runtime is built on its thread: one dropped here, on
            // the master's runtime, would panic.
            std::thread::Builder::new()
                .name(format!("resp-{index}"))
                .spawn(move || {
                    let runtime = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(runtime) => runtime,
                        Err(e) => {
                            let _ = ready.send(Err(e));
                            return;
                        }
                    };
                    let _ = ready.send(Ok(()));
                    // Lane 0 is the master's shared runtime's.
                    distcache_wire::use_lane_on_this_thread(index + 1);
                    let shutdown = server.master.shutdown.clone();
                    runtime.block_on(serve_thread(server, acceptor, accepted, shutdown));
                })?;
            started
                .await
                .unwrap_or_else(|_| Err(std::io::Error::other("the RESP thread ended at once")))?;
            threads.push(sender);
        }
        Ok(RespThreads { threads, next: 0 })
    }

    /// Hands a connection to the next thread.
    pub(super) fn hand_over(&mut self, accepted: Accepted) {
        let thread = &self.threads[self.next];
        self.next = (self.next + 1) % self.threads.len();
        if thread.send(accepted).is_err() {
            // Only once the master is shutting down; the connection closes.
            debug!("RESP thread gone: connection dropped");
        }
    }
}

/// One thread's loop: serves the connections it is handed, then waits for
/// them to end.
async fn serve_thread(
    server: Arc<RespServer>,
    acceptor: Option<TlsAcceptor>,
    mut accepted: mpsc::UnboundedReceiver<Accepted>,
    shutdown: Shutdown,
) {
    loop {
        let next = tokio::select! {
            _ = shutdown.triggered() => break,
            next = accepted.recv() => next,
        };
        let Some(Accepted { stream, peer, slot }) = next else {
            break;
        };
        let stream = match tokio::net::TcpStream::from_std(stream) {
            Ok(stream) => stream,
            Err(e) => {
                error!(peer = %peer, error = %e, "RESP connection not taken over by its thread");
                continue;
            }
        };
        let server = server.clone();
        let acceptor = acceptor.clone();
        // On the global tracker, so that the master's last step waits for
        // this connection as for any other task.
        shutdown.spawn(async move {
            let _slot = slot;
            let laddr = stream.local_addr().unwrap_or(peer);
            match acceptor {
                None => connection::run(server, stream, peer, laddr).await,
                Some(acceptor) => {
                    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
                    {
                        Ok(Ok(tls)) => connection::run(server, tls, peer, laddr).await,
                        Ok(Err(e)) => debug!(peer = %peer, error = %e, "RESP TLS handshake failed"),
                        Err(_) => debug!(peer = %peer, "RESP TLS handshake timed out"),
                    }
                }
            }
        });
    }
    // Tasks on this runtime run only while this thread drives it: keep it
    // up until the master's tasks have all ended (its last step closes the
    // tracker), which includes this thread's connections and the
    // background writes they started, or the deadline passes.
    let _ = tokio::time::timeout(SHUTDOWN_DEADLINE, shutdown.tasks_ended()).await;
}
