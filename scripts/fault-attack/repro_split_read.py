"""Reproducer of FINDINGS.md finding 4: a master split off with one
auxiliary (the two other masters and auxiliaries on the other side) reads
that auxiliary by its old map, after the majority judged it down and
acknowledged newer writes elsewhere.

usage: python3 repro_split_read.py   (root; DISTCACHE_BIN, BASE as run.py)
"""

import os
import time

from cluster import Cluster, RespError, wait_until
from partition import Net
from repro_noop_delete import KEY, call, not_up, placement


def main():
    base = int(os.environ.get("BASE", "19300"))
    net = Net()
    c = None
    try:
        c = Cluster("/tmp/fa-repro-split-read", masters=3, auxes=3, replicas=2,
                    base=base, net=net)
        c.wait_settled()
        leader, _ = placement(c, sorted(c.auxes))
        print(f"{KEY}: leader {leader}")
        time.sleep(1)
        call(c, 1, "SET", KEY, "old")
        for m in range(3):
            call(c, m, "GET", KEY)
        small = ["master-1", leader]
        big = ["master-2", "master-3"] + [a for a in c.auxes if a != leader]
        print(f"split {small} | {big}")
        for p in small:
            for q in big:
                c.net.cut(p, q)
        wait_until(30, "the majority judged the leader down", lambda: not_up(c, leader))
        c.wait_settled(masters=[1, 2])
        time.sleep(0.5)
        new = call(c, 1, "SET", KEY, "new")
        assert new == "OK", "the majority's write was not acknowledged"
        call(c, 2, "GET", KEY)
        stale = call(c, 0, "GET", KEY)
        c.net.heal_all()
        if isinstance(stale, RespError):
            print(f"not reproduced: the master split off refused the read ({stale})")
        elif stale != "new":
            print("REPRODUCED: a read after an acknowledged write answered "
                  f"{stale!r}, not the value written")
        else:
            print("not reproduced")
    finally:
        if c:
            c.stop_all()
        net.close()


if __name__ == "__main__":
    main()
