#!/usr/bin/env python3
"""Makes the test captures of `connlab diagnose --pcap` with a real kernel.

Runs inside a lab-image container (see make-captures.sh): every connection
is real Linux TCP on loopback, captured by tcpdump; scapy only forges the
SNAT box's SYNs in `timewait`, as the F5 of seed 003 did.

  keepalive-race-rst  a server closes a keep-alive connection after 1 s idle;
                      the client writes its next request 0.5 s later and the
                      server's kernel answers RST (seed 001). Beside it, a
                      connection reused within the timeout, closed normally.
  timewait-ack        the server closes first (HTTP/1.0) and holds TIME_WAIT;
                      three SYNs on the same 4-tuple with a sequence number
                      below the old one get bare ACKs with the old numbers,
                      then the client's RST (seed 003, lines 11-17). Beside
                      it, a SYN with a higher sequence number that is accepted.
  dead-peer           SYNs to a port whose packets are dropped (a powered-off
                      node): retransmitted, never answered (seed 002). Beside
                      it, a connect to a closed port, refused by RST.
"""
import socket
import subprocess
import sys
import threading
import time

SERVER = ("127.0.0.1", 8080)
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
REQUEST = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


def sh(cmd):
    subprocess.run(cmd, shell=True, check=True)


def tcpdump(path, bpf):
    proc = subprocess.Popen(["tcpdump", "-i", "lo", "-U", "--immediate-mode", "-s", "256", "-w", path, bpf],
                            stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    return proc


def stop(proc):
    time.sleep(1.0)
    proc.terminate()
    proc.wait()


def keepalive_server(idle_s):
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(SERVER)
    srv.listen()

    def serve(conn):
        conn.settimeout(idle_s)
        try:
            while True:
                if not conn.recv(4096):
                    break
                conn.sendall(RESPONSE)
        except socket.timeout:
            pass  # idle too long: close, as a keep-alive timeout does
        conn.close()

    def accept():
        while True:
            conn, _ = srv.accept()
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()


def keepalive_race(path):
    dump = tcpdump(path, "tcp port 8080")
    keepalive_server(1.0)
    time.sleep(0.2)
    # Reused within the timeout, then closed by the client: healthy.
    ok = socket.create_connection(SERVER)
    for _ in range(2):
        ok.sendall(REQUEST)
        ok.recv(4096)
        time.sleep(0.2)
    ok.close()
    # Reused after the server closed it: RST.
    raced = socket.create_connection(SERVER)
    raced.sendall(REQUEST)
    raced.recv(4096)
    time.sleep(1.5)
    raced.sendall(REQUEST)
    time.sleep(0.3)
    raced.close()
    stop(dump)


def timewait(path):
    from scapy.all import IP, TCP, L3RawSocket, conf, send, sniff
    conf.L3socket = L3RawSocket
    # Timestamps off (make-captures.sh: --sysctl), as the F5 stripped them.
    with open("/proc/sys/net/ipv4/tcp_timestamps") as f:
        assert f.read().strip() == "0", "run with --sysctl net.ipv4.tcp_timestamps=0"
    # The client's kernel would answer the server's old-number ACKs with
    # RST and end the TIME_WAIT early; the F5 did not. The forged RST,ACK
    # that gives up passes.
    sh("iptables -A OUTPUT -p tcp --sport 40000 --tcp-flags RST,ACK RST -j DROP")
    sh("iptables -A OUTPUT -p tcp --sport 40001 --tcp-flags RST,ACK RST -j DROP")
    server = subprocess.Popen(["python3", "-m", "http.server", "--bind", "127.0.0.1", "8080"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    dump = tcpdump(path, "tcp port 8080")
    isns = {}
    for port, below in [(40000, True), (40001, False)]:
        caught = []
        sniffer = threading.Thread(target=lambda: caught.extend(sniff(
            iface="lo", count=1, timeout=5,
            filter=f"tcp src port {port} and tcp[13] & 2 != 0")))
        sniffer.start()
        time.sleep(0.5)
        c = socket.socket()
        c.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        c.bind(("127.0.0.5", port))
        c.connect(SERVER)
        c.sendall(b"GET / HTTP/1.0\r\n\r\n")
        while c.recv(65536):
            pass  # HTTP/1.0: the server closes first and keeps TIME_WAIT
        c.close()
        sniffer.join()
        isn = caught[0][TCP].seq
        isns[port] = isn
        time.sleep(1.0)
        seq = (isn - 10_000_000) % 2**32 if below else (isn + 10_000_000) % 2**32
        syn = IP(src="127.0.0.5", dst="127.0.0.1") / TCP(sport=port, dport=8080, flags="S", seq=seq)
        if below:
            for _ in range(3):
                send(syn, verbose=False)
                time.sleep(1.0)
            send(IP(src="127.0.0.5", dst="127.0.0.1") /
                 TCP(sport=port, dport=8080, flags="RA", seq=seq + 1, ack=1), verbose=False)
        else:
            send(syn, verbose=False)
            time.sleep(0.5)
    stop(dump)
    server.terminate()


def dead_peer(path):
    sh("iptables -A INPUT -p tcp --dport 9999 -j DROP")
    dump = tcpdump(path, "tcp port 9999 or tcp port 9998")
    for port, timeout in [(9998, 2), (9999, 4.5)]:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=timeout)
        except OSError as e:
            print(f"port {port}: {e}", file=sys.stderr)
    stop(dump)


if __name__ == "__main__":
    which, path = sys.argv[1], sys.argv[2]
    {"keepalive-race-rst": keepalive_race, "timewait-ack": timewait, "dead-peer": dead_peer}[which](path)
