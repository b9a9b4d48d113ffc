//! Observability, checked with the real tools: `promtool check metrics` on
//! live `/metrics`, `promtool check config|rules` and `promtool test rules`
//! on the shipped files, every PromQL expression of the Grafana dashboard
//! evaluated by a real Prometheus scraping a real cluster, and the
//! dashboard's structure. (`GET /stats` and `distcache stats` need no tool:
//! `proc_stats.rs`.)
//!
//! `prometheus` and `promtool` come from `scripts/deps.d/40-prometheus.sh`.
//! Without them `./scripts/test` skips this file and says which script to
//! run; run directly, or in CI, a missing one fails the test and names the
//! script.
//! Grafana cannot be installed here: the dashboard is checked as JSON and
//! its queries through Prometheus, not rendered.

mod common;

use std::collections::{BTreeSet, HashSet};
use std::fs::{self, File};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{Cluster, Spec, free_port, output_text, repo, run_ok, wait_until};
use serde_json::{Value, json};

const DEPS_SCRIPT: &str = "scripts/deps.d/40-prometheus.sh";

/// A program the deps script installs (see [`common::tool`]).
fn tool(relative_or_name: &str) -> PathBuf {
    common::tool(relative_or_name, DEPS_SCRIPT)
}

fn prometheus_dir() -> PathBuf {
    repo().join("deploy/prometheus")
}

fn dashboard() -> Value {
    let path = repo().join("deploy/grafana/dashboards/distcache.json");
    serde_json::from_str(&fs::read_to_string(&path).expect("dashboard file"))
        .expect("the dashboard is valid JSON")
}

/// Every panel, rows' nested panels included.
fn panels(dash: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    for p in dash["panels"].as_array().expect("panels") {
        out.push(p.clone());
        if let Some(nested) = p["panels"].as_array() {
            out.extend(nested.iter().cloned());
        }
    }
    out
}

/// (panel title, expression) for every query of every panel.
fn dashboard_queries(dash: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in panels(dash) {
        for t in p["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"].as_str().expect("every target has an expr");
            out.push((
                p["title"].as_str().unwrap_or("?").to_string(),
                expr.to_string(),
            ));
        }
    }
    out
}

/// Grafana's variables as this test's Prometheus needs them: a range of
/// ten one-second scrapes, every auxiliary for `$node` (the variable's
/// `allValue`).
fn substitute(expr: &str) -> String {
    let out = expr
        .replace("$__rate_interval", "10s")
        .replace("${__rate_interval}", "10s")
        .replace("$__interval", "5s")
        .replace("${__interval}", "5s")
        .replace("$__range", "1m")
        .replace("${node}", ".+")
        .replace("$node", ".+");
    assert!(
        !out.contains('$'),
        "unknown Grafana variable left in {expr:?} after substitution: {out:?}"
    );
    out
}

// ---------------------------------------------------------------------------
// promtool on the shipped files

#[test]
fn promtool_accepts_the_shipped_config_and_rules() {
    let dir = prometheus_dir();
    run_ok(
        "promtool check config",
        Command::new(tool("promtool"))
            .args(["check", "config"])
            .arg(dir.join("prometheus.yml")),
    );
    let out = run_ok(
        "promtool check rules",
        Command::new(tool("promtool"))
            .args(["check", "rules"])
            .arg(dir.join("alerts.yml")),
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("SUCCESS"),
        "{}",
        output_text(&out)
    );
    // The config scrapes every node of the compose deployment.
    let config = fs::read_to_string(dir.join("prometheus.yml")).expect("prometheus.yml");
    for target in [
        "master-1:8000",
        "master-2:8000",
        "master-3:8000",
        "aux-1:3001",
        "aux-2:3001",
        "aux-3:3001",
    ] {
        assert!(
            config.contains(&format!("\"{target}\"")),
            "{target} is scraped"
        );
    }
}

/// Alert names in alerts.yml.
fn alert_names() -> Vec<String> {
    fs::read_to_string(prometheus_dir().join("alerts.yml"))
        .expect("alerts.yml")
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .map(|s| s.trim().to_string())
        .collect()
}

