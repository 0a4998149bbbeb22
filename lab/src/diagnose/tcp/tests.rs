//! Each signature against hand-made conversations: the failure, and the
//! nearest normal or other failures that must not match it. Real kernels'
//! captures are in lab/tests/diagnose_pcap.rs.

use super::*;
use crate::evidence::pcap::{conversations, Flags, Segment};

/// A segment at `t_ms` from the client (or to it): packet_sequence's
/// helper, which counts microseconds from the server's side.
fn seg(t_ms: u64, from_client: bool, flags: u8, seq: u32, ack: u32, len: u32) -> Segment {
    crate::evidence::packet_sequence::tests::seg(t_ms * 1000, !from_client, flags, seq, ack, len)
}

const SYN: u8 = Flags::SYN;
const SA: u8 = Flags::SYN | Flags::ACK;
const A: u8 = Flags::ACK;
const PA: u8 = Flags::PSH | Flags::ACK;
const FA: u8 = Flags::FIN | Flags::ACK;
const R: u8 = Flags::RST;
const RA: u8 = Flags::RST | Flags::ACK;

/// Handshake, one request and response; the client's next seq is 101, the
/// server's 1201.
fn exchange(t: u64) -> Vec<Segment> {
    vec![
        seg(t, true, SYN, 100, 0, 0),
        seg(t, false, SA, 1000, 101, 0),
        seg(t + 1, true, A, 101, 1001, 0),
        seg(t + 2, true, PA, 101, 1001, 50),
        seg(t + 3, false, PA, 1001, 151, 200),
        seg(t + 4, true, A, 151, 1201, 0),
    ]
}

fn all(segments: Vec<Segment>) -> Vec<Finding> {
    findings(&Capture {
        segments,
        skipped: 0,
    })
}

fn names(segments: Vec<Segment>) -> Vec<&'static str> {
    all(segments).iter().map(Finding::name).collect()
}

/// Seed 003's capture: a server-first close, then three SYNs with a lower
/// seq answered by the old ACK, then the client's RST.
fn timewait() -> Vec<Segment> {
    let mut s = exchange(0);
    s.extend([
        seg(5, false, FA, 1201, 151, 0),
        seg(6, true, FA, 151, 1202, 0),
        seg(7, false, A, 1202, 152, 0),
        seg(55_000, true, SYN, 50, 0, 0),
        seg(55_001, false, A, 1202, 152, 0),
        seg(56_000, true, SYN, 50, 0, 0),
        seg(56_001, false, A, 1202, 152, 0),
        seg(57_000, true, SYN, 50, 0, 0),
        seg(57_001, false, A, 1202, 152, 0),
        seg(58_000, true, RA, 60, 1, 0),
    ]);
    s
}

#[test]
fn seed_003_timewait_sequence() {
    let found = all(timewait());
    assert_eq!(found.len(), 1, "{found:?}");
    let Finding::SnatTimewait {
        syns,
        old_ack,
        syn_seq,
        after_close_ms,
        ended_in_rst,
        ..
    } = found[0]
    else {
        panic!("{found:?}")
    };
    assert_eq!((syns, old_ack, syn_seq), (3, 152, 50));
    assert_eq!(after_close_ms, Some(54_994));
    assert!(ended_in_rst);
}

#[test]
fn a_reused_tuple_answered_by_syn_ack_is_fine() {
    let mut s = timewait();
    s.truncate(9);
    s.extend([
        seg(55_000, true, SYN, 900_000, 0, 0),
        seg(55_001, false, SA, 5000, 900_001, 0),
        seg(55_002, true, A, 900_001, 5001, 0),
    ]);
    assert!(names(s).is_empty());
}

#[test]
fn a_syn_refused_by_rst_is_not_timewait() {
    let s = vec![seg(0, true, SYN, 100, 0, 0), seg(1, false, RA, 0, 101, 0)];
    assert!(names(s).is_empty());
}

fn race(fin_after_request: bool) -> Vec<Segment> {
    let mut s = exchange(0);
    let fin = seg(5_000, false, FA, 1201, 151, 0);
    let request = seg(5_500, true, PA, 151, 1201, 50);
    if fin_after_request {
        s.extend([request, fin]);
    } else {
        s.extend([fin, request]);
    }
    s.push(seg(5_501, false, R, 1202, 0, 0));
    s
}

