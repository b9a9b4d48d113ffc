//! The auxiliary's mutation log on disk: every write, delete and forget the
//! node applies is appended (format: [`distcache_core::mutation_log`]) to
//! `BACKUP_DIR/<node>.log.<generation>` before it is acknowledged, and
//! replayed on top of the snapshot at start.
//!
//! # How a mutation becomes durable
//!
//! 1. The data handler applies it to the store and records it into an
//!    in-memory buffer as one step under the log's lock
//!    ([`MutationLog::applying`]), noting the position its answer must wait
//!    for (an answer that changed nothing waits for the current one).
//! 2. Before the connection's answers are written, [`MutationLog::commit`]
//!    writes the buffer to the file in one `write` (every connection's
//!    records at once), and with `LOG_FSYNC=always` waits until an `fsync`
//!    covers that position. Concurrent waiters share one `fsync`: whoever
//!    holds the sync lock syncs everything written so far.
//! 3. With `everysec` a background task syncs once a second, so a machine
//!    crash loses at most about the last second; a crash of the process
//!    alone loses nothing acknowledged, since the bytes are in the kernel.
//!
//! # Generations
//!
//! A snapshot first [`MutationLog::rotate`]s to a new generation, then
//! copies the store and records that generation in its header; once the
//! snapshot is on disk, older generations are deleted
//! ([`MutationLog::snapshot_written`]). Because a mutation is applied before
//! it is recorded, anything recorded in an older generation was in the store
//! before the copy began. When the log outgrows `LOG_MAX_BYTES` (and the
//! last snapshot), it asks for a snapshot, which empties it.
//!
//! # When the disk fails
//!
//! A failed write or fsync (disk full, read-only, I/O error) is logged and
//! counted, the log stops appending (a torn record would hide everything
//! after it), and the node keeps serving but reports itself not durable in
//! `/health` and `distcache_log_durable`. It asks for a snapshot every few
//! seconds; the first one written in full, on a fresh generation, makes the
//! node durable again.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use distcache_core::mutation_log::{self, DamageKind, Mutation};
use distcache_core::store::Store;
use serde::Serialize;
use tokio::sync::Notify;
use tracing::{error, info, warn};

use crate::config::LogFsync;
use crate::metrics::LogMetrics;
use crate::shutdown::Shutdown;
use crate::snapshot_file::file_stem;

/// How often `everysec` syncs.
pub const EVERYSEC_PERIOD: Duration = Duration::from_secs(1);
/// How long a broken log waits between snapshots that would repair it.
pub const REPAIR_RETRY: Duration = Duration::from_secs(5);
/// The most buffer capacity kept between writes of the log.
const PENDING_KEEP_BYTES: usize = 1 << 20;

/// What `/health` says about durability.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct LogHealth {
    /// `LOG_FSYNC`.
    pub fsync: LogFsync,
    /// True when every acknowledged mutation is in the log (or a snapshot)
    /// on disk, within the fsync window.
    pub durable: bool,
    /// The current generation (0 when the log is off).
    pub generation: u64,
    /// Bytes in the current generation's file.
    pub bytes: u64,
    /// Why the node is not durable, when it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl LogHealth {
    /// The report with `LOG_FSYNC=off`.
    pub fn off() -> Self {
        LogHealth {
            fsync: LogFsync::Off,
            durable: false,
            generation: 0,
            bytes: 0,
            error: Some(
                "the mutation log is off (LOG_FSYNC=off): only snapshots survive a restart".into(),
            ),
        }
    }
}

/// The log of one auxiliary. See the module documentation.
pub struct MutationLog {
    fsync: LogFsync,
    dir: PathBuf,
    stem: String,
    max_bytes: u64,
    state: Mutex<State>,
    /// Held while an fsync or a rotation runs: one at a time.
    sync_lock: tokio::sync::Mutex<()>,
    /// Position up to which an fsync succeeded.
    synced: AtomicU64,
    /// Wakes the snapshot task when the log wants a snapshot.
    wants_snapshot: Notify,
    metrics: LogMetrics,
}

/// What the log's lock guards. Positions count every byte ever recorded
/// since start, across generations, so that they only grow.
struct State {
    file: Option<Arc<File>>,
    generation: u64,
    /// Recorded, not written yet.
    pending: Vec<u8>,
    recorded: u64,
    written: u64,
    file_bytes: u64,
    /// Size of the last snapshot: the log may grow to this before asking for
    /// a new one, as rewriting costs about a snapshot.
    snapshot_bytes: u64,
    /// Set when a write or sync failed, with the generation it failed in;
    /// cleared by a snapshot of a later generation.
    failure: Option<(u64, String)>,
    snapshot_asked: bool,
}

