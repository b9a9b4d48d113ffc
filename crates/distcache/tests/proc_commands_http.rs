//! Commands over HTTP against real processes, as Upstash's REST API takes
//! them: `POST /`, `/pipeline` and `/multi-exec`, their JSON shapes and
//! exact error bodies, the base64 header, each command's role, the
//! command metrics, and `distcache call`'s redis-cli output.
//!
//! Every test writes its own keys (prefixed with its name) and reads them
//! back through the master it wrote them through.

mod common;

use std::process::{Command, Stdio};

use common::{BIN, Cluster, Spec};
use reqwest::blocking::RequestBuilder;
use serde_json::{Value, json};

const READ: &str = "cmd-read-token";
const WRITE: &str = "cmd-write-token";
const SECRET: &str = "cmd-cluster-secret";

/// Status and JSON body of a request.
fn send(req: RequestBuilder) -> (u16, Value) {
    let resp = req.send().expect("the master answers");
    let status = resp.status().as_u16();
    let text = resp.text().unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    (status, body)
}

/// `POST path` with a JSON body, through master 0, with the cluster's
/// client (and its token, if any).
fn post(c: &Cluster, path: &str, body: Value) -> (u16, Value) {
    send(c.http.post(c.url(0, path)).json(&body))
}

/// One command's `{"result": ...}`, which must be a 200.
fn result(c: &Cluster, command: Value) -> Value {
    let (status, body) = post(c, "/", command.clone());
    assert_eq!(status, 200, "{command}: {body}");
    body["result"].clone()
}

/// One command's error, with its status.
fn error(c: &Cluster, command: Value) -> (u16, Value) {
    let (status, body) = post(c, "/", command.clone());
    assert_ne!(status, 200, "{command}: {body}");
    (status, body)
}

#[test]
fn one_command_answers_in_upstash_json_shapes() {
    let c = Cluster::start(Spec::default());
    // PING and ECHO, as Upstash answers them (its SDKs' ping()).
    assert_eq!(result(&c, json!(["PING"])), json!("PONG"));
    assert_eq!(result(&c, json!(["PING", "hello"])), json!("hello"));
    assert_eq!(result(&c, json!(["ECHO", "a b"])), json!("a b"));
    assert_eq!(
        error(&c, json!(["ECHO"])),
        (
            400,
            json!({"error": "ERR wrong number of arguments for 'echo' command"})
        )
    );
    assert_eq!(result(&c, json!(["SET", "shape:s", "v"])), json!("OK"));
    assert_eq!(result(&c, json!(["GET", "shape:s"])), json!("v"));
    assert_eq!(result(&c, json!(["GET", "shape:missing"])), json!(null));
    assert_eq!(result(&c, json!(["INCR", "shape:n"])), json!(1));
    // Numbers and booleans are arguments as their JSON text.
    assert_eq!(result(&c, json!(["INCRBY", "shape:n", 41])), json!(42));
    assert_eq!(result(&c, json!(["SET", "shape:b", true])), json!("OK"));
    assert_eq!(result(&c, json!(["GET", "shape:b"])), json!("true"));
    assert_eq!(
        result(&c, json!(["HSET", "shape:h", "f", "v", "g", 2])),
        json!(2)
    );
    let mut all: Vec<String> = serde_json::from_value(result(&c, json!(["HGETALL", "shape:h"])))
        .expect("HGETALL is a flat array of strings");
    all.sort();
    assert_eq!(all, ["2", "f", "g", "v"]);
    assert_eq!(
        result(&c, json!(["ZADD", "shape:z", 1.5, "a", 2, "b"])),
        json!(2)
    );
    // Pairs are flat, doubles are strings (RESP2's shapes).
    assert_eq!(
        result(&c, json!(["ZRANGE", "shape:z", 0, -1, "WITHSCORES"])),
        json!(["a", "1.5", "b", "2"])
    );
    assert_eq!(result(&c, json!(["ZSCORE", "shape:z", "a"])), json!("1.5"));
    assert_eq!(
        result(&c, json!(["SMISMEMBER", "shape:none", "x"])),
        json!([0])
    );
    assert_eq!(result(&c, json!(["TYPE", "shape:h"])), json!("hash"));
    assert_eq!(
        result(&c, json!(["LPOP", "shape:nolist", 2])),
        json!(null),
        "a null array is null"
    );
    // A string that is not UTF-8 (the first byte of "é") is replaced.
    assert_eq!(result(&c, json!(["SET", "shape:u", "é"])), json!("OK"));
    assert_eq!(
        result(&c, json!(["GETRANGE", "shape:u", 0, 0])),
        json!("\u{fffd}")
    );
}

