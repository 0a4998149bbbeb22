//! The packet-sequence evidence: TCP segments seen at one node, grouped by
//! 4-tuple, turned into the facts a person reads off a capture — who closed
//! first, and what happened to a later SYN on the same 4-tuple while the
//! closer held TIME_WAIT (snat-timewait, seed 003).
//!
//! Linux's rule for a SYN that meets a TIME_WAIT socket (no timestamps):
//! accepted only if its sequence number is after the old `rcv_nxt`;
//! otherwise it gets a bare ACK that repeats the OLD connection's numbers
//! (seq = old snd_nxt, ack = old rcv_nxt) — the "challenge ACK" of the
//! seed's capture lines 12, 14 and 16. Pure: it runs on a recorded capture.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::evidence::pcap::{Conversation, Segment};

/// `a` comes after `b` in sequence space (RFC 793 modular comparison).
pub fn seq_after(a: u32, b: u32) -> bool {
    (b.wrapping_sub(a) as i32) < 0
}

/// Sequence space a segment occupies (SYN and FIN count one each).
fn seq_len(s: &Segment) -> u32 {
    s.len + u32::from(s.flags.syn()) + u32::from(s.flags.fin())
}

/// A bare ACK: only the ACK flag, no payload.
fn is_bare_ack(s: &Segment) -> bool {
    s.flags.0 & !crate::evidence::pcap::Flags::PSH == crate::evidence::pcap::Flags::ACK
        && s.len == 0
}

/// A SYN without ACK: a connection attempt.
fn is_syn(s: &Segment) -> bool {
    s.flags.syn() && !s.flags.ack()
}

/// What happened to a SYN that reused a 4-tuple the server held in
/// TIME_WAIT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReuseResult {
    /// The server answered SYN-ACK: a new connection.
    Accepted,
    /// Only challenge ACKs, then the peer gave up with an RST the server
    /// ignored (its seq was not the old rcv_nxt): TIME_WAIT stays.
    Reset,
    /// The peer answered a challenge ACK with an RST at exactly the old
    /// rcv_nxt (what a kernel in SYN-SENT sends): Linux drops the TIME_WAIT
    /// socket (RFC 1337's "assassination", `tcp_rfc1337` = 0), so the next
    /// SYN retransmit opens a new connection.
    Assassinated,
    /// Only challenge ACKs, and then the capture ended or the peer moved on
    /// to a new ISN on the same 4-tuple (its RST, if any, never arrived).
    Unanswered,
}

/// A SYN on a 4-tuple whose previous connection the server closed first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeWaitReuse {
    pub peer: SocketAddr,
    /// The new SYN's capture time, ns, and how long after the old
    /// connection's last FIN it came (`None`: the capture has no FIN).
    pub t_ns: u64,
    pub after_close_ms: Option<u64>,
    /// The new SYN's sequence number, and the old connection's `rcv_nxt`
    /// at the server (the `ack` of its challenge ACKs).
    pub isn: u32,
    pub old_rcv_nxt: u32,
    /// The new ISN is after the old `rcv_nxt` (Linux accepts those).
    pub isn_above_rcv_nxt: bool,
    /// SYNs sent (retransmissions included) before the result.
    pub syns: u32,
    /// Bare ACKs from the server carrying the old connection's numbers.
    pub challenge_acks: u32,
    /// Time between consecutive challenge ACKs, ms.
    pub challenge_gaps_ms: Vec<u64>,
    pub result: ReuseResult,
}

/// The old connection's end state, needed to recognise its numbers.
#[derive(Debug, Clone, Copy)]
struct Closed {
    /// The last FIN, when the capture has it.
    at_ns: Option<u64>,
    /// The server's rcv_nxt / snd_nxt after the close.
    rcv_nxt: u32,
    snd_nxt: u32,
    server_closed_first: bool,
}

