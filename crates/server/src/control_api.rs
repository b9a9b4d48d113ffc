//! The auxiliaries' control routes as both roles see them: the request
//! and report types a master sends to an auxiliary's `/internal/*` routes
//! and `/health`, declared once here so that neither role imports the
//! other.

use serde::{Deserialize, Serialize};

/// One member of the ring the keys move to.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq, Hash)]
pub struct Member {
    /// Node id.
    pub id: String,
    /// Its data-protocol address.
    pub data_addr: String,
}

/// A ring as a master describes it.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq, Hash)]
pub struct RingSpec<M> {
    /// The members.
    pub members: Vec<M>,
    /// Copies of each key.
    pub replicas: usize,
}

/// What a master asks for.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq, Hash)]
pub struct HandoffRequest {
    /// The ring whose copies are in place; `None` when unknown (every copy
    /// is re-placed).
    pub from: Option<RingSpec<String>>,
    /// The ring that should hold the copies.
    pub to: RingSpec<Member>,
    /// Nodes that hold copies and can send them (live members of `from`).
    pub sources: Vec<String>,
    /// Ring points per member.
    pub vnodes: u32,
    /// The map epoch of the round the handoff belongs to (0: none). A
    /// source raises its epoch fence to it before it copies anything, so
    /// that a write routed by an older map (a master that has not applied
    /// this one yet) is refused from then on rather than landing behind
    /// the copies, on a node about to stop owning the key. Absent from an
    /// older master's request.
    #[serde(default)]
    pub epoch: u64,
}

/// What a handoff did.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct HandoffReport {
    /// Live entries looked at.
    pub scanned: u64,
    /// Copies sent to other nodes.
    pub sent: u64,
    /// Copies the receivers stored (they did not have them): keys moved.
    pub moved: u64,
    /// Local copies dropped after their new owners had them.
    pub dropped: u64,
    /// Tombstones sent.
    pub tombstones_sent: u64,
    /// Wall time of the pass.
    pub duration_ms: u64,
}

/// What a master reads of an auxiliary's `/health`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct AuxHealth {
    /// The node's id.
    pub node_id: String,
    /// Its data-protocol address.
    pub data_addr: String,
    /// The process's incarnation, if it says.
    pub incarnation: Option<u64>,
    /// Items held.
    #[serde(default)]
    pub items: u64,
    /// Bytes of keys and values held.
    #[serde(default)]
    pub bytes: u64,
}
