#!/usr/bin/env bash
# `make bench-diagnose`: connlab diagnose on a generated 1 GB Istio-format
# log, beside mawk counting one field (the flags) of the same file, the
# baseline diagnose must beat, and `grep -c UC` (the floor of reading it).
# Each command 3 times, in turns; the best wall time counts, and the ratio
# to mawk is taken in the same run. BENCH_BEFORE=<another connlab binary>
# adds it as a row (a build of an earlier commit, timed in the same turns).
set -euo pipefail
cd "$(dirname "$0")/.."
size=${BENCH_BYTES:-1000000000}
log=target/bench/istio-$size.log
mkdir -p target/bench
if [[ ! -s $log ]]; then
    echo "generating $log ..."
    python3 scripts/gen-istio-log.py "$size" "$log"
fi
cargo build --locked --release --quiet -p connlab-lab --bin connlab
python3 - "$log" <<'PY'
import os, subprocess, sys, time
log = sys.argv[1]
size = os.path.getsize(log)
with open(log, "rb") as f:
    lines = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 24), b""))
def run(cmd):
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.PIPE)  # not DEVNULL: grep stops at the first match when its output is /dev/null
    return time.perf_counter() - t
MAWK = ["mawk", "{ n[$6]++ } END { for (f in n) print f, n[f] }", log]
cmds = [("grep -c UC", ["grep", "-c", "UC", log]),
        ("mawk flags count", MAWK),
        ("connlab diagnose", ["target/release/connlab", "diagnose", log])]
if os.environ.get("BENCH_BEFORE"):
    cmds.append(("diagnose, before", [os.environ["BENCH_BEFORE"], "diagnose", log]))
# In turns, so a busy moment on the shared machine hits every command alike.
times = {name: [] for name, _ in cmds}
for _ in range(3):
    for name, cmd in cmds:
        times[name].append(run(cmd))
rows = [(name, min(times[name])) for name, _ in cmds]
print(f"\n{lines:,} lines, {size:,} bytes ({log}), {os.cpu_count()} cores")
print("| command          | best of 3 | lines/s     | MB/s  |")
print("|------------------|-----------|-------------|-------|")
for name, s in rows:
    print(f"| {name:<16} | {s:7.2f} s | {lines / s:11,.0f} | {size / s / 1e6:5.0f} |")
mawk, diagnose = rows[1][1], rows[2][1]
print(f"\nconnlab diagnose / mawk speed: {mawk / diagnose:.2f}x (>= 1.0 is the goal)")
if len(rows) > 3:
    print(f"before / mawk speed: {mawk / rows[3][1]:.2f}x")
print()
out = subprocess.run(["target/release/connlab", "diagnose", log], check=True, capture_output=True, text=True).stdout
print("\n".join(out.splitlines()[:8]))
PY
