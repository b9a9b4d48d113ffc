//! The auxiliary's snapshots: restored once at start before the node serves,
//! written every `BACKUP_INTERVAL`, on graceful shutdown, and on demand
//! (`POST /internal/snapshot`, which a master's `POST /backup` calls), and
//! handed to masters as bytes (`GET /internal/snapshot`).
//!
//! A snapshot encodes the store into memory one shard at a time
//! ([`snapshot::encode_store`]), so a request waits at most for one shard's
//! copy; the file is written after, on a blocking thread, with no lock held. The file is replaced
//! atomically (see [`crate::snapshot_file`]): a failed write (disk full,
//! permissions) leaves the previous snapshot as it was, is logged, and
//! counts in `distcache_snapshot_failures_total`; the node keeps serving.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use distcache_core::clock::Clock;
use distcache_core::snapshot;
use distcache_core::store::Store;
use serde::Serialize;
use tracing::{error, info, warn};

use super::{Node, mutation_log};
use crate::http::ApiError;
use crate::shutdown::Shutdown;
use crate::snapshot_file::{self, snapshot_path};

/// Where and how often this node snapshots.
pub(super) struct Snapshots {
    /// `BACKUP_DIR`.
    pub dir: PathBuf,
    /// `BACKUP_DIR/<node id>.snap`.
    pub path: PathBuf,
    /// `BACKUP_INTERVAL`; zero = only on demand.
    pub interval: Duration,
    /// One snapshot at a time: they share the temporary file.
    writing: tokio::sync::Mutex<()>,
}

impl Snapshots {
    pub fn new(backup_dir: &std::path::Path, node_id: &str, interval_secs: u64) -> Self {
        Snapshots {
            dir: backup_dir.to_path_buf(),
            path: snapshot_path(backup_dir, node_id),
            interval: Duration::from_secs(interval_secs),
            writing: tokio::sync::Mutex::new(()),
        }
    }
}

/// What one snapshot wrote.
#[derive(Clone, Debug, Serialize)]
pub struct SnapshotReport {
    /// The file.
    pub path: String,
    /// Entries saved.
    pub entries: u64,
    /// Size of the file.
    pub bytes: u64,
    /// When the copy was taken, Unix ms.
    pub created_at_ms: u64,
    /// Wall time of the whole snapshot.
    pub duration_ms: u64,
}

/// Loads the node's snapshot into `store`, before the node serves, and
/// returns the mutation log generation replay starts at (the snapshot's; 0
/// without one). A missing file means an empty start; a damaged one is
/// logged, moved aside, and the node starts empty; an unreadable one is
/// logged and left alone.
pub(super) async fn restore_at_start(path: PathBuf, store: Arc<Store>, clock: Clock) -> u64 {
    let result = tokio::task::spawn_blocking(move || restore_blocking(&path, &store, &clock)).await;
    result.unwrap_or_else(|e| {
        error!(error = %e, "restoring the snapshot failed; starting empty");
        0
    })
}

fn restore_blocking(path: &std::path::Path, store: &Store, clock: &Clock) -> u64 {
    // A temporary file is what a crash during a snapshot leaves behind.
    let _ = std::fs::remove_file(snapshot_file::temp_path(path));
    let started = Instant::now();
    let data = match std::fs::read(path) {
        Ok(data) => data,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            info!(path = %path.display(), "no snapshot; starting empty");
            return 0;
        }
        Err(e) => {
            error!(path = %path.display(), error = %e, "cannot read the snapshot; starting empty");
            return 0;
        }
    };
    let (header, counts) = match snapshot::restore_bytes(&data, store, clock()) {
        Ok(restored) => restored,
        Err(e) => {
            match snapshot_file::move_aside(path, clock()) {
                Ok(aside) => error!(
                    path = %path.display(),
                    moved_to = %aside.display(),
                    error = %e,
                    "snapshot is damaged; moved it aside and starting empty"
                ),
                Err(move_error) => error!(
                    path = %path.display(),
                    error = %e,
                    move_error = %move_error,
                    "snapshot is damaged and could not be moved aside; starting empty"
                ),
            }
            return 0;
        }
    };
    info!(
        path = %path.display(),
        written_by = %header.node_id,
        taken_at_ms = header.created_at_ms,
        entries = header.entry_count,
        tombstones = counts.tombstones,
        log_generation = header.log_generation,
        restored = counts.restored,
        expired = counts.expired,
        expired_floors = counts.floors,
        evicted = counts.evicted,
        too_large = counts.too_large,
        duration_ms = started.elapsed().as_millis() as u64,
        "snapshot restored"
    );
    header.log_generation
}

