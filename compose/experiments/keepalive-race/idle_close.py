# One keep-alive request per trial, then wait for the server to close: prints
# the seconds from the end of the response to the FIN (EOF), as the client
# saw them. Usage: idle_close.py HOST TRIALS
import random, socket, sys, time

host, trials = sys.argv[1], int(sys.argv[2])
for i in range(trials):
    s = socket.create_connection((host, 8080))
    s.sendall(b"GET / HTTP/1.1\r\nHost: backend\r\n\r\n")
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += s.recv(4096)
    head, body = buf.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    clen = next(int(l.split(b":")[1]) for l in lines if l.lower().startswith(b"content-length"))
    while len(body) < clen:
        body += s.recv(4096)
    t0 = time.monotonic()
    rest = s.recv(4096)
    t1 = time.monotonic()
    status = lines[0].split()[1].decode()
    print(f"trial {i + 1}: status={status} idle_close_s={t1 - t0:.3f} eof={rest == b''}", flush=True)
    s.close()
    time.sleep(random.uniform(0.1, 1.0))  # sample the server's timer phases
