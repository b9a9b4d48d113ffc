//! The state machine: applies committed entries to the replicated state,
//! publishes each applied state, builds and installs snapshots.
//!
//! The state lives in memory; what makes it durable is the snapshot plus the
//! log after it. On disk, `raft.snapshot` (see `record` for the framing)
//! holds one record, the JSON of `{meta, state}`: the snapshot's last log
//! id and membership, and the state at that point. It is replaced atomically
//! (temporary file, fsync, rename) before openraft is told the snapshot
//! exists, because openraft purges the log up to it right after. At start
//! the state is the snapshot's, and openraft re-applies the committed log
//! entries after it.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, RaftSnapshotBuilder, Snapshot, StorageIOError};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use tokio::sync::watch;

use super::record::RecordError;
use super::record::{self, SNAPSHOT_MAGIC};
use super::types::{Entry, LogId, RaftTypes, SnapshotMeta, StorageError, StoredMembership};
use super::{Applied, Replicated};
use crate::snapshot_file::write_atomic;

/// File name of the snapshot in the data directory.
pub const SNAPSHOT_FILE: &str = "raft.snapshot";

/// Why the snapshot could not be loaded.
#[derive(Debug, Error)]
pub enum SnapshotFileError {
    /// Reading the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The failure.
        source: io::Error,
    },
    /// The file's framing is damaged.
    #[error("{path}: {source}")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        source: RecordError,
    },
    /// The record's checksum holds but it does not decode as a snapshot.
    #[error("{path}: the snapshot does not decode: {source}")]
    Decode {
        /// The file.
        path: PathBuf,
        /// The decoder's complaint.
        source: serde_json::Error,
    },
}

/// A snapshot as kept in memory and on disk.
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
struct StoredSnapshot<S: Replicated> {
    meta: SnapshotMeta,
    state: S,
}

struct Machine<S: Replicated> {
    state: S,
    last_applied: Option<LogId>,
    membership: StoredMembership,
    snapshot: Option<Arc<StoredSnapshot<S>>>,
    /// Snapshots built since start, to make snapshot ids unique.
    built: u64,
}

