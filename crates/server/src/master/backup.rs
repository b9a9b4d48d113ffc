//! Cluster backups and restore (DESIGN: backups and recovery).
//!
//! - **Backup** (`POST /backup`, and every `BACKUP_INTERVAL`): every live
//!   auxiliary snapshots now (`POST /internal/snapshot`, all at once), then
//!   the master fetches each snapshot (`GET /internal/snapshot`), checks it
//!   decodes, and writes `BACKUP_DIR/<id>/` holding one `<node>.snap` per
//!   auxiliary and a `manifest.json` (id, created, nodes, keys, bytes). The
//!   directory is assembled under a hidden temporary name and renamed into
//!   place, so a backup directory is either complete or absent. The id is
//!   the UTC time, `YYYYMMDDTHHMMSS.mmmZ`, so names sort by age. The newest
//!   [`KEEP_BACKUPS`] are kept.
//! - **Restore** (`POST /restore`, optionally `{"backup":"<id>"}`, default the
//!   latest): the snapshots are merged (a key held by several replicas keeps
//!   its highest version), expired entries are skipped, and every entry is
//!   sent to its replicas in today's ring with `SetMany`, carrying its
//!   original version and expiry. Auxiliaries keep whichever version is
//!   higher, so newer data (or a newer delete, within the tombstone grace)
//!   is never overwritten: such keys count as skipped. `GET /restore`
//!   reports the progress of a running restore (the CLI's progress bar).

use std::collections::HashMap;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use distcache_core::Entry;
use distcache_core::snapshot::{self, Snapshot};
use distcache_wire::frame::{KeyedEntry, WriteStatus};
use distcache_wire::{Request, Response};
use futures_util::future::join_all;
use serde::{Deserialize, Serialize};
use tracing::{error, info, warn};

use super::membership::NodeState;
use super::{Master, NodeRef};
use crate::http::ApiError;
use crate::snapshot_file::{self, file_stem};

/// Cluster backups kept in `BACKUP_DIR`; older ones are removed after a
/// new one is written.
pub const KEEP_BACKUPS: usize = 10;
/// Longest wait for one auxiliary to write or send its snapshot.
const SNAPSHOT_CALL_TIMEOUT: Duration = Duration::from_secs(300);
/// Entries per `SetMany` sent by a restore.
const RESTORE_BATCH: usize = 256;
/// The manifest's file name in a backup directory.
pub const MANIFEST: &str = "manifest.json";

/// Backup and restore state of one master.
#[derive(Default)]
pub struct Backups {
    /// One backup at a time (periodic and requested ones share the dir).
    backing_up: tokio::sync::Mutex<()>,
    /// One restore at a time.
    restoring: tokio::sync::Mutex<()>,
    progress: Progress,
}

#[derive(Default)]
struct Progress {
    running: AtomicBool,
    total: AtomicU64,
    done: AtomicU64,
    backup: std::sync::Mutex<Option<String>>,
}

/// One auxiliary's part of a cluster backup.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct ManifestNode {
    /// The auxiliary's id.
    pub id: String,
    /// Its snapshot's file name in the backup directory.
    pub file: String,
    /// Entries in it.
    pub entries: u64,
    /// Its size.
    pub bytes: u64,
    /// When the auxiliary took it, Unix ms.
    pub created_ms: u64,
}

/// `manifest.json` of a cluster backup.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Manifest {
    /// The backup's id (its directory's name).
    pub id: String,
    /// When it was started, RFC 3339 UTC.
    pub created: String,
    /// The same, Unix ms.
    pub created_ms: u64,
    /// The master that wrote it.
    pub master: String,
    /// The snapshots, one per auxiliary that answered.
    pub nodes: Vec<ManifestNode>,
    /// Auxiliaries that were up but gave no snapshot.
    pub missing: Vec<String>,
    /// Distinct keys over all snapshots.
    pub keys: u64,
    /// Entries over all snapshots (replicas counted once each).
    pub entries: u64,
    /// Bytes of all snapshot files.
    pub bytes: u64,
}

