#!/usr/bin/env python3
"""The client role on Python `requests` (Debian bookworm's python3-requests
and python3-urllib3, pinned by the lab image's suite): one `requests.Session`
shared by the workers, its HTTPAdapter at the library's defaults unless a
flag sets a knob (each flag is the HTTPAdapter / `Session.request` argument's
name). urllib3's pool has no idle timeout at all: a pooled connection is
reused however long it sat idle, unless the socket is already readable
(the peer's FIN has arrived) when it is taken from the pool.

stdout gets connlab-client's lines (one JSON record per request, then no
summary: the lab computes it from the records), each failed record with
`library_error`: the exception as a service logs it, class and message.

    python3 requests-client.py --target envoy:10000 --requests 6 --gaps-ms 0,5500
"""
import argparse
import json
import sys
import threading
import time

import requests
import urllib3
from urllib3.connection import HTTPConnection
from urllib3.connectionpool import HTTPConnectionPool

TAG_HEADER = "x-connlab"
# connlab::client::MAX_RUN: a request still waiting then is `unfinished`.
MAX_RUN_S = 600.0

# Which connection a request went out on. urllib3 has no public hook for
# it, so the pool's checkout and the connection's connect() are wrapped
# (the library's behaviour is unchanged): after _get_conn, a connection
# with a socket is a pooled one about to be reused (one found dropped was
# closed by _get_conn itself); otherwise connect() runs next.
_seen = threading.local()
_get_conn = HTTPConnectionPool._get_conn
_connect = HTTPConnection.connect


def _watched_get_conn(self, *args, **kwargs):
    conn = _get_conn(self, *args, **kwargs)
    sock = getattr(conn, "sock", None)
    _seen.reused = sock is not None
    _seen.local = _addr(sock.getsockname()) if sock is not None else None
    return conn


def _watched_connect(self):
    _connect(self)
    _seen.local = _addr(self.sock.getsockname())


HTTPConnectionPool._get_conn = _watched_get_conn
HTTPConnection.connect = _watched_connect


def _addr(sockname):
    return "%s:%d" % (sockname[0], sockname[1])


def classify(error):
    """The lab's error class ({"kind": ...}) of a requests exception, from
    the innermost cause that tells: EOF before a response
    (RemoteDisconnected, itself a ConnectionResetError, or IncompleteRead),
    an OSError's errno (reset, refused), or a timeout."""
    import http.client
    import socket

    if isinstance(error, requests.exceptions.ConnectTimeout):
        return {"kind": "connect", "errno": 110}
    if isinstance(error, requests.exceptions.Timeout):
        return {"kind": "timeout"}
    for cause in _causes(error):
        if isinstance(cause, (http.client.RemoteDisconnected, http.client.IncompleteRead)):
            return {"kind": "eof"}
        if isinstance(cause, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
            return {"kind": "reset"}
        if isinstance(cause, ConnectionRefusedError):
            return {"kind": "connect", "errno": 111}
        if isinstance(cause, socket.timeout):
            return {"kind": "timeout"}
    for cause in _causes(error):
        if isinstance(cause, OSError) and cause.errno:
            return {"kind": "connect", "errno": cause.errno}
    return {"kind": "protocol"}


def _causes(error):
    """The error, its arguments, `reason`s and chained exceptions, depth first."""
    seen, stack, out = set(), [error], []
    while stack:
        e = stack.pop()
        if not isinstance(e, BaseException) or id(e) in seen:
            continue
        seen.add(id(e))
        out.append(e)
        stack.extend(reversed([a for a in e.args if isinstance(a, BaseException)]))
        for nested in (getattr(e, "reason", None), e.__cause__, e.__context__):
            if nested is not None:
                stack.append(nested)
    return out


def error_text(error):
    cls = type(error)
    return "%s.%s: %s" % (cls.__module__, cls.__qualname__, error)


def optional_s(value):
    return None if value == "none" else float(value)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--target", required=True)
    p.add_argument("--path", default="/")
    p.add_argument("--connections", type=int, default=1,
                   help="concurrent workers sharing the one Session")
    p.add_argument("--requests", type=int, required=True, help="requests per worker")
    p.add_argument("--gaps-ms", default="", help="idle gap before each request, cycled")
    # HTTPAdapter(pool_connections=10, pool_maxsize=10, max_retries=0).
    p.add_argument("--pool-connections", type=int)
    p.add_argument("--pool-maxsize", type=int)
    p.add_argument("--max-retries", type=int)
    # Session.request(timeout=None): seconds, or (connect, read).
    p.add_argument("--timeout-ms", type=int)
    a = p.parse_args()

    gaps = [int(g) for g in a.gaps_ms.split(",") if g]
    session = requests.Session()
    adapter_args = {k: v for k, v in (("pool_connections", a.pool_connections),
                                      ("pool_maxsize", a.pool_maxsize),
                                      ("max_retries", a.max_retries)) if v is not None}
    if adapter_args:
        adapter = requests.adapters.HTTPAdapter(**adapter_args)
        session.mount("http://", adapter)
    url = "http://%s%s" % (a.target, a.path)
    timeout = a.timeout_ms / 1000.0 if a.timeout_ms is not None else None
    print("requests-client: requests %s urllib3 %s python %s, %d worker(s) -> %s"
          % (requests.__version__, urllib3.__version__, sys.version.split()[0],
             a.connections, url), file=sys.stderr, flush=True)

    started = time.monotonic()
    lock = threading.Lock()

    def ms(t):
        return round((t - started) * 1000.0, 3)

    def emit(record):
        with lock:
            print(json.dumps(record), flush=True)
            if record.get("library_error"):
                print("requests-client: request %d: %s" % (record["seq"], record["library_error"]),
                      file=sys.stderr, flush=True)

    def worker(wid):
        for seq in range(a.requests):
            if gaps:
                time.sleep(gaps[seq % len(gaps)] / 1000.0)
            start = time.monotonic()
            if start - started >= MAX_RUN_S:
                return
            _seen.reused, _seen.local = False, None
            record = {"type": "request", "worker": wid, "seq": seq, "start_ms": ms(start),
                      "end_ms": 0.0, "status": None, "error": None, "local": None,
                      "reused": False, "tag": None}
            try:
                response = session.get(url, timeout=timeout)
                record["status"] = response.status_code
                record["tag"] = response.headers.get(TAG_HEADER)
            except requests.exceptions.RequestException as e:
                record["error"] = classify(e)
                record["library_error"] = error_text(e)
            record["end_ms"] = ms(time.monotonic())
            record["reused"] = bool(getattr(_seen, "reused", False))
            record["local"] = getattr(_seen, "local", None)
            emit(record)

    threads = [threading.Thread(target=worker, args=(w,), daemon=True)
               for w in range(a.connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, MAX_RUN_S - (time.monotonic() - started)))


if __name__ == "__main__":
    main()
