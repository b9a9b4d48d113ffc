//! The mutation log on a real auxiliary: what a SIGKILL leaves, and what a
//! damaged or leftover log file does at the next start.
//!
//! One master, one auxiliary (REPLICAS=1), no periodic snapshots
//! (`BACKUP_INTERVAL=0`), so that what comes back after a kill comes from
//! the log. Disk faults (a full disk, a read-only directory) need root to
//! mount a file system and are in `root_durability_disk_faults.rs`.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Cluster, Spec, assert_ok, free_port, wait_until, wire_exchange, wire_frame};
use distcache_wire::{Request, Response};
use serde_json::json;

fn one_aux() -> Cluster {
    one_aux_with(&[])
}

/// One master, one auxiliary with no periodic snapshots, plus `settings`.
fn one_aux_with(settings: &[(&str, &str)]) -> Cluster {
    let mut aux_env = vec![
        ("BACKUP_INTERVAL".into(), "0".into()),
        ("LEAVE_ON_SHUTDOWN".into(), "false".into()),
    ];
    aux_env.extend(settings.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Cluster::start(Spec {
        masters: 1,
        auxiliaries: 1,
        replicas: 1,
        aux_env,
        ..Spec::default()
    })
}

fn aux_dir(c: &Cluster) -> PathBuf {
    c.dir.path().join("aux-1")
}

/// The auxiliary's log generations, oldest first.
fn log_files(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let generation = name.strip_prefix("aux-1.log.")?.parse().ok()?;
            Some((generation, e.path()))
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, p)| p).collect()
}

/// Restarts the auxiliary and waits until the master routes to it and a
/// read of `probe` answers.
fn restart_aux(c: &mut Cluster, probe: &str) {
    c.aux("aux-1").proc.restart();
    wait_until(
        Duration::from_secs(30),
        "the restarted auxiliary serves",
        || {
            let status = c.get(0, probe).status().as_u16();
            status == 200 || status == 404
        },
    );
}

fn damage_count(c: &Cluster, kind: &str) -> f64 {
    c.aux_metric(
        "aux-1",
        &format!("distcache_log_replay_damage_total{{kind=\"{kind}\"}}"),
    )
    .unwrap_or(0.0)
}

#[test]
fn with_no_snapshot_at_all_a_sigkill_keeps_every_write_delete_and_overwrite() {
    let mut c = one_aux();
    assert_ok(c.set(0, "kept", json!("v1")));
    assert_ok(c.set(0, "deleted", json!("gone soon")));
    assert_ok(c.set(0, "overwritten", json!("old")));
    assert_ok(c.delete(0, "deleted"));
    assert_ok(c.set(0, "overwritten", json!({"new": true})));
    let health = c.aux_health("aux-1");
    assert_eq!(health["durability"]["durable"], json!(true), "{health}");
    assert_eq!(health["durability"]["fsync"], json!("everysec"));

    c.aux("aux-1").proc.kill();
    assert!(
        !aux_dir(&c).join("aux-1.snap").exists(),
        "no snapshot: what comes back comes from the log"
    );
    restart_aux(&mut c, "kept");
    assert_eq!(c.value(0, "kept"), Some(json!("v1")));
    assert_eq!(c.value(0, "deleted"), None, "a delete is never undone");
    assert_eq!(c.value(0, "overwritten"), Some(json!({"new": true})));
    assert_eq!(
        c.aux_metric("aux-1", "distcache_log_replayed_records_total"),
        Some(5.0)
    );
    // The replayed log is folded into a snapshot and deleted.
    wait_until(
        Duration::from_secs(10),
        "a snapshot after the replay",
        || aux_dir(&c).join("aux-1.snap").exists() && log_files(&aux_dir(&c)).len() == 1,
    );
}

#[test]
fn a_torn_tail_is_cut_and_every_record_before_it_replayed() {
    let mut c = one_aux();
    for i in 0..10 {
        assert_ok(c.set(0, &format!("k{i}"), json!(i)));
    }
    c.aux("aux-1").proc.kill();
    let log = log_files(&aux_dir(&c)).pop().expect("a log file");
    // A crash in the middle of appending the last record.
    let len = std::fs::metadata(&log).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(len - 5)
        .unwrap();
    restart_aux(&mut c, "k0");
    for i in 0..9 {
        assert_eq!(c.value(0, &format!("k{i}")), Some(json!(i)), "k{i}");
    }
    assert_eq!(c.value(0, "k9"), None, "the torn record is cut");
    assert_eq!(damage_count(&c, "torn_tail"), 1.0);
    assert_eq!(damage_count(&c, "corrupt"), 0.0);
    assert_eq!(c.aux_health("aux-1")["durability"]["durable"], json!(true));
    // And the node writes on as before.
    assert_ok(c.set(0, "k9", json!("again")));
    assert_eq!(c.value(0, "k9"), Some(json!("again")));
}

