//! `connlab diagnose` on logs the lab itself recorded: each keepalive-race
//! variant's Envoy access log in Istio's TEXT format and the filter's events,
//! kept by `connlab run keepalive-race --evidence DIR` (copied, untouched, to
//! tests/data/diagnose/lab/). Offline, from the access log alone, diagnose
//! must find what the filter found live, name the same server, and point
//! at the variant that replays it; the fixed variants must get nothing.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::PathBuf;

use connlab::diagnose::report::{Report, Source};
use connlab::diagnose::{Diagnoser, Options};

fn dir(variant: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/diagnose/lab/keepalive-race")
        .join(variant)
}

fn diagnose(variant: &str, files: &[&str]) -> Report {
    diagnose_with(variant, files, Options::default())
}

/// The configuration the lab gave the filter in that run, as the scenario
/// file writes it (its idle match window widened by the injected delay, a
/// calibration the file states).
fn lab_options(variant: &str) -> Options {
    let path = connlab::paths::root().join("scenarios/keepalive-race.toml");
    let scenario = connlab::scenario::Scenario::load(&path).unwrap();
    let node = &scenario.variant(variant).unwrap().nodes["envoy"];
    let json = connlab::run::roles::envoy::filter_config(node.kind.envoy().unwrap()).to_string();
    Options {
        config: connlab_filter::config::parse(json.as_bytes()).unwrap(),
        ..Options::default()
    }
}

fn diagnose_with(variant: &str, files: &[&str], options: Options) -> Report {
    let mut d = Diagnoser::new(options);
    for file in files {
        let path = dir(variant).join(file);
        let text = std::fs::read(&path).unwrap();
        d.read(file, &text[..]).unwrap();
    }
    d.finish()
}

/// (code, count, replay) of the access-log diagnoses.
fn codes(report: &Report, source: Source) -> Vec<(String, u64, Option<String>)> {
    report
        .diagnoses
        .iter()
        .filter(|d| d.source == source)
        .map(|d| (d.code.clone(), d.count, d.replay.clone()))
        .collect()
}

/// With the filter's configuration from that run, as a user would pass it
/// with `--filter-config`.
#[test]
fn each_server_is_named_from_its_access_log() {
    for (variant, races, server) in [
        ("node", 3, "Node.js's default keep-alive timeout of 5.0 s"),
        (
            "cherrypy",
            3,
            "CherryPy's default keep-alive timeout of 10.0 s",
        ),
        ("tomcat", 2, "Tomcat's default keep-alive timeout of 20.0 s"),
    ] {
        let report = diagnose_with(variant, &["envoy.access.log"], lab_options(variant));
        let input = &report.inputs[0];
        assert_eq!((input.malformed, input.other), (0, 0), "{variant}");
        assert_eq!(
            input.formats.get("Istio TEXT"),
            Some(&(races * 2)),
            "{variant}"
        );
        assert_eq!(
            codes(&report, Source::AccessLog),
            [(
                "keepalive_race".to_string(),
                races,
                Some(format!("connlab run keepalive-race --variant {variant}"))
            )],
            "{variant}"
        );
        let idle = report.failed_reuse_idle.as_ref().unwrap();
        assert_eq!(idle.idle.count, races);
        assert!(
            idle.consistent_with.as_deref().unwrap().starts_with(server),
            "{variant}: {idle:?}"
        );
    }
}

/// The defaults are not tuned to the lab: Tomcat's race here came 21.5 s
/// after the last response (20 s timeout, plus the FIN the lab held 2 s),
/// outside the default window (20 s + 1.5 s), so no server is named and
/// the replay offers every variant.
#[test]
fn default_settings_name_no_server_outside_their_window() {
    let report = diagnose("tomcat", &["envoy.access.log"]);
    assert_eq!(
        codes(&report, Source::AccessLog),
        [(
            "keepalive_race".to_string(),
            2,
            Some("connlab run keepalive-race".to_string())
        )]
    );
    assert_eq!(report.failed_reuse_idle.unwrap().consistent_with, None);
    let node = diagnose("node", &["envoy.access.log"]);
    assert_eq!(
        codes(&node, Source::AccessLog)[0].2.as_deref(),
        Some("connlab run keepalive-race --variant node")
    );
}

#[test]
fn diagnose_offline_agrees_with_the_filter_live() {
    for variant in ["node", "cherrypy", "tomcat", "retry-hidden"] {
        let offline = diagnose(variant, &["envoy.access.log"]);
        let live = diagnose(variant, &["envoy.events.jsonl"]);
        let strip = |v: Vec<(String, u64, Option<String>)>| -> Vec<(String, u64)> {
            v.into_iter().map(|(c, n, _)| (c, n)).collect()
        };
        assert_eq!(
            strip(codes(&offline, Source::AccessLog)),
            strip(codes(&live, Source::FilterEvent)),
            "{variant}"
        );
        // The same idle times, to the millisecond the log prints.
        let offline_idle = &offline.diagnoses[0].idle.as_ref().unwrap();
        let live_idle = &live.diagnoses[0].idle.as_ref().unwrap();
        assert!(
            offline_idle.min_ms.abs_diff(live_idle.min_ms) <= 2,
            "{variant}"
        );
        assert!(
            offline_idle.max_ms.abs_diff(live_idle.max_ms) <= 2,
            "{variant}"
        );
    }
}

