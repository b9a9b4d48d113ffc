//! Typed values across the cluster's lifecycle, and `/data` beside
//! commands.
//!
//! - A string, a counter, a hash, a list, a set, a sorted set and a
//!   stream with a consumer group written
//!   with commands read back the same through every step: a SIGKILL of the
//!   whole cluster and a restart (snapshots and mutation logs), an
//!   auxiliary joining and one leaving (handoff), a cluster backup
//!   restored onto another cluster, and a TTL running out.
//! - `/data` and commands see the same keys (docs/commands.md, "`/data`
//!   and commands").

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::{Cluster, Spec, wait_until};
use serde_json::{Value, json};

/// One command through `POST /` on master `m`: its result, or the error
/// body.
fn call(c: &Cluster, m: usize, args: Value) -> Result<Value, Value> {
    let resp = c
        .http
        .post(c.url(m, "/"))
        .json(&args)
        .send()
        .expect("POST /");
    let body: Value = resp.json().expect("json");
    match body.get("result") {
        Some(result) => Ok(result.clone()),
        None => Err(body),
    }
}

fn ok(c: &Cluster, m: usize, args: Value) -> Value {
    call(c, m, args.clone()).unwrap_or_else(|e| panic!("{args}: {e}"))
}

fn sorted(v: Value) -> Vec<String> {
    let mut items: Vec<String> = v
        .as_array()
        .unwrap_or_else(|| panic!("an array: {v}"))
        .iter()
        .map(|x| x.as_str().expect("strings").to_string())
        .collect();
    items.sort();
    items
}

/// Writes one value of each type (and one that expires) under `prefix`.
fn write_types(c: &Cluster, prefix: &str) {
    let k = |name: &str| format!("{prefix}{name}");
    ok(c, 0, json!(["SET", k("str"), "plain text"]));
    ok(c, 0, json!(["INCRBY", k("counter"), 41]));
    ok(c, 0, json!(["INCR", k("counter")]));
    ok(
        c,
        0,
        json!(["HSET", k("hash"), "name", "Ada", "born", "1815"]),
    );
    ok(c, 0, json!(["RPUSH", k("list"), "a", "b", "c"]));
    ok(c, 0, json!(["LPUSH", k("list"), "z"]));
    ok(c, 0, json!(["SADD", k("set"), "x", "y", "z"]));
    ok(c, 0, json!(["SREM", k("set"), "y"]));
    ok(
        c,
        0,
        json!(["ZADD", k("zset"), 1, "one", 2.5, "two", -3, "minus"]),
    );
    ok(c, 0, json!(["ZINCRBY", k("zset"), 10, "one"]));
    ok(c, 0, json!(["EXPIRE", k("hash"), 3600]));
    // A stream whose group has delivered one entry and acknowledged
    // nothing, and whose first entry was deleted.
    for (id, v) in [("1-1", "a"), ("2-1", "b"), ("3-1", "c")] {
        ok(c, 0, json!(["XADD", k("stream"), id, "f", v]));
    }
    ok(c, 0, json!(["XGROUP", "CREATE", k("stream"), "g", "0"]));
    ok(
        c,
        0,
        json!([
            "XREADGROUP",
            "GROUP",
            "g",
            "w",
            "COUNT",
            2,
            "STREAMS",
            k("stream"),
            ">"
        ]),
    );
    ok(c, 0, json!(["XDEL", k("stream"), "1-1"]));
}

/// Every value written by [`write_types`] reads back the same through
/// every master.
fn assert_types(c: &Cluster, prefix: &str, when: &str) {
    let k = |name: &str| format!("{prefix}{name}");
    for m in 0..c.masters.len() {
        let at = format!("{when}, master {m}");
        assert_eq!(
            ok(c, m, json!(["GET", k("str")])),
            json!("plain text"),
            "{at}"
        );
        assert_eq!(ok(c, m, json!(["GET", k("counter")])), json!("42"), "{at}");
        assert_eq!(
            sorted(ok(c, m, json!(["HGETALL", k("hash")]))),
            ["1815", "Ada", "born", "name"],
            "{at}"
        );
        let ttl = ok(c, m, json!(["TTL", k("hash")])).as_i64().expect("a TTL");
        assert!(
            (3000..=3600).contains(&ttl),
            "{at}: the hash's TTL is {ttl}"
        );
        assert_eq!(
            ok(c, m, json!(["LRANGE", k("list"), 0, -1])),
            json!(["z", "a", "b", "c"]),
            "{at}"
        );
        assert_eq!(
            sorted(ok(c, m, json!(["SMEMBERS", k("set")]))),
            ["x", "z"],
            "{at}"
        );
        assert_eq!(
            ok(c, m, json!(["ZRANGE", k("zset"), 0, -1, "WITHSCORES"])),
            json!(["minus", "-3", "two", "2.5", "one", "11"]),
            "{at}"
        );
        assert_eq!(
            ok(c, m, json!(["XRANGE", k("stream"), "-", "+"])),
            json!([["2-1", ["f", "b"]], ["3-1", ["f", "c"]]]),
            "{at}"
        );
        let pending = ok(c, m, json!(["XPENDING", k("stream"), "g"]));
        assert_eq!(pending, json!([2, "1-1", "2-1", [["w", "2"]]]), "{at}");
        let info = ok(c, m, json!(["XINFO", "STREAM", k("stream")]));
        for (field, want) in [
            ("last-generated-id", json!("3-1")),
            ("max-deleted-entry-id", json!("1-1")),
            ("entries-added", json!(3)),
        ] {
            let at_field = info
                .as_array()
                .and_then(|a| a.iter().position(|v| v == field))
                .unwrap_or_else(|| panic!("{at}: no {field} in {info}"));
            assert_eq!(info[at_field + 1], want, "{at}: {field}");
        }
        for (name, t) in [
            ("stream", "stream"),
            ("str", "string"),
            ("hash", "hash"),
            ("list", "list"),
            ("set", "set"),
            ("zset", "zset"),
        ] {
            assert_eq!(
                ok(c, m, json!(["TYPE", k(name)])),
                json!(t),
                "{at}: TYPE {name}"
            );
        }
    }
}

