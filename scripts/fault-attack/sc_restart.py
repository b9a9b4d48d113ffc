"""Restart scenarios (fault-attack-3): whole-cluster and group crashes,
rolling restarts of the masters, a master stopped past its lease while the
map changes, repeated SIGKILLs of one auxiliary while another leaves.
Processes only (no namespaces); run.py runs them with the TTL workload
(`ttl_worker`, keys x0, x1) on top of the usual one.

Each scenario gets the cluster `c`, the load and `log`.
"""

import os
import random
import signal
import time

from cluster import http_get, leader, wait_until


def mname(i):
    return f"master-{i+1}"


def rng_of(load):
    return random.Random(load.seed * 104729)


def kill_now(procs):
    """SIGKILL every process first, then reap them: all die within ~1 ms."""
    for p in procs:
        p.sig(signal.SIGCONT)
        p.sig(signal.SIGKILL)
    for p in procs:
        if p.p:
            p.p.wait()


def wait_masters(c, idx, limit=60):
    for i in idx:
        wait_until(limit, f"{mname(i)} back", lambda i=i: http_get(c.murl(i, "/health"), timeout=1)[0] is not None)


def wait_serving(c, log, limit=60):
    """Until a GET through every master answers (not CLUSTERDOWN)."""
    from cluster import Resp, RespError
    t = time.monotonic()

    def ok():
        for i in range(c.nm):
            try:
                r = Resp(c.rports[i], host=c.mhosts[i], timeout=2)
                x = r.call("GET", "probe")
                r.close()
                if isinstance(x, RespError):
                    return False
            except Exception:
                return False
        return True
    try:
        wait_until(limit, "serving", ok)
        log(f"serving again after {time.monotonic() - t:.1f}s")
    except RuntimeError as e:
        log(f"not serving: {e}")


def crash(c, load, log, masters, auxes, down, rounds=2, gap=3.0):
    rng = rng_of(load)
    for rnd in range(rounds):
        time.sleep(gap + rng.uniform(0, 1.5))
        procs = [c.masters[i] for i in masters] + [c.auxes[a] for a in auxes]
        log(f"SIGKILL {[mname(i) for i in masters] + list(auxes)} at once; restart after {down}s")
        kill_now(procs)
        time.sleep(down)
        for a in auxes:
            c.auxes[a].start()
        for i in masters:
            c.masters[i].start()
        log("restarted")
        wait_masters(c, masters)
        wait_serving(c, log)
    time.sleep(3 if rounds > 1 else 0)


def sc3_crash_all(c, load, log):
    """Every master and every auxiliary SIGKILLed at once mid-load,
    restarted 0.5 s later from their BACKUP_DIR / RAFT_DIR; twice."""
    crash(c, load, log, range(c.nm), list(c.auxes), 0.5)


def sc3_crash_all_instant(c, load, log):
    """As crash_all, restarted at once (no pause), three times."""
    crash(c, load, log, range(c.nm), list(c.auxes), 0.0, rounds=3)


def sc3_crash_auxes(c, load, log):
    """Every auxiliary SIGKILLed at once (masters live), restarted 0.3 s
    later; twice, then once with a 2 s pause (judged down meanwhile)."""
    crash(c, load, log, [], list(c.auxes), 0.3)
    crash(c, load, log, [], list(c.auxes), 2.0, rounds=1)


def sc3_crash_auxes_many(c, load, log):
    """Every auxiliary SIGKILLed at once and restarted at once, eight times
    0.6-1.9 s apart (snapshots every second: kills land in and between
    snapshots and log rotations)."""
    rng = rng_of(load)
    for rnd in range(8):
        crash(c, load, log, [], list(c.auxes), 0.0, rounds=1, gap=rng.uniform(0.6, 1.9))


def sc3_crash_all_many(c, load, log):
    """Everything SIGKILLed at once and restarted at once, six times, as
    soon as every master serves again plus 0.3-1.5 s."""
    rng = rng_of(load)
    for rnd in range(6):
        crash(c, load, log, range(c.nm), list(c.auxes), 0.0, rounds=1, gap=rng.uniform(0.3, 1.5))


def sc3_crash_masters(c, load, log):
    """Every master SIGKILLed at once (auxiliaries live), restarted 0.5 s
    later; twice, then once with a 3 s pause."""
    crash(c, load, log, range(c.nm), [], 0.5)
    crash(c, load, log, range(c.nm), [], 3.0, rounds=1)


