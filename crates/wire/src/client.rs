//! Client side: [`Client`], one persistent, multiplexed TCP connection per
//! peer.
//!
//! # How a call travels
//!
//! [`Client::call`] encodes its request with a fresh id, registers a
//! `oneshot` under that id in the connection's pending map, and queues the
//! frame on an unbounded channel. A writer task drains the channel: it takes
//! one frame, then everything else already queued, and writes the lot with
//! one `write_all`, so under load many requests share one system call and one
//! TCP segment. A reader task decodes answers and completes the pending call
//! with the same id. Answers may come back in any order.
//!
//! # Failure and reconnection
//!
//! There is no background reconnect loop: the connection is opened by the
//! first call that needs it. When it breaks (read or write error, end of
//! stream, a frame that does not decode), every pending call fails with
//! [`WireError::Closed`] (or [`WireError::Frame`]) and the connection is
//! marked dead; the next call opens a new one. Connect attempts are
//! serialized, and callers that queued behind an attempt that failed share
//! its error instead of each trying again, so a dead peer sees one connect
//! attempt per wave of callers, not one per caller.
//!
//! Every call is bounded by [`ClientConfig::request_timeout`], connecting and
//! the handshake included. A call that times out removes its pending entry.
//! If nothing at all arrived on the connection while that call waited, the
//! peer is taken to be hung (a stopped process, a stuck accept loop) and the
//! connection is abandoned, so that later calls reconnect instead of queueing
//! behind it forever.
//!
//! # Lifetime
//!
//! The tasks are spawned on the runtime of the call that connects, so
//! [`Client::new`] works without one. They stop when the connection breaks
//! or when the last clone of the [`Client`] is dropped.
//!
//! # Lanes: one connection per runtime thread
//!
//! A client may hold several connections to its peer, one per *lane*
//! ([`ClientConfig::lanes`]), and a call uses the lane its thread was given
//! with [`use_lane_on_this_thread`] (lane 0 by default). A server that runs
//! one single-threaded runtime per core gives each its own lane: a call's
//! frame, its writer and reader tasks and the caller then all run on one
//! thread, and the answer wakes the caller without handing it to another
//! core.

use std::cell::Cell;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::debug;

use crate::frame::{
    FrameError, Request, Response, UNFENCED, decode_response, error_code, try_encode_request,
};

/// The request timeout when none is configured (the `REQUEST_TIMEOUT_MS`
/// default).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_millis(1000);

/// The writer stops adding queued frames to a batch past this size.
const MAX_WRITE_BATCH_BYTES: usize = 1 << 20;
/// How much room the reader makes in its buffer before each read.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// How a [`Client`] connects and waits.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Longest wait for connecting plus one request's answer.
    pub request_timeout: Duration,
    /// The cluster secret presented with `Hello` on every new connection;
    /// empty = none.
    pub secret: bytes::Bytes,
    /// Connections to the peer, one per lane (at least one); see
    /// [`use_lane_on_this_thread`].
    pub lanes: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            secret: Bytes::new(),
            lanes: 1,
        }
    }
}

thread_local! {
    /// The lane this thread's calls use.
    static LANE: Cell<usize> = const { Cell::new(0) };
}

/// Makes every call made on this thread use connection `lane` of its client
/// (lane 0 where the client has fewer). For a thread that runs a runtime of
/// its own: the connections its calls open then have their tasks on that
/// runtime too.
pub fn use_lane_on_this_thread(lane: usize) {
    LANE.set(lane);
}

/// Why a call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WireError {
    /// Connecting failed.
    #[error("connect to {addr} failed: {reason}")]
    Connect {
        /// Peer address.
        addr: String,
        /// Cause.
        reason: String,
    },
    /// No answer within the timeout.
    #[error("no answer from {addr} within {timeout_ms} ms")]
    Timeout {
        /// Peer address.
        addr: String,
        /// The timeout.
        timeout_ms: u64,
    },
    /// The connection broke before the answer came.
    #[error("connection to {addr} closed: {reason}")]
    Closed {
        /// Peer address.
        addr: String,
        /// Cause.
        reason: String,
    },
    /// The peer sent bytes that are not a frame (or, when sending, the
    /// request does not fit in one frame).
    #[error("bad frame from {addr}: {source}")]
    Frame {
        /// Peer address.
        addr: String,
        /// The decode error.
        source: FrameError,
    },
    /// The peer refused the cluster secret.
    #[error("{addr} refused the cluster secret: {message}")]
    Unauthorized {
        /// Peer address.
        addr: String,
        /// Peer's message.
        message: String,
    },
}

