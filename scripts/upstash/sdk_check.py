"""Drives a distcache master with Upstash's own Python SDK (upstash-redis).

Run by crates/distcache/tests/tools_upstash.rs against a cluster it starts:

    sdk_check.py URL WRITE_TOKEN READ_TOKEN PREFIX

Every check compares what the SDK returns with what Redis answers; the
first mismatch prints what was expected and what came back, and the script
exits 1. It prints "ok: N checks" when all pass.
"""

import sys

from upstash_redis import Redis
from upstash_redis.errors import UpstashError

url, write_token, read_token, prefix = sys.argv[1:5]
checks = 0


def expect(what, got, want):
    global checks
    checks += 1
    if got != want:
        print(f"FAIL {what}: expected {want!r}, got {got!r}", file=sys.stderr)
        sys.exit(1)


def expect_error(what, call, starts_with):
    global checks
    checks += 1
    try:
        got = call()
    except UpstashError as e:
        if not str(e).startswith(starts_with):
            print(f"FAIL {what}: error {e!s} does not start with {starts_with!r}", file=sys.stderr)
            sys.exit(1)
        return
    print(f"FAIL {what}: expected an error {starts_with!r}, got {got!r}", file=sys.stderr)
    sys.exit(1)


def key(name):
    return f"{prefix}:{name}"


