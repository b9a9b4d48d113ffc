//! Backups and recovery with real processes: a whole cluster SIGKILLed at
//! once comes back with its data and TTLs; cluster backups restore onto a
//! cluster of another size; a restore never overwrites newer data; damaged
//! snapshots are moved aside and the node starts; backups work with a
//! cluster secret. (A full or read-only backup directory needs root to
//! make: `root_backup_dir.rs`.)

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{BIN, Cluster, Spec, wait_until};
use serde_json::{Value, json};

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64
}

/// Waits until master `m` has finished moving keys (no rebalance running).
fn wait_settled(c: &Cluster, m: usize) {
    wait_until(Duration::from_secs(60), "the ring settles", || {
        c.http
            .get(c.url(m, "/ring"))
            .send()
            .and_then(|r| r.json::<Value>())
            .is_ok_and(|ring| ring["rebalancing"] == json!(false))
    });
}

/// The keys a test writes: every third without a TTL, the rest with one
/// hour, all with distinct values.
struct Written {
    keys: Vec<(String, Value, Option<u64>)>,
    at: Instant,
}

fn write_keys(c: &Cluster, n: usize, prefix: &str) -> Written {
    let mut keys = Vec::with_capacity(n);
    for i in 0..n {
        let key = format!("{prefix}{i}");
        let value = json!({"i": i, "text": format!("value of {key}")});
        let ttl = (i % 3 != 0).then_some(3600);
        let resp = c.set_ttl(0, &key, value.clone(), ttl);
        assert_eq!(resp.status(), 200, "write {key}");
        keys.push((key, value, ttl));
    }
    Written {
        keys,
        at: Instant::now(),
    }
}

/// Every key reads back with its value, and a TTL that is what was set
/// minus the time since the write (the GET rounds up to whole seconds).
fn assert_all_back(c: &Cluster, written: &Written) {
    for (key, value, ttl) in &written.keys {
        let resp = c.get(0, key);
        let status = resp.status();
        let body: Value = resp.json().expect("json");
        assert_eq!(status, 200, "{key} is back: {body}");
        assert_eq!(&body["value"], value, "{key}'s value");
        match ttl {
            None => assert_eq!(body["ttl"], Value::Null, "{key} never expires"),
            Some(set) => {
                let left = body["ttl"].as_u64().expect("a TTL");
                let elapsed = written.at.elapsed().as_secs();
                assert!(
                    left <= *set && left + elapsed + 1 >= *set,
                    "{key}: {left} s left of {set} s, {elapsed} s after the write"
                );
            }
        }
    }
}

fn snapshot_path(c: &Cluster, aux: &str) -> PathBuf {
    c.dir.path().join(aux).join(format!("{aux}.snap"))
}

fn post_backup(c: &Cluster) -> Value {
    let resp = c
        .http
        .post(c.url(0, "/backup"))
        .send()
        .expect("POST /backup");
    assert_eq!(resp.status(), 200, "POST /backup");
    resp.json().expect("json")
}

fn post_restore(c: &Cluster, body: Value) -> Value {
    let resp = c
        .http
        .post(c.url(0, "/restore"))
        .json(&body)
        .send()
        .expect("POST /restore");
    let status = resp.status();
    let answer: Value = resp.json().expect("json");
    assert_eq!(status, 200, "POST /restore: {answer}");
    answer
}

#[test]
fn a_whole_cluster_killed_at_once_comes_back_from_its_snapshots_with_one_replica() {
    let mut spec = Spec {
        replicas: 1,
        ..Spec::default()
    };
    // Periodic snapshots only: nothing asks for one.
    spec.aux_env.push(("BACKUP_INTERVAL".into(), "1".into()));
    spec.master_env.push(("BACKUP_INTERVAL".into(), "1".into()));
    let mut c = Cluster::start(spec);
    wait_settled(&c, 0);
    let written = write_keys(&c, 150, "r1-");
    assert_eq!(c.set_ttl(0, "short", json!(1), Some(1)).status(), 200);
    let last_write_ms = unix_ms();

    // Wait for a snapshot taken after the last write on every auxiliary.
    let ids: Vec<String> = c.auxes.iter().map(|a| a.id.clone()).collect();
    for id in &ids {
        wait_until(Duration::from_secs(30), &format!("{id} snapshots"), || {
            c.aux_metric(id, "distcache_snapshot_last_success_timestamp_seconds")
                .is_some_and(|t| t * 1000.0 > last_write_ms as f64)
        });
    }
    // The master writes cluster backups on its own too.
    let master_dir = c.dir.path().join("master-1");
    wait_until(Duration::from_secs(30), "a periodic cluster backup", || {
        std::fs::read_dir(&master_dir).is_ok_and(|d| {
            d.flatten()
                .any(|e| e.path().join("manifest.json").is_file())
        })
    });

    c.kill_all();
    // Let the one-second key expire while everything is down.
    std::thread::sleep(Duration::from_millis(1500));
    c.restart_all();
    wait_settled(&c, 0);
    assert_all_back(&c, &written);
    assert_eq!(c.value(0, "short"), None, "an expired key stays gone");
    for a in &c.auxes {
        assert!(
            a.proc.log_text().contains("snapshot restored"),
            "{} restored its snapshot",
            a.id
        );
    }
}

