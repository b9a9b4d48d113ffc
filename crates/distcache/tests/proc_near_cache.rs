//! The master's near cache with real processes: a hit is answered with the
//! auxiliary stopped (SIGSTOP), a write or delete through the same master
//! is seen at once, and a write or delete through another master is seen
//! after at most `NEAR_CACHE_TTL`.

mod common;

use std::time::{Duration, Instant};

use common::{Cluster, Spec, metric_value};
use nix::sys::signal::Signal;
use serde_json::{Value, json};

fn near_spec(masters: usize, auxiliaries: usize, ttl_secs: f64) -> Spec {
    Spec {
        masters,
        auxiliaries,
        replicas: 1,
        master_env: vec![
            ("NEAR_CACHE_SIZE".into(), "1000".into()),
            ("NEAR_CACHE_TTL".into(), ttl_secs.to_string()),
        ],
        ..Spec::default()
    }
}

fn master_metric(c: &Cluster, master: usize, name: &str) -> f64 {
    let text = c.get_text(master, "/metrics");
    metric_value(&text, name).unwrap_or_else(|| panic!("no metric {name}"))
}

#[test]
fn a_hit_is_answered_without_the_auxiliary() {
    // One auxiliary, so that stopping it leaves no replica to ask.
    let mut c = Cluster::start(near_spec(1, 1, 60.0));
    assert_eq!(c.set(0, "cached", json!({"a": 1})).status(), 200);
    assert_eq!(c.set(0, "never-read", json!(2)).status(), 200);
    assert_eq!(c.value(0, "cached"), Some(json!({"a": 1})));
    assert_eq!(
        master_metric(&c, 0, "distcache_near_cache_misses_total"),
        1.0
    );
    assert_eq!(master_metric(&c, 0, "distcache_near_cache_hits_total"), 0.0);

    c.aux("aux-1").proc.stop();
    // The auxiliary really is unreachable: a key not in the near cache
    // gets no answer from it.
    let other = c.get(0, "never-read");
    assert_eq!(other.status(), 503, "a read the auxiliary would answer");
    // The cached key is still answered, with its value and TTL.
    let resp = c.get(0, "cached");
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().unwrap();
    assert_eq!(
        body,
        json!({"key": "cached", "value": {"a": 1}, "ttl": null})
    );
    assert_eq!(master_metric(&c, 0, "distcache_near_cache_hits_total"), 1.0);
    c.aux("aux-1").proc.signal(Signal::SIGCONT);
}

#[test]
fn writes_and_deletes_through_the_same_master_are_seen_at_once() {
    // A TTL far longer than the test: only invalidation can explain a new value.
    let c = Cluster::start(near_spec(1, 3, 600.0));
    assert_eq!(c.set(0, "k", json!(1)).status(), 200);
    assert_eq!(c.value(0, "k"), Some(json!(1)));
    assert_eq!(c.value(0, "k"), Some(json!(1)));
    assert!(master_metric(&c, 0, "distcache_near_cache_hits_total") >= 1.0);

    assert_eq!(c.set(0, "k", json!(2)).status(), 200);
    assert_eq!(c.value(0, "k"), Some(json!(2)), "after a write");

    let resp = c.set_ttl(0, "k", json!(3), Some(100));
    assert_eq!(resp.status(), 200);
    let body: Value = c.get(0, "k").json().unwrap();
    assert_eq!(body["value"], json!(3), "after a write with a TTL");
    assert!(body["ttl"].as_u64().is_some_and(|t| t <= 100), "{body}");

    assert_eq!(c.delete(0, "k").status(), 200);
    assert_eq!(c.value(0, "k"), None, "after a delete");

    assert_eq!(c.set(0, "k", json!(4)).status(), 200);
    assert_eq!(c.value(0, "k"), Some(json!(4)));
    let resp = c
        .http
        .post(c.url(0, "/data/bulk"))
        .json(&json!([{"key": "k", "value": 5}]))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(c.value(0, "k"), Some(json!(5)), "after a bulk write");
}

