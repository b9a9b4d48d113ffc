"""Finding 6 (fault-attack-3): after a partition heals, the old Raft
leader's health verdicts, made while it was cut off, are committed by the
new leader: live auxiliaries the majority always reached are judged down
(two at once here), and keys whose copies were all on them are lost.

3 masters, 4 auxiliaries, REPLICAS=2, no clock skew; namespaces (root):
  SET k0..k{N-1} v; RPUSH list0..list{N-1} a
  split {the map's leader, aux-1} | {the two other masters, aux-2..4}
  wait until the majority has a new leader and judged aux-1 down; 1 s
  heal; wait; print the map's epochs: which nodes were judged down
  after the heal, by whom (the masters' logs)
  GET k*, LRANGE list* through every master: absent = lost

With SHORT=S (seconds, below the ~4.6 s the majority needs to elect):
the split is healed after S s, before any new leader, ROUNDS times (5);
the leader, never deposed, must not commit after a heal the verdicts it
made from its probes while cut off (aux-2..4 down).

usage: BASE=19300 [SHORT=3 [ROUNDS=5]] python3 repro_stale_verdict.py   (root; DISTCACHE_BIN)
"""

import glob
import json
import os
import threading
import time

from cluster import Cluster, Resp, RespError, http_get, leader, wait_until
from partition import Net

N = 200
ROOT = "/tmp/fa-repro-stale-verdict"


def main():
    base = int(os.environ.get("BASE", "19300"))
    net = Net()
    c = None
    try:
        c = Cluster(ROOT, masters=3, auxes=4, replicas=2, base=base, net=net)
        c.wait_settled()
        r = [Resp(c.rports[i], host=c.mhosts[i]) for i in range(3)]
        for i in range(N):
            assert r[0].call("SET", f"k{i}", "v") == "OK"
            assert isinstance(r[0].call("RPUSH", f"list{i}", "a"), int)
        ld = leader(c)
        print(f"map leader: master-{ld+1}")
        # a writer through every master, from before the split to the end
        acked, stop = [], threading.Event()

        def writer(m):
            conn, n = Resp(c.rports[m], host=c.mhosts[m], timeout=3), 0
            while not stop.is_set():
                n += 1
                key, el = f"wl{n % 20}", f"{m}:{n}"
                try:
                    if isinstance(conn.call("RPUSH", key, el), int):
                        acked.append((key, el))
                except Exception:
                    conn = Resp(c.rports[m], host=c.mhosts[m], timeout=3)
                    time.sleep(0.01)
        ws = [threading.Thread(target=writer, args=(m,), daemon=True) for m in range(3)]
        for w in ws:
            w.start()
        time.sleep(0.5)
        small = [f"master-{ld+1}", "aux-1"]
        others = [j for j in range(3) if j != ld]
        big = [f"master-{j+1}" for j in others] + ["aux-2", "aux-3", "aux-4"]
        short = float(os.environ.get("SHORT", "0"))
        heals = []
        for rnd in range(int(os.environ.get("ROUNDS", "5")) if short else 1):
            print(f"split {small} | {big}")
            for p in small:
                for q in big:
                    net.cut(p, q)

            def new_leader():
                for j in others:
                    st, body = http_get(c.murl(j, "/health"), timeout=1)
                    if st == 200:
                        lid = json.loads(body).get("map", {}).get("leader") or ""
                        if lid and not lid.endswith(f":{c.mports[ld]}"):
                            return True
                return False
            t = time.monotonic()
            if short:
                time.sleep(short)
            else:
                wait_until(30, "a new leader on the majority side", new_leader)
                print(f"new leader after {time.monotonic() - t:.1f}s")
                time.sleep(1.5)
            net.heal_all()
            now = time.time()
            heals.append(time.strftime("%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}")
            print(f"healed at {heals[-1]}Z")
            if short:
                time.sleep(2.5)
                now_ld = leader(c)
                if now_ld != ld:
                    print(f"the leader changed: {now_ld}; stop")
                    break
        healed = heals[0]
        time.sleep(4)
        stop.set()
        for w in ws:
            w.join(5)
        c.wait_settled(limit=30)
        got = {}
        for i in range(20):
            got[f"wl{i}"] = set(r[others[0]].call("LRANGE", f"wl{i}", "0", "-1") or [])
        lost_w = [(k, e) for k, e in acked if e not in got[k]]
        lost_k = [i for i in range(N) if r[others[0]].call("GET", f"k{i}") is None]
        lost_l = [i for i in range(N) if r[others[0]].call("LRANGE", f"list{i}", "0", "-1") in ([], None)]
        downs = []
        for f in sorted(glob.glob(f"{ROOT}/master-*.log")):
            for line in open(f):
                if "node is down" in line or "node is up" in line:
                    downs.append(f"{os.path.basename(f)}: {line[:27]} {line.split('membership: ')[-1].strip()}")
        print("verdicts proposed (master log: time, verdict):")
        for d in downs:
            print("  " + d)
        print(f"lost: {len(lost_k)}/{N} SET keys, {len(lost_l)}/{N} lists "
              f"(each acknowledged before the split); {len(lost_w)}/{len(acked)} "
              f"acknowledged RPUSHes of the writers {lost_w[:5]}")
        old = f"master-{ld+1}.1.log"
        stale = [d for d in downs if d.startswith(old) and "node is down" in d
                 and d.split()[1][11:23] >= healed and "aux-1" not in d]
        if stale:
            print(f"REPRODUCED: after the heal the old leader's verdicts were committed: {stale}")
        if lost_k or lost_l or lost_w:
            print("REPRODUCED: acknowledged writes lost")
        if not stale and not (lost_k or lost_l or lost_w):
            print("not reproduced")
    finally:
        if c:
            c.stop_all()
        net.close()


if __name__ == "__main__":
    main()
