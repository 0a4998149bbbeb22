#!/usr/bin/env bash
# source-port-reuse (seed 004) in containers of the lab image, over a real
# Docker bridge (veth, not loopback): backend, Envoy and client each in their
# own network namespace, as the lab runs them.
#
#   docker.sh PIN MAXRQ BACKEND_ARGS TS CONNECTIONS REQUESTS [DELAY_MS]
#     PIN           source port to pin (0.0.0.0:PIN + SO_REUSEADDR), or 0
#     MAXRQ         max_requests_per_connection, or 0
#     BACKEND_ARGS  extra connlab-backend flags after --close-after 100 ("" for none)
#     TS            net.ipv4.tcp_timestamps of the backend's namespace (1 or 0)
#     CONNECTIONS, REQUESTS   connlab-client workers and requests per worker
#     DELAY_MS      backend response delay (default 0)
# Everything it creates is labelled connlab=1 and removed on exit.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
image=${CONNLAB_IMAGE:-$(cat "$root/target/lab-image.tag")}
pin=${1:?PIN} maxrq=${2:?MAXRQ} backend_args=${3?BACKEND_ARGS} ts=${4:?TS}
conns=${5:?CONNECTIONS} reqs=${6:?REQUESTS} delay=${7:-0}

id=connlab-spr-$$
work=$(mktemp -d)
trap 'docker rm -f $id-backend $id-envoy >/dev/null 2>&1 || true; docker network rm $id >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
docker network create --label connlab=1 "$id" >/dev/null

bind="" maxrq_block=""
if [ "$pin" != 0 ]; then
  bind="    upstream_bind_config:
      source_address: {address: 0.0.0.0, port_value: $pin}
      socket_options: [{level: 1, name: 2, int_value: 1, state: STATE_PREBIND}]"
fi
if [ "$maxrq" != 0 ]; then
  maxrq_block="    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        \"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        common_http_protocol_options: {max_requests_per_connection: $maxrq}
        explicit_http_config: {http_protocol_options: {}}"
fi
docker run -d --label connlab=1 --network "$id" --name "$id-backend" --network-alias backend \
  --sysctl net.ipv4.tcp_timestamps="$ts" "$image" \
  connlab-backend --listen 0.0.0.0:8080 --close-after 100 --delay-ms "$delay" $backend_args >/dev/null
backend_ip=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$id-backend")
python3 - "$here/envoy.yaml.in" "$work/envoy.yaml" "$bind" "$maxrq_block" "$backend_ip" <<'PY'
import sys
src, dst, bind, maxrq, ip = sys.argv[1:]
text = (open(src).read().replace("@BIND@\n", bind + "\n" if bind else "")
        .replace("@MAXRQ@\n", maxrq + "\n" if maxrq else "")
        .replace("address: 127.0.0.1, port_value: 8080", f"address: {ip}, port_value: 8080")
        .replace("address: 127.0.0.1, port_value: 10000", "address: 0.0.0.0, port_value: 10000"))
open(dst, "w").write(text)
PY
docker run -d --label connlab=1 --network "$id" --name "$id-envoy" --network-alias envoy \
  -v "$work:/x:ro" "$image" envoy -c /x/envoy.yaml --concurrency 1 --disable-hot-restart -l debug \
  --file-flush-interval-msec 100 >/dev/null
until docker exec "$id-envoy" curl -sf http://127.0.0.1:9901/ready >/dev/null 2>&1; do sleep 0.2; done

start=$(date +%s.%N)
docker run --rm --label connlab=1 --network "$id" "$image" connlab-client --target envoy:10000 \
  --connections "$conns" --requests "$reqs" >"$work/client.jsonl" 2>/dev/null
end=$(date +%s.%N)
sleep 0.5
echo "pin=$pin maxrq=$maxrq backend='--close-after 100 $backend_args' delay=$delay ts=$ts connections=$conns requests/worker=$reqs wall=$(python3 -c "print(round($end - $start, 1))")s"
echo "client (count class):"
python3 -c '
import json, sys, collections
c = collections.Counter()
for line in open(sys.argv[1]):
    r = json.loads(line)
    if "status" in r or "error" in r:
        e = r.get("error")
        c[str(r.get("status") or (e.get("kind") if isinstance(e, dict) else e))] += 1
for k, v in sorted(c.items()): print(f"  {v:5d} {k}")' "$work/client.jsonl"
echo "envoy access log (count code flags attempts failure):"
docker logs "$id-envoy" 2>/dev/null | grep '^ACCESS' | awk '{print $2, $3, $5, $7}' | sort | uniq -c | sed 's/^/ /'
echo "upstream local addresses (count):"
docker logs "$id-envoy" 2>/dev/null | grep '^ACCESS' | awk '{print $6}' | sed -E 's/:[0-9]+$/:P/;t;s/$//' | sort | uniq -c | sed 's/^/ /'
echo "stats:"
docker exec "$id-envoy" curl -s http://127.0.0.1:9901/stats | grep -E '^cluster\.backend\.(upstream_cx_connect_fail|upstream_cx_total|upstream_rq_503|upstream_rq_retry|upstream_rq_retry_success|upstream_rq_retry_limit_exceeded|upstream_cx_destroy_local|upstream_cx_destroy_remote|upstream_cx_max_requests):' | sed 's/^/  /'
echo "envoy debug log (count):"
docker logs "$id-envoy" 2>&1 | grep -oE 'immediate connect error: [0-9]+' | sort | uniq -c | sed 's/^/ /' || true
echo "TIME_WAIT on the pinned port in Envoy's namespace:"
docker exec "$id-envoy" ss -tanH state time-wait | sed 's/^/  /'
