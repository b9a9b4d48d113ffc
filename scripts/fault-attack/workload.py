"""Workload over RESP through every master, recorded, and its checker.

Registers r0..r{R-1}: SET (unique values) / DEL / GET from many clients at
once (concurrent writers on the same key, through different masters).
Counters c0..: INCR / GET. A list l0 (LPUSH of unique elements) and a hash
h0 (HSET of unique fields).
"""

import random
import threading
import time

from cluster import Resp, RespError

INF = float("inf")
BASE = 1_000_000


class Recorder:
    def __init__(self):
        self.ops = []
        self.lock = threading.Lock()

    def add(self, op):
        with self.lock:
            self.ops.append(op)


class Load:
    def __init__(self, cluster, regs=8, counters=3, reg_threads=6, counter_threads=4,
                 coll_threads=2, mixed=2, mixed_threads=4, seed=1, ttl_threads=0, bulk_threads=0, bulk_keys=3000):
        self.c = cluster
        self.rec = Recorder()
        self.stop = threading.Event()
        self.up = [True] * cluster.nm
        self.regs = [f"r{i}" for i in range(regs)]
        self.counters = [f"c{i}" for i in range(counters)]
        self.threads = []
        self.seed = seed
        for t in range(reg_threads):
            self.threads.append(threading.Thread(target=self.reg_worker, args=(t,), daemon=True))
        for t in range(counter_threads):
            self.threads.append(threading.Thread(target=self.counter_worker, args=(t,), daemon=True))
        for t in range(coll_threads):
            self.threads.append(threading.Thread(target=self.coll_worker, args=(t,), daemon=True))
        self.mixed = [f"m{i}" for i in range(mixed)]
        for t in range(mixed_threads):
            self.threads.append(threading.Thread(target=self.mixed_worker, args=(t,), daemon=True))
        self.bulk = [f"rb{i}" for i in range(bulk_keys)] if bulk_threads else []
        for t in range(bulk_threads):
            self.threads.append(threading.Thread(target=self.bulk_worker, args=(t,), daemon=True))
        for t in range(ttl_threads):
            self.threads.append(threading.Thread(target=self.ttl_worker, args=(t,), daemon=True))

    def start(self):
        for t in self.threads:
            t.start()

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(30)

    def pick(self, rng):
        while True:
            m = rng.randrange(self.c.nm)
            if self.up[m]:
                return m

    def run(self, conns, rng, key, op, *args):
        m = self.pick(rng)
        conn = conns.setdefault(m, Resp(self.c.rports[m], host=self.c.mhosts[m]))
        start = time.monotonic()
        try:
            reply = conn.call(op, key, *args)
            status = "ok"
            if isinstance(reply, RespError):
                msg = str(reply)
                status = "failed" if msg.startswith("WRONGTYPE") else "unknown"
                reply = msg
        except Exception as e:  # noqa
            status, reply = "unknown", f"exc {e}"
            # a master down (connection refused): don't spin
            time.sleep(0.01)
        end = time.monotonic()
        self.rec.add(dict(key=key, op=op, args=list(args), start=start, end=end,
                          status=status, reply=reply, master=m))
        return status, reply

    def reg_worker(self, t):
        rng = random.Random(self.seed * 1000 + t)
        conns = {}
        n = 0
        while not self.stop.is_set():
            key = rng.choice(self.regs)
            roll = rng.random()
            if roll < 0.5:
                n += 1
                self.run(conns, rng, key, "SET", f"{t}:{n}")
            elif roll < 0.65:
                self.run(conns, rng, key, "DEL")
            else:
                self.run(conns, rng, key, "GET")

    def counter_worker(self, t):
        rng = random.Random(self.seed * 1000 + 100 + t)
        conns = {}
        while not self.stop.is_set():
            key = rng.choice(self.counters)
            if rng.random() < 0.8:
                self.run(conns, rng, key, "INCR")
            else:
                self.run(conns, rng, key, "GET")

    def coll_worker(self, t):
        rng = random.Random(self.seed * 1000 + 200 + t)
        conns = {}
        n = 0
        while not self.stop.is_set():
            n += 1
            if rng.random() < 0.6:
                self.run(conns, rng, "l0", "LPUSH", f"{t}:{n}")
            else:
                self.run(conns, rng, "h0", "HSET", f"{t}:{n}", "1")

    def mixed_worker(self, t):
        """SET (unique bases, multiples of 1e6) and INCR on the same keys."""
        rng = random.Random(self.seed * 1000 + 300 + t)
        conns = {}
        n = 0
        while not self.stop.is_set():
            key = rng.choice(self.mixed)
            roll = rng.random()
            if roll < 0.2:
                n += 1
                self.run(conns, rng, key, "SET", str(BASE * (t * 100000 + n)))
            elif roll < 0.8:
                self.run(conns, rng, key, "INCR")
            else:
                self.run(conns, rng, key, "GET")

    def ttl_worker(self, t):
        """One writer per key `x{t}` (so the key's state is known exactly):
        SET with EX/PX, EXPIRE, PERSIST, DEL, then GET/TTL for a while;
        checked by `check_ttl` against expiry windows."""
        rng = random.Random(self.seed * 1000 + 400 + t)
        conns = {}
        key = f"x{t}"
        n = 0

        def watch(secs):
            end = time.monotonic() + secs
            while time.monotonic() < end and not self.stop.is_set():
                self.run(conns, rng, key, "GET" if rng.random() < 0.7 else "TTL")
                time.sleep(0.01)

        while not self.stop.is_set():
            n += 1
            v = f"{t}:{n}"
            roll = rng.random()
            if roll < 0.4:
                # a long TTL made persistent: must never expire
                self.run(conns, rng, key, "SET", v, "EX", "2")
                self.run(conns, rng, key, "PERSIST")
                watch(rng.uniform(0.2, 2.0))
            elif roll < 0.65:
                # a short TTL: must be gone after it (+ clock margin)
                self.run(conns, rng, key, "SET", v, "PX", str(rng.randrange(200, 1200)))
                watch(rng.uniform(0.5, 5.0))
            elif roll < 0.85:
                # no TTL, then EXPIRE, sometimes PERSIST again
                self.run(conns, rng, key, "SET", v)
                self.run(conns, rng, key, "EXPIRE", "1")
                if rng.random() < 0.5:
                    self.run(conns, rng, key, "PERSIST")
                watch(rng.uniform(0.5, 4.5))
            else:
                self.run(conns, rng, key, "SET", v, "EX", "30")
                self.run(conns, rng, key, "DEL")
                watch(rng.uniform(0.3, 2.0))

    def bulk_worker(self, t):
        """SET (unique values) / DEL over many keys `rb*` (registers), so
        snapshots, logs and handoffs carry thousands of keys; read back by
        MGET at the end (`final_reads`)."""
        rng = random.Random(self.seed * 1000 + 500 + t)
        conns = {}
        n = 0
        while not self.stop.is_set():
            key = rng.choice(self.bulk)
            n += 1
            if rng.random() < 0.9:
                self.run(conns, rng, key, "SET", f"b{t}:{n}")
            else:
                self.run(conns, rng, key, "DEL")

    def final_reads(self):
        """Reads every key through every live master, recorded."""
        rng = random.Random(7)
        for m in range(self.c.nm):
            if not self.up[m]:
                continue
            conn = Resp(self.c.rports[m], host=self.c.mhosts[m])
            for key in self.regs + self.counters + self.mixed:
                start = time.monotonic()
                try:
                    r = conn.call("GET", key)
                    st = "ok" if not isinstance(r, RespError) else "unknown"
                except Exception as e:  # noqa
                    r, st = f"exc {e}", "unknown"
                self.rec.add(dict(key=key, op="GET", args=[], start=start, end=time.monotonic(),
                                  status=st, reply=r if st == "ok" else str(r), master=m, final=True))
            for i in range(0, len(self.bulk), 100):
                keys = self.bulk[i:i + 100]
                start = time.monotonic()
                try:
                    r = conn.call("MGET", *keys)
                    st = "ok" if isinstance(r, list) and len(r) == len(keys) else "unknown"
                except Exception as e:  # noqa
                    r, st = f"exc {e}", "unknown"
                end = time.monotonic()
                for j, key in enumerate(keys):
                    self.rec.add(dict(key=key, op="GET", args=[], start=start, end=end, status=st,
                                      reply=r[j] if st == "ok" else str(r), master=m, final=True))
            for key, cmd in (("l0", ["LRANGE", "l0", "0", "-1"]), ("h0", ["HKEYS", "h0"])):
                start = time.monotonic()
                try:
                    r = conn.call(*cmd)
                    st = "ok" if not isinstance(r, RespError) else "unknown"
                except Exception as e:  # noqa
                    r, st = f"exc {e}", "unknown"
                self.rec.add(dict(key=key, op=cmd[0], args=cmd[2:], start=start, end=time.monotonic(),
                                  status=st, reply=r, master=m, final=True))


