"""Partition scenarios: each process in a network namespace of its own
(partition.py), cut apart and healed under the workload. Names start with
`part_`; run.py gives their clusters a Net.

Each scenario gets the cluster `c` (its `c.net` makes the cuts), the load
and `log`, and must leave every cut healed (run.py heals all in any case).
"""

import random
import signal
import time

from cluster import leader


def mname(i):
    return f"master-{i+1}"


def rng_of(load):
    return random.Random(load.seed * 7919)


def part_master_cut_map_change(c, load, log):
    """One master cut off from the other two (it still reaches every
    auxiliary and its clients) while the majority changes the map: a join,
    a SIGKILL and restart of an auxiliary, a graceful leave; healed after
    each. The cut master is the leader in the first and third rounds."""
    rng = rng_of(load)
    changes = [("join", "aux-5"), ("kill_restart", None), ("leave", "aux-1")]
    for rnd, (what, name) in enumerate(changes):
        time.sleep(2)
        ld = leader(c)
        x = ld if rnd % 2 == 0 else (ld + 1 + rng.randrange(2)) % c.nm
        others = [j for j in range(c.nm) if j != x]
        log(f"cut {mname(x)} (leader: {mname(ld)}) from {[mname(j) for j in others]}")
        for j in others:
            c.net.cut(mname(x), mname(j))
        time.sleep(1.0)
        if what == "join":
            log(f"join {name}")
            c.add_aux(name)
        elif what == "kill_restart":
            name = rng.choice(["aux-2", "aux-3", "aux-4"])
            log(f"SIGKILL {name}, restart after 1s")
            c.auxes[name].kill()
            time.sleep(1.0)
            c.auxes[name].start()
        else:
            log(f"SIGTERM {name} (leave)")
            c.auxes[name].sig(signal.SIGTERM)
        time.sleep(3.0)
        log(f"heal {mname(x)}")
        for j in others:
            c.net.heal(mname(x), mname(j))
    time.sleep(2)


def part_leader_cut_aux(c, load, log):
    """The map's Raft leader cut off from one auxiliary for 2-5 s (it judges
    the node down; the other masters still reach it), healed; rotating over
    the auxiliaries."""
    rng = rng_of(load)
    for rnd in range(4):
        time.sleep(2)
        ld = leader(c)
        name = f"aux-{rnd + 1}"
        d = rng.uniform(2, 5)
        log(f"cut leader {mname(ld)} from {name} for {d:.1f}s")
        c.net.cut(mname(ld), name)
        time.sleep(d)
        c.net.heal(mname(ld), name)
        log(f"heal {mname(ld)} - {name}")
    time.sleep(2)


def part_aux_isolate(c, load, log):
    """One auxiliary cut off from everything for 2-5 s, healed; several
    times, rotating (it holds keys of every kind: four nodes, REPLICAS=2)."""
    rng = rng_of(load)
    for rnd in range(5):
        time.sleep(2)
        name = f"aux-{rng.randrange(4) + 1}"
        d = rng.uniform(2, 5)
        log(f"isolate {name} for {d:.1f}s")
        c.net.isolate(name)
        time.sleep(d)
        c.net.rejoin(name)
        log(f"rejoin {name}")
    time.sleep(2)


def part_aux_cut_follower(c, load, log):
    """One auxiliary cut off from one master that is not the map's leader
    (the leader and the other master still reach it), 2-5 s, several
    times."""
    rng = rng_of(load)
    for rnd in range(5):
        time.sleep(2)
        ld = leader(c)
        f = (ld + 1 + rng.randrange(2)) % c.nm
        name = f"aux-{rng.randrange(4) + 1}"
        d = rng.uniform(2, 5)
        log(f"cut follower {mname(f)} (leader {mname(ld)}) from {name} for {d:.1f}s")
        c.net.cut(mname(f), name)
        time.sleep(d)
        c.net.heal(mname(f), name)
        log(f"heal {mname(f)} - {name}")
    time.sleep(2)