#[test]
fn errors_are_400_with_redis_words_and_malformed_bodies_say_why() {
    let c = Cluster::start(Spec::default());
    let cases = [
        (
            json!(["NOPE", "a"]),
            "ERR unknown command 'NOPE', with args beginning with: 'a' ",
        ),
        (
            json!(["GET"]),
            "ERR wrong number of arguments for 'get' command",
        ),
        (
            json!(["MULTI"]),
            "ERR MULTI, EXEC and DISCARD need a session, which HTTP does not keep: send a transaction's commands to POST /multi-exec",
        ),
        (
            json!(["EXEC"]),
            "ERR MULTI, EXEC and DISCARD need a session, which HTTP does not keep: send a transaction's commands to POST /multi-exec",
        ),
        (
            json!({"command": "GET"}),
            "ERR the body must be a JSON array: a command's name and arguments, as [\"SET\",\"k\",\"v\"]",
        ),
        (
            json!([]),
            "ERR the command is empty: the array needs at least the command's name",
        ),
        (
            json!(["GET", null]),
            "ERR argument 1 is null; arguments are strings, numbers or booleans",
        ),
        (
            json!(["SET", "k", {"a": 1}]),
            "ERR argument 2 is an object; arguments are strings, numbers or booleans",
        ),
    ];
    for (command, message) in cases {
        assert_eq!(
            error(&c, command.clone()),
            (400, json!({ "error": message })),
            "{command}"
        );
    }
    assert_eq!(result(&c, json!(["SET", "err:s", "x"])), json!("OK"));
    assert_eq!(
        error(&c, json!(["HGET", "err:s", "f"])),
        (
            400,
            json!({"error": "WRONGTYPE Operation against a key holding the wrong kind of value"})
        )
    );
    assert_eq!(
        error(&c, json!(["INCR", "err:s"])),
        (
            400,
            json!({"error": "ERR value is not an integer or out of range"})
        )
    );
    let (status, body) = send(
        c.http
            .post(c.url(0, "/"))
            .header("content-type", "application/json")
            .body("[\"GET\""),
    );
    assert_eq!(status, 400);
    let message = body["error"].as_str().unwrap();
    assert!(message.starts_with("ERR the body is not JSON: "), "{body}");
    // Only POST: a GET of / is no command.
    let resp = c.http.get(c.url(0, "/")).send().unwrap();
    assert_eq!(resp.status(), 405);
}

#[test]
fn base64_header_encodes_every_string_but_ok() {
    let c = Cluster::start(Spec::default());
    let b64 = |command: Value| {
        let (status, body) = send(
            c.http
                .post(c.url(0, "/"))
                .header("Upstash-Encoding", "base64")
                .json(&command),
        );
        (status, body)
    };
    assert_eq!(
        b64(json!(["SET", "b64:s", "héllo"])),
        (200, json!({"result": "OK"}))
    );
    // base64 of the UTF-8 bytes of "héllo".
    assert_eq!(
        b64(json!(["GET", "b64:s"])),
        (200, json!({"result": "aMOpbGxv"}))
    );
    assert_eq!(
        b64(json!(["GETRANGE", "b64:s", 1, 1])),
        (200, json!({"result": "ww=="})),
        "one byte that is not UTF-8 comes back exactly"
    );
    // A bulk "OK" is encoded; only the status OK is not.
    assert_eq!(
        b64(json!(["SET", "b64:ok", "OK"])),
        (200, json!({"result": "OK"}))
    );
    assert_eq!(
        b64(json!(["GET", "b64:ok"])),
        (200, json!({"result": "T0s="}))
    );
    assert_eq!(
        b64(json!(["TYPE", "b64:s"])),
        (200, json!({"result": "c3RyaW5n"}))
    );
    assert_eq!(
        b64(json!(["APPEND", "b64:s", "!"])),
        (200, json!({"result": 7}))
    );
    assert_eq!(
        b64(json!(["RPUSH", "b64:l", "a", "bc"])),
        (200, json!({"result": 2}))
    );
    assert_eq!(
        b64(json!(["LRANGE", "b64:l", 0, -1])),
        (200, json!({"result": ["YQ==", "YmM="]}))
    );
    assert_eq!(
        b64(json!(["GET", "b64:none"])),
        (200, json!({"result": null}))
    );
    assert_eq!(
        b64(json!(["INCR", "b64:s"])),
        (
            400,
            json!({"error": "ERR value is not an integer or out of range"})
        ),
        "errors are never encoded"
    );
}