/// A multiplexed connection to one auxiliary. Cheap to clone; clones share
/// the connection. Connects lazily and reconnects after a failure.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("addr", &self.inner.addr)
            .field("request_timeout", &self.inner.config.request_timeout)
            .finish_non_exhaustive()
    }
}

/// What all clones of one [`Client`] share.
struct Inner {
    addr: String,
    config: ClientConfig,
    /// Request ids; 0 is never used, it marks connection-level errors.
    next_id: AtomicU64,
    /// One connection each, by lane.
    lanes: Box<[Lane]>,
}

/// One of a client's connections to its peer, and its reconnection state.
#[derive(Default)]
struct Lane {
    /// The current connection, possibly already dead.
    current: Mutex<Option<Arc<Conn>>>,
    /// Held while connecting, so that one attempt runs at a time.
    connecting: tokio::sync::Mutex<()>,
    /// How many connect attempts finished, and the last one's error.
    last_attempt: Mutex<(u64, Option<WireError>)>,
}

/// One open connection, owned by [`Inner`]. Dropping it stops its tasks.
struct Conn {
    queue: mpsc::UnboundedSender<Bytes>,
    shared: Arc<Shared>,
    _stop_tasks: DropGuard,
}

/// What a connection's tasks and its callers share.
struct Shared {
    addr: String,
    pending: Mutex<Pending>,
    /// Answers read so far; a call that times out with this unchanged
    /// since it was sent saw a silent peer.
    frames_read: AtomicU64,
    /// Frames handed to the socket so far, and the writes that carried
    /// them (counted as each write starts).
    frames_written: AtomicU64,
    writes: AtomicU64,
    stop: CancellationToken,
}

/// How many frames a connection sent and in how many writes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteCounts {
    /// Request frames written.
    pub frames: u64,
    /// Writes (one `write_all` each, usually one system call) that carried
    /// them.
    pub writes: u64,
}

type Reply = oneshot::Sender<Result<Response, WireError>>;

