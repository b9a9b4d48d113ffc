//! What goes into the cluster map ([`Event`]), what comes out
//! ([`Applied`]: an outcome and the [`Command`]s the leader's runtime
//! carries out), and the rounds and handoffs those commands describe.

use serde::{Deserialize, Serialize};

use super::node::{Member, NodeId};

/// A change proposed to the cluster map: an entry of the replicated log.
///
/// Events carry everything they depend on (no clock, no randomness), so
/// every master that applies the same events ends with the same map.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// Sets the copies per key and ring points per member of a new cluster.
    /// Masters propose their settings when they start; only a map that has
    /// never held a node takes them (the first proposal committed wins), so
    /// a master started later with other settings cannot re-place every key
    /// behind the operator's back: it is refused, and the master says so.
    Configure {
        /// The proposed settings.
        config: super::ClusterConfig,
    },
    /// An auxiliary (or an operator, `POST /nodes`) registers a node.
    /// Idempotent: a registration that matches what the map holds changes
    /// nothing. A known node with a new address or incarnation is updated;
    /// a new incarnation of a node means its process restarted (it may
    /// have lost copies), so an up node goes back to joining until the
    /// next healthy verdict.
    Register {
        /// The node's id (the edge defaults it to `addr`).
        id: NodeId,
        /// HTTP `host:port`.
        addr: String,
        /// Data-protocol `host:port`, if the registration says.
        data_addr: Option<String>,
        /// The process's incarnation, if the registration says.
        incarnation: Option<u64>,
        /// The highest map epoch the node has seen, if it says. A map
        /// rebuilt from scratch (every master restarted without its Raft
        /// directory) starts its epochs past it, so that epochs only grow
        /// as auxiliaries see them and no master is fenced forever.
        seen_epoch: Option<u64>,
    },
    /// The leader's health verdict on a node, after its probes (the
    /// runtime counts failures, e.g. `FAILS_BEFORE_DOWN`, and proposes a
    /// verdict only when it differs from the map). Healthy brings a joining
    /// or down node up (into the target ring); unhealthy takes an up or
    /// joining node down (out of it). A leaving node stays leaving either
    /// way: the verdict only says whether it can still hand its keys over.
    Verdict {
        /// The node judged.
        id: NodeId,
        /// Whether it answered its probes as itself.
        healthy: bool,
        /// The data address its health answer gave, if any.
        data_addr: Option<String>,
        /// The HTTP address that was probed, if the verdict comes from a
        /// probe. A node that registered again at another address since
        /// (a restarted process) is not judged by a probe of its old one:
        /// such a verdict is stale and changes nothing.
        probed: Option<String>,
    },
    /// `DELETE /nodes/{id}`, or a graceful leave: a live node becomes
    /// leaving, leaves the target ring, and is removed once a round has
    /// moved its keys; a node that does not answer is removed at once. The
    /// last up node is never decommissioned while it answers: nobody could
    /// take its keys.
    Decommission {
        /// The node to remove.
        id: NodeId,
    },
    /// `POST /rebalance`: re-place every copy by the target ring (a full
    /// round), replacing any round in progress.
    Rebalance,
    /// Every source of round `round` reported its handoff done: the
    /// round's target becomes the committed ring, and the leaving nodes
    /// that handed over are removed.
    RoundFinished {
        /// The round's id, from [`Command::StartRound`].
        round: u64,
    },
    /// A source of round `round` failed its handoff (an error or a
    /// timeout): the round is given up and started again as a new round
    /// (with a higher [`Round::attempt`], so the runtime backs off).
    RoundFailed {
        /// The round's id, from [`Command::StartRound`].
        round: u64,
    },
}

/// What applying an event did: its outcome and the commands it asks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// Accepted (and how) or rejected (and why). A rejected event changed
    /// nothing and asks for nothing.
    pub outcome: Result<Accepted, Rejection>,
    /// What the leader's runtime must do, in order. Followers ignore them.
    pub commands: Vec<Command>,
}

/// How an accepted event changed the map.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Accepted {
    /// A registration added a node (`201 Created`).
    Added,
    /// The map changed.
    Changed,
    /// A decommission removed a node at once (it did not answer).
    Removed,
    /// Nothing to change: a repeated registration, verdict or decommission.
    Unchanged,
}