/// Per conversation, every SYN that reused the 4-tuple after a close, and
/// what the server (the side that answered the first SYN) did with it.
/// A close where the server sent the first FIN leaves it in TIME_WAIT; so
/// may one the capture does not show (it began later): when no connection
/// on the 4-tuple ended in the capture before, the server answering a SYN
/// with a bare ACK of another connection's numbers is taken as TIME_WAIT (a
/// SYN on an ESTABLISHED 4-tuple gets the same answer, RFC 5961; a capture
/// that shows only the answer cannot tell them apart).
pub fn time_wait_reuses(conversation: &Conversation) -> Vec<TimeWaitReuse> {
    let server = conversation.server;
    let mut found = Vec::new();
    let mut closed: Option<Closed> = None;
    // Per connection: the highest sequence end each side sent, and who sent
    // the first FIN.
    let (mut peer_end, mut server_end): (Option<u32>, Option<u32>) = (None, None);
    let mut first_fin: Option<bool> = None; // Some(true): the server's
    let mut fins = (false, false); // (peer, server)
    let mut pending: Option<TimeWaitReuse> = None;
    let mut last_challenge_ns: Option<u64> = None;
    let mut last_fin_ns: Option<u64> = None;
    let mut rst_seen = false;
    // A SYN that opened a connection as far as the capture knows, until the
    // server answers it.
    let mut fresh_syn: Option<Segment> = None;

    let segments = &conversation.segments;
    for segment in segments {
        let from_server = segment.from == server;
        if let (Some(old), Some(reuse)) = (closed, pending.as_mut()) {
            if from_server && segment.flags.syn() && segment.flags.ack() {
                reuse.result = ReuseResult::Accepted;
                found.push(pending.take().expect("checked above"));
                closed = None;
                // A new connection: from this SYN-ACK and the SYN it answers.
                server_end = Some(segment.seq.wrapping_add(1));
                peer_end = Some(segment.ack);
                first_fin = None;
                fins = (false, false);
                continue;
            }
            if from_server
                && is_bare_ack(segment)
                && segment.ack == old.rcv_nxt
                && segment.seq == old.snd_nxt
            {
                reuse.challenge_acks += 1;
                if let Some(previous) = last_challenge_ns {
                    reuse
                        .challenge_gaps_ms
                        .push(segment.t_ns.saturating_sub(previous) / 1_000_000);
                }
                last_challenge_ns = Some(segment.t_ns);
                continue;
            }
            if !from_server && is_syn(segment) && segment.seq == reuse.isn {
                reuse.syns += 1;
                continue;
            }
            if !from_server && is_syn(segment) {
                // A new ISN: the peer gave up on the old one without an RST
                // that reached here (a NAT that drops them). Still
                // TIME_WAIT: the new SYN is a reuse of its own, below.
                found.push(pending.take().expect("checked above"));
                last_challenge_ns = None;
            } else if !from_server && segment.flags.rst() {
                let killed = segment.seq == old.rcv_nxt;
                reuse.result = if killed {
                    ReuseResult::Assassinated
                } else {
                    ReuseResult::Reset
                };
                found.push(pending.take().expect("checked above"));
                last_challenge_ns = None;
                if killed {
                    closed = None;
                }
                continue;
            } else {
                continue;
            }
        }
        if let (Some(syn), true) = (fresh_syn.take(), from_server) {
            if is_bare_ack(segment) && segment.ack != syn.seq.wrapping_add(1) {
                // A socket of the server holds this 4-tuple already: these
                // are its numbers (a close the capture did not show).
                let old = Closed {
                    at_ns: last_fin_ns,
                    rcv_nxt: segment.ack,
                    snd_nxt: segment.seq,
                    server_closed_first: true,
                };
                closed = Some(old);
                let mut reuse = reuse_of(conversation.client, &syn, old);
                reuse.challenge_acks = 1;
                pending = Some(reuse);
                last_challenge_ns = Some(segment.t_ns);
                continue;
            }
        }
        if !from_server && is_syn(segment) {
            if let Some(old) = closed.filter(|c| c.server_closed_first) {
                pending = Some(reuse_of(conversation.client, segment, old));
                last_challenge_ns = None;
                continue;
            }
            if last_fin_ns.is_none() && !rst_seen {
                fresh_syn = Some(*segment);
            }
            // A fresh connection: forget the previous one.
            closed = None;
            peer_end = None;
            server_end = None;
            first_fin = None;
            fins = (false, false);
        }
        let end = segment.seq.wrapping_add(seq_len(segment));
        let side_end = if from_server {
            &mut server_end
        } else {
            &mut peer_end
        };
        if seq_len(segment) > 0 && side_end.is_none_or(|e| seq_after(end, e)) {
            *side_end = Some(end);
        }
        if segment.flags.fin() {
            last_fin_ns = Some(segment.t_ns);
            first_fin.get_or_insert(from_server);
            if from_server {
                fins.1 = true;
            } else {
                fins.0 = true;
            }
        }
        if fins == (true, true) && closed.is_none() {
            if let (Some(rcv_nxt), Some(snd_nxt)) = (peer_end, server_end) {
                closed = Some(Closed {
                    at_ns: Some(segment.t_ns),
                    rcv_nxt,
                    snd_nxt,
                    server_closed_first: first_fin == Some(true),
                });
            }
        }
        if segment.flags.rst() {
            // An aborted connection leaves no TIME_WAIT behind.
            rst_seen = true;
            closed = None;
            fins = (false, false);
        }
    }
    if let Some(reuse) = pending {
        found.push(reuse);
    }
    found
}