#[derive(Default)]
struct Pending {
    /// Once set, no call is registered any more: `fail` has answered them
    /// all, and a call registered later would never be answered.
    closed: bool,
    calls: HashMap<u64, Reply>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded data stays consistent across a panic (plain inserts and
    // removals), so a poisoned lock is still usable.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Client {
    /// A client for `addr` (`host:port`); does not connect yet.
    pub fn new(addr: impl Into<String>, config: ClientConfig) -> Client {
        let lanes = (0..config.lanes.max(1)).map(|_| Lane::default()).collect();
        Client {
            inner: Arc::new(Inner {
                addr: addr.into(),
                config,
                next_id: AtomicU64::new(1),
                lanes,
            }),
        }
    }

    /// The peer address.
    pub fn addr(&self) -> &str {
        &self.inner.addr
    }

    /// Sends `req` unfenced (epoch [`UNFENCED`]) and waits for its answer,
    /// at most the request timeout. For senders that route by no cluster
    /// map: peers handing keys over, backup and restore, tools, probes.
    ///
    /// A [`Response::Error`] with code `unauthorized` is returned as
    /// [`WireError::Unauthorized`]; other error responses are returned as
    /// they are. A request too large for one frame fails with
    /// [`WireError::Frame`] without touching the connection.
    pub async fn call(&self, req: Request) -> Result<Response, WireError> {
        self.call_at(UNFENCED, req).await
    }

    /// Sends `req` routed by the cluster map of `epoch` and waits for its
    /// answer, as [`Client::call`] does. An auxiliary that has seen a newer
    /// epoch answers [`Response::StaleEpoch`], which is returned as it is:
    /// the caller catches up and routes again. A `Ping` at an epoch
    /// announces that epoch to the auxiliary.
    pub async fn call_at(&self, epoch: u64, req: Request) -> Result<Response, WireError> {
        let inner = &self.inner;
        let id = inner.next_id();
        let mut frame = BytesMut::new();
        try_encode_request(id, epoch, &req, &mut frame).map_err(|source| WireError::Frame {
            addr: inner.addr.clone(),
            source,
        })?;
        drop(req);

        let timeout = inner.config.request_timeout;
        let mut in_flight = None;
        let outcome = tokio::time::timeout(
            timeout,
            inner.send_and_wait(id, frame.freeze(), &mut in_flight),
        )
        .await;
        match outcome {
            Ok(Ok(Response::Error { code, message })) if code == error_code::UNAUTHORIZED => {
                Err(WireError::Unauthorized {
                    addr: inner.addr.clone(),
                    message,
                })
            }
            Ok(result) => result,
            Err(_elapsed) => {
                if let Some(call) = &in_flight {
                    call.abandon_connection_if_silent(timeout);
                }
                // Dropping `in_flight` removes the pending entry.
                Err(WireError::Timeout {
                    addr: inner.addr.clone(),
                    timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
                })
            }
        }
    }

    /// Frames sent on the current connections (every lane's) and the
    /// writes that carried them (zero before the first connection): how
    /// well calls made at the same time share system calls.
    pub fn write_counts(&self) -> WriteCounts {
        let mut counts = WriteCounts::default();
        for lane in &self.inner.lanes {
            if let Some(conn) = lock(&lane.current).as_ref() {
                counts.frames += conn.shared.frames_written.load(Ordering::Relaxed);
                counts.writes += conn.shared.writes.load(Ordering::Relaxed);
            }
        }
        counts
    }

    /// Calls registered on the current connections and not yet answered.
    #[cfg(test)]
    fn pending_calls(&self) -> usize {
        self.inner
            .lanes
            .iter()
            .filter_map(|lane| lock(&lane.current).clone())
            .map(|conn| lock(&conn.shared.pending).calls.len())
            .sum()
    }
}

/// A call whose request was queued: removes its pending entry when dropped,
/// whether the call was answered, timed out or its future was dropped.
struct InFlight {
    shared: Arc<Shared>,
    id: u64,
    frames_read_at_send: u64,
}

impl InFlight {
    fn abandon_connection_if_silent(&self, timeout: Duration) {
        if self.shared.frames_read.load(Ordering::Acquire) == self.frames_read_at_send {
            // Logged at debug: the caller reports the timeout itself.
            debug!(
                peer = %self.shared.addr,
                timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
                "peer silent for a whole request timeout; dropping the connection"
            );
            self.shared.fail(WireError::Closed {
                addr: self.shared.addr.clone(),
                reason: "peer sent nothing for a whole request timeout".to_owned(),
            });
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        lock(&self.shared.pending).calls.remove(&self.id);
    }
}

impl Inner {
    fn next_id(&self) -> u64 {
        loop {
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            if id != 0 {
                return id;
            }
        }
    }

    /// Everything a call does inside its timeout. `in_flight` is set once the
    /// request is queued, and outlives this future when the timeout drops it.
    async fn send_and_wait(
        &self,
        id: u64,
        frame: Bytes,
        in_flight: &mut Option<InFlight>,
    ) -> Result<Response, WireError> {
        let conn = self.connection().await?;
        let (reply, answer) = oneshot::channel();
        {
            let mut pending = lock(&conn.shared.pending);
            if pending.closed {
                return Err(conn
                    .shared
                    .closed("connection closed while the call was starting"));
            }
            pending.calls.insert(id, reply);
        }
        *in_flight = Some(InFlight {
            shared: Arc::clone(&conn.shared),
            id,
            frames_read_at_send: conn.shared.frames_read.load(Ordering::Acquire),
        });
        if conn.queue.send(frame).is_err() {
            // The writer is gone without saying why (its runtime shut down).
            let err = conn.shared.closed("writer task stopped");
            conn.shared.fail(err.clone());
            return Err(err);
        }
        drop(conn);
        match answer.await {
            Ok(result) => result,
            Err(_) => Err(WireError::Closed {
                addr: self.addr.clone(),
                reason: "connection dropped before the answer came".to_owned(),
            }),
        }
    }

