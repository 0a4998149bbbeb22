#!/usr/bin/env bash
# Host commands the tests call directly, installed from Debian when missing:
# the filter's TLS tests make their certificates with the openssl CLI; the
# report test renders the HTML report in headless Chromium (any Chromium or
# Chrome already on PATH will do); the compose round trip runs
# docker-compose.
set -euo pipefail
missing=()
command -v openssl >/dev/null || missing+=(openssl)
command -v chromium >/dev/null || command -v chromium-browser >/dev/null ||
  command -v google-chrome >/dev/null || missing+=(chromium)
command -v docker-compose >/dev/null || missing+=(docker-compose)
if [ ${#missing[@]} -gt 0 ]; then
  echo "connlab: installing ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
