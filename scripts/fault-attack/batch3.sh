#!/bin/bash
# usage: batch3.sh "scenario:seed ..."   (outputs in /tmp/fa3-out; a run's
# dir is removed unless it found anomalies)
cd "$(dirname "$0")"
export DISTCACHE_BIN=${DISTCACHE_BIN:-/tmp/dc-bin/distcache-d6d1de1}
for x in $1; do
  sc=${x%%:*}; seed=${x##*:}
  out=/tmp/fa3-out/$sc-$seed.out
  nice python3 run.py "$sc" "$seed" > "$out" 2>&1
  [ -f "/tmp/fa-$sc-$seed/history.json" ] && mkdir -p /tmp/fa3-out/hist && gzip -c "/tmp/fa-$sc-$seed/history.json" > "/tmp/fa3-out/hist/$sc-$seed.json.gz"
  if grep -q "^ANOMALIES: 0" "$out" && grep -q "^EARLY READS.*: 0" "$out"; then rm -rf "/tmp/fa-$sc-$seed"; fi
  echo "$sc $seed: $(grep -E '^scenario|^ANOMALIES|^EARLY' "$out" | sed 's/{.*}//' | tr '\n' ' ')" >> /tmp/fa3-out/summary.txt
done
