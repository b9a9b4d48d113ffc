"""Prints a key's history between two times, consecutive equal reads
folded: python3 excerpt3.py HISTORY(.json or .json.gz) KEY FROM TO"""
import gzip
import json
import sys

path, key, t0, t1 = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
h = json.load(gzip.open(path) if path.endswith(".gz") else open(path))
for t, e in h["events"]:
    if t0 <= t <= t1:
        print(f"  [{t:8.3f}] event: {e}")
last, n = None, 0
for o in sorted((o for o in h["ops"] if o["key"] == key and t0 <= o["start"] <= t1), key=lambda o: o["start"]):
    sig = (o["op"], o["status"], str(o["reply"])[:40])
    if o["op"] in ("GET", "TTL") and sig == last:
        n += 1
        continue
    if n:
        print(f"    ... {n} more alike")
    last, n = sig, 0
    print(f"  {o['op']:7} {' '.join(o['args']):16} m{o['master']+1} [{o['start']:.4f},{o['end']:.4f}] {o['status']} {str(o['reply'])[:80]!r}")
if n:
    print(f"    ... {n} more alike")
