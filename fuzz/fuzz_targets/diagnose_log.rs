//! Bytes as `connlab diagnose` reads a log file: every line in whatever
//! format it is in (Istio's and Envoy's TEXT layouts, lines pasted without
//! their time or after a `kubectl logs` prefix, JSON access logs, the
//! filter's events, log shippers' envelopes, JSON spread over lines), then
//! judged, counted, and rendered as text and as JSON. Never panics, every
//! line is counted exactly once, and the report stays bounded.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use connlab::diagnose::{render, Diagnoser, Options};
use libfuzzer_sys::fuzz_target;

/// Compiled once: the formats are constants. The scenarios folder does not
/// exist, so the report's replay lines cost no file reads per input.
fn options() -> Options {
    static OPTIONS: OnceLock<Options> = OnceLock::new();
    OPTIONS
        .get_or_init(|| Options {
            scenarios: PathBuf::from("/nonexistent/connlab-fuzz"),
            ..Options::default()
        })
        .clone()
}

fuzz_target!(|bytes: &[u8]| {
    let mut diagnoser = Diagnoser::new(options());
    diagnoser.read("fuzz", bytes).unwrap();
    let report = diagnoser.finish();
    let input = &report.inputs[0];
    let newlines = bytes.iter().filter(|&&b| b == b'\n').count();
    let lines = newlines + usize::from(!bytes.is_empty() && !bytes.ends_with(b"\n"));
    assert_eq!(input.lines, lines as u64);
    assert_eq!(
        input.requests
            + input.events
            + input.other
            + input.client_lines
            + input.malformed
            + input.joined,
        input.lines
    );
    assert!(input.malformed_first.len() <= 5);
    assert!(report.diagnoses.len() < 64, "codes are a small fixed set");
    let _ = render::human(&report);
    serde_json::to_string(&report).unwrap();
});
