"""Checks a saved history: python3 recheck.py /tmp/fa-X/history.json"""
import json
import sys
from workload import report, summary

import gzip
p = sys.argv[1]
h = json.load(gzip.open(p, "rt") if p.endswith(".gz") else open(p))
ops = h["ops"]
for e in h["events"]:
    print(f"[{e[0]:7.3f}] {e[1]}")
print(f"{len(ops)} ops; {summary(ops)}")
report(ops, 0.0, limit=40)