    /// The lane of this thread's calls.
    fn lane(&self) -> &Lane {
        self.lanes.get(LANE.get()).unwrap_or_else(|| &self.lanes[0])
    }

    fn live_connection(&self) -> Option<Arc<Conn>> {
        lock(&self.lane().current)
            .as_ref()
            // A writer gone without failing the connection: the runtime
            // its tasks ran on shut down (a lane's thread ended). Nothing
            // can be sent on it, so it is as dead as a closed one.
            .filter(|conn| !conn.shared.is_closed() && !conn.queue.is_closed())
            .cloned()
    }

    /// The live connection of this thread's lane, opening one if there is
    /// none.
    async fn connection(&self) -> Result<Arc<Conn>, WireError> {
        if let Some(conn) = self.live_connection() {
            return Ok(conn);
        }
        let lane = self.lane();
        let attempts_seen = lock(&lane.last_attempt).0;
        let _turn = lane.connecting.lock().await;
        if let Some(conn) = self.live_connection() {
            return Ok(conn);
        }
        {
            // An attempt finished while this caller waited for its turn: share
            // its failure rather than hammer a dead peer once per caller.
            let last = lock(&lane.last_attempt);
            if last.0 != attempts_seen {
                if let Some(err) = &last.1 {
                    return Err(err.clone());
                }
            }
        }
        let result = self.connect().await;
        {
            let mut last = lock(&lane.last_attempt);
            last.0 += 1;
            last.1 = result.as_ref().err().cloned();
        }
        if let Ok(conn) = &result {
            *lock(&lane.current) = Some(Arc::clone(conn));
        }
        result
    }

    /// Opens a connection, presents the secret, and starts its tasks.
    async fn connect(&self) -> Result<Arc<Conn>, WireError> {
        let connect_error = |reason: String| WireError::Connect {
            addr: self.addr.clone(),
            reason,
        };
        let stream = TcpStream::connect(self.addr.as_str())
            .await
            .map_err(|e| connect_error(e.to_string()))?;
        stream
            .set_nodelay(true)
            .map_err(|e| connect_error(e.to_string()))?;
        let (mut reader, mut writer) = stream.into_split();
        let mut read_buf = BytesMut::with_capacity(READ_CHUNK_BYTES);
        if !self.config.secret.is_empty() {
            self.handshake(&mut reader, &mut writer, &mut read_buf)
                .await?;
        }

        let (queue, frames) = mpsc::unbounded_channel();
        let stop = CancellationToken::new();
        let shared = Arc::new(Shared {
            addr: self.addr.clone(),
            pending: Mutex::new(Pending::default()),
            frames_read: AtomicU64::new(0),
            frames_written: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            stop: stop.clone(),
        });
        tokio::spawn(write_loop(writer, frames, Arc::clone(&shared)));
        tokio::spawn(read_loop(reader, read_buf, Arc::clone(&shared)));
        debug!(peer = %self.addr, "connected");
        Ok(Arc::new(Conn {
            queue,
            shared,
            _stop_tasks: stop.drop_guard(),
        }))
    }

