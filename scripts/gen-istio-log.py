#!/usr/bin/env python3
"""Writes a synthetic Istio TEXT access log (connlab::access_log::ISTIO_TEXT_FORMAT)
of about SIZE bytes for `make bench-diagnose`: 200 pooled upstream connections
to 4 backends, requests 2-20 ms long, most healthy, 0.1 % 503 UC keep-alive
races after 5.5-6 s idle, 0.05 % 503 UF connect failures. Deterministic (seeded).

usage: gen-istio-log.py SIZE_BYTES OUT
"""
import random
import sys
import time

size, out = int(sys.argv[1]), sys.argv[2]
rng = random.Random(42)
hosts = [f"10.1.0.{i}:8080" for i in range(1, 5)]
conns = [(f"10.0.0.5:{40000 + i}", hosts[i % 4]) for i in range(200)]
start = 1796083200.0  # 2026-12-01T00:00:00Z
agents = ["curl/8.5.0", "Go-http-client/1.1", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36"]
LINE = ('[{t}] "{m} {p} HTTP/1.1" {code} {flags} {details} - "{failure}" {rx} {tx} {dur} {ust} '
        '"-" "{ua}" "{rid:08x}-5a1e-4c2b-9d3f-{rid:012x}" "reviews.default.svc.cluster.local:9080" '
        '"{host}" outbound|9080||reviews.default.svc.cluster.local {local} 10.0.0.5:9080 '
        '10.0.0.7:{dport} - default\n')


def stamp(t):
    ms = int(t * 1000) % 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{ms:03d}Z"


written = 0
now = start
rid = 0
with open(out, "w", buffering=1 << 20) as f:
    while written < size:
        batch = []
        for _ in range(1000):
            rid += 1
            now += rng.random() * 0.004
            local, host = conns[rng.randrange(len(conns))]
            roll = rng.random()
            code, flags, details, failure, dur = 200, "-", "via_upstream", "-", rng.randrange(2, 20)
            t = now
            if roll < 0.001:
                # The pooled connection sat idle past the backend's timeout.
                t = now
                code, flags, dur = 503, "UC", 0
                details = "upstream_reset_before_response_started{connection_termination}"
                local = f"10.0.0.5:{50000 + rid % 10000}"
                batch.append(LINE.format(t=stamp(t - 5.5 - rng.random() * 0.5), m="GET", p="/", code=200,
                                         flags="-", details="via_upstream", failure="-", rx=0, tx=120, dur=3,
                                         ust=2, ua=agents[0], rid=rid, host=host, local=local,
                                         dport=rng.randrange(30000, 60000)))
            elif roll < 0.0015:
                code, flags, dur, local = 503, "UF", 1, "-"
                details = "upstream_reset_before_response_started{remote_connection_failure}"
                failure = "delayed_connect_error:_Connection_refused"
            batch.append(LINE.format(t=stamp(t), m=rng.choice(["GET", "GET", "POST"]),
                                     p=f"/reviews/{rng.randrange(1000)}", code=code, flags=flags,
                                     details=details, failure=failure, rx=rng.randrange(0, 500),
                                     tx=rng.randrange(100, 5000), dur=dur, ust=max(dur - 1, 0),
                                     ua=rng.choice(agents), rid=rid, host=host, local=local,
                                     dport=rng.randrange(30000, 60000)))
        chunk = "".join(batch)
        f.write(chunk)
        written += len(chunk)
