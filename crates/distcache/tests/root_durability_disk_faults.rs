//! The mutation log when the disk fails under it: a full file system and a
//! read-only one. The node keeps serving, counts and logs the failure, says
//! in `/health` that it is not durable, and becomes durable again by itself
//! once a snapshot can be written. Needs root to mount small tmpfs file
//! systems, as on CI.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{Cluster, Spec, assert_ok, run_ok, wait_until};
use serde_json::json;

/// A tmpfs mounted at a fresh directory, unmounted on drop. Declared before
/// the cluster, so that it is dropped after the processes using it.
struct Tmpfs {
    _parent: tempfile::TempDir,
    path: PathBuf,
}

impl Tmpfs {
    fn mount(options: &str) -> Tmpfs {
        let parent = tempfile::tempdir().expect("temp dir");
        let path = parent.path().join("disk");
        std::fs::create_dir(&path).unwrap();
        run_ok(
            "mount a tmpfs (needs root)",
            Command::new("mount")
                .args(["-t", "tmpfs", "-o", options, "tmpfs"])
                .arg(&path),
        );
        Tmpfs {
            _parent: parent,
            path,
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

fn one_aux_on(dir: &Path) -> Cluster {
    Cluster::start(Spec {
        masters: 1,
        auxiliaries: 1,
        replicas: 1,
        aux_env: vec![
            ("BACKUP_INTERVAL".into(), "0".into()),
            ("BACKUP_DIR".into(), dir.display().to_string()),
        ],
        ..Spec::default()
    })
}

#[test]
fn a_full_disk_is_reported_writes_go_on_and_durability_comes_back_when_space_does() {
    let disk = Tmpfs::mount("size=1m");
    let mut c = one_aux_on(&disk.path);
    assert_eq!(c.aux_health("aux-1")["durability"]["durable"], json!(true));
    // Leave about 100 KiB free.
    let filler = disk.path.join("filler");
    std::fs::write(&filler, vec![0u8; 900 * 1024]).unwrap();

    let value = "x".repeat(4000);
    let mut written = 0;
    while c.aux_health("aux-1")["durability"]["durable"] == json!(true) {
        assert!(written < 100, "the log never filled the disk");
        // Every write is acknowledged, before and after the disk is full.
        assert_ok(c.set(0, &format!("k{written}"), json!(value)));
        written += 1;
    }
    for i in written..written + 5 {
        assert_ok(c.set(0, &format!("k{i}"), json!(value)));
    }
    written += 5;
    let health = c.aux_health("aux-1");
    let error = health["durability"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("No space left"), "{health}");
    assert!(
        c.aux_metric("aux-1", "distcache_log_write_failures_total")
            .unwrap()
            >= 1.0
    );
    assert_eq!(c.aux_metric("aux-1", "distcache_log_durable"), Some(0.0));

    // Space again: the node repairs itself with a snapshot.
    std::fs::remove_file(&filler).unwrap();
    wait_until(Duration::from_secs(30), "durable again", || {
        c.aux_health("aux-1")["durability"]["durable"] == json!(true)
    });
    assert_eq!(c.aux_metric("aux-1", "distcache_log_durable"), Some(1.0));

    // And everything acknowledged, while durable or not, survives a kill.
    c.aux("aux-1").proc.kill();
    c.aux("aux-1").proc.restart();
    wait_until(
        Duration::from_secs(30),
        "the restarted auxiliary serves",
        || c.get(0, "k0").status() == 200,
    );
    for i in 0..written {
        assert_eq!(c.value(0, &format!("k{i}")), Some(json!(value)), "k{i}");
    }
}

#[test]
fn a_read_only_directory_is_reported_and_the_node_serves_anyway() {
    let disk = Tmpfs::mount("ro,size=1m");
    let c = one_aux_on(&disk.path);
    assert_ok(c.set(0, "k", json!("served")));
    assert_eq!(c.value(0, "k"), Some(json!("served")));
    let health = c.aux_health("aux-1");
    assert_eq!(health["durability"]["durable"], json!(false), "{health}");
    let error = health["durability"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("Read-only file system"), "{health}");
    assert!(
        c.aux_metric("aux-1", "distcache_log_write_failures_total")
            .unwrap()
            >= 1.0
    );
}
