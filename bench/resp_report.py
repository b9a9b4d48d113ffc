#!/usr/bin/env python3
"""Turns the RESP case of bench/run.sh (redis-benchmark --csv output, one file
per target, pipeline depth and round: <target>-P<depth>-r<round>.csv, target
`redis`, `distcache` or `baseline`) into a Markdown table: per test and
depth, the median rate of each target over the rounds, the ratio of the
medians to Redis with the range of the per-round ratios (each round ran the
targets back to back), and the median p50 and p99 of each. With a baseline
(an earlier build, `--resp-baseline`), its rate and distcache's ratio to it
too."""

import argparse
import csv
import pathlib
import re
import statistics
from collections import defaultdict

NAME = re.compile(r"(redis|distcache|baseline)-P(\d+)-r(\d+)\.csv")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("results")
    p.add_argument("--command", required=True, help="the redis-benchmark options, for the heading")
    a = p.parse_args()

    # runs[(depth, test)][target][round] = (rps, p50, p99)
    runs = defaultdict(lambda: defaultdict(dict))
    tests = []
    for f in sorted(pathlib.Path(a.results).glob("*.csv")):
        m = NAME.fullmatch(f.name)
        if not m:
            continue
        target, depth, rnd = m[1], int(m[2]), int(m[3])
        for row in csv.DictReader(f.open()):
            test = row["test"].split()[0]
            if test not in tests:
                tests.append(test)
            runs[(depth, test)][target][rnd] = (
                float(row["rps"]), float(row["p50_latency_ms"]), float(row["p99_latency_ms"]))
    if not runs:
        print("RESP case: no results")
        return
    rounds = max(len(t) for v in runs.values() for t in v.values())
    baseline = any("baseline" in v for v in runs.values())
    print(f"RESP: `redis-benchmark {a.command}`, against redis-server and one distcache master "
          f"(3 auxiliaries, REPLICAS=1){' and a baseline build' if baseline else ''}, alternated, "
          f"{rounds} rounds; medians over the rounds.")
    print()
    head = "| -P | test | Redis rps | distcache rps | × Redis (per-round range) "
    rule = "|---:|---|---:|---:|---:"
    if baseline:
        head += "| baseline rps | baseline × Redis | distcache × baseline (per-round range) "
        rule += "|---:|---:|---:"
    print(head + "| Redis p50 / p99 ms | distcache p50 / p99 ms |")
    print(rule + "|---:|---:|")

    def med(rs, i):
        return statistics.median(v[i] for v in rs.values())

    def ratio(num, den):
        per_round = [num[k][0] / den[k][0] for k in num if k in den]
        spread = f"{min(per_round):.2f}–{max(per_round):.2f}" if per_round else "–"
        return f"**{med(num, 0) / med(den, 0):.2f}** ({spread})"

    for depth in sorted({d for d, _ in runs}):
        for test in tests:
            by = runs.get((depth, test))
            if not by or "redis" not in by or "distcache" not in by:
                continue
            r, d = by["redis"], by["distcache"]
            line = f"| {depth} | {test} | {med(r, 0):,.0f} | {med(d, 0):,.0f} | {ratio(d, r)} "
            if baseline:
                b = by.get("baseline")
                line += (f"| {med(b, 0):,.0f} | {med(b, 0) / med(r, 0):.2f} | {ratio(d, b)} " if b
                         else "| – | – | – ")
            print(line + f"| {med(r, 1):.2f} / {med(r, 2):.2f} | {med(d, 1):.2f} / {med(d, 2):.2f} |")

if __name__ == "__main__":
    main()
