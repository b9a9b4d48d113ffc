//! The cluster's trickiest promises, on an in-process cluster (masters and
//! auxiliaries started by their `run` functions on port 0, see
//! `common/mod.rs`) under `tokio::time::pause`: each test runs in well
//! under a second of real time, whatever the intervals and TTLs it waits
//! for, against the same code the `distcache` binary runs.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{Cluster, wait_until};
use distcache_core::{Entry, Version};
use distcache_wire::{Client, ClientConfig, Request, Response, WriteStatus};
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test(start_paused = true)]
async fn a_write_through_one_master_is_read_through_every_other() {
    let c = Cluster::start(3, 3).await;
    assert_eq!(c.set(0, "user1", json!("John Doe")).await, StatusCode::OK);
    for m in 0..3 {
        assert_eq!(
            c.value(m, "user1").await,
            Some(json!("John Doe")),
            "read through master {m}"
        );
    }
    // The later write wins, through whichever master.
    assert_eq!(c.set(2, "user1", json!({"v": 2})).await, StatusCode::OK);
    for m in 0..3 {
        assert_eq!(
            c.value(m, "user1").await,
            Some(json!({"v": 2})),
            "master {m}"
        );
    }
}

/// A write with an old version sent straight to every auxiliary, as a
/// late replica write or a stale handoff would arrive: unfenced (epoch 0),
/// stamped long before the delete. Returns how many auxiliaries refused it.
/// The key's replicas hold its tombstone and must refuse it; the others
/// hold nothing and take it, a stray old copy that must not win later.
async fn late_old_write_to_every_auxiliary(c: &Cluster, key: &str) -> usize {
    let mut refused = 0;
    for aux in &c.auxes {
        let client = Client::new(
            aux.data_addr.expect("an auxiliary's data port").to_string(),
            ClientConfig {
                request_timeout: Duration::from_secs(5),
                secret: Bytes::new(),
                ..ClientConfig::default()
            },
        );
        let answer = client
            .call(Request::Set {
                key: Bytes::copy_from_slice(key.as_bytes()),
                entry: Entry {
                    value: Bytes::from_static(b"\"old\""),
                    expires_at_ms: None,
                    version: Version {
                        millis: 1,
                        counter: 0,
                        origin: 1,
                    },
                },
            })
            .await
            .expect("the auxiliary answers");
        if answer != Response::Written(WriteStatus::Stored) {
            refused += 1;
        }
    }
    refused
}

#[tokio::test(start_paused = true)]
async fn an_acknowledged_delete_is_not_undone_by_a_late_older_write_or_a_join() {
    let mut c = Cluster::start(2, 3).await;
    let keys: Vec<String> = (0..40).map(|i| format!("gone-{i}")).collect();
    for k in &keys {
        assert_eq!(c.set(0, k, json!("value")).await, StatusCode::OK);
    }
    for k in &keys {
        assert_eq!(c.delete(1, k).await, StatusCode::OK, "delete {k}");
    }
    for k in &keys[..5] {
        let refused = late_old_write_to_every_auxiliary(&c, k).await;
        assert_eq!(refused, c.replicas(), "{k}: the replicas keep the delete");
    }
    // A join moves keys, and their tombstones, to new owners.
    c.add_aux("aux-4").await;
    c.wait_for_up(4).await;
    for m in 0..2 {
        for k in &keys {
            assert_eq!(
                c.value(m, k).await,
                None,
                "{k} came back through master {m}"
            );
        }
    }
    assert_eq!(c.delete(0, &keys[1]).await, StatusCode::NOT_FOUND);
}

#[tokio::test(start_paused = true)]
async fn an_auxiliary_that_stops_answering_is_marked_down_and_its_keys_stay_readable() {
    let mut c = Cluster::start(1, 3).await;
    assert_eq!(c.replicas(), 2);
    let keys: Vec<String> = (0..30).map(|i| format!("k{i}")).collect();
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(c.set(0, k, json!(i)).await, StatusCode::OK);
    }
    c.stop_aux("aux-3").await;
    wait_until(Duration::from_secs(10), "aux-3 marked down", || async {
        c.node_state(0, "aux-3").await.as_deref() == Some("down")
    })
    .await;
    let health = c.get_json(0, "/health").await;
    assert_eq!(health["auxiliaries_up"], json!(2), "{health}");
    assert_eq!(health["auxiliaries_total"], json!(3), "{health}");
    let ring = c.get_json(0, "/ring").await;
    let members: Vec<&str> = ring["members"]
        .as_array()
        .expect("members")
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert!(!members.contains(&"aux-3"), "aux-3 left the ring: {ring}");
    // Two copies of each key: the loss of one auxiliary loses none.
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(c.value(0, k).await, Some(json!(i)), "{k}");
    }
}