/// A SYN on a 4-tuple the server holds after `old`, its result not known yet.
fn reuse_of(peer: SocketAddr, syn: &Segment, old: Closed) -> TimeWaitReuse {
    TimeWaitReuse {
        peer,
        t_ns: syn.t_ns,
        after_close_ms: old.at_ns.map(|at| syn.t_ns.saturating_sub(at) / 1_000_000),
        isn: syn.seq,
        old_rcv_nxt: old.rcv_nxt,
        isn_above_rcv_nxt: seq_after(syn.seq, old.rcv_nxt),
        syns: 1,
        challenge_acks: 0,
        challenge_gaps_ms: Vec::new(),
        result: ReuseResult::Unanswered,
    }
}

/// Counts over a whole capture: the numbers a scenario checks and
/// snapshots (no times, no ports).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReuseCounts {
    /// Connections the server closed first (it held TIME_WAIT).
    pub server_closed_first: u64,
    /// SYNs that met TIME_WAIT, by ISN position and result, e.g.
    /// `below/reset`, `above/accepted`.
    pub reuses: BTreeMap<String, u64>,
    pub challenge_acks: u64,
}

/// The ISN positions and results a reuse is counted under.
pub const ISN_POSITIONS: [&str; 2] = ["above", "below"];
pub const RESULTS: [&str; 4] = ["accepted", "reset", "assassinated", "unanswered"];

impl ReuseCounts {
    /// A count by name: `server_closed_first`, `challenge_acks`, `reuses`
    /// (every SYN that met TIME_WAIT), or one kind of reuse (`below/reset`);
    /// `None` for a name that is none of these.
    pub fn get(&self, name: &str) -> Option<u64> {
        match name {
            "server_closed_first" => Some(self.server_closed_first),
            "challenge_acks" => Some(self.challenge_acks),
            "reuses" => Some(self.reuses.values().sum()),
            kind => {
                let (isn, result) = kind.split_once('/')?;
                (ISN_POSITIONS.contains(&isn) && RESULTS.contains(&result))
                    .then(|| self.reuses.get(kind).copied().unwrap_or(0))
            }
        }
    }

    /// Every count as `name: value` (kinds of reuse that happened only).
    pub fn to_counts(&self) -> BTreeMap<String, u64> {
        let mut counts = BTreeMap::from([
            ("server_closed_first".to_string(), self.server_closed_first),
            ("challenge_acks".to_string(), self.challenge_acks),
        ]);
        counts.extend(self.reuses.clone());
        counts
    }
}

