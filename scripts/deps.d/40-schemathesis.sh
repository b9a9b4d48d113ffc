#!/usr/bin/env bash
# schemathesis for the API fuzzing test (crates/distcache/tests/schemathesis.rs),
# in a virtual environment at the fixed path scripts/schemathesis/.venv.
# Idempotent: does nothing when the pinned version is already there.
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=scripts/schemathesis/.venv
req=scripts/schemathesis/requirements.txt
want=$(sed -n 's/^schemathesis==//p' "$req")

if [ -x "$venv/bin/schemathesis" ] && [ "$("$venv/bin/python" -c 'from importlib.metadata import version; print(version("schemathesis"))' 2>/dev/null)" = "$want" ]; then
    echo "schemathesis $want already in $venv"
    exit 0
fi

# Debian's python3 needs python3-venv (ensurepip) to make a venv.
if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
    apt-get install -y -qq python3-venv
fi
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$req"
echo "installed schemathesis $("$venv/bin/python" -c 'from importlib.metadata import version; print(version("schemathesis"))') into $venv"
