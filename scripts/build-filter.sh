#!/usr/bin/env bash
# Builds connlab_filter.wasm. Uses a rustup wasm32 target where one is
# installed; otherwise Debian's rustc-web toolchain with -Zbuild-std
# (DESIGN.md §6), installing it when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

target=wasm32-unknown-unknown
args=(build --locked -p connlab-filter --target "$target" --profile wasm)

if command -v rustup >/dev/null && rustup target list --installed 2>/dev/null | grep -qx "$target"; then
  exec cargo "${args[@]}"
fi

debian_pkgs=(rustc-web cargo-web rust-web-src lld-19)
missing=()
for pkg in "${debian_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "connlab: installing Debian's wasm32 Rust toolchain: ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Debian's rustc-web is a stable compiler; RUSTC_BOOTSTRAP lets it build std
# for wasm32 from rust-web-src, which is the one step rustup would do for us.
RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 exec /usr/bin/cargo "${args[@]}" \
  -Zbuild-std=std,panic_abort \
  --config "target.$target.linker=\"wasm-ld-19\""
