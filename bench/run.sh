#!/usr/bin/env bash
# The standard benchmark set of docs/benchmarks.md, on this machine, in one
# run, so that the figures can be compared with each other:
#
#   (a) distcache bench -> one master -> 3 auxiliaries, REPLICAS=1 and 2,
#       REPLICAS=1 with writes only (case a1-set: the write path, e.g. for
#       the mutation log's cost), and REPLICAS=1 with the master's near
#       cache on (NEAR_CACHE_SIZE=10000)
#   (b) distcache bench -> nginx (deploy/nginx/nginx.conf) -> 2 masters -> 3 auxiliaries, REPLICAS=2
#   (c) directly against an auxiliary: skipped, auxiliaries serve data only
#       over the binary internal protocol, not HTTP
#   (d) redis-benchmark -> redis-server (Debian's), GET and SET
#   (e) distcache bench -> nginx returning a fixed 200 (the HTTP ceiling)
#   (resp) redis-benchmark over RESP -> one master -> 3 auxiliaries,
#       REPLICAS=1, and -> redis-server, alternated per round, at -P 1 and
#       -P 16: -t set,get,incr,lpush,sadd,hset,zadd -c 64 -d 100 -r 10000, one test per run
#   (commands) the same commands over HTTP: distcache bench --commands X
#       -> POST / of one master -> 3 auxiliaries, REPLICAS=1, and
#       redis-benchmark -> redis-server with the same commands on the same
#       key shapes (LPUSH bench-list:__rand_int__ <value> ...), alternated
#       per command and round
#
# Standard workload: 64 connections, 100-byte values, 10k keys (uniform),
# 90% GET / 10% POST, every key written once first, 2 s warm-up.
#
# Usage: bench/run.sh [--duration 10s] [--connections 64] [--bin PATH] [--out FILE] [--cases LIST]
#                     [--resp-rounds 3] [--resp-requests N1,N16] [--resp-baseline PATH]
#                     [--commands-rounds 3] [--commands-requests N] [--commands-duration D]
#   --duration     measured time per case (default 10s; use 60s for steadier figures)
#   --connections  concurrent connections (default 64)
#   --bin          the distcache binary (default: cargo build --release, target/release/distcache)
#   --out          where the Markdown results go (default bench/results/<UTC time>.md)
#   --cases        comma-separated subset of a1,a2,a1-set,a1-near,b,d,e,resp,commands
#                  (default: all but a1-set)
#   --resp-rounds  rounds of the RESP case, each running Redis then distcache (default 3)
#   --resp-requests  redis-benchmark -n per test at -P 1 and at -P 16 (default 100000,500000:
#                  about 1 s per test for Redis here, a few for distcache)
#   --resp-baseline  another distcache binary (a build before a change): its own
#                  cluster beside the first, run after it in every round of the RESP case
#   --commands-rounds  rounds of the commands case, each running every command
#                  against Redis then distcache (default 3)
#   --commands-requests  redis-benchmark -n per command and round (default 100000)
#   --commands-duration  distcache bench --duration per command and round, after a
#                  0.5 s warm-up (default 3s)
#
# AUX_WORKER_THREADS=N and MASTER_WORKER_THREADS=N in the environment give
# each auxiliary or master N runtime threads (TOKIO_WORKER_THREADS; default:
# one per core). AUX_ENV="NAME=VALUE ..." adds settings to every auxiliary
# (e.g. AUX_ENV="LOG_FSYNC=off").
#
# Needs nginx, redis-server and redis-benchmark (scripts/deps.d/25-bench-tools.sh
# installs them on Debian), curl and python3. Every process it starts is
# stopped on exit, also on Ctrl-C.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"

duration=10s
connections=64
bin="${DISTCACHE_BIN:-}"
out=""
keys=10000
value_size=100
warmup=2s
cases=a1,a2,a1-near,b,d,e,resp,commands
resp_rounds=3
resp_requests=100000,500000
resp_baseline=""
commands_rounds=3
commands_requests=100000
commands_duration=3s
while [ $# -gt 0 ]; do
    case "$1" in
        --duration) duration="$2"; shift 2 ;;
        --connections) connections="$2"; shift 2 ;;
        --bin) bin="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        --cases) cases="$2"; shift 2 ;;
        --resp-rounds) resp_rounds="$2"; shift 2 ;;
        --resp-requests) resp_requests="$2"; shift 2 ;;
        --resp-baseline) resp_baseline="$2"; shift 2 ;;
        --commands-rounds) commands_rounds="$2"; shift 2 ;;
        --commands-requests) commands_requests="$2"; shift 2 ;;
        --commands-duration) commands_duration="$2"; shift 2 ;;
        -h|--help) sed -n '2,53p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench/run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
