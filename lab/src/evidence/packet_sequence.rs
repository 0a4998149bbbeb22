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
pub(crate) mod tests {
    use super::*;
    use crate::evidence::pcap::Flags;

    const LB: &str = "10.0.2.2:40000";
    const SERVER: &str = "10.0.2.10:8080";
    const S: u8 = Flags::SYN;
    const A: u8 = Flags::ACK;
    const F: u8 = Flags::FIN;
    const R: u8 = Flags::RST;
    const P: u8 = Flags::PSH;

    fn server() -> SocketAddr {
        SERVER.parse().unwrap()
    }

    /// The peer (the seed's load balancer).
    pub(crate) fn lb() -> SocketAddr {
        LB.parse().unwrap()
    }

    /// A segment at `t_us` from the server (or to it), as the capture saw it
    /// (diagnose's tests use it too).
    pub(crate) fn seg(
        t_us: u64,
        from_server: bool,
        flags: u8,
        seq: u32,
        ack: u32,
        len: u32,
    ) -> Segment {
        let (from, to) = if from_server {
            (server(), lb())
        } else {
            (lb(), server())
        };
        Segment {
            t_ns: t_us * 1000,
            from,
            to,
            flags: Flags(flags),
            seq,
            ack,
            len,
            window: 14600,
        }
    }

    /// The seed's capture (003), lines 1-17, with its absolute numbers
    /// (relative ones rebuilt from its ISNs) and times.
    pub(crate) fn seed_capture() -> Vec<Segment> {
        let c = 1_640_887_617u32; // the LB's ISN
        let s = 2_030_898_605u32; // the server's ISN
        vec![
            seg(320_997, false, S, c, 0, 0),
            seg(321_014, true, S | A, s, c + 1, 0),
            seg(321_464, false, A, c + 1, s + 1, 0),
            seg(321_485, false, P | A, c + 1, s + 1, 320),
            seg(321_494, true, A, s + 1, c + 321, 0),
            seg(325_898, true, P | A, s + 1, c + 321, 270),
            seg(325_969, true, F | A, s + 271, c + 321, 0),
            seg(326_334, false, A, c + 321, s + 271, 0),
            seg(328_226, false, F | A, c + 321, s + 272, 0),
            seg(328_266, true, A, s + 272, c + 322, 0),
            seg(55_915_648, false, S, 1_563_951_501, 0, 0),
            seg(55_915_670, true, A, s + 272, c + 322, 0),
            seg(56_915_125, false, S, 1_563_951_501, 0, 0),
            seg(56_915_172, true, A, s + 272, c + 322, 0),
            seg(57_914_873, false, S, 1_563_951_501, 0, 0),
            seg(57_914_881, true, A, s + 272, c + 322, 0),
            seg(58_916_339, false, R | A, 4_218_031_181, 782_496_990, 0),
        ]
    }

    fn one(segments: &[Segment]) -> Conversation {
        let mut all = crate::evidence::pcap::conversations(segments);
        assert_eq!(all.len(), 1);
        all.remove(0)
    }

    #[test]
    fn the_seed_capture_is_a_rejected_reuse_of_time_wait() {
        let conversation = one(&seed_capture());
        assert_eq!(
            conversation.flags_line(),
            ">S <S. >. >P. <. <P. <F. >. >F. <. >S <. >S <. >S <. >R."
        );
        let reuses = time_wait_reuses(&conversation);
        assert_eq!(
            reuses,
            [TimeWaitReuse {
                peer: lb(),
                t_ns: 55_915_648_000,
                after_close_ms: Some(55_587),
                isn: 1_563_951_501,
                old_rcv_nxt: 1_640_887_617 + 322,
                isn_above_rcv_nxt: false,
                syns: 3,
                challenge_acks: 3,
                challenge_gaps_ms: vec![999, 999],
                result: ReuseResult::Reset,
            }]
        );
        let counts = reuse_counts(&seed_capture(), |s| s == server());
        assert_eq!(counts.server_closed_first, 1);
        assert_eq!(counts.challenge_acks, 3);
        assert_eq!(counts.reuses.get("below/reset"), Some(&1));
    }

    fn with_second_syn(isn: u32, reply: Option<Segment>) -> Vec<Segment> {
        let mut segments: Vec<Segment> = seed_capture().into_iter().take(11).collect();
        segments[10].seq = isn;
        segments.extend(reply);
        segments
    }

    #[test]
    fn an_isn_above_rcv_nxt_answered_by_syn_ack_is_accepted() {
        let above = 1_640_887_617u32 + 322 + 1_000_000;
        let synack = seg(55_915_700, true, S | A, 7, above + 1, 0);
        let reuses = time_wait_reuses(&one(&with_second_syn(above, Some(synack))));
        assert_eq!(reuses.len(), 1);
        assert!(reuses[0].isn_above_rcv_nxt);
        assert_eq!(reuses[0].result, ReuseResult::Accepted);
        assert_eq!(reuses[0].challenge_acks, 0);
    }

