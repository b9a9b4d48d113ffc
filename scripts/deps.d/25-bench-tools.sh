#!/usr/bin/env bash
# Programs distcache is compared with: Debian's redis-server and
# redis-benchmark, and nginx (as a load balancer and as the fixed-response
# HTTP ceiling). bench/run.sh needs all three; the differential tests of the
# command layer (crates/core/tests/tools_redis_differential.rs) and of the
# RESP request parser (crates/wire/tests/tools_resp_differential.rs) need
# redis-server, so CI runs this script before the tests. Idempotent. The
# packages' services are not started: bench/run.sh and the tests start their
# own instances on free loopback ports.
set -euo pipefail
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v redis-benchmark >/dev/null 2>&1 || need+=(redis-tools)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
if [ ${#need[@]} -eq 0 ]; then
    echo "redis-server, redis-benchmark and nginx already installed"
    exit 0
fi
# shellcheck source=apt.bash
source "$(dirname "$0")/apt.bash"
apt_install "${need[@]}"
