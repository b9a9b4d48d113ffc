//! Consensus among the masters: one replicated value (the cluster map),
//! agreed through Raft with [openraft](https://docs.rs/openraft/0.9).
//!
//! This module knows nothing about the cluster map itself. It replicates any
//! value that implements [`Replicated`]: a deterministic state with
//! `apply(event) -> output`. Every master applies the same committed events
//! in the same order, so every master holds the same value at the same log
//! index.
//!
//! # Layout
//!
//! - [`config`]: [`ConsensusConfig`], its named defaults, and the node ids
//!   every master derives from the static list of master addresses.
//! - `types`: the openraft type configuration, generic over the state.
//! - `record`: the on-disk framing (magic, version, length, CRC-32) the log,
//!   vote and snapshot files share.
//! - `log_store`: the Raft log and the vote, in memory and, with a data
//!   directory, on disk.
//! - `state_machine`: applies committed events to the state, publishes every
//!   applied state, builds and installs snapshots.
//! - `network`: the HTTP client side of the Raft RPCs (reqwest).
//! - [`routes`]: the HTTP server side, `/internal/raft/...` ([`router`]).
//! - `node`: [`Consensus`], the handle a master holds: start, propose,
//!   watch the applied state, metrics, shutdown.
//!
//! # How a master uses it
//!
//! ```text
//! let consensus = Consensus::<ClusterMap>::start(ConsensusConfig {
//!     data_dir: Some(raft_dir), ..ConsensusConfig::new(own_addr, master_peers, credentials)
//! }).await?;
//! let app = master_router.merge(consensus::router(&consensus));   // /internal/raft/*
//! let mut applied = consensus.applied();                           // route by this
//! consensus.propose(Event::Registered { .. }).await?;              // from any master
//! ...
//! consensus.shutdown().await;                                      // before the listener closes
//! ```
//!
//! - **Routing** reads `applied().borrow()`: the latest state this master has
//!   applied and its log index. A master cut off from the majority keeps its
//!   last applied state (and, with a data directory, gets it back at start
//!   before any election), so it keeps serving data by it; it cannot change it.
//! - **Changes** go through [`Consensus::propose`] on any master. A follower
//!   forwards the event to the leader over HTTP (`/internal/raft/propose`),
//!   and follows a change of leader, until the propose timeout; the caller
//!   gets the leader's `S::Output` once the event is committed and applied
//!   on the leader. [`Consensus::is_leader`] (cheap, local) and
//!   [`Consensus::confirm_leadership`] (a heartbeat round, false for a leader
//!   cut off from the majority) tell a master whether it is the one that
//!   should make health verdicts and drive rebalancing.
//! - **Events must be idempotent or carry enough to be deduplicated by the
//!   state.** A [`ProposeError::Unknown`] (a timeout after the event was
//!   handed to a leader) means it may still commit later; the caller may
//!   retry, and then the event may apply twice.
//!
//! # Cluster formation and fault tolerance
//!
//! Every master is configured with the addresses of all masters
//! (`MASTER_PEERS` plus its own). A node's id is the xxh3-64 hash of its
//! normalized address ([`node_id`]), so every master derives the same
//! membership from the same list and an id does not change when the list is
//! reordered. Each master that finds its storage pristine calls openraft's
//! `initialize` with all of them; openraft documents that several nodes
//! initializing with the same membership is safe, and a node that is already
//! part of a cluster answers `NotAllowed`, which we ignore. So formation needs
//! no manual step and does not wait for one particular master.
//!
//! A cluster of `n` masters commits while a majority, `n / 2 + 1`, is up and
//! connected: one master forms a one-node cluster at once; three tolerate
//! the loss of any one; **two tolerate none** (a majority of two is two: with
//! either one down the map cannot change, though both keep routing by the map
//! they applied). Changing the set of masters needs a Raft membership change,
//! which this module does not do yet: the list must be the same on every
//! master.
//!
//! # Durability
//!
//! With `data_dir` set, the log, the vote and the latest snapshot are on
//! disk (see `log_store` and `state_machine` for the formats); a full restart
//! of every master brings the state back from the disks. Without it
//! everything is in memory: a restarted master joins as a new empty node and
//! catches up from the leader, and a full restart of every master loses the
//! state (the caller then rebuilds it, e.g. from re-registrations).
//! A node whose files are damaged refuses to start with an error that names
//! the file: a Raft node that forgets a vote or an acknowledged entry can
//! break the agreement. Moving the directory aside lets it start empty and
//! catch up from the others.

pub mod config;
mod log_store;
mod network;
mod node;
mod record;
pub mod routes;
mod state_machine;
mod types;

#[cfg(test)]
mod tests;

use std::fmt::Debug;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use config::{ConfigError, ConsensusConfig, node_id};
pub use network::{CallError, Peers};
pub use node::{Consensus, ConsensusMetrics, ProposeError, Role, StartError};
pub use routes::router;

/// A value the masters replicate: the cluster map, or a toy state in tests.
///
/// The implementation MUST be deterministic: `apply` may depend only on the
/// value and the event (no clock, no randomness, no I/O), because every
/// master applies the same events and must reach the same value. It must not
/// panic on any event, since an event that panics would stop every master.
pub trait Replicated:
    Clone + Default + Debug + Serialize + DeserializeOwned + Send + Sync + 'static
{
    /// A proposed change.
    type Event: Clone + Debug + Serialize + DeserializeOwned + Send + Sync + 'static;
    /// What applying an event returns to its proposer.
    type Output: Clone + Debug + Default + Serialize + DeserializeOwned + Send + Sync + 'static;

    /// Applies one committed event.
    fn apply(&mut self, event: Self::Event) -> Self::Output;
}

/// A state as applied by this master, published after every batch of
/// committed entries it applies.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied<S> {
    /// The state.
    pub state: S,
    /// The Raft log index of the last entry applied to it; `None` before the
    /// first one (the cluster's founding membership entry is index 0).
    pub index: Option<u64>,
}