for tool in "$nginx_bin" redis-server redis-benchmark curl python3; do
    command -v "$tool" >/dev/null 2>&1 || {
        echo "bench/run.sh: $tool is missing (run scripts/deps.d/25-bench-tools.sh)" >&2
        exit 2
    }
done

if [ -z "$bin" ]; then
    (cd "$repo" && cargo build --release -p distcache)
    bin="$repo/target/release/distcache"
fi
[ -x "$bin" ] || { echo "bench/run.sh: no distcache binary at $bin" >&2; exit 2; }
[ -n "$out" ] || out="$repo/bench/results/$(date -u +%Y%m%dT%H%M%SZ).md"
mkdir -p "$(dirname "$out")"

source "$repo/bench/lib.bash"
bench_work bench

want() { case ",$cases," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }

# start_cluster MASTERS REPLICAS [NEAR_CACHE_SIZE]: sets $master_urls (comma-separated) and $master_addrs (space-separated).
# With $resp_port set, the first master serves RESP there (else RESP is off);
# $cluster_bin (default --bin) and $cluster_tag (names of logs and backup
# directories) let a second cluster run beside the first.
start_cluster() {
    local masters=$1 replicas=$2 near=${3:-0} i ports=() peers
    for i in $(seq 1 "$masters"); do ports+=("$(free_port)"); done
    master_addrs=""
    for p in "${ports[@]}"; do master_addrs+="127.0.0.1:$p "; done
    master_addrs=${master_addrs% }
    for i in $(seq 1 "$masters"); do
        peers=$(echo "$master_addrs" | tr ' ' '\n' | grep -v ":${ports[$((i - 1))]}\$" | paste -sd, || true)
        start "${cluster_tag:-}master-$i" env RESP_PORT="$([ "$i" = 1 ] && echo "${resp_port:-0}" || echo 0)" RUST_LOG=warn PORT="${ports[$((i - 1))]}" BIND_ADDR=127.0.0.1 \
            NODE_ID="bench-master-$i" MASTER_PEERS="$peers" REPLICAS="$replicas" NEAR_CACHE_SIZE="$near" \
            ${MASTER_WORKER_THREADS:+TOKIO_WORKER_THREADS=$MASTER_WORKER_THREADS} \
            HEALTH_CHECK_INTERVAL=1 BACKUP_DIR="$tmp/${cluster_tag:-}backup-master-$i" "${cluster_bin:-$bin}" master
    done
    for i in 1 2 3; do
        start "${cluster_tag:-}aux-$i" env RUST_LOG=warn PORT=0 DATA_PORT=0 BIND_ADDR=127.0.0.1 NODE_ID="bench-aux-$i" \
            MASTER_ADDRESS="$(echo "$master_addrs" | tr ' ' ',')" CACHE_SIZE=100000 \
            ${AUX_WORKER_THREADS:+TOKIO_WORKER_THREADS=$AUX_WORKER_THREADS} \
            BACKUP_DIR="$tmp/${cluster_tag:-}backup-aux-$i" ${AUX_ENV:-} "${cluster_bin:-$bin}" aux
    done
    master_urls=""
    for a in $master_addrs; do
        wait_http "http://$a/health" '"auxiliaries_up": ?3[,}]' "3 auxiliaries up at master $a"
        wait_settled "http://$a" 3
        master_urls+="http://$a,"
    done
    master_urls=${master_urls%,}
}

# bench_case NAME URL MIX: runs distcache bench, JSON into $tmp/results/NAME.json.
bench_case() {
    local name=$1 url=$2 mix=$3
    log "case $name: distcache bench --url $url --mix $mix"
    "$bin" bench --url "$url" --connections "$connections" --duration "$duration" --warmup "$warmup" \
        --keys "$keys" --value-size "$value_size" --mix "$mix" --preload --json \
        >"$tmp/results/$name.json" || log "case $name: some requests failed (see errors in the table)"
}