# ---------------- checker ----------------

def check(ops, t0=0.0, strict=False):
    """The anomalies of a history. `strict`: only what acknowledged
    operations did counts as having happened; a read that saw an effect
    before its operation was acknowledged is then no evidence of it, so a
    later read that does not see it is no anomaly (docs/replication.md,
    "The promise", allows that: the command's leader was lost while it
    shipped). An anomaly found with `strict` is a contract violation; one
    found only without it is such an early read."""
    anomalies = []
    by_key = {}
    for op in ops:
        by_key.setdefault(op["key"], []).append(op)
    for key, kops in by_key.items():
        if key.startswith("r"):
            anomalies += check_register(key, kops, strict)
        elif key.startswith("m"):
            anomalies += check_mixed(key, kops, strict)
        elif key.startswith("c"):
            anomalies += check_counter(key, kops, strict)
        elif key.startswith("x"):
            anomalies += check_ttl(key, kops)
        else:
            anomalies += check_collection(key, kops)
    for a in anomalies:
        a["_t0"] = t0
    return anomalies


def report(ops, t0=0.0, limit=30):
    """Prints the contract violations (strict anomalies), then the early
    reads (anomalies only without `strict`; allowed, listed apart)."""
    bugs = check(ops, t0, strict=True)
    seen = {(a["kind"], id(a.get("read"))) for a in bugs}
    early = [a for a in check(ops, t0) if (a["kind"], id(a.get("read"))) not in seen]
    for title, found in (("ANOMALIES", bugs), ("EARLY READS (allowed: an effect seen before "
                                                "its acknowledgement, then not)", early)):
        print(f"{title}: {len(found)}")
        for a in found[:limit]:
            print("---", a["kind"])
            for k in ("read", "write", "by", "prior", "other"):
                if a.get(k):
                    print(f"   {k}: {fmt(a[k], t0)[:300]}")
            for k in ("zones", "need", "started", "acked", "unknown", "detail", "count"):
                if k in a:
                    print(f"   {k}: {a[k]}")
    return bugs


