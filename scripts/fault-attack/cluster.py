"""Throwaway fault-attack harness: a real distcache cluster on loopback
ports from BASE (run.py), driven over RESP, with faults injected by signals
(and, with a partition.Net, by cutting the network between processes).

Not part of the test suite; see the report for what it found.
"""

import os
import random
import shutil
import signal
import socket
import subprocess
import threading
import time
import json
import urllib.request

BIN = os.environ.get(
    "DISTCACHE_BIN",
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "target", "release", "distcache"),
)


def http_get(url, timeout=3):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except Exception as e:  # noqa
        return None, str(e)


def http(method, url, body=None, timeout=10):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except Exception as e:  # noqa
        return None, str(e)


class Proc:
    def __init__(self, name, args, env, logdir, prefix=()):
        self.name, self.args, self.env, self.logdir = name, args, env, logdir
        self.prefix = list(prefix)  # e.g. `ip netns exec NS`, which execs the binary in place
        self.p = None
        self.n = 0
        self.start()

    def start(self):
        self.n += 1
        log = open(os.path.join(self.logdir, f"{self.name}.{self.n}.log"), "w")
        e = {"PATH": os.environ["PATH"], "RUST_LOG": "info"}
        e.update(self.env)
        self.p = subprocess.Popen(self.prefix + [BIN] + self.args, env=e, stdout=log,
                                  stderr=subprocess.STDOUT, cwd=self.logdir,
                                  start_new_session=True)

    def sig(self, s):
        if self.p and self.p.poll() is None:
            os.kill(self.p.pid, s)

    def kill(self):
        self.sig(signal.SIGKILL)
        if self.p:
            self.p.wait()

    def term(self, wait=30):
        self.sig(signal.SIGTERM)
        try:
            self.p.wait(wait)
        except subprocess.TimeoutExpired:
            self.kill()

    def alive(self):
        return self.p is not None and self.p.poll() is None


class Cluster:
    def __init__(self, root, masters=3, auxes=4, replicas=2, master_env_each=None,
                 aux_env=None, master_env=None, base=19100, net=None):
        """With `net` (a partition.Net), every process runs in a network
        namespace of its own, at its own address; else all on 127.0.0.1."""
        self.root = root
        self.net = net
        shutil.rmtree(root, ignore_errors=True)
        os.makedirs(root)
        self.base = base
        self.nm = masters
        self.replicas = replicas
        self.aux_env = aux_env or {}
        self.mports = [base + i for i in range(masters)]
        self.rports = [base + 20 + i for i in range(masters)]
        self.masters = []
        self.auxes = {}
        self.mhosts = [self.place(f"master-{i+1}", 11 + i) for i in range(masters)]
        for i in range(masters):
            peers = ",".join(f"{self.mhosts[j]}:{p}" for j, p in enumerate(self.mports) if j != i)
            env = {
                "PORT": str(self.mports[i]), "BIND_ADDR": self.mhosts[i],
                "NODE_ID": f"master-{i+1}", "MASTER_PEERS": peers,
                "REPLICAS": str(replicas), "HEALTH_CHECK_INTERVAL": "0.2",
                "REQUEST_TIMEOUT_MS": "1000",
                "BACKUP_DIR": f"{root}/master-{i+1}", "RAFT_DIR": f"{root}/master-{i+1}-raft",
                "RESP_PORT": str(self.rports[i]),
            }
            env.update(master_env or {})
            if master_env_each and i < len(master_env_each):
                env.update(master_env_each[i])
            self.masters.append(Proc(f"master-{i+1}", ["master"], env, root,
                                     self.prefix(f"master-{i+1}")))
        try:
            for i in range(masters):
                wait_until(30, f"master {i} up",
                           lambda i=i: http_get(self.murl(i, "/health"))[0] is not None)
            for i in range(auxes):
                self.add_aux(f"aux-{i+1}")
            self.wait_up(auxes)
        except BaseException:
            self.stop_all()
            raise

    def place(self, name, octet):
        """The address process `name` binds to (in its namespace, with a net)."""
        return self.net.add(name, octet) if self.net else "127.0.0.1"

    def prefix(self, name):
        return self.net.prefix(name) if self.net else []

    def murl(self, i, path):
        return f"http://{self.mhosts[i]}:{self.mports[i]}{path}"

    def add_aux(self, name, extra=None):
        idx = int(name.split("-")[1])
        port = self.base + 100 + idx * 2
        env = {
            "PORT": str(port), "DATA_PORT": str(port + 1),
            "BIND_ADDR": self.place(name, 20 + idx), "NODE_ID": name,
            "MASTER_ADDRESS": ",".join(f"{h}:{p}" for h, p in zip(self.mhosts, self.mports)),
            "CACHE_SIZE": "100000", "BACKUP_DIR": f"{self.root}/{name}",
            "BACKUP_INTERVAL": "1",
        }
        env.update(self.aux_env)
        env.update(extra or {})
        self.auxes[name] = Proc(name, ["aux"], env, self.root, self.prefix(name))

    def nodes(self, m=None):
        for i in ([m] if m is not None else range(self.nm)):
            st, body = http_get(self.murl(i, "/nodes"))
            if st == 200:
                return json.loads(body)
        return None

    def ring(self, m):
        st, body = http_get(self.murl(m, "/ring"))
        return json.loads(body) if st == 200 else None

    def wait_up(self, n, limit=60):
        def ok():
            nodes = self.nodes()
            if nodes is None:
                return False
            lst = nodes if isinstance(nodes, list) else nodes.get("nodes", [])
            return sum(1 for x in lst if x.get("state") == "up") >= n
        wait_until(limit, f"{n} auxes up", ok)

    def settled(self, m):
        r = self.ring(m)
        if r is None:
            return False
        return r.get("rebalancing") is False

    def wait_settled(self, masters=None, limit=60):
        ms = masters if masters is not None else [i for i in range(self.nm) if self.masters[i].alive()]
        wait_until(limit, "settled", lambda: all(self.settled(m) for m in ms))

    def map_leader(self):
        for i in range(self.nm):
            st, body = http_get(self.murl(i, "/health"))
            if st == 200:
                h = json.loads(body)
                for k in ("raft_leader", "leader", "map_leader"):
                    if k in h:
                        return h[k]
                return h
        return None

    def stop_all(self):
        for p in list(self.auxes.values()) + self.masters:
            p.sig(signal.SIGCONT)
            p.kill()