    /// Sends `Hello` as the connection's first frame and waits for its answer
    /// before any call may use the connection.
    async fn handshake(
        &self,
        reader: &mut OwnedReadHalf,
        writer: &mut OwnedWriteHalf,
        read_buf: &mut BytesMut,
    ) -> Result<(), WireError> {
        let connect_error = |reason: String| WireError::Connect {
            addr: self.addr.clone(),
            reason,
        };
        let hello = Request::Hello {
            secret: self.config.secret.clone(),
        };
        let mut frame = BytesMut::new();
        try_encode_request(self.next_id(), UNFENCED, &hello, &mut frame).map_err(|source| {
            WireError::Frame {
                addr: self.addr.clone(),
                source,
            }
        })?;
        writer
            .write_all(&frame)
            .await
            .map_err(|e| connect_error(format!("sending hello: {e}")))?;
        let answer = loop {
            match decode_response(read_buf) {
                Ok(Some((_, answer))) => break answer,
                Ok(None) => {}
                Err(source) => {
                    return Err(WireError::Frame {
                        addr: self.addr.clone(),
                        source,
                    });
                }
            }
            read_buf.reserve(READ_CHUNK_BYTES);
            match reader.read_buf(read_buf).await {
                Ok(0) => return Err(connect_error("closed during the handshake".to_owned())),
                Ok(_) => {}
                Err(e) => return Err(connect_error(format!("reading the hello answer: {e}"))),
            }
        };
        match answer {
            Response::Ok => Ok(()),
            Response::Error { code, message } if code == error_code::UNAUTHORIZED => {
                Err(WireError::Unauthorized {
                    addr: self.addr.clone(),
                    message,
                })
            }
            Response::Error { code, message } => {
                Err(connect_error(format!("hello refused: {code}: {message}")))
            }
            other => Err(connect_error(format!(
                "unexpected answer to hello: {other:?}"
            ))),
        }
    }
}

impl Shared {
    fn closed(&self, reason: impl Into<String>) -> WireError {
        WireError::Closed {
            addr: self.addr.clone(),
            reason: reason.into(),
        }
    }

    fn is_closed(&self) -> bool {
        lock(&self.pending).closed
    }

    /// Marks the connection dead, fails every pending call with `err` and
    /// stops both tasks. Only the first failure counts.
    fn fail(&self, err: WireError) {
        let calls = {
            let mut pending = lock(&self.pending);
            if pending.closed {
                return;
            }
            pending.closed = true;
            std::mem::take(&mut pending.calls)
        };
        debug!(peer = %self.addr, error = %err, failed_calls = calls.len(), "connection lost");
        for (_, reply) in calls {
            let _ = reply.send(Err(err.clone()));
        }
        self.stop.cancel();
    }

    /// Counts a write of `frames` frames, before it is made: an answer
    /// may come back (on another thread) before the writer would get to
    /// count it after.
    fn count_write(&self, frames: u64) {
        self.frames_written.fetch_add(frames, Ordering::Relaxed);
        self.writes.fetch_add(1, Ordering::Relaxed);
    }

