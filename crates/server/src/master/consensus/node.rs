//! [`Consensus`]: the handle a master holds on its Raft node.
//!
//! `propose` works on every master. It first offers the event to the local
//! Raft node; a follower's node answers "not the leader" without appending
//! anything, and the event is then forwarded over HTTP to the leader it
//! names, which commits it as its own proposal. While there is no leader (an
//! election) or the named one cannot be reached, it waits a little and asks
//! again, until the propose timeout. Retrying is safe exactly where nothing
//! can have been appended; where something may have been (a timeout after a
//! leader took the event), it stops with [`ProposeError::Unknown`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::{ClientWriteError, InitializeError, RaftError};
use openraft::{ServerState, SnapshotPolicy};
use thiserror::Error;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::config::{ConfigError, ConsensusConfig};
use super::log_store::{LogStore, LogStoreError};
use super::network::{CallError, Network, Peers};
use super::routes::{LeaderRef, PROPOSE_PATH, ProposeReply};
use super::state_machine::{SnapshotFileError, StateMachine};
use super::types::{NodeId, Raft};
use super::{Applied, Replicated};
use crate::security::secret::Credentials;

/// First pause before asking again for a leader; it doubles up to
/// [`MAX_RETRY_PAUSE`]. An election takes about one election timeout, so
/// polling faster than this only burns requests.
const FIRST_RETRY_PAUSE: Duration = Duration::from_millis(50);
/// Longest pause between two attempts of one proposal.
const MAX_RETRY_PAUSE: Duration = Duration::from_millis(500);

/// Why a consensus node could not start.
#[derive(Debug, Error)]
pub enum StartError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The log or the vote could not be loaded.
    #[error("raft log: {0}")]
    Log(#[from] LogStoreError),
    /// The snapshot could not be loaded.
    #[error("raft snapshot: {0}")]
    Snapshot(#[from] SnapshotFileError),
    /// The HTTP client could not be built.
    #[error("raft client: {message}")]
    Client {
        /// Why.
        message: String,
    },
    /// The data directory holds the state of a cluster this master is not
    /// a member of (another master's directory, or one copied from another
    /// cluster): joining with it could never elect a leader.
    #[error(
        "the raft directory {dir} belongs to a cluster of other masters ({members}); \
         move it aside to start this master afresh"
    )]
    ForeignState {
        /// The directory.
        dir: String,
        /// The members its state names.
        members: String,
    },
    /// openraft refused to start or to form the cluster.
    #[error("raft {step}: {message}")]
    Raft {
        /// What was being done.
        step: &'static str,
        /// openraft's error.
        message: String,
    },
}

/// Why a proposal did not give an output.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ProposeError {
    /// No leader took the event within the timeout (an election did not
    /// finish, or this master is cut off from the majority). Nothing was
    /// committed.
    #[error("no leader took the event within {waited_ms} ms")]
    NoLeader {
        /// How long it tried.
        waited_ms: u64,
    },
    /// A leader took the event but its commit was not confirmed in time: it
    /// may still commit (or may never).
    #[error("leader {leader} took the event but did not confirm its commit within {waited_ms} ms")]
    Unknown {
        /// The leader that took it.
        leader: NodeId,
        /// How long it tried.
        waited_ms: u64,
    },
    /// Raft refused the event.
    #[error("the leader refused the event: {message}")]
    Rejected {
        /// Why.
        message: String,
    },
    /// This node has shut down.
    #[error("this consensus node has shut down")]
    Stopped,
    /// This node does not lead (any more), and the event was its own
    /// leader's observation, which is not handed to another leader
    /// ([`Consensus::propose_as_leader`]). Nothing was committed.
    #[error("this master no longer leads; its own observations are not forwarded")]
    NotLeader,
}

/// A node's role in the Raft group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Not (yet) a voting member.
    Learner,
    /// Follows a leader.
    Follower,
    /// Standing for election.
    Candidate,
    /// Leads: commits proposals.
    Leader,
    /// Shut down.
    Shutdown,
}

/// A snapshot of a node's Raft metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsensusMetrics {
    /// This node's id.
    pub id: NodeId,
    /// Its role.
    pub role: Role,
    /// The current term.
    pub term: u64,
    /// The leader it knows of.
    pub leader: Option<NodeId>,
    /// That leader's address.
    pub leader_addr: Option<String>,
    /// Index of the last entry applied to the state.
    pub last_applied: Option<u64>,
    /// Index of the last entry in the log.
    pub last_log_index: Option<u64>,
    /// Every member, by id, with its address.
    pub members: BTreeMap<NodeId, String>,
}

