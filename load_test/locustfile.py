"""Locust load test for distcache: a realistic mix of clients against the
REST API of a master (or the nginx in front of the masters).

User classes (weights in parentheses, of every 12 users spawned):

- ReadHeavyUser (4): mostly reads of a shared pool of keys, a few writes to
  it. A 404 is a cache miss, not a failure.
- WriteHeavyUser (2): writes values of assorted JSON types under unique
  keys, and refreshes keys of the shared pool so that readers hit.
- ReadAfterWriteUser (2): writes a unique key (with characters that need
  percent-encoding) and reads it back: the value must come back exactly.
- DeleteUser (1): writes a key, deletes it (200), reads it (404), deletes it
  again (404).
- BulkUser (1): `POST /data/bulk` of a batch, then `POST /data/bulk/get` of
  the batch plus keys that do not exist: exactly the batch comes back.
- ShortTtlUser (1): writes with a 1 s TTL, reads it back at once (hit, TTL
  at most 1 s), then after 2.5 s again: it must have expired (404).
- HotKeyUser (1): everyone hammers one hot key with reads and writes.

Every request is named by route and purpose (see NAMES), so the stats show
one line per kind; crates/distcache/tests/tools_locust.rs checks that each of them
ran without a failure.
"""

import json
import random
import string
import uuid
from urllib.parse import quote

import gevent
from locust import between, task
from locust.contrib.fasthttp import FastHttpUser

POOL_SIZE = 1000
HOT_KEY = "hot-key"
SHORT_TTL_S = 1
BULK_SIZE = 20

# The request names in the stats, one per kind of request.
NAMES = {
    "get": "GET /data/[key]",
    "set": "POST /data",
    "get_after_write": "GET /data/[read-after-write]",
    "delete": "DELETE /data/[key]",
    "get_deleted": "GET /data/[deleted]",
    "delete_missing": "DELETE /data/[missing]",
    "bulk_set": "POST /data/bulk",
    "bulk_get": "POST /data/bulk/get",
    "set_ttl": "POST /data [ttl]",
    "get_ttl": "GET /data/[ttl-live]",
    "get_expired": "GET /data/[ttl-expired]",
    "get_hot": "GET /data/[hot]",
    "set_hot": "POST /data [hot]",
}


def path(key):
    """The URL path of a key: percent-encoded as one segment."""
    return "/data/" + quote(key, safe="")


def pool_key():
    return f"pool-{random.randrange(POOL_SIZE)}"


def unique_key(prefix):
    # Slashes, spaces, '?' and non-ASCII must survive the URL round trip.
    return f"{prefix}/{uuid.uuid4().hex} ü?&"


def random_value():
    """A JSON value of a random type and size."""
    kind = random.randrange(5)
    if kind == 0:
        return "".join(random.choices(string.ascii_letters, k=random.randint(1, 200)))
    if kind == 1:
        return random.randint(-(2**53), 2**53)
    if kind == 2:
        return {"name": uuid.uuid4().hex, "tags": ["a", "b"], "n": random.random(), "ok": True}
    if kind == 3:
        return [random.randint(0, 100) for _ in range(random.randint(0, 20))]
    return None if random.random() < 0.5 else False


class CacheUser(FastHttpUser):
    """Helpers shared by every user class. Each check marks the request
    failed with a reason when the answer is not what the API promises."""

    abstract = True
    wait_time = between(0.05, 0.3)

    def set(self, key, value, ttl=None, name=NAMES["set"]):
        body = {"key": key, "value": value}
        if ttl is not None:
            body["ttl"] = ttl
        with self.client.post("/data", json=body, name=name, catch_response=True) as resp:
            if resp.status_code != 200:
                resp.failure(f"set: status {resp.status_code}: {resp.text}")
                return False
            answer = resp.json()
            if answer.get("stored") is not True or answer.get("key") != key:
                resp.failure(f"set: unexpected answer {answer}")
                return False
            resp.success()
            return True

    def get(self, key, name=NAMES["get"], expect=None):
        """Reads `key`. A 404 is a miss unless `expect` says otherwise:
        expect="hit" needs a 200, expect="miss" needs a 404. Returns the
        answer's JSON on a hit, None on a miss."""
        with self.client.get(path(key), name=name, catch_response=True) as resp:
            if resp.status_code == 404:
                if expect == "hit":
                    resp.failure(f"get {key!r}: 404, expected a hit")
                else:
                    resp.success()
                return None
            if resp.status_code != 200:
                resp.failure(f"get {key!r}: status {resp.status_code}: {resp.text}")
                return None
            answer = resp.json()
            if expect == "miss":
                resp.failure(f"get {key!r}: 200 {answer}, expected a miss")
            elif answer.get("key") != key:
                resp.failure(f"get {key!r}: answer for another key: {answer}")
            else:
                resp.success()
            return answer

    def delete(self, key, name=NAMES["delete"], expect_status=200):
        with self.client.delete(path(key), name=name, catch_response=True) as resp:
            if resp.status_code != expect_status:
                resp.failure(f"delete {key!r}: status {resp.status_code}, expected {expect_status}")
            else:
                resp.success()


