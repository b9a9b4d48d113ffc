//! Server side. STUB: to be implemented.

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::frame::{Request, Response};

/// Answers requests. Synchronous on purpose: an auxiliary's work is a store
/// operation under a shard lock, over in microseconds, so the connection
/// task calls it inline and pipelines the answers.
pub trait Handler: Send + Sync + 'static {
    /// The answer to `req`. `authenticated` is false until the connection has
    /// presented the right secret with `Hello`; the handler decides what an
    /// unauthenticated connection may do.
    fn handle(&self, req: Request, conn: &mut ConnState) -> Response;
}

/// Per-connection state a handler may keep.
#[derive(Debug, Default)]
pub struct ConnState {
    /// Set by the handler once the connection proved the cluster secret.
    pub authenticated: bool,
}

/// Accepts connections on `listener` until `shutdown` is cancelled, serving
/// each with `handler`.
pub async fn serve<H: Handler>(listener: TcpListener, handler: Arc<H>, shutdown: CancellationToken) {
    let _ = (listener, handler, shutdown);
    todo!()
}
