#!/usr/bin/env bash
# half-open by hand (seed 002), in Docker with the lab image: the commands
# behind compose/experiments/half-open/README.md.
#
#   run.sh client VARIANT SECONDS FAULT_AT_S
#       client (8 blocking keep-alive connections, 5 req/s each) -> vip (DNAT,
#       connections alternate between node A and node B, conntrack keeps each
#       on its node) -> gateway Envoy A | B -> backend A | B. At FAULT_AT_S node B
#       "loses power" (iptables DROP both ways on gateway B and backend B) and
#       the vip stops sending new connections to B (ECMP withdraws it).
#       VARIANT: broken | read-timeout | user-timeout | keepalive | retries2-5, or
#       broken-idle | keepalive-idle (1 request per 10 s per connection)
#   run.sh gateway VARIANT SECONDS FAULT_AT_S
#       client -> gateway Envoy (connlab filter) -> backends A and B (round robin);
#       at FAULT_AT_S backend B goes silent. VARIANT: default (route timeout
#       15 s) | no-timeout | keepalive | user-timeout (the last two: route timeout off)
#
# Everything it creates is labelled connlab-experiment=1 and removed on exit.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
image=${CONNLAB_IMAGE:-$(cat "$root/target/lab-image.tag")}
wasm=$root/target/wasm32-unknown-unknown/wasm/connlab_filter.wasm
mode=${1:?usage: run.sh client|gateway VARIANT SECONDS FAULT_AT_S}
variant=${2:?VARIANT} seconds=${3:?SECONDS} fault_at=${4:?FAULT_AT_S}

id=connlab-ho-$$
names=(client vip gwa gwb bea beb)
client_sysctls=()
cleanup() {
  for n in "${names[@]}"; do docker rm -f "$id-$n" >/dev/null 2>&1 || true; done
  for n in front a b; do docker network rm "$id-$n" >/dev/null 2>&1 || true; done
  rm -rf "$tmp"
}
tmp=$(mktemp -d)
trap cleanup EXIT
label=(--label connlab-experiment=1)
docker network create "${label[@]}" --subnet 10.232.0.0/24 "$id-front" >/dev/null
docker network create "${label[@]}" --subnet 10.232.1.0/24 "$id-a" >/dev/null
docker network create "${label[@]}" --subnet 10.232.2.0/24 "$id-b" >/dev/null
VIP=10.232.0.2 GWA=10.232.0.11 GWB=10.232.0.12 BEA=10.232.1.21 BEB=10.232.2.22