#[test]
fn every_alert_fires_on_its_synthetic_series_and_stays_quiet_otherwise() {
    let dir = prometheus_dir();
    let out = run_ok(
        "promtool test rules",
        Command::new(tool("promtool"))
            .current_dir(&dir)
            .args(["test", "rules", "alerts_test.yml"]),
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("SUCCESS"),
        "{}",
        output_text(&out)
    );

    // Every alert has a case where it fires and one where it must not.
    let tests = fs::read_to_string(dir.join("alerts_test.yml")).expect("alerts_test.yml");
    let mut fires = HashSet::new();
    let mut quiet = HashSet::new();
    let mut current = String::new();
    for line in tests.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix("alertname: ") {
            current = name.trim().to_string();
        } else if line == "exp_alerts: []" {
            quiet.insert(current.clone());
        } else if line == "- exp_labels:" {
            fires.insert(current.clone());
        }
    }
    let alerts = alert_names();
    assert!(alerts.len() >= 10, "alerts found: {alerts:?}");
    for required in [
        "DistcacheNodeDown",
        "DistcacheNoMasterUp",
        "DistcacheHitRatioDropped",
        "DistcacheLatencyP99High",
        "DistcacheSnapshotStale",
        "DistcacheSnapshotFailing",
        "DistcacheNotDurable",
        "DistcacheMemoryNearLimit",
        "DistcacheRebalanceStuck",
    ] {
        assert!(alerts.iter().any(|a| a == required), "{required} exists");
    }
    for alert in &alerts {
        assert!(fires.contains(alert), "no test where {alert} fires");
        assert!(quiet.contains(alert), "no test where {alert} stays quiet");
    }
    // And every alert links to its runbook entry in the docs.
    let docs = fs::read_to_string(repo().join("docs/observability.md")).expect("docs");
    for alert in &alerts {
        assert!(
            docs.contains(&format!("### {alert}")),
            "docs/observability.md has no runbook section for {alert}"
        );
    }
}

// ---------------------------------------------------------------------------
// The dashboard's structure

#[test]
fn the_dashboard_is_well_formed_and_uses_the_provisioned_datasource() {
    let dash = dashboard();
    assert_eq!(dash["uid"], json!("distcache"));
    let datasources =
        fs::read_to_string(repo().join("deploy/grafana/provisioning/datasources/datasource.yml"))
            .expect("datasource.yml");
    let uids: Vec<&str> = datasources
        .lines()
        .filter_map(|l| l.trim().strip_prefix("uid: "))
        .map(str::trim)
        .collect();
    assert_eq!(uids.len(), 1, "one provisioned data source: {uids:?}");
    let uid = uids[0];

    let all = panels(&dash);
    let mut ids = HashSet::new();
    let mut titles = BTreeSet::new();
    for p in &all {
        let id = p["id"].as_u64().expect("every panel has a numeric id");
        assert!(ids.insert(id), "panel id {id} is used twice");
        let title = p["title"].as_str().expect("every panel has a title");
        let grid = &p["gridPos"];
        let (x, w) = (
            grid["x"].as_u64().expect("x"),
            grid["w"].as_u64().expect("w"),
        );
        assert!(
            x + w <= 24 && grid["h"].as_u64().is_some(),
            "{title}: gridPos {grid}"
        );
        if p["type"] == json!("row") {
            continue;
        }
        titles.insert(title.to_string());
        assert_eq!(
            p["datasource"]["uid"],
            json!(uid),
            "{title}: panel datasource"
        );
        assert_eq!(p["datasource"]["type"], json!("prometheus"), "{title}");
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title} has no query");
        let mut refs = HashSet::new();
        for t in targets {
            assert!(refs.insert(t["refId"].clone()), "{title}: refId twice");
            assert_eq!(
                t["datasource"]["uid"],
                json!(uid),
                "{title}: target datasource"
            );
            assert!(t["expr"].as_str().is_some_and(|e| !e.trim().is_empty()));
        }
    }
    for var in dash["templating"]["list"].as_array().expect("variables") {
        assert_eq!(
            var["datasource"]["uid"],
            json!(uid),
            "variable {}",
            var["name"]
        );
    }
    // The sections the issue asks for.
    let rows: Vec<&str> = all
        .iter()
        .filter(|p| p["type"] == json!("row"))
        .filter_map(|p| p["title"].as_str())
        .collect();
    for row in [
        "Overview",
        "Requests",
        "Cache",
        "Node health",
        "Rebalancing",
        "Snapshots",
        "Process",
    ] {
        assert!(rows.contains(&row), "row {row} in {rows:?}");
    }
    for panel in [
        "Request rate by route",
        "Latency p50 and p99 by route",
        "Hit ratio by node",
        "Items per node",
        "Bytes per node",
        "Evictions and expirations",
        "Auxiliary up, as each master sees it",
        "Resident memory",
        "CPU",
    ] {
        assert!(titles.contains(panel), "panel {panel:?} in {titles:?}");
    }
    // Variables resolve.
    for (title, expr) in dashboard_queries(&dash) {
        let _ = (title, substitute(&expr));
    }

    // The provider loads the directory compose mounts the file into.
    let providers =
        fs::read_to_string(repo().join("deploy/grafana/provisioning/dashboards/dashboards.yml"))
            .expect("dashboards.yml");
    let path = providers
        .lines()
        .find_map(|l| l.trim().strip_prefix("path: "))
        .expect("provider path")
        .trim();
    let compose = fs::read_to_string(repo().join("docker-compose.yml")).expect("compose");
    assert!(
        compose.contains(&format!(
            "./deploy/grafana/dashboards/distcache.json:{path}/distcache.json"
        )),
        "compose mounts the dashboard where the provider ({path}) looks"
    );
    assert!(
        compose.contains("http://prometheus:9090")
            || datasources.contains("http://prometheus:9090"),
        "the data source points at the compose Prometheus"
    );
}

