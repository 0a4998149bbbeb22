#!/usr/bin/env bash
# snat-timewait by hand (seed 003), in Docker with the lab image: the commands
# behind compose/experiments/snat-timewait/README.md.
#
#   run.sh precise MODE [SYSCTL=V ...]
#       a scapy "load balancer" and a server that closes first
#       (connlab-backend --close-per-request); MODE: below | above | ts-below | rst
#       (see compose/scripts/snat-precise.py); tcpdump at the server prints the
#       whole exchange.
#       Extra args are server sysctls, e.g. net.ipv4.tcp_tw_reuse=1.
#       KEEP_CAPTURE=FILE keeps the server's pcap.
#   run.sh load KEEPALIVE RATE SECONDS [PORTS] [STRIP] [DROP_RST]
#       connlab-client -> router (SNAT to PORTS source ports picked at random,
#       TCPOPTSTRIP timestamp when STRIP=1, the client's RSTs towards the server
#       dropped when DROP_RST=1) -> server. KEEPALIVE=false: a new connection per
#       request and the server closes first; true: persistent connections.
#       Prints the client's summary, the server's TIME_WAIT count and the
#       challenge-ACK count seen by tcpdump at the server. CT_TIME_WAIT_S (1):
#       the router's conntrack TIME_WAIT timeout; CLIENT_TCP_TIMESTAMPS (1): the
#       client's net.ipv4.tcp_timestamps; KEEP_CAPTURE=FILE keeps the pcap.
#
# Everything it creates is labelled connlab-experiment=1 and removed on exit.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
image=${CONNLAB_IMAGE:-$(cat "$root/target/lab-image.tag")}
mode=${1:?usage: run.sh precise MODE | load KEEPALIVE RATE SECONDS [PORTS] [STRIP] [DROP_RST]}

id=connlab-snat-$$
tmp=$(mktemp -d)
cleanup() {
  rm -rf "$tmp"
  docker rm -f "$id-server" "$id-router" "$id-lb" >/dev/null 2>&1 || true
  docker network rm "$id-c" "$id-s" >/dev/null 2>&1 || true
}
trap cleanup EXIT
label=(--label connlab-experiment=1)
docker network create "${label[@]}" --subnet 10.231.1.0/24 "$id-c" >/dev/null
docker network create "${label[@]}" --subnet 10.231.2.0/24 "$id-s" >/dev/null
SERVER=10.231.2.10 ROUTER_S=10.231.2.2 ROUTER_C=10.231.1.2

server_sysctls=()
start_server() { # connlab-backend flags
  docker run -d "${label[@]}" --name "$id-server" --network "$id-s" --ip $SERVER \
    --cap-add NET_ADMIN "${server_sysctls[@]}" "$image" \
    sh -c 'tcpdump -i eth0 -nn -S -w /tmp/cap.pcap "tcp port 8080" 2>/tmp/tcpdump.log & exec connlab-backend "$@"' sh "$@" >/dev/null
  for _ in $(seq 50); do
    docker exec "$id-server" bash -c 'grep -q listening /tmp/tcpdump.log && echo > /dev/tcp/127.0.0.1/8080' 2>/dev/null && return
    sleep 0.2
  done
  echo "server did not start" >&2; exit 1
}