/// Every conversation whose server (the side answering the first SYN)
/// passes `is_server`, summed up.
pub fn reuse_counts(segments: &[Segment], is_server: impl Fn(SocketAddr) -> bool) -> ReuseCounts {
    let mut counts = ReuseCounts::default();
    let all = crate::evidence::pcap::conversations(segments);
    for conversation in all.iter().filter(|c| is_server(c.server)) {
        counts.server_closed_first += server_first_closes(conversation);
        for reuse in time_wait_reuses(conversation) {
            let isn = ISN_POSITIONS[usize::from(!reuse.isn_above_rcv_nxt)];
            let result = match reuse.result {
                ReuseResult::Accepted => "accepted",
                ReuseResult::Reset => "reset",
                ReuseResult::Assassinated => "assassinated",
                ReuseResult::Unanswered => "unanswered",
            };
            *counts.reuses.entry(format!("{isn}/{result}")).or_default() += 1;
            counts.challenge_acks += u64::from(reuse.challenge_acks);
        }
    }
    counts
}

/// The segments a packet ladder shows: the connection before the first SYN
/// that met TIME_WAIT (challenge-ACKed ones first) and everything on that
/// 4-tuple until the next new ISN; without such a SYN, the first
/// conversation's start. At most `max` segments.
pub fn ladder_excerpt(conversations: &[Conversation], max: usize) -> Vec<Segment> {
    let reuses: Vec<(&Conversation, TimeWaitReuse)> = conversations
        .iter()
        .flat_map(|c| time_wait_reuses(c).into_iter().map(move |r| (c, r)))
        .collect();
    let first = reuses
        .iter()
        .find(|(_, r)| r.challenge_acks > 0)
        .or(reuses.first());
    let Some((conversation, reuse)) = first else {
        let segments = conversations.first().map(|c| c.segments.as_slice());
        return segments
            .unwrap_or_default()
            .iter()
            .take(max)
            .copied()
            .collect();
    };
    let segments = &conversation.segments;
    let from_peer_syn = |s: &Segment| s.from != conversation.server && is_syn(s);
    let Some(at) = segments
        .iter()
        .position(|s| s.t_ns == reuse.t_ns && from_peer_syn(s))
    else {
        return Vec::new();
    };
    let start = segments[..at].iter().rposition(from_peer_syn).unwrap_or(0);
    let isn = segments[at].seq;
    let end = segments[at..]
        .iter()
        .position(|s| from_peer_syn(s) && s.seq != isn)
        .map_or(segments.len(), |i| at + i);
    segments[start..end].iter().take(max).copied().collect()
}

/// The connections of `excerpt` as another capture saw them on the far side
/// of a NAT (which rewrites addresses and ports, not sequence numbers): its
/// conversations that carry a SYN with one of the excerpt's ISNs, cut to
/// the excerpt's time span.
pub fn same_connections(segments: &[Segment], excerpt: &[Segment]) -> Vec<Conversation> {
    let isns: Vec<u32> = excerpt
        .iter()
        .filter(|s| is_syn(s))
        .map(|s| s.seq)
        .collect();
    let (Some(first), Some(last)) = (excerpt.first(), excerpt.last()) else {
        return Vec::new();
    };
    // The other capture saw each packet a little before or after.
    let margin = 50_000_000;
    let span = first.t_ns.saturating_sub(margin)..=last.t_ns + margin;
    let mut found = crate::evidence::pcap::conversations(segments);
    found.retain(|c| {
        c.segments
            .iter()
            .any(|s| is_syn(s) && isns.contains(&s.seq))
    });
    for c in &mut found {
        c.segments.retain(|s| span.contains(&s.t_ns));
    }
    found
}

/// Connections in `conversation` whose first FIN came from the server.
fn server_first_closes(conversation: &Conversation) -> u64 {
    let mut count = 0;
    let mut fin_seen = false;
    for segment in &conversation.segments {
        if is_syn(segment) {
            fin_seen = false;
        }
        if segment.flags.fin() && !fin_seen {
            fin_seen = true;
            count += u64::from(segment.from == conversation.server);
        }
    }
    count
}

#[cfg(test)]
pub(crate) mod tests;