    fn complete(&self, id: u64, answer: Response) {
        self.frames_read.fetch_add(1, Ordering::Release);
        let reply = lock(&self.pending).calls.remove(&id);
        match reply {
            // The caller may have given up in the meantime; that is fine.
            Some(reply) => drop(reply.send(Ok(answer))),
            None => debug!(peer = %self.addr, id, "answer to a call no longer waiting"),
        }
    }
}

/// Writes queued frames, batching whatever is queued into one write.
async fn write_loop(
    mut writer: OwnedWriteHalf,
    mut frames: mpsc::UnboundedReceiver<Bytes>,
    shared: Arc<Shared>,
) {
    let mut batch = BytesMut::new();
    // One wait for the task's life, not one per frame: each new wait joins
    // the token's list of waiters, under its lock, and leaves it when
    // dropped.
    let stopped = shared.stop.cancelled();
    tokio::pin!(stopped);
    loop {
        let first = tokio::select! {
            _ = &mut stopped => return,
            frame = frames.recv() => match frame {
                Some(frame) => frame,
                None => return,
            },
        };
        // Under load the tasks that run next on this runtime are about to
        // queue frames of their own (a woken task runs before its waker's
        // neighbours, so without this every frame would go out alone): step
        // aside once so that they can, and send them all in one write. The
        // writer is back after the tasks ready now have run (at most one
        // scheduler round), and on an idle runtime at once.
        if frames.is_empty() {
            tokio::task::yield_now().await;
        }
        let written = match frames.try_recv() {
            // A lone frame goes out as it is, without a copy.
            Err(_) => {
                shared.count_write(1);
                tokio::select! {
                    _ = &mut stopped => return,
                    r = writer.write_all(&first) => r,
                }
            }
            Ok(second) => {
                batch.extend_from_slice(&first);
                batch.extend_from_slice(&second);
                let mut count = 2;
                while batch.len() < MAX_WRITE_BATCH_BYTES {
                    match frames.try_recv() {
                        Ok(frame) => {
                            batch.extend_from_slice(&frame);
                            count += 1;
                        }
                        Err(_) => break,
                    }
                }
                shared.count_write(count);
                let r = tokio::select! {
                    _ = &mut stopped => return,
                    r = writer.write_all(&batch) => r,
                };
                batch.clear();
                r
            }
        };
        if let Err(e) = written {
            shared.fail(shared.closed(format!("write failed: {e}")));
            return;
        }
    }
}

/// Decodes answers and hands each to its caller.
async fn read_loop(mut reader: OwnedReadHalf, mut buf: BytesMut, shared: Arc<Shared>) {
    let stopped = shared.stop.cancelled();
    tokio::pin!(stopped);
    let err = loop {
        if let Err(err) = drain_answers(&mut buf, &shared) {
            break err;
        }
        if buf.capacity() - buf.len() < READ_CHUNK_BYTES / 4 {
            buf.reserve(READ_CHUNK_BYTES);
        }
        let read = tokio::select! {
            _ = &mut stopped => return,
            read = reader.read_buf(&mut buf) => read,
        };
        match read {
            Ok(0) => break shared.closed("peer closed the connection"),
            Ok(_) => {}
            Err(e) => break shared.closed(format!("read failed: {e}")),
        }
    };
    shared.fail(err);
}

/// Completes a call for every whole answer in `buf`; an error means the
/// connection is done for.
fn drain_answers(buf: &mut BytesMut, shared: &Shared) -> Result<(), WireError> {
    loop {
        match decode_response(buf) {
            Ok(None) => return Ok(()),
            // Id 0 answers no call: the peer rejects the whole connection.
            Ok(Some((0, Response::Error { code, message }))) => {
                return Err(if code == error_code::UNAUTHORIZED {
                    WireError::Unauthorized {
                        addr: shared.addr.clone(),
                        message,
                    }
                } else {
                    shared.closed(format!("peer rejected the connection: {code}: {message}"))
                });
            }
            Ok(Some((id, answer))) => shared.complete(id, answer),
            Err(source) => {
                return Err(WireError::Frame {
                    addr: shared.addr.clone(),
                    source,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{RequestFrame, decode_request, encode_response};
    use tokio::net::TcpListener;

    /// A peer that answers `Ping` and never answers `Get`.
    async fn selective_peer(listener: TcpListener) {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut buf = BytesMut::new();
        loop {
            while let Some(RequestFrame { id, request, .. }) = decode_request(&mut buf).unwrap() {
                if request == Request::Ping {
                    let mut out = BytesMut::new();
                    encode_response(id, &Response::Pong, &mut out);
                    stream.write_all(&out).await.unwrap();
                }
            }
            if stream.read_buf(&mut buf).await.unwrap() == 0 {
                return;
            }
        }
    }

    #[tokio::test]
    async fn timed_out_call_leaves_no_pending_entry_and_keeps_a_live_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(selective_peer(listener));
        let client = Client::new(
            addr.to_string(),
            ClientConfig {
                request_timeout: Duration::from_millis(200),
                secret: Bytes::new(),
                ..ClientConfig::default()
            },
        );
        assert_eq!(client.call(Request::Ping).await.unwrap(), Response::Pong);

        let slow = {
            let client = client.clone();
            tokio::spawn(async move {
                client
                    .call(Request::Get {
                        key: Bytes::from_static(b"never"),
                    })
                    .await
            })
        };
        // Keep the connection visibly alive while the Get waits.
        for _ in 0..8 {
            tokio::time::sleep(Duration::from_millis(40)).await;
            assert_eq!(client.call(Request::Ping).await.unwrap(), Response::Pong);
        }
        assert!(matches!(
            slow.await.unwrap(),
            Err(WireError::Timeout { .. })
        ));
        assert_eq!(client.pending_calls(), 0);
        // The connection was answering, so it was kept.
        assert!(client.inner.live_connection().is_some());
        assert_eq!(client.call(Request::Ping).await.unwrap(), Response::Pong);
    }

    #[tokio::test]
    async fn dropped_call_future_leaves_no_pending_entry() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(selective_peer(listener));
        let client = Client::new(addr.to_string(), ClientConfig::default());
        assert_eq!(client.call(Request::Ping).await.unwrap(), Response::Pong);
        let get = client.call(Request::Get { key: Bytes::new() });
        let gave_up = tokio::time::timeout(Duration::from_millis(50), get).await;
        assert!(gave_up.is_err());
        assert_eq!(client.pending_calls(), 0);
    }

    /// A peer that answers every `Ping` on every connection, counting the
    /// connections it accepted.
    async fn counting_peer(listener: TcpListener, accepted: Arc<AtomicU64>) {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            accepted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = BytesMut::new();
                loop {
                    while let Some(RequestFrame { id, .. }) = decode_request(&mut buf).unwrap() {
                        let mut out = BytesMut::new();
                        encode_response(id, &Response::Pong, &mut out);
                        stream.write_all(&out).await.unwrap();
                    }
                    if stream.read_buf(&mut buf).await.unwrap() == 0 {
                        return;
                    }
                }
            });
        }
    }

    /// Pings `client` from a thread of its own, with a runtime of its own,
    /// its calls on `lane`.
    fn ping_from_thread(client: &Client, lane: usize) {
        let client = client.clone();
        std::thread::spawn(move || {
            use_lane_on_this_thread(lane);
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                assert_eq!(client.call(Request::Ping).await.unwrap(), Response::Pong);
            });
        })
        .join()
        .unwrap();
    }

