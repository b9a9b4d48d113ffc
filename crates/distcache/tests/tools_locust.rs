//! The Locust load test (load_test/) against a real cluster: a headless run
//! of about 20 s through `load_test/run_test.sh`, which must end with zero
//! failures and with every kind of request the locustfile makes having run.
//!
//! Locust lives in the virtual environment `load_test/.venv`, which
//! `scripts/deps.d/20-locust.sh` makes (CI runs it before the tests).
//! Without it `./scripts/test` skips this file and says which script to
//! run; run directly, or in CI, this test fails and says so.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Cluster, Spec};

/// Every request name in the locustfile's `NAMES`.
const REQUEST_NAMES: &[&str] = &[
    "GET /data/[key]",
    "POST /data",
    "GET /data/[read-after-write]",
    "DELETE /data/[key]",
    "GET /data/[deleted]",
    "DELETE /data/[missing]",
    "POST /data/bulk",
    "POST /data/bulk/get",
    "POST /data [ttl]",
    "GET /data/[ttl-live]",
    "GET /data/[ttl-expired]",
    "GET /data/[hot]",
    "POST /data [hot]",
];

fn load_test_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../load_test")
}

/// One row of Locust's `_stats.csv`: request count and failure count by name.
fn parse_stats(csv: &str) -> HashMap<String, (u64, u64)> {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().expect("a header").split(',').collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .unwrap_or_else(|| panic!("no column {name} in {header:?}"))
    };
    let (name_col, count_col, fail_col) = (col("Name"), col("Request Count"), col("Failure Count"));
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            // Names have no commas; Locust quotes only fields that need it.
            let f: Vec<&str> = line.split(',').collect();
            let num = |i: usize| {
                f[i].parse::<u64>()
                    .unwrap_or_else(|_| panic!("bad count in {line}"))
            };
            (
                f[name_col].trim_matches('"').to_string(),
                (num(count_col), num(fail_col)),
            )
        })
        .collect()
}

#[test]
fn locust_headless_run_has_no_failures_and_every_request_kind() {
    let dir = load_test_dir();
    let locust = dir.join(".venv/bin/locust");
    assert!(
        locust.exists(),
        "Locust is not installed at {}: run scripts/deps.d/20-locust.sh (CI does) before this test",
        locust.display()
    );

    let cluster = Cluster::start(Spec::default());
    let out_dir = tempfile::tempdir().expect("temp dir");
    let prefix = out_dir.path().join("locust");
    let output = Command::new("bash")
        .arg(dir.join("run_test.sh"))
        .args(["--host", &format!("http://{}", cluster.masters[0].addr)])
        .args([
            "--users",
            "20",
            "--rate",
            "10",
            "--time",
            "20s",
            "--headless",
            "--",
        ])
        .arg("--csv")
        .arg(&prefix)
        .arg("--only-summary")
        .output()
        .expect("run load_test/run_test.sh");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let failures =
        std::fs::read_to_string(out_dir.path().join("locust_failures.csv")).unwrap_or_default();
    assert!(
        output.status.success(),
        "locust exited with {:?} (1 means some request failed)\nfailures:\n{failures}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );

    let csv = std::fs::read_to_string(out_dir.path().join("locust_stats.csv"))
        .expect("locust wrote its stats CSV");
    let stats = parse_stats(&csv);
    let (total, failed) = stats.get("Aggregated").copied().expect("an Aggregated row");
    assert!(total > 0, "requests were made:\n{csv}");
    assert_eq!(failed, 0, "no request failed; failures:\n{failures}");
    assert_eq!(
        failures.lines().count(),
        1,
        "the failures CSV has only its header:\n{failures}"
    );
    for name in REQUEST_NAMES {
        let (count, failed) = stats
            .get(*name)
            .copied()
            .unwrap_or_else(|| panic!("no `{name}` request ran:\n{csv}"));
        assert!(count > 0, "`{name}` ran");
        assert_eq!(failed, 0, "`{name}` had failures:\n{failures}");
    }
    let unknown: Vec<&String> = stats
        .keys()
        .filter(|n| *n != "Aggregated" && !REQUEST_NAMES.contains(&n.as_str()))
        .collect();
    assert!(
        unknown.is_empty(),
        "request names the test does not know (add them to REQUEST_NAMES): {unknown:?}"
    );
}

#[test]
fn locust_stats_parser_reads_counts_by_name() {
    let csv = "Type,Name,Request Count,Failure Count,Median Response Time\n\
               GET,GET /data/[key],10,1,3\n\
               ,Aggregated,10,1,3\n";
    let stats = parse_stats(csv);
    assert_eq!(stats["GET /data/[key]"], (10, 1));
    assert_eq!(stats["Aggregated"], (10, 1));
}
