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
use std::fmt;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// TCP flag bits as they sit in the header.
pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;
pub const ACK: u8 = 0x10;

/// One TCP segment as a capture saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    /// µs since the capture started (or any fixed origin).
    pub t_us: u64,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub flags: u8,
    pub seq: u32,
    pub ack: u32,
    /// Payload bytes.
    pub len: u32,
}

impl Segment {
    fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    /// Sequence space the segment occupies (SYN and FIN count one each).
    fn seq_len(&self) -> u32 {
        self.len + u32::from(self.has(SYN)) + u32::from(self.has(FIN))
    }

    /// A bare ACK: only the ACK flag, no payload.
    fn is_bare_ack(&self) -> bool {
        self.flags & (FIN | SYN | RST | PSH | ACK) == ACK && self.len == 0
    }
}

/// Flags the way tcpdump prints them: `S`, `S.`, `.`, `P.`, `F.`, `R.`.
pub fn flag_text(flags: u8) -> String {
    let mut text = String::new();
    for (bit, letter) in [(SYN, 'S'), (FIN, 'F'), (PSH, 'P'), (RST, 'R')] {
        if flags & bit != 0 {
            text.push(letter);
        }
    }
    if flags & ACK != 0 {
        text.push('.');
    }
    if text.is_empty() {
        text.push_str("none");
    }
    text
}

/// `a` comes after `b` in sequence space (RFC 793 modular comparison).
pub fn seq_after(a: u32, b: u32) -> bool {
    (b.wrapping_sub(a) as i32) < 0
}

/// One connection's segments in time order, as seen from `server`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversation {
    /// The peer of `server` (for a SNAT, the translated address).
    pub peer: SocketAddr,
    pub server: SocketAddr,
    pub segments: Vec<Segment>,
}

/// Groups `segments` by the 4-tuple with `server`, in time order; segments
/// that do not involve `server` are ignored.
pub fn conversations(segments: &[Segment], server: SocketAddr) -> Vec<Conversation> {
    let mut by_peer: BTreeMap<SocketAddr, Vec<Segment>> = BTreeMap::new();
    for segment in segments {
        let peer = if segment.dst == server {
            segment.src
        } else if segment.src == server {
            segment.dst
        } else {
            continue;
        };
        by_peer.entry(peer).or_default().push(*segment);
    }
    by_peer
        .into_iter()
        .map(|(peer, mut segments)| {
            segments.sort_by_key(|s| s.t_us);
            Conversation {
                peer,
                server,
                segments,
            }
        })
        .collect()
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
    /// Only challenge ACKs, and the capture ended.
    Unanswered,
}

/// A SYN on a 4-tuple whose previous connection the server closed first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeWaitReuse {
    pub peer: SocketAddr,
    /// The new SYN's time, µs, and how long after the old close it came.
    pub t_us: u64,
    pub after_close_ms: u64,
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
    at_us: u64,
    /// The server's rcv_nxt / snd_nxt after the close.
    rcv_nxt: u32,
    snd_nxt: u32,
    server_closed_first: bool,
}

