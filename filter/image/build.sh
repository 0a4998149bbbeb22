#!/usr/bin/env bash
# `make filter-image`: the filter module as an OCI image in Istio's Wasm
# image layout ("compat" variant: one layer, a gzip tar holding
# /plugin.wasm; pkg/wasm/imagefetcher.go), two ways:
# - target/filter-image/: an OCI image layout (index.json, blobs/), built
#   byte for byte reproducibly: an image index with the linux/amd64 image
#   manifest in it, as a multi-platform push makes. Push it unchanged (the
#   digests stay): `crane push target/filter-image <ref>` or
#   `skopeo copy oci:target/filter-image docker://<ref>`. The lab reads it
#   as its registry (lab/src/istio/module.rs).
# - the local Docker engine: connlab-filter:<version> and
#   connlab-filter:sha-<first 12 of the module's sha256>, no registry
#   involved (`docker push` re-compresses layers: its digest is its own).
# Prints the digest a WasmPlugin's sha256 takes for the layout: the
# linux/amd64 image manifest's, not the index's.
set -euo pipefail
cd "$(dirname "$0")/../.."

wasm=target/wasm32-unknown-unknown/wasm/connlab_filter.wasm
[ -f "$wasm" ] || { echo "connlab: $wasm is missing: run make filter" >&2; exit 1; }
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
sha=$(sha256sum "$wasm" | cut -c1-64)

context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT

# --- The OCI layout.
layout=target/filter-image
rm -rf "$layout"
mkdir -p "$layout/blobs/sha256" "$context/root"
cp "$wasm" "$context/root/plugin.wasm"
blob() { # file -> its digest hex, stored under blobs/
  local hex
  hex=$(sha256sum "$1" | cut -c1-64)
  cp "$1" "$layout/blobs/sha256/$hex"
  echo "$hex"
}
size() { stat -c %s "$1"; }
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --format=ustar \
  -C "$context/root" -cf "$context/layer.tar" plugin.wasm
diff_id=$(sha256sum "$context/layer.tar" | cut -c1-64)
gzip -9 -n -c "$context/layer.tar" >"$context/layer.tar.gz"
layer=$(blob "$context/layer.tar.gz")
printf '{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
  "$diff_id" >"$context/config.json"
config=$(blob "$context/config.json")
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.title":"plugin.wasm"}}]}' \
  "$config" "$(size "$context/config.json")" "$layer" "$(size "$context/layer.tar.gz")" >"$context/manifest.json"
manifest=$(blob "$context/manifest.json")
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"platform":{"architecture":"amd64","os":"linux"}}]}' \
  "$manifest" "$(size "$context/manifest.json")" >"$context/index-blob.json"
index=$(blob "$context/index-blob.json")
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"connlab-filter:%s"}}]}' \
  "$index" "$(size "$context/index-blob.json")" "$version" >"$layout/index.json"
printf '{"imageLayoutVersion":"1.0.0"}' >"$layout/oci-layout"

# --- The local Docker image.
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
echo "$layout: image index sha256:$index; linux/amd64 image manifest sha256:$manifest (the WasmPlugin's sha256: $manifest)"
