#!/usr/bin/env bash
# Locust for the load test (load_test/) and its integration test
# (crates/distcache/tests/tools_locust.rs), in a virtual environment at the fixed
# path load_test/.venv. Idempotent: does nothing when the pinned version is
# already there.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=apt.bash
source scripts/deps.d/apt.bash
venv=load_test/.venv
req=load_test/requirements.txt
want=$(sed -n 's/^locust==//p' "$req")

if [ -x "$venv/bin/python" ] && [ "$("$venv/bin/python" -c 'import locust; print(locust.__version__)' 2>/dev/null)" = "$want" ]; then
    echo "locust $want already in $venv"
    exit 0
fi

venv_install "$venv" "$req"
echo "installed locust $("$venv/bin/python" -c 'import locust; print(locust.__version__)') into $venv"