mkdir -p "$tmp/results"
started=$(date -u '+%Y-%m-%d %H:%M UTC')

# (a) one master, three auxiliaries, REPLICAS 1 and 2.
for r in 1 2; do
    want "a$r" || continue
    start_cluster 1 "$r"
    bench_case "a-replicas-$r" "$master_urls" get=90,set=10,del=0
    stop_all
done
# (a) REPLICAS=1, writes only: the write path end to end.
if want a1-set; then
    start_cluster 1 1
    bench_case "a-replicas-1-writes" "$master_urls" get=0,set=100,del=0
    stop_all
fi
# The same as (a) REPLICAS=1 with the master's near cache holding every key
# (NEAR_CACHE_TTL at its default).
if want a1-near; then
    start_cluster 1 1 "$keys"
    bench_case "a-replicas-1-near" "$master_urls" get=90,set=10,del=0
    stop_all
fi

# (b) nginx in front of two masters. The shipped config, with only its
# upstream servers, listen port, pid and log paths rewritten; a minimal one
# of our own if it is not there.
lb_source="deploy/nginx/nginx.conf"
if want b; then
start_cluster 2 2
lb_port=$(free_port)
upstreams=$(for a in $master_addrs; do printf '        server %s;\n' "$a"; done)
shipped="$repo/deploy/nginx/nginx.conf"
if [ -f "$shipped" ]; then
    lb_source="deploy/nginx/nginx.conf"
    UPSTREAMS="$upstreams" awk -v listen="127.0.0.1:$lb_port" -v pid="$tmp/nginx-lb.pid" -v err="$tmp/nginx-lb.error.log" '
        /^[ \t]*server[ \t]+[A-Za-z0-9_.-]+:[0-9]+/ { if (!done) { print ENVIRON["UPSTREAMS"]; done = 1 } next }
        /^[ \t]*listen[ \t]+[0-9]+;/ { sub(/listen[ \t]+[0-9]+;/, "listen " listen ";") }
        /^[ \t]*pid[ \t]/ { sub(/pid[ \t].*;/, "pid " pid ";") }
        /^[ \t]*error_log[ \t]/ { sub(/error_log[ \t].*;/, "error_log " err " warn;") }
        { print }' "$shipped" >"$tmp/nginx-lb.conf"
else
    lb_source="bench/nginx-lb.conf"
    sed -e "s|@LISTEN@|127.0.0.1:$lb_port|" -e "s|@PID@|$tmp/nginx-lb.pid|" -e "s|@TMP@|$tmp|g" \
        "$repo/bench/nginx-lb.conf" | UPSTREAMS="$upstreams" awk '/@UPSTREAMS@/ { print ENVIRON["UPSTREAMS"]; next } { print }' \
        >"$tmp/nginx-lb.conf"
fi
grep -q "127.0.0.1:$lb_port" "$tmp/nginx-lb.conf" || { echo "bench/run.sh: could not template $lb_source" >&2; exit 1; }
"$nginx_bin" -t -q -p "$tmp" -c "$tmp/nginx-lb.conf"
start nginx-lb "$nginx_bin" -p "$tmp" -c "$tmp/nginx-lb.conf" -g 'daemon off;'
wait_http "http://127.0.0.1:$lb_port/health" '"status": ?"ok"' "nginx in front of the masters"
bench_case "b-nginx-2-masters" "http://127.0.0.1:$lb_port" get=90,set=10,del=0
stop_all
fi

# (d) Redis, same connections, value size and key space. redis-benchmark
# runs SET (which fills the key space) before GET.
if want d; then
redis_port=$(free_port)
start redis redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no
wait_http_redis() {
    local i
    for i in $(seq 1 100); do redis-cli -p "$redis_port" ping 2>/dev/null | grep -q PONG && return 0; sleep 0.1; done
    echo "bench/run.sh: redis-server did not start" >&2; exit 1
}
wait_http_redis
# As many requests as take about --duration at Redis's usual rate here.
secs=$(python3 -c "import re,sys; m=re.fullmatch(r'([0-9.]+)(ms|s|m)?','$duration'); v=float(m[1]); print(max(1,int(v/1000 if m[2]=='ms' else v*60 if m[2]=='m' else v)))")
log "case d-redis: redis-benchmark -c $connections -d $value_size -r $keys -t set,get"
redis-benchmark -p "$redis_port" -c "$connections" -d "$value_size" -r "$keys" -n $((secs * 40000)) \
    -t set,get --csv >"$tmp/results/d-redis.csv"
