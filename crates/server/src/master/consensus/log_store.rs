//! The Raft log and the vote: in memory, and on disk when the node has a
//! data directory.
//!
//! Every entry since the last purge is kept in memory: the log holds cluster
//! map changes, which are rare, and openraft purges it after each snapshot.
//! On disk (see `record` for the framing, JSON payloads):
//!
//! - `raft.log`: appended records, each one of: an entry; "truncate since
//!   index"; "purged up to log id"; "committed up to log id". Replaying them
//!   in order rebuilds the log. An append is acknowledged to openraft only
//!   after its fsync, so a torn last record was never acknowledged and is cut
//!   off at start. After a purge the file is rewritten (temporary file,
//!   fsync, rename) with only what is left.
//! - `raft.vote`: the vote, replaced atomically and fsynced before it is
//!   acknowledged: a node must never forget whom it voted for in a term.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{LogState, RaftLogReader, StorageIOError};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use tracing::warn;

use super::Replicated;
use super::record::{self, LOG_MAGIC, RecordError, VOTE_MAGIC};
use super::types::{Entry, LogId, RaftTypes, StorageError, Vote};
use crate::snapshot_file::write_atomic;

/// File name of the log in the data directory.
pub const LOG_FILE: &str = "raft.log";
/// File name of the vote in the data directory.
pub const VOTE_FILE: &str = "raft.vote";

/// Why the log or the vote could not be loaded.
#[derive(Debug, Error)]
pub enum LogStoreError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The failure.
        source: io::Error,
    },
    /// A file's framing is damaged.
    #[error("{path}: {source}")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        source: RecordError,
    },
    /// A record's checksum holds but its contents do not decode.
    #[error("{path}: record at byte {offset} does not decode: {source}")]
    Decode {
        /// The file.
        path: PathBuf,
        /// Where the record starts.
        offset: usize,
        /// The decoder's complaint.
        source: serde_json::Error,
    },
}

/// One record of the log file.
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
enum LogRecord<S: Replicated> {
    Entry(Entry<S>),
    Truncate { since: u64 },
    Purge { upto: LogId },
    Committed { log_id: Option<LogId> },
}

/// An entry record written from a borrowed entry: the same JSON as
/// `LogRecord::Entry`, without cloning the entry to frame it.
#[derive(Serialize)]
#[serde(bound = "")]
enum EntryRecord<'a, S: Replicated> {
    Entry(&'a Entry<S>),
}

struct Memory<S: Replicated> {
    entries: BTreeMap<u64, Entry<S>>,
    last_purged: Option<LogId>,
    committed: Option<LogId>,
    vote: Option<Vote>,
}

impl<S: Replicated> Default for Memory<S> {
    fn default() -> Self {
        Memory {
            entries: BTreeMap::new(),
            last_purged: None,
            committed: None,
            vote: None,
        }
    }
}

impl<S: Replicated> Memory<S> {
    fn replay(&mut self, record: LogRecord<S>) {
        match record {
            LogRecord::Entry(entry) => {
                self.entries.insert(entry.log_id.index, entry);
            }
            LogRecord::Truncate { since } => {
                self.entries.split_off(&since);
            }
            LogRecord::Purge { upto } => self.purge(upto),
            LogRecord::Committed { log_id } => self.committed = log_id,
        }
    }

    fn purge(&mut self, upto: LogId) {
        self.entries = self.entries.split_off(&(upto.index + 1));
        if self
            .last_purged
            .as_ref()
            .is_none_or(|p| p.index < upto.index)
        {
            self.last_purged = Some(upto);
        }
    }
}

/// The open files of a node with a data directory.
struct Disk {
    log_path: PathBuf,
    vote_path: PathBuf,
    log: File,
}

impl Disk {
    fn append(&mut self, bytes: &[u8], sync: bool) -> io::Result<()> {
        self.log.write_all(bytes)?;
        if sync {
            self.log.sync_data()?;
        }
        Ok(())
    }

    fn rewrite_log(&mut self, body: &[u8]) -> io::Result<()> {
        write_atomic(&self.log_path, |w| {
            w.write_all(&record::header(LOG_MAGIC))?;
            w.write_all(body)
        })?;
        self.log = OpenOptions::new().append(true).open(&self.log_path)?;
        Ok(())
    }

    fn save_vote(&self, body: &[u8]) -> io::Result<()> {
        write_atomic(&self.vote_path, |w| {
            w.write_all(&record::header(VOTE_MAGIC))?;
            w.write_all(body)
        })
    }
}

/// A lock that survives a panic elsewhere: every critical section here
/// leaves the data consistent at each step, so poisoning carries no meaning.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn framed<T: Serialize>(value: &T, out: &mut Vec<u8>) -> io::Result<()> {
    let json = serde_json::to_vec(value).map_err(io::Error::other)?;
    if json.len() > record::MAX_RECORD_BYTES {
        return Err(io::Error::other("a log record exceeds 256 MiB"));
    }
    record::encode(&json, out);
    Ok(())
}

