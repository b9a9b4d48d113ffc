//! Real Redis clients against a real cluster's RESP listener: redis-cli
//! (Debian's `redis-tools`, with `--pipe`, `-3` and AUTH), redis-benchmark,
//! the Python `redis` package from PyPI (`scripts/deps.d/26-redis-py.sh`),
//! node-redis and ioredis from npm (`scripts/deps.d/27-node-redis.sh`,
//! `28-ioredis.sh`) and the `redis` crate. Each does real work and reads
//! it back through the same master, on keys unique to the test.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::{Cluster, Spec, output_text, repo, run_node, run_ok, tool};

const READ: &str = "clients-read-token";
const WRITE: &str = "clients-write-token";
const ADMIN: &str = "clients-admin-token";

fn cluster(tokens: bool) -> Cluster {
    cluster_of(1, tokens)
}

/// A cluster of `masters` masters and two auxiliaries, each master with
/// a RESP listener; with the three tokens when `tokens`.
fn cluster_of(masters: usize, tokens: bool) -> Cluster {
    let mut spec = Spec {
        masters,
        auxiliaries: 2,
        resp: true,
        ..Spec::default()
    };
    if tokens {
        spec.master_env = vec![
            (
                "AUTH_TOKENS".into(),
                format!("{READ}:read,{WRITE}:write,{ADMIN}:admin"),
            ),
            ("CLUSTER_SECRET".into(), "clients-secret".into()),
        ];
        spec.aux_env = vec![("CLUSTER_SECRET".into(), "clients-secret".into())];
        spec.token = Some(ADMIN.into());
    }
    Cluster::start(spec)
}

fn port(cluster: &Cluster) -> String {
    cluster.masters[0].resp_port.expect("RESP port").to_string()
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{nanos}")
}

/// `redis-cli -p PORT ARGS...`, its standard output.
fn cli(port: &str, args: &[&str]) -> String {
    let redis_cli = tool("redis-cli", "scripts/deps.d/25-bench-tools.sh");
    let out = run_ok(
        "redis-cli",
        Command::new(redis_cli).args(["-p", port]).args(args),
    );
    String::from_utf8_lossy(&out.stdout).trim_end().to_string()
}

