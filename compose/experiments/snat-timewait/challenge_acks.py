"""Counts, from `tcpdump -nn -tt -S` text at the server (stdin), what SYNs on
reused 4-tuples met: per new ISN, accepted (SYN-ACK) or answered by a bare
ACK (the challenge ACK of a TIME_WAIT socket), and who closed first.

    challenge_acks.py SERVER_IP.PORT < capture.txt
"""

import re
import sys

server = sys.argv[1]
line_re = re.compile(r"^(\S+) IP (\S+) > (\S+): Flags \[([^\]]+)\](?:, seq (\d+)(?::\d+)?)?(?:, ack (\d+))?.*length (\d+)")
tuples = {}
for line in sys.stdin:
    m = line_re.match(line)
    if not m:
        continue
    t, src, dst, flags, seq, ack, length = m.groups()
    dst = dst.rstrip(":")
    from_server = src == server
    peer = dst if from_server else src
    tuples.setdefault(peer, []).append((float(t), from_server, flags, int(seq or 0), int(ack or 0), int(length)))

attempts = {}  # (peer, isn) -> outcome
stats = dict(syn=0, synack=0, challenge_acks=0, client_rst=0, server_fin_first=0, client_fin_first=0)
gaps = []
for peer, segs in tuples.items():
    last_syn = None
    fin_seen = False
    last_challenge = None
    for t, from_server, flags, seq, ack, length in segs:
        if not from_server and flags == "S":
            stats["syn"] += 1
            last_syn = (peer, seq)
            attempts.setdefault(last_syn, "unanswered")
            fin_seen = False
            continue
        if from_server and flags == "S.":
            stats["synack"] += 1
            if last_syn:
                attempts[last_syn] = "accepted" if attempts[last_syn] == "unanswered" else "accepted after challenge"
            last_syn = None
            continue
        if from_server and flags == "." and length == 0 and last_syn is not None:
            stats["challenge_acks"] += 1
            if attempts[last_syn] == "unanswered":
                attempts[last_syn] = "challenge ack"
            if last_challenge is not None and last_challenge[0] == last_syn:
                gaps.append(t - last_challenge[1])
            last_challenge = (last_syn, t)
            continue
        if "F" in flags and not fin_seen:
            fin_seen = True
            stats["server_fin_first" if from_server else "client_fin_first"] += 1
        if not from_server and "R" in flags:
            stats["client_rst"] += 1
        last_syn = None if from_server else last_syn

outcomes = {}
for o in attempts.values():
    outcomes[o] = outcomes.get(o, 0) + 1
print("server capture:", ", ".join(f"{k} {v}" for k, v in stats.items()))
print("connection attempts by ISN:", outcomes, "(4-tuples seen:", len(tuples), ")")
if gaps:
    gaps.sort()
    print(f"challenge ACK spacing on one attempt: min {gaps[0]:.3f} s, median {gaps[len(gaps)//2]:.3f} s, max {gaps[-1]:.3f} s")