// ---------------------------------------------------------------------------
// Live: promtool on /metrics, and every dashboard query through Prometheus

/// Writes, reads (hits and misses), deletes, bulk calls, short TTLs and
/// PUBLISH against every master until `stop`, so that every metric moves.
fn drive_traffic(masters: Vec<String>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("client");
        let mut i: u64 = 0;
        while !stop.load(Ordering::Relaxed) {
            let m = &masters[(i as usize) % masters.len()];
            let key = format!("obs-{}", i % 600);
            let _ = http
                .post(format!("http://{m}/data"))
                .json(&json!({"key": key, "value": {"n": i, "pad": "x".repeat(100)}}))
                .send();
            let _ = http
                .get(format!("http://{m}/data/obs-{}", (i * 7) % 900))
                .send();
            let _ = http.get(format!("http://{m}/data/{key}")).send();
            if i % 5 == 0 {
                let _ = http
                    .post(format!("http://{m}/data"))
                    .json(&json!({"key": format!("ttl-{i}"), "value": 1, "ttl": 1}))
                    .send();
                let _ = http
                    .delete(format!("http://{m}/data/obs-{}", (i * 3) % 600))
                    .send();
            }
            if i % 20 == 0 {
                let batch: Vec<Value> = (0..10)
                    .map(|j| json!({"key": format!("bulk-{j}"), "value": j}))
                    .collect();
                let _ = http
                    .post(format!("http://{m}/data/bulk"))
                    .json(&batch)
                    .send();
                let _ = http
                    .post(format!("http://{m}/data/bulk/get"))
                    .json(&json!(["bulk-1", "bulk-2", "nope"]))
                    .send();
                let _ = http.get(format!("http://{m}/stats")).send();
                // Forwarded to the other master, which counts its receivers.
                let _ = http
                    .post(format!("http://{m}/"))
                    .json(&json!(["PUBLISH", "obs-news", i.to_string()]))
                    .send();
            }
            i += 1;
        }
        i
    })
}

/// `promtool check metrics` on one node's live `/metrics`.
fn promtool_check_metrics(http: &reqwest::blocking::Client, addr: &str) -> String {
    let body = http
        .get(format!("http://{addr}/metrics"))
        .send()
        .and_then(|r| r.text())
        .expect("GET /metrics");
    let mut child = Command::new(tool("promtool"))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start promtool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(body.as_bytes())
        .expect("feed promtool");
    let out = child.wait_with_output().expect("promtool");
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics on {addr} found problems:\n{}",
        output_text(&out)
    );
    body
}

