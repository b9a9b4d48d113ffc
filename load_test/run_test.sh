#!/usr/bin/env bash
# Runs the Locust load test (locustfile.py) against a distcache master or
# the nginx in front of the masters.
#
#   ./run_test.sh                      # web UI on http://localhost:8089
#   ./run_test.sh --host http://localhost:8081 --users 200 --rate 20 --time 10m --headless
#
# Options:
#   --host URL     target (default http://localhost:8081)
#   --users N      concurrent users (default 100)
#   --rate N       users spawned per second (default 10)
#   --time T       run time, e.g. 30s, 5m, 1h (default 5m; headless only)
#   --headless     no web UI: run, print the stats, exit (1 if any request failed)
#   --             everything after is passed to locust (e.g. --csv out/stats)
#
# Locust (the version pinned in requirements.txt) lives in a virtual
# environment in load_test/.venv, made and filled here when missing (CI makes
# it with scripts/deps.d/20-locust.sh).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venv"

host="http://localhost:8081"
users=100
rate=10
time="5m"
headless=0
extra=()

usage() { sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
    case "$1" in
        --host) host="$2"; shift 2 ;;
        --users) users="$2"; shift 2 ;;
        --rate) rate="$2"; shift 2 ;;
        --time) time="$2"; shift 2 ;;
        --headless) headless=1; shift ;;
        -h|--help) usage; exit 0 ;;
        --) shift; extra=("$@"); break ;;
        *) echo "run_test.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

want=$(sed -n 's/^locust==//p' "$here/requirements.txt")
have=$("$venv/bin/python" -c 'import locust; print(locust.__version__)' 2>/dev/null || true)
if [ "$have" != "$want" ]; then
    echo "run_test.sh: installing locust $want into $venv" >&2
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$here/requirements.txt"
fi

args=(-f "$here/locustfile.py" --host "$host" --users "$users" --spawn-rate "$rate")
if [ "$headless" = 1 ]; then
    args+=(--headless --run-time "$time" --stop-timeout 5)
else
    echo "run_test.sh: web UI on http://localhost:8089 (--time applies to --headless runs only)" >&2
fi
exec "$venv/bin/locust" "${args[@]}" ${extra[@]+"${extra[@]}"}
