//! DBSIZE against a real cluster (one master, four auxiliaries, two
//! copies of each key): each key counted once though two auxiliaries hold
//! it, after writes, deletes and expiry; counted by the auxiliaries, which
//! ship counts, not keys (no KEYS runs on them: their `execute` counter
//! stays put while their `count_keys` counter moves); and still exact
//! while a killed auxiliary's keys are copied again (the fallback to
//! collecting keys) and once the ring has settled without it.

mod common;

use std::time::Duration;

use common::{Cluster, Spec, wait_until};
use serde_json::{Value, json};

const AUXES: [&str; 4] = ["aux-1", "aux-2", "aux-3", "aux-4"];

fn ok(c: &Cluster, args: Value) -> Value {
    let body: Value = c
        .http
        .post(c.url(0, "/"))
        .json(&args)
        .send()
        .and_then(|r| r.json())
        .unwrap_or_else(|e| panic!("{args}: {e}"));
    match body.get("result") {
        Some(result) => result.clone(),
        None => panic!("{args}: {body}"),
    }
}

fn dbsize(c: &Cluster) -> u64 {
    ok(c, json!(["DBSIZE"])).as_u64().expect("an integer")
}

/// Auxiliary `id`'s count of internal requests of operation `op`.
fn served(c: &Cluster, id: &str, op: &str) -> f64 {
    let name = format!("distcache_data_requests_total{{op=\"{op}\"}}");
    c.aux_metric(id, &name).unwrap_or(0.0)
}

#[test]
fn dbsize_counts_each_live_key_once_from_counts_alone() {
    let mut c = Cluster::start(Spec {
        auxiliaries: 4,
        replicas: 2,
        ..Spec::default()
    });
    c.wait_settled(&AUXES);

    const N: u64 = 300;
    for i in 0..N {
        ok(&c, json!(["SET", format!("key:{i}"), "v"]));
    }
    assert_eq!(dbsize(&c), N);
    assert!(
        c.total_items() >= 2 * N,
        "every key has two copies, counted once"
    );

    // Counts, not keys: every auxiliary that leads keys is asked to count
    // them, and none runs a command (KEYS would be one).
    let before: Vec<(f64, f64)> = AUXES
        .iter()
        .map(|id| (served(&c, id, "execute"), served(&c, id, "count_keys")))
        .collect();
    assert_eq!(dbsize(&c), N);
    for (id, (executed, counted)) in AUXES.iter().zip(before) {
        assert_eq!(served(&c, id, "execute"), executed, "{id} ran a command");
        assert_eq!(served(&c, id, "count_keys"), counted + 1.0, "{id}");
    }

    for i in 0..50 {
        assert_eq!(ok(&c, json!(["DEL", format!("key:{i}")])), json!(1));
    }
    assert_eq!(dbsize(&c), N - 50);

    // Keys that expire stop counting once they have.
    for i in 50..80 {
        assert_eq!(
            ok(&c, json!(["PEXPIRE", format!("key:{i}"), 300])),
            json!(1)
        );
    }
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(dbsize(&c), N - 80);

    // An auxiliary dies: while its keys are copied again DBSIZE collects
    // keys (the fallback), then counts again by the settled ring; the
    // answer stays exact throughout, the second copies holding every key.
    c.aux("aux-2").proc.kill();
    wait_until(Duration::from_secs(30), "aux-2 is down", || {
        c.node_state(0, "aux-2").as_deref() == Some("down")
    });
    assert_eq!(dbsize(&c), N - 80);
    c.wait_settled(&["aux-1", "aux-3", "aux-4"]);
    let counted: f64 = AUXES
        .iter()
        .filter(|id| **id != "aux-2")
        .map(|id| served(&c, id, "count_keys"))
        .sum();
    assert_eq!(dbsize(&c), N - 80);
    let counted_after: f64 = AUXES
        .iter()
        .filter(|id| **id != "aux-2")
        .map(|id| served(&c, id, "count_keys"))
        .sum();
    assert_eq!(counted_after, counted + 3.0, "counted by the three left");
}

/// Each auxiliary evicts its own least recently used keys, so past the
/// cache's size a replica may still hold a key its leader evicted. GET,
/// EXISTS and DEL ask the leader and find nothing; KEYS, SCAN and
/// RANDOMKEY must not list that key either, and DBSIZE counts what KEYS
/// lists.
#[test]
fn listings_show_no_key_its_leader_evicted() {
    let c = Cluster::start(Spec {
        auxiliaries: 3,
        replicas: 2,
        cache_size: 40,
        ..Spec::default()
    });
    c.wait_settled(&AUXES[..3]);
    const N: usize = 300;
    for i in 0..N {
        ok(&c, json!(["SET", format!("ev:{i}"), "v"]));
    }
    let held = c.total_items();
    let keys = ok(&c, json!(["KEYS", "*"]));
    let keys: Vec<&str> = keys
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    assert!(
        !keys.is_empty() && keys.len() < N,
        "{} of {N} kept",
        keys.len()
    );
    assert!(
        held > keys.len() as u64,
        "{held} copies held for {} keys: the copies of every kept key, and some its leader evicted",
        keys.len()
    );
    for key in &keys {
        assert_eq!(
            ok(&c, json!(["EXISTS", key])),
            json!(1),
            "KEYS listed {key}"
        );
    }
    assert_eq!(dbsize(&c), keys.len() as u64);
    let mut scanned = Vec::new();
    let mut cursor = "0".to_owned();
    loop {
        let page = ok(&c, json!(["SCAN", cursor, "COUNT", "7"]));
        cursor = page[0].as_str().unwrap().to_owned();
        scanned.extend(
            page[1]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k.as_str().unwrap().to_owned()),
        );
        if cursor == "0" {
            break;
        }
    }
    scanned.sort();
    scanned.dedup();
    let mut listed: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    listed.sort();
    assert_eq!(scanned, listed, "SCAN and KEYS list the same keys");
    for _ in 0..100 {
        let key = ok(&c, json!(["RANDOMKEY"]));
        let key = key.as_str().expect("RANDOMKEY found a key");
        assert_eq!(
            ok(&c, json!(["EXISTS", key])),
            json!(1),
            "RANDOMKEY gave {key}"
        );
    }
}