#[test]
fn a_pipeline_runs_each_command_on_its_own() {
    let c = Cluster::start(Spec {
        master_env: vec![("MAX_BATCH".into(), "5".into())],
        ..Spec::default()
    });
    let (status, body) = post(
        &c,
        "/pipeline",
        json!([
            ["SET", "pipe:a", 1],
            ["INCR", "pipe:a"],
            ["HGET", "pipe:a", "f"],
            ["NOPE"],
            ["GET", "pipe:a"]
        ]),
    );
    let (_, pings) = post(
        &c,
        "/pipeline",
        json!([["PING"], ["ECHO", "e"], ["ping", "m"]]),
    );
    assert_eq!(
        pings,
        json!([{"result": "PONG"}, {"result": "e"}, {"result": "m"}])
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!([
            {"result": "OK"},
            {"result": 2},
            {"error": "WRONGTYPE Operation against a key holding the wrong kind of value"},
            {"error": "ERR unknown command 'NOPE', with args beginning with: "},
            {"result": "2"}
        ])
    );
    let six = Value::Array(vec![json!(["GET", "k"]); 6]);
    assert_eq!(
        post(&c, "/pipeline", six),
        (
            413,
            json!({"error": "ERR 6 commands; the limit is 5 (MAX_BATCH)"})
        )
    );
    assert_eq!(
        post(&c, "/pipeline", json!([])),
        (400, json!({"error": "ERR no commands: the array is empty"}))
    );
    assert_eq!(
        post(&c, "/pipeline", json!(["GET", "k"])),
        (
            400,
            json!({"error": "ERR the body must be a JSON array of commands, each an array, as [[\"SET\",\"k\",\"v\"],[\"GET\",\"k\"]]"})
        )
    );
    assert_eq!(
        post(&c, "/pipeline", json!([["GET", "k"], []])),
        (
            400,
            json!({"error": "ERR command 1: the command is empty: the array needs at least the command's name"})
        )
    );
}

/// A `/pipeline` sends the commands bound for one auxiliary together: 60
/// commands over two auxiliaries cost a few `execute` calls, not 60, and
/// a key's commands still see each other in order.
#[test]
fn a_pipelines_commands_for_one_auxiliary_go_in_one_frame() {
    let c = Cluster::start(Spec {
        auxiliaries: 2,
        ..Spec::default()
    });
    let executes = || {
        let metrics = c.get_text(0, "/metrics");
        common::metric_value(
            &metrics,
            "distcache_aux_calls_total{op=\"execute\",outcome=\"ok\"}",
        )
        .unwrap_or(0.0)
    };
    let before = executes();
    let mut commands = Vec::new();
    let mut expected = Vec::new();
    for i in 0..20 {
        let key = format!("frames:{i}");
        commands.push(json!(["RPUSH", key, "a"]));
        expected.push(json!({"result": 1}));
        commands.push(json!(["RPUSH", key, "b"]));
        expected.push(json!({"result": 2}));
        commands.push(json!(["LRANGE", key, 0, -1]));
        expected.push(json!({"result": ["a", "b"]}));
    }
    let (status, body) = post(&c, "/pipeline", Value::Array(commands));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, Value::Array(expected));
    let calls = executes() - before;
    // One batch per auxiliary (two), or a few more: 60 one by one.
    assert!(
        (2.0..=8.0).contains(&calls),
        "{calls} execute calls for 60 commands"
    );
}

