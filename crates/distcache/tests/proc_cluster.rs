//! Membership and faults with real processes: several masters, registration,
//! SIGKILL and SIGSTOP of auxiliaries, decommissioning.

mod common;

use std::time::{Duration, Instant};

use common::{Cluster, Spec, assert_ok, wait_until};
use nix::sys::signal::Signal;
use serde_json::{Value, json};

#[test]
fn two_masters_share_one_ring_and_serve_the_same_data() {
    let c = Cluster::start(Spec {
        masters: 2,
        ..Spec::default()
    });
    let epoch = |i: usize| c.health(i)["ring_epoch"].as_u64().unwrap();
    assert_eq!(epoch(0), epoch(1));
    for i in 0..100 {
        assert_eq!(c.set(i % 2, &format!("k{i}"), json!(i)).status(), 200);
    }
    for i in 0..100 {
        assert_eq!(
            c.value((i + 1) % 2, &format!("k{i}")),
            Some(json!(i)),
            "k{i} through the other master"
        );
    }
    // A delete through one master is seen through the other.
    assert_eq!(c.delete(0, "k5").status(), 200);
    assert_eq!(c.value(1, "k5"), None);
}

#[test]
fn registration_is_idempotent_and_reaches_peer_masters() {
    let mut c = Cluster::start(Spec {
        masters: 2,
        auxiliaries: 2,
        ..Spec::default()
    });
    let before = c.health(0)["ring_epoch"].clone();
    let node: Value = c.get_json(0, "/nodes/aux-1");
    let reg = json!({"id": "aux-1", "addr": node["addr"], "data_addr": node["data_addr"], "incarnation": node["incarnation"]});
    for _ in 0..3 {
        let resp = c.http.post(c.url(0, "/nodes")).json(&reg).send().unwrap();
        assert_eq!(resp.status(), 200, "a known node is not new");
    }
    let nodes: Value = c.get_json(0, "/nodes");
    assert_eq!(nodes["nodes"].as_array().unwrap().len(), 2);
    std::thread::sleep(Duration::from_millis(500)); // several health intervals
    assert_eq!(c.health(0)["ring_epoch"], before);
    assert_eq!(c.health(1)["ring_epoch"], before);
    let ring: Value = c.get_json(0, "/ring");
    assert_eq!(
        ring["members"].as_array().unwrap().len(),
        2,
        "no duplicate ring members"
    );

    // A node registered with master 1 only (its MASTER_ADDRESS names just
    // that one) is passed on to master 2.
    let only_first = c.masters[0].addr.clone();
    c.add_aux_with("aux-3", &[("MASTER_ADDRESS".into(), only_first)]);
    c.wait_for_up(3);
    assert_eq!(c.health(0)["ring_epoch"], c.health(1)["ring_epoch"]);
    assert_ne!(c.health(0)["ring_epoch"], before);

    // Bad registrations are refused with a JSON 400.
    let resp = c
        .http
        .post(c.url(0, "/nodes"))
        .json(&json!({"addr": "no-port"}))
        .send()
        .unwrap();
    common::assert_error(resp, 400, "bad_addr");
    let resp = c
        .http
        .post(c.url(0, "/nodes"))
        .json(&json!({"id": "x"}))
        .send()
        .unwrap();
    common::assert_error(resp, 400, "bad_json");
}