def leader(c):
    """The index of the live master the others name as the map's Raft
    leader, or None."""
    for i in range(c.nm):
        if not c.masters[i].alive():
            continue
        st, body = http_get(c.murl(i, "/health"), timeout=1)
        if st == 200:
            lid = json.loads(body).get("map", {}).get("leader") or ""
            for j in range(c.nm):
                if lid.endswith(f":{c.mports[j]}"):
                    return j
    return None


def wait_until(limit, what, cond):
    end = time.time() + limit
    while time.time() < end:
        try:
            if cond():
                return
        except Exception:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"timed out waiting for {what}")


# ---- a minimal RESP client ----

class RespError(Exception):
    pass


class Resp:
    def __init__(self, port, timeout=5.0, host="127.0.0.1"):
        self.host, self.port = host, port
        self.timeout = timeout
        self.s = None
        self.buf = b""

    def connect(self):
        self.s = socket.create_connection((self.host, self.port), timeout=self.timeout)
        self.s.settimeout(self.timeout)
        self.buf = b""

    def close(self):
        if self.s:
            try:
                self.s.close()
            except Exception:
                pass
        self.s = None

    def _line(self):
        while b"\r\n" not in self.buf:
            d = self.s.recv(65536)
            if not d:
                raise ConnectionError("closed")
            self.buf += d
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _n(self, n):
        while len(self.buf) < n + 2:
            d = self.s.recv(65536)
            if not d:
                raise ConnectionError("closed")
            self.buf += d
        out, self.buf = self.buf[:n], self.buf[n + 2:]
        return out

    def _read(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            return RespError(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            return None if n < 0 else self._n(n).decode()
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self._read() for _ in range(n)]
        raise ConnectionError(f"odd reply {line!r}")

    def call(self, *args):
        """Returns the reply; raises on connection trouble (outcome unknown)."""
        if self.s is None:
            self.connect()
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = str(a).encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        try:
            self.s.sendall(out)
            return self._read()
        except Exception:
            self.close()
            raise