#[test]
fn multi_exec_runs_a_transaction_or_none_of_it() {
    let c = Cluster::start(Spec::default());
    let (status, body) = post(
        &c,
        "/multi-exec",
        json!([
            ["SET", "tx:a", 1],
            ["INCRBY", "tx:a", 9],
            ["LPUSH", "tx:a", "x"],
            ["GET", "tx:a"]
        ]),
    );
    assert_eq!(status, 200, "{body}");
    // A run-time error is one element; the others still run, as in Redis.
    assert_eq!(
        body,
        json!([
            {"result": "OK"},
            {"result": 10},
            {"error": "WRONGTYPE Operation against a key holding the wrong kind of value"},
            {"result": "10"}
        ])
    );
    // A queue-time error discards the whole transaction.
    assert_eq!(
        post(
            &c,
            "/multi-exec",
            json!([["SET", "tx:b", "x"], ["NOPE", 1], ["GET"]])
        ),
        (
            400,
            json!({"error": "EXECABORT Transaction discarded because of previous errors. Command 1 was refused: ERR unknown command 'NOPE', with args beginning with: '1' "})
        )
    );
    assert_eq!(result(&c, json!(["EXISTS", "tx:b"])), json!(0));
    assert_eq!(
        post(&c, "/multi-exec", json!([["SET", "tx:c", "x"], ["EXEC"]])),
        (
            400,
            json!({"error": "EXECABORT Transaction discarded because of previous errors. Command 1 was refused: ERR MULTI, EXEC and DISCARD need a session, which HTTP does not keep: send a transaction's commands to POST /multi-exec"})
        )
    );
    assert_eq!(result(&c, json!(["EXISTS", "tx:c"])), json!(0));
}

fn secure_cluster() -> Cluster {
    Cluster::start(Spec {
        master_env: vec![
            ("AUTH_TOKENS".into(), format!("{READ}:read,{WRITE}:write")),
            ("CLUSTER_SECRET".into(), SECRET.into()),
        ],
        aux_env: vec![("CLUSTER_SECRET".into(), SECRET.into())],
        token: Some(WRITE.into()),
        ..Spec::default()
    })
}

#[test]
fn each_command_needs_its_own_role() {
    let c = secure_cluster();
    let plain = reqwest::blocking::Client::new();
    let as_reader =
        |path: &str, body: Value| send(plain.post(c.url(0, path)).bearer_auth(READ).json(&body));
    assert_eq!(result(&c, json!(["SET", "role:n", 5])), json!("OK"));
    assert_eq!(
        as_reader("/", json!(["GET", "role:n"])),
        (200, json!({"result": "5"}))
    );
    assert_eq!(
        as_reader("/", json!(["INCR", "role:n"])),
        (
            403,
            json!({"error": "NOPERM this token has the read role; 'incr' needs the write role"})
        )
    );
    assert_eq!(result(&c, json!(["GET", "role:n"])), json!("5"), "not run");
    assert_eq!(
        as_reader("/pipeline", json!([["GET", "role:n"], ["INCR", "role:n"]])),
        (
            200,
            json!([
                {"result": "5"},
                {"error": "NOPERM this token has the read role; 'incr' needs the write role"}
            ])
        )
    );
    assert_eq!(
        as_reader(
            "/multi-exec",
            json!([["GET", "role:n"], ["INCR", "role:n"]])
        ),
        (
            403,
            json!({"error": "EXECABORT Transaction discarded because of previous errors. Command 1 was refused: NOPERM this token has the read role; 'incr' needs the write role"})
        )
    );
    assert_eq!(result(&c, json!(["INCR", "role:n"])), json!(6));
    // No token, or a wrong one: the route's own 401.
    for req in [
        plain.post(c.url(0, "/")),
        plain.post(c.url(0, "/")).bearer_auth("not-a-token"),
    ] {
        let (status, body) = send(req.json(&json!(["GET", "role:n"])));
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["error"]["code"], "unauthorized");
    }
}