/// Family names in a /metrics text.
fn families(body: &str) -> BTreeSet<String> {
    body.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn promtool_accepts_the_live_metrics_of_a_master_and_an_auxiliary() {
    let c = Cluster::start(Spec {
        masters: 1,
        auxiliaries: 2,
        ..Spec::default()
    });
    let secret = "key-that-must-not-become-a-label";
    assert_eq!(c.set(0, secret, json!(1)).status().as_u16(), 200);
    assert_eq!(c.get(0, secret).status().as_u16(), 200);
    assert_eq!(c.get(0, "missing-key-label-check").status().as_u16(), 404);
    c.delete(0, secret);
    // Once the master has health-checked the nodes after the write.
    wait_until(
        Duration::from_secs(10),
        "aux sizes reach the master",
        || {
            let body = c
                .http
                .get(c.url(0, "/metrics"))
                .send()
                .and_then(|r| r.text())
                .unwrap_or_default();
            body.contains("distcache_aux_items{node=\"aux-1\"}")
                && body.contains("distcache_aux_items{node=\"aux-2\"}")
        },
    );

    let master = promtool_check_metrics(&c.http, &c.masters[0].addr);
    let aux = promtool_check_metrics(&c.http, &c.aux_addr("aux-1"));
    for body in [&master, &aux] {
        assert!(!body.contains(secret), "a key leaked into the metrics");
        assert!(!body.contains("missing-key-label-check"), "a key leaked");
        // Every family has help text.
        for name in families(body) {
            assert!(
                body.lines()
                    .any(|l| l.starts_with(&format!("# HELP {name} ")) && l.len() > name.len() + 8),
                "{name} has no help text"
            );
        }
    }
    let master_families = families(&master);
    for name in [
        "distcache_http_requests_total",
        "distcache_http_request_duration_seconds",
        "distcache_aux_up",
        "distcache_aux_items",
        "distcache_aux_bytes",
        "distcache_ring_members",
        "distcache_ring_epoch",
        "distcache_keys_moved_total",
        "distcache_rebalance_pending",
        "distcache_snapshot_last_success_timestamp_seconds",
        "distcache_build_info",
        "distcache_memory_limit_bytes",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
    ] {
        assert!(master_families.contains(name), "master exports {name}");
    }
    let aux_families = families(&aux);
    for name in [
        "distcache_http_requests_total",
        "distcache_hits_total",
        "distcache_misses_total",
        "distcache_evictions_total",
        "distcache_expirations_total",
        "distcache_items",
        "distcache_bytes",
        "distcache_capacity_items",
        "distcache_aux_epoch",
        "distcache_aux_stale_epoch_refusals_total",
        "distcache_snapshot_duration_seconds",
        "distcache_snapshot_bytes",
        "distcache_snapshot_failures_total",
        "distcache_snapshot_interval_seconds",
        "process_resident_memory_bytes",
    ] {
        assert!(aux_families.contains(name), "auxiliary exports {name}");
    }
    // Sub-millisecond buckets.
    assert!(master.contains("le=\"0.0001\""), "a 100 µs bucket exists");
}

/// A Prometheus process on loopback, killed when dropped.
struct Prometheus {
    child: Child,
    log: PathBuf,
    url: String,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            eprintln!("---- last lines of the Prometheus log ----");
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

/// The shipped prometheus.yml with this test's targets and a one-second
/// scrape and evaluation interval; everything else (job names, labels,
/// rule file) as shipped.
fn test_config(masters: &[String], auxes: &[String], self_addr: &str) -> String {
    let shipped = fs::read_to_string(prometheus_dir().join("prometheus.yml")).expect("config");
    let quote = |v: &[String]| {
        v.iter()
            .map(|a| format!("\"{a}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut config = shipped.clone();
    for (from, to) in [
        ("scrape_interval: 15s", "scrape_interval: 1s".to_string()),
        (
            "evaluation_interval: 15s",
            "evaluation_interval: 1s".to_string(),
        ),
        ("scrape_timeout: 5s", "scrape_timeout: 1s".to_string()),
        (
            "\"master-1:8000\", \"master-2:8000\", \"master-3:8000\"",
            quote(masters),
        ),
        (
            "\"aux-1:3001\", \"aux-2:3001\", \"aux-3:3001\"",
            quote(auxes),
        ),
        ("\"localhost:9090\"", format!("\"{self_addr}\"")),
    ] {
        assert!(
            config.contains(from),
            "prometheus.yml no longer has {from:?}"
        );
        config = config.replace(from, &to);
    }
    config
}

fn query(http: &reqwest::blocking::Client, prom: &str, expr: &str) -> Value {
    let mut encoded = String::new();
    for b in expr.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    http.get(format!("{prom}/api/v1/query?query={encoded}"))
        .send()
        .and_then(|r| r.json::<Value>())
        .unwrap_or(Value::Null)
}

#[test]
fn every_dashboard_query_returns_data_from_a_real_prometheus() {
    let prometheus_bin = tool("prometheus");
    let c = Cluster::start(Spec {
        masters: 2,
        auxiliaries: 3,
        // Small enough that the traffic evicts; a byte limit so that the
        // capacity series exists.
        cache_size: 300,
        aux_env: vec![("CACHE_MAX_BYTES".into(), "10000000".into())],
        ..Spec::default()
    });
    let masters = c.master_addrs();
    let auxes: Vec<String> = ["aux-1", "aux-2", "aux-3"]
        .iter()
        .map(|id| c.aux_addr(id))
        .collect();

    let dir = c.dir.path().join("prometheus");
    fs::create_dir_all(dir.join("data")).expect("storage dir");
    fs::copy(prometheus_dir().join("alerts.yml"), dir.join("alerts.yml")).expect("rules");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    fs::write(
        dir.join("prometheus.yml"),
        test_config(&masters, &auxes, &listen),
    )
    .expect("config");
    let log = dir.join("prometheus.log");
    let file = File::create(&log).expect("log");
    let prom = Prometheus {
        child: Command::new(&prometheus_bin)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={listen}"))
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", prometheus_bin.display())),
        log,
        url: format!("http://{listen}"),
    };
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    wait_until(Duration::from_secs(60), "Prometheus is ready", || {
        http.get(format!("{}/-/ready", prom.url))
            .send()
            .is_ok_and(|r| r.status().is_success())
    });

    let stop = Arc::new(AtomicBool::new(false));
    let traffic = drive_traffic(masters.clone(), stop.clone());

    // Every target up (2 masters, 3 auxiliaries, Prometheus itself).
    wait_until(
        Duration::from_secs(60),
        "Prometheus scrapes every node",
        || query(&http, &prom.url, "count(up == 1)")["data"]["result"][0]["value"][1] == json!("6"),
    );

    let dash = dashboard();
    let queries = dashboard_queries(&dash);
    assert!(queries.len() >= 30, "{} queries", queries.len());
    for (title, expr) in &queries {
        let promql = substitute(expr);
        let started = std::time::Instant::now();
        loop {
            let answer = query(&http, &prom.url, &promql);
            if answer["status"] == json!("error") {
                panic!("panel {title:?}: Prometheus refused {promql:?}: {answer}");
            }
            if answer["data"]["result"]
                .as_array()
                .is_some_and(|r| !r.is_empty())
            {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(90),
                "panel {title:?}: {promql:?} returned no data within 90 s; last answer: {answer}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    // The rules load and evaluate without errors against live series, and
    // the recording rules produce data.
    wait_until(
        Duration::from_secs(60),
        "every rule evaluated without error",
        || {
            let rules: Value = http
                .get(format!("{}/api/v1/rules", prom.url))
                .send()
                .and_then(|r| r.json())
                .unwrap_or(Value::Null);
            let all: Vec<&Value> = rules["data"]["groups"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|g| g["rules"].as_array().into_iter().flatten())
                .collect();
            if let Some(bad) = all.iter().find(|r| r["health"] == json!("err")) {
                panic!(
                    "rule {} fails on live data: {}",
                    bad["name"], bad["lastError"]
                );
            }
            all.len() == alert_names().len() + 2 && all.iter().all(|r| r["health"] == json!("ok"))
        },
    );
    wait_until(Duration::from_secs(60), "the hit ratio is recorded", || {
        query(&http, &prom.url, "distcache:hit_ratio:rate5m")["data"]["result"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
    });

    stop.store(true, Ordering::Relaxed);
    let rounds = traffic.join().expect("traffic thread");
    assert!(rounds > 0, "traffic ran");
}