/// Takes a snapshot now. Failures are logged and counted here.
pub(super) async fn take(node: &Arc<Node>, why: &'static str) -> Result<SnapshotReport, ApiError> {
    let _one_at_a_time = node.snapshots.writing.lock().await;
    let started = Instant::now();
    let timer = node.metrics.snapshots.duration.start_timer();
    let path = node.snapshots.path.clone();
    let store = node.store.clone();
    let clock = node.clock.clone();
    let node_id = node.identity.node_id.clone();
    let log = node.log.clone();
    let dir = node.snapshots.dir.clone();
    let result = tokio::task::spawn_blocking(move || {
        // A new log generation first: everything recorded in older ones was
        // applied before the copy below starts (see `mutation_log`).
        let log_generation = log.as_ref().map_or(0, |log| log.rotate());
        let now = clock();
        // One shard's lock at a time, only while its records are encoded.
        let encoded = snapshot::encode_store(&store, now);
        // The keys: not the expired floors the file also carries.
        let count = encoded.keys();
        let origin = snapshot::Origin {
            node_id: &node_id,
            created_at_ms: now,
            shard_count: store.shard_count() as u32,
            log_generation,
        };
        let bytes = snapshot_file::write_atomic(&path, |out| {
            snapshot::write_encoded(out, origin, &encoded).map(|(_, bytes)| bytes)
        })?;
        match &log {
            Some(log) => log.snapshot_written(log_generation, bytes),
            // Logs left from a run with the log on are covered now.
            None => mutation_log::delete_generations(&dir, &node_id, u64::MAX),
        }
        Ok::<_, std::io::Error>((now, count, bytes))
    })
    .await
    .unwrap_or_else(|e| Err(std::io::Error::other(e)));
    let path = node.snapshots.path.display().to_string();
    match result {
        Ok((created_at_ms, entries, bytes)) => {
            timer.observe_duration();
            node.metrics
                .snapshots
                .record_success(created_at_ms, entries, bytes);
            let report = SnapshotReport {
                path,
                entries,
                bytes,
                created_at_ms,
                duration_ms: started.elapsed().as_millis() as u64,
            };
            info!(
                path = %report.path,
                entries,
                bytes,
                duration_ms = report.duration_ms,
                why,
                "snapshot written"
            );
            Ok(report)
        }
        Err(e) => {
            timer.stop_and_discard();
            node.metrics.snapshots.failures.inc();
            error!(
                path = %path,
                error = %e,
                why,
                "snapshot failed; the previous snapshot is kept"
            );
            Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "snapshot_failed",
                format!("writing {path} failed: {e}"),
            ))
        }
    }
}

/// Snapshots every `BACKUP_INTERVAL` (if not 0), and whenever the mutation
/// log asks (it grew too large, or failed and needs a snapshot to be durable
/// again), until shutdown.
pub(super) async fn snapshot_loop(node: Arc<Node>, shutdown: Shutdown) {
    let period = node.snapshots.interval;
    // With no interval the tick never comes: a day is as good as never, and
    // keeps one `select!` for both cases.
    let tick_every = if period.is_zero() {
        Duration::from_secs(86_400)
    } else {
        period
    };
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + tick_every, tick_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // A request made while no one was waiting is kept (`Notify`'s
        // permit), so a fresh wait each time misses none.
        let log_wants = async {
            match &node.log {
                Some(log) => log.snapshot_wanted().await,
                None => std::future::pending().await,
            }
        };
        let why = tokio::select! {
            _ = tick.tick(), if !period.is_zero() => "interval",
            _ = log_wants => "log",
            _ = shutdown.triggered() => return,
        };
        // Failures are logged and counted in `take`; the next tick retries.
        let failed = take(&node, why).await.is_err();
        let broken = node.log.as_ref().is_some_and(|log| log.is_broken());
        if failed || broken {
            // The log stays broken until a snapshot succeeds: try again
            // soon, but not in a tight loop while the disk is full.
            tokio::select! {
                _ = tokio::time::sleep(mutation_log::REPAIR_RETRY) => {}
                _ = shutdown.triggered() => return,
            }
            if broken {
                if let Some(log) = &node.log {
                    log.ask_for_snapshot();
                }
            }
        }
    }
}

/// The last snapshot on graceful shutdown, whatever `BACKUP_INTERVAL` is:
/// the node restores its snapshot when it starts again, so an older one
/// left in place would bring back keys deleted or overwritten since.
pub(super) async fn on_shutdown(node: &Arc<Node>) {
    if take(node, "shutdown").await.is_err() {
        warn!("no snapshot at shutdown");
    }
}

/// `POST /internal/snapshot`: snapshot now; answers with the report.
pub(super) async fn post_route(State(node): State<Arc<Node>>) -> Result<Response, ApiError> {
    Ok(Json(take(&node, "requested").await?).into_response())
}

/// `GET /internal/snapshot`: the bytes of the latest snapshot file.
pub(super) async fn get_route(State(node): State<Arc<Node>>) -> Result<Response, ApiError> {
    let path = node.snapshots.path.clone();
    match tokio::fs::read(&path).await {
        Ok(bytes) => {
            Ok(([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ApiError::not_found(
            "no_snapshot",
            format!("no snapshot at {} yet", path.display()),
        )),
        Err(e) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "snapshot_unreadable",
            format!("reading {} failed: {e}", path.display()),
        )),
    }
}
