#!/usr/bin/env bash
# Lua scripts over RESP: what EVALSHA of a one-command script costs beside
# the command itself, in distcache and in redis-server, in the same rounds.
# For each target, redis-benchmark sends INCR counter:<rand>, then EVALSHA
# of `return redis.call('INCR', KEYS[1])` over the same keys; the table has
# the medians of each one's rate (requests a second) and CPU time per
# request (user + system of redis-server, or of the master and its three
# auxiliaries at REPLICAS=1, from /proc/PID/stat), and the ratios to
# Redis's. Rates swing with the machine's load; the CPU times less so
# (docs/benchmarks.md).
#
# Usage: bench/scripts.sh [--rounds 3] [--requests 100000] [--pipeline 1] [BINARY]
#   BINARY defaults to target/release/distcache.
#
# Needs redis-server, redis-benchmark, redis-cli, curl and python3.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
rounds=3
requests=100000
pipeline=1
bin="$repo/target/release/distcache"
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) rounds="$2"; shift 2 ;;
        --requests) requests="$2"; shift 2 ;;
        --pipeline) pipeline="$2"; shift 2 ;;
        -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "bench/scripts.sh: unknown argument $1" >&2; exit 2 ;;
        *) bin="$1"; shift ;;
    esac
done
source "$repo/bench/lib.bash"
bench_work scripts
ticks=$(getconf CLK_TCK)
script="return redis.call('INCR', KEYS[1])"


# One row of results: TARGET ROUND TEST RATE TICKS.
results="$tmp/results.txt"
: >"$results"

# run TARGET ROUND PORT PID...: both tests against PORT, the CPU of PIDs.
run() {
    local target=$1 round=$2 port=$3 sha before rate test
    shift 3
    sha=$(redis-cli -p "$port" script load "$script")
    for test in incr evalsha; do
        before=$(cpu_ticks "$@")
        if [ "$test" = incr ]; then
            rate=$(redis-benchmark -p "$port" -c 64 -r 10000 -n "$requests" -P "$pipeline" --csv \
                INCR "counter:__rand_int__" | tail -n 1 | cut -d, -f2 | tr -d '"')
        else
            rate=$(redis-benchmark -p "$port" -c 64 -r 10000 -n "$requests" -P "$pipeline" --csv \
                EVALSHA "$sha" 1 "counter:__rand_int__" | tail -n 1 | cut -d, -f2 | tr -d '"')
        fi
        echo "$target $round $test $rate $(($(cpu_ticks "$@") - before))" >>"$results"
    done
}

for round in $(seq 1 "$rounds"); do
    log "round $round: redis-server"
    port=$(free_port)
    start redis redis-server --port "$port" --save '' --appendonly no
    for _ in $(seq 1 100); do redis-cli -p "$port" ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
    run redis "$round" "$port" "${pids[-1]}"
    stop_all

    log "round $round: distcache"
    start_resp_cluster "$bin" "$tmp/round-$round" scripts
    run distcache "$round" "$resp" "${cluster_pids[@]}"
    stop_all
done

python3 - "$results" "$ticks" "$requests" "$pipeline" "$rounds" <<'EOF'
import collections, statistics, sys
path, ticks, requests, pipeline, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), *sys.argv[4:]
rate = collections.defaultdict(list)
cpu = collections.defaultdict(list)
for line in open(path):
    target, _, test, r, t = line.split()
    rate[target, test].append(float(r))
    cpu[target, test].append(int(t) / ticks * 1e6 / requests)
med = lambda xs: statistics.median(xs)
print(f"redis-benchmark -c 64 -r 10000 -n {requests:,} -P {pipeline}, {rounds} rounds, medians\n")
print("| target | command | requests/s | × Redis's rate | CPU µs per request | × Redis's CPU |")
print("|---|---|---:|---:|---:|---:|")
for target in ("redis", "distcache"):
    for test, name in (("incr", "INCR"), ("evalsha", "EVALSHA of INCR")):
        r, c = med(rate[target, test]), med(cpu[target, test])
        rr, rc = med(rate["redis", test]), med(cpu["redis", test])
        print(f"| {target} | {name} | {r:,.0f} | {r / rr:.2f} | {c:.2f} | {c / rc:.2f} |")
for target in ("redis", "distcache"):
    extra = med(cpu[target, "evalsha"]) - med(cpu[target, "incr"])
    print(f"\n{target}: a script costs {extra:.2f} µs of CPU more than its command alone", end="")
print()
EOF
