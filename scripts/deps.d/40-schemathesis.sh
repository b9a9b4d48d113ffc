#!/usr/bin/env bash
# schemathesis for the API fuzzing test (crates/distcache/tests/tools_schemathesis.rs),
# in a virtual environment at the fixed path scripts/schemathesis/.venv.
# Idempotent: does nothing when the pinned version is already there.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=apt.bash
source scripts/deps.d/apt.bash
venv=scripts/schemathesis/.venv
req=scripts/schemathesis/requirements.txt
want=$(sed -n 's/^schemathesis==//p' "$req")

if [ -x "$venv/bin/schemathesis" ] && [ "$("$venv/bin/python" -c 'from importlib.metadata import version; print(version("schemathesis"))' 2>/dev/null)" = "$want" ]; then
    echo "schemathesis $want already in $venv"
    exit 0
fi

venv_install "$venv" "$req"
echo "installed schemathesis $("$venv/bin/python" -c 'from importlib.metadata import version; print(version("schemathesis"))') into $venv"
