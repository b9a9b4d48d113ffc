#!/usr/bin/env bash
# The Python `redis` client from PyPI, for the RESP listener's client tests
# (crates/distcache/tests/tools_resp_clients.rs), in a virtual environment
# at the fixed path scripts/redis-py/.venv. Idempotent: does nothing when
# the pinned version is already there.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=apt.bash
source scripts/deps.d/apt.bash
venv=scripts/redis-py/.venv
req=scripts/redis-py/requirements.txt
want=$(sed -n 's/^redis==//p' "$req")

if [ -x "$venv/bin/python" ] && [ "$("$venv/bin/python" -c 'import redis; print(redis.__version__)' 2>/dev/null)" = "$want" ]; then
    echo "redis-py $want already in $venv"
    exit 0
fi

venv_install "$venv" "$req"
echo "installed redis-py $("$venv/bin/python" -c 'import redis; print(redis.__version__)') into $venv"
