//! Backup directories that fail under an auxiliary, made with tools that
//! need root: a full disk (a 64 KiB tmpfs, `mount`) and a read-only
//! directory (`chattr +i`, which stops root too, where a chmod would not).
//! Either way the previous snapshot is kept, the failure is logged and
//! counted in `distcache_snapshot_failures_total`, and the node serves.
//! `./scripts/test` runs this file only as root (always in CI).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Cluster, Spec};
use serde_json::{Value, json};

fn post_backup(c: &Cluster) -> Value {
    let resp = c
        .http
        .post(c.url(0, "/backup"))
        .send()
        .expect("POST /backup");
    assert_eq!(resp.status(), 200, "POST /backup");
    resp.json().expect("json")
}

/// Checks a failed snapshot: the previous file is intact, the failure is
/// logged and counted, and the node serves.
fn assert_failed_snapshot_keeps_previous(c: &mut Cluster, path: &Path, before: &[u8]) {
    // The master leaves the auxiliary out; with none left, the backup fails.
    let resp = c.http.post(c.url(0, "/backup")).send().unwrap();
    common::assert_error(resp, 503, "backup_failed");
    assert_eq!(
        std::fs::read(path).expect("still there"),
        before,
        "previous snapshot intact"
    );
    let failures = c
        .aux_metric("aux-1", "distcache_snapshot_failures_total")
        .unwrap_or(0.0);
    assert!(failures >= 1.0, "failures metric is {failures}");
    let log = c.aux("aux-1").proc.log_text();
    assert!(log.contains("snapshot failed"), "the failure is logged");
    assert_eq!(
        c.value(0, "big0").map(|v| v.is_string()),
        Some(true),
        "still serving reads"
    );
    assert_eq!(
        c.set(0, "after", json!(1)).status(),
        200,
        "still serving writes"
    );
}

fn one_aux_cluster_in(backup_dir: &Path) -> Cluster {
    let mut spec = Spec {
        auxiliaries: 1,
        replicas: 1,
        ..Spec::default()
    };
    spec.aux_env
        .push(("BACKUP_DIR".into(), backup_dir.display().to_string()));
    Cluster::start(spec)
}

/// Unmounts a tmpfs when the test ends, however it ends.
struct Mount(PathBuf);
impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// A full disk: the auxiliary's BACKUP_DIR is a 64 KiB tmpfs (mounting
/// needs root, which the tests run as; chmod would not stop root).
#[test]
fn a_full_backup_dir_keeps_the_previous_snapshot_and_the_node_serves() {
    common::require_root("mounting a tmpfs");
    let outer = tempfile::tempdir().unwrap();
    let dir = outer.path().join("small");
    std::fs::create_dir(&dir).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(&dir)
        .status()
        .expect("run mount");
    assert!(
        mounted.success(),
        "mounting a tmpfs needs root (CAP_SYS_ADMIN)"
    );
    let _mount = Mount(dir.clone());

    let mut c = one_aux_cluster_in(&dir);
    assert_eq!(c.set(0, "big0", json!("x".repeat(1000))).status(), 200);
    post_backup(&c);
    let path = dir.join("aux-1.snap");
    let before = std::fs::read(&path).expect("first snapshot");
    // 200 KB of values cannot fit in 64 KiB.
    for i in 1..200 {
        assert_eq!(
            c.set(0, &format!("big{i}"), json!("x".repeat(1000)))
                .status(),
            200
        );
    }
    assert_failed_snapshot_keeps_previous(&mut c, &path, &before);
    let log = c.aux("aux-1").proc.log_text();
    assert!(
        log.contains("No space left on device"),
        "the log says the disk is full"
    );
}

/// Clears the immutable flag when the test ends, however it ends.
struct Immutable(PathBuf);
impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
    }
}

/// A read-only directory: `chattr +i` on the auxiliary's BACKUP_DIR, which
/// stops root too (a chmod would not).
#[test]
fn a_read_only_backup_dir_keeps_the_previous_snapshot_and_the_node_serves() {
    common::require_root("chattr +i");
    let outer = tempfile::tempdir().unwrap();
    let dir = outer.path().join("ro");
    std::fs::create_dir(&dir).unwrap();
    let mut c = one_aux_cluster_in(&dir);
    assert_eq!(c.set(0, "big0", json!("first")).status(), 200);
    post_backup(&c);
    let path = dir.join("aux-1.snap");
    let before = std::fs::read(&path).expect("first snapshot");

    let flagged = Command::new("chattr")
        .arg("+i")
        .arg(&dir)
        .status()
        .expect("run chattr");
    assert!(
        flagged.success(),
        "chattr +i needs root and a file system that supports it"
    );
    let _flag = Immutable(dir.clone());
    assert_eq!(c.set(0, "big1", json!("second")).status(), 200);
    assert_failed_snapshot_keeps_previous(&mut c, &path, &before);
    let log = c.aux("aux-1").proc.log_text();
    assert!(log.contains("Operation not permitted"), "the log says why");
}