    #[test]
    fn an_rst_at_rcv_nxt_kills_time_wait_and_the_retransmit_opens() {
        let below = 1_563_951_501u32;
        let mut segments: Vec<Segment> = seed_capture().into_iter().take(12).collect();
        let challenge = segments[11];
        // The kernel in SYN-SENT answers the challenge ACK: RST, seq = its ack.
        segments.push(seg(55_915_700, false, R, challenge.ack, 0, 0));
        segments.push(seg(56_915_125, false, S, below, 0, 0));
        segments.push(seg(56_915_200, true, S | A, 99, below + 1, 0));
        let reuses = time_wait_reuses(&one(&segments));
        assert_eq!(reuses.len(), 1);
        assert_eq!(reuses[0].result, ReuseResult::Assassinated);
        assert_eq!(reuses[0].challenge_acks, 1);
        let counts = reuse_counts(&segments, |s| s == server());
        assert_eq!(counts.reuses.get("below/assassinated"), Some(&1));
        assert_eq!(counts.reuses.len(), 1);
    }

    #[test]
    fn a_new_isn_after_challenge_acks_is_a_reuse_of_its_own() {
        // Behind a NAT that drops the client's RSTs: the server sees the
        // challenged SYN given up on, then a SYN with another ISN (a new
        // connection on the same port), above rcv_nxt this time.
        let mut segments: Vec<Segment> = seed_capture().into_iter().take(14).collect();
        let above = 1_640_887_617u32 + 322 + 5_000;
        segments.push(seg(58_000_000, false, S, above, 0, 0));
        segments.push(seg(58_000_100, true, S | A, 5, above + 1, 0));
        let reuses = time_wait_reuses(&one(&segments));
        let results: Vec<_> = reuses
            .iter()
            .map(|r| (r.isn_above_rcv_nxt, r.result))
            .collect();
        assert_eq!(
            results,
            [
                (false, ReuseResult::Unanswered),
                (true, ReuseResult::Accepted)
            ]
        );
        assert_eq!((reuses[0].syns, reuses[0].challenge_acks), (2, 2));
        let counts = reuse_counts(&segments, |s| s == server());
        assert_eq!(counts.get("reuses"), Some(2));
        assert_eq!(counts.get("below/unanswered"), Some(1));
        assert_eq!(counts.get("above/accepted"), Some(1));
        assert_eq!(counts.get("above/reset"), Some(0));
        assert_eq!(counts.get("sideways/reset"), None);
    }

    #[test]
    fn a_ladder_shows_the_closed_connection_and_its_reuse() {
        let mut segments = seed_capture();
        // A later connection on the same tuple, after the seed's RST.
        segments.push(seg(70_000_000, false, S, 1_640_887_617 + 10_000, 0, 0));
        let excerpt = ladder_excerpt(&crate::evidence::pcap::conversations(&segments), 60);
        assert_eq!(excerpt.len(), 17);
        assert_eq!(
            ladder_excerpt(&crate::evidence::pcap::conversations(&segments), 5).len(),
            5
        );
    }

    #[test]
    fn the_same_connections_before_a_nat_are_found_by_their_isns() {
        // The seed's capture as the NAT's inside saw it: the first
        // connection from client port 50000, the reuse from 50002, and an
        // unrelated connection.
        let client = |port: u16| SocketAddr::from(([10, 0, 1, 5], port));
        let inside: Vec<Segment> = seed_capture()
            .into_iter()
            .enumerate()
            .map(|(i, mut s)| {
                let port = if i < 10 { 50000 } else { 50002 };
                if s.from == lb() {
                    s.from = client(port);
                } else {
                    s.to = client(port);
                }
                s
            })
            .chain([Segment {
                from: client(50004),
                ..seg(400_000, false, S, 77, 0, 0)
            }])
            .collect();
        let found = same_connections(&inside, &seed_capture());
        let ports: Vec<u16> = found.iter().map(|c| c.client.port()).collect();
        assert_eq!(ports, [50000, 50002]);
        assert_eq!(found[0].segments.len() + found[1].segments.len(), 17);
        // Outside the excerpt's time span: left out.
        let early = &seed_capture()[10..];
        assert_eq!(same_connections(&inside, early)[0].segments.len(), 7);
    }

