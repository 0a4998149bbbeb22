//! `connlab diagnose --format FORMAT` on a log: the first line of the input
//! is the user's Envoy format string, the rest the log read with it. The
//! format compiles or is refused with a reason; either way nothing panics
//! and every line is counted exactly once.
#![no_main]

use std::path::PathBuf;

use connlab::diagnose::line::Formats;
use connlab::diagnose::template::Template;
use connlab::diagnose::{render, Diagnoser, Options};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let (format, log) = match bytes.iter().position(|&b| b == b'\n') {
        Some(at) => (&bytes[..at], &bytes[at + 1..]),
        None => (bytes, &b""[..]),
    };
    let template = match Template::compile(&String::from_utf8_lossy(format)) {
        Ok(t) => t,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    let mut diagnoser = Diagnoser::new(Options {
        formats: Formats::new(Some(template)),
        scenarios: PathBuf::from("/nonexistent/connlab-fuzz"),
        ..Options::default()
    });
    diagnoser.read("fuzz", log).unwrap();
    let report = diagnoser.finish();
    let input = &report.inputs[0];
    assert_eq!(
        input.requests
            + input.events
            + input.other
            + input.client_lines
            + input.malformed
            + input.joined,
        input.lines
    );
    let _ = render::human(&report);
});
