#!/usr/bin/env bash
# Host commands the tests call directly (the filter's TLS tests make their
# certificates with the openssl CLI). Installed from Debian when missing.
set -euo pipefail
missing=()
command -v openssl >/dev/null || missing+=(openssl)
if [ ${#missing[@]} -gt 0 ]; then
  echo "connlab: installing ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