impl State {
    /// True when the current generation's file cannot be appended to: it
    /// was never created, or a write or sync to it failed. (A failure in an
    /// older generation leaves a fresh file usable: its records will count
    /// once a snapshot covers what was lost before it.)
    fn current_broken(&self) -> bool {
        self.file.is_none()
            || self
                .failure
                .as_ref()
                .is_some_and(|(failed_in, _)| *failed_in == self.generation)
    }
}

impl MutationLog {
    /// Opens generation `generation` in `dir` for `node_id`. When the file
    /// cannot be created the log starts broken (logged, counted, not
    /// durable): the node serves anyway.
    pub fn open(
        dir: &Path,
        node_id: &str,
        fsync: LogFsync,
        max_bytes: u64,
        generation: u64,
        metrics: LogMetrics,
    ) -> Self {
        let stem = file_stem(node_id);
        let mut state = State {
            file: None,
            generation,
            pending: Vec::new(),
            recorded: 0,
            written: 0,
            file_bytes: 0,
            snapshot_bytes: 0,
            failure: None,
            snapshot_asked: false,
        };
        match create_generation(dir, &stem, generation) {
            Ok(file) => {
                state.file = Some(Arc::new(file));
                state.file_bytes = mutation_log::HEADER_LEN as u64;
                info!(path = %log_path(dir, &stem, generation).display(), fsync = ?fsync, "mutation log open");
            }
            Err(e) => {
                metrics.write_failures.inc();
                error!(dir = %dir.display(), error = %e, "cannot create the mutation log; serving without durability until a snapshot succeeds");
                state.failure = Some((generation, format!("creating the log failed: {e}")));
            }
        }
        metrics.durable.set(i64::from(state.failure.is_none()));
        metrics.bytes.set(state.file_bytes as i64);
        MutationLog {
            fsync,
            dir: dir.to_path_buf(),
            stem,
            max_bytes,
            state: Mutex::new(state),
            sync_lock: tokio::sync::Mutex::new(()),
            synced: AtomicU64::new(0),
            wants_snapshot: Notify::new(),
            metrics,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind, still
        // consistent enough to keep appending: recover it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `apply` (a change to the store) and records the mutation it
    /// returns, if any, as one step under the log's lock, and returns its
    /// result with the position to pass to [`MutationLog::commit`] before
    /// answering.
    ///
    /// Why one step: an answer that depends on the store's state must wait
    /// for the records that made it. A write refused as stale, say, is
    /// acknowledged as ordered just before the newer one it met (see
    /// docs/replication.md); were that newer one applied but not yet
    /// recorded, the answer could go out before it is on disk. Applying and
    /// recording under one lock makes the position read here cover every
    /// change the store shows, so a mutation that records nothing still
    /// gets the current position. A broken log gives 0 (nothing to wait
    /// for).
    pub fn applying<'m, T>(&self, apply: impl FnOnce() -> (T, Option<Mutation<'m>>)) -> (T, u64) {
        self.applying_all(|record| {
            let (result, mutation) = apply();
            if let Some(mutation) = mutation {
                record(&mutation);
            }
            result
        })
    }