#[test]
fn typed_values_survive_a_crash_a_join_a_leave_and_a_restore_and_expire_on_time() {
    let mut c = Cluster::start(Spec {
        masters: 2,
        auxiliaries: 3,
        replicas: 2,
        aux_env: vec![("BACKUP_INTERVAL".into(), "1".into())],
        ..Spec::default()
    });
    c.wait_settled(&["aux-1", "aux-2", "aux-3"]);
    write_types(&c, "t:");
    ok(&c, 0, json!(["RPUSH", "t:short", "gone soon"]));
    ok(&c, 0, json!(["PEXPIRE", "t:short", 1500]));
    assert_types(&c, "t:", "as written");

    // Every process SIGKILLed at once: snapshots and logs bring them back.
    c.kill_all();
    c.restart_all();
    c.wait_settled(&["aux-1", "aux-2", "aux-3"]);
    assert_types(&c, "t:", "after a SIGKILL of the whole cluster");

    // Expiry: absolute, so it ran on through the restart.
    wait_until(Duration::from_secs(10), "t:short expires", || {
        call(&c, 0, json!(["EXISTS", "t:short"])) == Ok(json!(0))
    });

    // Handoff: a fourth auxiliary joins, then the first leaves.
    c.add_aux("aux-4");
    c.wait_settled(&["aux-1", "aux-2", "aux-3", "aux-4"]);
    assert_types(&c, "t:", "after aux-4 joined");
    let resp = c
        .http
        .delete(c.url(0, "/nodes/aux-1"))
        .send()
        .expect("DELETE /nodes/aux-1");
    assert!(
        resp.status().is_success(),
        "decommission aux-1: {}",
        resp.status()
    );
    c.wait_settled(&["aux-2", "aux-3", "aux-4"]);
    assert_types(&c, "t:", "after aux-1 left");

    // A cluster backup, restored onto a new cluster reading it.
    let resp = c
        .http
        .post(c.url(0, "/backup"))
        .send()
        .expect("POST /backup");
    assert_eq!(resp.status(), 200, "POST /backup");
    let mut spec = Spec {
        auxiliaries: 2,
        replicas: 2,
        ..Spec::default()
    };
    let dir = c.dir.path().join("master-1").display().to_string();
    spec.master_env.push(("BACKUP_DIR".into(), dir));
    let b = Cluster::start(spec);
    c.kill_all();
    b.wait_settled(&["aux-1", "aux-2"]);
    let resp = b
        .http
        .post(b.url(0, "/restore"))
        .json(&json!({}))
        .send()
        .expect("POST /restore");
    let answer: Value = resp.json().expect("json");
    assert_eq!(answer["failed"], json!(0), "{answer}");
    assert!(answer["restored"].as_u64() >= Some(6), "{answer}");
    assert_types(&b, "t:", "restored onto another cluster");
}

/// SET over RESP with bytes that are not UTF-8, on a raw socket.
fn resp_set_binary(port: u16, key: &str, value: &[u8]) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("RESP port");
    let mut request = format!(
        "*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n${}\r\n",
        key.len(),
        value.len()
    )
    .into_bytes();
    request.extend_from_slice(value);
    request.extend_from_slice(b"\r\n");
    s.write_all(&request).expect("send");
    let mut reply = [0u8; 5];
    s.read_exact(&mut reply).expect("reply");
    assert_eq!(&reply, b"+OK\r\n");
}

