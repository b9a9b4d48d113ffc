//! `distcache bench` against a real cluster (one master, three auxiliaries,
//! processes on loopback): it completes, measures a positive throughput
//! with no errors, and its `--json` report has every documented field; a
//! `--commands` run did exactly the work it reports, as the cluster's
//! counters and lists show afterwards. No timing assertions: the machine is
//! shared.

mod common;

use std::process::{Command, Output};

use common::{BIN, Cluster, Spec};
use serde_json::Value;

fn bench(args: &[&str]) -> (Output, String) {
    let out = Command::new(BIN)
        .arg("bench")
        .args(args)
        .env_remove("DISTCACHE_URL")
        .output()
        .expect("run distcache bench");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    (out, stdout)
}

/// `field` of `obj`, or a failure that names it.
fn field<'a>(obj: &'a Value, path: &str) -> &'a Value {
    let v = obj.pointer(path).unwrap_or(&Value::Null);
    assert!(
        !v.is_null() || path == "/preload",
        "the report lacks {path}: {obj:#}"
    );
    v
}

/// Every field docs/benchmarks.md documents for one operation's figures.
fn assert_op_fields(report: &Value, at: &str) {
    for name in ["ops", "misses", "errors"] {
        assert!(
            field(report, &format!("{at}/{name}")).is_u64(),
            "{at}/{name} is a count"
        );
    }
    assert!(field(report, &format!("{at}/ops_per_sec")).is_f64());
    for q in ["p50", "p90", "p99", "p99_9", "max", "mean"] {
        let v = field(report, &format!("{at}/latency_ms/{q}"));
        assert!(
            v.as_f64().is_some_and(|x| x >= 0.0),
            "{at}/latency_ms/{q} = {v}"
        );
    }
}

