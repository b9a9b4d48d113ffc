#!/usr/bin/env bash
# Memory per item: N items of 16-byte keys and 100-byte values (JSON text:
# a string of 98 characters and its quotes) in one auxiliary, and the same
# keys and values in Redis, each measured the same way: resident memory
# (VmRSS) of the process after loading, less before, divided by N, less the
# 116 bytes of key and value. docs/performance.md has the results.
#
# Usage: bench/memory.sh [--bin PATH] [--items N] [--ttl SECONDS]
#   --items  items to load (default 1000000)
#   --ttl    give every item this TTL, on both sides (default: none)
# Needs redis-server, redis-cli, curl and python3.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
bin="$repo/target/release/distcache"
items=1000000
ttl=0
while [ $# -gt 0 ]; do
    case "$1" in
        --bin) bin="$2"; shift 2 ;;
        --items) items="$2"; shift 2 ;;
        --ttl) ttl="$2"; shift 2 ;;
        -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench/memory.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
source "$repo/bench/lib.bash"
bench_work memory

# report WHAT BEFORE_KIB AFTER_KIB: the line with the figures.
report() {
    python3 - "$1" "$2" "$3" "$items" <<'EOF'
import sys
what, before, after, items = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
per = (after - before) * 1024 / items
print(f"{what}: RSS {before / 1024:.1f} MiB empty, {after / 1024:.1f} MiB with {items:,} items: "
      f"{per:.1f} bytes per item, {per - 116:.1f} beyond the 116 bytes of key and value")
EOF
}

port=$(free_port)
start master env RESP_PORT=0 RUST_LOG=warn PORT="$port" BIND_ADDR=127.0.0.1 NODE_ID=mem-master REPLICAS=1 \
    HEALTH_CHECK_INTERVAL=1 BACKUP_INTERVAL=0 BACKUP_DIR="$tmp/backup-master" "$bin" master
start aux env RUST_LOG=warn PORT=0 DATA_PORT=0 BIND_ADDR=127.0.0.1 NODE_ID=mem-aux \
    MASTER_ADDRESS="127.0.0.1:$port" CACHE_SIZE=$((items * 2)) BACKUP_INTERVAL=0 \
    BACKUP_DIR="$tmp/backup-aux" "$bin" aux
aux_pid=${pids[-1]}
wait_http "http://127.0.0.1:$port/health" '"auxiliaries_up": ?1[,}]' "the auxiliary up"
sleep 1
before=$(rss_kib "$aux_pid")
python3 - "$port" "$items" "$ttl" <<'EOF'
import http.client, json, sys
port, items, ttl = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
conn = http.client.HTTPConnection("127.0.0.1", port)
value = "v" * 98  # 100 bytes of JSON text with its quotes
extra = {"ttl": ttl} if ttl else {}
for start in range(0, items, 1000):
    batch = [{"key": f"key-{i:012d}", "value": value, **extra} for i in range(start, min(items, start + 1000))]
    conn.request("POST", "/data/bulk", json.dumps(batch), {"Content-Type": "application/json"})
    r = conn.getresponse()
    body = json.loads(r.read())
    assert r.status == 200 and body["stored"] == len(batch), body
EOF
sleep 1
after=$(rss_kib "$aux_pid")
report distcache "$before" "$after"

rport=$(free_port)
start redis redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no
redis_pid=${pids[-1]}
for _ in $(seq 1 100); do redis-cli -p "$rport" ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
before=$(rss_kib "$redis_pid")
python3 - "$items" "$ttl" <<'EOF' | redis-cli -p "$rport" --pipe >/dev/null
import sys
items, ttl = int(sys.argv[1]), int(sys.argv[2])
value = "v" * 100  # Redis stores bytes, not JSON: the same 100 bytes
out = sys.stdout.buffer
ex = f"$2\r\nEX\r\n${len(str(ttl))}\r\n{ttl}\r\n" if ttl else ""
for i in range(items):
    k = f"key-{i:012d}"
    out.write(f"*{5 if ttl else 3}\r\n$3\r\nSET\r\n$16\r\n{k}\r\n$100\r\n{value}\r\n{ex}".encode())
EOF
sleep 1
after=$(rss_kib "$redis_pid")
[ "$(redis-cli -p "$rport" dbsize)" = "$items" ] || { echo "bench/memory.sh: redis holds $(redis-cli -p "$rport" dbsize) keys" >&2; exit 1; }
report redis "$before" "$after"