/// The answer to `POST /backup`.
#[derive(Clone, Debug, Serialize)]
pub struct BackupReport {
    /// The backup's id.
    pub backup: String,
    /// Where it is.
    pub path: String,
    /// Auxiliaries in it.
    pub nodes: usize,
    /// Auxiliaries that were up but gave no snapshot.
    pub missing: Vec<String>,
    /// Distinct keys.
    pub keys: u64,
    /// Entries over all snapshots.
    pub entries: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Wall time.
    pub duration_ms: u64,
}

/// The answer to `POST /restore`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RestoreReport {
    /// The backup restored.
    pub backup: String,
    /// Distinct keys in the backup.
    pub keys: u64,
    /// Keys stored on at least one of their replicas.
    pub restored: u64,
    /// Keys not restored on purpose: `skipped_newer + skipped_expired`.
    pub skipped: u64,
    /// Keys whose replicas already held an equal or newer version (or a
    /// newer delete).
    pub skipped_newer: u64,
    /// Keys expired by now.
    pub skipped_expired: u64,
    /// Keys no replica stored (unreachable, or too large for it).
    pub failed: u64,
    /// Snapshot files of the backup that were damaged and left out.
    pub damaged: Vec<String>,
    /// Wall time.
    pub duration_ms: u64,
}

/// `POST /restore` body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreRequest {
    /// The backup's id; `None` = the latest.
    pub backup: Option<String>,
}

/// `GET /restore`: progress of the running (or last) restore.
#[derive(Debug, Serialize)]
pub struct RestoreProgress {
    /// True while a restore runs.
    pub running: bool,
    /// The backup being (or last) restored.
    pub backup: Option<String>,
    /// Keys to send.
    pub total: u64,
    /// Keys sent so far.
    pub done: u64,
}

fn internal(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, code, message)
}

