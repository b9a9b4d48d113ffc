#!/usr/bin/env python3
"""Turns the raw results of bench/run.sh (distcache bench --json documents
and redis-benchmark --csv output in one directory) into the Markdown table
of docs/benchmarks.md, with every throughput also given as a ratio to Redis
(d) and to nginx's fixed answer (e)."""

import argparse
import csv
import json
import pathlib

GET_SHARE = 0.9  # the standard mix: 90% GET, 10% SET

CASES = [
    ("a-replicas-1", "(a) 1 master, 3 auxiliaries, REPLICAS=1"),
    ("a-replicas-2", "(a) 1 master, 3 auxiliaries, REPLICAS=2"),
    ("a-replicas-1-writes", "(a) 1 master, 3 auxiliaries, REPLICAS=1, writes only (100% POST)"),
    ("a-replicas-1-near", "(a) 1 master, 3 auxiliaries, REPLICAS=1, near cache (NEAR_CACHE_SIZE=10000, NEAR_CACHE_TTL=1)"),
    ("b-nginx-2-masters", "(b) nginx, 2 masters, 3 auxiliaries, REPLICAS=2"),
    ("c", "(c) one auxiliary directly"),
    ("d-redis", "(d) Redis, redis-benchmark"),
    ("e-nginx-fixed", "(e) nginx fixed 200, GET only"),
]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("results")
    for opt in ["started", "commit", "version", "machine", "duration", "warmup", "connections", "keys",
                "value-size", "lb-source"]:
        p.add_argument("--" + opt, required=True)
    a = p.parse_args()
    results = pathlib.Path(a.results)

    rows = {}
    for name, _ in CASES:
        f = results / f"{name}.json"
        if f.exists():
            r = json.loads(f.read_text())
            ops = r["operations"]
            rows[name] = {
                "rate": r["total"]["ops_per_sec"],
                "get": (ops["get"]["latency_ms"]["p50"], ops["get"]["latency_ms"]["p99"]),
                "set": (ops["set"]["latency_ms"]["p50"], ops["set"]["latency_ms"]["p99"])
                if ops["set"]["ops"] else None,
                "errors": r["total"]["errors"],
            }
    redis_csv = results / "d-redis.csv"
    if redis_csv.exists():
        by_test = {row["test"]: row for row in csv.DictReader(redis_csv.open())}
        get, set_ = by_test["GET"], by_test["SET"]
        get_rate, set_rate = float(get["rps"]), float(set_["rps"])
        rows["d-redis"] = {
            # The rate of a 90/10 mix in which each operation costs what it
            # cost alone: a weighted harmonic mean.
            "rate": 1.0 / (GET_SHARE / get_rate + (1 - GET_SHARE) / set_rate),
            "get": (float(get["p50_latency_ms"]), float(get["p99_latency_ms"])),
            "set": (float(set_["p50_latency_ms"]), float(set_["p99_latency_ms"])),
            "errors": 0,
            "note": f"GET {get_rate:,.0f}/s, SET {set_rate:,.0f}/s alone",
        }

    redis = rows.get("d-redis", {}).get("rate")
    ceiling = rows.get("e-nginx-fixed", {}).get("rate")

    def lat(pair):
        return "–" if pair is None else f"{pair[0]:.2f} / {pair[1]:.2f}"

    def ratio(x, base):
        return "–" if not base else f"{x / base:.2f}"

    print(f"Run {a.started}, commit `{a.commit}`, {a.version}.")
    print(f"Machine: {a.machine} (shared with other work: absolute figures drift; compare the ratios).")
    print(f"Workload: {a.connections} connections, {a.value_size}-byte values, {a.keys} keys (uniform), "
          f"90% GET / 10% POST, every key written first, {a.warmup} warm-up, {a.duration} measured per case. "
          f"Load balancer config: `{a.lb_source}`.")
    print()
    print("| case | ops/s | GET p50 / p99 ms | SET p50 / p99 ms | errors | × Redis (d) | × nginx fixed (e) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, label in CASES:
        if name == "c":
            print(f"| {label} | skipped: auxiliaries serve data only over the binary internal protocol, not HTTP "
                  "| | | | | |")
            continue
        r = rows.get(name)
        if r is None:
            print(f"| {label} | not run | | | | | |")
            continue
        label = label + (f" ({r['note']})" if "note" in r else "")
        print(f"| {label} | {r['rate']:,.0f} | {lat(r['get'])} | {lat(r['set'])} | {r['errors']} "
              f"| {ratio(r['rate'], redis)} | {ratio(r['rate'], ceiling)} |")


if __name__ == "__main__":
    main()
