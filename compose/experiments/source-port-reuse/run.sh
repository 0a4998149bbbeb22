#!/usr/bin/env bash
# source-port-reuse (seed 004) by hand: Envoy 1.40 and connlab-backend in a
# private network namespace (loopback only, so nothing else on the machine
# interferes, and net.ipv4.tcp_tw_reuse=0 as on a pod's non-loopback
# interface: Linux's default 2 allows TIME_WAIT reuse on loopback only).
#
#   run.sh PIN MAXRQ AWAIT_MS CONNECTIONS REQUESTS
#     PIN        source port to pin (upstream_bind_config + SO_REUSEADDR), or 0
#     MAXRQ      max_requests_per_connection, or 0
#     AWAIT_MS   backend --await-client-close-ms (0: backend closes at once)
#     CONNECTIONS, REQUESTS   connlab-client workers and requests per worker
# Backend: --close-after 100 (S3). Prints the client's outcome classes,
# Envoy's access-log classes and the stats that carry the signature.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
envoy=${ENVOY:-$(ls "$root"/.venv/lib/python3*/site-packages/envoy/_bin/envoy)}
bin=${CONNLAB_BIN:-$root/target/debug}
pin=${1:?PIN} maxrq=${2:?MAXRQ} await=${3:?AWAIT_MS} conns=${4:?CONNECTIONS} reqs=${5:?REQUESTS}

ns=connlab-spr-$$
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
ip netns exec "$ns" sysctl -qw net.ipv4.tcp_tw_reuse=0
in_ns() { ip netns exec "$ns" "$@"; }

bind="" maxrq_block=""
if [ "$pin" != 0 ]; then
  bind="    upstream_bind_config:
      source_address: {address: 127.0.0.1, port_value: $pin}
      socket_options: [{level: 1, name: 2, int_value: 1, state: STATE_PREBIND}]"
fi
if [ "$maxrq" != 0 ]; then
  maxrq_block="    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        \"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        common_http_protocol_options: {max_requests_per_connection: $maxrq}
        explicit_http_config: {http_protocol_options: {}}"
fi
python3 - "$here/envoy.yaml.in" "$work/envoy.yaml" "$bind" "$maxrq_block" <<'PY'
import sys
src, dst, bind, maxrq = sys.argv[1:]
open(dst, "w").write(open(src).read().replace("@BIND@\n", bind + "\n" if bind else "")
                     .replace("@MAXRQ@\n", maxrq + "\n" if maxrq else ""))
PY

backend_args=(--listen 127.0.0.1:8080 --close-after 100)
[ "$await" != 0 ] && backend_args+=(--await-client-close-ms "$await")
in_ns "$bin/connlab-backend" "${backend_args[@]}" 2>"$work/backend.log" &
in_ns "$envoy" -c "$work/envoy.yaml" --concurrency 1 --disable-hot-restart -l debug \
  --file-flush-interval-msec 100 >"$work/access.log" 2>"$work/envoy.log" &
for _ in $(seq 100); do in_ns curl -sf http://127.0.0.1:9901/ready >/dev/null 2>&1 && break; sleep 0.1; done

start=$(date +%s.%N)
in_ns "$bin/connlab-client" --target 127.0.0.1:10000 --connections "$conns" --requests "$reqs" \
  >"$work/client.jsonl" 2>/dev/null
end=$(date +%s.%N)
sleep 0.5
echo "pin=$pin maxrq=$maxrq await_ms=$await connections=$conns requests/worker=$reqs wall=$(echo "$end - $start" | bc)s"
echo "client (count class):"
python3 - "$work/client.jsonl" <<'PY'
import json, sys, collections
c = collections.Counter()
first_fail = None
for i, line in enumerate(open(sys.argv[1])):
    r = json.loads(line)
    if "summary" in r or "requests" in r and "status" not in r and "error" not in r: continue
    cls = str(r.get("status") or r.get("error"))
    c[cls] += 1
for k, v in sorted(c.items()): print(f"  {v:5d} {k}")
PY
echo "envoy access log (count code flags details attempts failure):"
grep '^ACCESS' "$work/access.log" | awk '{print $2, $3, $4, $5, $7}' | sort | uniq -c | sed 's/^/ /'
echo "stats:"
in_ns curl -s http://127.0.0.1:9901/stats | grep -E '^cluster\.backend\.(upstream_cx_connect_fail|upstream_cx_total|upstream_rq_503|upstream_rq_retry|upstream_rq_retry_success|upstream_rq_retry_limit_exceeded|upstream_cx_destroy_local|upstream_cx_destroy_remote|upstream_cx_max_requests):' | sed 's/^/  /'
echo "envoy debug (count):"
grep -oE 'immediate connect error: [0-9]+|delayed connect error: [0-9]+' "$work/envoy.log" | sort | uniq -c | sed 's/^/ /' || true
echo "upstream sockets in TIME_WAIT (local side) at the end:"
in_ns ss -tanH state time-wait | sed 's/^/  /' | head -5
[ -n "${KEEP:-}" ] && cp -r "$work" "$KEEP" || true
