#!/usr/bin/env python3
"""The context transfer of one build, from its `--progress rawjson` stream on stdin: prints
"SECONDS BYTES" (the context vertex's completed - started from the daemon's own timestamps,
and the largest byte count its statuses report). Reads torchkit's one-object-per-line
stream and buildx's pretty-printed objects alike. Used by benches/*.sh."""
import json, sys
from datetime import datetime
def ts(s):
    s = s.rstrip("Z"); base, _, frac = s.partition(".")
    return datetime.fromisoformat(base).timestamp() + float("0." + (frac or "0"))
def objects(text):  # one JSON object per line (torchkit) or pretty-printed, concatenated (buildx)
    dec, i = json.JSONDecoder(), 0
    while True:
        i = text.find("{", i)
        if i < 0: return
        try: obj, i = dec.raw_decode(text, i)
        except ValueError: i += 1; continue
        yield obj
names = ("[torchkit] context", "[internal] load build context")
start = end = None; total = 0; ctx = set()
for st in objects(sys.stdin.read()):
    for v in st.get("vertexes") or []:
        if v.get("name") in names:
            ctx.add(v["digest"])
            if v.get("started"): start = ts(v["started"]) if start is None else min(start, ts(v["started"]))
            if v.get("completed"): end = ts(v["completed"]) if end is None else max(end, ts(v["completed"]))
    for s in st.get("statuses") or []:
        if s.get("vertex") in ctx: total = max(total, int(s.get("current") or 0))
print("%.4f %d" % ((end - start) if start is not None and end is not None else float("nan"), total))
