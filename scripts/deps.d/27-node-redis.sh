#!/usr/bin/env bash
# node-redis (npm's `redis`), the Node.js Redis client, for the RESP
# listener's client tests (crates/distcache/tests/tools_resp_clients.rs):
# the client that speaks RESP3 with typed replies (maps, sets, doubles),
# sends HELLO 3 AUTH ... SETNAME and CLIENT SETINFO at connect, and pages
# SCAN with string cursors. Pinned by scripts/node-redis/package-lock.json,
# installed in scripts/node-redis/node_modules with `npm ci` (about 3 s;
# Debian's nodejs and npm first when missing, which 30-deploy-tools.sh needs
# too). Idempotent: does nothing when the pinned version is already there.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=apt.bash
source scripts/deps.d/apt.bash
dir=scripts/node-redis
want=$(sed -n 's/.*"redis": "\(.*\)".*/\1/p' "$dir/package.json")
have() {
    node -p 'require("./node_modules/redis/package.json").version' 2>/dev/null
}

command -v npm >/dev/null 2>&1 || apt_install nodejs npm
if [ "$(cd "$dir" && have)" = "$want" ]; then
    echo "node-redis $want already in $dir"
    exit 0
fi
(cd "$dir" && npm ci --silent --no-audit --no-fund)
echo "installed node-redis $(cd "$dir" && have) into $dir/node_modules"
