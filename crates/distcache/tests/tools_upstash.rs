//! Upstash's own Python SDK (`upstash-redis`, PyPI) against a real
//! cluster: `scripts/upstash/sdk_check.py` does real work through it
//! (strings, counters, hashes, lists, sets, sorted sets, errors, a
//! pipeline, a transaction), once with the SDK's default base64 encoding
//! and once without, then checks that a read token reads and is refused
//! a write. The script compares every answer with Redis's and exits 1 on
//! the first mismatch.
//!
//! The SDK lives in `scripts/upstash/.venv`, which
//! `scripts/deps.d/45-upstash.sh` makes (CI runs it before the tests).
//! Without it `./scripts/test` skips this file and says which script to
//! run; run directly, or in CI, this test fails and says so.

mod common;

use std::process::Command;

use common::{Cluster, Spec, output_text, repo, tool};

const WRITE: &str = "upstash-sdk-write";
const READ: &str = "upstash-sdk-read";
const SECRET: &str = "upstash-sdk-secret";

#[test]
fn the_upstash_python_sdk_works_unchanged() {
    let python = tool(
        "scripts/upstash/.venv/bin/python",
        "scripts/deps.d/45-upstash.sh",
    );
    let c = Cluster::start(Spec {
        master_env: vec![
            ("AUTH_TOKENS".into(), format!("{WRITE}:write,{READ}:read")),
            ("CLUSTER_SECRET".into(), SECRET.into()),
        ],
        aux_env: vec![("CLUSTER_SECRET".into(), SECRET.into())],
        token: Some(WRITE.into()),
        ..Spec::default()
    });
    let url = format!("http://{}", c.masters[0].addr);
    let out = Command::new(python)
        .arg(repo().join("scripts/upstash/sdk_check.py"))
        .args([&url, WRITE, READ, "upstash-sdk"])
        .output()
        .expect("run sdk_check.py");
    let text = output_text(&out);
    assert!(out.status.success(), "sdk_check.py failed:\n{text}");
    assert!(text.contains("ok: "), "{text}");
}