    /// [`MutationLog::applying`] for a change that makes several mutations
    /// (a command over several keys): `apply` calls `record` with each,
    /// all under the log's lock.
    pub fn applying_all<T>(
        &self,
        apply: impl FnOnce(&mut dyn FnMut(&Mutation<'_>)) -> T,
    ) -> (T, u64) {
        let mut state = self.lock();
        let broken = state.current_broken();
        let mut appended = 0u64;
        let pending = &mut state.pending;
        let result = apply(&mut |mutation| {
            if broken {
                return;
            }
            let before = pending.len();
            // Only a key or value the store itself refuses cannot be
            // logged: then nothing was appended.
            if mutation_log::append(pending, mutation).is_ok() {
                appended += (pending.len() - before) as u64;
            }
        });
        if broken {
            return (result, 0);
        }
        state.recorded += appended;
        (result, state.recorded)
    }

    /// Makes everything recorded up to `position` as durable as `LOG_FSYNC`
    /// asks before it is acknowledged: written to the file (`everysec`), and
    /// synced (`always`).
    pub async fn commit(&self, position: u64) {
        if position == 0 {
            return;
        }
        self.write_pending();
        if self.fsync == LogFsync::Always {
            self.sync_through(position).await;
        }
    }

    /// Writes the buffered records to the file in one call.
    pub fn write_pending(&self) {
        let mut state = self.lock();
        if state.pending.is_empty() {
            return;
        }
        let file = match &state.file {
            Some(file) if !state.current_broken() => file.clone(),
            _ => {
                state.pending.clear();
                return;
            }
        };
        match (&*file).write_all(&state.pending) {
            Ok(()) => {
                state.file_bytes += state.pending.len() as u64;
                state.written = state.recorded;
                state.pending.clear();
                // A batch of large values leaves a large buffer: give it
                // back rather than keep it for good.
                if state.pending.capacity() > PENDING_KEEP_BYTES {
                    state.pending.shrink_to(PENDING_KEEP_BYTES);
                }
                self.metrics.bytes.set(state.file_bytes as i64);
                let limit = self.max_bytes.max(state.snapshot_bytes);
                if state.file_bytes > limit && !state.snapshot_asked {
                    state.snapshot_asked = true;
                    info!(
                        bytes = state.file_bytes,
                        limit, "mutation log is large; asking for a snapshot"
                    );
                    self.wants_snapshot.notify_one();
                }
            }
            Err(e) => {
                state.pending.clear();
                self.metrics.write_failures.inc();
                self.fail(&mut state, format!("writing the log failed: {e}"));
            }
        }
    }

    /// Marks the log broken: nothing more is appended until a snapshot on a
    /// new generation covers what was lost.
    fn fail(&self, state: &mut State, why: String) {
        let generation = state.generation;
        self.fail_in(state, generation, why);
    }

    /// [`MutationLog::fail`] for a write or sync of `generation`, which may
    /// be older than the current one (the old file's sync at a rotation).
    fn fail_in(&self, state: &mut State, generation: u64, why: String) {
        let newer = state.failure.as_ref().is_none_or(|(g, _)| *g < generation);
        if newer {
            error!(generation, error = %why, "mutation log failed; the node is not durable until a snapshot succeeds");
            state.failure = Some((generation, why));
            self.metrics.durable.set(0);
            self.wants_snapshot.notify_one();
        }
    }

    /// Waits until an fsync covers `position`, running it if nobody is.
    async fn sync_through(&self, position: u64) {
        while self.synced.load(Ordering::Acquire) < position {
            let _one_at_a_time = self.sync_lock.lock().await;
            if self.synced.load(Ordering::Acquire) >= position {
                return;
            }
            let (file, target) = {
                let state = self.lock();
                match &state.file {
                    Some(file) if !state.current_broken() => (file.clone(), state.written),
                    // Broken: nothing will ever cover it; answer anyway.
                    _ => return,
                }
            };
            if !self.sync_file(file, target).await {
                return;
            }
        }
    }

    /// One fsync of `file`, covering `target`. False when it failed.
    async fn sync_file(&self, file: Arc<File>, target: u64) -> bool {
        let started = Instant::now();
        let synced = tokio::task::spawn_blocking(move || file.sync_data())
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        self.metrics
            .fsync_seconds
            .observe(started.elapsed().as_secs_f64());
        match synced {
            Ok(()) => {
                self.synced.fetch_max(target, Ordering::AcqRel);
                true
            }
            Err(e) => {
                self.metrics.fsync_failures.inc();
                // After a failed fsync the kernel may have dropped the dirty
                // pages: what was written cannot be trusted to be on disk.
                let mut state = self.lock();
                self.fail(&mut state, format!("fsync of the log failed: {e}"));
                false
            }
        }
    }

    /// Syncs whatever was written since the last sync (the `everysec` tick).
    pub async fn sync_written(&self) {
        let written = self.lock().written;
        if written > self.synced.load(Ordering::Acquire) {
            self.sync_through(written).await;
        }
    }

    /// Starts a new generation for a snapshot about to copy the store, and
    /// returns the generation to record in its header: the new one, or the
    /// current one when no new file could be made (then nothing is deleted
    /// after the snapshot, and replay reads this generation too). Call from
    /// a blocking thread: it syncs the old file.
    pub fn rotate(&self) -> u64 {
        let _one_at_a_time = self.sync_lock.blocking_lock();
        let next = self.lock().generation + 1;
        let file = match create_generation(&self.dir, &self.stem, next) {
            Ok(file) => Arc::new(file),
            Err(e) => {
                self.metrics.write_failures.inc();
                warn!(generation = next, error = %e, "cannot start a new log generation; the snapshot will not shorten the log");
                return next - 1;
            }
        };
        // Whatever is buffered belongs to the old generation: it was applied
        // before this point, so the snapshot about to start includes it too.
        self.write_pending();
        let (old, old_written) = {
            let mut state = self.lock();
            let old = state.file.replace(file);
            state.generation = next;
            state.file_bytes = mutation_log::HEADER_LEN as u64;
            state.snapshot_asked = false;
            self.metrics.bytes.set(state.file_bytes as i64);
            (old, state.written)
        };
        if let Some(old) = old {
            match old.sync_data() {
                Ok(()) => {
                    self.synced.fetch_max(old_written, Ordering::AcqRel);
                }
                Err(e) => {
                    // Its records may not be on disk, and answers waiting
                    // for them were released by later syncs of the new
                    // file: not durable until a snapshot past it succeeds.
                    self.metrics.fsync_failures.inc();
                    let mut state = self.lock();
                    self.fail_in(
                        &mut state,
                        next - 1,
                        format!("fsync of the log failed: {e}"),
                    );
                }
            }
        }
        next
    }

    /// A snapshot covering every generation before `generation` is on disk
    /// (`bytes` long): deletes those generations, and clears a failure that
    /// happened before `generation` began.
    pub fn snapshot_written(&self, generation: u64, bytes: u64) {
        {
            let mut state = self.lock();
            state.snapshot_bytes = bytes;
            state.snapshot_asked = false;
            if let Some((failed_in, _)) = &state.failure {
                if *failed_in < generation && state.generation >= generation && state.file.is_some()
                {
                    info!(
                        generation,
                        "mutation log repaired by a snapshot; the node is durable again"
                    );
                    state.failure = None;
                    self.metrics.durable.set(1);
                }
            }
        }
        delete_below(&self.dir, &self.stem, generation);
    }

    /// Asks for a snapshot (see [`MutationLog::snapshot_wanted`]).
    pub fn ask_for_snapshot(&self) {
        self.wants_snapshot.notify_one();
    }

    /// Resolves when the log wants a snapshot (it grew too large, or it is
    /// broken and a snapshot would repair it).
    pub async fn snapshot_wanted(&self) {
        self.wants_snapshot.notified().await;
    }

    /// True while the log is broken.
    pub fn is_broken(&self) -> bool {
        self.lock().failure.is_some()
    }

    /// The durability report for `/health`.
    pub fn health(&self) -> LogHealth {
        let state = self.lock();
        LogHealth {
            fsync: self.fsync,
            durable: state.failure.is_none(),
            generation: state.generation,
            bytes: state.file_bytes,
            error: state.failure.as_ref().map(|(_, why)| why.clone()),
        }
    }
}

/// Syncs the log once a second (`everysec`) until shutdown.
pub async fn everysec_loop(log: Arc<MutationLog>, shutdown: Shutdown) {
    let mut tick = tokio::time::interval(EVERYSEC_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => log.sync_written().await,
            _ = shutdown.triggered() => return,
        }
    }
}

/// Deletes every log generation of `node_id` in `dir` below `generation`
/// (a snapshot covers them).
pub fn delete_generations(dir: &Path, node_id: &str, generation: u64) {
    delete_below(dir, &file_stem(node_id), generation);
}

fn delete_below(dir: &Path, stem: &str, generation: u64) {
    for (old, path) in generations(dir, stem) {
        if old < generation {
            if let Err(e) = fs::remove_file(&path) {
                warn!(path = %path.display(), error = %e, "cannot delete a log generation the snapshot covers");
            }
        }
    }
}

/// `dir/<stem>.log.<generation>`.
fn log_path(dir: &Path, stem: &str, generation: u64) -> PathBuf {
    dir.join(format!("{stem}.log.{generation}"))
}

/// Every log generation of `stem` in `dir`, by generation.
fn generations(dir: &Path, stem: &str) -> Vec<(u64, PathBuf)> {
    let prefix = format!("{stem}.log.");
    let mut found: Vec<(u64, PathBuf)> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name();
            let generation = name.to_str()?.strip_prefix(&prefix)?.parse().ok()?;
            Some((generation, entry.path()))
        })
        .collect();
    found.sort();
    found
}

