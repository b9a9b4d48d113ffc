"""Checks a saved history: python3 recheck.py /tmp/fa-X/history.json"""
import json
import sys
from workload import check, fmt, summary

h = json.load(open(sys.argv[1]))
ops = h["ops"]
for e in h["events"]:
    print(f"[{e[0]:7.3f}] {e[1]}")
an = check(ops, 0.0)
print(f"{len(ops)} ops; {summary(ops)}\nANOMALIES: {len(an)}")
for a in an[:40]:
    print("---", a["kind"])
    for k in ("read", "write", "by", "prior", "other"):
        if a.get(k):
            print(f"   {k}: {fmt(a[k], 0.0)[:300]}")
    for k in ("zones", "need", "started", "acked", "unknown", "detail", "count"):
        if k in a:
            print(f"   {k}: {a[k]}")