#[test]
fn a_write_through_another_master_is_seen_within_the_ttl() {
    let ttl = Duration::from_secs(2);
    let c = Cluster::start(near_spec(2, 3, ttl.as_secs_f64()));
    for (i, change) in ["write", "delete"].into_iter().enumerate() {
        let key = format!("k{i}");
        assert_eq!(c.set(0, &key, json!("old")).status(), 200);
        // Master 1 caches the old value.
        let cached_at = Instant::now();
        assert_eq!(c.value(1, &key), Some(json!("old")));
        let resp = match change {
            "write" => c.set(0, &key, json!("new")),
            _ => c.delete(0, &key),
        };
        assert_eq!(resp.status(), 200);
        let done = Instant::now();
        let expected = if change == "write" {
            Some(json!("new"))
        } else {
            None
        };
        // Master 0 sees its own change at once.
        assert_eq!(c.value(0, &key), expected);
        // Master 1 still answers from its near cache while the copy is
        // fresh (checked only when this read starts well within the TTL,
        // so that a stalled machine cannot fail it)...
        let asked = Instant::now();
        let seen = c.value(1, &key);
        if asked < cached_at + ttl / 2 {
            assert_eq!(
                seen,
                Some(json!("old")),
                "{change}: served from the near cache"
            );
        }
        // ...and sees the change once NEAR_CACHE_TTL has passed since it.
        std::thread::sleep((done + ttl).saturating_duration_since(Instant::now()));
        assert_eq!(c.value(1, &key), expected, "{change}: seen after the TTL");
    }
}

/// A command, a pipeline and a transaction through a master change keys
/// its near cache holds: its next reads see the changes at once. With one
/// replica the keys' leader answers with the changed keys only (`Execute`
/// as `0x0C`), with two with the changes' effects for the other replica;
/// either way the master learns which keys to forget.
#[test]
fn commands_pipelines_and_transactions_through_the_same_master_are_seen_at_once() {
    for replicas in [1, 2] {
        // A TTL far longer than the test: only invalidation can explain a
        // new value. One hash tag: the pipeline's and the transaction's
        // commands go to one leader together, in one `Execute`.
        let c = Cluster::start(Spec {
            replicas,
            ..near_spec(1, replicas, 600.0)
        });
        c.wait_settled(&["aux-1", "aux-2"][..replicas]);
        let at = format!("REPLICAS={replicas}");
        let hits = || master_metric(&c, 0, "distcache_near_cache_hits_total");
        // Reads `key` twice, the second from the near cache.
        let cache = |key: &str, value: Value| {
            assert_eq!(c.value(0, key), Some(value.clone()), "{at}: {key}");
            let before = hits();
            assert_eq!(c.value(0, key), Some(value), "{at}: {key}");
            assert_eq!(hits(), before + 1.0, "{at}: {key} is cached");
        };
        let post = |path: &str, body: Value| -> Value {
            let resp = c.http.post(c.url(0, path)).json(&body).send().unwrap();
            assert_eq!(resp.status(), 200, "{at}: {path} {body}");
            resp.json().unwrap()
        };

        assert_eq!(c.set(0, "{n}a", json!(41)).status(), 200);
        cache("{n}a", json!(41));
        assert_eq!(post("/", json!(["INCR", "{n}a"])), json!({"result": 42}));
        assert_eq!(c.value(0, "{n}a"), Some(json!("42")), "{at}: after INCR");

        assert_eq!(c.set(0, "{n}b", json!(1)).status(), 200);
        cache("{n}a", json!("42"));
        cache("{n}b", json!(1));
        let piped = post(
            "/pipeline",
            json!([["INCR", "{n}a"], ["APPEND", "{n}b", "0"]]),
        );
        assert_eq!(piped, json!([{"result": 43}, {"result": 2}]), "{at}");
        assert_eq!(c.value(0, "{n}a"), Some(json!("43")), "{at}: pipeline");
        assert_eq!(c.value(0, "{n}b"), Some(json!("10")), "{at}: pipeline");

        cache("{n}a", json!("43"));
        cache("{n}b", json!("10"));
        let executed = post(
            "/multi-exec",
            json!([["SET", "{n}a", "x"], ["DEL", "{n}b"]]),
        );
        assert_eq!(executed, json!([{"result": "OK"}, {"result": 1}]), "{at}");
        assert_eq!(c.value(0, "{n}a"), Some(json!("x")), "{at}: transaction");
        assert_eq!(c.value(0, "{n}b"), None, "{at}: transaction");
    }
}
