#!/usr/bin/env bash
# sniff-timeout (seed 000) by hand: connlab-client -> caller Envoy (client
# sidecar, :10000) -> server Envoy (STRICT or PERMISSIVE, :15006) ->
# connlab-backend (:8080), all Envoy 1.40 in a private network namespace,
# mTLS with a CA and SPIFFE-SAN certs made here with openssl.
#
#   run.sh CALLER_MODE TIMEOUT_S SERVER_MODE TRIALS DELAY_MS [DELAY_MS ...]
#     (modes: see gen.py) per DELAY_MS: TRIALS connections whose first byte
#     comes DELAY_MS after connect, one request each (keep-alive off).
# Prints per delay the client's classes, then both Envoys' access-log
# classes, the stats of the signature and the filter's diagnoses.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
envoy=${ENVOY:-$(ls "$root"/.venv/lib/python3*/site-packages/envoy/_bin/envoy)}
bin=${CONNLAB_BIN:-$root/target/debug}
wasm=${WASM:-$root/target/wasm32-unknown-unknown/wasm/connlab_filter.wasm}
caller_mode=${1:?CALLER_MODE} timeout=${2:?TIMEOUT_S} server_mode=${3:?SERVER_MODE} trials=${4:?TRIALS}
shift 4
[ $# -gt 0 ] || { echo "DELAY_MS ..." >&2; exit 2; }

ns=connlab-sniff-$$
work=$(mktemp -d)
cleanup() {
  ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null || true
  sleep 0.2
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
ip netns add "$ns"
ip -n "$ns" link set lo up
in_ns() { ip netns exec "$ns" "$@"; }

# A CA and two workload certificates with SPIFFE URI SANs, as Istio issues.
(
  cd "$work"
  ossl() { openssl "$@" 2>/dev/null; }
  ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem \
    -days 1 -subj "/O=connlab lab CA"
  for node in caller server; do
    ossl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $node.key -out $node.csr -subj "/O=connlab"
    printf 'subjectAltName=URI:spiffe://cluster.local/ns/lab/sa/%s\n' $node >$node.ext
    ossl x509 -req -in $node.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out $node.pem -days 1 -extfile $node.ext
  done
)
python3 "$here/gen.py" "$work" "$caller_mode" "$timeout" "$server_mode" "$wasm"

in_ns "$bin/connlab-backend" --listen 127.0.0.1:8080 2>"$work/backend.log" &
in_ns "$envoy" -c "$work/server.json" --concurrency 1 --disable-hot-restart -l debug --base-id 2 \
  --file-flush-interval-msec 100 >"$work/server.access" 2>"$work/server.log" &
in_ns "$envoy" -c "$work/caller.json" --concurrency 1 --disable-hot-restart -l debug --base-id 1 \
  --file-flush-interval-msec 100 >"$work/caller.access" 2>"$work/caller.log" &
for port in 9901 9902; do
  for _ in $(seq 150); do in_ns curl -sf http://127.0.0.1:$port/ready >/dev/null 2>&1 && break; sleep 0.1; done
done

echo "caller=$caller_mode timeout=${timeout}s server=$server_mode trials=$trials"
for delay in "$@"; do
  in_ns "$bin/connlab-client" --target 127.0.0.1:10000 --requests "$trials" --keep-alive false \
    --first-byte-delay-ms "$delay" --read-timeout-ms 3000 >"$work/client.$delay" 2>/dev/null
  printf '  first byte +%4s ms: ' "$delay"
  python3 -c '
import json, sys, collections
c = collections.Counter()
for line in open(sys.argv[1]):
    r = json.loads(line)
    if "status" in r or "error" in r:
        e = r.get("error")
        c[str(r.get("status") or (e.get("kind") if isinstance(e, dict) else e))] += 1
print(" ".join(f"{k}x{v}" for k, v in sorted(c.items())))' "$work/client.$delay"
done
sleep 0.5
for role in caller server; do
  port=$([ $role = caller ] && echo 9901 || echo 9902)
  echo "$role access log (count code flags details chain ...):"
  grep '^ACCESS' "$work/$role.access" | cut -d' ' -f2- | sed -E 's/up=[^ ]* //' | sort | uniq -c | sed 's/^/ /'
  echo "$role stats:"
  in_ns curl -s http://127.0.0.1:$port/stats | grep -E 'downstream_pre_cx_timeout|ssl\.connection_error|ssl\.handshake|PassthroughCluster\.upstream_cx_total|server_mtls\.upstream_cx_total|connlab_net_diagnosis_.*_total|connlab_net_class_.*_total' | grep -v ': 0$' | sed 's/^/  /' || true
  echo "$role log (count):"
  grep -oE 'listener filter times out after [0-9]+ ms|TLS_error:[^ ]*|TLS error: [^ ]*' "$work/$role.log" | sort | uniq -c | sed 's/^/ /' || true
  grep -oE '"diagnosis":"[a-z_]+"' "$work/$role.log" | sort | uniq -c | sed 's/^/  filter /' || true
done
[ -n "${KEEP:-}" ] && cp -r "$work" "$KEEP" || true
