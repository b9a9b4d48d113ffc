//! Server side: [`serve`], the accept loop, and one task per connection.
//!
//! A connection task reads into a buffer, answers every whole request frame
//! in it by calling the [`Handler`] inline, collects the answers in one write
//! buffer, and writes them once the read buffer holds no whole frame any
//! more. A client that pipelines many requests thus gets its answers in one
//! write. Answers on one connection go out in request order.
//!
//! A frame that does not decode gets a [`Response::Error`] with code
//! `bad_frame` and id 0 (it may not have a readable id), after the answers
//! to the frames before it, and the connection is closed. Other connections
//! are not affected.
//!
//! Shutdown: when the token is cancelled, [`serve`] stops accepting, each
//! connection answers the requests it already buffered and closes, and
//! [`serve`] returns once they have all ended, or after [`SHUTDOWN_GRACE`],
//! aborting the stragglers (a peer that does not read its answers).

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, debug_span, info, warn};

use crate::frame::{
    FrameError, Request, RequestFrame, Response, decode_request, error_code, try_encode_response,
};

/// How long [`serve`] waits for open connections after shutdown.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// How much room a connection makes in its read buffer before each read.
const READ_CHUNK_BYTES: usize = 64 * 1024;
/// Answers are written early once this many bytes are waiting, so a long
/// pipeline does not pile up in memory.
const FLUSH_AT_BYTES: usize = 1 << 20;
/// Pause after a failed accept (e.g. out of file descriptors), so the loop
/// does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// After refusing a bad frame: how long, and how many bytes, to keep reading
/// and discarding, so that closing does not reset the connection before the
/// peer has read the error.
const LINGER: Duration = Duration::from_millis(500);
const LINGER_MAX_BYTES: usize = 1 << 20;

/// Answers requests. Synchronous on purpose: an auxiliary's work is a store
/// operation under a shard lock, over in microseconds, so the connection
/// task calls it inline and pipelines the answers.
pub trait Handler: Send + Sync + 'static {
    /// The answer to `req`, which its sender routed by the cluster map of
    /// `epoch` ([`UNFENCED`](crate::frame::UNFENCED) when by none; the
    /// handler decides what to refuse as stale). `conn.authenticated` is
    /// false until the connection has presented the right secret with
    /// `Hello`; the handler decides what an unauthenticated connection may
    /// do.
    fn handle(&self, req: Request, epoch: u64, conn: &mut ConnState) -> Response;

    /// Called before answers handled since the last call are written to the
    /// connection (once per batch of frames read, and whenever the pending
    /// answers grow large). A handler that must make its changes durable
    /// before they are acknowledged does it here, once for the whole batch,
    /// using what it noted in `conn.wait_for`. The default does nothing.
    fn before_answering(&self, conn: &mut ConnState) -> impl Future<Output = ()> + Send {
        let _ = conn;
        std::future::ready(())
    }
}

/// Per-connection state a handler may keep.
#[derive(Debug, Default)]
pub struct ConnState {
    /// Set by the handler once the connection proved the cluster secret.
    pub authenticated: bool,
    /// Set by the handler to close the connection once this answer is
    /// written (e.g. after refusing an unauthenticated request).
    pub close: bool,
    /// A position in the handler's own sequence (a log offset, say) that the
    /// answers handled since the last [`Handler::before_answering`] wait
    /// for; 0 = nothing. Only the handler reads and writes it.
    pub wait_for: u64,
}

/// Accepts connections on `listener` until `shutdown` is cancelled, serving
/// each with `handler`.
///
/// Returns after shutdown once every connection has ended, at most
/// [`SHUTDOWN_GRACE`] later.
pub async fn serve<H: Handler>(
    listener: TcpListener,
    handler: Arc<H>,
    shutdown: CancellationToken,
) {
    match listener.local_addr() {
        Ok(addr) => info!(addr = %addr, "internal protocol listening"),
        Err(e) => info!(error = %e, "internal protocol listening"),
    }
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(ended) = connections.join_next(), if !connections.is_empty() => log_task_end(ended),
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let task = serve_connection(stream, Arc::clone(&handler), shutdown.clone());
                    connections.spawn(task.instrument(debug_span!("wire_conn", peer = %peer)));
                }
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                    }
                }
            },
        }
    }
    drop(listener);
    debug!(
        open = connections.len(),
        "stopped accepting; draining connections"
    );
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while let Some(ended) = connections.join_next().await {
            log_task_end(ended);
        }
    })
    .await;
    if drained.is_err() {
        warn!(
            open = connections.len(),
            grace_ms = SHUTDOWN_GRACE.as_millis() as u64,
            "connections still open after the shutdown grace; aborting them"
        );
        connections.shutdown().await;
    }
    info!("internal protocol stopped");
}

