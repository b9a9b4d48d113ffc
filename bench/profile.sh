#!/usr/bin/env bash
# Profiles one master's request path with valgrind's callgrind, which counts
# instructions and so gives the same figures on a busy machine: one master
# (under callgrind) and three auxiliaries (REPLICAS=1), a fixed load of
# distcache bench (the standard 90/10 mix, 100-byte values, 10k keys, after a
# preload), then the top functions by self cost and the instructions per
# request. docs/performance.md shows its output before and after.
#
# With --resp the load is redis-benchmark on the master's RESP port instead:
# SET over the 10k keys first (uninstrumented), then --requests each of the
# --resp-tests (default get,set), 64 connections, 100-byte values, at
# --pipeline (default 1); the cost per request is over all of them.
#
# With --aux the first auxiliary runs under callgrind instead of the master
# (it leads about a third of the keys); its cost is still divided by all the
# cluster's requests, so the master's and the three auxiliaries' figures add
# up to the cluster's work per request (the auxiliary's times three).
#
# Usage: bench/profile.sh [--bin PATH] [--requests N] [--out DIR] [--aux] [--resp [--resp-tests T] [--pipeline P]] [-- MASTER_ENV...]
#   --bin       the distcache binary (default target/release/distcache)
#   --requests  measured requests (default 20000; with --resp, per test)
#   --out       where callgrind.out and the annotated report go (default bench/results/profile-<time>)
#   after --, VAR=value settings for the master (e.g. NEAR_CACHE_SIZE=10000)
#
# Needs valgrind (callgrind_annotate), curl and python3; with --resp, redis-benchmark and redis-cli.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
bin="$repo/target/release/distcache"
requests=20000
out=""
resp=""
profiled=master
resp_tests=get,set
pipeline=1
while [ $# -gt 0 ]; do
    case "$1" in
        --bin) bin="$2"; shift 2 ;;
        --requests) requests="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        --resp) resp=1; shift ;;
        --aux) profiled=aux; shift ;;
        --resp-tests) resp_tests="$2"; shift 2 ;;
        --pipeline) pipeline="$2"; shift 2 ;;
        --) shift; break ;;
        -h|--help) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench/profile.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
[ -n "$out" ] || out="$repo/bench/results/profile-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"
source "$repo/bench/lib.bash"
bench_work profile
port=$(free_port)
resp_port=0
[ -z "$resp" ] || resp_port=$(free_port)

callgrind=(valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out/callgrind.out")
# The command line of $1 (master or aux-N): under callgrind when profiled.
under() { if [ "$1" = "$profiled" ] || [ "$1" = "$profiled-1" ]; then echo "${callgrind[@]}"; fi; }
# shellcheck disable=SC2046 # `under` prints words to run the binary with.
start master env RESP_PORT="$resp_port" RUST_LOG=warn PORT="$port" BIND_ADDR=127.0.0.1 NODE_ID=profile-master REPLICAS=1 \
    HEALTH_CHECK_INTERVAL=1 BACKUP_INTERVAL=0 BACKUP_DIR="$tmp/backup-master" "$@" \
    $(under master) "$bin" master
master_pid=${pids[-1]}
profiled_pid=$master_pid
for i in 1 2 3; do
    # shellcheck disable=SC2046
    start "aux-$i" env RUST_LOG=warn PORT=0 DATA_PORT=0 BIND_ADDR=127.0.0.1 NODE_ID="profile-aux-$i" \
        MASTER_ADDRESS="127.0.0.1:$port" CACHE_SIZE=100000 BACKUP_DIR="$tmp/backup-aux-$i" $(under "aux-$i") "$bin" aux
    [ "$profiled" != aux ] || [ "$i" != 1 ] || profiled_pid=${pids[-1]}
done
# The joins' handoff passes end before the preload, so that none of their
# key scans lands in the measured requests (under callgrind a pass is slow).
for _ in $(seq 1 600); do
    curl -fsS --max-time 2 "http://127.0.0.1:$port/ring" 2>/dev/null |
        grep -Eq '"committed": ?\[("[^"]*",? ?){3}\].*"rebalancing": ?false' && break
    sleep 0.1
done
# Preload every key and warm up, then zero the counters: the figures are
# the measured requests' alone (and the health checks meanwhile).
if [ -n "$resp" ]; then
    for _ in $(seq 1 600); do
        redis-cli -p "$resp_port" ping 2>/dev/null | grep -q PONG && break
        sleep 0.1
    done
    redis-benchmark -p "$resp_port" -c 64 -d 100 -r 10000 -n 20000 -t set -P "$pipeline" -q >/dev/null
    callgrind_control -i on "$profiled_pid" >/dev/null
    redis-benchmark -p "$resp_port" -c 64 -d 100 -r 10000 -n "$requests" -t "$resp_tests" -P "$pipeline" --csv \
        >"$out/redis-benchmark.csv"
    requests=$((requests * $(echo "$resp_tests" | tr ',' '\n' | wc -l)))
else
    "$bin" bench --url "http://127.0.0.1:$port" --connections 64 --requests 2000 \
        --keys 10000 --value-size 100 --mix get=90,set=10,del=0 --preload --seed 1 --timeout 30s >/dev/null
    callgrind_control -i on "$profiled_pid" >/dev/null
    "$bin" bench --url "http://127.0.0.1:$port" --connections 64 --requests "$requests" \
        --keys 10000 --value-size 100 --mix get=90,set=10,del=0 --seed 2 --json \
        --timeout 30s >"$out/bench.json"
fi
# Instrumentation off before the stop: an auxiliary told to stop hands its
# keys to the others (a scan of its store) and a master stops its tasks,
# neither of which is the requests' cost.
callgrind_control -i off "$profiled_pid" >/dev/null
kill -TERM "$profiled_pid"
wait "$profiled_pid" || true
callgrind_annotate --inclusive=no "$out/callgrind.out" >"$out/self.txt" 2>/dev/null
callgrind_annotate --inclusive=yes "$out/callgrind.out" >"$out/inclusive.txt" 2>/dev/null
total=$(grep -m1 -E '^[0-9,]+ .*PROGRAM TOTALS' "$out/self.txt" | awk '{gsub(",","",$1); print $1}')
python3 - "$total" "$requests" "$profiled" <<'EOF'
import sys
total, requests, who = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
who = "the master" if who == "master" else "the first auxiliary"
print(f"instructions in {who} during the measured requests: {total:,}; per request: {total / requests:,.0f}")
EOF
echo "top functions by self cost: $out/self.txt (inclusive: $out/inclusive.txt)"