def fmt(op, t0):
    return (f"{op['op']} {op['key']} {op['args']} m{op['master']+1} "
            f"[{op['start']-t0:.3f},{op['end']-t0:.3f}] {op['status']} -> {op['reply']!r}")


def evidence(r, strict):
    """Whether read `r` shows its value took effect by its end: any read
    does, but with `strict` only the answer of an acknowledged command
    (a mixed key's INCR) does."""
    return not strict or r.get("incr")


def check_register(key, kops, strict=False):
    out = []
    muts = [o for o in kops if o["op"] in ("SET", "DEL") and o["status"] != "failed"]
    reads = [o for o in kops if o["op"] == "GET" and o["status"] == "ok"]
    writes = {}
    for o in muts:
        if o["op"] == "SET":
            writes[o["args"][0]] = o
    # effective end of a write: its ack, or the end of the first read that saw it
    eff_end = {}
    for v, w in writes.items():
        eff_end[v] = w["end"] if w["status"] == "ok" else INF
    for r in reads:
        v = r["reply"]
        if v is not None and v in eff_end and evidence(r, strict):
            eff_end[v] = min(eff_end[v], r["end"])
    import bisect
    acked = sorted([o for o in muts if o["status"] == "ok"], key=lambda o: o["start"])
    a_starts = [m["start"] for m in acked]
    suf = [None] * (len(acked) + 1)  # suffix: op with the least end among starts >= i
    for i in range(len(acked) - 1, -1, -1):
        nxt = suf[i + 1]
        suf[i] = acked[i] if nxt is None or acked[i]["end"] < nxt["end"] else nxt

    def superseded(after, before_start):
        # an acked mutation that started after `after` and ended before `before_start`
        i = bisect.bisect_right(a_starts, after)
        m = suf[i]
        if m is not None and m["end"] < before_start:
            return m
        return None

    dels = sorted([d for d in muts if d["op"] == "DEL"], key=lambda d: d["start"])
    d_starts = [d["start"] for d in dels]
    pre_max = []
    mx = -INF
    for d in dels:
        mx = max(mx, d["end"] if d["status"] == "ok" else INF)
        pre_max.append(mx)

    for r in reads:
        v = r["reply"]
        if v is not None:
            w = writes.get(v)
            if w is None:
                out.append(dict(kind="phantom", read=r))
                continue
            if w["start"] > r["end"]:
                out.append(dict(kind="future-read", read=r, write=w))
                continue
            m = superseded(eff_end[v], r["start"])
            if m is not None:
                out.append(dict(kind="stale-value" if m["op"] == "SET" else "resurrected-delete",
                                read=r, write=w, by=m))
        else:
            # absent: initial state, or a delete not superseded before r began
            ok = superseded(-INF, r["start"]) is None
            i = bisect.bisect_left(d_starts, r["end"]) - 1
            if not ok and i >= 0 and superseded(pre_max[i], r["start"]) is None:
                ok = True
            if not ok:
                out.append(dict(kind="stale-absent (lost write)", read=r,
                                by=superseded(-INF, r["start"])))
    # forward zones of distinct values must not overlap (no flip-flop)
    clusters = {}
    for r in reads:
        if r["reply"] is not None and r["reply"] in writes:
            clusters.setdefault(r["reply"], []).append(r)
    zones = []
    backward = []
    for v, rs in clusters.items():
        w = writes[v]
        ends = [eff_end[v]] + [r["end"] for r in rs if evidence(r, strict)]
        starts = [w["start"]] + [r["start"] for r in rs]
        lo, hi = min(ends), max(starts)
        if lo < hi:
            zones.append((lo, hi, v))
        else:
            backward.append((hi, lo, v))
    # Gibbons-Korach: a backward zone inside another value's forward zone
    import bisect as _b
    fz = sorted(zones)
    fstarts = [z[0] for z in fz]
    for (bs, be, bv) in backward:
        i = _b.bisect_left(fstarts, bs) - 1
        # forward zones may overlap (reported below): look back a little
        for j in range(i, max(-1, i - 8), -1):
            fs, fe, fv = fz[j]
            if fv != bv and fs < bs and be < fe:
                out.append(dict(kind="non-monotonic (backward zone inside forward zone)",
                                zones=((fs, fe, fv), (bs, be, bv)),
                                read=max(clusters[fv], key=lambda r: r["start"])))
                break
    zones.sort()
    reach = None
    for z in zones:
        if reach is not None and reach[1] > z[0]:
            out.append(dict(kind="flip-flop (forward zones overlap)", zones=(reach, z),
                            read=max(clusters[z[2]], key=lambda r: r["start"])))
        if reach is None or z[1] > reach[1]:
            reach = z
    return out


