"""The masters' health verdicts of a partition run against its splits and
heals: every `node is down` of an auxiliary that was on the majority side
of the last split is flagged (stale verdicts, finding 6).

usage: python3 run.py part3_split_join 1 > out.txt; python3 verdicts3.py out.txt /tmp/fa-part3_split_join-1 [-q]
(-q: leave out the "no majority confirms" lines)
"""
import datetime
import glob
import os
import re
import sys

out, root = sys.argv[1], sys.argv[2]
quiet = "-q" in sys.argv[3:]
ev = []
for l in open(out):
    # run.py: "[  2.548] join aux-5 (05:06:45.471Z)"; batch runs may prefix the wall time instead
    m = re.search(r"\[\s*([\d.]+)\] (.*) \((\d\d:\d\d:\d\d\.\d+)Z\)$", l.strip())
    if m:
        ev.append((m.group(3), float(m.group(1)), m.group(2)))
        continue
    m = re.match(r"(\d\d:\d\d:\d\d\.\d+) \[\s*([\d.]+)\] (.*)", l)
    if m:
        ev.append((m.group(1), float(m.group(2)), m.group(3)))
ev = [e for e in ev if "split" in e[2] or "healed" in e[2] or "join" in e[2]]
pat = re.compile(r"node is down|node is up|quit leader|become leader|no majority confirms|could not record")
end = datetime.datetime.utcfromtimestamp(os.path.getmtime(f"{root}/history.json")).strftime("%H:%M:%S.%f")[:-3]
ev.append((end, 0.0, "history written; shutdown follows"))
lines = []
for f in sorted(glob.glob(f"{root}/master-*.log")):
    who = os.path.basename(f).rsplit(".", 2)[0]
    for l in open(f, errors="replace"):
        if pat.search(l) and l[11:23] <= end:
            lines.append((l[11:23], who, re.sub(r"^\S+\s+\w+\s+\S+: ", "", l.strip())[:110]))
small, healed, flags = [], False, []
for t, who, m in sorted([(t, "EVENT", f"[{r:.3f}] {m}") for t, r, m in ev] + lines):
    if who == "EVENT":
        ms = re.search(r"split \[(.*?)\]", m)
        if ms:
            small, healed = re.findall(r"'(.*?)'", ms.group(1)), False
        healed = healed or "healed" in m
        print(f"{t} ---- {m}")
        continue
    mark = ""
    md = re.search(r"node is down node=(\S+)", m)
    if md and small and md.group(1) not in small:
        mark = "   <== DOWN of a majority-side aux" + (" AFTER HEAL" if healed else " during split")
        flags.append((t, who, m, mark))
    if not (quiet and "no majority" in m):
        print(f"{t} {who:9} {m}{mark}")
print("FLAGS:", len(flags))
for f in flags:
    print("  ", *f)