/// `YYYYMMDDTHHMMSS.mmmZ` and RFC 3339 for Unix ms `ms` (UTC).
pub fn backup_id(ms: u64) -> (String, String) {
    let secs = ms / 1000;
    let (h, mi, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = (secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let frac = ms % 1000;
    (
        format!("{y:04}{m:02}{d:02}T{h:02}{mi:02}{s:02}.{frac:03}Z"),
        format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{frac:03}Z"),
    )
}

/// True for a name a backup directory can have (also keeps `..` and path
/// separators out of `{"backup": ...}`).
pub fn is_backup_id(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

/// Complete backups in `dir` (with a manifest), oldest first.
fn list_backups(dir: &Path) -> Vec<String> {
    let mut ids: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| is_backup_id(name) && dir.join(name).join(MANIFEST).is_file())
        .collect();
    ids.sort();
    ids
}

impl Master {
    fn backup_dir(&self) -> &Path {
        &self.config.common.backup_dir
    }

    /// Writes a cluster backup now.
    pub async fn backup(self: &Arc<Self>, why: &'static str) -> Result<BackupReport, ApiError> {
        let _one_at_a_time = self.backups.backing_up.lock().await;
        let started = Instant::now();
        let timer = self.metrics.snapshots.duration.start_timer();
        let result = self.backup_inner(started).await;
        match &result {
            Ok(report) => {
                timer.observe_duration();
                self.metrics
                    .snapshots
                    .record_success((self.clock)(), report.keys, report.bytes);
                info!(
                    backup = %report.backup,
                    path = %report.path,
                    nodes = report.nodes,
                    missing = ?report.missing,
                    keys = report.keys,
                    bytes = report.bytes,
                    duration_ms = report.duration_ms,
                    why,
                    "cluster backup written"
                );
            }
            Err(e) => {
                timer.stop_and_discard();
                self.metrics.snapshots.failures.inc();
                error!(code = e.code, error = %e.message, why, "cluster backup failed");
            }
        }
        result
    }

    async fn backup_inner(self: &Arc<Self>, started: Instant) -> Result<BackupReport, ApiError> {
        let nodes: Vec<_> = self
            .nodes()
            .into_iter()
            .filter(|n| n.state == NodeState::Up)
            .collect();
        if nodes.is_empty() {
            return Err(ApiError::unavailable(
                "no_auxiliaries",
                "no auxiliary is up to back up",
            ));
        }
        let created_ms = (self.clock)();
        let (mut id, created) = backup_id(created_ms);
        let root = self.backup_dir().to_path_buf();
        let mut n = 1;
        while root.join(&id).exists() {
            id = format!("{}-{n}", backup_id(created_ms).0);
            n += 1;
        }
        let partial = root.join(format!(".{id}.partial"));
        let mkdir = {
            let partial = partial.clone();
            move || std::fs::create_dir_all(&partial)
        };
        tokio::task::spawn_blocking(mkdir)
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)))
            .map_err(|e| {
                internal(
                    "backup_failed",
                    format!("cannot create {}: {e}", partial.display()),
                )
            })?;

        // Every auxiliary snapshots at about the same moment.
        let asks = nodes.iter().map(|node| async move {
            self.control
                .snapshot_now(&node.addr, SNAPSHOT_CALL_TIMEOUT)
                .await
                .map_err(|e| e.to_string())
        });
        let asked = join_all(asks).await;

        // Then one at a time: fetch, check, write.
        let mut manifest_nodes = Vec::new();
        let mut missing = Vec::new();
        let mut key_hashes: HashSet<u64> = HashSet::new();
        for (node, asked) in nodes.iter().zip(asked) {
            if let Err(e) = asked {
                warn!(node = %node.id, error = %e, "auxiliary did not snapshot; left out of the backup");
                missing.push(node.id.clone());
                continue;
            }
            match self.fetch_snapshot(&node.addr).await {
                Ok(bytes) => {
                    let file = format!("{}.{}", file_stem(&node.id), snapshot_file::SNAPSHOT_EXT);
                    let path = partial.join(&file);
                    let checked = tokio::task::spawn_blocking(move || {
                        let snap = snapshot::decode(&bytes)
                            .map_err(|e| SnapshotCopyError::Damaged(e.to_string()))?;
                        // Not the expired floors the snapshot carries: no
                        // keys of the backup.
                        let hashes: Vec<u64> = snap
                            .entries
                            .iter()
                            .filter(|e| !snap.expired_when_written(e))
                            .map(|e| distcache_core::key_hash(&e.key))
                            .collect();
                        snapshot_file::write_atomic(&path, |out| {
                            std::io::Write::write_all(out, &bytes)
                        })
                        .map_err(|e| {
                            SnapshotCopyError::Write(format!("writing {}: {e}", path.display()))
                        })?;
                        let mut header = snap.header;
                        header.entry_count = hashes.len() as u64;
                        Ok::<_, SnapshotCopyError>((header, hashes, bytes.len() as u64))
                    })
                    .await
                    .unwrap_or_else(|e| Err(SnapshotCopyError::Write(e.to_string())));
                    match checked {
                        Ok((header, hashes, size)) => {
                            key_hashes.extend(hashes);
                            manifest_nodes.push(ManifestNode {
                                id: node.id.clone(),
                                file,
                                entries: header.entry_count,
                                bytes: size,
                                created_ms: header.created_at_ms,
                            });
                        }
                        Err(SnapshotCopyError::Write(e)) => {
                            // This master's disk failed: no backup at all.
                            let _ = std::fs::remove_dir_all(&partial);
                            return Err(internal("backup_failed", e));
                        }
                        Err(SnapshotCopyError::Damaged(e)) => {
                            warn!(node = %node.id, error = %e, "auxiliary sent a damaged snapshot; left out");
                            missing.push(node.id.clone());
                        }
                    }
                }
                Err(e) => {
                    warn!(node = %node.id, error = %e, "could not fetch the auxiliary's snapshot; left out");
                    missing.push(node.id.clone());
                }
            }
        }
        if manifest_nodes.is_empty() {
            let _ = std::fs::remove_dir_all(&partial);
            return Err(ApiError::unavailable(
                "backup_failed",
                format!(
                    "no auxiliary gave a snapshot (tried {})",
                    missing.join(", ")
                ),
            ));
        }
        let manifest = Manifest {
            id: id.clone(),
            created,
            created_ms,
            master: self.id.clone(),
            entries: manifest_nodes.iter().map(|n| n.entries).sum(),
            bytes: manifest_nodes.iter().map(|n| n.bytes).sum(),
            keys: key_hashes.len() as u64,
            nodes: manifest_nodes,
            missing,
        };
        let finish = {
            let (root, partial, id, manifest) =
                (root.clone(), partial.clone(), id.clone(), manifest.clone());
            move || -> std::io::Result<()> {
                let json = serde_json::to_vec_pretty(&manifest).map_err(std::io::Error::other)?;
                snapshot_file::write_atomic(&partial.join(MANIFEST), |out| {
                    std::io::Write::write_all(out, &json)
                })?;
                std::fs::rename(&partial, root.join(&id))?;
                snapshot_file::sync_dir(&root)?;
                // Keep the newest few.
                let ids = list_backups(&root);
                for old in ids.iter().take(ids.len().saturating_sub(KEEP_BACKUPS)) {
                    let _ = std::fs::remove_dir_all(root.join(old));
                }
                Ok(())
            }
        };
        if let Err(e) = tokio::task::spawn_blocking(finish)
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)))
        {
            let _ = std::fs::remove_dir_all(&partial);
            return Err(internal(
                "backup_failed",
                format!("writing the backup in {}: {e}", root.display()),
            ));
        }
        Ok(BackupReport {
            backup: id.clone(),
            path: root.join(&id).display().to_string(),
            nodes: manifest.nodes.len(),
            missing: manifest.missing,
            keys: manifest.keys,
            entries: manifest.entries,
            bytes: manifest.bytes,
            duration_ms: started.elapsed().as_millis() as u64,
        })
    }

    async fn fetch_snapshot(&self, addr: &str) -> Result<Bytes, String> {
        self.control
            .snapshot_file(addr, SNAPSHOT_CALL_TIMEOUT)
            .await
            .map_err(|e| e.to_string())
    }

    /// Progress of the running (or last) restore.
    pub fn restore_progress(&self) -> RestoreProgress {
        let p = &self.backups.progress;
        RestoreProgress {
            running: p.running.load(Ordering::Relaxed),
            backup: p.backup.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            total: p.total.load(Ordering::Relaxed),
            done: p.done.load(Ordering::Relaxed),
        }
    }

    /// Restores backup `id` (default: the latest) into today's ring.
    pub async fn restore(self: &Arc<Self>, id: Option<String>) -> Result<RestoreReport, ApiError> {
        let Ok(_one_at_a_time) = self.backups.restoring.try_lock() else {
            return Err(ApiError::new(
                axum::http::StatusCode::CONFLICT,
                "restore_running",
                "a restore is already running on this master",
            ));
        };
        let started = Instant::now();
        let root = self.backup_dir().to_path_buf();
        let id = match id {
            Some(id) if !is_backup_id(&id) => {
                return Err(ApiError::bad_request(
                    "bad_backup",
                    format!("{id:?} is not a backup id"),
                ));
            }
            Some(id) => id,
            None => list_backups(&root).pop().ok_or_else(|| {
                ApiError::not_found(
                    "backup_not_found",
                    format!("no backup in {} (BACKUP_DIR)", root.display()),
                )
            })?,
        };
        let dir = root.join(&id);
        let (entries, damaged) = tokio::task::spawn_blocking({
            let dir = dir.clone();
            move || load_backup(&dir)
        })
        .await
        .unwrap_or_else(|e| Err(internal("restore_failed", e.to_string())))?;
        let p = &self.backups.progress;
        *p.backup.lock().unwrap_or_else(|e| e.into_inner()) = Some(id.clone());
        p.total.store(entries.len() as u64, Ordering::Relaxed);
        p.done.store(0, Ordering::Relaxed);
        let running = RunningFlag::raise(&p.running);
        let result = self.place(&id, entries).await;
        // Restored entries were written around the data path.
        self.clear_near();
        drop(running);
        let mut report = result?;
        report.damaged = damaged;
        report.duration_ms = started.elapsed().as_millis() as u64;
        info!(
            backup = %report.backup,
            keys = report.keys,
            restored = report.restored,
            skipped_newer = report.skipped_newer,
            skipped_expired = report.skipped_expired,
            failed = report.failed,
            damaged = ?report.damaged,
            duration_ms = report.duration_ms,
            "restore done"
        );
        Ok(report)
    }

    /// Sends every entry to its replicas in today's ring.
    async fn place(
        self: &Arc<Self>,
        id: &str,
        entries: Vec<(Bytes, Entry)>,
    ) -> Result<RestoreReport, ApiError> {
        let mut report = RestoreReport {
            backup: id.to_string(),
            keys: entries.len() as u64,
            ..RestoreReport::default()
        };
        let now = (self.clock)();
        let view = self.view.load_full();
        // Per node: the indices of the entries it gets.
        let mut per_node: HashMap<String, (Arc<NodeRef>, Vec<usize>)> = HashMap::new();
        let mut live = Vec::with_capacity(entries.len());
        for (i, (key, entry)) in entries.iter().enumerate() {
            if entry.expires_at_ms.is_some_and(|at| at <= now) {
                report.skipped_expired += 1;
                continue;
            }
            // Keep this master's clock ahead of the versions it restores.
            self.versions.observe(entry.version);
            live.push(i);
            for node in self.route(&view, key)? {
                per_node
                    .entry(node.id.clone())
                    .or_insert_with(|| (node.clone(), Vec::new()))
                    .1
                    .push(i);
            }
        }
        self.backups
            .progress
            .done
            .fetch_add(report.skipped_expired, Ordering::Relaxed);
        #[derive(Clone, Copy, Default)]
        struct Outcome {
            stored: bool,
            stale: bool,
        }
        let mut outcomes = vec![Outcome::default(); entries.len()];
        let entries = &entries;
        let sends = per_node.into_values().map(|(node, indices)| async move {
            let mut answers: Vec<(usize, WriteStatus)> = Vec::with_capacity(indices.len());
            for chunk in indices.chunks(RESTORE_BATCH) {
                let batch = chunk
                    .iter()
                    .map(|&i| KeyedEntry {
                        key: entries[i].0.clone(),
                        entry: entries[i].1.clone(),
                    })
                    .collect();
                match node.client.call(Request::SetMany { entries: batch }).await {
                    Ok(Response::WrittenMany(statuses)) if statuses.len() == chunk.len() => {
                        answers.extend(chunk.iter().copied().zip(statuses));
                    }
                    Ok(other) => {
                        warn!(node = %node.id, answer = ?other, "restore batch refused");
                    }
                    Err(e) => warn!(node = %node.id, error = %e, "restore batch failed"),
                }
                self.backups
                    .progress
                    .done
                    .fetch_add(chunk.len() as u64, Ordering::Relaxed);
            }
            answers
        });
        for answers in join_all(sends).await {
            for (i, status) in answers {
                match status {
                    WriteStatus::Stored => outcomes[i].stored = true,
                    WriteStatus::Stale { .. } | WriteStatus::Expired => outcomes[i].stale = true,
                    WriteStatus::TooLarge => {}
                }
            }
        }
        // The bar counts sends per replica; settle it on the key total.
        self.backups
            .progress
            .done
            .store(report.keys, Ordering::Relaxed);
        for &i in &live {
            match outcomes[i] {
                Outcome { stored: true, .. } => report.restored += 1,
                Outcome { stale: true, .. } => report.skipped_newer += 1,
                _ => report.failed += 1,
            }
        }
        report.skipped = report.skipped_newer + report.skipped_expired;
        Ok(report)
    }
}

