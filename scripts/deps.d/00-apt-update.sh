#!/usr/bin/env bash
# Refresh Debian's package lists once, so later scripts can apt-get install.
set -euo pipefail
stamp=/var/lib/apt/periodic/distcache-update-stamp
if [ ! -e "$stamp" ] || [ -n "$(find "$stamp" -mmin +1440 2>/dev/null)" ]; then
    apt-get update -qq
    mkdir -p "$(dirname "$stamp")" && touch "$stamp"
fi
