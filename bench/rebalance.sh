#!/usr/bin/env bash
# Rebalance benchmark (docs/benchmarks.md, "Rebalancing"): load N keys into
# a cluster of one master and three auxiliaries (REPLICAS=2), add a fourth
# auxiliary, and time until every key is in place on the new ring.
#
# Usage: bench/rebalance.sh [--keys 1000000] [--value-size 100] [--bin PATH]
#
# Prints the time from the new node's start to the committed ring, the
# round's own duration (from the master's log), the copies moved (from
# distcache_keys_moved_total) and copies moved per second. Every process it
# starts is stopped on exit.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
keys=1000000
value_size=100
bin="${DISTCACHE_BIN:-}"
while [ $# -gt 0 ]; do
    case "$1" in
        --keys) keys="$2"; shift 2 ;;
        --value-size) value_size="$2"; shift 2 ;;
        --bin) bin="$2"; shift 2 ;;
        -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench/rebalance.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
if [ -z "$bin" ]; then
    (cd "$repo" && cargo build --release -p distcache >&2)
    bin="$repo/target/release/distcache"
fi
source "$repo/bench/lib.bash"
bench_work rebalance
mport=$(free_port)
master="127.0.0.1:$mport"
start master env RESP_PORT=0 PORT="$mport" BIND_ADDR=127.0.0.1 NODE_ID=master-1 REPLICAS=2 HEALTH_CHECK_INTERVAL=1 \
    BACKUP_INTERVAL=0 RUST_LOG=info "$bin" master
start_aux() {
    start "$1" env PORT=0 DATA_PORT=0 BIND_ADDR=127.0.0.1 NODE_ID="$1" MASTER_ADDRESS="$master" \
        CACHE_SIZE=$((keys * 2)) BACKUP_INTERVAL=0 LEAVE_ON_SHUTDOWN=false RUST_LOG=info \
        "$bin" aux
}
for i in 1 2 3; do start_aux "aux-$i"; done
settled() { # members as a JSON list
    python3 - "$master" "$1" <<'PY'
import json, sys, time, urllib.request
master, want = sys.argv[1], json.loads(sys.argv[2])
deadline = time.time() + 900
while time.time() < deadline:
    try:
        ring = json.load(urllib.request.urlopen(f"http://{master}/ring", timeout=5))
        if not ring["rebalancing"] and ring["committed"] == want:
            sys.exit(0)
    except Exception:
        pass
    time.sleep(0.05)
sys.exit("never settled")
PY
}
settled '["aux-1","aux-2","aux-3"]'

echo "loading $keys keys of $value_size bytes..." >&2
python3 - "$master" "$keys" "$value_size" <<'PY'
import json, sys, urllib.request
master, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
value = "x" * size
batch = 1000
for start in range(0, n, batch):
    items = [{"key": f"key-{i:012d}", "value": value} for i in range(start, min(n, start + batch))]
    req = urllib.request.Request(f"http://{master}/data/bulk", data=json.dumps(items).encode(),
                                 headers={"content-type": "application/json"})
    body = json.load(urllib.request.urlopen(req, timeout=60))
    if body["stored"] != len(items):
        sys.exit(f"bulk write failed: {body}")
PY

metric() { curl -s "http://$master/metrics" | awk -v m="$1" '$1==m{print $2}'; }
moved_before=$(metric distcache_keys_moved_total)
round_before=$(metric distcache_rebalance_duration_seconds_sum)
t0=$(date +%s.%N)
start_aux aux-4
settled '["aux-1","aux-2","aux-3","aux-4"]'
t1=$(date +%s.%N)
# The round ends with a clean-up pass after the new ring is committed.
while [ "$(metric distcache_rebalance_in_progress)" != "0" ]; do sleep 0.05; done
moved_after=$(metric distcache_keys_moved_total)
round_after=$(metric distcache_rebalance_duration_seconds_sum)
echo "work dir: $tmp" >&2
python3 - "$t0" "$t1" "$moved_before" "$moved_after" "$round_before" "$round_after" "$keys" <<'PY'
import sys
t0, t1, before, after, r0, r1, keys = sys.argv[1:]
wall = float(t1) - float(t0)
moved = float(after) - float(before)
round_s = float(r1) - float(r0)
print(f"keys in the cluster:        {int(keys):,} (2 copies each)")
print(f"copies moved to the 4th node: {int(moved):,} (ideal {int(keys)*2//4:,})")
print(f"new node start to keys in place (committed): {wall:.2f} s (includes start-up and the first health check)")
print(f"whole round incl. clean-up pass: {round_s:.2f} s")
print(f"copies moved per second (to committed): {moved/wall:,.0f}")
PY
