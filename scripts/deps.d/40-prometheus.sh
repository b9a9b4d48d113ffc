#!/usr/bin/env bash
# Prometheus and promtool (Debian's `prometheus` package) for the
# observability tests (crates/distcache/tests/tools_observability.rs): promtool
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
# shellcheck source=apt.bash
source "$(dirname "$0")/apt.bash"
# No recommends (apt_install never takes them): they pull the node exporter,
# which would start a service too.
apt_install prometheus
# Where systemd runs (policy-rc.d does not bind it), stop and disable the
# service the package enabled; the tests start their own.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl disable --now prometheus.service >/dev/null 2>&1 || true
fi
echo "installed $(promtool --version 2>&1 | head -1)"