backend() { # name net ip
  docker run -d "${label[@]}" --name "$id-$1" --network "$id-$2" --ip "$3" --cap-add NET_ADMIN \
    "$image" connlab-backend >/dev/null
}
gateway() { # name front-ip nets-csv backends-csv route-timeout opts
  "$here/gateway.sh" "$4" "$5" "$6" >"$tmp/$1.yaml"
  docker create "${label[@]}" --name "$id-$1" --network "$id-front" --ip "$2" --cap-add NET_ADMIN \
    -v "$tmp/$1.yaml:/envoy.yaml:ro" -v "$wasm:/wasm/connlab_filter.wasm:ro" \
    "$image" envoy -c /envoy.yaml --concurrency 1 -l warning >/dev/null
  for net in ${3//,/ }; do docker network connect "$id-$net" "$id-$1"; done
  docker start "$id-$1" >/dev/null
}
ready() { # name
  for _ in $(seq 100); do
    docker exec "$id-$1" sh -c 'curl -sf http://127.0.0.1:9901/ready >/dev/null' 2>/dev/null && return
    sleep 0.2
  done
  echo "$1 not ready" >&2; docker logs "$id-$1" >&2; exit 1
}
blackhole() { # name: a node that lost power drops everything, answers nothing
  docker exec "$id-$1" sh -c 'iptables -A INPUT ! -i lo -j DROP && iptables -A OUTPUT ! -o lo -j DROP'
}
client() { # extra connlab-client flags; runs the fault schedule beside it
  docker run -d "${label[@]}" --name "$id-client" --network "$id-front" --ip 10.232.0.5 \
    "${client_sysctls[@]}" "$image" connlab-client --connections 8 --duration-ms $((seconds * 1000)) "$@" >/dev/null
  local started
  started=$(date +%s.%N)
  sleep "$fault_at"
  # When the fault begins on the client's clock (its records count from its
  # start; the container's process starts within ms of `docker run -d`).
  fault_s=$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')
  fault
  echo "fault injected from ${fault_s} s (done at $(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}') s)" >&2
  docker wait "$id-client" >/dev/null
  docker logs "$id-client" >"$tmp/client.out" 2>/dev/null
}

case $mode in
  client)
    backend bea a $BEA; backend beb b $BEB
    gateway gwa $GWA a $BEA 15s none; gateway gwb $GWB b $BEB 15s none
    ready gwa; ready gwb
    docker run -d "${label[@]}" --name "$id-vip" --network "$id-front" --ip $VIP --cap-add NET_ADMIN \
      --sysctl net.ipv4.ip_forward=1 --sysctl net.ipv4.conf.all.send_redirects=0 \
      --sysctl net.ipv4.conf.eth0.send_redirects=0 "$image" sleep 3600 >/dev/null
    docker exec "$id-vip" sh -c "
      iptables -t nat -A PREROUTING -d $VIP -p tcp --dport 10000 -m statistic --mode nth --every 2 --packet 0 -j DNAT --to-destination $GWA:10000
      iptables -t nat -A PREROUTING -d $VIP -p tcp --dport 10000 -j DNAT --to-destination $GWB:10000
      iptables -t nat -A POSTROUTING -d 10.232.0.0/24 -p tcp --dport 10000 -j MASQUERADE"
    case $variant in
      broken) flags=(--rate 5) ;;
      read-timeout) flags=(--rate 5 --read-timeout-ms 6000) ;;
      user-timeout) flags=(--rate 5 --tcp-user-timeout-ms 6000) ;;
      keepalive) flags=(--rate 5 --tcp-keepalive-idle-s 1 --tcp-keepalive-interval-s 1 --tcp-keepalive-count 3) ;;
      keepalive-idle) flags=(--rate 0.1 --tcp-keepalive-idle-s 1 --tcp-keepalive-interval-s 1 --tcp-keepalive-count 3) ;;
      broken-idle) flags=(--rate 0.1) ;;
      # The kernel's own bound, shortened: tcp_retries2=5 gives up after
      # 0.2 s x (2^6 - 1) = 12.6 s of unanswered retransmits (15, the
      # default, after 924.6 s).
      retries2-5) flags=(--rate 5); client_sysctls=(--sysctl net.ipv4.tcp_retries2=5) ;;
      *) echo "unknown variant $variant" >&2; exit 2 ;;
    esac
    fault() {
      blackhole gwb; blackhole beb
      # ECMP withdraws node B: new connections go to A; conntrack keeps old ones on B.
      docker exec "$id-vip" sh -c "iptables -t nat -F PREROUTING &&
        iptables -t nat -A PREROUTING -d $VIP -p tcp --dport 10000 -j DNAT --to-destination $GWA:10000"
    }
    client --target $VIP:10000 "${flags[@]}"
    python3 "$here/analyze.py" "$tmp/client.out" "$fault_s"
    cp "$tmp/client.out" "/tmp/half-open-$mode-$variant.jsonl"
    ;;
  gateway)
    backend bea a $BEA; backend beb a 10.232.1.22
    case $variant in
      default) gateway gwa $GWA a "$BEA,10.232.1.22" 15s none ;;
      no-timeout) gateway gwa $GWA a "$BEA,10.232.1.22" 0s none ;;
      keepalive) gateway gwa $GWA a "$BEA,10.232.1.22" 0s keepalive ;;
      user-timeout) gateway gwa $GWA a "$BEA,10.232.1.22" 0s user-timeout ;;
      *) echo "unknown variant $variant" >&2; exit 2 ;;
    esac
    ready gwa
    fault() { blackhole beb; }
    client --target $GWA:10000 --rate 5
    python3 "$here/analyze.py" "$tmp/client.out" "$fault_s"
    echo "gateway access log (count code flags details diagnosis), requests to B only:"
    docker logs "$id-gwa" 2>/dev/null | awk '/^ACCESS/ && /10.232.1.22/ {print $2, $3, $4, $7}' | sort | uniq -c
    echo "gateway stats:"
    docker exec "$id-gwa" curl -s http://127.0.0.1:9901/stats |
      grep -E 'cluster.backend.(upstream_cx_destroy_local_with_active_rq|upstream_cx_destroy_remote_with_active_rq|upstream_rq_timeout|upstream_cx_connect_timeout|upstream_rq_pending_failure_eject|upstream_cx_connect_fail):'
    echo "filter events (diagnosis counts):"
    docker logs "$id-gwa" 2>&1 | grep -o '"diagnosis":"[a-z_]*"' | sort | uniq -c || true
    cp "$tmp/client.out" "/tmp/half-open-$mode-$variant.jsonl"
    ;;
  *) echo "unknown mode $mode" >&2; exit 2 ;;
esac