impl<S: Replicated> Machine<S> {
    fn applied(&self) -> Arc<Applied<S>> {
        Arc::new(Applied {
            state: self.state.clone(),
            index: self.last_applied.map(|id| id.index),
        })
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // No critical section here can leave the machine half changed: a panic
    // elsewhere does not make it unusable.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The state machine of one node. Clones share it (openraft builds
/// snapshots through a clone).
pub struct StateMachine<S: Replicated> {
    machine: Arc<Mutex<Machine<S>>>,
    snapshot_path: Option<PathBuf>,
    published: Arc<watch::Sender<Arc<Applied<S>>>>,
}

impl<S: Replicated> Clone for StateMachine<S> {
    fn clone(&self) -> Self {
        StateMachine {
            machine: Arc::clone(&self.machine),
            snapshot_path: self.snapshot_path.clone(),
            published: Arc::clone(&self.published),
        }
    }
}

impl<S: Replicated> StateMachine<S> {
    /// A state machine starting from the snapshot in `dir`, if there is
    /// one, or from `S::default()`.
    pub fn open(dir: Option<&Path>) -> Result<Self, SnapshotFileError> {
        let snapshot_path = dir.map(|d| d.join(SNAPSHOT_FILE));
        let snapshot = match &snapshot_path {
            Some(path) => load::<S>(path)?,
            None => None,
        };
        let machine = match snapshot {
            Some(s) => Machine {
                state: s.state.clone(),
                last_applied: s.meta.last_log_id,
                membership: s.meta.last_membership.clone(),
                snapshot: Some(Arc::new(s)),
                built: 0,
            },
            None => Machine {
                state: S::default(),
                last_applied: None,
                membership: StoredMembership::default(),
                snapshot: None,
                built: 0,
            },
        };
        let (published, _) = watch::channel(machine.applied());
        Ok(StateMachine {
            machine: Arc::new(Mutex::new(machine)),
            snapshot_path,
            published: Arc::new(published),
        })
    }

    /// A receiver of every state this machine applies, starting with the
    /// current one.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Applied<S>>> {
        self.published.subscribe()
    }

    /// Writes `snapshot` to disk, off the async threads; a no-op in memory.
    async fn persist(&self, snapshot: Arc<StoredSnapshot<S>>) -> Result<(), StorageError> {
        let Some(path) = self.snapshot_path.clone() else {
            return Ok(());
        };
        let signature = snapshot.meta.signature();
        let written = tokio::task::spawn_blocking(move || {
            let json = serde_json::to_vec(&*snapshot).map_err(io::Error::other)?;
            if json.len() > record::MAX_RECORD_BYTES {
                return Err(io::Error::other("the snapshot exceeds 256 MiB"));
            }
            let mut body = record::header(SNAPSHOT_MAGIC).to_vec();
            record::encode(&json, &mut body);
            write_atomic(&path, |w| w.write_all(&body))
        })
        .await
        .map_err(io::Error::other)
        .and_then(|r| r);
        written.map_err(|e| StorageIOError::write_snapshot(Some(signature), &e).into())
    }
}

fn load<S: Replicated>(path: &Path) -> Result<Option<StoredSnapshot<S>>, SnapshotFileError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(SnapshotFileError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let payload =
        record::decode_single(&bytes, SNAPSHOT_MAGIC, "raft snapshot").map_err(|source| {
            SnapshotFileError::Damaged {
                path: path.to_path_buf(),
                source,
            }
        })?;
    serde_json::from_slice(payload)
        .map(Some)
        .map_err(|source| SnapshotFileError::Decode {
            path: path.to_path_buf(),
            source,
        })
}

impl<S: Replicated> RaftSnapshotBuilder<RaftTypes<S>> for StateMachine<S> {
    async fn build_snapshot(&mut self) -> Result<Snapshot<RaftTypes<S>>, StorageError> {
        let stored = {
            let mut machine = lock(&self.machine);
            machine.built += 1;
            let snapshot_id = match machine.last_applied {
                Some(id) => format!("{}-{}-{}", id.leader_id.term, id.index, machine.built),
                None => format!("none-{}", machine.built),
            };
            Arc::new(StoredSnapshot {
                meta: SnapshotMeta {
                    last_log_id: machine.last_applied,
                    last_membership: machine.membership.clone(),
                    snapshot_id,
                },
                state: machine.state.clone(),
            })
        };
        self.persist(Arc::clone(&stored)).await?;
        let snapshot = Snapshot {
            meta: stored.meta.clone(),
            snapshot: Box::new(stored.state.clone()),
        };
        lock(&self.machine).snapshot = Some(stored);
        Ok(snapshot)
    }
}

impl<S: Replicated> RaftStateMachine<RaftTypes<S>> for StateMachine<S> {
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let machine = lock(&self.machine);
        Ok((machine.last_applied, machine.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<S::Output>, StorageError>
    where
        I: IntoIterator<Item = Entry<S>> + Send,
        I::IntoIter: Send,
    {
        let mut machine = lock(&self.machine);
        let mut outputs = Vec::new();
        for entry in entries {
            machine.last_applied = Some(entry.log_id);
            let output = match entry.payload {
                EntryPayload::Blank => S::Output::default(),
                EntryPayload::Normal(event) => machine.state.apply(event),
                EntryPayload::Membership(membership) => {
                    machine.membership = StoredMembership::new(Some(entry.log_id), membership);
                    S::Output::default()
                }
            };
            outputs.push(output);
        }
        self.published.send_replace(machine.applied());
        Ok(outputs)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<S>, StorageError> {
        // Snapshots arrive whole (`full_snapshot`), so there is nothing to
        // receive into; openraft still asks for a value to start from.
        Ok(Box::default())
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<S>,
    ) -> Result<(), StorageError> {
        let stored = Arc::new(StoredSnapshot {
            meta: meta.clone(),
            state: *snapshot,
        });
        self.persist(Arc::clone(&stored)).await?;
        let mut machine = lock(&self.machine);
        machine.state = stored.state.clone();
        machine.last_applied = meta.last_log_id;
        machine.membership = meta.last_membership.clone();
        machine.snapshot = Some(stored);
        self.published.send_replace(machine.applied());
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<RaftTypes<S>>>, StorageError> {
        let machine = lock(&self.machine);
        Ok(machine.snapshot.as_ref().map(|s| Snapshot {
            meta: s.meta.clone(),
            snapshot: Box::new(s.state.clone()),
        }))
    }
}
