#!/usr/bin/env bash
# keepalive-race by hand, in Docker, with the lab image: the commands behind
# the numbers in compose/lab-image/README.md.
#
#   run.sh idle SERVER TRIALS
#       one keep-alive request per trial straight to the backend, then the
#       time until the server's FIN (client clock and tcpdump in the backend)
#   run.sh race SERVER DELAY_MS TRIALS G [G ...]
#       backend (egress delayed DELAY_MS by connlab-delay) <- Envoy <- client;
#       per G: TRIALS x (request, sleep G, request), the second one's status,
#       then Envoy's access-log summary and upstream_cx_destroy_remote_with_active_rq
#
# SERVER: node | cherrypy | tomcat. CONNLAB_NODE_KEEPALIVE_MS,
# CONNLAB_CHERRYPY_SOCKET_TIMEOUT_S and CONNLAB_TOMCAT_KEEPALIVE_MS are passed
# to the backend when set (the "fixed" variants). Everything it creates is
# labelled connlab=1 and removed on exit.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
image=${CONNLAB_IMAGE:-$("$root/compose/lab-image/build.sh" | tail -n1)}

mode=${1:?usage: run.sh idle|race SERVER ...}
server=${2:?SERVER: node | cherrypy | tomcat}
case $server in
  node) cmd=(node /opt/connlab/backends/node-server.js) ;;
  cherrypy) cmd=(python3 /opt/connlab/backends/cherrypy-server.py) ;;
  tomcat) cmd=(/opt/connlab/backends/tomcat-start.sh) ;;
  *) echo "unknown server $server" >&2; exit 2 ;;
esac

id=connlab-exp-$$
trap 'docker rm -f $id-backend $id-envoy >/dev/null 2>&1 || true; docker network rm $id >/dev/null 2>&1 || true' EXIT
docker network create --label connlab=1 "$id" >/dev/null
run() { docker run --label connlab=1 --network "$id" -v "$here:/x:ro" "$@"; }
client() { run --rm "$image" "$@"; }

env_args=()
for v in CONNLAB_NODE_KEEPALIVE_MS CONNLAB_CHERRYPY_SOCKET_TIMEOUT_S CONNLAB_TOMCAT_KEEPALIVE_MS; do
  [ -n "${!v:-}" ] && env_args+=(-e "$v=${!v}")
done
run -d --name "$id-backend" --network-alias backend --cap-add NET_ADMIN "${env_args[@]}" \
  "$image" "${cmd[@]}" >/dev/null
for _ in $(seq 120); do
  docker exec "$id-backend" bash -c 'echo > /dev/tcp/127.0.0.1/8080' 2>/dev/null && break
  sleep 0.5
done
docker logs "$id-backend" 2>&1 | grep -E 'ready|Server startup|connector' >&2 || true

case $mode in
  idle)
    trials=${3:?TRIALS}
    docker exec -d "$id-backend" sh -c 'tcpdump -i eth0 -nn -tt -l "tcp port 8080" >/tmp/cap.txt 2>/dev/null'
    sleep 1
    client python3 /x/idle_close.py backend "$trials"
    docker exec "$id-backend" cat /tmp/cap.txt | python3 "$here/fin_times.py"
    ;;
  race)
    delay=${3:?DELAY_MS} trials=${4:?TRIALS}
    shift 4
    docker exec "$id-backend" sh -c "iptables -A OUTPUT -p tcp --sport 8080 -j NFQUEUE --queue-num 0 --queue-bypass
      connlab-delay --queue 0 --delay-ms $delay >/tmp/delay.log 2>&1 &
      sleep 0.5; cat /tmp/delay.log" >&2
    run -d --name "$id-envoy" --network-alias envoy "$image" \
      envoy -c /x/envoy.yaml --concurrency 1 -l error >/dev/null
    client sh -c 'until curl -sf http://envoy:9901/ready >/dev/null; do sleep 0.2; done'
    client python3 /x/race.py http://envoy:10000/ "$trials" "$@" | sed "s/^/$server D=$delay /"
    sleep 2 # Envoy flushes its access log about once a second
    echo "envoy access log (count code flags details):"
    docker logs "$id-envoy" 2>/dev/null | awk '/^ACCESS/ {print $3, $4, $5}' | sort | uniq -c
    client curl -s 'http://envoy:9901/stats?filter=upstream_cx_destroy_remote_with_active_rq$'
    ;;
  *) echo "unknown mode $mode" >&2; exit 2 ;;
esac