/// The Raft log and vote of one node. Clones share the same log (openraft
/// reads entries through a clone while it appends through the original).
pub struct LogStore<S: Replicated> {
    memory: Arc<Mutex<Memory<S>>>,
    disk: Option<Arc<Mutex<Disk>>>,
}

impl<S: Replicated> Clone for LogStore<S> {
    fn clone(&self) -> Self {
        LogStore {
            memory: Arc::clone(&self.memory),
            disk: self.disk.clone(),
        }
    }
}

impl<S: Replicated> LogStore<S> {
    /// A log kept in memory only.
    pub fn in_memory() -> Self {
        LogStore {
            memory: Arc::default(),
            disk: None,
        }
    }

    /// The log and vote in `dir`, created empty if absent. A torn last log
    /// record is cut off; any other damage is an error.
    pub fn open(dir: &Path) -> Result<Self, LogStoreError> {
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| LogStoreError::Io { path, source }
        };
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let log_path = dir.join(LOG_FILE);
        let vote_path = dir.join(VOTE_FILE);
        let mut memory = Memory::<S>::default();

        if let Some(bytes) = read_if_exists(&vote_path).map_err(io_err(&vote_path))? {
            let payload = record::decode_single(&bytes, VOTE_MAGIC, "vote").map_err(|source| {
                LogStoreError::Damaged {
                    path: vote_path.clone(),
                    source,
                }
            })?;
            let vote = serde_json::from_slice(payload).map_err(|source| LogStoreError::Decode {
                path: vote_path.clone(),
                offset: record::HEADER_LEN,
                source,
            })?;
            memory.vote = Some(vote);
        }

        match read_if_exists(&log_path).map_err(io_err(&log_path))? {
            Some(bytes) => {
                let decoded = record::decode(&bytes, LOG_MAGIC, "raft log").map_err(|source| {
                    LogStoreError::Damaged {
                        path: log_path.clone(),
                        source,
                    }
                })?;
                for (offset, payload) in &decoded.records {
                    let rec = serde_json::from_slice(payload).map_err(|source| {
                        LogStoreError::Decode {
                            path: log_path.clone(),
                            offset: *offset,
                            source,
                        }
                    })?;
                    memory.replay(rec);
                }
                if decoded.torn_tail {
                    warn!(
                        path = %log_path.display(),
                        kept_bytes = decoded.valid_len,
                        dropped_bytes = bytes.len() - decoded.valid_len,
                        "cutting off a torn last record of the raft log (an append a crash interrupted)"
                    );
                    let file = OpenOptions::new()
                        .write(true)
                        .open(&log_path)
                        .map_err(io_err(&log_path))?;
                    file.set_len(decoded.valid_len as u64)
                        .and_then(|()| file.sync_all())
                        .map_err(io_err(&log_path))?;
                }
            }
            None => write_atomic(&log_path, |w| w.write_all(&record::header(LOG_MAGIC)))
                .map_err(io_err(&log_path))?,
        }
        let log = OpenOptions::new()
            .append(true)
            .open(&log_path)
            .map_err(io_err(&log_path))?;
        Ok(LogStore {
            memory: Arc::new(Mutex::new(memory)),
            disk: Some(Arc::new(Mutex::new(Disk {
                log_path,
                vote_path,
                log,
            }))),
        })
    }

    /// Runs `write` on the disk, off the async threads; a no-op in memory.
    async fn on_disk(
        &self,
        write: impl FnOnce(&mut Disk) -> io::Result<()> + Send + 'static,
    ) -> io::Result<()> {
        let Some(disk) = self.disk.clone() else {
            return Ok(());
        };
        tokio::task::spawn_blocking(move || write(&mut lock(&disk)))
            .await
            .map_err(io::Error::other)?
    }
}

