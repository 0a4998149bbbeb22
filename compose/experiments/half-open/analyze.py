"""Per-second timeline and before/during/after figures from connlab-client's
stdout (one JSON line per request, then a summary line).

    analyze.py CLIENT_OUT FAULT_AT_S [WARMUP_S]

Phases are by request start: before = [WARMUP, FAULT), during = [FAULT,
RECOVERED), after = [RECOVERED, end). Recovered = the first second from which
throughput stays at or above 90 % of the before-mean for the rest of the run
(the last second, cut by the run's end, is ignored); "never" when it does not.
"""

import json
import sys


def pct(sorted_ms, p):
    if not sorted_ms:
        return 0.0
    rank = max(1, min(len(sorted_ms), -(-int(p * len(sorted_ms)) // 100)))
    return sorted_ms[rank - 1]


def figures(recs):
    lat = sorted(r["end_ms"] - r["start_ms"] for r in recs)
    ok = sum(1 for r in recs if r["status"] and 200 <= r["status"] < 400)
    classes = {}
    for r in recs:
        c = str(r["status"]) if r["status"] else (r["error"] or {}).get("kind", "unknown")
        classes[c] = classes.get(c, 0) + 1
    mean = sum(lat) / len(lat) if lat else 0.0
    return (f"{len(recs):5d} req  ok {100.0 * ok / max(1, len(recs)):6.2f} %  "
            f"mean {mean:8.1f}  p50 {pct(lat, 50):7.1f}  p99 {pct(lat, 99):8.1f}  max {lat[-1] if lat else 0:8.1f} ms  {classes}")


path, fault = sys.argv[1], float(sys.argv[2])
warmup = float(sys.argv[3]) if len(sys.argv) > 3 else 2.0
recs = []
for line in open(path):
    if line.startswith("{"):
        d = json.loads(line)
        if d.get("type") == "request":
            recs.append(d)
# The last second in which a request started: later ones only hold the run's
# cut-off (unfinished requests), and the one before that is cut short.
end_s = int(max(r["start_ms"] for r in recs) // 1000)
tput = [0] * (end_s + 1)
for r in recs:
    if r["status"] and 200 <= r["status"] < 400 and r["end_ms"] < (end_s + 1) * 1000:
        tput[int(r["end_ms"] // 1000)] += 1
fault_f = fault
fault = float(int(fault))  # phases on whole seconds; the fault's own second counts as "during"
base = tput[int(warmup):int(fault)]
base_mean = sum(base) / max(1, len(base))
recovered = None
for s in range(int(fault), end_s):
    if all(t >= 0.9 * base_mean for t in tput[s:end_s]):
        recovered = s
        break
print("throughput/s:", " ".join(map(str, tput)))
print(f"before-mean {base_mean:.1f}/s; during-min {min(tput[int(fault):end_s] or [0])}/s")
print("time to recover:", "never (within the run)" if recovered is None else f"{recovered - fault:.0f} s after the fault")
stop = recovered if recovered is not None else end_s + 1
phases = [("before", warmup, fault), ("during", fault, stop), ("after", stop, end_s + 1)]
for name, a, b in phases:
    sel = [r for r in recs if a * 1000 <= r["start_ms"] < b * 1000]
    if sel:
        print(f"{name:6s} [{a:4.0f},{b:4.0f}) s: {figures(sel)}")
print(f"all              : {figures(recs)}")
