//! Client side. STUB: to be implemented.

use std::time::Duration;

use crate::frame::{FrameError, Request, Response};

/// How a [`Client`] connects and waits.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Longest wait for connecting plus one request's answer.
    pub request_timeout: Duration,
    /// The cluster secret presented with `Hello` on every new connection;
    /// empty = none.
    pub secret: bytes::Bytes,
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
    /// The peer sent bytes that are not a frame.
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
#[derive(Clone, Debug)]
pub struct Client {
    addr: String,
}

impl Client {
    /// A client for `addr` (`host:port`); does not connect yet.
    pub fn new(addr: impl Into<String>, config: ClientConfig) -> Client {
        let _ = config;
        Client { addr: addr.into() }
    }
    /// The peer address.
    pub fn addr(&self) -> &str {
        &self.addr
    }
    /// Sends `req` and waits for its answer, at most the request timeout.
    pub async fn call(&self, req: Request) -> Result<Response, WireError> {
        let _ = req;
        todo!()
    }
}
