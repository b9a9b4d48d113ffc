# Shared by the bench scripts (`source "$repo/bench/lib.bash"`): a work
# directory, background processes that are always stopped, and small probes.
#
#   bench_work NAME    make $tmp (/tmp/distcache-NAME.XXXXXX) and stop every
#                      process started with `start`, then remove $tmp, on exit
#                      (KEEP_WORK=1 keeps $tmp, to read the logs)
#   start NAME CMD...  run CMD in the background, output in $tmp/NAME.log
#   stop_all           stop every process started so far, and wait for them
#   free_port          a TCP port free on 127.0.0.1 now
#   wait_http URL PATTERN WHAT
#                      wait up to 30 s for URL's body to match PATTERN (grep
#                      -E), else print the logs' tails and exit 1
#   wait_settled URL N wait (as wait_http) until the master at URL has N
#                      auxiliaries in its committed ring and no rebalance
#                      under way: a load started sooner races the joins'
#                      handoff passes, whose key scans then count as its cost
#   start_resp_cluster BIN DIR NAME
#                      one master (RESP on, REPLICAS=1) and three auxiliaries
#                      of BIN, data under DIR, node ids NAME-master and
#                      NAME-aux-N, up and settled; sets $resp (the master's
#                      RESP port) and $cluster_pids (master first)
#   cpu_ticks PID...   CPU time of the PIDs so far, in clock ticks (user +
#                      system, from /proc/PID/stat)
#   rss_kib PID        resident memory of PID in KiB
#   log MESSAGE        MESSAGE on stderr, after the UTC time

pids=()

bench_work() {
    tmp=$(mktemp -d "/tmp/distcache-$1.XXXXXX")
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
}

bench_cleanup() {
    stop_all
    if [ -n "${KEEP_WORK:-}" ]; then
        echo "work directory kept: $tmp" >&2
    else
        rm -rf "$tmp"
    fi
}

start() {
    local name=$1
    shift
    "$@" >"$tmp/$name.log" 2>&1 &
    pids+=($!)
}

stop_all() {
    local pid
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    pids=()
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_http() {
    local i
    for i in $(seq 1 300); do
        if curl -fsS --max-time 1 "$1" 2>/dev/null | grep -Eq "$2"; then return 0; fi
        sleep 0.1
    done
    echo "$(basename "$0"): timed out waiting for $3 ($1)" >&2
    tail -n 20 "$tmp"/*.log >&2 || true
    exit 1
}

wait_settled() {
    wait_http "$1/ring" "\"committed\": ?\\[(\"[^\"]*\",? ?){$2}\\].*\"rebalancing\": ?false" "$2 auxiliaries in a settled ring"
}

start_resp_cluster() {
    local bin=$1 dir=$2 name=$3 port i
    port=$(free_port)
    resp=$(free_port)
    start master env RESP_PORT="$resp" RUST_LOG=warn PORT="$port" BIND_ADDR=127.0.0.1 NODE_ID="$name-master" \
        REPLICAS=1 HEALTH_CHECK_INTERVAL=1 BACKUP_INTERVAL=0 BACKUP_DIR="$dir/backup-master" "$bin" master
    cluster_pids=("${pids[-1]}")
    for i in 1 2 3; do
        start "aux-$i" env RUST_LOG=warn PORT=0 DATA_PORT=0 BIND_ADDR=127.0.0.1 NODE_ID="$name-aux-$i" \
            MASTER_ADDRESS="127.0.0.1:$port" CACHE_SIZE=100000 BACKUP_DIR="$dir/backup-aux-$i" "$bin" aux
        cluster_pids+=("${pids[-1]}")
    done
    wait_http "http://127.0.0.1:$port/health" '"auxiliaries_up": ?3[,}]' "3 auxiliaries up"
    wait_settled "http://127.0.0.1:$port" 3
    for i in $(seq 1 100); do redis-cli -p "$resp" ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
}

cpu_ticks() {
    local pid total=0
    for pid in "$@"; do
        total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
    done
    echo "$total"
}

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

log() { printf '%s  %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