fn read_if_exists(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn write_error(e: &io::Error) -> StorageError {
    StorageIOError::write_logs(e).into()
}

impl<S: Replicated> RaftLogReader<RaftTypes<S>> for LogStore<S> {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<S>>, StorageError> {
        let memory = lock(&self.memory);
        Ok(memory
            .entries
            .range(range)
            .map(|(_, e)| e.clone())
            .collect())
    }
}

impl<S: Replicated> RaftLogStorage<RaftTypes<S>> for LogStore<S> {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<RaftTypes<S>>, StorageError> {
        let memory = lock(&self.memory);
        let last_log_id = memory
            .entries
            .last_key_value()
            .map(|(_, e)| e.log_id)
            .or(memory.last_purged);
        Ok(LogState {
            last_purged_log_id: memory.last_purged,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let mut body = Vec::new();
        let written = match framed(vote, &mut body) {
            Ok(()) => self.on_disk(move |disk| disk.save_vote(&body)).await,
            Err(e) => Err(e),
        };
        written.map_err(|e| StorageError::from(StorageIOError::write_vote(&e)))?;
        lock(&self.memory).vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(lock(&self.memory).vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        lock(&self.memory).committed = committed;
        let mut body = Vec::new();
        framed(&LogRecord::<S>::Committed { log_id: committed }, &mut body)
            .map_err(|e| write_error(&e))?;
        // Not fsynced: losing it only means re-applying from the snapshot
        // after the next election rather than at start. The next append's
        // fsync carries it to disk anyway.
        self.on_disk(move |disk| disk.append(&body, false))
            .await
            .map_err(|e| write_error(&e))
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(lock(&self.memory).committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<RaftTypes<S>>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry<S>> + Send,
        I::IntoIter: Send,
    {
        let mut body = Vec::new();
        let mut encoded = Ok(());
        {
            let mut memory = lock(&self.memory);
            for entry in entries {
                if let Err(e) = framed(&EntryRecord::Entry(&entry), &mut body) {
                    encoded = Err(e);
                    break;
                }
                memory.entries.insert(entry.log_id.index, entry);
            }
        }
        let result = match encoded {
            Ok(()) => self.on_disk(move |disk| disk.append(&body, true)).await,
            Err(e) => Err(e),
        };
        let storage_error = result.as_ref().err().map(write_error);
        callback.log_io_completed(result);
        match storage_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        lock(&self.memory).entries.split_off(&log_id.index);
        let mut body = Vec::new();
        framed(
            &LogRecord::<S>::Truncate {
                since: log_id.index,
            },
            &mut body,
        )
        .map_err(|e| write_error(&e))?;
        self.on_disk(move |disk| disk.append(&body, true))
            .await
            .map_err(|e| write_error(&e))
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let body = {
            let mut memory = lock(&self.memory);
            memory.purge(log_id);
            if self.disk.is_none() {
                return Ok(());
            }
            let mut body = Vec::new();
            let compacted = (|| {
                if let Some(upto) = memory.last_purged {
                    framed(&LogRecord::<S>::Purge { upto }, &mut body)?;
                }
                framed(
                    &LogRecord::<S>::Committed {
                        log_id: memory.committed,
                    },
                    &mut body,
                )?;
                for entry in memory.entries.values() {
                    framed(&EntryRecord::Entry(entry), &mut body)?;
                }
                Ok::<_, io::Error>(())
            })();
            compacted.map_err(|e| write_error(&e))?;
            body
        };
        self.on_disk(move |disk| disk.rewrite_log(&body))
            .await
            .map_err(|e| write_error(&e))
    }
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, EntryPayload};

    use super::*;

    #[derive(Clone, Debug, Default, Serialize, Deserialize)]
    struct Count(u64);

    impl Replicated for Count {
        type Event = u64;
        type Output = u64;
        fn apply(&mut self, add: u64) -> u64 {
            self.0 += add;
            self.0
        }
    }

    fn id(term: u64, index: u64) -> LogId {
        LogId::new(CommittedLeaderId::new(term, 1), index)
    }

    fn entry(term: u64, index: u64) -> Entry<Count> {
        openraft::Entry {
            log_id: id(term, index),
            payload: EntryPayload::Normal(index),
        }
    }

    #[tokio::test]
    async fn replaying_the_log_file_applies_truncates_purges_and_commits_in_order() {
        let dir = std::env::temp_dir().join(format!("dc-raft-log-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("mkdir");
        let mut bytes = record::header(LOG_MAGIC).to_vec();
        let records = [
            LogRecord::Entry(entry(1, 1)),
            LogRecord::Entry(entry(1, 2)),
            LogRecord::Entry(entry(1, 3)),
            // A new leader overwrote index 2 onwards.
            LogRecord::Truncate { since: 2 },
            LogRecord::Entry(entry(2, 2)),
            LogRecord::Purge { upto: id(1, 1) },
            LogRecord::Committed {
                log_id: Some(id(2, 2)),
            },
        ];
        for r in &records {
            framed(r, &mut bytes).expect("frame");
        }
        fs::write(dir.join(LOG_FILE), bytes).expect("write");

        let mut store = LogStore::<Count>::open(&dir).expect("opens");
        let state = store.get_log_state().await.expect("state");
        assert_eq!(state.last_purged_log_id, Some(id(1, 1)));
        assert_eq!(state.last_log_id, Some(id(2, 2)));
        let entries = store.try_get_log_entries(0..10).await.expect("entries");
        let ids: Vec<LogId> = entries.iter().map(|e| e.log_id).collect();
        assert_eq!(ids, vec![id(2, 2)]);
        assert_eq!(
            store.read_committed().await.expect("committed"),
            Some(id(2, 2))
        );
        assert_eq!(store.read_vote().await.expect("vote"), None);

        // What the store writes, it reads back after a restart.
        let vote = Vote::new(3, 7);
        store.save_vote(&vote).await.expect("vote saved");
        store.truncate(id(2, 2)).await.expect("truncated");
        store.purge(id(2, 5)).await.expect("purged");
        drop(store);
        let mut again = LogStore::<Count>::open(&dir).expect("reopens");
        assert_eq!(again.read_vote().await.expect("vote"), Some(vote));
        let state = again.get_log_state().await.expect("state");
        assert_eq!(state.last_purged_log_id, Some(id(2, 5)));
        assert_eq!(state.last_log_id, Some(id(2, 5)));
        assert!(
            again
                .try_get_log_entries(..)
                .await
                .expect("entries")
                .is_empty()
        );
        let _ = fs::remove_dir_all(&dir);
    }
}
