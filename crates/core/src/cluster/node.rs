//! One auxiliary as the cluster map records it.

use serde::{Deserialize, Serialize};

/// An auxiliary's id: unique and stable across restarts (`NODE_ID`).
pub type NodeId = String;

/// The most bytes in a node id.
pub const MAX_NODE_ID_BYTES: usize = 255;

/// An auxiliary's state in the map.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    /// Registered (or restarted), not yet judged healthy: not in the target
    /// ring.
    Joining,
    /// Judged healthy: in the target ring.
    Up,
    /// Judged unhealthy: not in the target ring.
    Down,
    /// Being decommissioned: not in the target ring; removed once it has
    /// handed its keys over.
    Leaving,
}

/// What the map knows of one auxiliary.
///
/// The map hands out only shared references, so it alone keeps these
/// fields consistent: `Up` implies `answering`; `answering` implies a known
/// `data_addr` and a state of `Up` or `Leaving`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// The node's id.
    pub id: NodeId,
    /// Its HTTP `host:port` (health, metrics, control routes).
    pub addr: String,
    /// Its data-protocol `host:port`, once known (from its registration or
    /// a health verdict).
    pub data_addr: Option<String>,
    /// Joining, up, down or leaving.
    pub state: NodeState,
    /// The running process's incarnation, if it said. A decommissioned
    /// incarnation may not register again.
    pub incarnation: Option<u64>,
    /// The leader's last verdict on it was healthy. Only a leaving node
    /// needs this beside its state: it hands its keys over only while it
    /// answers.
    pub answering: bool,
}

impl Node {
    /// True for a node whose copies can be read and sent: up, or leaving
    /// and still answering. Only live nodes are sources of a round.
    pub fn is_live(&self) -> bool {
        self.answering
    }
}

/// A member of the ring keys move to: its id and where to send them.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Member {
    /// The node's id.
    pub id: NodeId,
    /// Its data-protocol `host:port`.
    pub data_addr: String,
}

/// Whether `id` may name a node: 1 to [`MAX_NODE_ID_BYTES`] bytes with no
/// control characters (a ring's epoch joins member ids with `'\n'`).
pub(super) fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_NODE_ID_BYTES && !id.chars().any(char::is_control)
}

/// Whether `addr` may be an address: non-empty, with no whitespace or
/// control characters. The edge checks `host:port` in full; the engine
/// only refuses what could never be one.
pub(super) fn valid_addr(addr: &str) -> bool {
    !addr.is_empty() && !addr.chars().any(|c| c.is_control() || c.is_whitespace())
}