struct Inner<S: Replicated> {
    id: NodeId,
    raft: Raft<S>,
    applied: watch::Receiver<Arc<Applied<S>>>,
    peers: Peers,
    propose_timeout: Duration,
}

/// A running consensus node replicating `S`. Clones share it.
pub struct Consensus<S: Replicated> {
    inner: Arc<Inner<S>>,
}

impl<S: Replicated> Clone for Consensus<S> {
    fn clone(&self) -> Self {
        Consensus {
            inner: Arc::clone(&self.inner),
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl<S: Replicated> Consensus<S> {
    /// Loads the node's log and snapshot (from `config.data_dir`, if set),
    /// starts its Raft node, and, if its storage is pristine, founds the
    /// cluster with every configured master. Returns at once: the leader is
    /// elected in the background. Serve [`super::router`] to let peers in.
    pub async fn start(config: ConsensusConfig) -> Result<Self, StartError> {
        let (id, members) = config.members()?;
        let (mut log, machine) = match &config.data_dir {
            Some(dir) => (LogStore::open(dir)?, StateMachine::open(Some(dir))?),
            None => (LogStore::in_memory(), StateMachine::open(None)?),
        };
        let pristine = {
            use openraft::storage::RaftLogStorage;
            let state = log.get_log_state().await.map_err(|e| StartError::Raft {
                step: "reading the log",
                message: e.to_string(),
            })?;
            state.last_log_id.is_none() && state.last_purged_log_id.is_none()
        };
        let applied = machine.subscribe();
        let client = crate::security::tls::client_builder(config.tls_ca.as_deref())
            .map_err(|e| StartError::Client {
                message: e.to_string(),
            })?
            .build()
            .map_err(|e| StartError::Client {
                message: e.to_string(),
            })?;
        let peers = Peers {
            client,
            credentials: Arc::clone(&config.credentials),
        };
        let raft_config = openraft::Config {
            cluster_name: "distcache-masters".into(),
            heartbeat_interval: config.heartbeat_interval_ms,
            election_timeout_min: config.election_timeout_min_ms,
            election_timeout_max: config.election_timeout_max_ms,
            install_snapshot_timeout: config.snapshot_timeout_ms,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_every_entries.max(1)),
            // The state is small: a follower that missed the entries before
            // a snapshot gets the snapshot, as cheap as a few entries.
            max_in_snapshot_log_to_keep: 0,
            ..Default::default()
        }
        .validate()
        .map_err(|e| StartError::Raft {
            step: "configuration",
            message: e.to_string(),
        })?;
        info!(
            node = id,
            addr = %config.addr,
            members = ?members.iter().map(|(id, n)| (id, &n.addr)).collect::<Vec<_>>(),
            data_dir = ?config.data_dir,
            "consensus starting"
        );
        let network = Network {
            peers: peers.clone(),
            from: id,
        };
        let raft = Raft::<S>::new(id, Arc::new(raft_config), network, log, machine)
            .await
            .map_err(|e| StartError::Raft {
                step: "start",
                message: e.to_string(),
            })?;
        // A state whose members do not include this master (a directory
        // from another master or another cluster) can never elect this
        // master nor let it follow: say so instead of waiting forever. The
        // members are known once the core has loaded the log, which it
        // reports in its metrics shortly after starting.
        let stored = if pristine {
            None
        } else {
            raft.wait(Some(Duration::from_secs(10)))
                .metrics(
                    |m| m.membership_config.log_id().is_some(),
                    "the stored membership is loaded",
                )
                .await
                .ok()
                .map(|m| m.membership_config.clone())
        };
        let voters: Vec<NodeId> = stored
            .as_ref()
            .map(|s| s.membership().voter_ids().collect())
            .unwrap_or_default();
        if let Some(stored) = stored.filter(|_| !voters.is_empty() && !voters.contains(&id)) {
            let members = stored
                .membership()
                .nodes()
                .map(|(_, node)| node.addr.clone())
                .collect::<Vec<_>>()
                .join(", ");
            let _ = raft.shutdown().await;
            return Err(StartError::ForeignState {
                dir: config
                    .data_dir
                    .as_ref()
                    .map(|d| d.display().to_string())
                    .unwrap_or_default(),
                members,
            });
        }
        // Every master founds the cluster with the same members when its
        // storage is pristine: openraft documents this as safe, and it keeps
        // formation from waiting on one particular master. A master that
        // restarts on its state does not ask (openraft would refuse, and log
        // the refusal as an error at every routine restart).
        let founded = if raft.is_initialized().await.unwrap_or(false) {
            Ok(false)
        } else {
            raft.initialize(members).await.map(|()| true)
        };
        match founded {
            Ok(true) => info!(
                node = id,
                "consensus: founded the cluster with every master"
            ),
            Ok(false) | Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {
                debug!(node = id, "consensus: already part of the cluster")
            }
            Err(e) => {
                let _ = raft.shutdown().await;
                return Err(StartError::Raft {
                    step: "initialize",
                    message: e.to_string(),
                });
            }
        }
        Ok(Consensus {
            inner: Arc::new(Inner {
                id,
                raft,
                applied,
                peers,
                propose_timeout: Duration::from_millis(config.propose_timeout_ms),
            }),
        })
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.inner.id
    }

    /// Commits `event` through the leader, wherever that is, and returns
    /// what applying it gave. See the module docs for what is retried.
    pub async fn propose(&self, event: S::Event) -> Result<S::Output, ProposeError> {
        let started = Instant::now();
        let deadline = started + self.inner.propose_timeout;
        let mut pause = FIRST_RETRY_PAUSE;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(ProposeError::NoLeader {
                    waited_ms: millis(started.elapsed()),
                });
            }
            let leader = match self.write_here(event.clone(), remaining).await {
                ProposeReply::Applied { output, .. } => return Ok(output),
                ProposeReply::NotLeader { leader: Some(l) } if l.id != self.inner.id => l,
                ProposeReply::NotLeader { .. } => {
                    tokio::time::sleep(pause.min(remaining)).await;
                    pause = (pause * 2).min(MAX_RETRY_PAUSE);
                    continue;
                }
                ProposeReply::TimedOut => {
                    return Err(ProposeError::Unknown {
                        leader: self.inner.id,
                        waited_ms: millis(started.elapsed()),
                    });
                }
                ProposeReply::Stopped => return Err(ProposeError::Stopped),
                ProposeReply::Rejected { message } => {
                    return Err(ProposeError::Rejected { message });
                }
            };
            let forwarded: Result<ProposeReply<S::Output>, CallError> = self
                .inner
                .peers
                .post(&leader.addr, PROPOSE_PATH, &event, remaining)
                .await;
            let unknown = || ProposeError::Unknown {
                leader: leader.id,
                waited_ms: millis(started.elapsed()),
            };
            match forwarded {
                Ok(ProposeReply::Applied { output, .. }) => return Ok(output),
                // Nothing was appended: ask again once the group settles.
                Ok(ProposeReply::NotLeader { .. }) | Err(CallError::Unreachable { .. }) => {
                    debug!(
                        leader = leader.id,
                        "consensus: leader moved or unreachable, retrying"
                    );
                    tokio::time::sleep(pause.min(remaining)).await;
                    pause = (pause * 2).min(MAX_RETRY_PAUSE);
                }
                Ok(ProposeReply::Rejected { message }) => {
                    return Err(ProposeError::Rejected { message });
                }
                Err(CallError::Status { status, body, .. }) if status < 500 => {
                    // 400 or 401: this master and the leader disagree on the
                    // secret or the event format. Retrying cannot help.
                    return Err(ProposeError::Rejected {
                        message: format!("leader answered {status}: {body}"),
                    });
                }
                Ok(ProposeReply::TimedOut | ProposeReply::Stopped) => return Err(unknown()),
                Err(e) => {
                    warn!(leader = leader.id, error = %e, "consensus: forwarded proposal's outcome is unknown");
                    return Err(unknown());
                }
            }
        }
    }

