"""The seed's capture (003, lines 1-17) packet for packet, from a scapy "load
balancer" talking straight to a server that closes first.

    precise.py SERVER_IP SPORT MODE [GAP_S]

MODE says how the second SYN on the same 4-tuple is built:
  below     ISN below the server's old rcv_nxt, no timestamps (the seed's F5)
  above     ISN above the old rcv_nxt, no timestamps
  ts-below  ISN below rcv_nxt, but both connections carry TCP timestamps and
            the second one's is newer (RFC 6191)
  rst       like `below`, but answer the challenge ACK with an RST the way a
            kernel in SYN-SENT does, then retransmit the SYN a second later

The kernel of this container knows none of these connections and would
answer the server's SYN-ACK and challenge ACKs with RSTs of its own: the
script first drops them (`iptables -A OUTPUT -p tcp --tcp-flags RST,ACK RST
-j DROP`; needs NET_ADMIN). scapy's packets leave by a packet socket, past
iptables, so its own RSTs still go out, as the F5's `R.` did.
Prints one line per packet the server sent (seq/ack relative to the first
connection's ISNs), then `verdict: ...`.

In the lab image as /opt/connlab/scripts/snat-precise.py (a `script` node of
scenarios/snat-timewait.toml); compose/experiments/snat-timewait/run.sh runs
the same file by hand.
"""

import subprocess
import sys
import threading
import time

from scapy.all import IP, TCP, AsyncSniffer, Raw, conf, send

conf.verb = 0
server, sport, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
gap = float(sys.argv[4]) if len(sys.argv) > 4 else 5.0
DPORT = 8080
ISN1 = 1640887617  # the seed's first ISN
REQUEST = b"GET / HTTP/1.0\r\nHost: backend\r\nUser-Agent: connlab-precise\r\n\r\n"
use_ts = mode == "ts-below"
M32 = 1 << 32

subprocess.run(
    ["iptables", "-A", "OUTPUT", "-p", "tcp", "--tcp-flags", "RST,ACK", "RST", "-j", "DROP"],
    check=True,
)

got = []
lock = threading.Lock()


def keep(p):
    with lock:
        got.append(p)


sniffer = AsyncSniffer(
    filter=f"tcp and src host {server} and src port {DPORT} and dst port {sport}", prn=keep, store=False
)
sniffer.start()
time.sleep(1.0)
t0 = time.time()
ts_base = 1000


def send_tcp(flags, seq, ack=0, payload=b""):
    opts = []
    if flags == "S":
        opts.append(("MSS", 1460))
    if use_ts:
        tsval = ts_base + int((time.time() - t0) * 1000)
        opts.append(("Timestamp", (tsval, 0)))
    pkt = IP(dst=server) / TCP(
        sport=sport, dport=DPORT, flags=flags, seq=seq % M32, ack=ack % M32, window=14600, options=opts
    )
    if payload:
        pkt = pkt / Raw(payload)
    send(pkt)


def wait(pred, timeout=3.0):
    end = time.time() + timeout
    while time.time() < end:
        with lock:
            for p in got:
                if pred(p):
                    return p
        time.sleep(0.02)
    return None


def flags(p):
    return str(p[TCP].flags)


# --- connection 1: SYN, SYN-ACK, ACK, request, response, server FIN first ---
send_tcp("S", ISN1)
synack = wait(lambda p: flags(p) == "SA")
if synack is None:
    sys.exit("no SYN-ACK from the server")
server_isn = synack[TCP].seq
send_tcp("A", ISN1 + 1, server_isn + 1)
send_tcp("PA", ISN1 + 1, server_isn + 1, REQUEST)
fin = wait(lambda p: "F" in flags(p))
if fin is None:
    sys.exit("the server did not close first")
resp_len = (fin[TCP].seq - server_isn - 1) % M32
rcv_nxt = (ISN1 + 1 + len(REQUEST) + 1) % M32  # the server's rcv_nxt after our FIN
send_tcp("A", ISN1 + 1 + len(REQUEST), fin[TCP].seq + 1)
time.sleep(0.002)
send_tcp("FA", ISN1 + 1 + len(REQUEST), fin[TCP].seq + 1)
last_ack = wait(lambda p: flags(p) == "A" and p[TCP].ack == rcv_nxt)
if last_ack is None:
    sys.exit("the server did not ACK our FIN (not in TIME_WAIT)")
n_first = len(got)

# --- connection 2 on the same 4-tuple while the server holds TIME_WAIT -------
time.sleep(gap)
isn2 = {"above": rcv_nxt + 1_000_000}.get(mode, rcv_nxt - 76_936_438)  # the seed's distance
attempts = 2 if mode == "rst" else 3
outcome = "challenge-ack"
for i in range(attempts):
    mark = len(got)
    send_tcp("S", isn2)
    reply = wait(lambda p: got.index(p) >= mark, timeout=1.0) if False else None
    end = time.time() + 1.0
    while time.time() < end and reply is None:
        with lock:
            reply = got[mark] if len(got) > mark else None
        time.sleep(0.02)
    if reply is not None and flags(reply) == "SA":
        outcome = f"accepted (SYN-ACK on SYN {i + 1})"
        send_tcp("R", isn2 + 1)  # tidy: do not leave a half-open connection behind
        break
    if mode == "rst" and reply is not None and flags(reply) == "A":
        send_tcp("R", reply[TCP].ack)  # what a kernel in SYN-SENT answers
    time.sleep(max(0.0, end - time.time()))
else:
    if mode in ("below", "ts-below"):
        send_tcp("RA", 4218031181, 782496990)  # the F5 gives up (seed line 17)
time.sleep(0.5)
sniffer.stop()

for p in got:
    t = p.time - t0
    rel_seq = (p[TCP].seq - server_isn) % M32
    rel_ack = (p[TCP].ack - ISN1) % M32
    print(f"server> {t:8.3f}s [{flags(p)}] seq {rel_seq} ack {rel_ack} len {len(p[TCP].payload)}")
print(f"old rcv_nxt {rcv_nxt} (rel {(rcv_nxt - ISN1) % M32}); second ISN {isn2 % M32} "
      f"({'above' if (isn2 - rcv_nxt) % M32 < M32 // 2 else 'below'} rcv_nxt)")
print(f"verdict: {mode}: {outcome}")