/// Per conversation, every SYN that reused the 4-tuple after a close, and
/// what the server did with it. Only closes where the server sent the first
/// FIN count: that is the side holding TIME_WAIT.
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
    let mut last_challenge_us: Option<u64> = None;

    let segments = &conversation.segments;
    for segment in segments {
        let from_server = segment.src == server;
        if let (Some(old), Some(reuse)) = (closed, pending.as_mut()) {
            if from_server && segment.has(SYN) && segment.has(ACK) {
                reuse.result = ReuseResult::Accepted;
                found.push(pending.take().expect("checked above"));
                closed = None;
                // The new connection starts from this SYN-ACK.
                server_end = Some(segment.seq.wrapping_add(1));
                continue;
            }
            if from_server
                && segment.is_bare_ack()
                && segment.ack == old.rcv_nxt
                && segment.seq == old.snd_nxt
            {
                reuse.challenge_acks += 1;
                if let Some(previous) = last_challenge_us {
                    reuse
                        .challenge_gaps_ms
                        .push((segment.t_us - previous) / 1000);
                }
                last_challenge_us = Some(segment.t_us);
                continue;
            }
            if !from_server && segment.has(SYN) && !segment.has(ACK) {
                reuse.syns += 1;
                continue;
            }
            if !from_server && segment.has(RST) {
                let killed = segment.seq == old.rcv_nxt;
                reuse.result = if killed {
                    ReuseResult::Assassinated
                } else {
                    ReuseResult::Reset
                };
                found.push(pending.take().expect("checked above"));
                last_challenge_us = None;
                if killed {
                    closed = None;
                }
                continue;
            }
            continue;
        }
        if !from_server && segment.has(SYN) && !segment.has(ACK) {
            if let Some(old) = closed.filter(|c| c.server_closed_first) {
                pending = Some(TimeWaitReuse {
                    peer: conversation.peer,
                    t_us: segment.t_us,
                    after_close_ms: segment.t_us.saturating_sub(old.at_us) / 1000,
                    isn_above_rcv_nxt: seq_after(segment.seq, old.rcv_nxt),
                    syns: 1,
                    challenge_acks: 0,
                    challenge_gaps_ms: Vec::new(),
                    result: ReuseResult::Unanswered,
                });
                last_challenge_us = None;
                continue;
            }
            // A fresh connection: forget the previous one.
            closed = None;
            peer_end = None;
            server_end = None;
            first_fin = None;
            fins = (false, false);
        }
        let end = segment.seq.wrapping_add(segment.seq_len());
        let side_end = if from_server {
            &mut server_end
        } else {
            &mut peer_end
        };
        if segment.seq_len() > 0 && side_end.is_none_or(|e| seq_after(end, e)) {
            *side_end = Some(end);
        }
        if segment.has(FIN) {
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
                    at_us: segment.t_us,
                    rcv_nxt,
                    snd_nxt,
                    server_closed_first: first_fin == Some(true),
                });
            }
        }
        if segment.has(RST) {
            // An aborted connection leaves no TIME_WAIT behind.
            closed = None;
            fins = (false, false);
        }
    }
    if let Some(reuse) = pending {
        found.push(reuse);
    }
    found
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

