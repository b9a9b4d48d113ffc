"""Partition scenarios of fault-attack-3 (`part3_`): a rebalancing round
that adds a node (a join, no node dropped) racing a split of one master
(and one auxiliary) from the rest. Namespaces as in sc_partition.py.
"""

import random
import time

from cluster import leader


def mname(i):
    return f"master-{i+1}"


def rng_of(load):
    return random.Random(load.seed * 6007)


def split(c, small):
    big = [mname(j) for j in range(c.nm) if mname(j) not in small] + \
          [n for n in c.auxes if n not in small]
    for p in small:
        for q in big:
            c.net.cut(p, q)
    return big


def part3_split_join(c, load, log):
    """Three rounds of a join racing a split {one master, one auxiliary} |
    {the rest}, 4 s each: (1) join, split 0.1 s later (a follower master);
    (2) split with the leader in the minority, join 0.3 s later; (3) the
    auxiliary that joined in round 1 split off with a follower, 0.05 s
    after another join."""
    rng = rng_of(load)
    plan = [("join-first", "aux-5", 0.1), ("split-first", "aux-6", 0.3), ("join-first", "aux-7", 0.05)]
    for rnd, (order, joiner, gap) in enumerate(plan):
        time.sleep(2.5)
        ld = leader(c)
        x = ld if rnd == 1 else (ld + 1 + rng.randrange(2)) % c.nm
        a = "aux-5" if rnd == 2 else f"aux-{rng.randrange(4) + 1}"
        small = [mname(x), a]
        if order == "join-first":
            log(f"join {joiner}")
            c.add_aux(joiner)
            time.sleep(gap)
        log(f"split {small} | rest (leader {mname(ld) if ld is not None else None})")
        split(c, small)
        if order == "split-first":
            time.sleep(gap)
            log(f"join {joiner}")
            c.add_aux(joiner)
        time.sleep(4)
        c.net.heal_all()
        log("healed")
    time.sleep(2)


def part3_master_split_join(c, load, log):
    """A master alone split from everything but its clients (masters and
    auxiliaries) racing a join, 3 s; the leader in round 2; then the
    joining auxiliary itself split off with a follower master mid-join."""
    rng = rng_of(load)
    for rnd, joiner in enumerate(["aux-5", "aux-6", "aux-7"]):
        time.sleep(2.5)
        ld = leader(c)
        x = ld if rnd == 1 else (ld + 1 + rng.randrange(2)) % c.nm
        log(f"join {joiner}")
        c.add_aux(joiner)
        time.sleep(0.15 if rnd < 2 else 0.4)
        small = [mname(x)] + ([joiner] if rnd == 2 else [])
        log(f"split {small} | rest (leader {mname(ld) if ld is not None else None})")
        split(c, small)
        time.sleep(3)
        c.net.heal_all()
        log("healed")
    time.sleep(2)


def part3_leader_split(c, load, log):
    """The map's Raft leader split off with one auxiliary for 5-6 s (the
    others elect a new leader meanwhile, after openraft's 3 s leader lease),
    healed; three times. While cut, the old leader's probes find every
    auxiliary of the other side down; the verdicts it proposes after the
    heal go to the new leader (finding 6)."""
    rng = rng_of(load)
    for rnd in range(3):
        time.sleep(2.5)
        ld = leader(c)
        if ld is None:
            log("no leader; skip")
            continue
        a = f"aux-{rng.randrange(4) + 1}"
        small = [mname(ld), a]
        d = rng.uniform(5.0, 6.0)
        log(f"split {small} | rest for {d:.1f}s (the leader in the minority)")
        split(c, small)
        time.sleep(d)
        c.net.heal_all()
        log("healed")
    time.sleep(2)


SCENARIOS = {k: v for k, v in globals().items() if k.startswith("part3_")}