def sc3_crash_all_mid_join(c, load, log):
    """A join, and 0.3 s later (mid-rebalance) every process SIGKILLed;
    restarted; then a graceful leave and a crash 0.2 s into it."""
    time.sleep(2)
    log("join aux-5")
    c.add_aux("aux-5")
    time.sleep(0.3)
    log("SIGKILL everything at once")
    kill_now(c.masters + list(c.auxes.values()))
    time.sleep(0.5)
    for a in c.auxes.values():
        a.start()
    for m in c.masters:
        m.start()
    log("restarted")
    wait_masters(c, range(c.nm))
    wait_serving(c, log)
    time.sleep(3)
    log("SIGTERM aux-1 (leave)")
    c.auxes["aux-1"].sig(signal.SIGTERM)
    time.sleep(0.2)
    procs = c.masters + [a for n, a in c.auxes.items() if n != "aux-1"]
    log("SIGKILL everything else at once (aux-1 is leaving)")
    kill_now(procs)
    time.sleep(0.5)
    for n, a in c.auxes.items():
        if n != "aux-1":
            a.start()
    for m in c.masters:
        m.start()
    log("restarted (aux-1 not)")
    wait_masters(c, range(c.nm))
    wait_serving(c, log)
    time.sleep(3)


def rolling(c, load, log, how):
    """Each master in turn (the Raft leader in the middle of the order),
    while aux-5 joins and later aux-1 leaves."""
    ld = leader(c)
    order = [(ld + 1) % c.nm, ld, (ld + 2) % c.nm]
    for k, i in enumerate(order):
        time.sleep(1.5)
        if k == 0:
            log("join aux-5")
            c.add_aux("aux-5")
            time.sleep(0.2)
        if k == 2:
            log("SIGTERM aux-1 (leave)")
            c.auxes["aux-1"].sig(signal.SIGTERM)
            time.sleep(0.2)
        log(f"{how} {mname(i)} (leader: {mname(leader(c) if leader(c) is not None else -1)})")
        load.up[i] = False
        if how == "SIGKILL":
            c.masters[i].kill()
        else:
            c.masters[i].term()
        time.sleep(0.5)
        c.masters[i].start()
        wait_masters(c, [i])
        load.up[i] = True
        log(f"{mname(i)} back")
        time.sleep(1.5)
    time.sleep(2)


def sc3_rolling_masters_term(c, load, log):
    """Rolling restart of every master (SIGTERM, 0.5 s down) under load,
    the leader included, while an auxiliary joins and another leaves."""
    rolling(c, load, log, "SIGTERM")


def sc3_rolling_masters_kill(c, load, log):
    """As rolling_masters_term, with SIGKILL."""
    rolling(c, load, log, "SIGKILL")


def sc3_rolling_masters_kill_fast(c, load, log):
    """SIGKILL + immediate restart of each master in turn, with no pause
    between masters (the next one killed as soon as the previous answers
    /health), twice around; clients keep using the killed master."""
    ld = leader(c)
    time.sleep(2)
    log("join aux-5")
    c.add_aux("aux-5")
    for rnd in range(2):
        for i in [ld, (ld + 1) % c.nm, (ld + 2) % c.nm]:
            log(f"SIGKILL {mname(i)}, restart at once")
            c.masters[i].kill()
            c.masters[i].start()
            wait_masters(c, [i])
            time.sleep(0.3)
        if rnd == 0:
            log("SIGTERM aux-2 (leave)")
            c.auxes["aux-2"].sig(signal.SIGTERM)
    time.sleep(3)


def sc3_master_stop_lease(c, load, log):
    """A non-leader master SIGSTOPped for 3-4 s (past its 1.5 s lease) while
    an auxiliary joins / leaves / is SIGKILLed; clients keep sending to it
    (their requests wait); SIGCONT: it must not serve what it held before."""
    rng = rng_of(load)
    changes = [("join", "aux-5"), ("leave", "aux-1"), ("kill", "aux-3"), ("join", "aux-6")]
    for what, name in changes:
        time.sleep(2)
        ld = leader(c)
        x = (ld + 1 + rng.randrange(2)) % c.nm
        d = rng.uniform(3.0, 4.0)
        log(f"SIGSTOP {mname(x)} (leader {mname(ld)}) for {d:.1f}s; {what} {name}")
        c.masters[x].sig(signal.SIGSTOP)
        time.sleep(0.2)
        if what == "join":
            c.add_aux(name)
        elif what == "leave":
            c.auxes[name].sig(signal.SIGTERM)
        else:
            c.auxes[name].kill()
        time.sleep(d - 0.2)
        c.masters[x].sig(signal.SIGCONT)
        log(f"SIGCONT {mname(x)}")
        if what == "kill":
            time.sleep(1)
            log(f"restart {name}")
            c.auxes[name].start()
    time.sleep(3)


