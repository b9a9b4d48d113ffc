//! The Raft RPCs between masters over HTTP: the routes a master mounts
//! ([`router`]) and the bodies both sides exchange.
//!
//! | route | body | answer (200, JSON) |
//! |---|---|---|
//! | `POST /internal/raft/append` | openraft's `AppendEntriesRequest` | `Result<AppendEntriesResponse, RaftError>` |
//! | `POST /internal/raft/vote` | openraft's `VoteRequest` | `Result<VoteResponse, RaftError>` |
//! | `POST /internal/raft/snapshot` | `{vote, meta, state}`: a whole snapshot | `Result<SnapshotResponse, Fatal>` |
//! | `POST /internal/raft/propose` | an event | `ProposeReply`: applied, or not the leader |
//!
//! openraft's own errors travel in a 200 answer, as its network contract
//! wants them (they are the remote node's verdict, not a transport
//! failure). A body that does not decode is a 400 in the usual JSON error
//! shape, and every route needs the cluster secret when one is set (401).
//! The router checks the secret itself, so it is safe whatever the master's
//! own access table says about `/internal/raft/*`.

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use openraft::raft::{AppendEntriesRequest, VoteRequest};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::Replicated;
use super::node::Consensus;
use super::types::{NodeId, RaftTypes, SnapshotMeta, Vote};
use crate::http::ApiError;

/// Path of the append-entries RPC.
pub const APPEND_PATH: &str = "/internal/raft/append";
/// Path of the vote RPC.
pub const VOTE_PATH: &str = "/internal/raft/vote";
/// Path of the whole-snapshot RPC.
pub const SNAPSHOT_PATH: &str = "/internal/raft/snapshot";
/// Path a follower forwards proposals to.
pub const PROPOSE_PATH: &str = "/internal/raft/propose";

/// Largest RPC body accepted. A snapshot is the whole cluster map, sent in
/// one body; this leaves it ample room while bounding what a caller can
/// make a master buffer.
pub const MAX_RPC_BODY_BYTES: usize = 64 << 20;

/// Why an RPC was refused before it reached Raft.
#[derive(Debug, Error)]
pub enum RouteError {
    /// The body is not what the route takes.
    #[error("the {route} body does not decode: {source}")]
    BadBody {
        /// The route.
        route: &'static str,
        /// The decoder's complaint.
        source: serde_json::Error,
    },
    /// The cluster secret is missing or wrong.
    #[error("raft routes need the cluster secret (x-distcache-secret)")]
    Unauthorized,
}

impl From<RouteError> for ApiError {
    fn from(e: RouteError) -> Self {
        match e {
            RouteError::BadBody { .. } => ApiError::bad_request("bad_raft_rpc", e.to_string()),
            RouteError::Unauthorized => {
                ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", e.to_string())
            }
        }
    }
}

/// A whole snapshot, as sent to a follower that is too far behind for the
/// log.
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
pub struct SnapshotRequest<S: Replicated> {
    /// The sender's vote: the follower checks it is still the leader's.
    pub vote: Vote,
    /// The snapshot's last log id and membership.
    pub meta: SnapshotMeta,
    /// The state at that point.
    pub state: S,
}

/// A master that leads, as one node names it to another.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderRef {
    /// Its node id.
    pub id: NodeId,
    /// Its address.
    pub addr: String,
}

/// What a master answers to a proposal it was asked to commit as leader.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(bound = "")]
pub enum ProposeReply<O: Serialize + DeserializeOwned> {
    /// Committed and applied at log `index`, giving `output`.
    Applied {
        /// What applying it returned.
        output: O,
        /// Its log index.
        index: u64,
    },
    /// This master does not lead; nothing was appended. `leader` is the one
    /// it knows of, if any.
    NotLeader {
        /// The leader it knows of.
        leader: Option<LeaderRef>,
    },
    /// Appended but not known to be committed within the timeout: it may
    /// still commit.
    TimedOut,
    /// The node is shutting down; the event may or may not have been
    /// appended.
    Stopped,
    /// Raft refused it for another reason.
    Rejected {
        /// Why.
        message: String,
    },
}

/// The `/internal/raft/*` routes of `consensus`, to merge into the master's
/// router.
pub fn router<S: Replicated>(consensus: &Consensus<S>) -> Router {
    Router::new()
        .route(APPEND_PATH, post(append::<S>))
        .route(VOTE_PATH, post(vote::<S>))
        .route(SNAPSHOT_PATH, post(snapshot::<S>))
        .route(PROPOSE_PATH, post(propose::<S>))
        .layer(DefaultBodyLimit::max(MAX_RPC_BODY_BYTES))
        .with_state(consensus.clone())
}

/// Checks the secret and decodes the body: everything a route does before
/// Raft sees the request.
fn admit<S: Replicated, T: DeserializeOwned>(
    consensus: &Consensus<S>,
    route: &'static str,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    if let Some(secret) = &consensus.credentials().secret {
        if !secret.presented_in(headers) {
            return Err(RouteError::Unauthorized.into());
        }
    }
    let body = body?;
    serde_json::from_slice(&body).map_err(|source| RouteError::BadBody { route, source }.into())
}

fn answer<T: Serialize>(value: &T) -> Response {
    axum::Json(value).into_response()
}

async fn append<S: Replicated>(
    State(consensus): State<Consensus<S>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match admit::<S, AppendEntriesRequest<RaftTypes<S>>>(&consensus, "append", &headers, body) {
        Ok(rpc) => answer(&consensus.raft().append_entries(rpc).await),
        Err(e) => e.into_response(),
    }
}

async fn vote<S: Replicated>(
    State(consensus): State<Consensus<S>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match admit::<S, VoteRequest<NodeId>>(&consensus, "vote", &headers, body) {
        Ok(rpc) => answer(&consensus.raft().vote(rpc).await),
        Err(e) => e.into_response(),
    }
}

async fn snapshot<S: Replicated>(
    State(consensus): State<Consensus<S>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match admit::<S, SnapshotRequest<S>>(&consensus, "snapshot", &headers, body) {
        Ok(req) => {
            let snapshot = openraft::Snapshot {
                meta: req.meta,
                snapshot: Box::new(req.state),
            };
            answer(
                &consensus
                    .raft()
                    .install_full_snapshot(req.vote, snapshot)
                    .await,
            )
        }
        Err(e) => e.into_response(),
    }
}

async fn propose<S: Replicated>(
    State(consensus): State<Consensus<S>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match admit::<S, S::Event>(&consensus, "propose", &headers, body) {
        Ok(event) => {
            let timeout = consensus.propose_timeout();
            answer(&consensus.write_here(event, timeout).await)
        }
        Err(e) => e.into_response(),
    }
}