case $mode in
  precise)
    what=${2:?MODE: below | above | ts-below | rst}
    for s in "${@:3}"; do server_sysctls+=(--sysctl "$s"); done
    start_server --close-per-request
    docker run -d "${label[@]}" --name "$id-lb" --network "$id-s" --ip 10.231.2.20 \
      --cap-add NET_ADMIN --cap-add NET_RAW -v "$root/compose/scripts:/x:ro" "$image" sleep 600 >/dev/null
    docker exec "$id-lb" python3 /x/snat-precise.py $SERVER 40000 "$what" "${GAP_S:-5}"
    echo "--- tcpdump at the server (relative seq/ack)"
    docker exec "$id-server" sh -c 'pkill -INT tcpdump; sleep 0.5; tcpdump -nn -tt -r /tmp/cap.pcap 2>/dev/null' |
      awk 'NR==1 {t0=$1} {printf "%2d. +%.6f %s\n", NR, $1-t0, substr($0, index($0,$2))}'
    [ -n "${KEEP_CAPTURE:-}" ] && docker cp "$id-server:/tmp/cap.pcap" "$KEEP_CAPTURE" >/dev/null
    ;;
  load)
    keepalive=${2:?KEEPALIVE} rate=${3:?RATE} seconds=${4:?SECONDS}
    ports=${5:-4} strip=${6:-1} drop_rst=${7:-1}
    # KEEPALIVE=false: the Go 1.4.3 server of the seed, closing after every
    # response; true: the Go 1.8 one, persistent connections.
    if [ "$keepalive" = true ]; then start_server; else start_server --close-per-request; fi
    docker run -d "${label[@]}" --name "$id-router" --network "$id-c" --ip $ROUTER_C \
      --cap-add NET_ADMIN --sysctl net.ipv4.ip_forward=1 \
      --sysctl net.netfilter.nf_conntrack_tcp_timeout_time_wait="${CT_TIME_WAIT_S:-1}" "$image" sleep 3600 >/dev/null
    docker network connect --ip $ROUTER_S "$id-s" "$id-router"
    last=$((40000 + ports - 1))
    r() { docker exec "$id-router" "$@"; }
    sif=$(r ip -o -4 addr show | awk -v ip=$ROUTER_S '$4 ~ ip"/" {print $2}')
    r iptables -t nat -A POSTROUTING -o "$sif" -p tcp -j SNAT --to-source "$ROUTER_S:40000-$last" --random
    [ "$strip" = 1 ] && r iptables -t mangle -A POSTROUTING -o "$sif" -p tcp -j TCPOPTSTRIP --strip-options timestamp
    [ "$drop_rst" = 1 ] && r iptables -A FORWARD -o "$sif" -p tcp --tcp-flags RST RST -j DROP
    per_conn=$(awk -v r="$rate" 'BEGIN {print r / 4}')
    # CLIENT_TCP_TIMESTAMPS=2: the client's kernel uses one timestamp clock for
    # every connection (1, Linux's default, gives each connection a random offset).
    docker run --rm "${label[@]}" --name "$id-client" --network "$id-c" --cap-add NET_ADMIN \
      --sysctl net.ipv4.tcp_timestamps="${CLIENT_TCP_TIMESTAMPS:-1}" "$image" sh -c "
      ip route add 10.231.2.0/24 via $ROUTER_C &&
      connlab-client --target $SERVER:8080 --connections 4 --rate $per_conn --keep-alive $keepalive \
        --duration-ms $((seconds * 1000)) --connect-timeout-ms 3000 --read-timeout-ms 5000" |
      tail -n1 | python3 -c '
import json, sys
s = json.loads(sys.stdin.read())
print("client:", s["requests"], "requests,", s["ok"], "ok,", s["failed"], "failed", s["classes"], "new connections", s["new_connections"])
print("client: ok latency p50/p99/max ms", s["ok_latency_ms"]["p50"], s["ok_latency_ms"]["p99"], s["ok_latency_ms"]["max"])'
    echo "server TIME_WAIT sockets now: $(docker exec "$id-server" sh -c 'ss -tan state time-wait | tail -n +2 | wc -l')"
    docker exec "$id-server" sh -c 'pkill -INT tcpdump; sleep 0.5; tcpdump -nn -tt -S -r /tmp/cap.pcap 2>/dev/null' >"$tmp/cap.txt"
    python3 "$here/challenge_acks.py" $SERVER.8080 <"$tmp/cap.txt"
    [ -n "${KEEP_CAPTURE:-}" ] && docker cp "$id-server:/tmp/cap.pcap" "$KEEP_CAPTURE"
    ;;
  *) echo "unknown mode $mode" >&2; exit 2 ;;
esac
