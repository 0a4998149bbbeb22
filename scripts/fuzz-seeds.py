#!/usr/bin/env python3
"""The fuzz targets' seed corpora, from checked-in inputs only.

fuzz/seeds/<target>/ holds the seeds that exist nowhere else (real
ClientHellos and first bytes, Envoy's property bytes, filter configs,
--format inputs); the rest is derived here from the test data: every log
the diagnose tests read, each also in the shapes people paste it in (a log
shipper's envelope, pretty-printed JSON, a kubectl prefix, Envoy's log
prefix before the filter's events), and every capture, also as pcapng.
Writes target/fuzz/seeds/<target>/ (replaced on every run).
"""
import json
import pathlib
import shutil
import struct
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "target/fuzz/seeds"
TARGETS = ["client_hello", "sniff", "filter_config", "property",
           "diagnose_log", "diagnose_format", "pcap"]


def logs():
    data = ROOT / "tests/data"
    for path in sorted((data / "diagnose").rglob("*")):
        if path.is_file() and path.suffix in (".log", ".jsonl", ".json", ".default"):
            yield path
    for path in sorted((data / "recorded").rglob("*")):
        if path.name.endswith((".access.log", ".access.jsonl", ".events.jsonl")):
            yield path


def shapes(name, lines):
    """The same lines as people paste them from elsewhere."""
    text = [l for l in lines if l.strip()][:3]
    if not text:
        return
    yield f"{name}.docker", "".join(
        json.dumps({"log": l + "\n", "stream": "stdout", "time": "2026-12-01T02:44:26.124Z"}) + "\n"
        for l in text)
    yield f"{name}.loki", "".join(
        json.dumps({"labels": {"app": "b"}, "line": l, "timestamp": "2026-12-01T02:44:26Z"}) + "\n"
        for l in text)
    yield f"{name}.kubectl", "".join(f"2026-12-01T02:44:26.123456789Z {l}\n" for l in text)
    objects = []
    for l in text:
        try:
            objects.append(json.loads(l))
        except ValueError:
            pass
    if objects:
        yield f"{name}.jq", "".join(json.dumps(o, indent=2) + "\n" for o in objects)
        yield f"{name}.array", json.dumps(objects, indent=2) + "\n"
        yield f"{name}.gcp", "".join(
            json.dumps({"insertId": "x", "jsonPayload": o, "severity": "INFO"}) + "\n"
            for o in objects)
        if all("v" in o for o in objects):
            yield f"{name}.envoy", "".join(
                "[2026-11-23 13:00:00.100][12][info][wasm] wasm log connlab connlab_http "
                f"connlab: {json.dumps(o)}\n" for o in objects)
            yield f"{name}.istio", "".join(
                "2026-12-01T02:44:26.123456Z\tinfo\twasm\twasm log connlab: "
                f"{json.dumps(o)}\n" for o in objects)
    else:
        yield f"{name}.gcp", "".join(
            json.dumps({"insertId": "x", "textPayload": l}) + "\n" for l in text)


def pcapng(pcap):
    """A classic pcap rewritten as pcapng (one interface, same packets)."""
    magic = pcap[:4]
    endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    nanos = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    snaplen, link = struct.unpack(endian + "II", pcap[16:24])

    def block(kind, body):
        body += b"\0" * (-len(body) % 4)
        n = len(body) + 12
        return struct.pack("<II", kind, n) + body + struct.pack("<I", n)

    out = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    # if_tsresol: 9 (nanoseconds) when the pcap had them, else the default µs.
    options = (struct.pack("<HHB3x", 9, 1, 9) if nanos else b"") + struct.pack("<HH", 0, 0)
    out += block(1, struct.pack("<HHI", link, 0, snaplen) + options)
    at = 24
    while at + 16 <= len(pcap):
        sec, frac, caplen, wirelen = struct.unpack(endian + "IIII", pcap[at:at + 16])
        data = pcap[at + 16:at + 16 + caplen]
        at += 16 + caplen
        ts = sec * (10**9 if nanos else 10**6) + frac
        out += block(6, struct.pack("<IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, len(data), wirelen) + data)
    return out


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    for target in TARGETS:
        (OUT / target).mkdir(parents=True)
        own = ROOT / "fuzz/seeds" / target
        if own.is_dir():
            for f in own.iterdir():
                shutil.copy(f, OUT / target / f.name)
    # A connection's first bytes are whatever a client sends first.
    for f in (ROOT / "fuzz/seeds/client_hello").iterdir():
        shutil.copy(f, OUT / "sniff" / f.name)
    for path in logs():
        name = str(path.relative_to(ROOT / "tests/data")).replace("/", "_")
        shutil.copy(path, OUT / "diagnose_log" / name)
        for shape, text in shapes(name, path.read_text(errors="replace").splitlines()):
            (OUT / "diagnose_log" / shape).write_text(text)
    for path in sorted((ROOT / "tests/data").rglob("*.pcap")):
        name = str(path.relative_to(ROOT / "tests/data")).replace("/", "_")
        shutil.copy(path, OUT / "pcap" / name)
        (OUT / "pcap" / (name + "ng")).write_bytes(pcapng(path.read_bytes()))
    for target in TARGETS:
        print(f"{target}: {len(list((OUT / target).iterdir()))} seeds", file=sys.stderr)


if __name__ == "__main__":
    main()