/// Creates the file of a new generation with its header, durably: the file
/// and the directory entry are synced before anything is appended.
fn create_generation(dir: &Path, stem: &str, generation: u64) -> std::io::Result<File> {
    fs::create_dir_all(dir)?;
    let path = log_path(dir, stem, generation);
    // Never over an existing file: one that is there holds records a replay
    // did not see (the directory could not be listed), and stays for the
    // next start rather than be overwritten.
    let mut file = fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .open(&path)?;
    let ready = file
        .write_all(&mutation_log::header(generation))
        .and_then(|()| file.sync_all())
        .and_then(|()| File::open(dir)?.sync_all());
    if let Err(e) = ready {
        // Ours and empty: removed, so that the next attempt (the disk may
        // have room again) can create it.
        let _ = fs::remove_file(&path);
        return Err(e);
    }
    Ok(file)
}

/// What replaying the log at start did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplaySummary {
    /// Generation files replayed.
    pub files: u64,
    /// Records read.
    pub records: u64,
    /// Records that changed the store.
    pub applied: u64,
    /// The highest generation found (0 = none).
    pub last_generation: u64,
}

/// Replays every log generation of `node_id` in `dir` from `from` on into
/// `store`, in order, before the node serves. Older generations (covered by
/// the snapshot) are deleted. A torn tail is cut (warned), a damaged record
/// ends its file's replay (error), an unreadable file is skipped (error);
/// none stops the node from starting.
pub fn replay_at_start(
    dir: &Path,
    node_id: &str,
    from: u64,
    store: &Store,
    now_ms: u64,
    metrics: &LogMetrics,
) -> ReplaySummary {
    let stem = file_stem(node_id);
    let mut summary = ReplaySummary::default();
    for (generation, path) in generations(dir, &stem) {
        summary.last_generation = summary.last_generation.max(generation);
        if generation < from {
            info!(path = %path.display(), snapshot_generation = from, "deleting a log generation the snapshot covers");
            let _ = fs::remove_file(&path);
            continue;
        }
        let data = match fs::read(&path) {
            Ok(data) => data,
            Err(e) => {
                metrics
                    .replay_damage
                    .with_label_values(&["unreadable"])
                    .inc();
                error!(path = %path.display(), error = %e, "cannot read a log generation; skipping it");
                continue;
            }
        };
        match mutation_log::replay(&data, store, now_ms) {
            Ok((read, counts)) => {
                summary.files += 1;
                summary.records += counts.records;
                summary.applied += counts.applied;
                metrics.replayed_records.inc_by(counts.records);
                if let Some(damage) = read.damage {
                    let cut = data.len() as u64 - damage.offset;
                    match damage.kind {
                        DamageKind::TornTail => {
                            metrics
                                .replay_damage
                                .with_label_values(&["torn_tail"])
                                .inc();
                            warn!(path = %path.display(), offset = damage.offset, cut_bytes = cut, reason = damage.reason, "log ends in a torn record (a crash while appending); cut there");
                        }
                        DamageKind::Corrupt => {
                            metrics.replay_damage.with_label_values(&["corrupt"]).inc();
                            error!(path = %path.display(), offset = damage.offset, skipped_bytes = cut, reason = damage.reason, "log is damaged; records after the damage are skipped");
                        }
                    }
                }
                if counts.diverged > 0 {
                    // A changes record over a key held at another version:
                    // records replay in order over their snapshot, so the
                    // snapshot or an earlier record was lost.
                    metrics
                        .replay_damage
                        .with_label_values(&["diverged"])
                        .inc_by(counts.diverged);
                    error!(path = %path.display(), diverged = counts.diverged, "log records of changes found their key at another version than the one they change; skipped");
                }
                info!(path = %path.display(), generation, records = counts.records, applied = counts.applied, stale = counts.stale, expired = counts.expired, base_gone = counts.base_gone, diverged = counts.diverged, "log generation replayed");
            }
            Err(e) => {
                metrics
                    .replay_damage
                    .with_label_values(&["unreadable"])
                    .inc();
                error!(path = %path.display(), error = %e, "log generation unreadable; skipping it");
            }
        }
    }
    summary
}