class ReadHeavyUser(CacheUser):
    weight = 4

    @task(10)
    def read(self):
        self.get(pool_key())

    @task(1)
    def write(self):
        self.set(pool_key(), random_value())


class WriteHeavyUser(CacheUser):
    weight = 2

    @task(5)
    def write_unique(self):
        self.set(unique_key("w"), random_value())

    @task(2)
    def refresh_pool(self):
        self.set(pool_key(), random_value())

    @task(1)
    def read(self):
        self.get(pool_key())


class ReadAfterWriteUser(CacheUser):
    weight = 2

    @task
    def write_then_read(self):
        key = unique_key("raw")
        value = random_value()
        if not self.set(key, value):
            return
        with self.client.get(path(key), name=NAMES["get_after_write"], catch_response=True) as resp:
            if resp.status_code != 200:
                resp.failure(f"read after write of {key!r}: status {resp.status_code}")
                return
            answer = resp.json()
            if answer.get("value") != value or answer.get("ttl") is not None:
                resp.failure(f"read after write of {key!r}: wrote {value!r}, read {answer!r}")
            else:
                resp.success()


class DeleteUser(CacheUser):
    weight = 1

    @task
    def write_delete_check(self):
        key = unique_key("d")
        if not self.set(key, random_value()):
            return
        self.delete(key)
        self.get(key, name=NAMES["get_deleted"], expect="miss")
        self.delete(key, name=NAMES["delete_missing"], expect_status=404)


class BulkUser(CacheUser):
    weight = 1

    @task
    def bulk_set_then_get(self):
        batch = {unique_key("b"): random_value() for _ in range(BULK_SIZE)}
        entries = [{"key": k, "value": v} for k, v in batch.items()]
        # Some entries carry a long TTL, so that bulk writes with TTLs run too.
        for e in entries[::4]:
            e["ttl"] = 3600
        with self.client.post("/data/bulk", json=entries, name=NAMES["bulk_set"], catch_response=True) as resp:
            if resp.status_code != 200:
                resp.failure(f"bulk set: status {resp.status_code}: {resp.text}")
                return
            answer = resp.json()
            if answer.get("stored") != len(entries) or answer.get("failed") != []:
                resp.failure(f"bulk set: {answer}")
                return
            resp.success()
        missing = [unique_key("never-written") for _ in range(5)]
        keys = list(batch) + missing
        random.shuffle(keys)
        with self.client.post("/data/bulk/get", json=keys, name=NAMES["bulk_get"], catch_response=True) as resp:
            if resp.status_code != 200:
                resp.failure(f"bulk get: status {resp.status_code}: {resp.text}")
                return
            found = resp.json()
            if found != batch:
                resp.failure(
                    f"bulk get: expected the {len(batch)} written keys, got {len(found)}: "
                    f"{json.dumps(found)[:300]}"
                )
            else:
                resp.success()


class ShortTtlUser(CacheUser):
    weight = 1

    @task
    def expire(self):
        key = unique_key("ttl")
        if not self.set(key, random_value(), ttl=SHORT_TTL_S, name=NAMES["set_ttl"]):
            return
        # Read at once: the key may just have expired on a slow machine, so
        # a miss is tolerated; a hit must show a TTL of at most 1 s.
        with self.client.get(path(key), name=NAMES["get_ttl"], catch_response=True) as resp:
            if resp.status_code == 404:
                resp.success()
            elif resp.status_code != 200:
                resp.failure(f"ttl read: status {resp.status_code}")
            else:
                ttl = resp.json().get("ttl")
                if not isinstance(ttl, int) or not 0 <= ttl <= SHORT_TTL_S:
                    resp.failure(f"ttl read: ttl {ttl!r}, expected 0..{SHORT_TTL_S}")
                else:
                    resp.success()
        gevent.sleep(SHORT_TTL_S + 1.5)
        self.get(key, name=NAMES["get_expired"], expect="miss")


class HotKeyUser(CacheUser):
    weight = 1

    def on_start(self):
        self.set(HOT_KEY, {"hot": True}, name=NAMES["set_hot"])

    @task(5)
    def read_hot(self):
        # Many users write it, so only "hit with the right key" is checked.
        self.get(HOT_KEY, name=NAMES["get_hot"])

    @task(1)
    def write_hot(self):
        self.set(HOT_KEY, {"hot": True, "n": random.randrange(1000)}, name=NAMES["set_hot"])