/// Why an event was refused. The map is exactly as it was before.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Rejection {
    /// No node has this id.
    #[error("no auxiliary with id {id:?}")]
    UnknownNode {
        /// The id asked for.
        id: NodeId,
    },
    /// The id cannot name a node.
    #[error("node id {id:?} must be 1 to 255 bytes without control characters")]
    BadId {
        /// The id given.
        id: NodeId,
    },
    /// The address cannot be one.
    #[error("address {addr:?} is not host:port")]
    BadAddr {
        /// The address given.
        addr: String,
    },
    /// This incarnation of the node was decommissioned (`410 Gone`); a
    /// restarted process may register again.
    #[error("node {id} was decommissioned; restart it to join again")]
    Decommissioned {
        /// The node's id.
        id: NodeId,
        /// The incarnation that was running when it was decommissioned.
        incarnation: u64,
    },
    /// The node is the last one up and answering (`409 Conflict`).
    #[error("{id} is the last auxiliary up: nobody could take its keys")]
    LastNode {
        /// The node's id.
        id: NodeId,
    },
    /// A healthy verdict on a node whose data address is unknown: it could
    /// not be routed to.
    #[error("node {id} has no known data address")]
    NoDataAddr {
        /// The node's id.
        id: NodeId,
    },
    /// A full round was asked for, but no auxiliary is up to take the keys.
    #[error("no auxiliary is up to take the keys")]
    NoAuxiliaries,
    /// The map already holds nodes under other settings.
    #[error(
        "the cluster runs with {current:?}; settings can only be set before the first node joins"
    )]
    Configured {
        /// The settings the map keeps.
        current: super::ClusterConfig,
    },
    /// A report about a round that is not the current one (it was
    /// superseded, or already finished).
    #[error("round {round} is not the current round ({current:?})")]
    StaleRound {
        /// The round reported on.
        round: u64,
        /// The current round's id, if any.
        current: Option<u64>,
    },
}

/// Work for the leader's runtime. Only the Raft leader carries commands
/// out; a new leader calls [`ClusterMap::resume`](super::ClusterMap::resume)
/// for the ones still in force.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// The node left the map: drop its connections and metric labels. Its
    /// process learns it from its next registration (`410 Gone`) and exits.
    Removed {
        /// The node's id.
        id: NodeId,
    },
    /// Probe this node now rather than at the next health tick (it is new,
    /// or its address or process changed).
    Probe {
        /// The node's id.
        id: NodeId,
    },
    /// The map's epoch grew: tell every answering auxiliary, so that it
    /// refuses data requests stamped with an older one.
    AnnounceEpoch {
        /// The new epoch.
        epoch: u64,
    },
    /// Best effort, after a commit: ask every member of the committed ring
    /// to run this handoff (committed ring to itself), handing over copies
    /// that writes left on former owners while keys moved. Nothing to
    /// report back; the next round covers what it misses.
    CleanUp(Handoff),
    /// Ask every source of the round for its handoff, then propose
    /// [`Event::RoundFinished`] once all of them succeeded or
    /// [`Event::RoundFailed`] as soon as one failed. Replaces any round in
    /// flight: its calls may be dropped, and reports about it are refused.
    StartRound(Round),
}

/// A rebalance round: one handoff asked of every source.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Round {
    /// Unique, increasing; reports name it.
    pub id: u64,
    /// 0 for a first try; `n` for the `n`-th try after failed ones: the
    /// runtime waits (doubling, capped) before starting it.
    pub attempt: u32,
    /// The map's epoch when the round started.
    pub epoch: u64,
    /// Every copy is re-placed (`from` is `None`), rather than only those
    /// whose replica set changed.
    pub full: bool,
    /// What every source is asked to do.
    pub handoff: Handoff,
}

/// One handoff, as each source runs it (the server's `HandoffRequest`):
/// from the ring whose copies are in place to the ring that should hold
/// them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handoff {
    /// Members of the ring whose copies are in place; `None` when copies
    /// may be anywhere (every copy is re-placed).
    pub from: Option<Vec<NodeId>>,
    /// Copies of each key in the `from` ring.
    pub from_replicas: usize,
    /// Members of the ring that should hold the copies, sorted by id.
    pub to: Vec<Member>,
    /// Copies of each key in the `to` ring.
    pub to_replicas: usize,
    /// The nodes that hold copies and answer: each is asked to hand off.
    /// Sorted.
    pub sources: Vec<NodeId>,
    /// Ring points per member.
    pub virtual_nodes: u32,
}

impl Handoff {
    /// The `to` ring's member ids, sorted.
    pub fn to_ids(&self) -> Vec<NodeId> {
        self.to.iter().map(|m| m.id.clone()).collect()
    }
}