/// Every conversation with `server` in `segments`, summed up.
pub fn reuse_counts(segments: &[Segment], server: SocketAddr) -> ReuseCounts {
    let mut counts = ReuseCounts::default();
    for conversation in conversations(segments, server) {
        counts.server_closed_first += server_first_closes(&conversation);
        for reuse in time_wait_reuses(&conversation) {
            let isn = if reuse.isn_above_rcv_nxt {
                "above"
            } else {
                "below"
            };
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

/// Connections in `conversation` whose first FIN came from the server.
fn server_first_closes(conversation: &Conversation) -> u64 {
    let mut count = 0;
    let mut fin_seen = false;
    for segment in &conversation.segments {
        if segment.has(SYN) && !segment.has(ACK) {
            fin_seen = false;
        }
        if segment.has(FIN) && !fin_seen {
            fin_seen = true;
            count += u64::from(segment.src == conversation.server);
        }
    }
    count
}

/// The conversation in tcpdump's words, one token per segment: `>` from the
/// peer, `<` from the server, then the flags (`>S <S. >. >P. <P. <F. ...`).
/// Delayed-ACK merging varies between runs, so checks match patterns over
/// it rather than the whole string.
pub fn flag_tokens(conversation: &Conversation) -> Vec<String> {
    conversation
        .segments
        .iter()
        .map(|s| {
            let arrow = if s.src == conversation.server {
                '<'
            } else {
                '>'
            };
            format!("{arrow}{}", flag_text(s.flags))
        })
        .collect()
}

/// A line per segment like tcpdump's relative output: sequence numbers are
/// relative to each side's ISN in this conversation (re-based at each SYN).
pub struct Relative<'a>(pub &'a Conversation);

impl fmt::Display for Relative<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let conversation = self.0;
        let t0 = conversation.segments.first().map_or(0, |s| s.t_us);
        let (mut peer_isn, mut server_isn) = (None::<u32>, None::<u32>);
        for s in &conversation.segments {
            let from_server = s.src == conversation.server;
            if s.has(SYN) && peer_isn.is_none() && !from_server {
                peer_isn = Some(s.seq);
            }
            if s.has(SYN) && s.has(ACK) && from_server {
                server_isn = Some(s.seq);
            }
            let (own, other) = if from_server {
                (server_isn, peer_isn)
            } else {
                (peer_isn, server_isn)
            };
            let rel = |value: u32, base: Option<u32>| base.map_or(value, |b| value.wrapping_sub(b));
            writeln!(
                f,
                "{:>10.6} {} > {}: [{}] seq {} ack {} len {}",
                (s.t_us - t0) as f64 / 1e6,
                s.src,
                s.dst,
                flag_text(s.flags),
                rel(s.seq, own),
                if s.has(ACK) {
                    rel(s.ack, other).to_string()
                } else {
                    "-".into()
                },
                s.len
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    const LB: &str = "10.0.2.2:40000";
    const SERVER: &str = "10.0.2.10:8080";

    /// The seed's capture (003), lines 1-17, with its absolute numbers
    /// (relative ones rebuilt from its ISNs) and times.
    pub(crate) fn seed_capture() -> Vec<Segment> {
        let c = 1_640_887_617u32; // the LB's ISN
        let s = 2_030_898_605u32; // the server's ISN
        let lines: [(u64, bool, u8, u32, u32, u32); 17] = [
            (320_997, false, SYN, c, 0, 0),
            (321_014, true, SYN | ACK, s, c + 1, 0),
            (321_464, false, ACK, c + 1, s + 1, 0),
            (321_485, false, PSH | ACK, c + 1, s + 1, 320),
            (321_494, true, ACK, s + 1, c + 321, 0),
            (325_898, true, PSH | ACK, s + 1, c + 321, 270),
            (325_969, true, FIN | ACK, s + 271, c + 321, 0),
            (326_334, false, ACK, c + 321, s + 271, 0),
            (328_226, false, FIN | ACK, c + 321, s + 272, 0),
            (328_266, true, ACK, s + 272, c + 322, 0),
            (55_915_648, false, SYN, 1_563_951_501, 0, 0),
            (55_915_670, true, ACK, s + 272, c + 322, 0),
            (56_915_125, false, SYN, 1_563_951_501, 0, 0),
            (56_915_172, true, ACK, s + 272, c + 322, 0),
            (57_914_873, false, SYN, 1_563_951_501, 0, 0),
            (57_914_881, true, ACK, s + 272, c + 322, 0),
            (58_916_339, false, RST | ACK, 4_218_031_181, 782_496_990, 0),
        ];
        lines
            .iter()
            .map(|&(t_us, from_server, flags, seq, ack, len)| {
                let (lb, server) = (LB.parse().unwrap(), SERVER.parse().unwrap());
                let (src, dst) = if from_server {
                    (server, lb)
                } else {
                    (lb, server)
                };
                Segment {
                    t_us,
                    src,
                    dst,
                    flags,
                    seq,
                    ack,
                    len,
                }
            })
            .collect()
    }

    fn server() -> SocketAddr {
        SERVER.parse().unwrap()
    }

    fn one(segments: &[Segment]) -> Conversation {
        let mut all = conversations(segments, server());
        assert_eq!(all.len(), 1);
        all.remove(0)
    }

    #[test]
    fn the_seed_capture_is_a_rejected_reuse_of_time_wait() {
        let conversation = one(&seed_capture());
        let reuses = time_wait_reuses(&conversation);
        assert_eq!(
            reuses,
            [TimeWaitReuse {
                peer: LB.parse().unwrap(),
                t_us: 55_915_648,
                after_close_ms: 55_587,
                isn_above_rcv_nxt: false,
                syns: 3,
                challenge_acks: 3,
                challenge_gaps_ms: vec![999, 999],
                result: ReuseResult::Reset,
            }]
        );
        let counts = reuse_counts(&seed_capture(), server());
        assert_eq!(counts.server_closed_first, 1);
        assert_eq!(counts.challenge_acks, 3);
        assert_eq!(counts.reuses.get("below/reset"), Some(&1));
    }

    #[test]
    fn tokens_and_relative_lines_read_like_tcpdump() {
        let conversation = one(&seed_capture());
        assert_eq!(
            flag_tokens(&conversation).join(" "),
            ">S <S. >. >P. <. <P. <F. >. >F. <. >S <. >S <. >S <. >R."
        );
        let text = Relative(&conversation).to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[5].ends_with("[P.] seq 1 ack 321 len 270"),
            "{}",
            lines[5]
        );
        assert!(
            lines[9].ends_with("[.] seq 272 ack 322 len 0"),
            "{}",
            lines[9]
        );
        // The challenge ACK repeats the old numbers exactly (line 12).
        assert!(
            lines[11].ends_with("[.] seq 272 ack 322 len 0"),
            "{}",
            lines[11]
        );
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
        let synack = Segment {
            t_us: 55_915_700,
            src: server(),
            dst: LB.parse().unwrap(),
            flags: SYN | ACK,
            seq: 7,
            ack: above + 1,
            len: 0,
        };
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
        segments.push(Segment {
            t_us: 55_915_700,
            src: challenge.dst,
            dst: challenge.src,
            flags: RST,
            seq: challenge.ack,
            ack: 0,
            len: 0,
        });
        let retransmit = Segment {
            t_us: 56_915_125,
            ..segments[10]
        };
        segments.push(retransmit);
        segments.push(Segment {
            t_us: 56_915_200,
            src: server(),
            dst: LB.parse().unwrap(),
            flags: SYN | ACK,
            seq: 99,
            ack: below + 1,
            len: 0,
        });
        let reuses = time_wait_reuses(&one(&segments));
        assert_eq!(reuses.len(), 1);
        assert_eq!(reuses[0].result, ReuseResult::Assassinated);
        assert_eq!(reuses[0].challenge_acks, 1);
        let counts = reuse_counts(&segments, server());
        assert_eq!(counts.reuses.get("below/assassinated"), Some(&1));
        assert_eq!(counts.reuses.len(), 1);
    }

    #[test]
    fn sequence_comparison_wraps() {
        assert!(seq_after(5, u32::MAX - 5));
        assert!(!seq_after(u32::MAX - 5, 5));
        assert!(!seq_after(7, 7));
    }

    #[test]
    fn a_peer_that_closed_first_leaves_no_time_wait_at_the_server() {
        // Swap who sends the first FIN: the peer holds TIME_WAIT, so a later
        // SYN on the same tuple is not a TIME_WAIT reuse at the server.
        let mut segments = seed_capture();
        segments[6].flags = ACK; // server: no FIN yet
        segments[8].ack -= 1;
        segments.insert(
            9,
            Segment {
                t_us: 328_240,
                flags: FIN | ACK,
                ..segments[6]
            },
        );
        let conversation = one(&segments);
        assert_eq!(server_first_closes(&conversation), 0);
        assert!(time_wait_reuses(&conversation).is_empty());
    }

    #[test]
    fn an_aborted_connection_is_not_time_wait() {
        let mut segments: Vec<Segment> = seed_capture().into_iter().take(6).collect();
        segments.push(Segment {
            t_us: 400_000,
            flags: RST | ACK,
            ..segments[5]
        });
        segments.extend(seed_capture().into_iter().skip(10));
        assert!(time_wait_reuses(&one(&segments)).is_empty());
    }

    #[test]
    fn a_reuse_without_answer_is_unanswered_and_segments_of_others_are_ignored() {
        let mut segments = with_second_syn(1_563_951_501, None);
        segments.push(Segment {
            src: "10.0.2.3:1".parse().unwrap(),
            dst: "10.0.2.4:2".parse().unwrap(),
            ..segments[0]
        });
        let all = conversations(&segments, server());
        assert_eq!(all.len(), 1);
        let reuses = time_wait_reuses(&all[0]);
        assert_eq!(reuses[0].result, ReuseResult::Unanswered);
        assert_eq!((reuses[0].syns, reuses[0].challenge_acks), (1, 0));
    }

    #[test]
    fn flag_text_matches_tcpdump() {
        assert_eq!(flag_text(SYN), "S");
        assert_eq!(flag_text(SYN | ACK), "S.");
        assert_eq!(flag_text(ACK), ".");
        assert_eq!(flag_text(FIN | ACK), "F.");
        assert_eq!(flag_text(PSH | ACK), "P.");
        assert_eq!(flag_text(RST), "R");
        assert_eq!(flag_text(0), "none");
    }
}