#[test]
fn a_whole_cluster_killed_at_once_comes_back_from_its_snapshots_with_two_replicas() {
    let mut c = Cluster::start(Spec {
        replicas: 2,
        ..Spec::default()
    });
    wait_settled(&c, 0);
    let written = write_keys(&c, 200, "r2-");
    let report = post_backup(&c);
    assert_eq!(report["nodes"], json!(3), "{report}");
    assert_eq!(report["keys"], json!(200), "{report}");
    assert_eq!(
        report["entries"],
        json!(400),
        "two copies of each: {report}"
    );
    assert!(report["bytes"].as_u64().unwrap_or(0) > 0, "{report}");
    assert!(report["backup"].as_str().is_some_and(|id| !id.is_empty()));
    assert!(report["duration_ms"].is_u64());

    c.kill_all();
    c.restart_all();
    wait_settled(&c, 0);
    assert_all_back(&c, &written);
    // Counted at each auxiliary (the masters' /nodes figures lag by a
    // health check).
    let items = c.total_items();
    assert!(
        items >= 400,
        "both copies of every key are back ({items} items)"
    );
}

/// A second cluster whose master reads the first one's backups.
fn cluster_reading_backups_of(first: &Cluster, auxiliaries: usize) -> Cluster {
    let mut spec = Spec {
        auxiliaries,
        replicas: 2,
        ..Spec::default()
    };
    let dir = first.dir.path().join("master-1").display().to_string();
    spec.master_env.push(("BACKUP_DIR".into(), dir));
    Cluster::start(spec)
}

#[test]
fn a_backup_restores_through_the_api_onto_a_cluster_of_another_size() {
    let a = Cluster::start(Spec::default());
    wait_settled(&a, 0);
    let written = write_keys(&a, 200, "rt-");
    let report = post_backup(&a);
    let id = report["backup"].as_str().expect("id").to_string();
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(
            a.dir
                .path()
                .join("master-1")
                .join(&id)
                .join("manifest.json"),
        )
        .expect("manifest"),
    )
    .expect("manifest is JSON");
    assert_eq!(manifest["id"], json!(id));
    assert_eq!(manifest["keys"], json!(200));
    assert_eq!(manifest["nodes"].as_array().map(Vec::len), Some(3));
    assert!(manifest["created"].is_string() && manifest["bytes"].is_u64());

    // Two auxiliaries instead of three: today's ring places every key.
    let mut a = a;
    let b = cluster_reading_backups_of(&a, 2);
    // The first cluster is gone; only its master's backup directory stays.
    a.kill_all();
    wait_settled(&b, 0);
    let answer = post_restore(&b, json!({}));
    assert_eq!(answer["backup"], json!(id), "the latest by default");
    assert_eq!(answer["keys"], json!(200), "{answer}");
    assert_eq!(answer["restored"], json!(200), "{answer}");
    assert_eq!(answer["skipped"], json!(0), "{answer}");
    assert_eq!(answer["failed"], json!(0), "{answer}");
    assert_all_back(&b, &written);
    let progress: Value = b.get_json(0, "/restore");
    assert_eq!(progress["running"], json!(false));
    assert_eq!(progress["done"], progress["total"]);

    // The CLI verb does the same; everything is already there at the same
    // versions, so it is all skipped.
    let out = Command::new(BIN)
        .args(["restore", "--backup", &id, "--url"])
        .arg(format!("http://{}", b.masters[0].addr))
        .output()
        .expect("run distcache restore");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(answer["restored"], json!(0), "{answer}");
    assert_eq!(answer["skipped"], json!(200), "{answer}");

    // Unknown and malformed ids are refused.
    let resp = b
        .http
        .post(b.url(0, "/restore"))
        .json(&json!({"backup": "20000101T000000.000Z"}))
        .send()
        .unwrap();
    common::assert_error(resp, 404, "backup_not_found");
    let resp = b
        .http
        .post(b.url(0, "/restore"))
        .json(&json!({"backup": "../etc"}))
        .send()
        .unwrap();
    common::assert_error(resp, 400, "bad_backup");
}

