//! The openraft type configuration, generic over the replicated state.
//!
//! openraft's `declare_raft_types!` declares a concrete type, so the
//! configuration is written out by hand here to take `S` as a parameter.
//! openraft asks a configuration to be `Copy + Ord + Default + ...`, which
//! the marker is whatever `S` is: the traits are implemented without
//! bounds on `S` (a derive would ask `S: Copy` and so on).

use std::cmp::Ordering;
use std::fmt;
use std::marker::PhantomData;

use openraft::RaftTypeConfig;

use super::Replicated;

/// The type configuration of a Raft group replicating `S`.
pub struct RaftTypes<S>(PhantomData<fn() -> S>);

impl<S> fmt::Debug for RaftTypes<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RaftTypes")
    }
}

impl<S> Clone for RaftTypes<S> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<S> Copy for RaftTypes<S> {}

impl<S> Default for RaftTypes<S> {
    fn default() -> Self {
        RaftTypes(PhantomData)
    }
}

impl<S> PartialEq for RaftTypes<S> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl<S> Eq for RaftTypes<S> {}

impl<S> PartialOrd for RaftTypes<S> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<S> Ord for RaftTypes<S> {
    fn cmp(&self, _: &Self) -> Ordering {
        Ordering::Equal
    }
}

impl<S: Replicated> RaftTypeConfig for RaftTypes<S> {
    type D = S::Event;
    type R = S::Output;
    type NodeId = NodeId;
    type Node = openraft::BasicNode;
    type Entry = openraft::Entry<Self>;
    // `generic-snapshot-data`: a snapshot is the state itself, sent whole.
    type SnapshotData = S;
    type AsyncRuntime = openraft::TokioRuntime;
    type Responder = openraft::impls::OneshotResponder<Self>;
}

/// A master's id in the Raft group (see [`super::node_id`]).
pub type NodeId = u64;
/// A log id.
pub type LogId = openraft::LogId<NodeId>;
/// A vote.
pub type Vote = openraft::Vote<NodeId>;
/// A log entry.
pub type Entry<S> = openraft::Entry<RaftTypes<S>>;
/// The membership as stored with the state.
pub type StoredMembership = openraft::StoredMembership<NodeId, openraft::BasicNode>;
/// A snapshot's description.
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, openraft::BasicNode>;
/// openraft's storage error.
pub type StorageError = openraft::StorageError<NodeId>;
/// The running Raft node.
pub type Raft<S> = openraft::Raft<RaftTypes<S>>;
