#!/usr/bin/env bash
# Regenerates the test captures in this directory with real kernels, each
# in a fresh container of the lab image (`make image`). Needs Docker only.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
image=${CONNLAB_IMAGE:-$(cat "$root/target/lab-image.tag")}
for name in keepalive-race-rst timewait-ack dead-peer; do
    docker run --rm --label connlab --cap-add NET_ADMIN --cap-add NET_RAW \
        --sysctl net.ipv4.tcp_timestamps=0 \
        -v "$here:/data" "$image" \
        python3 /data/captures.py "$name" "/data/$name.pcap"
    echo "$name.pcap: $(stat -c %s "$here/$name.pcap") bytes"
done