/// The `distcache_commands_total` line for a command and result.
fn commands_total(metrics: &str, command: &str, result: &str) -> Option<u64> {
    let prefix = format!("distcache_commands_total{{command=\"{command}\",result=\"{result}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|n| n.parse().unwrap())
}

#[test]
fn commands_are_counted_and_timed_by_name() {
    let c = Cluster::start(Spec::default());
    result(&c, json!(["INCR", "{metric}:n"]));
    result(&c, json!(["INCR", "{metric}:n"]));
    result(&c, json!(["SET", "{metric}:s", "x"]));
    error(&c, json!(["INCR", "{metric}:s"]));
    error(&c, json!(["NOPE"]));
    error(&c, json!(["ALSO-NOT-A-COMMAND", "x"]));
    post(&c, "/pipeline", json!([["GET", "{metric}:s"], ["nope"]]));
    post(
        &c,
        "/multi-exec",
        json!([["GET", "{metric}:s"], ["INCR", "{metric}:n"]]),
    );
    let metrics = c.get_text(0, "/metrics");
    assert_eq!(commands_total(&metrics, "incr", "ok"), Some(3), "{metrics}");
    assert_eq!(commands_total(&metrics, "incr", "error"), Some(1));
    assert_eq!(commands_total(&metrics, "set", "ok"), Some(1));
    assert_eq!(commands_total(&metrics, "get", "ok"), Some(2));
    assert_eq!(commands_total(&metrics, "unknown", "error"), Some(3));
    assert_eq!(commands_total(&metrics, "exec", "ok"), Some(1));
    assert!(
        metrics.contains("distcache_command_duration_seconds_count{command=\"incr\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("distcache_command_duration_seconds_count{command=\"exec\"} 1"),
        "{metrics}"
    );
    // Unknown names never become labels of their own.
    assert!(!metrics.contains("also-not-a-command"), "{metrics}");
}

/// `distcache call ARGS... --url URL`: exit code and standard output.
fn call(url: &str, token: Option<&str>, args: &[&str]) -> (i32, String) {
    let mut cmd = Command::new(BIN);
    cmd.arg("call")
        .args(args)
        .args(["--url", url])
        .env_remove("DISTCACHE_URL")
        .env_remove("DISTCACHE_TOKEN")
        .stdin(Stdio::null());
    if let Some(token) = token {
        cmd.env("DISTCACHE_TOKEN", token);
    }
    let out = cmd.output().expect("run distcache call");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn call_prints_replies_as_redis_cli_does() {
    let c = secure_cluster();
    let url = format!("http://{}", c.masters[0].addr);
    let w = Some(WRITE);
    assert_eq!(
        call(&url, w, &["SET", "cli:s", "a \"b\"\n"]),
        (0, "OK\n".into())
    );
    assert_eq!(
        call(&url, w, &["GET", "cli:s"]),
        (0, "\"a \\\"b\\\"\\n\"\n".into())
    );
    assert_eq!(
        call(&url, w, &["INCRBY", "cli:n", "-5"]),
        (0, "(integer) -5\n".into())
    );
    assert_eq!(
        call(&url, w, &["GET", "cli:missing"]),
        (0, "(nil)\n".into())
    );
    assert_eq!(
        call(&url, w, &["RPUSH", "cli:l", "a", "b", "é"]),
        (0, "(integer) 3\n".into())
    );
    assert_eq!(
        call(&url, w, &["LRANGE", "cli:l", "0", "-1"]),
        (0, "1) \"a\"\n2) \"b\"\n3) \"\\xc3\\xa9\"\n".into())
    );
    assert_eq!(
        call(&url, w, &["LRANGE", "cli:none", "0", "-1"]),
        (0, "(empty array)\n".into())
    );
    assert_eq!(
        call(&url, w, &["ZADD", "cli:z", "1", "m"]),
        (0, "(integer) 1\n".into())
    );
    assert_eq!(
        call(&url, w, &["ZRANGE", "cli:z", "0", "-1", "WITHSCORES"]),
        (0, "1) \"m\"\n2) \"1\"\n".into())
    );
    assert_eq!(
        call(&url, w, &["HGET", "cli:h"]),
        (
            1,
            "(error) ERR wrong number of arguments for 'hget' command\n".into()
        )
    );
    assert_eq!(
        call(&url, Some(READ), &["INCR", "cli:n"]),
        (
            1,
            "(error) NOPERM this token has the read role; 'incr' needs the write role\n".into()
        )
    );
    let (code, out) = call(&url, None, &["GET", "cli:s"]);
    assert_eq!(
        (code, out.as_str()),
        (2, ""),
        "no token: a failure, not a reply"
    );
}
