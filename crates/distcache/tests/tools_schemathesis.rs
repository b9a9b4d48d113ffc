//! schemathesis (PyPI) against a live cluster: property-based requests
//! generated from `docs/openapi.yaml`, valid and invalid, a bounded number
//! per operation. The run must find no 5xx, no crash (the cluster still
//! serves afterwards) and no response that the document does not describe
//! (status, content type, headers and body schema).
//!
//! schemathesis lives in `scripts/schemathesis/.venv`, which
//! `scripts/deps.d/40-schemathesis.sh` makes (CI runs it before the tests).
//! Without it `./scripts/test` skips this file and says which script to
//! run; run directly, or in CI, this test fails and says so.
//!
//! The operations routes are in: `POST /backup` writes real backups into
//! the test master's BACKUP_DIR, a directory under the cluster's temporary
//! one (the newest 10 are kept); `POST /restore` gets ids that name no
//! backup (404), malformed bodies and ids (400), and no body, which
//! restores the latest backup: it never overwrites newer data, and two at
//! once answer 409; `GET /restore`, `POST /rebalance` (a full round over
//! the three auxiliaries) and `GET /stats` only read or re-place copies.
//!
//! Left out: the two membership changes, `POST /nodes` and
//! `DELETE /nodes/{id}`: schemathesis reuses ids it has seen in answers, so
//! it decommissions or re-addresses the cluster's own auxiliaries, after
//! which a 503 `no_auxiliaries` is the right answer and not a fault. Their
//! parsers are fuzzed by the body property tests
//! (`crates/server/src/master/body_props.rs`) and their access by the role
//! table (`tests/proc_security.rs`).

mod common;

use std::path::Path;
use std::process::Command;

use common::{Cluster, Spec};
use serde_json::json;

const ADMIN: &str = "schemathesis-admin";
const SECRET: &str = "schemathesis-secret";

#[test]
fn schemathesis_finds_no_server_errors_and_no_schema_violations() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let bin = root.join("scripts/schemathesis/.venv/bin/schemathesis");
    assert!(
        bin.exists(),
        "{} is missing: run scripts/deps.d/40-schemathesis.sh",
        bin.display()
    );
    let mut c = Cluster::start(Spec {
        auxiliaries: 3,
        // Nothing here is about failure detection, and one health probe that
        // misses REQUEST_TIMEOUT_MS takes a node out of the ring: with the
        // harness's 500 ms, a machine starved by the rest of the suite once
        // timed out all three probes at the same tick, emptied the ring, and
        // a data request rightly answered 503 `no_auxiliaries`. A longer
        // timeout keeps the cluster whole while the checks stay as strict.
        request_timeout_ms: 5_000,
        master_env: vec![
            ("AUTH_TOKENS".into(), format!("{ADMIN}:admin,reader:read")),
            ("CLUSTER_SECRET".into(), SECRET.into()),
        ],
        aux_env: vec![("CLUSTER_SECRET".into(), SECRET.into())],
        token: Some(ADMIN.into()),
        ..Spec::default()
    });
    let report = c.dir.path().join("schemathesis-report");
    let out = Command::new(&bin)
        .arg("run")
        .arg(root.join("docs/openapi.yaml"))
        .args(["--url", &format!("http://{}", c.masters[0].addr)])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,\
             response_headers_conformance,response_schema_conformance",
        ])
        .args(["--max-examples", "50"])
        .args(["--phases", "examples,fuzzing"])
        .args(["--seed", "8"])
        .args(["--workers", "2"])
        .args(["--request-timeout", "20"])
        .args(["--header", &format!("Authorization: Bearer {ADMIN}")])
        .args([
            "--exclude-operation-id",
            "registerNode",
            "--exclude-operation-id",
            "removeNode",
        ])
        .args(["--report", "junit", "--report-dir"])
        .arg(&report)
        // Its cache of past failures goes with the cluster's temporary
        // directory, not into the source tree.
        .current_dir(c.dir.path())
        .env("NO_COLOR", "1")
        .env("SCHEMATHESIS_TELEMETRY", "false")
        .output()
        .expect("run schemathesis");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "schemathesis failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains("passed") || stdout.contains("No issues found"),
        "{stdout}"
    );
    // No crash: every process is still there and the cluster serves.
    for m in &mut c.masters {
        assert!(!m.proc.exited(), "{} is still running", m.proc.name);
    }
    for a in &mut c.auxes {
        assert!(!a.proc.exited(), "{} is still running", a.proc.name);
    }
    assert_eq!(c.set(0, "after-fuzzing", json!(1)).status(), 200);
    assert_eq!(c.value(0, "after-fuzzing"), Some(json!(1)));
    assert_eq!(c.health(0)["auxiliaries_up"], json!(3));
}
