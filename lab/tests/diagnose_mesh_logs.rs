//! `connlab diagnose` on what mesh-mode sidecars recorded (`connlab run
//! <scenario> --variant istio-* --evidence DIR`, copied untouched to
//! tests/data/diagnose/lab/mesh/): from the callee sidecar's Istio TEXT
//! access log alone (1.28's format), diagnose names what the filter in that
//! sidecar named live; from the sidecar's filter events, the same counts.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::PathBuf;

use connlab::diagnose::report::{Report, Source};
use connlab::diagnose::{Diagnoser, Options};

fn diagnose(run: &str, file: &str) -> Report {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/diagnose/lab/mesh")
        .join(run)
        .join(file);
    let mut d = Diagnoser::new(Options::default());
    d.read(file, &std::fs::read(&path).unwrap()[..]).unwrap();
    d.finish()
}

fn codes(report: &Report, source: Source) -> Vec<(String, u64)> {
    report
        .diagnoses
        .iter()
        .filter(|d| d.source == source)
        .map(|d| (d.code.clone(), d.count))
        .collect()
}

#[test]
fn the_inbound_sidecars_access_log_names_the_race_its_filter_named() {
    let run = "keepalive-race-istio-inbound";
    let live = diagnose(run, "backend.events.jsonl");
    let offline = diagnose(run, "backend.access.log");
    assert_eq!(
        codes(&live, Source::FilterEvent),
        [("keepalive_race".to_string(), 3)]
    );
    assert_eq!(
        codes(&offline, Source::AccessLog),
        [("keepalive_race".to_string(), 3)]
    );
    let input = &offline.inputs[0];
    assert_eq!((input.malformed, input.other), (0, 0));
}

/// Seed 000 in Istio 1.6's shape. The filter can only see it at the
/// callee (Istio puts no plugin on the caller's PassthroughFilterChain):
/// `plaintext_on_tls` on ten connections. The caller's access log alone
/// names the same ten from the sending side: tcp_proxy lines to
/// PassthroughCluster that delivered the request and got nothing back
/// (`plaintext_to_strict_mtls`, likely). The callee's 1.6 line for them
/// has no TLS field (`"- - -" 0 - … 0 0`, no cluster): nothing is named
/// from it, rather than a guess.
#[test]
fn the_callers_access_log_names_what_the_strict_callees_filter_named() {
    let run = "sniff-timeout-istio-strict";
    let live = diagnose(run, "backend.events.jsonl");
    assert_eq!(
        codes(&live, Source::FilterEvent),
        [("plaintext_on_tls".to_string(), 10)]
    );
    let caller = diagnose(run, "slow.access.log");
    assert_eq!(
        codes(&caller, Source::AccessLog),
        [("plaintext_to_strict_mtls".to_string(), 10)]
    );
    let d = &caller.diagnoses[0];
    assert_eq!((d.likely, d.confirmed), (10, 0));
    let input = &caller.inputs[0];
    assert_eq!((input.malformed, input.other), (0, 0));
    assert_eq!(
        codes(&diagnose(run, "backend.access.log"), Source::AccessLog),
        []
    );
    // The same ten connections: each caller line's upstream local address
    // is the peer of one of the callee's handshake-failed connections.
    let read = |file: &str| {
        std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../tests/data/diagnose/lab/mesh")
                .join(run)
                .join(file),
        )
        .unwrap()
    };
    let field = |line: &str, from_end: usize| {
        let words: Vec<&str> = line.split_whitespace().collect();
        words[words.len() - from_end].to_string()
    };
    let mut sent: Vec<String> = read("slow.access.log")
        .lines()
        .map(|l| field(l, 5))
        .collect();
    let mut dropped: Vec<String> = read("backend.access.log")
        .lines()
        .filter(|l| l.contains("\"- - -\" 0 - \"-\" \"-\" 0 0 "))
        .map(|l| field(l, 3))
        .collect();
    sent.sort();
    dropped.sort();
    assert_eq!((sent.len(), &sent), (10, &dropped));
}