#[test]
fn a_killed_auxiliary_leaves_the_ring_and_new_writes_succeed() {
    let spec = Spec {
        replicas: 1,
        health_check_interval: 0.3,
        ..Spec::default()
    };
    let interval = Duration::from_secs_f64(spec.health_check_interval);
    let mut c = Cluster::start(spec);
    let ring: Value = c.get_json(0, "/ring");
    assert_eq!(ring["replicas"], json!(1));
    for i in 0..300 {
        assert_eq!(c.set(0, &format!("old{i}"), json!(i)).status(), 200);
    }
    c.aux("aux-2").proc.kill();
    let killed_at = Instant::now();
    wait_until(Duration::from_secs(10), "aux-2 marked down", || {
        c.node_state(0, "aux-2").as_deref() == Some("down")
    });
    // Detection took at most two health intervals plus a probe timeout
    // (this bounds a hang, not speed: the margins are wide).
    let detected = killed_at.elapsed();
    assert!(
        detected
            < 2 * interval
                + Duration::from_millis(c.spec.request_timeout_ms)
                + Duration::from_secs(2),
        "detection took {detected:?}"
    );
    assert_eq!(c.health(0)["auxiliaries_up"], json!(2));
    let ring: Value = c.get_json(0, "/ring");
    let members: Vec<&str> = ring["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(members, ["aux-1", "aux-3"]);
    // Every new write succeeds and reads back.
    for i in 0..300 {
        assert_eq!(
            c.set(0, &format!("new{i}"), json!(i)).status(),
            200,
            "new{i}"
        );
    }
    for i in 0..300 {
        assert_eq!(c.value(0, &format!("new{i}")), Some(json!(i)));
    }
    // Keys that lived on the survivors are still there; with one replica
    // the killed node's keys are gone (replication keeps them: next test).
    let survived = (0..300)
        .filter(|i| c.value(0, &format!("old{i}")).is_some())
        .count();
    assert!(
        survived > 100 && survived < 300,
        "{survived} of 300 survived"
    );
}

#[test]
fn with_two_replicas_a_killed_auxiliary_loses_no_key() {
    let mut c = Cluster::start(Spec::default());
    for i in 0..300 {
        assert_eq!(c.set(0, &format!("k{i}"), json!(i)).status(), 200);
    }
    c.aux("aux-1").proc.kill();
    // Before and after detection, every key reads back from a replica.
    for i in 0..300 {
        assert_eq!(c.value(0, &format!("k{i}")), Some(json!(i)), "k{i}");
    }
    wait_until(Duration::from_secs(10), "aux-1 marked down", || {
        c.node_state(0, "aux-1").as_deref() == Some("down")
    });
    for i in 0..300 {
        assert_eq!(c.value(0, &format!("k{i}")), Some(json!(i)), "k{i}");
    }
}

#[test]
fn a_stopped_auxiliary_fails_fast_and_rejoins_when_continued() {
    let spec = Spec {
        replicas: 1,
        health_check_interval: 0.3,
        request_timeout_ms: 300,
        ..Spec::default()
    };
    let mut c = Cluster::start(spec);
    for i in 0..200 {
        assert_eq!(c.set(0, &format!("k{i}"), json!(i)).status(), 200);
    }
    let ring: Value = c.get_json(0, "/ring");
    assert_eq!(ring["members"].as_array().unwrap().len(), 3);

    c.aux("aux-3").proc.stop();
    // Requests for keys on the stopped node are answered (503 while it is
    // still in the ring, then 404 from its successor), never left hanging:
    // each answer comes within the request timeout plus a wide margin.
    for i in 0..200 {
        let started = Instant::now();
        let resp = c.get(0, &format!("k{i}"));
        let took = started.elapsed();
        let status = resp.status().as_u16();
        assert!(matches!(status, 200 | 404 | 503), "k{i}: {status}");
        if status == 503 {
            let body: Value = resp.json().unwrap();
            assert_eq!(body["error"]["code"], json!("replicas_unavailable"));
        }
        assert!(took < Duration::from_secs(3), "k{i} took {took:?}");
    }
    wait_until(Duration::from_secs(10), "aux-3 marked down", || {
        c.node_state(0, "aux-3").as_deref() == Some("down")
    });
    // Down means out of the ring: new writes all succeed.
    for i in 0..100 {
        assert_eq!(c.set(0, &format!("w{i}"), json!(i)).status(), 200);
    }
    c.aux("aux-3").proc.signal(Signal::SIGCONT);
    wait_until(Duration::from_secs(10), "aux-3 back up", || {
        c.node_state(0, "aux-3").as_deref() == Some("up")
    });
    c.wait_for_up(3);
}

#[test]
fn a_decommissioned_auxiliary_leaves_and_exits() {
    let mut c = Cluster::start(Spec {
        masters: 2,
        ..Spec::default()
    });
    let resp = c.http.delete(c.url(0, "/nodes/aux-2")).send().unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().unwrap();
    assert_eq!(body["removed"]["id"], json!("aux-2"));
    // Both masters drop it (the peer hears of it), and the process exits
    // when its next registration is refused.
    for m in 0..2 {
        wait_until(
            Duration::from_secs(10),
            "aux-2 gone from the master",
            || {
                c.http
                    .get(c.url(m, "/nodes/aux-2"))
                    .send()
                    .unwrap()
                    .status()
                    == 404
            },
        );
    }
    let status = c.aux("aux-2").proc.wait_exit(Duration::from_secs(15));
    assert!(
        status.is_some_and(|s| s.success()),
        "aux-2 exited cleanly: {status:?}"
    );
    assert_eq!(c.health(0)["auxiliaries_up"], json!(2));
    assert_eq!(c.health(0)["ring_epoch"], c.health(1)["ring_epoch"]);
    common::assert_error(
        c.http.delete(c.url(0, "/nodes/aux-2")).send().unwrap(),
        404,
        "node_not_found",
    );
    for i in 0..50 {
        assert_eq!(c.set(1, &format!("k{i}"), json!(i)).status(), 200);
    }
}

#[test]
fn processes_stop_gracefully_on_sigterm() {
    let mut c = Cluster::start(Spec {
        auxiliaries: 1,
        replicas: 1,
        ..Spec::default()
    });
    c.aux("aux-1").proc.signal(Signal::SIGTERM);
    let status = c.aux("aux-1").proc.wait_exit(Duration::from_secs(15));
    assert!(status.is_some_and(|s| s.success()), "aux exit: {status:?}");
    assert!(c.auxes[0].proc.log_text().contains("auxiliary stopped"));
    c.masters[0].proc.signal(Signal::SIGTERM);
    let status = c.masters[0].proc.wait_exit(Duration::from_secs(15));
    assert!(
        status.is_some_and(|s| s.success()),
        "master exit: {status:?}"
    );
    assert!(c.masters[0].proc.log_text().contains("master stopped"));
}

/// Kills every master at once and starts them again, with their Raft
/// directories (`keep_raft_dirs`) or without (the map is then rebuilt from
/// the auxiliaries' registrations, which they repeat every few seconds).
/// Either way every key is still there, through every master, and the map
/// can change again.
fn restart_every_master(keep_raft_dirs: bool) {
    let mut c = Cluster::start(Spec {
        masters: 3,
        auxiliaries: 3,
        ..Spec::default()
    });
    c.wait_settled(&["aux-1", "aux-2", "aux-3"]);
    for i in 0..100 {
        assert_eq!(c.set(i % 3, &format!("k{i}"), json!(i)).status(), 200);
    }
    // A node joins and leaves, twice: the auxiliaries see epochs well past
    // those a map rebuilt from scratch reaches as the nodes join it again.
    for round in 0..2 {
        let id = format!("passing-{round}");
        c.add_aux(&id);
        c.wait_settled(&["aux-1", "aux-2", "aux-3", &id]);
        let resp = c
            .http
            .delete(c.url(0, &format!("/nodes/{id}")))
            .send()
            .unwrap();
        assert_eq!(resp.status(), 200, "{:?}", resp.text());
        c.wait_settled(&["aux-1", "aux-2", "aux-3"]);
        // It learns it was removed from its next registration, and exits.
        // (Until then a map rebuilt from scratch would take it back: it
        // would not know of the decommission.)
        let status = c.aux(&id).proc.wait_exit(Duration::from_secs(20));
        assert!(status.is_some(), "{id} exits");
    }
    let epoch = c.health(0)["ring_epoch"].as_u64().unwrap();
    for m in &mut c.masters {
        m.proc.kill();
    }
    if !keep_raft_dirs {
        for i in 0..3 {
            let dir = c.dir.path().join(format!("master-{}-raft", i + 1));
            std::fs::remove_dir_all(&dir).expect("remove the Raft directory");
        }
    }
    for m in &mut c.masters {
        m.proc.restart();
    }
    c.wait_for_up(3);
    c.wait_settled(&["aux-1", "aux-2", "aux-3"]);
    // The epoch never went back: the map came back from the disks, or a
    // rebuilt one started past what the auxiliaries had seen.
    let back = c.health(0)["ring_epoch"].as_u64().unwrap();
    if keep_raft_dirs {
        assert!(
            back >= epoch,
            "epoch {back} after the restart, {epoch} before"
        );
    } else {
        assert!(
            back > epoch,
            "epoch {back} after the rebuild, {epoch} before"
        );
    }
    for i in 0..100 {
        for m in 0..3 {
            assert_eq!(
                c.value(m, &format!("k{i}")),
                Some(json!(i)),
                "k{i} through master {}",
                m + 1
            );
        }
    }
    // The map can change again: a node joins.
    c.add_aux("aux-4");
    c.wait_settled(&["aux-1", "aux-2", "aux-3", "aux-4"]);
}

#[test]
fn a_full_restart_of_every_master_brings_the_map_back_from_their_disks() {
    restart_every_master(true);
}

#[test]
fn masters_restarted_without_their_raft_dirs_rebuild_the_map_from_registrations() {
    restart_every_master(false);
}

/// A master that cannot reach enough of the other masters to know its map
/// is current (here: the two others are stopped) serves no data within a
/// lease, over HTTP and RESP, and serves again as soon as they answer;
/// its `/metrics` say which it is doing. With the lease off it serves by
/// its last map, as before.
#[test]
fn a_master_that_reaches_too_few_masters_serves_no_data_until_they_answer() {
    for lease_ms in ["600", "0"] {
        let c = Cluster::start(Spec {
            masters: 3,
            resp: true,
            master_env: vec![("MASTER_LEASE_MS".into(), lease_ms.into())],
            ..Spec::default()
        });
        c.wait_settled(&["aux-1", "aux-2", "aux-3"]);
        assert_eq!(c.set(2, "k", json!(1)).status(), 200);
        let metric = |name: &str| common::metric_value(&c.get_text(2, "/metrics"), name);
        let holds = || metric("distcache_master_lease_holds");
        assert_eq!(holds(), Some(1.0), "lease {lease_ms}");

        c.masters[0].proc.stop();
        c.masters[1].proc.stop();
        if lease_ms == "0" {
            // Three default leases later, still serving by its last map.
            let until = Instant::now() + Duration::from_millis(4_500);
            while Instant::now() < until {
                assert_eq!(c.value(2, "k"), Some(json!(1)), "lease off");
                std::thread::sleep(Duration::from_millis(100));
            }
            assert_eq!(holds(), Some(1.0));
        } else {
            wait_until(Duration::from_secs(20), "master 3 refuses data", || {
                c.get(2, "k").status() == 503
            });
            let body: Value = c.get(2, "k").json().unwrap();
            assert_eq!(body["error"]["code"], json!("no_master_quorum"), "{body}");
            assert_eq!(c.set(2, "k", json!(2)).status(), 503);
            let refused = resp_line(&c, 2, "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
            assert!(
                refused.starts_with("-") && refused.contains("MASTER_LEASE_MS"),
                "RESP: {refused:?}"
            );
            assert_eq!(holds(), Some(0.0));
            assert!(metric("distcache_lease_refusals_total") > Some(0.0));
        }

        c.masters[0].proc.signal(Signal::SIGCONT);
        c.masters[1].proc.signal(Signal::SIGCONT);
        wait_until(Duration::from_secs(30), "master 3 serves again", || {
            c.get(2, "k").status() == 200
        });
        assert_eq!(c.value(2, "k"), Some(json!(1)));
        assert_eq!(holds(), Some(1.0), "lease {lease_ms}");
    }
}

/// The first line master `m` answers `request` with over RESP.
fn resp_line(c: &Cluster, m: usize, request: &str) -> String {
    use std::io::{BufRead, BufReader, Write};
    let port = c.masters[m].resp_port.expect("a RESP port");
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).unwrap();
    line
}

/// An overwrite that expired is a delete at its version: an auxiliary
/// that missed it (killed before it) and comes back with the older value
/// must not bring that value back, nor may its handoff or a read repair.
#[test]
fn an_expired_overwrite_stays_gone_when_an_auxiliary_that_missed_it_returns() {
    let mut c = Cluster::start(Spec {
        aux_env: vec![("LEAVE_ON_SHUTDOWN".into(), "false".into())],
        ..Spec::default()
    });
    let keys: Vec<String> = (0..60).map(|i| format!("k{i}")).collect();
    for k in &keys {
        assert_ok(c.set(0, k, json!("old")));
    }
    c.aux("aux-1").proc.kill();
    wait_until(Duration::from_secs(30), "aux-1 judged down", || {
        c.node_state(0, "aux-1").as_deref() == Some("down")
    });
    c.wait_settled(&["aux-2", "aux-3"]);
    for k in &keys {
        assert_ok(c.set_ttl(0, k, json!("new"), Some(1)));
    }
    wait_until(Duration::from_secs(10), "every overwrite expired", || {
        keys.iter().all(|k| c.value(0, k).is_none())
    });
    c.aux("aux-1").proc.restart();
    c.wait_settled(&["aux-1", "aux-2", "aux-3"]);
    // Read for a while: the returning node's handoff and the reads' repairs
    // run meanwhile.
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        let back: Vec<&String> = keys.iter().filter(|k| c.value(0, k).is_some()).collect();
        assert!(
            back.is_empty(),
            "values older than an acknowledged overwrite came back: {back:?}"
        );
    }
}
