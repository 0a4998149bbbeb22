//! A capture as `connlab diagnose --pcap` reads it (pcap or pcapng, any
//! link type): read, split into conversations, checked for the TCP
//! signatures and rendered. Never panics; a bad file is an error.
#![no_main]

use std::path::Path;

use connlab::diagnose::cli;
use connlab::evidence::pcap;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(capture) = pcap::read_from(bytes) else {
        return;
    };
    let report = cli::tcp_report_of(
        "fuzz".into(),
        &capture,
        Path::new("/nonexistent/connlab-fuzz"),
    );
    let _ = cli::human_tcp(&report);
});
