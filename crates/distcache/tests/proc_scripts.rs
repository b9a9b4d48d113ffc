//! Lua scripts on a cluster of real processes (docs/commands.md,
//! "Scripting"):
//!
//! - what a script wrote is on every replica of its keys when EVAL is
//!   answered: the script's leader is SIGKILLed and every value is read
//!   back through both masters;
//! - a script loaded through one master runs by its SHA1 through the other
//!   (`POST /`, as Upstash's SDKs send it);
//! - a script that runs past `SCRIPT_TIME_LIMIT_MS` is stopped and
//!   answered so (not with the master's timeout for its auxiliary), keeps
//!   the writes it made before, on every replica, and leaves every node
//!   up.

mod common;

use std::time::Duration;

use common::{Cluster, Spec, wait_until};
use serde_json::{Value, json};

/// One command through `POST /` on master `m`: its result, or the error
/// body.
fn call(c: &Cluster, m: usize, args: Value) -> Result<Value, Value> {
    let body: Value = c
        .http
        .post(c.url(m, "/"))
        .json(&args)
        .send()
        .expect("POST /")
        .json()
        .expect("json");
    match body.get("result") {
        Some(result) => Ok(result.clone()),
        None => Err(body),
    }
}

fn ok(c: &Cluster, m: usize, args: Value) -> Value {
    call(c, m, args.clone()).unwrap_or_else(|e| panic!("{args}: {e}"))
}

/// A script over three keys sharing a hash tag: a counter, a hash and a
/// list, written in one atomic step.
const WRITER: &str = "
local n = redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], 'last', ARGV[1], 'total', n)
redis.call('RPUSH', KEYS[3], ARGV[1])
return n";

#[test]
fn a_scripts_writes_are_on_every_replica_when_it_is_answered() {
    let mut c = Cluster::start(Spec {
        masters: 2,
        auxiliaries: 3,
        replicas: 2,
        ..Spec::default()
    });
    c.wait_settled(&["aux-1", "aux-2", "aux-3"]);
    let keys = ["{acct}:n", "{acct}:h", "{acct}:l"];
    let sha = ok(&c, 0, json!(["SCRIPT", "LOAD", WRITER]));
    let mut total = 0;
    for (i, by) in [5, 7, 11].into_iter().enumerate() {
        total += by;
        // Through each master in turn: the second knows the script only
        // by asking the first.
        let m = i % 2;
        let answer = ok(
            &c,
            m,
            json!(["EVALSHA", sha, 3, keys[0], keys[1], keys[2], by]),
        );
        assert_eq!(answer, json!(total), "EVALSHA through master {m}");
    }
    // The leader of the keys goes away without a word: its replica must
    // hold everything the script wrote.
    let leader = c.leader_of(keys[0]);
    c.aux(&leader).proc.kill();
    for m in 0..2 {
        assert_eq!(
            ok(&c, m, json!(["GET", keys[0]])),
            json!("23"),
            "master {m}"
        );
        assert_eq!(
            ok(&c, m, json!(["HGETALL", keys[1]])),
            json!(["last", "11", "total", "23"]),
            "master {m}"
        );
        assert_eq!(
            ok(&c, m, json!(["LRANGE", keys[2], 0, -1])),
            json!(["5", "7", "11"]),
            "master {m}"
        );
    }
    // And the script goes on from there at the new leader, once the
    // master routes to it (until then a write is refused with CLUSTERDOWN,
    // as any write to a leader that does not answer): an idempotent script
    // over the same hash tag shows when.
    wait_until(
        Duration::from_secs(15),
        "writes reach the new leader",
        || {
            call(
                &c,
                1,
                json!([
                    "EVAL",
                    "return redis.call('SET', KEYS[1], 'x')",
                    1,
                    "{acct}:probe"
                ]),
            )
            .is_ok()
        },
    );
    assert_eq!(
        ok(
            &c,
            1,
            json!(["EVALSHA", sha, 3, keys[0], keys[1], keys[2], 1])
        ),
        json!(24)
    );
}