def part_cut_mid_rebalance(c, load, log):
    """A join, and while its round runs: the leader cut from an old
    auxiliary, then that auxiliary isolated, then a follower cut from the
    joining node."""
    rng = rng_of(load)
    for rnd, name in enumerate(["aux-5", "aux-6", "aux-7"]):
        time.sleep(2)
        ld = leader(c)
        log(f"join {name}")
        c.add_aux(name)
        time.sleep(rng.uniform(0.05, 0.4))
        if rnd == 0:
            victim = f"aux-{rng.randrange(4) + 1}"
            log(f"cut leader {mname(ld)} from {victim} mid-round")
            c.net.cut(mname(ld), victim)
            time.sleep(3)
            c.net.heal(mname(ld), victim)
            log(f"heal {mname(ld)} - {victim}")
        elif rnd == 1:
            victim = f"aux-{rng.randrange(4) + 1}"
            log(f"isolate {victim} mid-round")
            c.net.isolate(victim)
            time.sleep(3)
            c.net.rejoin(victim)
            log(f"rejoin {victim}")
        else:
            f = (ld + 1) % c.nm
            log(f"cut follower {mname(f)} from joining {name}")
            c.net.cut(mname(f), name)
            time.sleep(3)
            c.net.heal(mname(f), name)
            log(f"heal {mname(f)} - {name}")
    time.sleep(2)


def part_follower_cut_during_join(c, load, log):
    """A follower master cut off from an old auxiliary (the leader still
    reaches it, so it stays live) while a join's round moves that node's
    keys: the follower's reads of the old leader before a command cannot
    fence it."""
    rng = rng_of(load)
    for rnd, name in enumerate(["aux-5", "aux-6", "aux-7"]):
        time.sleep(2)
        ld = leader(c)
        f = (ld + 1 + rng.randrange(2)) % c.nm
        victim = f"aux-{rng.randrange(4) + 1}"
        log(f"cut follower {mname(f)} (leader {mname(ld)}) from {victim}; join {name}")
        c.net.cut(mname(f), victim)
        time.sleep(rng.uniform(0, 0.3))
        c.add_aux(name)
        time.sleep(3)
        c.net.heal(mname(f), victim)
        log(f"heal {mname(f)} - {victim}")
    time.sleep(2)


def part_split(c, load, log):
    """A clean split: one master and one auxiliary on one side, the two
    other masters and three auxiliaries on the other (clients reach every
    master), 4 s, healed; three times, the minority master the leader in
    the second round. The majority judges the auxiliary down and moves
    its keys; the minority master still routes to it by its old map, and
    the auxiliary hears of no newer epoch."""
    rng = rng_of(load)
    for rnd in range(3):
        time.sleep(2)
        ld = leader(c)
        x = ld if rnd == 1 else (ld + 1 + rng.randrange(2)) % c.nm
        a = f"aux-{rng.randrange(4) + 1}"
        small = [mname(x), a]
        big = [mname(j) for j in range(c.nm) if j != x] + [n for n in c.auxes if n != a]
        log(f"split {small} | {big} (leader {mname(ld)})")
        for p in small:
            for q in big:
                c.net.cut(p, q)
        time.sleep(4)
        c.net.heal_all()
        log("healed")
    time.sleep(2)


def part_cut_mid_leave(c, load, log):
    """A graceful leave (SIGTERM), and while it hands its keys over: the
    leaver cut from the leader, then isolated, then the leaver cut from a
    follower."""
    for rnd, (name, how) in enumerate([("aux-1", "leader"), ("aux-2", "isolate"),
                                        ("aux-3", "follower")]):
        time.sleep(1.5)
        log(f"join aux-{rnd + 5}")
        c.add_aux(f"aux-{rnd + 5}")
        time.sleep(2)
        ld = leader(c)
        log(f"SIGTERM {name} (leave), then cut it ({how})")
        c.auxes[name].sig(signal.SIGTERM)
        time.sleep(0.1)
        if how == "isolate":
            c.net.isolate(name)
        else:
            m = ld if how == "leader" else (ld + 1) % c.nm
            c.net.cut(mname(m), name)
        time.sleep(3)
        c.net.heal_all()
        log(f"heal {name}")
    time.sleep(2)


def part_oneway(c, load, log):
    """One-way losses: the leader's packets to an auxiliary dropped (the
    auxiliary's still arrive), then an auxiliary's packets to one master,
    then a master's packets to the other two."""
    rng = rng_of(load)
    for rnd in range(3):
        time.sleep(2)
        ld = leader(c)
        d = rng.uniform(2, 5)
        name = f"aux-{rng.randrange(4) + 1}"
        if rnd == 0:
            pairs = [(mname(ld), name)]
        elif rnd == 1:
            pairs = [(name, mname(rng.randrange(c.nm)))]
        else:
            x = rng.randrange(c.nm)
            pairs = [(mname(x), mname(j)) for j in range(c.nm) if j != x]
        log(f"drop packets {pairs} for {d:.1f}s (leader {mname(ld)})")
        for a, b in pairs:
            c.net.cut_oneway(a, b)
        time.sleep(d)
        c.net.heal_all()
        log("healed")
    time.sleep(2)


SCENARIOS = {k: v for k, v in globals().items() if k.startswith("part_")}
