//! Every public route over HTTP against real processes: one master and three
//! auxiliaries.

mod common;

use std::time::Duration;

use common::{Cluster, Spec, assert_error, wait_until};
use serde_json::{Value, json};

fn cluster() -> Cluster {
    Cluster::start(Spec::default())
}

#[test]
fn values_of_every_json_type_round_trip_exactly() {
    let c = cluster();
    let values = [
        json!("John Doe"),
        json!(""),
        json!(42),
        json!(-7),
        json!(3.25),
        json!(true),
        json!(false),
        json!(null),
        json!([1, "two", [3], {"four": 4}]),
        json!({"name": "Ada", "tags": ["a", "b"], "nested": {"deep": [null, 1.5]}}),
        json!("unicode: héllo 🦀 \u{0000} \"quoted\" \\ back"),
    ];
    for (i, value) in values.iter().enumerate() {
        let key = format!("value-{i}");
        let resp = c.set(0, &key, value.clone());
        assert_eq!(resp.status(), 200, "set {value}");
        let body: Value = c.get(0, &key).json().unwrap();
        assert_eq!(body["key"], json!(key));
        assert_eq!(body["value"], *value, "round trip of {value}");
        assert_eq!(body["ttl"], Value::Null);
    }
    // The JSON text itself is kept: 1.0e3 stays 1.0e3, not 1000.0.
    let resp = c
        .http
        .post(c.url(0, "/data"))
        .body(r#"{"key":"exact","value":{"n":1.0e3,"s":"\u00e9"}}"#)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let text = c.get(0, "exact").text().unwrap();
    assert!(
        text.contains(r#""value":{"n":1.0e3,"s":"\u00e9"}"#),
        "{text}"
    );
}

#[test]
fn keys_with_reserved_characters_round_trip() {
    let c = cluster();
    let keys = [
        "a/b",
        "q?x",
        "frag#ment",
        "50%",
        "with space",
        "plus+sign",
        "emoji 🦀",
        "ünïcödé/路径",
        "bulk",
        "bulk/get",
        "a/../b",
        "a//b/",
        &"k".repeat(1024),
    ];
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(c.set(0, key, json!(i)).status(), 200, "set {key:?}");
    }
    for (i, key) in keys.iter().enumerate() {
        let body: Value = c.get(0, key).json().unwrap();
        assert_eq!(body["key"], json!(key), "key echoed for {key:?}");
        assert_eq!(body["value"], json!(i), "value for {key:?}");
    }
    // "." and ".." cannot travel as a URL path segment (URL libraries resolve
    // them, even percent-encoded), but they are keys like any other.
    let resp = c
        .http
        .post(c.url(0, "/data/bulk"))
        .json(&json!([{"key": ".", "value": 1}, {"key": "..", "value": 2}]))
        .send()
        .unwrap();
    assert_eq!(resp.json::<Value>().unwrap()["stored"], json!(2));
    let got: Value = c
        .http
        .post(c.url(0, "/data/bulk/get"))
        .json(&json!([".", ".."]))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(got, json!({".": 1, "..": 2}));
    for key in keys {
        assert_eq!(c.delete(0, key).status(), 200, "delete {key:?}");
        assert_eq!(c.get(0, key).status(), 404, "gone {key:?}");
    }
}

#[test]
fn set_replace_get_delete() {
    let c = cluster();
    assert_error(c.get(0, "user1"), 404, "key_not_found");
    let resp = c.set(0, "user1", json!("John Doe"));
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().unwrap();
    assert_eq!(body["stored"], json!(true));
    assert_eq!(c.value(0, "user1"), Some(json!("John Doe")));
    assert_eq!(c.set(0, "user1", json!({"v": 2})).status(), 200);
    assert_eq!(c.value(0, "user1"), Some(json!({"v": 2})));
    let resp = c.delete(0, "user1");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().unwrap()["deleted"], json!(true));
    assert_eq!(c.value(0, "user1"), None);
    assert_error(c.delete(0, "user1"), 404, "key_not_found");
}