#[test]
fn redis_cli_sets_gets_pipes_and_speaks_resp3() {
    let cluster = cluster(false);
    let port = port(&cluster);
    let key = unique("cli");
    assert_eq!(cli(&port, &["PING"]), "PONG");
    assert_eq!(cli(&port, &["SET", &key, "hello world"]), "OK");
    assert_eq!(cli(&port, &["GET", &key]), "hello world");
    let counter = format!("{key}:n");
    assert_eq!(cli(&port, &["INCR", &counter]), "1");
    assert_eq!(cli(&port, &["INCRBY", &counter, "41"]), "42");
    let hash = format!("{key}:h");
    assert_eq!(cli(&port, &["HSET", &hash, "a", "1", "b", "2"]), "2");
    let mut all: Vec<String> = cli(&port, &["HGETALL", &hash])
        .lines()
        .map(str::to_owned)
        .collect();
    all.sort();
    assert_eq!(all, ["1", "2", "a", "b"]);
    // redis-cli -3 sends HELLO 3 and prints RESP3 types.
    let hello = cli(&port, &["-3", "HELLO", "3"]);
    // Maps print as "key value" lines when redis-cli writes to a pipe.
    assert!(hello.contains("\nproto 3\n"), "{hello}");
    assert!(hello.starts_with("server redis\nversion 7.2.0"), "{hello}");
    assert_eq!(cli(&port, &["-3", "GET", &format!("{key}:none")]), "");
    // Several commands on one connection, one per line.
    let redis_cli = tool("redis-cli", "scripts/deps.d/25-bench-tools.sh");
    let mut child = Command::new(&redis_cli)
        .args(["-p", &port])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(
        child.stdin.as_mut().unwrap(),
        "SET {key}:a 1\nINCR {key}:a\nGET {key}:a\nCLIENT SETNAME cli-test\nCLIENT GETNAME"
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim_end(),
        "OK\n2\n2\nOK\ncli-test"
    );

    // --pipe: 5,000 commands in the raw protocol, as for a mass import.
    let mut input = Vec::new();
    for i in 0..5000 {
        let k = format!("{key}:pipe:{i}");
        let v = format!("v{i}");
        input.extend_from_slice(
            format!(
                "*3\r\n$3\r\nSET\r\n${}\r\n{k}\r\n${}\r\n{v}\r\n",
                k.len(),
                v.len()
            )
            .as_bytes(),
        );
    }
    let mut child = Command::new(&redis_cli)
        .args(["-p", &port, "--pipe"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("errors: 0, replies: 5000"), "{text}");
    assert_eq!(cli(&port, &["GET", &format!("{key}:pipe:4999")]), "v4999");
}

#[test]
fn redis_cli_with_a_read_token_is_refused_a_write_with_noperm() {
    let cluster = cluster(true);
    let port = port(&cluster);
    let key = unique("cli-auth");
    assert_eq!(cli(&port, &["PING"]), "NOAUTH Authentication required.");
    assert_eq!(cli(&port, &["--pass", WRITE, "SET", &key, "v"]), "OK");
    assert_eq!(cli(&port, &["--pass", READ, "GET", &key]), "v");
    assert_eq!(
        cli(&port, &["--pass", READ, "SET", &key, "w"]),
        "NOPERM this user has no permissions to run the 'set' command"
    );
    assert_eq!(
        cli(&port, &["--user", "app", "--pass", WRITE, "SET", &key, "w"]),
        "OK"
    );
    assert_eq!(
        cli(&port, &["--pass", "wrong", "GET", &key]).lines().last(),
        Some("NOAUTH Authentication required.")
    );
}

#[test]
fn redis_benchmark_sets_and_gets_without_errors() {
    let cluster = cluster(false);
    let port = port(&cluster);
    let bench = tool("redis-benchmark", "scripts/deps.d/25-bench-tools.sh");
    for pipeline in ["1", "16"] {
        let out = run_ok(
            "redis-benchmark",
            Command::new(&bench).args([
                "-p", &port, "-t", "set,get", "-n", "2000", "-q", "-P", pipeline,
            ]),
        );
        let text = output_text(&out);
        assert!(text.contains("SET: "), "{text}");
        assert!(text.contains("GET: "), "{text}");
        assert!(text.contains("requests per second"), "{text}");
        assert!(!text.to_lowercase().contains("error"), "{text}");
    }
    // It wrote its key.
    assert_eq!(cli(&port, &["EXISTS", "key:__rand_int__"]), "1");
}

#[test]
fn the_python_redis_package_works_in_resp2_and_resp3() {
    let cluster = cluster(true);
    let port = port(&cluster);
    let python = repo().join("scripts/redis-py/.venv/bin/python");
    assert!(
        python.exists(),
        "run scripts/deps.d/26-redis-py.sh for the Python redis package"
    );
    let key = unique("py");
    let script = r#"
import sys, redis
port, key, write, read = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
for protocol in (2, 3):
    r = redis.Redis(host="127.0.0.1", port=port, password=write, protocol=protocol,
                    client_name="py-test", decode_responses=True)
    k = f"{key}:{protocol}"
    assert r.ping() is True
    assert r.set(k, "v1") is True
    assert r.get(k) == "v1"
    assert r.incr(k + ":n") == 1
    assert r.hset(k + ":h", mapping={"a": "1", "b": "2"}) == 2
    assert r.hgetall(k + ":h") == {"a": "1", "b": "2"}
    assert r.rpush(k + ":l", "x", "y", "z") == 3
    assert r.lrange(k + ":l", 0, -1) == ["x", "y", "z"]
    p = r.pipeline(transaction=False)
    for i in range(100):
        p.set(f"{k}:p:{i}", i)
    p.get(f"{k}:p:99")
    assert p.execute()[-1] == "99"
    t = r.pipeline(transaction=True)
    t.incr(k + ":t")
    t.incr(k + ":t")
    assert t.execute() == [1, 2]
    # WATCH: redis-py's optimistic-locking helpers, one key's hash tag.
    w = "{" + k + "}:w"
    r.set(w, 10)
    def double(pipe):
        v = int(pipe.get(w))
        pipe.multi()
        pipe.set(w, v * 2)
    assert r.transaction(double, w) == [True]
    assert r.get(w) == "20"
    other = redis.Redis(host="127.0.0.1", port=port, password=write, protocol=protocol)
    with r.pipeline() as pipe:
        pipe.watch(w)
        other.set(w, 1)
        pipe.multi()
        pipe.set(w, 99)
        try:
            pipe.execute()
            raise SystemExit("EXEC ran after a watched key changed")
        except redis.exceptions.WatchError:
            pass
    assert r.get(w) == "1"
    assert r.client_getname() == "py-test"
    info = r.info()
    assert info["redis_version"] >= "6", info["redis_version"]
    assert r.config_get("maxmemory") == {"maxmemory": "0"}
    ro = redis.Redis(host="127.0.0.1", port=port, password=read, protocol=protocol,
                     decode_responses=True)
    assert ro.get(k) == "v1"
    try:
        ro.set(k, "no")
        raise SystemExit("a read token wrote")
    except redis.exceptions.NoPermissionError as e:
        assert "no permissions to run the 'set' command" in str(e), e
    try:
        redis.Redis(host="127.0.0.1", port=port, password="wrong", protocol=protocol).ping()
        raise SystemExit("a wrong token was accepted")
    except redis.exceptions.AuthenticationError:
        pass
# scan_iter pages by cursor; every cursor must fit a signed 64-bit integer,
# which is how some clients (phpredis 5) read it: one past 2^63 came back
# as 2^63-1 there and the scan never ended.
p = r.pipeline(transaction=False)
for i in range(200):
    p.set(f"{key}:scan:{i}", i)
p.execute()
cursor, seen, pages = 0, set(), 0
while True:
    cursor, keys = r.scan(cursor, match=f"{key}:scan:*", count=5)
    assert 0 <= cursor < 2**63, f"cursor {cursor} is past a signed 64-bit integer"
    seen.update(keys)
    pages += 1
    if cursor == 0:
        break
assert seen == {f"{key}:scan:{i}" for i in range(200)}, len(seen)
assert pages > 10, pages
assert len(set(r.scan_iter(match=f"{key}:scan:*", count=7))) == 200
print("ok")
"#;
    let out = run_ok(
        "python redis",
        Command::new(&python).args(["-c", script, &port, &key, WRITE, READ]),
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
}

/// Scripts through redis-py as applications use them: its `Lock` (SET NX
/// PX to take it, Lua scripts through EVALSHA to release and extend it),
/// a script registered through one master and run through another,
/// EVAL_RO with a read token, and SCRIPT FLUSH reaching every master.
#[test]
fn python_redis_locks_and_scripts_work_through_any_master() {
    let cluster = cluster_of(2, true);
    let a = cluster.masters[0].resp_port.expect("RESP port").to_string();
    let b = cluster.masters[1].resp_port.expect("RESP port").to_string();
    let python = repo().join("scripts/redis-py/.venv/bin/python");
    assert!(
        python.exists(),
        "run scripts/deps.d/26-redis-py.sh for the Python redis package"
    );
    let key = unique("pylua");
    let script = r#"
import sys, redis
from redis.exceptions import LockNotOwnedError, NoPermissionError, NoScriptError, ResponseError
a, b, key, write, read = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
for protocol in (2, 3):
    ra = redis.Redis(port=a, password=write, protocol=protocol, decode_responses=True)
    rb = redis.Redis(port=b, password=write, protocol=protocol, decode_responses=True)
    k = f"{key}:{protocol}"
    # A lock taken through one master holds against the other.
    first = ra.lock(k + ":lock", timeout=10)
    second = rb.lock(k + ":lock", timeout=10)
    assert first.acquire(blocking=False)
    assert not second.acquire(blocking=False)
    assert first.owned() and not second.owned()
    first.extend(5)
    assert 10000 < ra.pttl(k + ":lock") <= 15000, ra.pttl(k + ":lock")
    # Releasing with another token runs the release script, which refuses.
    impostor = rb.lock(k + ":lock", timeout=10)
    impostor.local.token = "not-the-owner"
    try:
        impostor.release()
        raise SystemExit("a lock was released by a client that does not hold it")
    except LockNotOwnedError:
        pass
    assert first.owned()
    first.release()
    assert second.acquire(blocking=False)
    second.release()
    assert ra.exists(k + ":lock") == 0
    # A script registered through one master runs through the other.
    limiter = ra.register_script(
        "local n = redis.call('INCR', KEYS[1]) "
        "if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end "
        "return {n, redis.call('PTTL', KEYS[1]) > 0 and 1 or 0}")
    assert limiter(keys=[k + ":rate"], args=[60000]) == [1, 1]
    sha = ra.script_load(limiter.script)
    assert rb.script_exists(sha) == [True]
    assert rb.evalsha(sha, 1, k + ":rate", 60000) == [2, 1]
    assert limiter(keys=[k + ":rate"], args=[60000], client=rb) == [3, 1]
    # Inside a transaction, and in a pipeline beside other commands.
    t = rb.pipeline(transaction=True)
    t.evalsha(sha, 1, k + ":rate", 60000)
    t.get(k + ":rate")
    assert t.execute() == [[4, 1], "4"]
    p = rb.pipeline(transaction=False)
    p.set(k + ":p", "x")
    p.eval("return redis.call('APPEND', KEYS[1], ARGV[1])", 1, k + ":p", "yz")
    p.get(k + ":p")
    assert p.execute() == [True, 3, "xyz"]
    # Errors come back as Redis words them.
    try:
        ra.eval("return redis.call('LPUSH', KEYS[1], 'x')", 1, k + ":rate")
        raise SystemExit("LPUSH on a string succeeded")
    except ResponseError as e:
        assert str(e).startswith("WRONGTYPE Operation against a key holding the wrong kind of value script: "), e
    # A read token may run a read-only script, not a script that may write.
    ro = redis.Redis(port=b, password=read, protocol=protocol, decode_responses=True)
    assert ro.eval_ro("return redis.call('GET', KEYS[1])", 1, k + ":p") == "xyz"
    try:
        ro.eval("return 1", 0)
        raise SystemExit("a read token ran EVAL")
    except NoPermissionError:
        pass
    # SCRIPT FLUSH through one master empties the other's cache too.
    assert ra.script_flush() is True
    for client in (ra, rb):
        try:
            client.evalsha(sha, 1, k + ":rate", 60000)
            raise SystemExit("a flushed script ran")
        except NoScriptError:
            pass
    # redis-py's Script loads it again by itself.
    assert limiter(keys=[k + ":rate"], args=[60000], client=rb)[0] == 5
print("ok")
"#;
    let out = run_ok(
        "python redis scripts",
        Command::new(&python).args(["-c", script, &a, &b, &key, WRITE, READ]),
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
}

#[test]
fn the_redis_crate_works_in_resp2_and_resp3() {
    let cluster = cluster(false);
    let port = port(&cluster);
    let key = unique("rs");
    for protocol in ["resp2", "resp3"] {
        let client =
            redis::Client::open(format!("redis://127.0.0.1:{port}/0?protocol={protocol}")).unwrap();
        let mut con = client.get_connection().expect("connect");
        let k = format!("{key}:{protocol}");
        let _: () = redis::cmd("SET").arg(&k).arg("v").query(&mut con).unwrap();
        let v: String = redis::cmd("GET").arg(&k).query(&mut con).unwrap();
        assert_eq!(v, "v");
        let n: i64 = redis::cmd("INCRBY")
            .arg(format!("{k}:n"))
            .arg(5)
            .query(&mut con)
            .unwrap();
        assert_eq!(n, 5);
        let missing: Option<String> = redis::cmd("GET")
            .arg(format!("{k}:none"))
            .query(&mut con)
            .unwrap();
        assert_eq!(missing, None);
        let (a, b): (i64, i64) = redis::pipe()
            .atomic()
            .cmd("INCR")
            .arg(format!("{k}:t"))
            .cmd("INCR")
            .arg(format!("{k}:t"))
            .query(&mut con)
            .unwrap();
        assert_eq!((a, b), (1, 2));
        let mut pipe = redis::pipe();
        for i in 0..50 {
            pipe.cmd("SADD").arg(format!("{k}:s")).arg(i).ignore();
        }
        pipe.cmd("SCARD").arg(format!("{k}:s"));
        let (card,): (i64,) = pipe.query(&mut con).unwrap();
        assert_eq!(card, 50);
        let err = redis::cmd("SELECT")
            .arg(1)
            .query::<()>(&mut con)
            .unwrap_err();
        assert!(
            err.to_string().contains("DB index is out of range"),
            "{err}"
        );
    }
}

/// node-redis (npm's `redis`, `scripts/deps.d/27-node-redis.sh`): at
/// connect it sends `HELLO 3 AUTH user token SETNAME name` (RESP3) or AUTH
/// and CLIENT SETNAME (RESP2), then `CLIENT SETINFO` twice; in RESP3 it
/// maps replies by their type (a map to an object, a set to an array, a
/// double to a number), so a reply of the wrong RESP3 type shows.
#[test]
fn node_redis_works_in_resp2_and_resp3() {
    let cluster = cluster(true);
    let port = port(&cluster);
    let key = unique("node");
    let script = r#"
const assert = require("node:assert/strict");
const { createClient, RESP_TYPES } = require("redis");
const [port, key, write, read] = process.argv.slice(1);
const connect = (RESP, password, extra = {}) => createClient({
  socket: { host: "127.0.0.1", port: +port, reconnectStrategy: false },
  username: "app", password, RESP, name: "node-test", ...extra,
});
(async () => {
  for (const RESP of [2, 3]) {
    const r = connect(RESP, write);
    await r.connect();
    const k = `${key}:${RESP}`;
    assert.equal(await r.ping(), "PONG");
    assert.equal(await r.set(k, "v1", { EX: 100 }), "OK");
    assert.equal(await r.set(k, "v2", { GET: true }), "v1");
    assert.equal(await r.get(k), "v2");
    assert.equal(await r.get(k + ":none"), null);
    assert.deepEqual(await r.mGet([k, k + ":none"]), ["v2", null]);
    assert.equal(await r.hSet(k + ":h", { a: "1", b: "x" }), 2);
    assert.deepEqual({ ...(await r.hGetAll(k + ":h")) }, { a: "1", b: "x" });
    assert.deepEqual({ ...(await r.hGetAll(k + ":none")) }, {});
    assert.equal(await r.sAdd(k + ":s", ["x", "y"]), 2);
    assert.deepEqual([...(await r.sMembers(k + ":s"))].sort(), ["x", "y"]);
    assert.deepEqual(await r.smIsMember(k + ":s", ["x", "q"]), [1, 0]);
    assert.equal(await r.zAdd(k + ":z", [{ score: 1, value: "a" }, { score: 2.5, value: "b" }]), 2);
    assert.deepEqual(await r.zRangeWithScores(k + ":z", 0, -1),
      [{ value: "a", score: 1 }, { value: "b", score: 2.5 }]);
    assert.equal(await r.zScore(k + ":z", "b"), 2.5);
    assert.deepEqual(await r.zPopMin(k + ":z"), { value: "a", score: 1 });
    assert.deepEqual(await r.zmScore(k + ":z", ["b", "q"]), [2.5, null]);
    assert.equal(await r.incrByFloat(k + ":f", 1.5), "1.5");
    const bytes = Buffer.from([0, 1, 255, 13, 10, 200]);
    await r.set(k + ":bin", bytes);
    const asBuffer = r.withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer });
    assert.deepEqual(await asBuffer.get(k + ":bin"), bytes);
    assert.deepEqual(await r.multi().incr(k + ":t").incr(k + ":t").exec(), [1, 2]);
    assert.deepEqual(await r.multi().set(k + ":p", "1").incr(k + ":p").get(k + ":p").execAsPipeline(),
      ["OK", 2, "2"]);
    await Promise.all([...Array(100).keys()].map((i) => r.set(`${k}:scan:${i}`, String(i))));
    const seen = new Set();
    for await (const keys of r.scanIterator({ MATCH: `${k}:scan:*`, COUNT: 5 })) {
      for (const found of keys) seen.add(found);
    }
    assert.equal(seen.size, 100);
    assert.equal(await r.clientGetName(), "node-test");
    const info = await r.clientInfo();
    assert.equal(info.libName, "node-redis");
    assert.equal(info.resp, RESP);
    assert.match((await r.info("server")), /redis_version:7\.2\.0/);
    assert.deepEqual({ ...(await r.configGet("maxmemory")) }, { maxmemory: "0" });
    await r.close();

    const ro = connect(RESP, read);
    await ro.connect();
    assert.equal(await ro.get(k), "v2");
    await assert.rejects(ro.set(k, "no"), /NOPERM this user has no permissions to run the 'set' command/);
    await ro.close();
    const wrong = connect(RESP, "wrong");
    wrong.on("error", () => {});
    await assert.rejects(wrong.connect(), /WRONGPASS/);
  }
  console.log("ok");
})().catch((e) => { console.error(e); process.exit(1); });
"#;
    let out = run_node(
        "node-redis",
        "redis",
        "scripts/deps.d/27-node-redis.sh",
        script,
        &[&port, &key, WRITE, READ],
    );
    assert_eq!(out, "ok");
}

/// ioredis (`scripts/deps.d/28-ioredis.sh`), RESP3 by default since
/// version 6: at connect it sends `HELLO 3 AUTH user token` (or AUTH in
/// RESP2), `CLIENT SETNAME`, `CLIENT SETINFO` twice and INFO for its ready
/// check. With `replyMapping: "legacy"` (its default) RESP3 replies reach
/// the caller in RESP2's shapes, with `"resp3"` typed (doubles as numbers,
/// ZRANGE WITHSCORES as pairs), so the three runs compare both.
#[test]
fn ioredis_works_in_resp2_and_resp3() {
    let cluster = cluster(true);
    let port = port(&cluster);
    let key = unique("ioredis");
    let script = r#"
const assert = require("node:assert/strict");
const Redis = require("ioredis");
const [port, key, write, read] = process.argv.slice(1);
const connect = (protocol, replyMapping, password) => new Redis({
  host: "127.0.0.1", port: +port, protocol, replyMapping, username: "app", password,
  connectionName: "ioredis-test", lazyConnect: true, retryStrategy: () => null,
  maxRetriesPerRequest: 0,
});
(async () => {
  for (const [protocol, replyMapping] of [[2, "legacy"], [3, "legacy"], [3, "resp3"]]) {
    const typed = replyMapping === "resp3";
    const r = connect(protocol, replyMapping, write);
    await r.connect();
    assert.equal(r.status, "ready");
    const k = `${key}:${protocol}:${replyMapping}`;
    assert.equal(await r.ping(), "PONG");
    assert.equal(await r.select(0), "OK");
    assert.equal(await r.set(k, "v1", "EX", 100), "OK");
    assert.equal(await r.get(k), "v1");
    const ttl = await r.ttl(k);
    assert.ok(ttl > 90 && ttl <= 100, `ttl ${ttl}`);
    assert.equal(await r.get(k + ":none"), null);
    assert.equal(await r.incr(k + ":n"), 1);
    assert.equal(await r.incrby(k + ":n", 41), 42);
    assert.deepEqual(await r.pipeline().set(k + ":p", "1").incr(k + ":p").get(k + ":p").exec(),
      [[null, "OK"], [null, 2], [null, "2"]]);
    assert.deepEqual(await r.multi().incr(k + ":t").incr(k + ":t").get(k + ":t").exec(),
      [[null, 1], [null, 2], [null, "2"]]);
    assert.equal(await r.hset(k + ":h", { a: "1", b: "x" }), 2);
    assert.deepEqual(await r.hgetall(k + ":h"), { a: "1", b: "x" });
    assert.deepEqual(await r.hgetall(k + ":none"), {});
    assert.equal(await r.hincrby(k + ":h", "a", 5), 6);
    assert.equal(await r.hget(k + ":h", "a"), "6");
    assert.equal(await r.rpush(k + ":l", "x", "y", "z"), 3);
    assert.equal(await r.lpush(k + ":l", "w"), 4);
    assert.deepEqual(await r.lrange(k + ":l", 0, -1), ["w", "x", "y", "z"]);
    assert.equal(await r.lpop(k + ":l"), "w");
    assert.equal(await r.sadd(k + ":s", "x", "y", "x"), 2);
    assert.deepEqual((await r.smembers(k + ":s")).sort(), ["x", "y"]);
    assert.equal(await r.sismember(k + ":s", "q"), 0);
    assert.equal(await r.zadd(k + ":z", 1, "a", 2.5, "b"), 2);
    assert.deepEqual(await r.zrange(k + ":z", 0, -1, "WITHSCORES"),
      typed ? [["a", 1], ["b", 2.5]] : ["a", "1", "b", "2.5"]);
    assert.deepEqual(await r.zscore(k + ":z", "b"), typed ? 2.5 : "2.5");
    assert.equal(await r.zincrby(k + ":z", 1, "a"), typed ? 2 : "2");
    const bytes = Buffer.from([0, 1, 255, 13, 10, 200]);
    assert.equal(await r.set(k + ":bin", bytes), "OK");
    assert.deepEqual(await r.getBuffer(k + ":bin"), bytes);

    // Errors reach the caller as ReplyError, alone, in a pipeline and in
    // a transaction.
    await assert.rejects(r.incr(k + ":h"), (e) => e.name === "ReplyError" &&
      /^WRONGTYPE Operation against a key holding the wrong kind of value/.test(e.message));
    const [[err], [, after]] = await r.pipeline().lpush(k + ":h", "x").get(k).exec();
    assert.match(err.message, /^WRONGTYPE/);
    assert.equal(after, "v1");
    const inMulti = await r.multi().set(k + ":m", "1").lpush(k + ":m", "x").exec();
    assert.equal(inMulti[0][1], "OK");
    assert.match(inMulti[1][0].message, /^WRONGTYPE/);
    await assert.rejects(r.multi().set(k + ":m", "2").call("NOSUCHCOMMAND").exec(),
      /EXECABORT/);
    assert.equal(await r.get(k + ":m"), "1");

    await Promise.all([...Array(100).keys()].map((i) => r.set(`${k}:scan:${i}`, String(i))));
    const seen = new Set();
    await new Promise((resolve, reject) => {
      const stream = r.scanStream({ match: `${k}:scan:*`, count: 5 });
      stream.on("data", (keys) => keys.forEach((found) => seen.add(found)));
      stream.on("end", resolve);
      stream.on("error", reject);
    });
    assert.equal(seen.size, 100);
    assert.equal(await r.client("GETNAME"), "ioredis-test");
    const info = await r.client("INFO");
    assert.match(info, / lib-name=ioredis /);
    assert.match(info, new RegExp(` resp=${protocol}\\b`));
    assert.match(await r.info("server"), /redis_version:7\.2\.0/);
    // defineCommand: ioredis sends EVALSHA, and EVAL after NOSCRIPT.
    r.defineCommand("pushAndCount", {
      numberOfKeys: 1,
      lua: "redis.call('RPUSH', KEYS[1], ARGV[1]) return redis.call('LLEN', KEYS[1])",
    });
    assert.equal(await r.pushAndCount(k + ":dc", "a"), 1);
    assert.equal(await r.pushAndCount(k + ":dc", "b"), 2);
    assert.deepEqual(await r.lrange(k + ":dc", 0, -1), ["a", "b"]);
    r.disconnect();

    const ro = connect(protocol, replyMapping, read);
    await ro.connect();
    assert.equal(await ro.get(k), "v1");
    await assert.rejects(ro.set(k, "no"),
      /^ReplyError: NOPERM this user has no permissions to run the 'set' command/);
    // AUTH on an open connection, then the write goes through.
    assert.equal(await ro.auth("app", write), "OK");
    assert.equal(await ro.set(k, "v2"), "OK");
    ro.disconnect();
    const wrong = connect(protocol, replyMapping, "wrong");
    // The refusal comes as an "error" event; connect() then fails as the
    // connection closes (retryStrategy gives up).
    const refused = [];
    wrong.on("error", (e) => refused.push(e.message));
    await assert.rejects(wrong.connect());
    assert.match(refused.join("\n"), /^WRONGPASS invalid username-password pair/);
  }
  console.log("ok");
})().catch((e) => { console.error(e); process.exit(1); });
"#;
    let out = run_node(
        "ioredis",
        "ioredis",
        "scripts/deps.d/28-ioredis.sh",
        script,
        &[&port, &key, WRITE, READ],
    );
    assert_eq!(out, "ok");
}

/// redis-py's `RedisCluster`, the client of Redis Cluster users, given the
/// three masters as its startup nodes: it reads CLUSTER SLOTS (one master
/// owning every slot), then sets and reads keys of every slot, splits an
/// MGET by slot, pipelines, receives a shard channel's message
/// (SSUBSCRIBE, SPUBLISH). When the master it chose is killed, it asks
/// the next startup node and goes on; nothing written before is lost
/// (REPLICAS=2 on two auxiliaries: the masters hold no data).
#[test]
fn python_redis_cluster_client_works_and_survives_its_master() {
    let mut cluster = cluster_of(3, true);
    let ports: Vec<String> = cluster
        .masters
        .iter()
        .map(|m| m.resp_port.expect("RESP port").to_string())
        .collect();
    let python = repo().join("scripts/redis-py/.venv/bin/python");
    assert!(
        python.exists(),
        "run scripts/deps.d/26-redis-py.sh for the Python redis package"
    );
    let key = unique("pycluster");
    let script = r#"
import sys, redis
from redis.cluster import RedisCluster, ClusterNode
ports, key, write = [int(p) for p in sys.argv[1].split(",")], sys.argv[2], sys.argv[3]
rc = RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", p) for p in ports], password=write,
                  decode_responses=True, dynamic_startup_nodes=False,
                  cluster_error_retry_attempts=10)
slots = rc.cluster_slots()
assert list(slots.keys()) == [(0, 16383)], slots
node = rc.get_node_from_key(key)
assert node.port in ports, node
assert rc.cluster_keyslot("{user1000}.following") == 3443
assert rc.keyslot("{user1000}.following") == 3443
keys = [f"{key}:{i}" for i in range(200)]
for i, k in enumerate(keys):
    assert rc.set(k, i) is True
assert rc.mget_nonatomic(keys) == [str(i) for i in range(200)]
p = rc.pipeline()
for k in keys[:50]:
    p.incr(k)
assert p.execute() == list(range(1, 51))
tagged = "{" + key + "}"
assert rc.mset({tagged + "a": "1", tagged + "b": "2"}) is True
assert rc.mget(tagged + "a", tagged + "b") == ["1", "2"]
# Containers: redis-py finds their key among COMMAND's subcommands.
stream = key + ":stream"
rc.xadd(stream, {"f": "v"}, id="1-1")
assert rc.xgroup_create(stream, "g", id="0") is True
assert rc.xinfo_stream(stream)["length"] == 1
assert rc.xinfo_groups(stream)[0]["name"] == "g"
assert rc.object("encoding", keys[0]) == "int"
# Sharded Pub/Sub: the client subscribes at the node of the channel's
# slot; SPUBLISH, sent by the same slot, reaches it.
ps = rc.pubsub()
ps.ssubscribe(tagged)
got = []
import time
deadline = time.time() + 10
published = False
while time.time() < deadline and not any(m["type"] == "smessage" for m in got):
    m = ps.get_sharded_message(timeout=0.2)
    if m:
        got.append(m)
    if not published and any(m["type"] == "ssubscribe" for m in got):
        assert rc.spublish(tagged, "paid") == 1
        published = True
assert got == [{"type": "ssubscribe", "pattern": None, "channel": tagged, "data": 1},
               {"type": "smessage", "pattern": None, "channel": tagged, "data": "paid"}], got
ps.close()
print(node.port, flush=True)
assert sys.stdin.readline().strip() == "killed"
# Its master is gone: the next command fails over to another startup node.
for attempt in range(50):
    try:
        assert rc.set(key + ":after", "x") is True
        break
    except (redis.exceptions.ConnectionError, redis.exceptions.ClusterError, redis.exceptions.TimeoutError):
        import time; time.sleep(0.2)
else:
    raise SystemExit("never failed over")
assert rc.get_node_from_key(key).port != node.port
assert rc.mget_nonatomic(keys) == [str(i + 1) if i < 50 else str(i) for i in range(200)]
assert rc.get(key + ":after") == "x"
print("ok", flush=True)
"#;
    let mut child = Command::new(&python)
        .args(["-c", script, &ports.join(","), &key, WRITE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python starts");
    let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).expect("the client's master");
    let chosen = line.trim().to_owned();
    let Some(victim) = ports.iter().position(|p| *p == chosen) else {
        let out = child.wait_with_output().expect("python ends");
        panic!(
            "the client named no master ({line:?}): {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    cluster.masters[victim].proc.kill();
    let mut stdin = child.stdin.take().expect("stdin");
    writeln!(stdin, "killed").expect("tell the client");
    drop(stdin);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).expect("the client's answer");
    let out = child.wait_with_output().expect("python ends");
    assert!(
        out.status.success() && rest.trim() == "ok",
        "after killing master {victim}: {rest:?} {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// ioredis's `Cluster` and node-redis's `createCluster` over three
/// masters: each reads CLUSTER SLOTS (ioredis also waits for CLUSTER
/// INFO's `cluster_state:ok`), then writes and reads keys of many slots,
/// pipelines (ioredis groups a pipeline's keys by slot: one hash tag) and
/// reads a multi-slot set of keys back one by one.
#[test]
fn node_cluster_clients_work_through_the_masters() {
    let cluster = cluster_of(3, true);
    let ports: Vec<String> = cluster
        .masters
        .iter()
        .map(|m| m.resp_port.expect("RESP port").to_string())
        .collect();
    let ports = ports.join(",");
    let key = unique("nodecluster");
    let ioredis = r#"
const assert = require("node:assert/strict");
const Redis = require("ioredis");
const [ports, key, write] = process.argv.slice(1);
(async () => {
  const nodes = ports.split(",").map((p) => ({ host: "127.0.0.1", port: +p }));
  const c = new Redis.Cluster(nodes, { redisOptions: { password: write }, enableReadyCheck: true });
  await new Promise((resolve, reject) => { c.once("ready", resolve); c.once("error", reject); });
  const slots = await c.cluster("SLOTS");
  assert.equal(slots.length, 1);
  assert.deepEqual(slots[0].slice(0, 2), [0, 16383]);
  assert.ok(ports.split(",").includes(String(slots[0][2][1])), `owner ${slots[0][2]}`);
  for (let i = 0; i < 100; i++) assert.equal(await c.set(`${key}:${i}`, String(i)), "OK");
  for (let i = 0; i < 100; i++) assert.equal(await c.get(`${key}:${i}`), String(i));
  const tag = `{${key}}`;
  const res = await c.pipeline().set(tag + "a", "1").incr(tag + "a").get(tag + "a").exec();
  assert.deepEqual(res, [[null, "OK"], [null, 2], [null, "2"]]);
  assert.deepEqual(await c.mget(tag + "a", tag + "b"), ["2", null]);
  assert.equal(await c.cluster("KEYSLOT", "{user1000}.following"), 3443);
  await c.quit();
  console.log("ok");
})().catch((e) => { console.error(e); process.exit(1); });
"#;
    let out = run_node(
        "ioredis",
        "ioredis",
        "scripts/deps.d/28-ioredis.sh",
        ioredis,
        &[&ports, &key, WRITE],
    );
    assert_eq!(out, "ok");
    let node_redis = r#"
const assert = require("node:assert/strict");
const { createCluster } = require("redis");
const [ports, key, write] = process.argv.slice(1);
(async () => {
  const c = createCluster({
    rootNodes: ports.split(",").map((p) => ({ url: `redis://127.0.0.1:${p}` })),
    defaults: { password: write },
  });
  c.on("error", (e) => { console.error(e); process.exit(1); });
  await c.connect();
  for (let i = 0; i < 100; i++) assert.equal(await c.set(`${key}:n:${i}`, String(i)), "OK");
  for (let i = 0; i < 100; i++) assert.equal(await c.get(`${key}:n:${i}`), String(i));
  const tag = `{${key}}`;
  assert.deepEqual(await c.multi().set(tag + "x", "1").incr(tag + "x").exec(), ["OK", 2]);
  assert.equal(await c.incr(tag + "x"), 3);
  await c.quit();
  console.log("ok");
})().catch((e) => { console.error(e); process.exit(1); });
"#;
    let out = run_node(
        "node-redis",
        "redis",
        "scripts/deps.d/27-node-redis.sh",
        node_redis,
        &[&ports, &key, WRITE],
    );
    assert_eq!(out, "ok");
}