#[test]
fn a_bit_flipped_in_the_middle_stops_replay_there_and_the_node_still_starts() {
    let mut c = one_aux();
    for i in 0..10 {
        assert_ok(c.set(0, &format!("k{i}"), json!(format!("value {i}"))));
    }
    c.aux("aux-1").proc.kill();
    let log = log_files(&aux_dir(&c)).pop().expect("a log file");
    let mut bytes = std::fs::read(&log).unwrap();
    // Records are the same size here (same key and value lengths): flip a
    // bit inside the sixth one's value.
    let header = 24;
    let record = (bytes.len() - header) / 10;
    let at = header + 5 * record + record / 2;
    bytes[at] ^= 0x10;
    std::fs::write(&log, &bytes).unwrap();
    restart_aux(&mut c, "k0");
    for i in 0..5 {
        assert_eq!(
            c.value(0, &format!("k{i}")),
            Some(json!(format!("value {i}"))),
            "k{i}"
        );
    }
    for i in 5..10 {
        assert_eq!(
            c.value(0, &format!("k{i}")),
            None,
            "k{i} is past the damage"
        );
    }
    assert_eq!(damage_count(&c, "corrupt"), 1.0);
    let log_text = c.aux("aux-1").proc.log_text();
    assert!(
        log_text.contains("log is damaged; records after the damage are skipped"),
        "the damage is reported"
    );
}

#[test]
fn a_leftover_log_older_than_the_snapshot_never_rolls_a_key_back() {
    let mut c = one_aux();
    assert_ok(c.set(0, "k", json!("v1")));
    assert_ok(c.set(0, "d", json!("deleted next")));
    assert_ok(c.delete(0, "d"));
    c.aux("aux-1").proc.kill();
    let old_logs: Vec<(PathBuf, Vec<u8>)> = log_files(&aux_dir(&c))
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    restart_aux(&mut c, "k");
    assert_ok(c.set(0, "k", json!("v2")));
    assert_ok(c.set(0, "d", json!("written after the delete")));
    // A graceful stop: a final snapshot, newer than the old log.
    c.aux("aux-1")
        .proc
        .signal(nix::sys::signal::Signal::SIGTERM);
    assert!(
        c.aux("aux-1")
            .proc
            .wait_exit(Duration::from_secs(20))
            .is_some(),
        "the auxiliary stops on SIGTERM"
    );
    for (path, bytes) in &old_logs {
        std::fs::write(path, bytes).unwrap();
    }
    restart_aux(&mut c, "k");
    assert_eq!(c.value(0, "k"), Some(json!("v2")));
    assert_eq!(c.value(0, "d"), Some(json!("written after the delete")));
    assert_eq!(
        c.aux_metric("aux-1", "distcache_log_replayed_records_total"),
        Some(0.0),
        "the snapshot covers the old generation: it is not replayed"
    );
    for (path, _) in &old_logs {
        assert!(!path.exists(), "{} is deleted", path.display());
    }
}

#[test]
fn with_log_fsync_off_nothing_is_logged_and_health_says_so() {
    let mut c = one_aux_with(&[("LOG_FSYNC", "off")]);
    assert_ok(c.set(0, "k", json!(1)));
    let health = c.aux_health("aux-1");
    assert_eq!(health["durability"]["durable"], json!(false), "{health}");
    assert_eq!(health["durability"]["fsync"], json!("off"));
    assert!(log_files(&aux_dir(&c)).is_empty());
    c.aux("aux-1").proc.kill();
    restart_aux(&mut c, "k");
    assert_eq!(c.value(0, "k"), None, "off means only snapshots survive");
}

