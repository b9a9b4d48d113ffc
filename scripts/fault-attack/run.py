"""Runs one fault scenario under the RESP workload and checks the history.

usage: python3 run.py SCENARIO [seed]
"""

import json
import os
import signal
import sys
import time

from cluster import Cluster, http_get, leader, wait_until
from partition import Net
from sc_partition import SCENARIOS as PARTITION_SCENARIOS
from sc_restart import SCENARIOS as RESTART_SCENARIOS
from sc_partition3 import SCENARIOS as PARTITION3_SCENARIOS
from workload import Load, report, summary

SKEW = [] if os.environ.get("NOSKEW") else [{}, {"CLOCK_OFFSET_MS": "1500"}, {"CLOCK_OFFSET_MS": "-1500"}]


def sc_none(c, load, log):
    """No fault: concurrent writers on the same keys through three masters
    with skewed clocks."""
    time.sleep(float(os.environ.get("DUR", "20")))


def sc_aux_kill_restart(c, load, log):
    """SIGKILL an auxiliary and restart it from its BACKUP_DIR: quick (before
    it is judged down) and slow (after its keys moved)."""
    for rnd, (name, down) in enumerate([("aux-2", 0.05), ("aux-3", 3.0), ("aux-1", 0.3),
                                         ("aux-4", 1.5), ("aux-2", 0.0), ("aux-3", 0.6)]):
        time.sleep(2)
        log(f"SIGKILL {name}, restart after {down}s")
        c.auxes[name].kill()
        time.sleep(down)
        c.auxes[name].start()
    time.sleep(2)


def sc_leader_kill_mid_rebalance(c, load, log):
    """A join, and the Raft leader SIGKILLed right after; restarted."""
    for rnd, name in enumerate(["aux-5", "aux-6"]):
        time.sleep(2)
        ld = leader(c)
        log(f"join {name}; SIGKILL map leader master-{ld+1}")
        c.add_aux(name)
        time.sleep(0.3)
        load.up[ld] = False
        c.masters[ld].kill()
        time.sleep(3)
        log(f"restart master-{ld+1}")
        c.masters[ld].start()
        wait_until(30, "master back", lambda: http_get(c.murl(ld, "/health"))[0] is not None)
        load.up[ld] = True
    time.sleep(2)
    ld = leader(c)
    log(f"SIGTERM aux-1 (leave); SIGKILL map leader master-{ld+1} mid-leave")
    c.auxes["aux-1"].sig(signal.SIGTERM)
    time.sleep(0.3)
    load.up[ld] = False
    c.masters[ld].kill()
    time.sleep(3)
    c.masters[ld].start()
    wait_until(30, "master back", lambda: http_get(c.murl(ld, "/health"))[0] is not None)
    load.up[ld] = True
    time.sleep(3)


def sc_leader_stop_mid_rebalance(c, load, log):
    """A join, and the Raft leader SIGSTOPped right after, while clients go
    on sending to it (their requests wait); resumed."""
    for rnd, name in enumerate(["aux-5", "aux-6"]):
        time.sleep(2)
        ld = leader(c)
        log(f"join {name}; SIGSTOP map leader master-{ld+1} for 4s (clients keep using it)")
        c.add_aux(name)
        time.sleep(0.2)
        c.masters[ld].sig(signal.SIGSTOP)
        time.sleep(4)
        c.masters[ld].sig(signal.SIGCONT)
        log(f"SIGCONT master-{ld+1}")
    time.sleep(2)
    ld = leader(c)
    log(f"SIGTERM aux-2 (leave); SIGSTOP leader master-{ld+1} 3s")
    c.auxes["aux-2"].sig(signal.SIGTERM)
    time.sleep(0.2)
    c.masters[ld].sig(signal.SIGSTOP)
    time.sleep(3)
    c.masters[ld].sig(signal.SIGCONT)
    time.sleep(3)


def sc_join_leave(c, load, log):
    """Joins and graceful leaves (SIGTERM) during load, and a restart of a
    left node from its BACKUP_DIR (old data)."""
    time.sleep(2)
    log("join aux-5")
    c.add_aux("aux-5")
    time.sleep(2)
    log("SIGTERM aux-1")
    c.auxes["aux-1"].sig(signal.SIGTERM)
    time.sleep(3)
    log("join aux-6, SIGTERM aux-2 at once")
    c.add_aux("aux-6")
    c.auxes["aux-2"].sig(signal.SIGTERM)
    time.sleep(4)
    log("restart aux-1 from its old BACKUP_DIR")
    c.auxes["aux-1"].start()
    time.sleep(3)
    log("SIGKILL aux-3, restart at once")
    c.auxes["aux-3"].kill()
    c.auxes["aux-3"].start()
    time.sleep(3)


