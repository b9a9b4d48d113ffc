#!/usr/bin/env bash
# ioredis, the other Node.js Redis client, for the RESP listener's client
# and Pub/Sub tests (crates/distcache/tests/tools_resp_clients.rs,
# tools_resp_pubsub.rs): it sends HELLO 3 AUTH (RESP3 by default since
# version 6), CLIENT SETINFO and INFO for its ready check at connect, keeps
# RESP2-shaped replies unless asked for typed ones, and counts Pub/Sub
# confirmations to resolve (P)UNSUBSCRIBE. Pinned by
# scripts/ioredis/package-lock.json, installed in scripts/ioredis/node_modules
# with `npm ci` (about 2 s; Debian's nodejs and npm first when missing).
# Its package.json asks for Node 20, but it runs on Debian 12's Node 18
# (the tests' scripts pass with Debian 12's nodejs 18.20.4; npm only
# warns about the engine).
# Idempotent: does nothing when the pinned version is already there.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=apt.bash
source scripts/deps.d/apt.bash
dir=scripts/ioredis
want=$(sed -n 's/.*"ioredis": "\(.*\)".*/\1/p' "$dir/package.json")
have() {
    node -p 'require("./node_modules/ioredis/package.json").version' 2>/dev/null
}

command -v npm >/dev/null 2>&1 || apt_install nodejs npm
if [ "$(cd "$dir" && have)" = "$want" ]; then
    echo "ioredis $want already in $dir"
    exit 0
fi
(cd "$dir" && npm ci --silent --no-audit --no-fund)
echo "installed ioredis $(cd "$dir" && have) into $dir/node_modules"