#[tokio::test(start_paused = true)]
async fn an_auxiliary_that_hangs_is_marked_down_after_missed_health_checks_and_back_up_once_it_answers()
 {
    let mut c = Cluster::start(1, 2).await;
    let freezer = c.add_aux_behind_freezer("aux-3").await;
    c.wait_for_up(3).await;

    // Connections stay open but nothing answers: no refusal to go by, only
    // health checks that get no answer within REQUEST_TIMEOUT_MS.
    freezer.freeze();
    let frozen_at = tokio::time::Instant::now();
    wait_until(Duration::from_secs(60), "aux-3 marked down", || async {
        c.node_state(0, "aux-3").await.as_deref() == Some("down")
    })
    .await;
    assert!(
        frozen_at.elapsed() >= Duration::from_millis(common::REQUEST_TIMEOUT_MS),
        "down only once a check went unanswered for REQUEST_TIMEOUT_MS"
    );
    assert_eq!(c.get_json(0, "/health").await["auxiliaries_up"], json!(2));

    freezer.thaw();
    wait_until(Duration::from_secs(60), "aux-3 up again", || async {
        c.node_state(0, "aux-3").await.as_deref() == Some("up")
    })
    .await;
    c.wait_for_up(3).await;
}

/// A node judged down while it still runs (its health checks go
/// unanswered, its data port does not) hears of the map that judged it:
/// the master tells it the new epoch before routing around it. Else a
/// master still routing by the older map would go on running commands on
/// its copies, while the keys' new leaders run them on theirs.
#[tokio::test(start_paused = true)]
async fn a_node_judged_down_while_running_refuses_requests_routed_by_the_map_before() {
    let mut c = Cluster::start(1, 2).await;
    let freezer = c.add_aux_behind_freezer("aux-3").await;
    c.wait_for_up(3).await;
    let data = c.auxes.last().unwrap().data_addr.unwrap().to_string();
    let client = Client::new(
        data,
        ClientConfig {
            request_timeout: Duration::from_secs(5),
            secret: Bytes::new(),
            ..ClientConfig::default()
        },
    );
    let get = || Request::Get {
        key: Bytes::from_static(b"k"),
    };
    let up_epoch = c.get_json(0, "/ring").await["epoch"].as_u64().unwrap();
    assert_eq!(
        client.call_at(up_epoch, get()).await.unwrap(),
        Response::NotFound
    );

    freezer.freeze();
    wait_until(Duration::from_secs(60), "aux-3 marked down", || async {
        c.node_state(0, "aux-3").await.as_deref() == Some("down")
    })
    .await;
    // (The map may have moved on since the verdict, as a round ran: the
    // node hears of the map that judged it, not of the later ones.)
    match client.call_at(up_epoch, get()).await.unwrap() {
        Response::StaleEpoch { current } => assert!(current > up_epoch, "{current}"),
        other => panic!("a request routed by the map before the verdict was served: {other:?}"),
    }
    freezer.thaw();
}