fn log_task_end(ended: Result<(), tokio::task::JoinError>) {
    if let Err(e) = ended {
        if e.is_panic() {
            warn!(error = %e, "connection task panicked");
        }
    }
}

/// Why a connection ended, for the log.
enum End {
    PeerClosed,
    Shutdown,
    Io(io::Error),
    BadFrame(FrameError),
    Refused,
}

async fn serve_connection<H: Handler>(
    mut stream: TcpStream,
    handler: Arc<H>,
    shutdown: CancellationToken,
) {
    if let Err(e) = stream.set_nodelay(true) {
        debug!(error = %e, "could not set TCP_NODELAY");
    }
    debug!("connection opened");
    let mut state = ConnState::default();
    let mut read_buf = BytesMut::with_capacity(READ_CHUNK_BYTES);
    let mut write_buf = BytesMut::new();
    // One wait for the connection's life, not one per read (each joins the
    // token's list of waiters, under its lock).
    let shutting_down = shutdown.cancelled();
    tokio::pin!(shutting_down);
    let end = loop {
        // Answer every whole frame already buffered.
        let decoded = loop {
            match decode_request(&mut read_buf) {
                Ok(Some(RequestFrame { id, epoch, request })) => {
                    let answer = handler.handle(request, epoch, &mut state);
                    push_answer(id, &answer, &mut write_buf);
                    if state.close {
                        break Err(End::Refused);
                    }
                    if write_buf.len() >= FLUSH_AT_BYTES {
                        handler.before_answering(&mut state).await;
                        if let Err(e) = flush(&mut stream, &mut write_buf).await {
                            break Err(End::Io(e));
                        }
                    }
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(End::BadFrame(e)),
            }
        };
        // Refused or not, what was handled before is answered: made durable
        // first, like every answer.
        handler.before_answering(&mut state).await;
        if let Err(end) = decoded {
            break end;
        }
        if let Err(e) = flush(&mut stream, &mut write_buf).await {
            break End::Io(e);
        }
        if read_buf.capacity() - read_buf.len() < READ_CHUNK_BYTES / 4 {
            read_buf.reserve(READ_CHUNK_BYTES);
        }
        tokio::select! {
            // Checked first: after shutdown, no new request is read.
            biased;
            _ = &mut shutting_down => break End::Shutdown,
            read = stream.read_buf(&mut read_buf) => match read {
                Ok(0) => break End::PeerClosed,
                Ok(_) => {}
                Err(e) => break End::Io(e),
            },
        }
    };
    match end {
        End::PeerClosed => debug!("connection closed by peer"),
        End::Shutdown => debug!("connection closed for shutdown"),
        End::Io(e) => debug!(error = %e, "connection failed"),
        End::Refused => {
            debug!("request refused; closing the connection");
            if flush(&mut stream, &mut write_buf).await.is_ok() {
                linger(stream).await;
            }
        }
        End::BadFrame(e) => {
            debug!(error = %e, "bad frame; closing the connection");
            let refusal = Response::error(error_code::BAD_FRAME, e.to_string());
            push_answer(0, &refusal, &mut write_buf);
            if flush(&mut stream, &mut write_buf).await.is_ok() {
                linger(stream).await;
            }
        }
    }
}

/// Encodes `answer`, or an error in its place if it does not fit in a frame.
fn push_answer(id: u64, answer: &Response, buf: &mut BytesMut) {
    if let Err(e) = try_encode_response(id, answer, buf) {
        warn!(id, error = %e, "answer does not fit in a frame");
        let refusal = Response::error(error_code::TOO_LARGE, e.to_string());
        // A short error always fits.
        let _ = try_encode_response(id, &refusal, buf);
    }
}

async fn flush(stream: &mut TcpStream, buf: &mut BytesMut) -> io::Result<()> {
    if !buf.is_empty() {
        stream.write_all(buf).await?;
        buf.clear();
    }
    Ok(())
}

/// Half-closes and discards what the peer still sends for a moment: closing
/// with unread bytes would send a reset that can destroy the error frame
/// before the peer reads it.
async fn linger(mut stream: TcpStream) {
    if stream.shutdown().await.is_err() {
        return;
    }
    let mut sink = vec![0u8; 8 * 1024];
    let mut discarded = 0;
    let _ = tokio::time::timeout(LINGER, async {
        while discarded < LINGER_MAX_BYTES {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => discarded += n,
            }
        }
    })
    .await;
}
