#!/usr/bin/env bash
# `make filter-image`: the filter module as an OCI image (FROM scratch,
# /plugin.wasm) built with the local Docker engine, no registry involved.
# Tags: connlab-filter:<version> and connlab-filter:sha-<first 12 of the
# module's sha256>.
set -euo pipefail
cd "$(dirname "$0")/../.."

wasm=target/wasm32-unknown-unknown/wasm/connlab_filter.wasm
[ -f "$wasm" ] || { echo "connlab: $wasm is missing: run make filter" >&2; exit 1; }
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
sha=$(sha256sum "$wasm" | cut -c1-64)

context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
cp "$wasm" "$context/plugin.wasm"
cp filter/image/Dockerfile "$context/Dockerfile"
docker build --quiet --label "org.opencontainers.image.title=connlab-filter" \
  --label "io.connlab.module.sha256=$sha" \
  -t "connlab-filter:$version" -t "connlab-filter:sha-${sha:0:12}" "$context" >/dev/null

# Check the layout: the image's only file is /plugin.wasm, byte-identical.
container=$(docker create "connlab-filter:$version" /plugin.wasm)
trap 'rm -rf "$context"; docker rm -f "$container" >/dev/null' EXIT
docker cp "$container:/plugin.wasm" "$context/check.wasm"
cmp -s "$wasm" "$context/check.wasm" || { echo "connlab: image holds a different module" >&2; exit 1; }
echo "connlab-filter:$version (connlab-filter:sha-${sha:0:12}), plugin.wasm sha256 $sha"
