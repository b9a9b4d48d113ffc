#!/usr/bin/env bash
# Programs bench/run.sh compares distcache with: Debian's redis-server and
# redis-benchmark, and nginx (as a load balancer and as the fixed-response
# HTTP ceiling). Only bench/run.sh needs them; no test does. Idempotent.
# The packages' services are not started: bench/run.sh starts its own
# instances on free loopback ports.
set -euo pipefail
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v redis-benchmark >/dev/null 2>&1 || need+=(redis-tools)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
if [ ${#need[@]} -eq 0 ]; then
    echo "redis-server, redis-benchmark and nginx already installed"
    exit 0
fi
# Keep the packages' maintainer scripts from starting services on :80 and
# :6379 (exit 101 = "action forbidden" for invoke-rc.d), unless a policy is
# already in place.
policy=/usr/sbin/policy-rc.d
own_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod +x "$policy"
    own_policy=1
fi
trap '[ "$own_policy" = 1 ] && rm -f "$policy"' EXIT
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
