//! FLUSHALL and FLUSHDB against a real cluster (three masters, three
//! auxiliaries, two replicas): admin only, through `POST /` and through
//! RESP with redis-cli; keys of every type are gone through every master,
//! and stay gone after an auxiliary is SIGKILLed and restarted from its
//! snapshot and mutation log.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Cluster, Spec, run_ok, tool};
use serde_json::{Value, json};

const WRITE: &str = "flush-write-token";
const ADMIN: &str = "flush-admin-token";
const SECRET: &str = "flush-cluster-secret";

fn cluster() -> Cluster {
    Cluster::start(Spec {
        masters: 3,
        auxiliaries: 3,
        replicas: 2,
        resp: true,
        token: Some(ADMIN.into()),
        master_env: vec![
            ("AUTH_TOKENS".into(), format!("{WRITE}:write,{ADMIN}:admin")),
            ("CLUSTER_SECRET".into(), SECRET.into()),
        ],
        aux_env: vec![("CLUSTER_SECRET".into(), SECRET.into())],
        ..Spec::default()
    })
}

/// `POST /` through master `m` with `token`: status and body.
fn post(c: &Cluster, m: usize, token: &str, command: Value) -> (u16, Value) {
    let resp = reqwest::blocking::Client::new()
        .post(c.url(m, "/"))
        .bearer_auth(token)
        .json(&command)
        .send()
        .expect("the master answers");
    let status = resp.status().as_u16();
    (status, resp.json().expect("a JSON body"))
}

fn ok(c: &Cluster, m: usize, command: Value) -> Value {
    let (status, body) = post(c, m, ADMIN, command.clone());
    assert_eq!(status, 200, "{command}: {body}");
    body["result"].clone()
}

/// Twenty keys of each type (strings, counters, hashes, lists, sets,
/// sorted sets, one with a TTL), spread over the auxiliaries.
fn fill(c: &Cluster, prefix: &str) -> Vec<String> {
    let mut keys = Vec::new();
    for i in 0..20 {
        let m = i % 3;
        let k = |t: &str| format!("{prefix}:{t}:{i}");
        ok(c, m, json!(["SET", k("s"), "v"]));
        ok(c, m, json!(["INCR", k("n")]));
        ok(c, m, json!(["HSET", k("h"), "f", "v"]));
        ok(c, m, json!(["RPUSH", k("l"), "a", "b"]));
        ok(c, m, json!(["SADD", k("t"), "a"]));
        ok(c, m, json!(["ZADD", k("z"), "1", "a"]));
        ok(c, m, json!(["SET", k("e"), "v", "EX", "600"]));
        keys.extend(["s", "n", "h", "l", "t", "z", "e"].map(k));
    }
    keys
}

/// Asserts that no key of `keys` exists, through every master.
fn all_gone(c: &Cluster, keys: &[String]) {
    for m in 0..3 {
        // One key at a time: a multi-key EXISTS meeting a map change
        // between its split and its calls answers CROSSSLOT.
        for k in keys {
            assert_eq!(
                ok(c, m, json!(["EXISTS", k])),
                json!(0),
                "{k} through master {m}"
            );
        }
        assert_eq!(ok(c, m, json!(["DBSIZE"])), json!(0), "through master {m}");
    }
}

fn redis_cli(c: &Cluster, m: usize, args: &[&str]) -> String {
    let port = c.masters[m].resp_port.expect("a RESP port").to_string();
    let out = run_ok(
        "redis-cli",
        Command::new(tool("redis-cli", "scripts/deps.d/25-bench-tools.sh"))
            .args(["--no-auth-warning", "-p", &port, "-a"])
            .args(args),
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn flushall_needs_admin_and_deletes_every_key_for_good() {
    let mut c = cluster();

    // Over HTTP: a write token is refused (403) and deletes nothing.
    let keys = fill(&c, "http");
    let (status, body) = post(&c, 0, WRITE, json!(["FLUSHALL"]));
    assert_eq!(status, 403, "{body}");
    assert_eq!(ok(&c, 1, json!(["DBSIZE"])), json!(keys.len()));
    let (status, body) = post(&c, 0, ADMIN, json!(["FLUSHALL", "bogus"]));
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], json!("ERR syntax error"));
    assert_eq!(ok(&c, 0, json!(["FLUSHALL", "ASYNC"])), json!("OK"));
    all_gone(&c, &keys);

    // Over RESP with redis-cli: the write token gets NOPERM, the admin's
    // FLUSHDB SYNC empties the cluster.
    let keys = fill(&c, "resp");
    let refused = redis_cli(&c, 2, &[WRITE, "FLUSHDB"]);
    assert!(refused.starts_with("NOPERM"), "{refused}");
    assert_eq!(redis_cli(&c, 2, &[ADMIN, "DBSIZE"]), keys.len().to_string());
    assert_eq!(redis_cli(&c, 2, &[ADMIN, "FLUSHDB", "SYNC"]), "OK");
    all_gone(&c, &keys);

    // An auxiliary SIGKILLed right after a flush and restarted from its
    // snapshot and log brings nothing back, not through a later handoff
    // or a repair from its older copies either.
    let keys = fill(&c, "restart");
    // A snapshot holding the keys, so the restart starts from them.
    let backup = c.http.post(c.url(0, "/backup")).send().unwrap();
    assert_eq!(backup.status().as_u16(), 200);
    assert_eq!(redis_cli(&c, 1, &[ADMIN, "FLUSHALL"]), "OK");
    // Past the log's fsync window (LOG_FSYNC=everysec).
    std::thread::sleep(Duration::from_millis(1500));
    c.aux("aux-2").proc.kill();
    c.aux("aux-2").proc.restart();
    c.wait_for_up(3);
    all_gone(&c, &keys);
    for k in keys.iter().step_by(7) {
        assert_eq!(ok(&c, 0, json!(["GET", k])), Value::Null, "{k}");
    }
}
