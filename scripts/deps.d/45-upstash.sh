#!/usr/bin/env bash
# Upstash's Python SDK (upstash-redis) for the commands-over-HTTP test
# (crates/distcache/tests/tools_upstash.rs), in a virtual environment at the
# fixed path scripts/upstash/.venv. Idempotent: does nothing when the pinned
# version is already there.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=apt.bash
source scripts/deps.d/apt.bash
venv=scripts/upstash/.venv
req=scripts/upstash/requirements.txt
want=$(sed -n 's/^upstash-redis==//p' "$req")
have() {
    "$venv/bin/python" -c 'from importlib.metadata import version; print(version("upstash-redis"))' 2>/dev/null
}

if [ -x "$venv/bin/python" ] && [ "$(have)" = "$want" ]; then
    echo "upstash-redis $want already in $venv"
    exit 0
fi

venv_install "$venv" "$req"
echo "installed upstash-redis $(have) into $venv"