#[test]
fn bench_json_report_against_a_cluster_has_every_field_and_no_errors() {
    let cluster = Cluster::start(Spec::default());
    let url = format!("http://{}", cluster.masters[0].addr);
    let (out, stdout) = bench(&[
        "--url",
        &url,
        "--connections",
        "8",
        "--duration",
        "2s",
        "--warmup",
        "500ms",
        "--keys",
        "500",
        "--mix",
        "get=70,set=20,del=10",
        "--distribution",
        "zipf",
        "--zipf-s",
        "0.99",
        "--value-size",
        "64",
        "--ttl-share",
        "0.5",
        "--preload",
        "--seed",
        "7",
        "--json",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "bench failed: {:?}\n{stdout}\n{stderr}",
        out.status
    );
    let report: Value = serde_json::from_str(&stdout).expect("--json prints one JSON document");

    // config
    assert_eq!(field(&report, "/config/urls"), &serde_json::json!([url]));
    assert_eq!(field(&report, "/config/connections"), 8);
    assert_eq!(field(&report, "/config/duration_s"), 2.0);
    assert!(report["config"]["requests"].is_null());
    assert_eq!(field(&report, "/config/warmup_s"), 0.5);
    assert_eq!(
        field(&report, "/config/mix"),
        &serde_json::json!({"get": 70, "set": 20, "del": 10})
    );
    assert_eq!(field(&report, "/config/keys"), 500);
    assert_eq!(field(&report, "/config/distribution"), "zipf");
    assert_eq!(field(&report, "/config/zipf_s"), 0.99);
    assert_eq!(field(&report, "/config/value_size"), 64);
    assert_eq!(field(&report, "/config/ttl_share"), 0.5);
    assert_eq!(field(&report, "/config/ttl_s"), 60);
    assert_eq!(field(&report, "/config/preload"), true);
    assert_eq!(field(&report, "/config/timeout_s"), 5.0);
    assert_eq!(field(&report, "/config/key_prefix"), "bench-");
    assert_eq!(field(&report, "/config/seed"), 7);

    // 500 keys fit: nothing to warn about; notes is always there.
    assert!(field(&report, "/notes").is_array(), "{report:#}");
    assert!(
        !report["notes"].to_string().contains("do not fit"),
        "{report:#}"
    );

    // preload
    assert_eq!(field(&report, "/preload/keys"), 500);
    assert_eq!(field(&report, "/preload/errors"), 0);
    assert!(
        field(&report, "/preload/seconds")
            .as_f64()
            .is_some_and(|s| s > 0.0)
    );

    // results
    assert!(
        field(&report, "/elapsed_s")
            .as_f64()
            .is_some_and(|s| s > 0.0)
    );
    assert_op_fields(&report, "/total");
    for op in ["get", "set", "del"] {
        assert_op_fields(&report, &format!("/operations/{op}"));
        let ops = report["operations"][op]["ops"].as_u64().unwrap();
        assert!(ops > 0, "some {op} requests were answered: {report:#}");
    }
    assert!(
        field(&report, "/errors")
            .as_object()
            .is_some_and(|e| e.is_empty()),
        "errors by kind: {report:#}"
    );
    assert_eq!(field(&report, "/total/errors"), 0, "{report:#}");
    assert!(report["total"]["ops_per_sec"].as_f64().unwrap() > 0.0);
    let sum: u64 = ["get", "set", "del"]
        .iter()
        .map(|op| report["operations"][op]["ops"].as_u64().unwrap())
        .sum();
    assert_eq!(
        report["total"]["ops"].as_u64(),
        Some(sum),
        "total is the sum of the operations"
    );
    // Every key was preloaded and nothing expires within the run, so only a
    // delete can make a read miss; some reads hit.
    let get = &report["operations"]["get"];
    assert!(
        get["misses"].as_u64().unwrap() < get["ops"].as_u64().unwrap(),
        "{get:#}"
    );
}

#[test]
fn bench_table_with_a_request_count_spread_over_two_masters() {
    let cluster = Cluster::start(Spec {
        masters: 2,
        ..Spec::default()
    });
    let urls: Vec<String> = cluster
        .master_addrs()
        .iter()
        .map(|a| format!("http://{a}"))
        .collect();
    let (out, stdout) = bench(&[
        "--url",
        &urls.join(","),
        "--connections",
        "4",
        "--requests",
        "2000",
        "--mix",
        "get=90,set=10",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "bench failed: {:?}\n{stdout}\n{stderr}",
        out.status
    );
    assert!(stdout.contains("errors: none"), "{stdout}");
    // No progress bar when stderr is not a terminal.
    assert!(!stderr.contains('%'), "stderr: {stderr}");
    let all = stdout
        .lines()
        .find(|l| l.starts_with("all "))
        .expect("an `all` row");
    let cols: Vec<&str> = all.split_whitespace().collect();
    assert_eq!(cols[1], "2000", "exactly --requests were measured: {all}");
    assert!(cols[2].parse::<f64>().unwrap() > 0.0, "{all}");
}

#[test]
fn bench_counts_refused_connections_as_errors_and_exits_1() {
    let port = common::free_port();
    let (out, stdout) = bench(&[
        "--url",
        &format!("http://127.0.0.1:{port}"),
        "--connections",
        "2",
        "--duration",
        "300ms",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let report: Value = serde_json::from_str(&stdout).expect("JSON");
    assert!(
        report["errors"]["connect"].as_u64().unwrap() > 0,
        "{report:#}"
    );
    assert_eq!(report["total"]["ops"], 0);
}

#[test]
fn bench_rejects_bad_options_with_exit_code_2() {
    for args in [
        &["--mix", "get=0"][..],
        &["--duration", "ten"],
        &["--ttl-share", "2"],
        &["--url", "ftp://x"],
        &["--commands", "rpush"],
        &["--commands", "incr", "--mix", "get=1"],
    ] {
        let (out, _) = bench(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn bench_keys_have_a_prefix_of_their_own_and_leave_other_keys_alone() {
    let cluster = Cluster::start(Spec::default());
    // Keys a user might hold, named as the run's keys would be without
    // the prefix.
    for key in ["0", "1", "9"] {
        assert_eq!(cluster.set(0, key, serde_json::json!("mine")).status(), 200);
    }
    let url = format!("http://{}", cluster.masters[0].addr);
    let (out, stdout) = bench(&[
        "--url",
        &url,
        "--connections",
        "2",
        "--requests",
        "300",
        "--keys",
        "10",
        "--mix",
        "get=50,set=50",
        "--preload",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for key in ["0", "1", "9"] {
        assert_eq!(
            cluster.value(0, key),
            Some(serde_json::json!("mine")),
            "the user's key {key:?} is untouched"
        );
    }
    assert!(
        cluster.value(0, "bench-9").is_some(),
        "the run wrote its own keys"
    );
    assert!(stdout.contains("10 keys (bench-0 to bench-9)"), "{stdout}");
    assert!(
        stdout.contains("preload: every key written once before the run, so that gets find them"),
        "--preload explains itself: {stdout}"
    );
    assert!(!stderr.contains("warning"), "10 keys fit: {stderr}");
}

#[test]
fn bench_warns_when_its_keys_exceed_the_cluster_capacity_and_says_why_gets_miss() {
    // 3 auxiliaries of 100 items, 2 copies of each key: 150 keys fit.
    let cluster = Cluster::start(Spec {
        cache_size: 100,
        ..Spec::default()
    });
    let url = format!("http://{}", cluster.masters[0].addr);
    let (out, stdout) = bench(&[
        "--url",
        &url,
        "--connections",
        "4",
        "--requests",
        "1000",
        "--keys",
        "1000",
        "--mix",
        "get=50,set=50",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let warning = stderr
        .lines()
        .find(|l| l.contains("warning"))
        .unwrap_or_else(|| panic!("no capacity warning on stderr: {stderr}"));
    for part in [
        "1000 keys do not fit",
        "300 items, 150 keys at 2 copies each",
        "evicts",
        "--keys 150",
    ] {
        assert!(warning.contains(part), "{part:?} in {warning}");
    }
    let misses = stdout
        .lines()
        .find(|l| l.starts_with("misses:"))
        .unwrap_or_else(|| panic!("no explanation of the misses: {stdout}"));
    assert!(misses.contains("--preload"), "{misses}");
    assert!(misses.contains("do not fit"), "{misses}");
    assert!(!stdout.contains("preload: every key"), "{stdout}");
    assert!(stdout.contains("no preload:"), "{stdout}");
}

/// One command's `result` through `POST /` of master 0.
fn command(cluster: &Cluster, args: Value) -> Value {
    let resp = cluster
        .http
        .post(cluster.url(0, "/"))
        .json(&args)
        .send()
        .expect("the master answers");
    assert_eq!(resp.status().as_u16(), 200, "{args}");
    resp.json::<Value>().expect("a JSON answer")["result"].clone()
}

#[test]
fn bench_commands_do_the_work_they_report_through_the_command_endpoint() {
    let cluster = Cluster::start(Spec::default());
    let url = format!("http://{}", cluster.masters[0].addr);
    let keys = 16;
    let (out, stdout) = bench(&[
        "--url",
        &url,
        "--connections",
        "4",
        "--requests",
        "600",
        "--keys",
        &keys.to_string(),
        "--key-prefix",
        "cmds-",
        // Any order: the run measures them in redis-benchmark's.
        "--commands",
        "sadd,lpush,incr",
        "--json",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let report: Value = serde_json::from_str(&stdout).expect("--json prints one JSON document");
    assert_eq!(
        field(&report, "/config/commands"),
        &serde_json::json!(["INCR", "LPUSH", "SADD"])
    );
    assert!(report["config"]["mix"].is_null(), "{report:#}");
    let cases = field(&report, "/commands").as_array().unwrap();
    let names: Vec<&str> = cases
        .iter()
        .map(|c| c["command"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["INCR", "LPUSH", "SADD"]);
    for (i, case) in cases.iter().enumerate() {
        assert_op_fields(&report, &format!("/commands/{i}"));
        assert_eq!(case["errors"], 0, "{case:#}");
        assert_eq!(case["ops"], 600, "exactly --requests per command: {case:#}");
        assert!(case["errors_by_kind"].as_object().unwrap().is_empty());
    }
    assert_eq!(field(&report, "/total/ops"), 1800, "{report:#}");

    // What the cluster holds is what the run says it did: every
    // acknowledged INCR counted once, every LPUSH one element.
    let ops = |i: usize| cases[i]["ops"].as_u64().unwrap();
    let int = |v: Value| v.as_str().map_or(0, |s| s.parse::<u64>().unwrap());
    let counters: u64 = (0..keys)
        .map(|k| {
            int(command(
                &cluster,
                serde_json::json!(["GET", format!("cmds-counter:{k}")]),
            ))
        })
        .sum();
    assert_eq!(counters, ops(0), "the counters add up to the INCRs");
    let lengths: u64 = (0..keys)
        .map(|k| {
            command(
                &cluster,
                serde_json::json!(["LLEN", format!("cmds-list:{k}")]),
            )
            .as_u64()
            .unwrap()
        })
        .sum();
    assert_eq!(lengths, ops(1), "the lists hold one element per LPUSH");
    // Members repeat (drawn from 16), so a set holds at most its SADDs, and
    // the keys spread: more than one set was written.
    let cards: Vec<u64> = (0..keys)
        .map(|k| {
            command(
                &cluster,
                serde_json::json!(["SCARD", format!("cmds-set:{k}")]),
            )
            .as_u64()
            .unwrap()
        })
        .collect();
    assert!(cards.iter().sum::<u64>() <= ops(2), "{cards:?}");
    assert!(cards.iter().filter(|&&c| c > 0).count() > 1, "{cards:?}");

    // The table names each command in a row of its own.
    let (out, stdout) = bench(&[
        "--url",
        &url,
        "--connections",
        "2",
        "--requests",
        "50",
        "--key-prefix",
        "cmds-table-",
        "--commands",
        "set,get,hset,zadd",
    ]);
    assert!(out.status.success(), "{stdout}");
    for name in ["SET", "GET", "HSET", "ZADD"] {
        let row = stdout
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} row: {stdout}"));
        assert_eq!(row.split_whitespace().nth(1), Some("50"), "{row}");
    }
    assert!(stdout.contains("errors: none"), "{stdout}");
}