def check_counter(key, kops, strict=False):
    out = []
    incrs = [o for o in kops if o["op"] == "INCR"]
    acked = [o for o in incrs if o["status"] == "ok"]
    unknown = [o for o in incrs if o["status"] == "unknown"]
    answers = {}
    for o in acked:
        if o["reply"] in answers:
            out.append(dict(kind="duplicate INCR answer", read=o, other=answers[o["reply"]]))
        answers[o["reply"]] = o
    reads = [o for o in kops if o["op"] == "GET" and o["status"] == "ok"]
    acked_by_end = sorted(acked, key=lambda o: o["end"])
    obs = sorted([(o["end"], o["reply"], o) for o in acked] +
                 [(o["end"], int(o["reply"] or 0), o) for o in reads if not strict],
                 key=lambda x: x[0])
    # every observation (read or INCR answer) must be >= everything observed before it began
    best = []  # prefix maxima of obs by end
    mx, mo = -1, None
    for e, v, o in obs:
        if v > mx:
            mx, mo = v, o
        best.append((e, mx, mo))
    import bisect
    ends = [b[0] for b in best]
    inc_starts = sorted(x["start"] for x in incrs if x["status"] != "failed")
    for o in reads + acked:
        v = o["reply"] if o["op"] == "INCR" else int(o["reply"] or 0)
        i = bisect.bisect_left(ends, o["start"]) - 1
        if i >= 0:
            need = best[i][1]
            if o["op"] == "INCR":
                need += 1
            if v < need:
                out.append(dict(kind="counter went back", read=o, prior=best[i][2], need=need))
        started = bisect.bisect_left(inc_starts, o["end"])
        if v > started:
            out.append(dict(kind="counter above INCRs started", read=o, started=started))
    finals = [o for o in reads if o.get("final")]
    for f in finals:
        v = int(f["reply"] or 0)
        if v < len(acked):
            out.append(dict(kind="lost INCR (final below acked count)", read=f, acked=len(acked),
                            unknown=len(unknown)))
    return out