#[test]
fn the_fixed_variants_have_nothing_to_diagnose() {
    for variant in ["fixed-idle-timeout", "fixed-server-keepalive"] {
        let report = diagnose(variant, &["envoy.access.log", "envoy.events.jsonl"]);
        assert_eq!(report.requests, 6, "{variant}");
        assert!(
            report.diagnoses.is_empty(),
            "{variant}: {:?}",
            report.diagnoses
        );
        assert!(report.failed_reuse_idle.is_none());
    }
}

/// Istio's default format has no attempt count: the caller's log of the
/// retry-hidden variant shows six clean 200s, where the filter saw
/// `request_attempt_count` 2 three times. diagnose says what it cannot
/// tell; the next hop's log has the races.
#[test]
fn retries_hidden_from_istio_text_are_said_to_be_invisible() {
    let caller = diagnose("retry-hidden", &["caller.access.log"]);
    assert_eq!(caller.requests, 6);
    assert!(caller.diagnoses.is_empty());
    assert!(caller
        .cannot_tell
        .iter()
        .any(|l| l.contains("%UPSTREAM_REQUEST_ATTEMPT_COUNT%")));
    let live = diagnose("retry-hidden", &["caller.events.jsonl"]);
    assert_eq!(
        codes(&live, Source::FilterEvent),
        [(
            "retried_then_ok".to_string(),
            3,
            Some("connlab run keepalive-race --variant retry-hidden".to_string())
        )]
    );
    let next_hop = diagnose("retry-hidden", &["envoy.access.log"]);
    assert_eq!(codes(&next_hop, Source::AccessLog)[0].1, 3);
}

/// Real Envoy 1.40 output (tests/data/diagnose/envoy-1.40/envoy.yaml, three
/// curls 1.5 s and 0.5 s apart against a server that closes idle
/// connections after 1 s): the recommended `json_format` and Envoy's
/// default format, both read, each with what it can and cannot tell.
#[test]
fn real_envoy_json_and_default_formats() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/data/diagnose/envoy-1.40");
    let read = |file: &str| {
        let mut d = Diagnoser::new(Options::default());
        d.read(file, &std::fs::read(dir.join(file)).unwrap()[..])
            .unwrap();
        d.finish()
    };
    let json = read("access.json");
    assert_eq!(json.inputs[0].formats.get("JSON"), Some(&3));
    assert!(json.cannot_tell.is_empty(), "{:?}", json.cannot_tell);
    let default = read("access.default");
    assert_eq!(default.inputs[0].formats.get("Envoy default"), Some(&3));
    assert!(default
        .cannot_tell
        .iter()
        .any(|l| l.contains("%UPSTREAM_LOCAL_ADDRESS%")));
    assert!(default
        .cannot_tell
        .iter()
        .any(|l| l.contains("%RESPONSE_CODE_DETAILS%")));
}

#[test]
fn upstream_connection_id_tells_reuse() {
    use connlab::diagnose::connections::Connections;
    use connlab::diagnose::line::{Formats, Line};
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/data/diagnose/envoy-1.40");
    let text = std::fs::read_to_string(dir.join("access.json")).unwrap();
    let formats = Formats::new(None);
    let mut connections = Connections::default();
    let nth: Vec<u64> = text
        .lines()
        .map(|l| match formats.parse(l) {
            Line::Request(_, r) => connections.judge(&r, &Default::default()).reuse.nth,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        nth,
        [1, 1, 2],
        "the server closed the first connection; the third reused the second"
    );
}

/// The pinned-port evidence the filter reads from a request in flight, on a
/// real run (`connlab run source-port-reuse --variant concurrent --evidence
/// DIR`, copied untouched): the connect that failed with EADDRNOTAVAIL is
/// logged first, the request holding port 40000 a second later, when it
/// ends. Offline, diagnose names the pinned port as the filter did live.
#[test]
fn a_port_held_by_a_request_in_flight_is_named_offline_as_live() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/diagnose/lab/source-port-reuse/concurrent");
    for (file, source) in [
        ("envoy.access.log", Source::AccessLog),
        ("envoy.events.jsonl", Source::FilterEvent),
    ] {
        let mut d = Diagnoser::new(Options::default());
        d.read(file, &std::fs::read(dir.join(file)).unwrap()[..])
            .unwrap();
        let report = d.finish();
        let found: Vec<_> = report
            .diagnoses
            .iter()
            .filter(|c| c.source == source)
            .collect();
        let [conflict] = found.as_slice() else {
            panic!("{file}: {found:?}")
        };
        assert_eq!(
            (conflict.code.as_str(), conflict.count),
            ("source_address_conflict", 1),
            "{file}"
        );
        let explain = conflict.explain.as_deref().unwrap();
        assert!(
            explain.contains("left from local port 40000, so the source port looks pinned"),
            "{file}: {explain}"
        );
    }
}
