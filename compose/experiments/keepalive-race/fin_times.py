# Reads `tcpdump -nn -tt` lines taken in the backend's netns and prints, per
# connection, the seconds from the server's (port 8080) last data packet to
# its FIN, then min/max.
import re, sys

last_data, out = {}, []
for line in sys.stdin:
    m = re.match(r"(\d+\.\d+) IP \S+\.8080 > (\S+): Flags \[([^\]]*)\].*length (\d+)", line)
    if not m:
        continue
    t, peer, flags, length = float(m[1]), m[2], m[3], int(m[4])
    if length > 0:
        last_data[peer] = t
    if "F" in flags and peer in last_data:
        out.append(t - last_data.pop(peer))
if out:
    print("tcpdump: " + " ".join(f"{x:.3f}" for x in out)
          + f" | min {min(out):.3f} max {max(out):.3f} n {len(out)}")