def work(redis, tag):
    """The same work with either encoding; `tag` keeps their keys apart."""
    k = lambda name: key(f"{tag}:{name}")  # noqa: E731

    # Strings and counters.
    expect("set", redis.set(k("s"), "héllo wörld"), True)
    expect("get", redis.get(k("s")), "héllo wörld")
    expect("get missing", redis.get(k("missing")), None)
    expect("set nx on existing", redis.set(k("s"), "x", nx=True), False)
    expect("set ex", redis.set(k("ttl"), "v", ex=100), True)
    ttl = redis.ttl(k("ttl"))
    expect("ttl in range", 90 <= ttl <= 100, True)
    expect("incr", redis.incr(k("n")), 1)
    expect("incrby", redis.incrby(k("n"), 41), 42)
    expect("decr", redis.decr(k("n")), 41)
    expect("incrbyfloat", redis.incrbyfloat(k("f"), 1.5), 1.5)
    expect("mset", redis.mset({k("m1"): "a", k("m2"): "b"}), True)
    expect("mget", redis.mget(k("m1"), k("m2"), k("missing")), ["a", "b", None])
    expect("strlen", redis.strlen(k("s")), len("héllo wörld".encode()))
    expect("exists", redis.exists(k("s"), k("n"), k("missing")), 2)
    expect("type", redis.type(k("s")), "string")

    # Hashes.
    expect("hset", redis.hset(k("h"), values={"name": "Ada", "born": "1815"}), 2)
    expect("hset one", redis.hset(k("h"), "field", "value"), 1)
    expect("hget", redis.hget(k("h"), "name"), "Ada")
    expect(
        "hgetall",
        redis.hgetall(k("h")),
        {"name": "Ada", "born": "1815", "field": "value"},
    )
    expect("hincrby", redis.hincrby(k("h"), "born", 10), 1825)
    expect("hlen", redis.hlen(k("h")), 3)
    expect("hdel", redis.hdel(k("h"), "field"), 1)
    expect("hexists", redis.hexists(k("h"), "field"), False)

    # Lists.
    expect("lpush", redis.lpush(k("l"), "c", "b", "a"), 3)
    expect("rpush", redis.rpush(k("l"), "d"), 4)
    expect("lrange", redis.lrange(k("l"), 0, -1), ["a", "b", "c", "d"])
    expect("lpop", redis.lpop(k("l")), "a")
    expect("llen", redis.llen(k("l")), 3)
    expect("lindex", redis.lindex(k("l"), -1), "d")

    # Sets.
    expect("sadd", redis.sadd(k("set"), "x", "y", "z", "x"), 3)
    expect("smembers", sorted(redis.smembers(k("set"))), ["x", "y", "z"])
    expect("sismember", redis.sismember(k("set"), "y"), True)
    expect("srem", redis.srem(k("set"), "y"), 1)
    expect("scard", redis.scard(k("set")), 2)

    # Sorted sets.
    expect("zadd", redis.zadd(k("z"), {"ann": 3, "bob": 1.5, "cid": 2}), 3)
    expect("zrange", redis.zrange(k("z"), 0, -1), ["bob", "cid", "ann"])
    expect(
        "zrange withscores",
        redis.zrange(k("z"), 0, -1, withscores=True),
        [("bob", 1.5), ("cid", 2.0), ("ann", 3.0)],
    )
    expect("zscore", redis.zscore(k("z"), "bob"), 1.5)
    expect("zincrby", redis.zincrby(k("z"), 2, "bob"), 3.5)
    expect("zrank", redis.zrank(k("z"), "bob"), 2)
    expect("zcard", redis.zcard(k("z")), 3)

    # Pub/Sub: PUBLISH answers the receivers (none subscribe here).
    expect("publish", redis.publish(k("chan"), "hello"), 0)

    # Errors come back as UpstashError with Redis's words.
    expect_error("wrongtype", lambda: redis.hget(k("s"), "f"), "WRONGTYPE")
    expect_error("not an integer", lambda: redis.incr(k("s")), "ERR value is not an integer")

    # A pipeline: each command on its own.
    p = redis.pipeline()
    p.set(k("p"), "1")
    p.incr(k("p"))
    p.get(k("p"))
    p.lpush(k("pl"), "a", "b")
    p.lrange(k("pl"), 0, -1)
    p.hset(k("ph"), "f", "v")
    p.hgetall(k("ph"))
    p.publish(k("chan"), "in a pipeline")
    expect(
        "pipeline",
        p.exec(),
        [True, 2, "2", 2, ["b", "a"], 1, {"f": "v"}, 0],
    )

    # A transaction: its keys share a hash tag, so they share a node (a
    # transaction over keys on different nodes is refused with CROSSSLOT).
    tx = redis.multi()
    tx.set(k("{tx}t"), "10")
    tx.incrby(k("{tx}t"), 5)
    tx.sadd(k("{tx}s"), "a", "b")
    tx.smembers(k("{tx}s"))
    tx.get(k("{tx}t"))
    got = tx.exec()
    got[3] = sorted(got[3])
    expect("multi/exec", got, [True, 15, 2, ["a", "b"], "15"])

    # Scripts: EVAL, then by SHA1, over keys that share a hash tag.
    incr_and_get = (
        "redis.call('INCRBY', KEYS[1], ARGV[1]) "
        "return {redis.call('GET', KEYS[1]), redis.call('TYPE', KEYS[2])}"
    )
    expect("eval", redis.eval(incr_and_get, [k("{sc}a"), k("{sc}b")], [2]), ["2", "none"])
    sha = redis.script_load(incr_and_get)
    expect("script_exists", redis.script_exists(sha, "0" * 40), [True, False])
    expect("evalsha", redis.evalsha(sha, [k("{sc}a"), k("{sc}b")], [3]), ["5", "none"])
    expect("eval_ro", redis.eval_ro("return redis.call('GET', KEYS[1])", [k("{sc}a")]), "5")
    expect_error(
        "eval_ro that writes",
        lambda: redis.eval_ro("return redis.call('DEL', KEYS[1])", [k("{sc}a")]),
        "ERR Write commands are not allowed from read-only scripts.",
    )
    expect_error(
        "evalsha of an unknown script",
        lambda: redis.evalsha("0" * 40, [k("{sc}a")]),
        "NOSCRIPT",
    )

    # Keys.
    expect("del", redis.delete(k("m1"), k("m2"), k("missing")), 2)
    expect("expire", redis.expire(k("n"), 100), True)
    expect("persist", redis.persist(k("n")), True)


base64_client = Redis(url=url, token=write_token, allow_telemetry=False)
work(base64_client, "b64")
text_client = Redis(url=url, token=write_token, rest_encoding=None, allow_telemetry=False)
work(text_client, "text")

# A read-only token reads, and its writes are refused with NOPERM.
reader = Redis(url=url, token=read_token, allow_telemetry=False)
expect("reader get", reader.get(key("b64:s")), "héllo wörld")
expect("reader hgetall", reader.hgetall(key("b64:ph")), {"f": "v"})
expect_error("reader incr", lambda: reader.incr(key("b64:n")), "NOPERM")
expect("reader's incr did not run", reader.get(key("b64:p")), "2")

print(f"ok: {checks} checks")
