//! Redis's data commands over the cluster: the executor both command front
//! ends (`POST /` and the RESP listener) call.
//!
//! - [`Master::run_command`] runs one argument vector and answers with its
//!   [`Reply`]; [`Master::run_transaction`] runs a MULTI block's queued
//!   commands as one atomic batch (EXEC's answer).
//! - [`CommandSession`] keeps one client's MULTI/EXEC and WATCH state in
//!   front of them; WATCH reads versions with [`Master::watch_keys`]
//!   ([`watch`]).
//!
//! A front end resolves the command in the table
//! (`distcache_core::command::table::resolve`), checks that the caller's
//! role is at least `spec.role()`, then hands the arguments to a session.
//!
//! How a command reaches the data ([`plan`]):
//!
//! - Keys that share their replicas (always so for one key, and for keys
//!   with the same `{hash tag}`): the command runs at their leader, which
//!   answers with the reply and the changes; the changes go to the other
//!   replicas ([`leader`]).
//! - MGET, MSET, DEL, UNLINK, EXISTS and TOUCH over keys on different
//!   nodes: split per node, answers put back together.
//! - Other read-only commands over keys on different nodes (SINTER,
//!   SUNION, SDIFF, SINTERCARD): the values are read from their replicas
//!   and the command runs here, on a copy.
//! - Any other command over keys on different nodes, and a transaction
//!   whose keys are on different nodes: `CROSSSLOT`, as Redis Cluster
//!   answers.
//! - KEYS, SCAN, DBSIZE and RANDOMKEY ask every auxiliary ([`everywhere`]);
//!   so does FLUSHALL (and FLUSHDB), at one version from this master's
//!   clock, which each auxiliary raises above every key it deletes.
//!
//! A pipeline ([`Master::run_pipeline`]) sends the commands bound for one
//! leader together, in one frame ([`pipeline`]).

mod everywhere;
mod leader;
mod pipeline;
mod plan;
mod session;
mod watch;

use std::sync::Arc;

use bytes::Bytes;
use distcache_core::command::{CommandError, Reply};
use distcache_core::store::Watched;

pub use pipeline::{Answer, Piped};
pub use plan::WATCH_NEEDS_RESP;
pub use session::CommandSession;

use super::Master;
use crate::http::ApiError;

impl Master {
    /// Runs one command (any data command of the table; MULTI, EXEC and
    /// DISCARD belong to a [`CommandSession`]) and answers with its reply.
    pub async fn run_command(self: &Arc<Self>, args: Vec<Bytes>) -> Reply {
        self.command(args).await.unwrap_or_else(error_reply)
    }

    /// As [`Master::run_command`], with how many replicas beyond the
    /// leader a write reached before its answer: `Some(n)` for a write
    /// that ran at one leader (`n` = its live replicas less the leader
    /// under `WRITE_QUORUM=all`, 0 under `one`), `Some(0)` for a write
    /// split over several nodes, `None` for anything else (reads, errors
    /// before any node was asked, FLUSHALL). WAIT answers with it.
    pub async fn run_command_reached(self: &Arc<Self>, args: Vec<Bytes>) -> (Reply, Option<usize>) {
        match self.command_reached(args).await {
            Ok(answer) => answer,
            Err(e) => (error_reply(e), None),
        }
    }

    /// Runs a transaction's queued commands atomically and answers with
    /// EXEC's array of replies, or nil (`Reply::NullArray`) when a key of
    /// `watched` (WATCH's, see [`Master::watch_keys`]) changed since it
    /// was watched: then nothing ran.
    pub async fn run_transaction(
        self: &Arc<Self>,
        queued: Vec<Vec<Bytes>>,
        watched: Vec<(Bytes, Watched)>,
    ) -> Reply {
        self.transaction(queued, watched)
            .await
            .unwrap_or_else(error_reply)
    }
}

/// A cluster-side failure, as a command's error reply: `CLUSTERDOWN` when no
/// replica could serve (Redis Cluster's word for it), `ERR` otherwise.
pub(super) fn error_reply(e: ApiError) -> Reply {
    let line = format!("{}: {}", e.code, e.message);
    Reply::Error(if e.status == axum::http::StatusCode::SERVICE_UNAVAILABLE {
        CommandError::ClusterDown(line)
    } else {
        CommandError::Relayed(format!("ERR {line}"))
    })
}

/// What a command at one leader counts for WAIT: the replicas its changes
/// reached if it is a write that did not fail. A write answered with an
/// error changed nothing (a syntax error, WRONGTYPE), so, as in Redis,
/// WAIT after it still answers for the writes before it.
pub(super) fn counted_write(write: bool, reply: &Reply, reached: usize) -> Option<usize> {
    (write && !reply.is_error()).then_some(reached)
}

/// Whether `name` (a command of the table) asks every auxiliary.
pub(super) fn runs_everywhere(name: &str) -> bool {
    matches!(
        name,
        "keys" | "scan" | "dbsize" | "randomkey" | "flushall" | "flushdb"
    )
}

/// Redis Cluster's error for keys that must be together and are not.
pub(super) fn crossslot() -> Reply {
    Reply::Error(CommandError::CrossSlot)
}