/// A read while keys move asks the key's new owner and the node it is
/// leaving at once. A handoff stores the copy at the new owner, then drops
/// it where it was: the read can reach the new owner before the copy and
/// the old one after the drop, and must still find the key. Here the
/// leaving node's ports are held so that exactly this happens.
#[tokio::test(start_paused = true)]
async fn a_read_that_races_a_handoff_finds_the_key_at_its_new_owner() {
    // One copy per key, so that no other replica answers for the moving one.
    let mut c = Cluster::start_with_replicas(1, 2, 1).await;
    let (http, data) = c.add_aux_behind_freezers("aux-3").await;
    c.wait_for_up(3).await;
    for i in 0..60 {
        assert_eq!(c.set(0, &format!("k{i}"), json!(i)).await, StatusCode::OK);
    }
    let aux3 = c.auxes.last().unwrap().addr;
    let plain = c.http.clone();
    let items_at_aux3 = || async {
        let health: Value = plain
            .get(format!("http://{aux3}/health"))
            .send()
            .await
            .expect("aux-3 health")
            .json()
            .await
            .expect("JSON");
        health["items"].as_u64().expect("items")
    };
    assert!(items_at_aux3().await > 0, "aux-3 leads some keys");
    let ring = c.get_json(0, "/ring").await;
    let epoch = ring["epoch"].as_u64().unwrap();
    // A key aux-3 holds: asked straight, not through the freezer.
    let direct = Client::new(
        c.auxes.last().unwrap().data_addr.unwrap().to_string(),
        ClientConfig {
            request_timeout: Duration::from_secs(5),
            secret: Bytes::new(),
            ..ClientConfig::default()
        },
    );
    let mut moving = None;
    for i in 0..60 {
        let key = Bytes::from(format!("k{i}"));
        if let Response::Value(_) = direct.call_at(epoch, Request::Get { key }).await.unwrap() {
            moving = Some(i);
            break;
        }
    }
    let moving = moving.expect("a key at aux-3");

    // aux-3 leaves; the handoff the master asks of it waits at its HTTP port.
    // (The DELETE answers once aux-3 is gone, or after a while: it is not
    // awaited here.)
    http.freeze();
    let leave = {
        let (http, url) = (c.http.clone(), c.url(0, "/nodes/aux-3"));
        tokio::spawn(async move { http.delete(url).send().await.map(|r| r.status()) })
    };
    wait_until(Duration::from_secs(5), "keys moving", || async {
        c.get_json(0, "/ring").await["rebalancing"] == json!(true)
    })
    .await;

    // The reads, of the key alone and in a bulk read: the new owner
    // answers at once, without the key; aux-3's answer waits at its data
    // port.
    data.freeze();
    let read = {
        let (http, url) = (c.http.clone(), c.url(0, &format!("/data/k{moving}")));
        tokio::spawn(async move { http.get(url).send().await.expect("GET").status() })
    };
    let bulk_read = {
        let (http, url) = (c.http.clone(), c.url(0, "/data/bulk/get"));
        let keys = json!([format!("k{moving}")]);
        tokio::spawn(async move {
            let resp = http.post(url).json(&keys).send().await.expect("POST");
            resp.json::<Value>().await.expect("JSON")
        })
    };
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(!read.is_finished(), "the read waits for aux-3");
    assert!(!bulk_read.is_finished(), "the bulk read waits for aux-3");

    // The handoff runs: the copy reaches its new owner and leaves aux-3.
    http.thaw();
    wait_until(
        Duration::from_secs(5),
        "aux-3 emptied by the handoff",
        || async { items_at_aux3().await == 0 },
    )
    .await;
    data.thaw();
    assert_eq!(
        read.await.unwrap(),
        StatusCode::OK,
        "k{moving} read while it moved"
    );
    assert_eq!(
        bulk_read.await.unwrap(),
        json!({format!("k{moving}"): moving}),
        "k{moving} read in bulk while it moved"
    );
    assert_eq!(c.value(0, &format!("k{moving}")).await, Some(json!(moving)));
    assert!(leave.await.unwrap().is_ok_and(|s| s.is_success()));
}

#[tokio::test(start_paused = true)]
async fn a_registration_with_one_master_is_committed_once_and_seen_by_every_master() {
    let mut c = Cluster::start(3, 1).await;
    // aux-2 knows only the third master.
    let third = vec![c.masters[2].addr.to_string()];
    c.add_aux_registering_with("aux-2", third).await;
    c.wait_for_up(2).await;
    for m in 0..3 {
        assert_eq!(
            c.node_state(m, "aux-2").await.as_deref(),
            Some("up"),
            "master {m}"
        );
    }
    let epoch = c.get_json(0, "/ring").await["epoch"].clone();
    let node = c.get_json(0, "/nodes/aux-2").await;

    // The same registration again, through another master, changes nothing.
    let resp = c
        .http
        .post(c.url(1, "/nodes"))
        .json(&json!({
            "id": "aux-2",
            "addr": node["addr"],
            "data_addr": node["data_addr"],
            "incarnation": node["incarnation"],
        }))
        .send()
        .await
        .expect("POST /nodes");
    assert_eq!(resp.status(), StatusCode::OK, "already known");
    for m in 0..3 {
        assert_eq!(c.get_json(m, "/ring").await["epoch"], epoch, "master {m}");
        let nodes: Value = c.get_json(m, "/nodes").await;
        assert_eq!(nodes["nodes"].as_array().map(Vec::len), Some(2), "{nodes}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_key_expires_when_the_nodes_clock_passes_its_ttl_without_waiting_for_it() {
    let c = Cluster::start(2, 2).await;
    assert_eq!(
        c.set_ttl(0, "session", json!("s"), 60).await,
        StatusCode::OK
    );
    assert_eq!(c.set(0, "forever", json!("f")).await, StatusCode::OK);
    // Virtual time: a minute of health checks, in no time.
    tokio::time::sleep(Duration::from_secs(59)).await;
    assert_eq!(c.value(1, "session").await, Some(json!("s")), "1 s left");
    tokio::time::sleep(Duration::from_secs(2)).await;
    for m in 0..2 {
        assert_eq!(c.value(m, "session").await, None, "expired, master {m}");
        assert_eq!(c.value(m, "forever").await, Some(json!("f")), "master {m}");
    }
}