/// `GET`/`DELETE /data/{key}` and `POST /data` are served by the master's
/// direct path, `/data/bulk` and `HEAD` by the router: both answer alike and
/// count under the router's route patterns.
#[test]
fn direct_and_routed_data_requests_answer_and_count_alike() {
    let c = cluster();
    assert_eq!(c.set(0, "bulk", json!("a key named bulk")).status(), 200);
    assert_eq!(c.set(0, "k", json!(1)).status(), 200);
    // The same key by the router (`/data/bulk` is its own route) and by the
    // direct path (`%62ulk` decodes to `bulk`).
    for path in ["/data/bulk", "/data/%62ulk"] {
        let body: Value = c.get_json(0, path);
        assert_eq!(body["value"], json!("a key named bulk"), "{path}");
    }
    let head = c.http.head(c.url(0, "/data/k")).send().unwrap();
    assert_eq!(head.status(), 200);
    assert_error(c.get(0, "missing"), 404, "key_not_found");
    assert_error(
        c.http.get(c.url(0, "/data/%FF")).send().unwrap(),
        400,
        "bad_path",
    );
    assert_error(c.delete(0, "missing"), 404, "key_not_found");
    assert_eq!(c.delete(0, "k").status(), 200);

    let metrics = c.get_text(0, "/metrics");
    for line in [
        r#"distcache_http_requests_total{method="POST",route="/data",status="200"} 2"#,
        r#"distcache_http_requests_total{method="GET",route="/data/bulk",status="200"} 1"#,
        r#"distcache_http_requests_total{method="GET",route="/data/{*key}",status="200"} 1"#,
        r#"distcache_http_requests_total{method="HEAD",route="/data/{*key}",status="200"} 1"#,
        r#"distcache_http_requests_total{method="GET",route="/data/{*key}",status="404"} 1"#,
        r#"distcache_http_requests_total{method="GET",route="/data/{*key}",status="400"} 1"#,
        r#"distcache_http_requests_total{method="DELETE",route="/data/{*key}",status="404"} 1"#,
        r#"distcache_http_requests_total{method="DELETE",route="/data/{*key}",status="200"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
}

#[test]
fn ttl_counts_down_and_expired_keys_vanish_and_are_reclaimed() {
    let c = cluster();
    assert_eq!(
        c.set_ttl(0, "short", json!("soon gone"), Some(1)).status(),
        200
    );
    assert_eq!(
        c.set_ttl(0, "long", json!("stays"), Some(3600)).status(),
        200
    );
    assert_eq!(
        c.set_ttl(0, "zero", json!("forever"), Some(0)).status(),
        200
    );
    let body: Value = c.get(0, "long").json().unwrap();
    let ttl = body["ttl"].as_u64().expect("ttl is a number");
    assert!((3590..=3600).contains(&ttl), "ttl {ttl}");
    assert_eq!(
        c.get(0, "zero").json::<Value>().unwrap()["ttl"],
        Value::Null
    );
    let short: Value = c.get(0, "short").json().unwrap();
    assert_eq!(short["ttl"], json!(1));

    // Expired keys are reclaimed by the auxiliaries without any read: the
    // stored copies of "short" (one per replica) leave the item counts.
    assert_eq!(c.total_items(), 6, "three keys on two replicas each");
    wait_until(
        Duration::from_secs(10),
        "the expired key is reclaimed",
        || c.total_items() == 4,
    );
    assert_eq!(c.get(0, "short").status(), 404);
    assert_eq!(c.value(0, "long"), Some(json!("stays")));
    assert_eq!(c.value(0, "zero"), Some(json!("forever")));
}

#[test]
fn bad_input_gets_a_json_error_with_the_right_status() {
    let c = cluster();
    let post = |body: &str| {
        c.http
            .post(c.url(0, "/data"))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .unwrap()
    };
    assert_error(post(r#"{"key":"","value":1}"#), 400, "bad_key");
    let long = "k".repeat(1025);
    assert_error(
        post(&format!(r#"{{"key":"{long}","value":1}}"#)),
        400,
        "bad_key",
    );
    assert_error(post("{not json"), 400, "bad_json");
    assert_error(post(""), 400, "bad_json");
    assert_error(post(r#"{"key":"a"}"#), 400, "bad_json");
    assert_error(post(r#"{"value":1}"#), 400, "bad_json");
    assert_error(post(r#"{"key":5,"value":1}"#), 400, "bad_json");
    assert_error(post(r#"{"key":"a","value":1,"ttl":-1}"#), 400, "bad_ttl");
    assert_error(post(r#"{"key":"a","value":1,"ttl":1.5}"#), 400, "bad_ttl");
    assert_error(post(r#"{"key":"a","value":1,"ttl":"60"}"#), 400, "bad_ttl");
    assert_error(post(r#"["a",1]"#), 400, "bad_json");
    assert_error(
        post(r#"{"key":"a","value":1,"key":"b","extra":0}"#),
        400,
        "bad_json",
    );
    assert_error(post(r#"{"key":"a","value":1,"tll":60}"#), 400, "bad_json");
    assert_error(post(r#"["key","value"]"#), 400, "bad_json");
    // A value over the 1 MiB default limit.
    let big = format!(r#"{{"key":"big","value":"{}"}}"#, "x".repeat(1024 * 1024));
    assert_error(post(&big), 413, "value_too_large");
    // A body over the body limit. The server answers before reading it all
    // and then closes the connection, so this uses a connection of its own.
    let huge = "x".repeat(17 * 1024 * 1024);
    let own = reqwest::blocking::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    assert_error(
        own.post(c.url(0, "/data")).body(huge).send().unwrap(),
        413,
        "body_too_large",
    );
    // Keys in the path.
    assert_error(
        c.http
            .get(c.url(0, &format!("/data/{long}")))
            .send()
            .unwrap(),
        400,
        "bad_key",
    );
    assert_error(
        c.http.get(c.url(0, "/data/")).send().unwrap(),
        400,
        "bad_key",
    );
    assert_error(
        c.http.get(c.url(0, "/data/%FF%FE")).send().unwrap(),
        400,
        "bad_path",
    );
    // A malformed escape is bad percent-encoding too, not the literal key
    // "%ZZ" (which travels as %25ZZ).
    for path in ["/data/%ZZ", "/data/a%2", "/data/50%", "/nodes/%ZZ"] {
        assert_error(c.http.get(c.url(0, path)).send().unwrap(), 400, "bad_path");
    }
    assert_error(
        c.http.delete(c.url(0, "/data/%ZZ")).send().unwrap(),
        400,
        "bad_path",
    );
    assert_eq!(c.set(0, "%ZZ", json!("literal")).status(), 200);
    assert_eq!(c.value(0, "%ZZ"), Some(json!("literal")), "sent as %25ZZ");
    // Unknown routes and methods.
    assert_error(
        c.http.get(c.url(0, "/nope")).send().unwrap(),
        404,
        "no_route",
    );
    assert_error(
        c.http.put(c.url(0, "/data")).send().unwrap(),
        405,
        "method_not_allowed",
    );
    assert_error(
        c.http.patch(c.url(0, "/data/x")).send().unwrap(),
        405,
        "method_not_allowed",
    );
    // Nothing above was stored, and the cluster still serves.
    assert_eq!(c.get(0, "a").status(), 404);
    assert_eq!(c.set(0, "a", json!(1)).status(), 200);
}

#[test]
fn bulk_set_and_get_report_per_key() {
    let c = cluster();
    let items: Vec<Value> = (0..200)
        .map(|i| json!({"key": format!("bulk-{i}"), "value": {"n": i}}))
        .chain([
            json!({"key": "", "value": 1}),
            json!({"key": "ttl-key", "value": 1, "ttl": 60}),
        ])
        .collect();
    let resp = c
        .http
        .post(c.url(0, "/data/bulk"))
        .json(&items)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().unwrap();
    assert_eq!(body["stored"], json!(201), "{body}");
    let failed = body["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{body}");
    assert_eq!(failed[0]["key"], json!(""));
    assert_eq!(failed[0]["error"]["code"], json!("bad_key"));

    assert_eq!(c.value(0, "bulk-17"), Some(json!({"n": 17})));
    let ttl = c.get(0, "ttl-key").json::<Value>().unwrap()["ttl"]
        .as_u64()
        .unwrap();
    assert!(ttl > 50 && ttl <= 60, "{ttl}");

    let keys: Vec<String> = (0..200)
        .step_by(7)
        .map(|i| format!("bulk-{i}"))
        .chain(["missing".to_string()])
        .collect();
    let resp = c
        .http
        .post(c.url(0, "/data/bulk/get"))
        .json(&keys)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let got: Value = resp.json().unwrap();
    let got = got.as_object().unwrap();
    assert_eq!(got.len(), keys.len() - 1, "all but the missing key");
    for i in (0..200).step_by(7) {
        assert_eq!(got[&format!("bulk-{i}")], json!({"n": i}));
    }
    assert!(!got.contains_key("missing"));

    // A key asked twice is named once in the answer (the raw text is
    // checked: a JSON parser would hide a name given twice).
    let text = c
        .http
        .post(c.url(0, "/data/bulk/get"))
        .json(&json!(["bulk-7", "bulk-14", "bulk-7"]))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert_eq!(text.matches("\"bulk-7\"").count(), 1, "{text}");
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap(),
        json!({"bulk-7": {"n": 7}, "bulk-14": {"n": 14}})
    );

    // Limits and malformed bodies.
    let too_many: Vec<String> = (0..1001).map(|i| format!("k{i}")).collect();
    assert_error(
        c.http
            .post(c.url(0, "/data/bulk/get"))
            .json(&too_many)
            .send()
            .unwrap(),
        413,
        "batch_too_large",
    );
    assert_error(
        c.http
            .post(c.url(0, "/data/bulk/get"))
            .body("{}")
            .send()
            .unwrap(),
        400,
        "bad_json",
    );
    assert_error(
        c.http
            .post(c.url(0, "/data/bulk/get"))
            .json(&json!([""]))
            .send()
            .unwrap(),
        400,
        "bad_key",
    );
    assert_error(
        c.http
            .post(c.url(0, "/data/bulk"))
            .body("[{]")
            .send()
            .unwrap(),
        400,
        "bad_json",
    );
    let empty: Value = c
        .http
        .post(c.url(0, "/data/bulk/get"))
        .json(&json!([]))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(empty, json!({}));
}

#[test]
fn health_nodes_ring_and_metrics_describe_the_cluster() {
    let c = cluster();
    // The epoch grows while the cluster forms (joins, the first rounds);
    // once it has settled, /health and /ring name the same map.
    c.wait_settled(&["aux-1", "aux-2", "aux-3"]);
    let health = c.health(0);
    assert_eq!(health["status"], json!("ok"));
    assert_eq!(health["role"], json!("master"));
    assert_eq!(health["node_id"], json!("master-1"));
    assert_eq!(health["auxiliaries_up"], json!(3));
    assert_eq!(health["auxiliaries_total"], json!(3));
    assert_eq!(health["replicas"], json!(2));
    // The map's epoch: a number that grew with every change of routing.
    let epoch = health["ring_epoch"].as_u64().unwrap();
    assert!(epoch >= 3, "three nodes joined: {health}");

    for i in 0..30 {
        c.set(0, &format!("n{i}"), json!(i));
    }
    let nodes: Value = c.get_json(0, "/nodes");
    let nodes = nodes["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3);
    for n in nodes {
        assert_eq!(n["state"], json!("up"), "{n}");
        assert!(n["addr"].as_str().unwrap().starts_with("127.0.0.1:"));
        assert!(n["data_addr"].as_str().unwrap().starts_with("127.0.0.1:"));
        assert!(n["last_seen"].as_u64().is_some());
    }
    let one: Value = c.get_json(0, "/nodes/aux-2");
    assert_eq!(one["id"], json!("aux-2"));
    assert_error(
        c.http.get(c.url(0, "/nodes/nope")).send().unwrap(),
        404,
        "node_not_found",
    );
    // Items reach /nodes with the next health check: 30 keys × 2 replicas.
    wait_until(Duration::from_secs(10), "item counts in /nodes", || {
        let nodes: Value = c.get_json(0, "/nodes");
        nodes["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["items"].as_u64().unwrap())
            .sum::<u64>()
            == 60
    });

    let ring: Value = c.get_json(0, "/ring");
    assert_eq!(ring["epoch"], json!(epoch));
    let members = ring["members"].as_array().unwrap();
    assert_eq!(members.len(), 3);
    let total: f64 = members.iter().map(|m| m["share"].as_f64().unwrap()).sum();
    assert!((total - 1.0).abs() < 1e-9, "shares sum to 1: {total}");
    for m in members {
        let share = m["share"].as_f64().unwrap();
        assert!(share > 0.25 && share < 0.42, "balanced share {share}");
    }
    assert!(ring["virtual_nodes"].as_u64().unwrap() >= 10);

    let metrics = c.get_text(0, "/metrics");
    assert!(
        metrics.contains(
            "distcache_http_requests_total{method=\"POST\",route=\"/data\",status=\"200\"} 30"
        ),
        "{metrics}"
    );
    assert!(metrics.contains("distcache_ring_members 3"));
    assert!(metrics.contains("distcache_aux_up{node=\"aux-1\"} 1"));
    let aux = c.aux_addr("aux-1");
    let aux_metrics = c
        .http
        .get(format!("http://{aux}/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(aux_metrics.contains("distcache_items "), "{aux_metrics}");
    assert!(aux_metrics.contains("distcache_capacity_items 10000"));
    let aux_health: Value = c
        .http
        .get(format!("http://{aux}/health"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(aux_health["role"], json!("auxiliary"));
    assert_eq!(aux_health["node_id"], json!("aux-1"));
}

#[test]
fn backup_and_restore_routes_answer() {
    let c = cluster();
    // No backup yet: nothing to restore.
    assert_error(
        c.http.post(c.url(0, "/restore")).send().unwrap(),
        404,
        "backup_not_found",
    );
    let resp = c.http.post(c.url(0, "/backup")).send().unwrap();
    assert_eq!(resp.status(), 200);
    let report: Value = resp.json().unwrap();
    assert_eq!(report["nodes"], json!(3), "{report}");
    assert_error(
        c.http
            .post(c.url(0, "/restore"))
            .body("{\"nope\":1}")
            .send()
            .unwrap(),
        400,
        "bad_json",
    );
}

#[test]
fn lru_evicts_the_least_recently_used_key() {
    // One auxiliary, one shard, three items: exact LRU end to end.
    let mut spec = Spec {
        auxiliaries: 1,
        replicas: 1,
        cache_size: 3,
        ..Spec::default()
    };
    spec.aux_env.push(("CACHE_SHARDS".into(), "1".into()));
    let c = Cluster::start(spec);
    for k in ["a", "b", "c"] {
        assert_eq!(c.set(0, k, json!(k)).status(), 200);
    }
    assert_eq!(c.value(0, "a"), Some(json!("a"))); // a is now the most recent
    assert_eq!(c.set(0, "d", json!("d")).status(), 200); // evicts b
    assert_eq!(c.value(0, "b"), None);
    for k in ["a", "c", "d"] {
        assert_eq!(c.value(0, k), Some(json!(k)), "{k} kept");
    }
    let aux = c.aux_addr("aux-1");
    let metrics = c
        .http
        .get(format!("http://{aux}/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(metrics.contains("distcache_evictions_total 1"), "{metrics}");
}
