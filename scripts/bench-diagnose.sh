#!/usr/bin/env bash
# `make bench-diagnose`: connlab diagnose on a generated 1 GB Istio-format
# log, beside `grep -c UC` on the same file (the floor of reading it).
# One warm-up read, then each command 3 times; the best wall time counts.
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
def best(cmd):
    times = []
    for _ in range(3):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.PIPE)  # not DEVNULL: grep stops at the first match when its output is /dev/null
        times.append(time.perf_counter() - t)
    return min(times)
rows = [("grep -c UC", best(["grep", "-c", "UC", log])),
        ("connlab diagnose", best(["target/release/connlab", "diagnose", log]))]
print(f"\n{lines:,} lines, {size:,} bytes ({log}), {os.cpu_count()} cores")
print("| command          | best of 3 | lines/s     | MB/s  |")
print("|------------------|-----------|-------------|-------|")
for name, s in rows:
    print(f"| {name:<16} | {s:7.2f} s | {lines / s:11,.0f} | {size / s / 1e6:5.0f} |")
print()
out = subprocess.run(["target/release/connlab", "diagnose", log], check=True, capture_output=True, text=True).stdout
print("\n".join(out.splitlines()[:8]))
PY
