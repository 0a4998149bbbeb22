//! `connlab diagnose --pcap` on captures real kernels made
//! (tests/data/diagnose/make-captures.sh): each capture holds the failure
//! and its nearest healthy look-alike, and only the failure is named.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::PathBuf;

use connlab::diagnose::tcp::{self, Finding};
use connlab::evidence::pcap;

fn capture(name: &str) -> pcap::Capture {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/diagnose")
        .join(name);
    pcap::read(&path).unwrap()
}

#[test]
fn conversations_are_split_per_four_tuple_with_roles() {
    let c = capture("keepalive-race-rst.pcap");
    assert_eq!(c.skipped, 0);
    let convs = c.conversations();
    assert_eq!(
        convs.len(),
        2,
        "a healthy reused connection and the raced one"
    );
    for conv in &convs {
        assert_eq!(conv.server.port(), 8080);
        assert!(
            conv.flags_line().starts_with(">S <S. >."),
            "{}",
            conv.flags_line()
        );
    }
    assert!(
        convs[0].flags_line().ends_with(">F. <F. >."),
        "{}",
        convs[0].flags_line()
    );
}

#[test]
fn keepalive_race_rst_from_a_real_kernel() {
    let found = tcp::findings(&capture("keepalive-race-rst.pcap"));
    assert_eq!(found.len(), 1, "{found:?}");
    let Finding::KeepaliveRace {
        idle_ms,
        server_closed_after_ms,
        server,
        ..
    } = &found[0]
    else {
        panic!("{found:?}")
    };
    assert_eq!(server.port(), 8080);
    // The server's 1 s idle timeout, and the request 1.5 s after the last
    // response (the script's numbers; the kernel adds a few ms).
    assert!(
        (1_000..1_100).contains(&server_closed_after_ms.unwrap()),
        "{found:?}"
    );
    assert!((1_500..1_600).contains(idle_ms), "{found:?}");
}

#[test]
fn timewait_old_sequence_ack_from_a_real_kernel() {
    let found = tcp::findings(&capture("timewait-ack.pcap"));
    assert_eq!(
        found.len(),
        1,
        "the SYN above rcv_nxt is accepted: {found:?}"
    );
    let Finding::SnatTimewait {
        client,
        syns,
        ended_in_rst,
        after_close_ms,
        syn_seq,
        old_ack,
        ..
    } = &found[0]
    else {
        panic!("{found:?}")
    };
    assert_eq!(client.port(), 40000);
    assert_eq!(*syns, 3);
    assert!(*ended_in_rst);
    assert!((1_000..1_200).contains(&after_close_ms.unwrap()));
    // The new SYN is 10^7 below the old connection's numbers.
    assert_eq!(old_ack.wrapping_sub(*syn_seq), 10_000_000 + 19 + 1);
}

#[test]
fn dead_peer_syn_retransmits_from_a_real_kernel() {
    let found = tcp::findings(&capture("dead-peer.pcap"));
    assert_eq!(
        found.len(),
        1,
        "the refused connect is not a dead peer: {found:?}"
    );
    let Finding::DeadPeer {
        what,
        transmissions,
        server,
        ..
    } = &found[0]
    else {
        panic!("{found:?}")
    };
    assert_eq!((*what, server.port()), ("syn", 9999));
    assert!(*transmissions >= 3);
}

#[test]
fn the_cli_prints_each_signature_with_its_scenario() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/data/diagnose");
    let scenarios = connlab::paths::root().join("scenarios");
    let report =
        connlab::diagnose::cli::tcp_report(&dir.join("keepalive-race-rst.pcap"), &scenarios)
            .unwrap();
    let text = connlab::diagnose::cli::human_tcp(&report);
    assert!(
        text.contains("keepalive-race (1 conversation(s))"),
        "{text}"
    );
    assert!(
        text.contains("replay   connlab run keepalive-race"),
        "{text}"
    );
    let err = connlab::diagnose::cli::tcp_report(&dir.join("captures.py"), &scenarios).unwrap_err();
    assert!(err.to_string().contains("not a pcap"), "{err}");
}

/// The same capture rewritten as pcapng (what Wireshark and `tcpdump
/// --pcapng`-capable tools save) reads to the same segments.
#[test]
fn pcapng_reads_like_pcap() {
    use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
    use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionBlock;
    use pcap_file::pcapng::PcapNgWriter;
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/data/diagnose/timewait-ack.pcap");
    let mut reader = pcap_file::pcap::PcapReader::new(std::fs::File::open(&path).unwrap()).unwrap();
    let mut writer = PcapNgWriter::new(Vec::new()).unwrap();
    writer
        .write_pcapng_block(InterfaceDescriptionBlock {
            linktype: pcap_file::DataLink::ETHERNET,
            snaplen: 0,
            options: vec![],
        })
        .unwrap();
    while let Some(packet) = reader.next_raw_packet() {
        let p = packet.unwrap();
        writer
            .write_pcapng_block(EnhancedPacketBlock {
                interface_id: 0,
                timestamp: std::time::Duration::new(u64::from(p.ts_sec), p.ts_frac * 1000),
                original_len: p.orig_len,
                data: p.data,
                options: vec![],
            })
            .unwrap();
    }
    let bytes = writer.into_inner();
    let ng = pcap::read_from(&bytes[..]).unwrap();
    let classic = capture("timewait-ack.pcap");
    assert_eq!(ng.segments.len(), classic.segments.len());
    assert_eq!(ng.segments, classic.segments);
}