/// With a cluster secret set, the master signs its calls to the
/// auxiliaries' `/internal/snapshot`, so a backup holds every node; and an
/// id naming a file in BACKUP_DIR that is no backup is a 404, not a 500.
#[test]
fn backups_work_with_a_cluster_secret_and_odd_ids_are_not_found() {
    const SECRET: &str = "backup-test-secret";
    let c = Cluster::start(Spec {
        master_env: vec![
            ("CLUSTER_SECRET".into(), SECRET.into()),
            ("AUTH_TOKENS".into(), "backup-admin:admin".into()),
        ],
        aux_env: vec![("CLUSTER_SECRET".into(), SECRET.into())],
        token: Some("backup-admin".into()),
        ..Spec::default()
    });
    wait_settled(&c, 0);
    let written = write_keys(&c, 30, "sec-");
    let report = post_backup(&c);
    assert_eq!(report["nodes"], json!(3), "{report}");
    assert_eq!(report["missing"], json!([]), "{report}");
    assert_eq!(report["keys"], json!(30), "{report}");
    let answer = post_restore(&c, json!({}));
    assert_eq!(answer["backup"], report["backup"], "{answer}");
    assert_eq!(answer["keys"], json!(30), "{answer}");
    assert_eq!(answer["skipped_newer"], json!(30), "all there already");
    assert_all_back(&c, &written);

    let backup_dir = c.dir.path().join("master-1");
    std::fs::write(backup_dir.join("notes.txt"), "not a backup").unwrap();
    std::fs::create_dir(backup_dir.join("empty")).unwrap();
    for id in ["notes.txt", "empty"] {
        let resp = c
            .http
            .post(c.url(0, "/restore"))
            .json(&json!({"backup": id}))
            .send()
            .unwrap();
        common::assert_error(resp, 404, "backup_not_found");
    }
}

#[test]
fn a_restore_never_overwrites_newer_writes_or_deletes() {
    let a = Cluster::start(Spec::default());
    wait_settled(&a, 0);
    for i in 0..20 {
        assert_eq!(a.set(0, &format!("n{i}"), json!({"old": i})).status(), 200);
    }
    post_backup(&a);

    // On the same cluster: newer values and a delete survive a restore.
    for i in 0..5 {
        assert_eq!(a.set(0, &format!("n{i}"), json!({"new": i})).status(), 200);
    }
    assert_eq!(a.delete(0, "n5").status(), 200);
    // An overwrite that expired is a delete at its version: it wins too.
    assert_eq!(
        a.set_ttl(0, "n6", json!({"brief": 6}), Some(1)).status(),
        200
    );
    wait_until(Duration::from_secs(10), "n6's overwrite expired", || {
        a.value(0, "n6").is_none()
    });
    let answer = post_restore(&a, json!({}));
    assert_eq!(answer["restored"], json!(0), "{answer}");
    assert_eq!(answer["skipped"], json!(20), "{answer}");
    for i in 0..5 {
        assert_eq!(
            a.value(0, &format!("n{i}")),
            Some(json!({"new": i})),
            "n{i}"
        );
    }
    assert_eq!(
        a.value(0, "n5"),
        None,
        "a newer delete wins over the backup"
    );
    assert_eq!(
        a.value(0, "n6"),
        None,
        "a newer overwrite that expired wins over the backup"
    );
    for i in 7..20 {
        assert_eq!(
            a.value(0, &format!("n{i}")),
            Some(json!({"old": i})),
            "n{i}"
        );
    }

    // On an empty cluster with a few newer writes: only missing keys land.
    let b = cluster_reading_backups_of(&a, 3);
    wait_settled(&b, 0);
    for i in 10..15 {
        assert_eq!(
            b.set(0, &format!("n{i}"), json!({"newer": i})).status(),
            200
        );
    }
    let answer = post_restore(&b, json!({}));
    assert_eq!(answer["restored"], json!(15), "{answer}");
    assert_eq!(answer["skipped_newer"], json!(5), "{answer}");
    for i in 0..20 {
        let want = if (10..15).contains(&i) {
            json!({"newer": i})
        } else {
            json!({"old": i})
        };
        assert_eq!(b.value(0, &format!("n{i}")), Some(want), "n{i}");
    }
}