def sc_leave_only(c, load, log):
    """Graceful leaves (SIGTERM) one after another, a join before each; no
    master fault."""
    for k in range(1, 5):
        time.sleep(1.5)
        log(f"join aux-{k+4}")
        c.add_aux(f"aux-{k+4}")
        time.sleep(1.5)
        log(f"SIGTERM aux-{k}")
        c.auxes[f"aux-{k}"].sig(signal.SIGTERM)
    time.sleep(2)


def sc_aux_kill_restart_quick(c, load, log):
    """SIGKILL an auxiliary and restart it at once (or within 0.1 s), over
    and over, rotating over the nodes: its keys' leaders move away and back
    while masters still routing by the map from before the kill reach the
    new process (finding 2)."""
    for rnd in range(12):
        name = f"aux-{rnd % 4 + 1}"
        down = (rnd % 3) * 0.05
        time.sleep(1.5)
        log(f"SIGKILL {name}, restart after {down}s")
        c.auxes[name].kill()
        time.sleep(down)
        c.auxes[name].start()
    time.sleep(2)


def sc_aux_stop(c, load, log):
    """SIGSTOP an auxiliary for a while (judged down), resume it with its old
    data; and a short stop (not judged down)."""
    for name, d in [("aux-2", 3.0), ("aux-3", 0.15), ("aux-1", 1.0), ("aux-4", 0.4)]:
        time.sleep(2)
        log(f"SIGSTOP {name} {d}s")
        c.auxes[name].sig(signal.SIGSTOP)
        time.sleep(d)
        c.auxes[name].sig(signal.SIGCONT)
    time.sleep(2)


SCENARIOS = {k[3:]: v for k, v in globals().items() if k.startswith("sc_")}
PARTITION_SCENARIOS.update(PARTITION3_SCENARIOS)
SCENARIOS.update(PARTITION_SCENARIOS)
SCENARIOS.update(RESTART_SCENARIOS)


def main():
    name = sys.argv[1]
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    base = int(os.environ.get("BASE", "19100"))
    root = f"/tmp/fa-{name}-{seed}"
    # Partition scenarios run every process in a namespace of its own.
    net = Net() if name in PARTITION_SCENARIOS else None
    try:
        run(name, seed, base, root, net)
    finally:
        if net:
            net.close()


def run(name, seed, base, root, net):
    c = Cluster(root, masters=3, auxes=4, replicas=2, master_env_each=SKEW, base=base, net=net)
    t0 = time.monotonic()
    events = []

    def log(msg):
        events.append((time.monotonic() - t0, msg))
        wall = time.strftime("%H:%M:%S", time.gmtime()) + f".{int(time.time() * 1000) % 1000:03d}Z"
        print(f"[{time.monotonic()-t0:7.3f}] {msg} ({wall})", flush=True)

    try:
        c.wait_settled()
        # the TTL keys (x0, x1): on in fault-attack-3's scenarios, or TTL=1 (6 keys)
        ttl = 6 if (name in RESTART_SCENARIOS or name.startswith("part3_")
                    or os.environ.get("TTL")) else 0
        # many-key registers (rb*): on with BULK=1 or in restart scenarios
        bulk = 2 if (name in RESTART_SCENARIOS or os.environ.get("BULK")) else 0
        load = Load(c, seed=seed, ttl_threads=ttl, bulk_threads=bulk)
        load.start()
        log("load started")
        try:
            SCENARIOS[name](c, load, log)
        finally:
            if net:
                net.heal_all()
        log("faults done; steady")
        time.sleep(2)
        load.finish()
        log("load stopped; waiting to settle")
        load.up = [c.masters[i].alive() for i in range(c.nm)]
        try:
            c.wait_settled(limit=30)
        except Exception as e:  # noqa
            log(f"not settled: {e}")
        time.sleep(1)
        load.final_reads()
        ops = load.rec.ops
        with open(f"{root}/history.json", "w") as f:
            json.dump(dict(events=events, ops=[{**o, "start": o["start"] - t0, "end": o["end"] - t0}
                                                for o in ops]), f)
        c.stop_all()
        dur = time.monotonic() - t0
        print(f"scenario {name} seed {seed}: {len(ops)} ops in {dur:.1f}s; {summary(ops)}")
        report(ops, t0)
    finally:
        c.stop_all()


if __name__ == "__main__":
    main()