#[test]
fn the_log_is_folded_into_a_snapshot_before_it_outgrows_log_max_bytes() {
    let mut c = one_aux_with(&[("LOG_MAX_BYTES", "4096")]);
    // 600 overwrites of 30 keys: about 90 KB of records, over a store whose
    // snapshot stays near 5 KB.
    for round in 0..20 {
        for k in 0..30 {
            assert_ok(c.set(
                0,
                &format!("k{k}"),
                json!(format!("round {round:02} of key {k:02}")),
            ));
        }
    }
    // Each snapshot the log asks for starts an empty generation and deletes
    // the older ones; once the last one is done, what is left is less than
    // the limit (or the snapshot's size) plus what came in meanwhile.
    let dir = aux_dir(&c);
    let log_on_disk = || -> u64 {
        log_files(&dir)
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    };
    let snapshot = || {
        std::fs::metadata(dir.join("aux-1.snap"))
            .map(|m| m.len())
            .unwrap_or(0)
    };
    wait_until(
        Duration::from_secs(20),
        "the log folded into snapshots",
        || log_files(&dir).len() == 1 && log_on_disk() < 2 * 4096.max(snapshot()),
    );
    // About 33 KB of records went in; with BACKUP_INTERVAL=0 every
    // snapshot that shortened the log was the log's own request.
    let snapshots = c
        .aux_metric("aux-1", "distcache_snapshot_duration_seconds_count")
        .unwrap_or(0.0);
    assert!(snapshots >= 1.0, "no snapshot folded the log");
    assert!(
        log_on_disk() < 16 * 1024,
        "{} bytes of log left",
        log_on_disk()
    );
    // Nothing was lost on the way: the last round survives a kill.
    c.aux("aux-1").proc.kill();
    restart_aux(&mut c, "k0");
    for k in 0..30 {
        assert_eq!(
            c.value(0, &format!("k{k}")),
            Some(json!(format!("round 19 of key {k:02}"))),
            "k{k}"
        );
    }
}

/// A restarted auxiliary serves nothing routed by a map from before its
/// restart. Its epoch fence lives in memory, so it starts closed and opens
/// at the epoch a master answers its registration with, a map that knows
/// of the restart. Here the only master is stopped (SIGSTOP) while the
/// auxiliary is killed and restarted, so its registration goes unanswered:
/// a request at the epoch from before the kill, as a master that has not
/// applied a newer map would send it, is refused (it used to be served,
/// on copies the map may have handed to other leaders meanwhile), and
/// once the master answers, it is refused as stale.
#[test]
fn a_restarted_auxiliary_serves_nothing_routed_by_a_map_from_before_its_restart() {
    let (http, data) = (free_port(), free_port());
    let mut c = one_aux_with(&[
        ("PORT", &http.to_string()),
        ("DATA_PORT", &data.to_string()),
    ]);
    assert_ok(c.set(0, "k", json!("kept")));
    let before = c.get_json(0, "/ring")["epoch"].as_u64().expect("epoch");
    let data = format!("127.0.0.1:{data}");
    let get_at = |epoch| {
        let req = Request::Get {
            key: bytes::Bytes::from_static(b"k"),
        };
        let (answers, _) = wire_exchange(&data, &[wire_frame(1, epoch, &req)]);
        answers.into_iter().next().expect("an answer")
    };
    assert!(matches!(get_at(before), Response::Value(_)));

    c.masters[0].proc.stop();
    c.aux("aux-1").proc.restart();
    let health = || -> serde_json::Value {
        c.http
            .get(format!("http://127.0.0.1:{http}/health"))
            .send()
            .and_then(|r| r.json())
            .unwrap_or_default()
    };
    wait_until(Duration::from_secs(30), "the auxiliary is back", || {
        health()["status"] == "ok"
    });
    assert_eq!(health()["registered"], false);
    match get_at(before) {
        Response::Error { code, .. } => assert_eq!(code, "not_registered"),
        other => panic!("served before any master answered the registration: {other:?}"),
    }

    c.masters[0].proc.signal(nix::sys::signal::Signal::SIGCONT);
    wait_until(Duration::from_secs(30), "the auxiliary registered", || {
        health()["registered"] == true
    });
    match get_at(before) {
        Response::StaleEpoch { current } => assert!(current > before, "{current} <= {before}"),
        other => panic!("a request from before the restart was served: {other:?}"),
    }
    wait_until(Duration::from_secs(30), "the key is served again", || {
        c.value(0, "k") == Some(json!("kept"))
    });
}
