//! The client side of the Raft RPCs: one reqwest client per node (its
//! connection pool shared by every peer), the cluster secret on every call,
//! a timeout on every call, and transport failures sorted the way openraft
//! wants them (unreachable: back off; timed out; other: retry).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{
    Fatal, NetworkError, RPCError, RaftError, RemoteError, ReplicationClosed, StreamingError,
    Timeout, Unreachable,
};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{BasicNode, RPCTypes, RaftNetwork, RaftNetworkFactory, Snapshot};
use serde::Serialize;
use serde::de::DeserializeOwned;
use thiserror::Error;

use super::Replicated;
use super::routes::{APPEND_PATH, SNAPSHOT_PATH, SnapshotRequest, VOTE_PATH};
use super::types::{NodeId, RaftTypes, Vote};
use crate::security::base_url;
use crate::security::secret::Credentials;

/// Why a call to another master failed.
#[derive(Debug, Error)]
pub enum CallError {
    /// No connection could be made: nothing was sent.
    #[error("{url}: unreachable: {source}")]
    Unreachable {
        /// The URL called.
        url: String,
        /// The failure.
        source: reqwest::Error,
    },
    /// No answer within the timeout: the request may have been handled.
    #[error("{url}: no answer within {timeout_ms} ms")]
    TimedOut {
        /// The URL called.
        url: String,
        /// The timeout.
        timeout_ms: u64,
    },
    /// The connection failed after the request may have been sent, or the
    /// answer did not decode.
    #[error("{url}: {source}")]
    Transport {
        /// The URL called.
        url: String,
        /// The failure.
        source: reqwest::Error,
    },
    /// The peer refused the call.
    #[error("{url}: answered {status}: {body}")]
    Status {
        /// The URL called.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The start of the answer's body.
        body: String,
    },
}

/// What every call to another master shares: the client and credentials.
#[derive(Clone, Debug)]
pub struct Peers {
    /// The HTTP client (with `TLS_CA` trusted).
    pub client: reqwest::Client,
    /// The secret presented on each call.
    pub credentials: Arc<Credentials>,
}

impl Peers {
    /// POSTs `body` as JSON to `addr` + `path` and decodes the JSON answer.
    pub async fn post<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        addr: &str,
        path: &str,
        body: &Req,
        timeout: Duration,
    ) -> Result<Resp, CallError> {
        let url = format!("{}{path}", base_url(addr));
        let classify = |source: reqwest::Error, url: &str| {
            if source.is_timeout() {
                CallError::TimedOut {
                    url: url.to_string(),
                    timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
                }
            } else if source.is_connect() {
                CallError::Unreachable {
                    url: url.to_string(),
                    source,
                }
            } else {
                CallError::Transport {
                    url: url.to_string(),
                    source,
                }
            }
        };
        let request = self
            .credentials
            .sign(self.client.post(&url))
            .timeout(timeout)
            .json(body);
        let resp = request.send().await.map_err(|e| classify(e, &url))?;
        let status = resp.status();
        if !status.is_success() {
            let body: String = resp
                .text()
                .await
                .unwrap_or_default()
                .chars()
                .take(512)
                .collect();
            return Err(CallError::Status {
                url,
                status: status.as_u16(),
                body,
            });
        }
        resp.json().await.map_err(|e| classify(e, &url))
    }
}

/// Makes a [`PeerClient`] for each peer openraft replicates to.
pub struct Network {
    /// The shared client.
    pub peers: Peers,
    /// This node's id, for openraft's timeout errors.
    pub from: NodeId,
}

/// Raft RPCs to one peer.
pub struct PeerClient {
    peers: Peers,
    addr: String,
    from: NodeId,
    target: NodeId,
}

impl<S: Replicated> RaftNetworkFactory<RaftTypes<S>> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerClient {
        PeerClient {
            peers: self.peers.clone(),
            addr: node.addr.clone(),
            from: self.from,
            target,
        }
    }
}

impl PeerClient {
    /// One RPC whose answer is openraft's `Result<T, E>` from the peer.
    async fn call<Req: Serialize, T: DeserializeOwned, E>(
        &self,
        action: RPCTypes,
        path: &str,
        body: &Req,
        timeout: Duration,
    ) -> Result<T, RPCError<NodeId, BasicNode, E>>
    where
        E: std::error::Error + DeserializeOwned,
    {
        let answer: Result<T, E> = self
            .peers
            .post(&self.addr, path, body, timeout)
            .await
            .map_err(|e| self.rpc_error(action, timeout, e))?;
        answer.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }

    fn rpc_error<E: std::error::Error>(
        &self,
        action: RPCTypes,
        timeout: Duration,
        e: CallError,
    ) -> RPCError<NodeId, BasicNode, E> {
        match e {
            CallError::Unreachable { .. } => RPCError::Unreachable(Unreachable::new(&e)),
            CallError::TimedOut { .. } => RPCError::Timeout(Timeout {
                action,
                id: self.from,
                target: self.target,
                timeout,
            }),
            CallError::Transport { .. } | CallError::Status { .. } => {
                RPCError::Network(NetworkError::new(&e))
            }
        }
    }
}

impl<S: Replicated> RaftNetwork<RaftTypes<S>> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<RaftTypes<S>>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.call(
            RPCTypes::AppendEntries,
            APPEND_PATH,
            &rpc,
            option.hard_ttl(),
        )
        .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.call(RPCTypes::Vote, VOTE_PATH, &rpc, option.hard_ttl())
            .await
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot<RaftTypes<S>>,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<NodeId>, StreamingError<RaftTypes<S>, Fatal<NodeId>>> {
        let body = SnapshotRequest::<S> {
            vote,
            meta: snapshot.meta,
            state: *snapshot.snapshot,
        };
        let call = self.call::<_, SnapshotResponse<NodeId>, Fatal<NodeId>>(
            RPCTypes::InstallSnapshot,
            SNAPSHOT_PATH,
            &body,
            option.hard_ttl(),
        );
        let result = tokio::select! {
            closed = cancel => return Err(StreamingError::Closed(closed)),
            result = call => result,
        };
        result.map_err(|e| match e {
            RPCError::Timeout(e) => StreamingError::Timeout(e),
            RPCError::Unreachable(e) => StreamingError::Unreachable(e),
            RPCError::Network(e) => StreamingError::Network(e),
            RPCError::RemoteError(e) => StreamingError::RemoteError(e),
            RPCError::PayloadTooLarge(e) => StreamingError::Network(NetworkError::new(&e)),
        })
    }
}
