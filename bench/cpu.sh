#!/usr/bin/env bash
# CPU time per request over RESP: the processor time (user + system, from
# /proc/PID/stat) that one master and its three auxiliaries (REPLICAS=1)
# spend on a fixed redis-benchmark load, and what redis-server spends on
# the same load, per request. Unlike a rate, a process's CPU time counts
# its own work (the kernel's for its system calls included) and not the
# other programs sharing the machine's cores, so it compares builds on a
# busy machine where rates swing by a factor of two (docs/benchmarks.md).
#
# Each round runs redis-server, then every binary given, each on a fresh
# cluster; the table has the medians over the rounds.
#
# Usage: bench/cpu.sh [--rounds 3] [--requests 200000] [--pipeline 16] [--tests get,set] NAME=BINARY...
#   e.g. bench/cpu.sh --pipeline 16 before=/tmp/distcache-93c9da4 after=target/release/distcache
#
# Needs redis-server, redis-benchmark, redis-cli, curl and python3.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
rounds=3
requests=200000
pipeline=16
tests=get,set
binaries=()
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) rounds="$2"; shift 2 ;;
        --requests) requests="$2"; shift 2 ;;
        --pipeline) pipeline="$2"; shift 2 ;;
        --tests) tests="$2"; shift 2 ;;
        -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *=*) binaries+=("$1"); shift ;;
        *) echo "bench/cpu.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
[ ${#binaries[@]} -gt 0 ] || { echo "bench/cpu.sh: give at least one NAME=BINARY" >&2; exit 2; }
source "$repo/bench/lib.bash"
bench_work cpu
ticks=$(getconf CLK_TCK)

# load PORT: the measured redis-benchmark run (after the keys are written).
load() {
    redis-benchmark -p "$1" -c 64 -d 100 -r 10000 -n "$requests" -t "$tests" -P "$pipeline" -q >/dev/null
}

# One row of results: NAME ROUND WHO TICKS.
results="$tmp/results.txt"
: >"$results"

measure_redis() {
    local round=$1 port before
    port=$(free_port)
    start redis redis-server --port "$port" --save '' --appendonly no
    for _ in $(seq 1 100); do redis-cli -p "$port" ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
    redis-benchmark -p "$port" -c 64 -d 100 -r 10000 -n 20000 -t set -P "$pipeline" -q >/dev/null
    before=$(cpu_ticks "${pids[-1]}")
    load "$port"
    echo "redis $round redis-server $(($(cpu_ticks "${pids[-1]}") - before))" >>"$results"
    stop_all
}

measure_distcache() {
    local name=$1 bin=$2 round=$3 master aux before_m before_a
    start_resp_cluster "$bin" "$tmp/$name-$round" cpu
    master=${cluster_pids[0]}
    aux=("${cluster_pids[@]:1}")
    redis-benchmark -p "$resp" -c 64 -d 100 -r 10000 -n 20000 -t set -P "$pipeline" -q >/dev/null
    before_m=$(cpu_ticks "$master")
    before_a=$(cpu_ticks "${aux[@]}")
    load "$resp"
    echo "$name $round master $(($(cpu_ticks "$master") - before_m))" >>"$results"
    echo "$name $round auxiliaries $(($(cpu_ticks "${aux[@]}") - before_a))" >>"$results"
    stop_all
}

for round in $(seq 1 "$rounds"); do
    log "round $round: redis-server"
    measure_redis "$round"
    for entry in "${binaries[@]}"; do
        log "round $round: ${entry%%=*}"
        measure_distcache "${entry%%=*}" "${entry#*=}" "$round"
    done
done

total=$((requests * $(echo "$tests" | tr ',' '\n' | wc -l)))
python3 - "$results" "$ticks" "$total" "$pipeline" "$tests" "$rounds" <<'EOF'
import collections, statistics, sys
path, ticks, total, pipeline, tests, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), *sys.argv[4:]
rows = collections.defaultdict(lambda: collections.defaultdict(list))
for line in open(path):
    name, _, who, t = line.split()
    rows[name][who].append(int(t))
us = lambda t: t / ticks * 1e6 / total
redis = statistics.median(rows.pop("redis")["redis-server"])
print(f"CPU time per request: redis-benchmark -t {tests} -c 64 -d 100 -r 10000 -P {pipeline}, "
      f"{total:,} requests, {rounds} rounds, medians (clock tick {1e3 / ticks:.0f} ms)\n")
print("| build | master µs | auxiliaries µs | cluster µs | × redis-server's |")
print("|---|---:|---:|---:|---:|")
print(f"| redis-server | | | {us(redis):.2f} | 1.00 |")
for name, who in rows.items():
    m, a = statistics.median(who["master"]), statistics.median(who["auxiliaries"])
    print(f"| {name} | {us(m):.2f} | {us(a):.2f} | {us(m + a):.2f} | {(m + a) / redis:.2f} |")
EOF
