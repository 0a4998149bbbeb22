//! `connlab diagnose` on access-log lines that people posted in public
//! issues and blog posts (tests/data/diagnose/real/, sources and causes in
//! its README): each line's verdict, and the score the README states.
//! No rule is tuned to a line here: a miss stays a miss, in the table.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::PathBuf;

use connlab::diagnose::report::Report;
use connlab::diagnose::{Diagnoser, Options};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/data/diagnose/real")
}

/// What diagnose says about one file: its code, or `not read`, or `none`.
fn verdict(file: &str, istio_minor: Option<u32>) -> (String, Report) {
    let mut d = Diagnoser::new(Options {
        istio_minor,
        ..Options::default()
    });
    d.read(file, &std::fs::read(dir().join(file)).unwrap()[..])
        .unwrap();
    let report = d.finish();
    let said = match (report.unread, report.diagnoses.as_slice()) {
        (1.., _) => "not read".to_string(),
        (0, []) => "none".to_string(),
        (0, [d]) => d.code.clone(),
        (0, many) => panic!("{file}: {many:?}"),
    };
    (said, report)
}

/// (file, release minor the thread states, what diagnose says, whether that
/// matches the cause the thread established; `None`: no cause established,
/// not scored).
const CASES: [(&str, Option<u32>, &str, Option<bool>); 23] = [
    (
        "01-gateway-uc-after-60s-idle.log",
        None,
        "upstream_reset",
        Some(false),
    ),
    (
        "02-inbound-uc-after-two-minutes.log",
        Some(21),
        "upstream_reset",
        Some(true),
    ),
    (
        "03-dc-client-gave-up-after-30s.log",
        Some(9),
        "downstream_disconnect",
        Some(true),
    ),
    (
        "04-dc-csv-quoted-truncated.log",
        Some(10),
        "not read",
        Some(false),
    ),
    (
        "05-nr-after-strict-mtls.log",
        None,
        "no_filter_chain",
        Some(true),
    ),
    (
        "06-inbound-uf-refused.log",
        None,
        "connect_refused",
        Some(true),
    ),
    ("07-tcp-uf-refused.log", None, "connect_refused", Some(true)),
    ("08-app-500-kubectl-timestamps.log", None, "none", None),
    (
        "09-outbound-uc-untimed.log",
        Some(18),
        "keepalive_race",
        None,
    ),
    (
        "10-json-uaex-policy-unavailable.log",
        Some(4),
        "ext_authz_rejected",
        Some(true),
    ),
    (
        "11-uf-connect-timeout-stale-endpoint.log",
        None,
        "connect_timeout",
        Some(true),
    ),
    (
        "12-uf-connect-timeout-three-attempts.log",
        None,
        "connect_timeout",
        Some(true),
    ),
    (
        "13-tcp-uf-round-ten-seconds.log",
        None,
        "connect_timeout",
        None,
    ),
    (
        "14-docker-json-uf-gone-pod.log",
        Some(0),
        "not read",
        Some(false),
    ),
    (
        "15-inbound-uf-no-listener.log",
        None,
        "connect_failed",
        Some(true),
    ),
    (
        "16-inbound-uc-body-read-timeout.log",
        Some(0),
        "upstream_reset",
        Some(true),
    ),
    (
        "17-uaex-denied-401.log",
        None,
        "ext_authz_rejected",
        Some(true),
    ),
    (
        "18-passthrough-uc-scrape-strict-mtls.log",
        Some(26),
        "plaintext_to_strict_mtls",
        Some(true),
    ),
    (
        "19-json-inbound-uc-server-rst-after-1s.log",
        None,
        "upstream_reset",
        Some(true),
    ),
    (
        "20-json-inbound-uc-server-close-after-1s.log",
        None,
        "upstream_reset",
        Some(true),
    ),
    (
        "21-json-dc-curl-interrupted.log",
        None,
        "downstream_disconnect",
        Some(true),
    ),
    (
        "22-json-uo-circuit-breaker.log",
        None,
        "circuit_breaker_overflow",
        Some(true),
    ),
    (
        "23-uaex-302-login-redirect.log",
        None,
        "ext_authz_rejected",
        Some(true),
    ),
];

#[test]
fn each_real_line_gets_its_verdict() {
    let mut wrong = Vec::new();
    for (file, minor, expected, _) in CASES {
        let (said, report) = verdict(file, minor);
        if said != expected {
            let explain: Vec<_> = report
                .diagnoses
                .iter()
                .map(|d| (&d.code, &d.confidence, &d.explain))
                .collect();
            wrong.push(format!(
                "{file}: said {said}, expected {expected}: {explain:?} unread {:?}",
                report.inputs[0].malformed_first
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The class-level claims on these lines: the two-minute reset is not a
/// race and says how long, with the retry the release did; a line of
/// unknown history is never "a fresh connection"; a line not read is said.
#[test]
fn what_the_verdicts_say() {
    let (_, two_minutes) = verdict(CASES[1].0, CASES[1].1);
    let d = &two_minutes.diagnoses[0];
    let explain = d.explain.as_deref().unwrap();
    assert!(
        explain.contains("120.0 s") && explain.contains("not a keep-alive race"),
        "{explain}"
    );
    assert!(
        two_minutes.notes[0].contains("POST"),
        "{:?}",
        two_minutes.notes
    );
    for (file, minor, _, _) in CASES {
        let (_, report) = verdict(file, minor);
        for d in &report.diagnoses {
            let explain = d.explain.as_deref().unwrap_or_default();
            assert!(
                !explain.contains("fresh connection on its first request"),
                "{file}: {explain}"
            );
        }
    }
    let (_, unread) = verdict(CASES[3].0, CASES[3].1);
    assert!(connlab::diagnose::render::human(&unread).starts_with("NOT READ"));
}

/// The score the README states is the score.
#[test]
fn the_readme_states_the_score() {
    let scored: Vec<bool> = CASES.iter().filter_map(|c| c.3).collect();
    let right = scored.iter().filter(|r| **r).count();
    let line = format!("**Score: {right} of {} scored lines**", scored.len());
    let readme = std::fs::read_to_string(dir().join("README.md")).unwrap();
    assert!(readme.contains(&line), "README must state {line}");
    for (file, ..) in CASES {
        assert!(readme.contains(file), "{file} in the README table");
    }
}
