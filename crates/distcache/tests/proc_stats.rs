//! `GET /stats` and `distcache stats` against a real cluster: each node's
//! items, bytes, hit ratio and state, as a table and as JSON.

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use common::{BIN, Cluster, Spec, free_port, output_text, run_ok, wait_until};
use serde_json::{Value, json};

#[test]
fn stats_report_each_nodes_items_bytes_hit_ratio_and_state() {
    let mut c = Cluster::start(Spec {
        masters: 1,
        auxiliaries: 3,
        replicas: 2,
        ..Spec::default()
    });
    let stats = |c: &Cluster| -> Value {
        c.http
            .get(c.url(0, "/stats"))
            .send()
            .and_then(|r| r.json())
            .expect("GET /stats")
    };
    // Once the first rebalance has committed the ring, every key has
    // exactly two copies.
    wait_until(Duration::from_secs(20), "the ring is committed", || {
        let ring: Value = c
            .http
            .get(c.url(0, "/ring"))
            .send()
            .and_then(|r| r.json())
            .unwrap_or(Value::Null);
        let members: BTreeSet<&str> = ring["members"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["id"].as_str())
            .collect();
        let committed: BTreeSet<&str> = ring["committed"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        members.len() == 3 && members == committed && ring["rebalancing"] == json!(false)
    });
    for i in 0..50 {
        assert_eq!(
            c.set(0, &format!("s{i}"), json!("v")).status().as_u16(),
            200
        );
    }
    for i in 0..50 {
        assert_eq!(c.get(0, &format!("s{i}")).status().as_u16(), 200);
    }
    wait_until(Duration::from_secs(20), "100 copies are counted", || {
        stats(&c)["totals"]["items"] == json!(100)
    });
    let s = stats(&c);
    let nodes = s["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 3, "{s}");
    let (mut items, mut bytes, mut hits, mut misses) = (0, 0, 0, 0);
    for n in nodes {
        assert_eq!(n["state"], json!("up"), "{n}");
        assert_eq!(n["answered"], json!(true), "{n}");
        assert!(n["bytes"].as_u64().expect("bytes") > 0, "{n}");
        assert_eq!(n["capacity_items"], json!(10_000), "{n}");
        let (h, m) = (
            n["hits"].as_u64().expect("hits"),
            n["misses"].as_u64().expect("misses"),
        );
        if h + m > 0 {
            let r = n["hit_ratio"].as_f64().expect("ratio");
            assert!((r - h as f64 / (h + m) as f64).abs() < 1e-9, "{n}");
        }
        items += n["items"].as_u64().unwrap();
        bytes += n["bytes"].as_u64().unwrap();
        hits += h;
        misses += m;
    }
    let t = &s["totals"];
    assert_eq!(t["items"], json!(items));
    assert_eq!(t["bytes"], json!(bytes));
    assert_eq!(
        (t["nodes"].clone(), t["nodes_up"].clone()),
        (json!(3), json!(3))
    );
    assert!(hits >= 50, "each of the 50 reads hit its leader: {s}");
    assert_eq!(t["hits"], json!(hits));
    assert_eq!(t["misses"], json!(misses));

    // The CLI prints the same, one row per node.
    let out = run_ok(
        "distcache stats",
        Command::new(BIN).args(["stats", "--url", &c.url(0, "")]),
    );
    let table = String::from_utf8_lossy(&out.stdout).to_string();
    for id in ["aux-1", "aux-2", "aux-3"] {
        let row = table
            .lines()
            .find(|l| l.starts_with(id))
            .unwrap_or_else(|| panic!("no row for {id}:\n{table}"));
        let cells: Vec<&str> = row.split_whitespace().collect();
        let node = nodes.iter().find(|n| n["id"] == json!(id)).expect("node");
        assert_eq!(cells[1], "up", "{row}");
        assert_eq!(
            cells[2],
            node["items"].as_u64().unwrap().to_string(),
            "{row}"
        );
    }
    assert!(table.contains("3/3 up"), "{table}");
    let json_out = run_ok(
        "distcache stats --json",
        Command::new(BIN).args(["stats", "--json", "--url", &c.url(0, "")]),
    );
    let parsed: Value = serde_json::from_slice(&json_out.stdout).expect("--json prints JSON");
    assert_eq!(parsed["nodes"].as_array().map(Vec::len), Some(3));

    // A killed node shows as down, in /stats, the CLI and the metrics.
    c.aux("aux-3").proc.kill();
    wait_until(Duration::from_secs(20), "aux-3 is down in /stats", || {
        let s = stats(&c);
        s["nodes"].as_array().into_iter().flatten().any(|n| {
            n["id"] == json!("aux-3")
                && n["state"] == json!("down")
                && n["answered"] == json!(false)
        })
    });
    let metrics = c.get_text(0, "/metrics");
    assert!(
        metrics.contains("distcache_aux_up{node=\"aux-3\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("distcache_aux_up{node=\"aux-1\"} 1"),
        "{metrics}"
    );
    let out = run_ok(
        "distcache stats",
        Command::new(BIN).args(["stats", "--url", &c.url(0, "")]),
    );
    let table = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("aux-3") && l.contains("down*")),
        "{table}"
    );

    // An unreachable master: exit code 2 and a message.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let out = Command::new(BIN)
        .args(["stats", "--url", &dead])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach"));
}