stop_all
fi

# (e) nginx with a fixed answer: GET only.
if want e; then
fixed_port=$(free_port)
sed -e "s|@LISTEN@|127.0.0.1:$fixed_port|" -e "s|@PID@|$tmp/nginx-fixed.pid|" -e "s|@TMP@|$tmp|g" \
    "$repo/bench/nginx-fixed.conf" >"$tmp/nginx-fixed.conf"
"$nginx_bin" -t -q -p "$tmp" -c "$tmp/nginx-fixed.conf"
start nginx-fixed "$nginx_bin" -p "$tmp" -c "$tmp/nginx-fixed.conf" -g 'daemon off;'
wait_http "http://127.0.0.1:$fixed_port/" 'bench-1' "nginx with a fixed answer"
bench_case "e-nginx-fixed" "http://127.0.0.1:$fixed_port" get=1
stop_all
fi

# (resp) RESP: one master (3 auxiliaries, REPLICAS=1) and redis-server, both
# up for the whole case; each round runs redis-benchmark against Redis, then
# against distcache, at each pipeline depth, so both see the machine in the
# same state. redis-benchmark runs its tests in its own order (SET before
# GET, so gets find their keys).
resp_tests=set,get,incr,lpush,sadd,hset,zadd
resp_options="-t $resp_tests -c $connections -d $value_size -r $keys"
if want resp; then
    # A list of one run's LPUSHes (up to --resp-requests elements of
    # --value-size bytes) is one value: the default MAX_VALUE_BYTES (1 MiB)
    # would refuse it with OOM, where Redis has no such cap.
    export MAX_VALUE_BYTES=$((1024 * 1024 * 1024))
    resp_port=$(free_port)
    start_cluster 1 1
    distcache_resp_port=$resp_port
    targets="redis distcache"
    if [ -n "$resp_baseline" ]; then
        resp_port=$(free_port)
        cluster_bin=$resp_baseline cluster_tag=baseline- start_cluster 1 1
        baseline_resp_port=$resp_port
        targets="$targets baseline"
    fi
    unset resp_port
    redis_port=$(free_port)
    start redis-resp redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no
    for _ in $(seq 1 100); do
        redis-cli -p "$redis_port" ping 2>/dev/null | grep -q PONG \
            && redis-cli -p "$distcache_resp_port" ping 2>/dev/null | grep -q PONG && break
        sleep 0.1
    done
    mkdir -p "$tmp/results/resp"
    for round in $(seq 1 "$resp_rounds"); do
        for depth in 1 16; do
            n=${resp_requests%,*}
            [ "$depth" = 1 ] || n=${resp_requests#*,}
            for target in $targets; do
                case $target in
                    redis) port=$redis_port ;;
                    distcache) port=$distcache_resp_port ;;
                    baseline) port=$baseline_resp_port ;;
                esac
                log "case resp round $round: redis-benchmark $resp_options -P $depth -n $n -> $target"
                # LPUSH pushes onto one list (`mylist`): emptied first, so
                # that it holds one run's elements, not every round's.
                redis-cli -p "$port" del mylist >/dev/null
                # One test per run: redis-benchmark stops at the first error
                # reply, which would leave the tests after it unmeasured.
                csv="$tmp/results/resp/$target-P$depth-r$round.csv"
                : >"$csv"
                for test in ${resp_tests//,/ }; do
                    redis-benchmark -p "$port" -t "$test" -c "$connections" -d "$value_size" -r "$keys" \
                        -P "$depth" -n "$n" --csv 2>"$tmp/resp-$target.err" | { [ -s "$csv" ] && tail -n +2 || cat; } >>"$csv" \
                        || log "case resp: $test against $target failed: $(tail -n 3 "$tmp/resp-$target.err")"
                done
            done
        done
    done
    stop_all
fi

# (commands) The HTTP command endpoint: one master (3 auxiliaries,
# REPLICAS=1) and redis-server, both up for the whole case. Each round runs
# each command against Redis (redis-benchmark, a custom command) and then
# against distcache (distcache bench --commands), so both see the machine in
# the same state. redis-benchmark's own -t lpush,sadd,hset,zadd push onto
# one key each (mylist, myset ...); both sides here spread keys, fields and
# members over --keys values instead, as crates/distcache/src/bench/commands.rs
# sends them (keep the two in step). Both sides are flushed before a round,
# so lists and sets hold one round's elements.
commands_tests=set,get,incr,lpush,sadd,hset,zadd
if want commands; then
    start_cluster 1 1
    commands_master=${master_urls%%,*}
    redis_port=$(free_port)
    start redis-commands redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no
    for _ in $(seq 1 100); do redis-cli -p "$redis_port" ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
    value=$(head -c "$value_size" /dev/zero | tr '\0' v)
    mkdir -p "$tmp/results/commands"
    for round in $(seq 1 "$commands_rounds"); do
        redis-cli -p "$redis_port" flushall >/dev/null
        curl -fsS -X POST -H 'Content-Type: application/json' -d '["FLUSHALL"]' "$commands_master/" >/dev/null
        for test in ${commands_tests//,/ }; do
            case $test in
                set) redis_command=(SET "bench-__rand_int__" "$value") ;;
                get) redis_command=(GET "bench-__rand_int__") ;;
                incr) redis_command=(INCR "bench-counter:__rand_int__") ;;
                lpush) redis_command=(LPUSH "bench-list:__rand_int__" "$value") ;;
                sadd) redis_command=(SADD "bench-set:__rand_int__" "element:__rand_int__") ;;
                hset) redis_command=(HSET "bench-hash:__rand_int__" "element:__rand_int__" "$value") ;;
                zadd) redis_command=(ZADD "bench-zset:__rand_int__" "__rand_int__" "element:__rand_int__") ;;
            esac
            log "case commands round $round: ${redis_command[0]} -> redis, then -> distcache"
            redis-benchmark -p "$redis_port" -c "$connections" -r "$keys" -n "$commands_requests" --csv \
                "${redis_command[@]}" >"$tmp/results/commands/redis-$test-r$round.csv" \
                || log "case commands: $test against redis failed"
            "$bin" bench --url "$commands_master" --connections "$connections" --duration "$commands_duration" \
                --warmup 500ms --keys "$keys" --value-size "$value_size" --commands "$test" --json \
                >"$tmp/results/commands/distcache-$test-r$round.json" \
                || log "case commands: some $test requests failed against distcache"
        done
    done
    stop_all