    /// A client with two lanes to a [`counting_peer`], and the count of
    /// connections that peer accepted.
    async fn two_lane_client() -> (Client, Arc<AtomicU64>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicU64::new(0));
        tokio::spawn(counting_peer(listener, accepted.clone()));
        let client = Client::new(
            addr.to_string(),
            ClientConfig {
                lanes: 2,
                ..ClientConfig::default()
            },
        );
        (client, accepted)
    }

    // Multi-threaded: the peer and lane 0's tasks run while this thread
    // waits for the others.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_lane_has_a_connection_of_its_own_and_a_lane_past_the_last_uses_the_first() {
        let (client, accepted) = two_lane_client().await;
        // This thread is on lane 0.
        assert_eq!(client.call(Request::Ping).await.unwrap(), Response::Pong);
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        // Lane 1, from a thread whose runtime then stops: the connection
        // its call opened is that runtime's, and lane 0's is untouched.
        ping_from_thread(&client, 1);
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        // Lane 7 of a client with two lanes: lane 0's connection, live.
        assert_eq!(client.call(Request::Ping).await.unwrap(), Response::Pong);
        ping_from_thread(&client, 7);
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        // Every lane's frames count: lane 0's three and lane 1's one.
        assert_eq!(client.write_counts().frames, 4);
    }

    /// A lane's connection has its tasks on the runtime of the call that
    /// opened it: once that runtime is gone, the connection is dead though
    /// nothing marked it so. The lane's next call, from a live runtime,
    /// must open a new connection rather than fail on the dead one (no
    /// byte of it was sent, so going again is safe).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lane_whose_runtime_stopped_connects_again_on_its_next_call() {
        let (client, accepted) = two_lane_client().await;
        ping_from_thread(&client, 1);
        ping_from_thread(&client, 1);
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn new_needs_no_runtime() {
        let client = Client::new("127.0.0.1:1", ClientConfig::default());
        assert_eq!(client.addr(), "127.0.0.1:1");
        drop(client.clone());
    }
}