#[test]
fn seed_001_request_on_a_closed_connection_gets_rst() {
    for fin_after_request in [false, true] {
        let found = all(race(fin_after_request));
        assert_eq!(found.len(), 1, "{found:?}");
        let Finding::KeepaliveRace {
            idle_ms,
            server_closed_after_ms,
            ..
        } = found[0]
        else {
            panic!("{found:?}")
        };
        assert_eq!(idle_ms, 5_497);
        assert_eq!(server_closed_after_ms, Some(4_997));
    }
}

#[test]
fn a_rst_without_fin_or_on_a_first_request_is_not_the_race() {
    // The server aborts (crash, SO_LINGER 0): RST without a FIN.
    let mut aborted = exchange(0);
    aborted.extend([
        seg(5_500, true, PA, 151, 1201, 50),
        seg(5_501, false, R, 1201, 0, 0),
    ]);
    assert!(names(aborted).is_empty());
    // RST on the first request of a connection.
    let mut first = exchange(0);
    first.truncate(4);
    first.extend([
        seg(3, false, FA, 1001, 151, 0),
        seg(4, false, R, 1002, 0, 0),
    ]);
    assert!(names(first).is_empty());
    // The server answered, then reset (a response cut short).
    let mut answered = race(false);
    answered.insert(8, seg(5_500, false, PA, 1202, 201, 10));
    assert!(names(answered).is_empty());
}

#[test]
fn a_normal_keep_alive_close_is_nothing() {
    let mut s = exchange(0);
    s.extend([
        seg(5_000, false, FA, 1201, 151, 0),
        seg(5_001, true, FA, 151, 1202, 0),
        seg(5_002, false, A, 1202, 152, 0),
    ]);
    assert!(names(s).is_empty());
}

#[test]
fn unanswered_syns_are_a_dead_peer() {
    let s = vec![
        seg(0, true, SYN, 100, 0, 0),
        seg(1_000, true, SYN, 100, 0, 0),
        seg(3_000, true, SYN, 100, 0, 0),
    ];
    let found = all(s);
    assert_eq!(found.len(), 1);
    assert!(matches!(
        found[0],
        Finding::DeadPeer {
            what: "syn",
            transmissions: 3,
            span_ms: 3_000,
            ..
        }
    ));
}

#[test]
fn unanswered_data_is_a_dead_peer() {
    let mut s = exchange(0);
    for t in [10_000, 10_200, 10_600, 11_400] {
        s.push(seg(t, true, PA, 151, 1201, 50));
    }
    assert_eq!(names(s), ["dead-peer"]);
}

#[test]
fn a_syn_answered_after_retransmits_is_not_dead() {
    let s = vec![
        seg(0, true, SYN, 100, 0, 0),
        seg(1_000, true, SYN, 100, 0, 0),
        seg(3_000, true, SYN, 100, 0, 0),
        seg(3_001, false, SA, 1000, 101, 0),
    ];
    assert!(names(s).is_empty());
    // One retransmit is a lost packet, not a dead peer.
    let s = vec![
        seg(0, true, SYN, 100, 0, 0),
        seg(1_000, true, SYN, 100, 0, 0),
    ];
    assert!(names(s).is_empty());
}

/// Found by `make fuzz` (pcap): a capture whose timestamps step back
/// (merged files, a damaged one) overflowed the spans in debug builds.
#[test]
fn a_capture_whose_clock_steps_back_is_read() {
    let s = vec![
        seg(3_000, true, SYN, 100, 0, 0),
        seg(1_000, true, SYN, 100, 0, 0),
        seg(0, true, SYN, 100, 0, 0),
    ];
    assert!(matches!(
        all(s)[..],
        [Finding::DeadPeer {
            transmissions: 3,
            span_ms: 0,
            ..
        }]
    ));
    let mut s = timewait();
    // The second challenge ACK stamped before the first.
    s[12].t_ns = s[10].t_ns - 1_000_000;
    assert_eq!(names(s), ["snat-timewait"]);
}

#[test]
fn conversations_keep_both_directions_and_roles() {
    let convs = conversations(&timewait());
    assert_eq!(convs.len(), 1);
    assert_eq!(
        convs[0].client,
        crate::evidence::packet_sequence::tests::lb()
    );
    assert!(convs[0].flags_line().starts_with(">S <S. >. >P. <P."));
}