fi

# The commit of the tree the binary was built in (a worktree for --bin).
commit=$(git -C "$(dirname "$bin")" rev-parse --short HEAD 2>/dev/null || echo unknown)
: >"$out"
only_ratios() { case ",$cases," in ",resp," | ",commands," | ",resp,commands," | ",commands,resp,") return 0 ;; *) return 1 ;; esac; }
if ! only_ratios; then
    python3 "$repo/bench/report.py" "$tmp/results" \
        --started "$started" --commit "$commit" --version "$("$bin" --version)" \
        --machine "$(nproc) cores, $(uname -sr), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')" \
        --duration "$duration" --warmup "$warmup" --connections "$connections" --keys "$keys" --value-size "$value_size" \
        --lb-source "$lb_source" \
        | tee -a "$out"
    echo | tee -a "$out"
fi
if want resp; then
    ! only_ratios || echo "Run $started, commit \`$commit\`, $("$bin" --version); machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load average $(cut -d' ' -f1-3 /proc/loadavg) at the end." | tee -a "$out"
    python3 "$repo/bench/resp_report.py" "$tmp/results/resp" --command "$resp_options -P 1|16" | tee -a "$out"
fi
if want commands; then
    want resp || ! only_ratios || echo "Run $started, commit \`$commit\`, $("$bin" --version); machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load average $(cut -d' ' -f1-3 /proc/loadavg) at the end." | tee -a "$out"
    echo | tee -a "$out"
    python3 "$repo/bench/commands_report.py" "$tmp/results/commands" \
        --redis "redis-benchmark -c $connections -r $keys -n $commands_requests" \
        --distcache "distcache bench --connections $connections --keys $keys --value-size $value_size --duration $commands_duration --warmup 500ms" \
        | tee -a "$out"
fi
log "results written to $out"