    #[test]
    fn a_capture_that_begins_in_time_wait_still_shows_the_reuse() {
        // tcpdump started after the close: only the seed's lines 11-17.
        let late: Vec<Segment> = seed_capture().into_iter().skip(10).collect();
        let reuses = time_wait_reuses(&one(&late));
        assert_eq!(reuses.len(), 1, "{reuses:?}");
        let reuse = &reuses[0];
        assert_eq!(reuse.after_close_ms, None);
        assert_eq!(reuse.old_rcv_nxt, 1_640_887_617 + 322);
        assert!(!reuse.isn_above_rcv_nxt);
        assert_eq!((reuse.syns, reuse.challenge_acks), (3, 3));
        assert_eq!(reuse.result, ReuseResult::Reset);
        // A SYN answered by SYN-ACK is no reuse; nor one answered by RST.
        let fresh = &seed_capture()[..3];
        assert!(time_wait_reuses(&one(fresh)).is_empty());
        let mut refused = late[..1].to_vec();
        refused.push(seg(55_915_700, true, R | A, 0, 1_563_951_502, 0));
        assert!(time_wait_reuses(&one(&refused)).is_empty());
    }

    #[test]
    fn sequence_comparison_wraps() {
        assert!(seq_after(5, u32::MAX - 5));
        assert!(!seq_after(u32::MAX - 5, 5));
        assert!(!seq_after(7, 7));
    }

    #[test]
    fn a_peer_that_closed_first_leaves_no_time_wait_at_the_server() {
        // The LB sends the first FIN: it holds TIME_WAIT, so a later SYN on
        // the same tuple is not a TIME_WAIT reuse at the server.
        let c = 1_640_887_617u32;
        let s = 2_030_898_605u32;
        let mut segments: Vec<Segment> = seed_capture().into_iter().take(6).collect();
        segments.extend([
            seg(326_000, false, F | A, c + 321, s + 271, 0),
            seg(326_100, true, F | A, s + 271, c + 322, 0),
            seg(326_200, false, A, c + 322, s + 272, 0),
        ]);
        segments.extend(seed_capture().into_iter().skip(10));
        let conversation = one(&segments);
        assert_eq!(server_first_closes(&conversation), 0);
        assert!(time_wait_reuses(&conversation).is_empty());
        assert_eq!(reuse_counts(&segments, |s| s == server()).challenge_acks, 0);
    }

    #[test]
    fn an_aborted_connection_is_not_time_wait() {
        let mut segments: Vec<Segment> = seed_capture().into_iter().take(6).collect();
        segments.push(Segment {
            t_ns: 400_000_000,
            flags: Flags(R | A),
            ..segments[5]
        });
        segments.extend(seed_capture().into_iter().skip(10));
        assert!(time_wait_reuses(&one(&segments)).is_empty());
    }

    #[test]
    fn a_reuse_without_answer_is_unanswered() {
        let reuses = time_wait_reuses(&one(&with_second_syn(1_563_951_501, None)));
        assert_eq!(reuses[0].result, ReuseResult::Unanswered);
        assert_eq!((reuses[0].syns, reuses[0].challenge_acks), (1, 0));
    }

    /// Real captures at a Linux 6.18 server (compose/experiments/
    /// snat-timewait, `KEEP_CAPTURE=... run.sh precise below|rst`).
    fn kernel_capture(bytes: &[u8]) -> Vec<Segment> {
        crate::evidence::pcap::read_from(bytes)
            .expect("pcap")
            .segments
    }

    #[test]
    fn a_real_kernel_answers_like_the_seed_and_an_rst_frees_time_wait() {
        let server: SocketAddr = "10.231.2.10:8080".parse().unwrap();
        let below = kernel_capture(include_bytes!(
            "../../../compose/experiments/snat-timewait/results/precise-below.pcap"
        ));
        let counts = reuse_counts(&below, |s| s == server);
        assert_eq!(counts.server_closed_first, 1);
        assert_eq!(counts.challenge_acks, 3);
        assert_eq!(counts.reuses.get("below/reset"), Some(&1));
        let reuse = &time_wait_reuses(&crate::evidence::pcap::conversations(&below)[0])[0];
        assert!(reuse
            .challenge_gaps_ms
            .iter()
            .all(|gap| (900..1100).contains(gap)));

        let rst = kernel_capture(include_bytes!(
            "../../../compose/experiments/snat-timewait/results/precise-rst.pcap"
        ));
        let counts = reuse_counts(&rst, |s| s == server);
        assert_eq!(counts.reuses.get("below/assassinated"), Some(&1));
        assert_eq!(counts.challenge_acks, 1);
    }

    #[test]
    fn other_servers_are_not_counted() {
        assert_eq!(
            reuse_counts(&seed_capture(), |s| s == "10.0.2.99:8080".parse().unwrap()),
            ReuseCounts::default()
        );
    }
}
