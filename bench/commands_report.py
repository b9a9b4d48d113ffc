#!/usr/bin/env python3
"""Turns the commands case of bench/run.sh into a Markdown table. Its inputs,
one file per side, command and round: redis-<test>-r<round>.csv
(redis-benchmark --csv, one custom command) and distcache-<test>-r<round>.json
(distcache bench --commands <test> --json). Per command: the median rate of
each side over the rounds, the ratio of the medians (distcache over Redis)
with the range of the per-round ratios (each round ran the two back to back),
and the median p50 and p99 of each."""

import argparse
import csv
import json
import pathlib
import re
import statistics
from collections import defaultdict

NAME = re.compile(r"(redis|distcache)-([a-z]+)-r(\d+)\.(csv|json)")
ORDER = ["set", "get", "incr", "lpush", "sadd", "hset", "zadd"]


def read(f, side):
    """(rps, p50 ms, p99 ms, errors) of one run."""
    if side == "redis":
        rows = list(csv.DictReader(f.open()))
        if not rows:
            return None
        r = rows[0]
        return float(r["rps"]), float(r["p50_latency_ms"]), float(r["p99_latency_ms"]), 0
    try:
        report = json.loads(f.read_text())
    except json.JSONDecodeError:
        return None
    c = report["commands"][0]
    return c["ops_per_sec"], c["latency_ms"]["p50"], c["latency_ms"]["p99"], c["errors"]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("results")
    p.add_argument("--redis", required=True, help="the redis-benchmark options, for the heading")
    p.add_argument("--distcache", required=True, help="the distcache bench options, for the heading")
    a = p.parse_args()

    # runs[test][side][round] = (rps, p50, p99, errors)
    runs = defaultdict(lambda: defaultdict(dict))
    for f in sorted(pathlib.Path(a.results).iterdir()):
        m = NAME.fullmatch(f.name)
        if not m:
            continue
        figures = read(f, m[1])
        if figures:
            runs[m[2]][m[1]][int(m[3])] = figures
    if not runs:
        print("Commands case: no results")
        return
    rounds = max(len(s) for v in runs.values() for s in v.values())
    print(f"Commands over HTTP: `{a.distcache} --commands X` against `POST /` of one distcache "
          f"master (3 auxiliaries, REPLICAS=1), and `{a.redis} X ...` against redis-server with "
          f"the same commands and key shapes, alternated, {rounds} rounds; medians over the rounds.")
    print()
    print("| command | Redis rps | distcache rps | × Redis (per-round range) "
          "| Redis p50 / p99 ms | distcache p50 / p99 ms | distcache errors |")
    print("|---|---:|---:|---:|---:|---:|---:|")

    def med(rs, i):
        return statistics.median(v[i] for v in rs.values())

    for test in sorted(runs, key=lambda t: ORDER.index(t) if t in ORDER else len(ORDER)):
        by = runs[test]
        if "redis" not in by or "distcache" not in by:
            continue
        r, d = by["redis"], by["distcache"]
        per_round = [d[k][0] / r[k][0] for k in d if k in r]
        spread = f"{min(per_round):.3f}–{max(per_round):.3f}" if per_round else "–"
        errors = sum(v[3] for v in d.values())
        print(f"| {test.upper()} | {med(r, 0):,.0f} | {med(d, 0):,.0f} "
              f"| **{med(d, 0) / med(r, 0):.3f}** ({spread}) "
              f"| {med(r, 1):.2f} / {med(r, 2):.2f} | {med(d, 1):.2f} / {med(d, 2):.2f} | {errors} |")


if __name__ == "__main__":
    main()