#[test]
fn a_script_past_its_time_limit_is_stopped_and_keeps_what_it_wrote() {
    let mut c = Cluster::start(Spec {
        masters: 1,
        auxiliaries: 2,
        replicas: 2,
        aux_env: vec![("SCRIPT_TIME_LIMIT_MS".into(), "200".into())],
        ..Spec::default()
    });
    c.wait_settled(&["aux-1", "aux-2"]);
    let error = call(
        &c,
        0,
        json!([
            "EVAL",
            "redis.call('SET', KEYS[1], 'before') while true do end",
            1,
            "spin"
        ]),
    )
    .expect_err("a script that never ends was answered");
    let text = error["error"].as_str().expect("an error text");
    assert!(
        text.starts_with("ERR Script killed: it ran for longer than 200 ms"),
        "{text}"
    );
    assert_eq!(ok(&c, 0, json!(["GET", "spin"])), json!("before"));
    for aux in ["aux-1", "aux-2"] {
        assert_eq!(c.node_state(0, aux).as_deref(), Some("up"), "{aux}");
    }
    assert_eq!(
        ok(
            &c,
            0,
            json!(["EVAL", "return redis.call('GET', KEYS[1])", 1, "spin"])
        ),
        json!("before")
    );
    // What it wrote before it was stopped reached the other replica too.
    let leader = c.leader_of("spin");
    c.aux(&leader).proc.kill();
    assert_eq!(ok(&c, 0, json!(["GET", "spin"])), json!("before"));
}

/// SCRIPT and EVALSHA inside a transaction run in their turn: a script
/// loaded by the transaction runs by its SHA1 later in it, and one no
/// master knows answers NOSCRIPT in its place while the rest runs. A
/// script over keys on different nodes is refused, a read-only one too
/// (it would otherwise run on the master).
#[test]
fn scripts_in_a_transaction_run_in_their_turn_and_cross_node_scripts_are_refused() {
    let c = Cluster::start(Spec {
        auxiliaries: 3,
        ..Spec::default()
    });
    c.wait_settled(&["aux-1", "aux-2", "aux-3"]);
    let source = "return redis.call('INCRBY', KEYS[1], ARGV[1])";
    let sha = distcache_core::script::sha1_hex(source.as_bytes());
    let answers: Value = c
        .http
        .post(c.url(0, "/multi-exec"))
        .json(&json!([
            ["SET", "{m}n", "1"],
            ["SCRIPT", "LOAD", source],
            ["EVALSHA", sha, 1, "{m}n", 10],
            [
                "EVALSHA_RO",
                "0000000000000000000000000000000000000000",
                1,
                "{m}n"
            ],
            ["SCRIPT", "EXISTS", sha],
            ["GET", "{m}n"]
        ]))
        .send()
        .expect("POST /multi-exec")
        .json()
        .expect("json");
    assert_eq!(
        answers,
        json!([
            {"result": "OK"},
            {"result": sha},
            {"result": 11},
            {"error": "NOSCRIPT No matching script. Please use EVAL."},
            {"result": [1]},
            {"result": "11"}
        ]),
        "{answers}"
    );
    // Two keys whose routes differ (the ring spreads untagged keys).
    let (a, b) = (0..)
        .map(|i| (format!("x{i}"), format!("y{i}")))
        .find(|(a, b)| c.replicas_of(a, 2) != c.replicas_of(b, 2))
        .expect("keys on different nodes");
    for name in ["EVAL", "EVAL_RO"] {
        let error = call(
            &c,
            0,
            json!([
                name,
                "return redis.call('EXISTS', KEYS[1], KEYS[2])",
                2,
                a,
                b
            ]),
        )
        .expect_err("a script over keys on different nodes ran");
        assert_eq!(
            error["error"],
            json!("CROSSSLOT Keys in request don't hash to the same slot"),
            "{name}"
        );
    }
}

/// A value past `MAX_VALUE_BYTES` refuses the script whole, nothing of
/// it kept, as it refuses a command; a bit set far out is refused before
/// the auxiliary allocates the string.
#[test]
fn a_script_or_a_bit_past_max_value_bytes_is_refused_and_changes_nothing() {
    let c = Cluster::start(Spec {
        auxiliaries: 2,
        ..Spec::default()
    });
    c.wait_settled(&["aux-1", "aux-2"]);
    let oom =
        json!("OOM the value would exceed MAX_VALUE_BYTES or the node's share of CACHE_MAX_BYTES");
    let error = call(
        &c,
        0,
        json!([
            "EVAL",
            "redis.call('SET', KEYS[1], 'before') for i = 1, 100 do redis.call('APPEND', KEYS[1], string.rep('x', 100000)) end",
            1,
            "grow"
        ]),
    )
    .expect_err("a script past MAX_VALUE_BYTES ran");
    assert_eq!(error["error"], oom, "{error}");
    assert_eq!(ok(&c, 0, json!(["EXISTS", "grow"])), json!(0));
    let error = call(&c, 0, json!(["SETBIT", "far", 4294967295u64, 1]))
        .expect_err("a bit 512 MiB out was set");
    assert_eq!(error["error"], oom, "{error}");
    assert_eq!(ok(&c, 0, json!(["EXISTS", "far"])), json!(0));
    assert_eq!(ok(&c, 0, json!(["SETBIT", "near", 1000, 1])), json!(0));
}
