#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo-fuzz, libFuzzer) of every parser that reads
# the wire or config. `scripts/fuzz.sh RUNS [TARGET...]` runs each target
# for RUNS executions (all targets when none is named), from the seeds
# (scripts/fuzz-seeds.py) and the corpus earlier runs grew in
# target/fuzz/corpus/<target>; a crash stops it, its input saved under
# target/fuzz/artifacts/<target>/. `make fuzz` runs 10,000,000 per target,
# `make test` 20,000. FUZZ_SECONDS caps each target's run by time too.
#
# --sanitizer none: the parsers are safe Rust (no `unsafe`), so what can go
# wrong is a panic (index, slice, unwrap), an overflow (--debug-assertions
# turns overflow checks on), a hang (-timeout) or runaway memory
# (-rss_limit_mb, -malloc_limit_mb), all caught by libFuzzer itself;
# AddressSanitizer would cost 2-3x the executions for bugs safe Rust cannot
# have. It also keeps the build on the stable toolchain: without a
# sanitizer cargo-fuzz passes only stable -C flags (sancov coverage), so
# no RUSTC_BOOTSTRAP (setting it would rebuild every crate whose build
# script watches it).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:?usage: scripts/fuzz.sh RUNS [TARGET...]}
shift
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(client_hello sniff filter_config property diagnose_log diagnose_format pcap)
fi
cargo_fuzz=${CARGO_FUZZ:-target/tools/bin/cargo-fuzz}
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2}
python3 scripts/fuzz-seeds.py
fuzz=("$cargo_fuzz" fuzz)
opts=(--fuzz-dir fuzz --sanitizer none --debug-assertions --target-dir target/fuzz/build)
"${fuzz[@]}" build "${opts[@]}"
for t in "${targets[@]}"; do
  corpus=target/fuzz/corpus/$t artifacts=target/fuzz/artifacts/$t
  mkdir -p "$corpus" "$artifacts"
  log=target/fuzz/$t.log
  start=$(date +%s)
  # -runs counts every execution, the seeds' first pass included.
  if ! "${fuzz[@]}" run "${opts[@]}" "$t" "$corpus" "target/fuzz/seeds/$t" -- \
      -runs="$runs" ${FUZZ_SECONDS:+-max_total_time=$FUZZ_SECONDS} -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024 \
      -artifact_prefix="$artifacts/" -print_final_stats=1 >"$log" 2>&1; then
    tail -40 "$log" >&2
    echo "fuzz $t: FAILED after $(($(date +%s) - start)) s; input in $artifacts/, log $log" >&2
    exit 1
  fi
  execs=$(awk '/stat::number_of_executed_units/ {print $2}' "$log")
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
  echo "fuzz $t: $execs executions in $(($(date +%s) - start)) s, no crash ($cov, corpus $(ls "$corpus" | wc -l))"
done
