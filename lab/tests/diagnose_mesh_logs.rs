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

#[test]
fn the_strict_callees_filter_events_name_the_plaintext() {
    let live = diagnose("sniff-timeout-istio-strict", "backend.events.jsonl");
    assert_eq!(
        codes(&live, Source::FilterEvent),
        [("plaintext_on_tls".to_string(), 10)]
    );
}
