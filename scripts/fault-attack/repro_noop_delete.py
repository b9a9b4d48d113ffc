"""Reproducer of FINDINGS.md finding 3: an acknowledged DEL that changed
nothing at the key's leader (it answered 0) is undone by the loss of that
leader alone.

A DEL through master 1, cut off from the key's second replica R only, runs
at the leader L and cannot reach R: it fails (outcome unknown), leaving
the key deleted at L and live at R. A second DEL, through master 2, which
reaches every node, finds the key deleted at L, answers 0 and is
acknowledged with nothing sent to R. Then:

1. a read through master 3, cut off from L only, falls back to R and
   answers the value, after the acknowledged DEL;
2. L is SIGKILLed (one auxiliary lost, REPLICAS=2): once the map moved
   its keys, every master answers the value for good.

usage: python3 repro_noop_delete.py   (root; DISTCACHE_BIN, BASE as run.py)
"""

import os
import time

from cluster import Cluster, Resp, RespError, wait_until
from partition import Net

KEY, VALUE = "noop-del", "v1"


def resp(c, m):
    return Resp(c.rports[m], host=c.mhosts[m])


def call(c, m, *args):
    reply = resp(c, m).call(*args)
    print(f"  master-{m+1}: {' '.join(args)} -> {reply!r}")
    return reply


def placement(c, auxes):
    """The key's leader and second replica, told apart by where a SET
    through master 1 fails with master 1 cut off from one node: at the
    leader nothing runs ("0 of 1"), at the other replica the SET ran and
    could not be shipped."""
    leader = replica = None
    for a in auxes:
        c.net.cut("master-1", a)
        try:
            reply = resp(c, 0).call("SET", KEY, VALUE)
        finally:
            c.net.heal("master-1", a)
        if isinstance(reply, RespError) and "reached 0 of 1" in str(reply):
            leader = a
        elif isinstance(reply, RespError):
            replica = a
    return leader, replica


def not_up(c, name):
    nodes = c.nodes(1)
    nodes = nodes if isinstance(nodes, list) else nodes.get("nodes", [])
    return all(n.get("state") != "up" for n in nodes if name in (n.get("id"), n.get("node_id")))


def main():
    base = int(os.environ.get("BASE", "19300"))
    net = Net()
    c = None
    try:
        c = Cluster("/tmp/fa-repro-noop-delete", masters=3, auxes=3, replicas=2,
                    base=base, net=net)
        c.wait_settled()
        auxes = sorted(c.auxes)
        leader, replica = placement(c, auxes)
        print(f"{KEY}: leader {leader}, other replica {replica}")
        assert leader and replica, "placement not found"
        time.sleep(1)
        call(c, 1, "SET", KEY, VALUE)
        print(f"cut master-1 from {replica}")
        c.net.cut("master-1", replica)
        call(c, 0, "DEL", KEY)  # runs at the leader, cannot be shipped: an error
        acked = call(c, 1, "DEL", KEY)  # 0, acknowledged, nothing shipped
        assert not isinstance(acked, RespError), "the second DEL was not acknowledged"
        call(c, 1, "GET", KEY)
        print(f"cut master-3 from {leader}")
        c.net.cut("master-3", leader)
        early = call(c, 2, "GET", KEY)
        c.net.heal("master-3", leader)
        print(f"SIGKILL {leader}")
        c.auxes[leader].kill()
        wait_until(30, "the leader judged down", lambda: not_up(c, leader))
        c.wait_settled(masters=[1, 2])
        late = [call(c, m, "GET", KEY) for m in (1, 2)]
        print(f"after the acknowledged DEL (answer {acked!r}): read through master-3 cut from "
              f"the leader: {early!r}; after the leader's loss: {late!r}")
        if early == VALUE or VALUE in late:
            print("REPRODUCED: an acknowledged delete undone")
        else:
            print("not reproduced")
    finally:
        if c:
            c.stop_all()
        net.close()


if __name__ == "__main__":
    main()
