"""Finding 5 (fault-attack-3): a newer write that expired leaves nothing
behind, so an older copy of the key comes back: from an auxiliary that
returns with its snapshot (MODE=return, the default) or from a backup's
restore (MODE=restore).

3 masters, 3 auxiliaries, REPLICAS=2, no clock skew:
  SET k0..k{N-1} old                 (no TTL)
  return:  SIGKILL aux-1, wait until the others judged it down and moved
           its keys
  restore: POST /backup
  SET k* new PX 1000                 (acknowledged: overwrites old)
  wait 2.5 s; GET k* -> nil          (expired)
  return:  restart aux-1 from its BACKUP_DIR; wait settled
  restore: POST /restore
  GET k* through every master: `old` is a read older than an
  acknowledged write ("A read never returns a value older than a write
  ... acknowledged before the read began").

With HOW=expire, `PEXPIRE k* 1000` instead of the SET: the key itself,
expired by an acknowledged PEXPIRE, comes back with no TTL.

usage: [BASE=19100] [MODE=return|stop|restore] [HOW=set|expire] python3 repro_expired_overwrite.py
"""

import json
import os
import signal
import time

from cluster import Cluster, Resp, http, wait_until

N = 60


def main():
    base = int(os.environ.get("BASE", "19100"))
    mode = os.environ.get("MODE", "return")
    root = f"/tmp/fa-repro-expired-{mode}"
    print(f"MODE={mode} HOW={os.environ.get('HOW', 'set')}")
    c = Cluster(root, masters=3, auxes=3, replicas=2, base=base)
    try:
        c.wait_settled()
        r = [Resp(c.rports[i]) for i in range(3)]
        keys = [f"k{i}" for i in range(N)]
        for k in keys:
            assert r[0].call("SET", k, "old") == "OK"
        if mode in ("return", "stop"):
            time.sleep(1.5)  # a snapshot (BACKUP_INTERVAL=1) and the log hold `old`
            if mode == "stop":
                print("SIGSTOP aux-1")
                c.auxes["aux-1"].sig(signal.SIGSTOP)
            else:
                print("SIGKILL aux-1")
                c.auxes["aux-1"].kill()

            def down():
                n = c.nodes()
                lst = n if isinstance(n, list) else n.get("nodes", [])
                return any(x.get("id") == "aux-1" and x.get("state") != "up" for x in lst)
            wait_until(30, "aux-1 judged down", down)
            c.wait_settled()
            print("aux-1 judged down, its keys moved")
        else:
            st, body = http("POST", c.murl(0, "/backup"), {}, timeout=60)
            print("backup:", st, body[:160])
        if os.environ.get("HOW", "set") == "set":
            for k in keys:
                assert r[1].call("SET", k, "new", "PX", "1000") == "OK"
            print("SET k* new PX 1000: all acknowledged")
        else:
            for k in keys:
                assert r[1].call("PEXPIRE", k, "1000") == 1
            print("PEXPIRE k* 1000: all acknowledged (answered 1)")
        time.sleep(2.5)
        gone = sum(1 for k in keys if r[2].call("GET", k) is None)
        print(f"after 2.5 s: {gone}/{N} keys absent (expired)")
        if mode in ("return", "stop"):
            if mode == "stop":
                print("SIGCONT aux-1")
                c.auxes["aux-1"].sig(signal.SIGCONT)
            else:
                print("restart aux-1 from its BACKUP_DIR")
                c.auxes["aux-1"].start()
            c.wait_up(3)
            time.sleep(1)
            c.wait_settled()
        else:
            st, body = http("POST", c.murl(0, "/restore"), {}, timeout=60)
            print("restore:", st, body[:200])
        time.sleep(0.5)
        for i in range(3):
            vals = [r[i].call("GET", k) for k in keys]
            old = [k for k, v in zip(keys, vals) if v == "old"]
            print(f"master-{i+1}: {len(old)}/{N} keys read back `old` "
                  f"(overwritten or expired by an acknowledged command): {old[:8]}"
                  + (f", TTL {old[0]} = {r[i].call('TTL', old[0])}" if old else ""))
    finally:
        c.stop_all()


if __name__ == "__main__":
    main()
