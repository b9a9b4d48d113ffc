//! What a master needs to join the consensus: its address, every other
//! master's address, where to keep the log, and the timings, with named
//! defaults; and the node ids derived from the addresses.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use openraft::BasicNode;
use thiserror::Error;

use super::types::NodeId;
use crate::security::secret::Credentials;
use crate::security::{base_url, is_node_address};

/// Default interval between the leader's heartbeats. openraft also uses it
/// as the timeout of each append-entries call, so it leaves room for an
/// fsync on the follower.
pub const DEFAULT_HEARTBEAT_INTERVAL_MS: u64 = 300;
/// Default lower bound of the election timeout: five heartbeats, so one or
/// two slow answers on a busy machine do not start an election.
pub const DEFAULT_ELECTION_TIMEOUT_MIN_MS: u64 = 1_500;
/// Default upper bound of the election timeout. The random spread between
/// the bounds keeps two masters from standing for election in step.
pub const DEFAULT_ELECTION_TIMEOUT_MAX_MS: u64 = 3_000;
/// Default time `propose` waits for an event to be committed, following
/// leader changes, before it gives up.
pub const DEFAULT_PROPOSE_TIMEOUT_MS: u64 = 5_000;
/// Default timeout of sending a whole snapshot to a follower.
pub const DEFAULT_SNAPSHOT_TIMEOUT_MS: u64 = 10_000;
/// Default number of applied entries after which a snapshot is taken and
/// the log before it purged.
pub const DEFAULT_SNAPSHOT_EVERY_ENTRIES: u64 = 1_000;

/// Why a consensus configuration is unusable.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    /// An address is not `host:port` (optionally with a scheme).
    #[error("{addr:?} is not a master address (host:port, optionally with http:// or https://)")]
    BadAddress {
        /// The address.
        addr: String,
    },
    /// Two different addresses hash to the same node id.
    #[error("the master addresses {first:?} and {second:?} have the same node id {id}")]
    IdCollision {
        /// One address.
        first: String,
        /// The other.
        second: String,
        /// The id both have.
        id: NodeId,
    },
    /// The timings do not fit together.
    #[error("bad consensus timings: {reason}")]
    Timings {
        /// What is wrong.
        reason: &'static str,
    },
}

/// How to run one master's consensus node.
#[derive(Clone, Debug)]
pub struct ConsensusConfig {
    /// This master's address, spelled as in the other masters' lists.
    pub addr: String,
    /// Every master's address (`MASTER_PEERS`); this master's own may be in
    /// it or not. Every master must be given the same set.
    pub peers: Vec<String>,
    /// Where the log, the vote and the snapshot are kept (`RAFT_DIR`);
    /// `None` keeps them in memory only.
    pub data_dir: Option<PathBuf>,
    /// The leader's heartbeat interval, also each append's RPC timeout.
    pub heartbeat_interval_ms: u64,
    /// Election timeout, lower bound.
    pub election_timeout_min_ms: u64,
    /// Election timeout, upper bound.
    pub election_timeout_max_ms: u64,
    /// How long `propose` may take in all.
    pub propose_timeout_ms: u64,
    /// Timeout of sending a snapshot.
    pub snapshot_timeout_ms: u64,
    /// Applied entries between snapshots.
    pub snapshot_every_entries: u64,
    /// The cluster secret presented on every call to another master.
    pub credentials: Arc<Credentials>,
    /// Extra CA certificates (`TLS_CA`) for `https://` peers.
    pub tls_ca: Option<PathBuf>,
}

impl ConsensusConfig {
    /// A configuration with the default timings, kept in memory.
    pub fn new(addr: impl Into<String>, peers: Vec<String>, credentials: Arc<Credentials>) -> Self {
        ConsensusConfig {
            addr: addr.into(),
            peers,
            data_dir: None,
            heartbeat_interval_ms: DEFAULT_HEARTBEAT_INTERVAL_MS,
            election_timeout_min_ms: DEFAULT_ELECTION_TIMEOUT_MIN_MS,
            election_timeout_max_ms: DEFAULT_ELECTION_TIMEOUT_MAX_MS,
            propose_timeout_ms: DEFAULT_PROPOSE_TIMEOUT_MS,
            snapshot_timeout_ms: DEFAULT_SNAPSHOT_TIMEOUT_MS,
            snapshot_every_entries: DEFAULT_SNAPSHOT_EVERY_ENTRIES,
            credentials,
            tls_ca: None,
        }
    }

