#!/usr/bin/env bash
# Prometheus and promtool (Debian's `prometheus` package) for the
# observability tests (crates/distcache/tests/observability.rs): promtool
# checks the shipped config, rules and live /metrics and runs the rule unit
# tests; the live test starts its own Prometheus on a free loopback port
# with a temporary storage directory. The package's system service is never
# left running (it would listen on :9090 and scrape localhost).
# Idempotent: does nothing when both programs are installed.
set -euo pipefail
if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
    echo "prometheus and promtool already installed: $(promtool --version 2>&1 | head -1)"
    exit 0
fi
# policy-rc.d answering 101 stops dpkg's maintainer scripts from starting
# the service, unless a policy is already in place.
policy=/usr/sbin/policy-rc.d
own_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod +x "$policy"
    own_policy=1
fi
trap '[ "$own_policy" = 1 ] && rm -f "$policy"' EXIT
# No recommends: they pull the node exporter, which would start a service too.
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus
# Where systemd runs (policy-rc.d does not bind it), stop and disable the
# service the package enabled; the tests start their own.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl disable --now prometheus.service >/dev/null 2>&1 || true
fi
echo "installed $(promtool --version 2>&1 | head -1)"