def check_collection(key, kops):
    out = []
    finals = [o for o in kops if o.get("final") and o["status"] == "ok"]
    adds = [o for o in kops if o["op"] in ("LPUSH", "HSET")]
    acked = {o["args"][0] for o in adds if o["status"] == "ok"}
    tried = {o["args"][0] for o in adds if o["status"] != "failed"}
    for f in finals:
        got = f["reply"] or []
        if len(got) != len(set(got)):
            dup = [x for x in set(got) if got.count(x) > 1]
            out.append(dict(kind=f"{key}: duplicate elements", read=f, detail=dup[:10]))
        missing = acked - set(got)
        if missing:
            out.append(dict(kind=f"{key}: lost acknowledged adds", read=f,
                            detail=sorted(missing)[:20], count=len(missing)))
        extra = set(got) - tried
        if extra:
            out.append(dict(kind=f"{key}: phantom elements", read=f, detail=sorted(extra)[:10]))
    return out


def summary(ops):
    s = {}
    for o in ops:
        k = (o["op"], o["status"])
        s[k] = s.get(k, 0) + 1
    return s


def check_mixed(key, kops, strict=False):
    """SETs of unique bases and INCRs: each observation x (a GET, an INCR's
    answer) is base x//BASE*BASE plus k increments. Bases are checked as a
    register (zones), and k as a counter within a base."""
    out = []
    conv = []
    for o in kops:
        o2 = dict(o)
        if o["op"] == "INCR":
            if o["status"] == "ok" and isinstance(o["reply"], int):
                x = o["reply"]
                o2["op"] = "GET"
                o2["reply"] = str(x // BASE * BASE) if x >= BASE else None
                o2["k"] = x % BASE
                o2["incr"] = True
                conv.append(o2)
            continue
        if o["op"] == "GET" and o["status"] == "ok":
            x = int(o["reply"]) if o["reply"] is not None else 0
            o2["reply"] = str(x // BASE * BASE) if x >= BASE else None
            o2["k"] = x % BASE
        conv.append(o2)
    for a in check_register(key, conv, strict):
        a["kind"] = "mixed " + a["kind"]
        out.append(a)
    # within a base: k never goes back in real time; INCR answers unique
    obs = [o for o in conv if o["op"] == "GET" and o["status"] == "ok" and "k" in o]
    seen = {}
    for o in obs:
        if o.get("incr"):
            tag = (o["reply"], o["k"])
            if tag in seen:
                out.append(dict(kind="mixed duplicate INCR answer", read=o, other=seen[tag]))
            seen[tag] = o
    byb = {}
    for o in obs:
        byb.setdefault(o["reply"], []).append(o)
    import bisect
    for b, lst in byb.items():
        lst.sort(key=lambda o: o["end"])
        ends = [o["end"] for o in lst]
        best = []
        mx, mo = -1, None
        for o in lst:
            if o["k"] > mx and evidence(o, strict):
                mx, mo = o["k"], o
            best.append((mx, mo))
        for o in lst:
            i = bisect.bisect_left(ends, o["start"]) - 1
            if i >= 0:
                need = best[i][0] + (1 if o.get("incr") else 0)
                if o["k"] < need:
                    out.append(dict(kind="mixed counter went back within a base", read=o,
                                    prior=best[i][1]))
    return out


TTL_MARGIN = 2.0  # s: masters' clocks are at 0 / +1.5 / -1.5 s


def check_ttl(key, kops):
    """A key with one writer (ttl_worker), so its operations are
    sequential: the state is modelled exactly, expiry deadlines as a
    window [start + ttl - margin, end + ttl + margin]. An operation with
    no answer makes the state unknown until the next acknowledged SET or
    DEL."""
    out = []
    state = "absent"  # absent | value | unknown
    val, dl = None, None  # dl: None (persistent) or (lo, hi)

    def bad(kind, o, **kw):
        out.append(dict(kind=f"ttl {kind}", read=o,
                        detail=f"model: {state} {val!r} deadline {dl}", **kw))

    def ttl_of(o):
        a = o["args"]
        for i, x in enumerate(a):
            if x.upper() == "EX":
                return float(a[i + 1])
            if x.upper() == "PX":
                return float(a[i + 1]) / 1000
        return None

    for o in sorted(kops, key=lambda o: o["start"]):
        op, st, rep = o["op"], o["status"], o["reply"]
        # a deadline surely passed before this op began: the key is gone
        if state == "value" and dl is not None and o["start"] > dl[1]:
            expired_surely = True
        else:
            expired_surely = False
        live_surely = state == "value" and (dl is None or o["end"] < dl[0])
        if st != "ok":
            if op in ("GET", "TTL"):
                continue
            state, val, dl = "unknown", None, None
            continue
        if op == "SET":
            t = ttl_of(o)
            state, val = "value", o["args"][0]
            dl = None if t is None else (o["start"] + t - TTL_MARGIN, o["end"] + t + TTL_MARGIN)
        elif op == "DEL":
            state, val, dl = "absent", None, None
        elif state == "unknown":
            continue
        elif op == "GET":
            if rep is not None and (state == "absent" or expired_surely):
                bad("read a value deleted or expired" + (" (expired key back)" if expired_surely else ""), o)
            elif rep is not None and rep != val:
                bad("read another value", o)
            elif rep is None and live_surely:
                bad("read nothing while the key must be live (lost write / undone PERSIST)", o)
            elif rep is None and state == "value":
                state, val, dl = "absent", None, None  # it expired in its window
        elif op == "TTL":
            if rep == -2:
                if live_surely:
                    bad("TTL -2 while the key must be live", o)
                elif state == "value":
                    state, val, dl = "absent", None, None
            elif state == "absent" or expired_surely:
                bad(f"TTL {rep} of a key deleted or expired", o)
            elif rep == -1 and dl is not None:
                bad("TTL -1 while the key has a TTL", o)
            elif rep != -1 and dl is None:
                bad(f"TTL {rep} while the key is persistent (undone PERSIST)", o)
        elif op == "PERSIST":
            if rep == 1:
                if state == "absent" or expired_surely:
                    bad("PERSIST 1 on a key deleted or expired", o)
                elif dl is None:
                    bad("PERSIST 1 on a key with no TTL", o)
                dl = None
            else:
                if dl is not None and o["end"] < dl[0]:
                    bad("PERSIST 0 while the key had a live TTL", o)
                if state == "value" and dl is not None:
                    state, val, dl = "absent", None, None
        elif op == "EXPIRE":
            t = float(o["args"][0])
            if rep == 1:
                if state == "absent" or expired_surely:
                    bad("EXPIRE 1 on a key deleted or expired", o)
                state = "value"
                dl = (o["start"] + t - TTL_MARGIN, o["end"] + t + TTL_MARGIN)
            else:
                if live_surely:
                    bad("EXPIRE 0 while the key must be live", o)
                state, val, dl = "absent", None, None
    return out