/// A backup's entries, each key once.
type Merged = Vec<(Bytes, Entry)>;

/// Reads and merges a backup's snapshots: each key once, at its highest
/// version, in the order first seen. Damaged files are left out and named.
fn load_backup(dir: &Path) -> Result<(Merged, Vec<String>), ApiError> {
    let manifest_path = dir.join(MANIFEST);
    let text = std::fs::read(&manifest_path).map_err(|e| {
        // Not a directory: the id names some other file in BACKUP_DIR, which
        // is no backup either (a client's mistake, not the server's).
        if matches!(
            e.kind(),
            std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
        ) {
            ApiError::not_found(
                "backup_not_found",
                format!("no backup at {}", dir.display()),
            )
        } else {
            internal(
                "restore_failed",
                format!("reading {}: {e}", manifest_path.display()),
            )
        }
    })?;
    let manifest: Manifest = serde_json::from_slice(&text).map_err(|e| {
        internal(
            "backup_damaged",
            format!("{} is not a valid manifest: {e}", manifest_path.display()),
        )
    })?;
    let mut merged: Vec<(Bytes, Entry)> = Vec::new();
    let mut index: HashMap<Bytes, usize> = HashMap::new();
    let mut damaged = Vec::new();
    for node in &manifest.nodes {
        let path: PathBuf = dir.join(file_stem(&node.file));
        let mut snap: Snapshot = match std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|data| snapshot::decode(&data).map_err(|e| e.to_string()))
        {
            Ok(snap) => snap,
            Err(e) => {
                error!(path = %path.display(), error = %e, "backup snapshot is damaged; left out of the restore");
                damaged.push(path.display().to_string());
                continue;
            }
        };
        for e in std::mem::take(&mut snap.entries) {
            // An expired floor is no key of the backup, and must not
            // outrank a copy of its key written again below it (a
            // master whose clock is behind): that copy was live.
            if snap.expired_when_written(&e) {
                continue;
            }
            match index.get(&e.key) {
                Some(&at) => {
                    if e.entry.version > merged[at].1.version {
                        merged[at].1 = e.entry;
                    }
                }
                None => {
                    index.insert(e.key.clone(), merged.len());
                    merged.push((e.key, e.entry));
                }
            }
        }
    }
    Ok((merged, damaged))
}

