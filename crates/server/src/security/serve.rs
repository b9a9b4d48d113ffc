//! The HTTP accept loop both roles use, in place of `axum::serve`, for what
//! that one cannot set:
//!
//! - **a cap on concurrent connections** (`MAX_CONNECTIONS`): past it, a
//!   connection is still accepted and answered `503 too_many_connections`
//!   (JSON, `Connection: close`) so clients see why; past twice the cap it
//!   is closed at once, so a flood costs nothing but the accept;
//! - **hyper's header-read timeout** (`HEADER_READ_TIMEOUT_MS`): a request
//!   whose headers do not arrive in time, or an idle keep-alive connection,
//!   is closed (there is no complete request to answer);
//! - **a bounded header buffer**: headers past the buffer get hyper's own
//!   bare 431; those over `MAX_HEADER_BYTES` but within the buffer get our
//!   JSON 431 from [`super::limits`];
//! - **TLS** with rustls when configured, the handshake bounded by the same
//!   timeout.
//!
//! Shutdown is graceful: accepting stops, in-flight requests finish, idle
//! connections close.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tower::util::Either;
use tracing::{debug, info, warn};

use super::limits::closing;
use crate::http::ApiError;
use crate::shutdown::{SHUTDOWN_DEADLINE, Shutdown};

/// Pause after a failed accept (e.g. out of file descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// How one listener serves.
#[derive(Clone)]
pub struct ServeOptions {
    /// TLS, if configured.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Most concurrent connections served normally.
    pub max_connections: usize,
    /// Longest wait for a request's headers (and the TLS handshake).
    pub header_read_timeout: Duration,
    /// Largest headers accepted (the JSON 431 is answered by middleware; the
    /// read buffer is sized past it).
    pub max_header_bytes: usize,
}

impl ServeOptions {
    /// Options from a role's limits, without TLS.
    pub fn from_limits(limits: &super::HttpLimits) -> Self {
        ServeOptions {
            tls: None,
            max_connections: limits.max_connections,
            header_read_timeout: limits.header_read_timeout(),
            max_header_bytes: limits.max_header_bytes,
        }
    }
}

/// The router that answers every request on a connection over the cap.
fn overflow_router() -> Router {
    Router::new().fallback(|| async {
        let mut resp = closing(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_connections",
            "this node has as many connections open as MAX_CONNECTIONS allows; retry shortly",
        ));
        resp.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from_static("1"),
        );
        resp
    })
}

/// What [`serve`] can serve: an axum `Router`, or a service that answers
/// some requests itself and hands the rest to one (the master's).
pub trait AppService:
    tower::Service<
        axum::extract::Request<hyper::body::Incoming>,
        Response = axum::response::Response,
        Error = Infallible,
        Future: Send + 'static,
    > + Clone
    + Send
    + Sync
    + 'static
{
}

impl<S> AppService for S where
    S: tower::Service<
            axum::extract::Request<hyper::body::Incoming>,
            Response = axum::response::Response,
            Error = Infallible,
            Future: Send + 'static,
        > + Clone
        + Send
        + Sync
        + 'static
{
}

/// The next connection on `listener`, or `None` once `shutdown` triggers.
/// A failed accept (out of file descriptors, say) is logged and tried
/// again after [`ACCEPT_BACKOFF`], so that the loop does not spin.
pub(crate) async fn accept_next(
    listener: &TcpListener,
    shutdown: &Shutdown,
    what: &'static str,
) -> Option<(TcpStream, SocketAddr)> {
    loop {
        tokio::select! {
            _ = shutdown.triggered() => return None,
            accepted = listener.accept() => match accepted {
                Ok(conn) => return Some(conn),
                Err(e) => {
                    warn!(listener = what, error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
        }
    }
}

/// Serves `app` on `listener` until `shutdown` triggers, then lets open
/// requests finish (up to the shutdown deadline).
pub async fn serve<S>(
    listener: TcpListener,
    app: S,
    options: ServeOptions,
    shutdown: Shutdown,
) -> std::io::Result<()>
where
    S: AppService,
{
    let local = listener.local_addr()?;
    info!(addr = %local, tls = options.tls.is_some(), max_connections = options.max_connections, "HTTP listening");
    let normal = Arc::new(Semaphore::new(options.max_connections));
    let overflow = Arc::new(Semaphore::new(options.max_connections));
    let acceptor = options.tls.clone().map(TlsAcceptor::from);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout)
        .max_buf_size((options.max_header_bytes * 2).max(16 * 1024));
    let http = Arc::new(http);
    let graceful = GracefulShutdown::new();
    let overflow_app = overflow_router();
    while let Some((stream, peer)) = accept_next(&listener, &shutdown, "HTTP").await {
        let (permit, service) = match normal.clone().try_acquire_owned() {
            Ok(p) => (p, Either::Left(app.clone())),
            Err(_) => match overflow.clone().try_acquire_owned() {
                Ok(p) => {
                    debug!(peer = %peer, "connection over MAX_CONNECTIONS; answering 503");
                    (p, Either::Right(overflow_app.clone()))
                }
                Err(_) => {
                    debug!(peer = %peer, "connection far over MAX_CONNECTIONS; closed");
                    drop(stream);
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let http = http.clone();
        let watcher = graceful.watcher();
        let acceptor = acceptor.clone();
        let handshake_timeout = options.header_read_timeout;
        tokio::spawn(async move {
            let _permit = permit;
            match acceptor {
                None => serve_connection(&http, watcher, stream, service).await,
                Some(acceptor) => {
                    match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => serve_connection(&http, watcher, tls, service).await,
                        Ok(Err(e)) => debug!(peer = %peer, error = %e, "TLS handshake failed"),
                        Err(_) => debug!(peer = %peer, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_DEADLINE, graceful.shutdown())
        .await
        .is_err()
    {
        warn!(addr = %local, "HTTP connections still open after the shutdown deadline");
    }
    Ok(())
}

async fn serve_connection<I, S>(
    http: &hyper::server::conn::http1::Builder,
    watcher: hyper_util::server::graceful::Watcher,
    io: I,
    app: S,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: AppService,
{
    let service = TowerToHyperService::new(app);
    let conn = http.serve_connection(TokioIo::new(io), service);
    if let Err(e) = watcher.watch(conn).await {
        debug!(error = %e, "HTTP connection ended with an error");
    }
}