    /// Commits `event` only as this node's own proposal, in its own term
    /// as leader: never forwarded, never retried. For events that record
    /// what this leader itself observed (health verdicts): a leader cut off
    /// from the others keeps believing it leads and may append what it saw
    /// from there, but once it learns of a newer term the event fails with
    /// [`ProposeError::NotLeader`] instead of reaching the new leader, and
    /// the entry it appended is overwritten by the new leader's log. (With
    /// [`Self::propose`], the new leader would commit the deposed one's
    /// view of the cluster.)
    pub async fn propose_as_leader(&self, event: S::Event) -> Result<S::Output, ProposeError> {
        let started = Instant::now();
        match self.write_here(event, self.inner.propose_timeout).await {
            ProposeReply::Applied { output, .. } => Ok(output),
            ProposeReply::NotLeader { .. } => Err(ProposeError::NotLeader),
            ProposeReply::TimedOut => Err(ProposeError::Unknown {
                leader: self.inner.id,
                waited_ms: millis(started.elapsed()),
            }),
            ProposeReply::Stopped => Err(ProposeError::Stopped),
            ProposeReply::Rejected { message } => Err(ProposeError::Rejected { message }),
        }
    }

    /// Offers `event` to the local Raft node and waits up to `timeout` for
    /// it to be applied; what a leader does with a forwarded proposal.
    pub(super) async fn write_here(
        &self,
        event: S::Event,
        timeout: Duration,
    ) -> ProposeReply<S::Output> {
        match tokio::time::timeout(timeout, self.inner.raft.client_write(event)).await {
            Err(_) => ProposeReply::TimedOut,
            Ok(Ok(written)) => ProposeReply::Applied {
                output: written.data,
                index: written.log_id.index,
            },
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(to)))) => {
                ProposeReply::NotLeader {
                    leader: to
                        .leader_id
                        .zip(to.leader_node)
                        .map(|(id, node)| LeaderRef {
                            id,
                            addr: node.addr,
                        }),
                }
            }
            Ok(Err(RaftError::APIError(e))) => ProposeReply::Rejected {
                message: e.to_string(),
            },
            Ok(Err(RaftError::Fatal(_))) => ProposeReply::Stopped,
        }
    }

    /// Every state this node applies, starting with the current one. The
    /// master routes by `borrow()` of it.
    pub fn applied(&self) -> watch::Receiver<Arc<Applied<S>>> {
        self.inner.applied.clone()
    }

    /// True if this node leads, as of its latest metrics: cheap, for routing
    /// and display. A leader cut off from the majority keeps believing it
    /// leads (openraft 0.9 does not step down on its own), so leader-only
    /// work should check [`Self::confirm_leadership`], and work that must not
    /// be done twice should go through [`Self::propose`].
    pub fn is_leader(&self) -> bool {
        let m = self.inner.raft.metrics();
        let m = m.borrow();
        m.state == ServerState::Leader && m.current_leader == Some(self.inner.id)
    }

    /// True if a majority confirms, now, that this node leads (a heartbeat
    /// round to every member, then this node's state catches up with what
    /// it committed: openraft's `ensure_linearizable`); false if it does not lead, or no majority
    /// answers within the propose timeout. Slower than [`Self::is_leader`],
    /// but a leader cut off from the majority, which openraft leaves
    /// believing it leads, gets false: ask this before leader-only work
    /// such as health verdicts.
    pub async fn confirm_leadership(&self) -> bool {
        matches!(
            tokio::time::timeout(
                self.inner.propose_timeout,
                self.inner.raft.ensure_linearizable()
            )
            .await,
            Ok(Ok(_))
        )
    }

    /// The leader this node knows of.
    pub fn leader_id(&self) -> Option<NodeId> {
        self.inner.raft.metrics().borrow().current_leader
    }

    /// The node's current Raft metrics.
    pub fn metrics(&self) -> ConsensusMetrics {
        let m = self.inner.raft.metrics();
        let m = m.borrow();
        let membership = m.membership_config.membership();
        let role = match m.state {
            ServerState::Learner => Role::Learner,
            ServerState::Follower => Role::Follower,
            ServerState::Candidate => Role::Candidate,
            ServerState::Leader => Role::Leader,
            ServerState::Shutdown => Role::Shutdown,
        };
        ConsensusMetrics {
            id: m.id,
            role,
            term: m.current_term,
            leader: m.current_leader,
            leader_addr: m
                .current_leader
                .and_then(|l| membership.get_node(&l))
                .map(|n| n.addr.clone()),
            last_applied: m.last_applied.map(|id| id.index),
            last_log_index: m.last_log_index,
            members: membership
                .nodes()
                .map(|(id, n)| (*id, n.addr.clone()))
                .collect(),
        }
    }

    /// Stops the Raft node and waits for it. Proposals fail with
    /// [`ProposeError::Stopped`] afterwards; the last applied state stays
    /// readable through [`Self::applied`].
    pub async fn shutdown(&self) {
        if let Err(e) = self.inner.raft.shutdown().await {
            warn!(node = self.inner.id, error = %e, "consensus: raft task ended badly");
        }
    }

    /// The Raft node, for the routes.
    pub(super) fn raft(&self) -> &Raft<S> {
        &self.inner.raft
    }

    /// The client and credentials this node calls the other masters
    /// with: Pub/Sub forwards PUBLISH on it too.
    pub fn peers(&self) -> &Peers {
        &self.inner.peers
    }

    /// The secret the routes require.
    pub(super) fn credentials(&self) -> &Credentials {
        &self.inner.peers.credentials
    }

    /// How long a forwarded proposal may wait to commit.
    pub(super) fn propose_timeout(&self) -> Duration {
        self.inner.propose_timeout
    }
}
