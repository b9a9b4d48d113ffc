"""Checks a saved history: python3 recheck.py /tmp/fa-X/history.json"""
import json
import sys
from workload import report, summary

h = json.load(open(sys.argv[1]))
ops = h["ops"]
for e in h["events"]:
    print(f"[{e[0]:7.3f}] {e[1]}")
print(f"{len(ops)} ops; {summary(ops)}")
report(ops, 0.0, limit=40)