def sc3_aux_kill_repeat_leave(c, load, log):
    """aux-2 SIGKILLed and restarted (at once, 0.1 s, 0.4 s) every 0.7 s, ten
    times, while aux-1 leaves gracefully and aux-5 joins."""
    time.sleep(2)
    for k in range(10):
        if k == 2:
            log("SIGTERM aux-1 (leave)")
            c.auxes["aux-1"].sig(signal.SIGTERM)
        if k == 5:
            log("join aux-5")
            c.add_aux("aux-5")
        down = [0.0, 0.1, 0.4][k % 3]
        log(f"SIGKILL aux-2, restart after {down}s")
        c.auxes["aux-2"].kill()
        time.sleep(down)
        c.auxes["aux-2"].start()
        time.sleep(0.7)
    time.sleep(3)




def sc3_aux_down_ttl(c, load, log):
    """An auxiliary SIGKILLed and kept down 3.5 s (judged down, its keys
    move), then restarted from its BACKUP_DIR; three times. With the TTL
    keys: a key overwritten (or EXPIREd) while it was away by a write that
    expired before it came back (finding 5)."""
    for name in ["aux-2", "aux-3", "aux-1"]:
        time.sleep(2)
        log(f"SIGKILL {name}, restart after 3.5s")
        c.auxes[name].kill()
        time.sleep(3.5)
        c.auxes[name].start()
        log(f"restarted {name}")
    time.sleep(3)


def sc3_leader_stop_long(c, load, log):
    """The map's Raft leader SIGSTOPped 5-6 s (the others elect a new one),
    clients still sending to it, then SIGCONT; three times. Its health
    probes in flight time out when it resumes (finding 6 without a
    partition?)."""
    rng = rng_of(load)
    for rnd in range(3):
        time.sleep(2.5)
        ld = leader(c)
        if ld is None:
            log("no leader; skip")
            continue
        d = rng.uniform(5.0, 6.0)
        log(f"SIGSTOP map leader {mname(ld)} for {d:.1f}s")
        c.masters[ld].sig(signal.SIGSTOP)
        time.sleep(d)
        c.masters[ld].sig(signal.SIGCONT)
        log(f"SIGCONT {mname(ld)}")
    time.sleep(3)


def sc3_restore_under_load(c, load, log):
    """POST /backup, then joins, a leave and a SIGKILL meanwhile, and
    POST /restore of that (older) backup under load, twice (mid-rebalance
    the second time): the restore sends each entry to its replicas in
    today's ring at its old version, which must lose to every newer write
    and delete (docs/backups.md; master/backup.rs `place`)."""
    from cluster import http
    import json as _json
    time.sleep(1.5)
    st, body = http("POST", c.murl(0, "/backup"), {}, timeout=60)
    log(f"backup: {st} {body[:200]}")
    bid = _json.loads(body).get("backup") if st == 200 else None
    time.sleep(1.5)
    log("join aux-5")
    c.add_aux("aux-5")
    time.sleep(2)
    log("SIGTERM aux-1 (leave)")
    c.auxes["aux-1"].sig(signal.SIGTERM)
    time.sleep(2.5)
    st, body = http("POST", c.murl(0, "/restore"), {"backup": bid} if bid else {}, timeout=60)
    log(f"restore: {st} {body[:300]}")
    time.sleep(1.5)
    log("join aux-6; restore at once (mid-rebalance)")
    c.add_aux("aux-6")
    time.sleep(0.3)
    st, body = http("POST", c.murl(0, "/restore"), {"backup": bid} if bid else {}, timeout=60)
    log(f"restore: {st} {body[:300]}")
    time.sleep(1.0)
    log("SIGKILL aux-2, restart after 0.5s; restore again")
    c.auxes["aux-2"].kill()
    time.sleep(0.5)
    c.auxes["aux-2"].start()
    st, body = http("POST", c.murl(0, "/restore"), {"backup": bid} if bid else {}, timeout=60)
    log(f"restore: {st} {body[:300]}")
    time.sleep(3)


SCENARIOS = {k[4:]: v for k, v in globals().items() if k.startswith("sc3_")}
