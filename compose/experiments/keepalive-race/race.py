# keepalive-race by hand: request, sleep G, request; prints the second
# request's status per G. Usage: race.py URL TRIALS G1 [G2 ...]
import http.client, sys, time, urllib.parse
url = urllib.parse.urlparse(sys.argv[1]); trials = int(sys.argv[2])
def get():
    c = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    c.request("GET", "/"); r = c.getresponse(); r.read(); c.close()
    return r.status
for g in map(float, sys.argv[3:]):
    statuses = []
    for _ in range(trials):
        get()                      # (re)uses Envoy's pooled upstream connection
        time.sleep(g)
        statuses.append(get())
        time.sleep(0.3)            # let a 503's late FIN/RST settle
    print(f"G={g:.3f} " + " ".join(map(str, statuses)) + f" | 503: {statuses.count(503)}/{trials}", flush=True)