    /// Checks the settings and derives the membership: this node's id and
    /// every master by id.
    pub fn members(&self) -> Result<(NodeId, BTreeMap<NodeId, BasicNode>), ConfigError> {
        if self.heartbeat_interval_ms == 0 {
            return Err(ConfigError::Timings {
                reason: "the heartbeat interval must be positive",
            });
        }
        if self.election_timeout_min_ms <= self.heartbeat_interval_ms {
            return Err(ConfigError::Timings {
                reason: "the election timeout must be longer than the heartbeat interval",
            });
        }
        if self.election_timeout_max_ms <= self.election_timeout_min_ms {
            return Err(ConfigError::Timings {
                reason: "the election timeout's upper bound must exceed its lower bound",
            });
        }
        if self.propose_timeout_ms == 0 || self.snapshot_timeout_ms == 0 {
            return Err(ConfigError::Timings {
                reason: "the propose and snapshot timeouts must be positive",
            });
        }
        let mut members: BTreeMap<NodeId, BasicNode> = BTreeMap::new();
        for addr in std::iter::once(&self.addr).chain(&self.peers) {
            if !is_node_address(addr) {
                return Err(ConfigError::BadAddress { addr: addr.clone() });
            }
            let normalized = base_url(addr);
            let id = node_id(addr);
            match members.get(&id) {
                Some(known) if known.addr != normalized => {
                    return Err(ConfigError::IdCollision {
                        first: known.addr.clone(),
                        second: normalized,
                        id,
                    });
                }
                Some(_) => {}
                None => {
                    members.insert(id, BasicNode::new(normalized));
                }
            }
        }
        Ok((node_id(&self.addr), members))
    }
}

/// The node id of the master at `addr`: the xxh3-64 hash of its base URL
/// (`host:port` and `http://host:port` are the same master). Every master
/// computes the same ids from the same addresses, in any order.
pub fn node_id(addr: &str) -> NodeId {
    xxhash_rust::xxh3::xxh3_64(base_url(addr).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(addr: &str, peers: &[&str]) -> ConsensusConfig {
        ConsensusConfig::new(
            addr,
            peers.iter().map(|p| p.to_string()).collect(),
            Arc::new(Credentials { secret: None }),
        )
    }

    #[test]
    fn every_master_derives_the_same_membership_from_the_same_addresses() {
        let addrs = ["m1:7000", "m2:7000", "http://m3:7000"];
        let mut seen = Vec::new();
        for (i, me) in addrs.iter().enumerate() {
            let mut others: Vec<&str> = addrs.to_vec();
            others.remove(i);
            others.reverse();
            let (id, members) = config(me, &others).members().expect("valid");
            assert_eq!(id, node_id(me));
            seen.push(members);
        }
        assert!(seen.windows(2).all(|w| w[0] == w[1]));
        assert_eq!(seen[0].len(), 3);
        assert_eq!(node_id("m3:7000"), node_id("http://m3:7000/"));
        let with_self = config("m1:7000", &addrs).members().expect("valid");
        assert_eq!(
            with_self.1, seen[0],
            "listing oneself among the peers is fine"
        );
    }

    #[test]
    fn bad_addresses_and_timings_are_refused() {
        assert_eq!(
            config("m1:7000", &["nope"]).members().unwrap_err(),
            ConfigError::BadAddress {
                addr: "nope".into()
            }
        );
        let mut c = config("m1:7000", &[]);
        c.election_timeout_min_ms = c.heartbeat_interval_ms;
        assert!(matches!(c.members(), Err(ConfigError::Timings { .. })));
        let mut c = config("m1:7000", &[]);
        c.election_timeout_max_ms = c.election_timeout_min_ms;
        assert!(matches!(c.members(), Err(ConfigError::Timings { .. })));
        let (_, alone) = config("m1:7000", &[]).members().expect("valid");
        assert_eq!(alone.len(), 1);
    }
}