#[test]
fn data_and_commands_see_the_same_keys() {
    let c = Cluster::start(Spec {
        resp: true,
        ..Spec::default()
    });
    c.wait_settled(&["aux-1", "aux-2", "aux-3"]);

    // JSON through /data is a string for commands: a JSON string its text,
    // anything else its JSON text.
    assert_eq!(c.set(0, "d:obj", json!({"a": [1, 2]})).status(), 200);
    assert_eq!(ok(&c, 0, json!(["GET", "d:obj"])), json!("{\"a\":[1,2]}"));
    assert_eq!(ok(&c, 0, json!(["TYPE", "d:obj"])), json!("string"));
    assert_eq!(c.set(0, "d:text", json!("héllo")).status(), 200);
    assert_eq!(ok(&c, 0, json!(["GET", "d:text"])), json!("héllo"));
    assert_eq!(ok(&c, 0, json!(["STRLEN", "d:text"])), json!(6));
    // A JSON value comes back through /data exactly as stored while no
    // command changed it, an EXPIRE included.
    ok(&c, 0, json!(["EXPIRE", "d:obj", 100]));
    assert_eq!(c.value(0, "d:obj"), Some(json!({"a": [1, 2]})));

    // INCR works on a number stored through /data; the result is a string.
    assert_eq!(c.set(0, "d:n", json!(41)).status(), 200);
    assert_eq!(ok(&c, 0, json!(["INCR", "d:n"])), json!(42));
    assert_eq!(c.value(0, "d:n"), Some(json!("42")));
    assert!(call(&c, 0, json!(["INCR", "d:obj"])).is_err());

    // A string set by a command reads through /data as a JSON string;
    // bytes that are not UTF-8 become U+FFFD.
    ok(&c, 0, json!(["SET", "d:plain", "{not json"]));
    assert_eq!(c.value(0, "d:plain"), Some(json!("{not json")));
    let port = c.masters[0].resp_port.expect("RESP on");
    resp_set_binary(port, "d:bin", b"a\xffb");
    assert_eq!(c.value(0, "d:bin"), Some(json!("a\u{fffd}b")));

    // A collection has no JSON form: 409 through /data, left out of bulk
    // reads; DELETE and POST /data work on it as DEL and SET do.
    ok(&c, 0, json!(["HSET", "d:hash", "f", "v"]));
    let resp = c.get(0, "d:hash");
    assert_eq!(resp.status(), 409);
    let body: Value = resp.json().expect("json");
    assert_eq!(body["error"]["code"], json!("wrongtype"), "{body}");
    let bulk: Value = c
        .http
        .post(c.url(0, "/data/bulk/get"))
        .json(&json!(["d:hash", "d:plain"]))
        .send()
        .expect("bulk get")
        .json()
        .expect("json");
    assert_eq!(bulk, json!({"d:plain": "{not json"}));
    assert_eq!(c.delete(0, "d:hash").status(), 200);
    assert_eq!(ok(&c, 0, json!(["EXISTS", "d:hash"])), json!(0));
    ok(&c, 0, json!(["RPUSH", "d:list", "x"]));
    assert_eq!(c.set(0, "d:list", json!([1])).status(), 200);
    assert_eq!(ok(&c, 0, json!(["TYPE", "d:list"])), json!("string"));
    assert_eq!(ok(&c, 0, json!(["GET", "d:list"])), json!("[1]"));
}

/// SCAN's cursor is a position in the key-hash space, the same on every
/// node: a scan that runs while an auxiliary joins (keys moving under it)
/// still returns every key that was there for the whole scan.
#[test]
fn a_scan_across_a_join_returns_every_key_that_stayed() {
    let mut c = Cluster::start(Spec {
        masters: 2,
        auxiliaries: 2,
        replicas: 1,
        ..Spec::default()
    });
    c.wait_settled(&["aux-1", "aux-2"]);
    let keys: Vec<String> = (0..400).map(|i| format!("scan:{i}")).collect();
    for chunk in keys.chunks(50) {
        let mut mset = vec![json!("MSET")];
        for key in chunk {
            mset.push(json!(key));
            mset.push(json!("v"));
        }
        ok(&c, 0, Value::Array(mset));
    }
    let mut seen = std::collections::HashSet::new();
    let mut cursor = "0".to_string();
    let mut pages = 0;
    loop {
        if pages == 3 {
            // Keys move to a third node between two pages: the pages after
            // it are answered by the new ring.
            c.add_aux("aux-3");
            wait_until(Duration::from_secs(30), "aux-3 is in the ring", || {
                c.get_json(0, "/ring")["members"]
                    .as_array()
                    .is_some_and(|m| m.iter().any(|n| n["id"] == json!("aux-3")))
            });
        }
        let page = ok(
            &c,
            pages % 2,
            json!(["SCAN", cursor, "MATCH", "scan:*", "COUNT", 20]),
        );
        cursor = page[0].as_str().expect("a cursor").to_string();
        for key in page[1].as_array().expect("keys") {
            seen.insert(key.as_str().expect("a key").to_string());
        }
        pages += 1;
        if cursor == "0" {
            break;
        }
        assert!(pages < 1000, "the scan ends");
    }
    assert!(
        pages > 4,
        "the scan took several pages ({pages}), the join among them"
    );
    let missing: Vec<&String> = keys.iter().filter(|k| !seen.contains(*k)).collect();
    assert!(
        missing.is_empty(),
        "{} keys never returned: {missing:?}",
        missing.len()
    );
    c.wait_settled(&["aux-1", "aux-2", "aux-3"]);
    assert_eq!(ok(&c, 0, json!(["DBSIZE"])), json!(400));
}