/// Writes keys, snapshots, kills the one auxiliary, damages its snapshot
/// with `damage`, restarts it, and checks that it says so, moves the file
/// aside, starts empty and serves.
fn damaged_snapshot_case(damage: impl FnOnce(&mut Vec<u8>), logged: &str) {
    let mut c = Cluster::start(Spec {
        auxiliaries: 1,
        replicas: 1,
        ..Spec::default()
    });
    for i in 0..50 {
        assert_eq!(c.set(0, &format!("d{i}"), json!(i)).status(), 200);
    }
    post_backup(&c);
    let path = snapshot_path(&c, "aux-1");
    let mut bytes = std::fs::read(&path).expect("the snapshot exists");
    c.aux("aux-1").proc.kill();
    damage(&mut bytes);
    std::fs::write(&path, &bytes).expect("write the damaged file");

    c.aux("aux-1").proc.restart();
    // The log file is appended to: the restarted process is ready once it
    // says so a second time.
    wait_until(Duration::from_secs(30), "aux-1 restarts", || {
        c.aux("aux-1")
            .proc
            .log_text()
            .matches("auxiliary ready")
            .count()
            == 2
    });
    let log = c.aux("aux-1").proc.log_text();
    assert!(
        log.contains("snapshot is damaged") && log.contains(&path.display().to_string()),
        "the log names the damaged file"
    );
    assert!(log.contains(logged), "the log says why ({logged:?})");
    let aside: Vec<PathBuf> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().contains("aux-1.snap.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "moved aside: {aside:?}");
    assert_eq!(std::fs::read(&aside[0]).unwrap(), bytes, "kept as it was");
    assert!(!path.exists(), "the damaged file is no longer in the way");
    // It serves (once the master has its new address), and started empty.
    wait_until(
        Duration::from_secs(30),
        "writes reach the restarted aux-1",
        || c.set(0, "fresh", json!("yes")).status() == 200,
    );
    assert_eq!(c.value(0, "d1"), None);
    assert_eq!(c.value(0, "fresh"), Some(json!("yes")));
}

#[test]
fn a_truncated_snapshot_is_moved_aside_and_the_node_starts() {
    damaged_snapshot_case(|b| b.truncate(b.len() * 2 / 3), "truncated");
}

#[test]
fn a_bit_flipped_snapshot_is_moved_aside_and_the_node_starts() {
    damaged_snapshot_case(
        |b| {
            let i = b.len() / 2;
            b[i] ^= 0x10;
        },
        "checksum mismatch",
    );
}

#[test]
fn a_snapshot_with_the_wrong_magic_is_moved_aside_and_the_node_starts() {
    damaged_snapshot_case(|b| b[..4].copy_from_slice(b"GIF8"), "wrong magic number");
}

#[test]
fn a_snapshot_from_a_newer_version_is_moved_aside_and_the_node_starts() {
    damaged_snapshot_case(
        |b| b[8..10].copy_from_slice(&7u16.to_le_bytes()),
        "format version 7 is newer",
    );
}

/// The expired-version floor a snapshot carries (one expired entry per
/// shard that saw an expiry) is no key of the backup: a backup of 20 live
/// keys, taken after 5 others expired, counts 20 keys (40 entries), and
/// its restore reports 20 keys and none skipped as expired.
#[test]
fn a_backup_counts_no_key_for_the_expired_floor_it_carries() {
    let c = Cluster::start(Spec::default());
    wait_settled(&c, 0);
    for i in 0..20 {
        let resp = c.set_ttl(0, &format!("live-{i}"), json!(i), None);
        assert_eq!(resp.status(), 200);
    }
    for i in 0..5 {
        let resp = c.set_ttl(0, &format!("gone-{i}"), json!(i), Some(1));
        assert_eq!(resp.status(), 200);
    }
    std::thread::sleep(Duration::from_millis(2_500));
    for i in 0..5 {
        // Read, so that every replica finds it expired (or the sweep did).
        assert_eq!(c.get(0, &format!("gone-{i}")).status(), 404);
    }
    let report = post_backup(&c);
    assert_eq!(report["keys"], json!(20), "{report}");
    assert_eq!(report["entries"], json!(40), "two replicas each: {report}");
    let answer = post_restore(&c, json!({}));
    assert_eq!(answer["keys"], json!(20), "{answer}");
    assert_eq!(answer["skipped_expired"], json!(0), "{answer}");
}
