#!/usr/bin/env bash
# Measures the pooled client libraries' defaults in the lab image (issue 17),
# rather than taking them from their docs: each client role, at its
# library's defaults, against connlab-backend (a keep-alive server that
# never closes first), with idle gaps bracketing reqwest's documented 90 s:
#
#   request 0, idle 89.5 s, request 1, request 2, idle 90.5 s, request 3
#
# A request is `reused` when the library sent it on a pooled connection
# (reqwest: no connect during it; urllib3: the pool handed out a connected
# socket; Node: req.reusedSocket). So "1 reused, 3 new" brackets a pool idle
# timeout between the two gaps, and "1 and 3 reused" means none below 90.5 s.
# 20 s in, `ss -tno` in each client's container shows its sockets' TCP
# keep-alive timer (SO_KEEPALIVE on, and the probe time) or none.
# A second pass runs the Node agent against Node's own server (which sends
# `Keep-Alive: timeout=5`) with a 4.5 s gap: does the agent honour the hint?
#
#   scripts/measure-client-defaults.sh        # about 3 min 10 s
#
# Needs the lab image (make image); CONNLAB_IMAGE overrides target/lab-image.tag.
# Everything it starts carries the lab's labels (connlab=1, its run id and
# this shell's pid, so the lab's sweep of dead runs leaves it alone while it
# runs) and is removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

image=${CONNLAB_IMAGE:-$(cat target/lab-image.tag 2>/dev/null || true)}
[ -n "$image" ] || { echo "connlab: no lab image: run make image" >&2; exit 1; }
run=connlab-measure-$$
net=$run
cleanup() {
  docker ps -aq --filter "label=connlab.run=$run" | xargs -r docker rm -f >/dev/null 2>&1 || true
  docker network rm "$net" >/dev/null 2>&1 || true
}
trap cleanup EXIT INT TERM

labels=(--label connlab=1 --label "connlab.run=$run" --label "connlab.pid=$$")
docker network create "${labels[@]}" "$net" >/dev/null
start() { # name, command...
  local name=$1
  shift
  docker run -d --name "$run-$name" --hostname "$name" --network "$net" \
    "${labels[@]}" "$image" "$@" >/dev/null
}
start backend connlab-backend
start node-backend node /opt/connlab/backends/node-server.js
sleep 2

declare -A clients=(
  [reqwest]="connlab-reqwest"
  [requests]="python3 /opt/connlab/clients/requests-client.py"
  [node-agent]="node /opt/connlab/clients/node-agent-client.js"
  [java]="java /opt/connlab/clients/JavaHttpClient.java"
)
for lib in "${!clients[@]}"; do
  # shellcheck disable=SC2086
  start "$lib" ${clients[$lib]} --target backend:8080 --requests 4 --gaps-ms 0,89500,0,90500
done
# shellcheck disable=SC2086
start node-agent-hint ${clients[node-agent]} --target node-backend:8080 --requests 2 --gaps-ms 0,4500

sleep 20
for lib in "${!clients[@]}"; do
  echo "== $lib: ss -tno (20 s in, idle since request 0)"
  docker exec "$run-$lib" ss -tno state established '( dport = :8080 )' | tail -n +2 || true
done

for lib in node-agent-hint "${!clients[@]}"; do
  docker wait "$run-$lib" >/dev/null
  echo "== $lib"
  docker logs "$run-$lib" 2>&1 | python3 -c '
import json, sys
for line in sys.stdin:
    line = line.strip()
    if not line.startswith("{"):
        print("  " + line)
        continue
    r = json.loads(line)
    if r.get("type") != "request":
        continue
    print("  request %d at %9.1f ms: %s reused=%s local=%s %s" % (
        r["seq"], r["start_ms"], r["status"] or r["error"], r["reused"], r["local"],
        r.get("library_error") or ""))
'
done
