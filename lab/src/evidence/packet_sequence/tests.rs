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
        "../../../../compose/experiments/snat-timewait/results/precise-below.pcap"
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
        "../../../../compose/experiments/snat-timewait/results/precise-rst.pcap"
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