/// Cluster backups every `BACKUP_INTERVAL` until shutdown.
pub fn start(master: &Arc<Master>) {
    let period = Duration::from_secs(master.config.backup_interval);
    if period.is_zero() {
        return;
    }
    let m = master.clone();
    master.shutdown.spawn(async move {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = m.shutdown.triggered() => return,
            }
            let up = m.nodes().iter().any(|n| n.state == NodeState::Up);
            if up {
                // Logged and counted inside.
                let _ = m.backup("interval").await;
            }
        }
    });
}

/// Why one auxiliary's snapshot did not make it into a backup.
#[derive(Debug, thiserror::Error)]
enum SnapshotCopyError {
    /// The auxiliary sent bytes that are not a sound snapshot: it is left
    /// out of the backup.
    #[error("{0}")]
    Damaged(String),
    /// This master could not write it: the whole backup fails.
    #[error("{0}")]
    Write(String),
}

/// Holds a progress flag up while it lives: a restore whose request is
/// dropped halfway (the client went away) lowers it too.
struct RunningFlag<'a>(&'a std::sync::atomic::AtomicBool);

impl<'a> RunningFlag<'a> {
    fn raise(flag: &'a std::sync::atomic::AtomicBool) -> Self {
        flag.store(true, Ordering::Relaxed);
        RunningFlag(flag)
    }
}

