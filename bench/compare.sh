#!/usr/bin/env bash
# Compares distcache binaries on case (a) of bench/run.sh (one master, three
# auxiliaries, REPLICAS=1; or another --case), interleaved so that each round
# runs every binary and the references (d) Redis and (e) nginx's fixed answer
# within a few minutes of each other, and prints each binary's rate as a
# ratio to both references of its round. docs/performance.md uses it for
# before/after and the allocators.
#
# Usage: bench/compare.sh [--rounds 2] [--duration 10s] [--case a1] NAME=BINARY[,SETTING=VALUE...]...
#
# Settings after the binary go to every auxiliary of that run, so one binary
# can be compared with itself: off=target/release/distcache,LOG_FSYNC=off.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
rounds=2
duration=10s
case_name=a1
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) rounds="$2"; shift 2 ;;
        --duration) duration="$2"; shift 2 ;;
        --case) case_name="$2"; shift 2 ;;
        -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) break ;;
    esac
done
[ $# -gt 0 ] || { echo "bench/compare.sh: give NAME=BINARY pairs" >&2; exit 2; }
out=$(mktemp -d /tmp/distcache-compare.XXXXXX)
declare -A json=([a1]=a-replicas-1 [a2]=a-replicas-2 [a1-set]=a-replicas-1-writes [a1-near]=a-replicas-1-near [b]=b-nginx-2-masters)
pairs=("$@")
for round in $(seq 1 "$rounds"); do
    # Each round starts with the next binary, so no binary always runs
    # first (right after the references, or on a cold machine).
    n=${#pairs[@]}
    for k in $(seq 0 $((n - 1))); do
        pair=${pairs[$(((k + round - 1) % n))]}
        name=${pair%%=*}; spec=${pair#*=}; bin=${spec%%,*}
        settings=""; [ "$spec" = "$bin" ] || settings=$(echo "${spec#*,}" | tr ',' ' ')
        AUX_ENV="$settings" "$repo/bench/run.sh" --bin "$bin" --cases "$case_name" --duration "$duration" \
            --out "$out/r$round-$name.md" >/dev/null 2>&1
    done
    first_bin=${1#*=}; first_bin=${first_bin%%,*}
    "$repo/bench/run.sh" --bin "$first_bin" --cases d,e --duration "$duration" --out "$out/r$round-refs.md" >/dev/null 2>&1
done
python3 - "$out" "$rounds" "$case_name" "$@" <<'PY'
import re, sys, pathlib
out, rounds, case = pathlib.Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
names = [p.split("=", 1)[0] for p in sys.argv[4:]]
def rate(md, prefix):
    for line in md.read_text().splitlines():
        if line.startswith("| " + prefix):
            cells = [c.strip() for c in line.split("|")]
            if cells[2] and cells[2] != "not run":
                return float(cells[2].replace(",", "")), cells[3]
    return None, None
label = {"a1": "(a) 1 master, 3 auxiliaries, REPLICAS=1 |", "a2": "(a) 1 master, 3 auxiliaries, REPLICAS=2",
         "a1-set": "(a) 1 master, 3 auxiliaries, REPLICAS=1, writes only",
         "a1-near": "(a) 1 master, 3 auxiliaries, REPLICAS=1, near", "b": "(b)"}[case]
print(f"| round | binary | ops/s | GET p50 / p99 ms | × Redis (d) | × nginx fixed (e) |")
print("|---|---|---:|---:|---:|---:|")
for r in range(1, rounds + 1):
    refs = out / f"r{r}-refs.md"
    redis, _ = rate(refs, "(d)")
    nginx, _ = rate(refs, "(e)")
    for n in names:
        x, lat = rate(out / f"r{r}-{n}.md", label.rstrip(" |") if case != "a1" else "(a) 1 master, 3 auxiliaries, REPLICAS=1 |")
        if x is None:
            print(f"| {r} | {n} | failed | | | |"); continue
        print(f"| {r} | {n} | {x:,.0f} | {lat} | {x / redis:.2f} | {x / nginx:.2f} |")
    print(f"| {r} | (d) Redis | {redis:,.0f} | | 1.00 | {redis / nginx:.2f} |")
    print(f"| {r} | (e) nginx fixed | {nginx:,.0f} | | {nginx / redis:.2f} | 1.00 |")
PY
echo "raw tables: $out" >&2