impl Drop for RunningFlag<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory of its own under the system's temporary directory.
    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "distcache-backup-{name}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Whatever a restore's id names in BACKUP_DIR, if it is not a backup
    /// the answer is 404 `backup_not_found`, never a 500.
    #[test]
    fn an_id_that_names_no_backup_is_not_found() {
        let root = scratch("not-found");
        std::fs::write(root.join("notes.txt"), b"not a backup").unwrap();
        std::fs::create_dir(root.join("empty")).unwrap();
        for id in ["missing", "notes.txt", "empty"] {
            let err = load_backup(&root.join(id)).unwrap_err();
            assert_eq!(err.status, axum::http::StatusCode::NOT_FOUND, "{id}");
            assert_eq!(err.code, "backup_not_found", "{id}");
        }
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn a_restore_dropped_halfway_lowers_its_running_flag() {
        let flag = std::sync::atomic::AtomicBool::new(false);
        let restore = async {
            let _running = RunningFlag::raise(&flag);
            std::future::pending::<()>().await;
        };
        let mut restore = Box::pin(restore);
        let waker = futures_util::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        assert!(restore.as_mut().poll(&mut cx).is_pending());
        assert!(flag.load(Ordering::Relaxed), "raised while it runs");
        drop(restore);
        assert!(!flag.load(Ordering::Relaxed), "lowered when dropped");
    }

    /// A key that expired at a version from a master whose clock ran
    /// ahead, and another key of its store shard written since, below that
    /// version: the snapshot holds the live key, the expired one's
    /// tombstone and, as the shard's expired floor, the expired version.
    /// The restore brings back the live key alone, and counts no other.
    #[test]
    fn a_restore_keeps_a_key_written_below_its_shards_expired_floor() {
        use distcache_core::{Store, StoreConfig, Version};
        const NOW: u64 = 1_700_000_000_000;
        let at = |millis| Version {
            millis,
            counter: 0,
            origin: 1,
        };
        let store = Store::new(StoreConfig::default());
        let ahead = Entry {
            value: Bytes::from_static(b"41"),
            expires_at_ms: Some(NOW + 1_000),
            version: at(NOW + 5_000),
        };
        store.set(b"n", ahead, NOW);
        let now = NOW + 1_001;
        assert_eq!(store.purge_expired(now, 100), 1);
        // A key of the same shard, so below its floor.
        let key = (0..)
            .map(|i| format!("p{i}"))
            .find(|k| store.shard_for(k.as_bytes()) == store.shard_for(b"n"))
            .unwrap();
        let again = Entry {
            value: Bytes::from_static(b"7"),
            expires_at_ms: None,
            version: at(now),
        };
        store.set(key.as_bytes(), again.clone(), now);
        let encoded = snapshot::encode_store(&store, now);
        let origin = snapshot::Origin {
            node_id: "aux-1",
            created_at_ms: now,
            shard_count: store.shard_count() as u32,
            log_generation: 0,
        };
        let (bytes, _) = snapshot::write_encoded(Vec::new(), origin, &encoded).unwrap();
        let dir = scratch("floor");
        std::fs::write(dir.join("aux-1.snap"), bytes).unwrap();
        let manifest = Manifest {
            id: "b".into(),
            created: String::new(),
            created_ms: now,
            master: "m".into(),
            nodes: vec![ManifestNode {
                id: "aux-1".into(),
                file: "aux-1.snap".into(),
                entries: 1,
                bytes: 0,
                created_ms: now,
            }],
            missing: Vec::new(),
            keys: 1,
            entries: 1,
            bytes: 0,
        };
        std::fs::write(dir.join(MANIFEST), serde_json::to_vec(&manifest).unwrap()).unwrap();
        let (merged, damaged) = load_backup(&dir).unwrap();
        assert!(damaged.is_empty());
        assert_eq!(merged, vec![(Bytes::from(key), again)]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn backup_ids_sort_by_time_and_keep_out_paths() {
        let (id, rfc) = backup_id(1_700_000_000_123);
        assert_eq!(id, "20231114T221320.123Z");
        assert_eq!(rfc, "2023-11-14T22:13:20.123Z");
        assert!(is_backup_id(&id));
        for bad in ["", ".", "..", ".hidden", "a/b", "a\\b", &"x".repeat(65)] {
            assert!(!is_backup_id(bad), "{bad:?}");
        }
    }
}
