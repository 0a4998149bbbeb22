//! The rules exist once. `connlab diagnose` has no rule of its own: for
//! every line it calls `connlab_filter::judge::judge` (the function the
//! wasm filter's `on_log` calls in Envoy: reuse table, rules, forgetting a
//! reset connection) on the facts the line carries. These tests prove it
//! two ways:
//! 1. for lines covering every code and their nearest negatives, diagnose's
//!    connection facts (`nth`, idle time), code and sentence equal what the
//!    filter's path returns on the same facts, stated here as Envoy's
//!    attributes would give them to `on_log`, with the filter's own table:
//!    so a changed rule or bookkeeping changes both;
//! 2. a changed rule *setting* (the filter's own config: server timeouts,
//!    match window) changes diagnose's answer the way it changes the
//!    filter's.
//!
//! A guard also fails if rule text (the reasons the rules match on) ever
//! appears in diagnose's own sources.
#![allow(clippy::unwrap_used, clippy::panic)]

use connlab::diagnose::connections::{Connections, LineFacts};
use connlab::diagnose::line::{Formats, Line};
use connlab::diagnose::{Diagnoser, Options};
use connlab_filter::config::{self, Config};
use connlab_filter::judge::{self, Bookkeeping, OnDemand, Outcome, Reasons};
use connlab_filter::reuse::ReuseTable;

/// Istio TEXT lines (`connlab::evidence::access_log::ISTIO_TEXT_FORMAT`): one
/// connection's healthy first request, then each case on it or on others.
fn istio(
    time: &str,
    code: u16,
    flags: &str,
    details: &str,
    failure: &str,
    local: &str,
    duration: u32,
) -> String {
    format!(
        "[{time}] \"GET / HTTP/1.1\" {code} {flags} {details} - \"{failure}\" 0 95 {duration} - \"-\" \
         \"curl/8.5.0\" \"id\" \"envoy:10000\" \"10.0.0.9:8080\" backend {local} 10.0.0.5:10000 \
         10.0.0.7:51000 - default"
    )
}

const TERMINATION: &str = "upstream_reset_before_response_started{connection_termination}";

fn cases() -> Vec<String> {
    vec![
        istio(
            "2026-12-01T00:00:00.000Z",
            200,
            "-",
            "via_upstream",
            "-",
            "10.0.0.5:40000",
            3,
        ),
        // Reused after 5.6 s and reset before the response: keepalive_race.
        istio(
            "2026-12-01T00:00:05.603Z",
            503,
            "UC",
            TERMINATION,
            "-",
            "10.0.0.5:40000",
            1,
        ),
        // That connection is gone: a new one the kernel gives the same port
        // starts again (nth 1). Nothing in the line shows whether the log
        // holds its earlier requests (a grep would drop them): its history is
        // unknown, and a reset at once is a likely keep-alive race.
        istio(
            "2026-12-01T00:00:05.900Z",
            503,
            "UC",
            TERMINATION,
            "-",
            "10.0.0.5:40000",
            1,
        ),
        // The first line of a connection: history unknown, a likely race (a
        // connection known to be fresh is `upstream_reset`: in
        // `connections::tests` and the filter's tests).
        istio(
            "2026-12-01T00:00:06.000Z",
            503,
            "UC",
            TERMINATION,
            "-",
            "10.0.0.5:40001",
            1,
        ),
        // Reused after a short idle, reset after the response started.
        istio(
            "2026-12-01T00:00:07.000Z",
            200,
            "-",
            "via_upstream",
            "-",
            "10.0.0.5:40002",
            1,
        ),
        istio(
            "2026-12-01T00:00:07.100Z",
            200,
            "UR",
            "upstream_reset_after_response_started{remote_reset}",
            "-",
            "10.0.0.5:40002",
            1,
        ),
        // Connect failures by reason.
        istio(
            "2026-12-01T00:00:08.000Z",
            503,
            "UF,URX",
            "upstream_reset_before_response_started{remote_connection_failure}",
            "immediate_connect_error:_Cannot_assign_requested_address|remote_address:10.0.0.9:8080",
            "-",
            0,
        ),
        istio(
            "2026-12-01T00:00:09.000Z",
            503,
            "UF",
            "upstream_reset_before_response_started{remote_connection_failure}",
            "delayed_connect_error:_Connection_refused",
            "-",
            0,
        ),
        istio(
            "2026-12-01T00:00:10.000Z",
            503,
            "UF",
            "upstream_reset_before_response_started{connection_timeout}",
            "-",
            "-",
            1000,
        ),
        istio(
            "2026-12-01T00:00:11.000Z",
            504,
            "UT",
            "response_timeout",
            "-",
            "10.0.0.5:40003",
            15000,
        ),
        // A 503 the backend itself sent: healthy at the proxy level.
        istio(
            "2026-12-01T00:00:12.000Z",
            503,
            "-",
            "via_upstream",
            "-",
            "10.0.0.5:40004",
            2,
        ),
    ]
}

fn judge_all(config: &Config) -> Vec<(Option<&'static str>, Option<String>)> {
    let formats = Formats::new(None);
    let mut connections = Connections::default();
    // The filter's own table, as one worker's VM holds it.
    let mut table = ReuseTable::new(config.reuse_table_cap);
    let mut out = Vec::new();
    for line in cases() {
        let Line::Request(_, request) = formats.parse(&line) else {
            panic!("{line}")
        };
        let judged = connections.judge(&request, config);
        let start = request.start_ns.unwrap();
        let duration = request.duration_ms.unwrap() * 1_000_000;
        // What `on_log` reads from Envoy's attributes for this request: the
        // filter keys a connection by its local address.
        let attributes = Outcome {
            local: request.upstream_local.as_deref(),
            peer: request.upstream_host.as_deref(),
            end_ns: Some(start + duration),
            duration_ns: Some(duration),
            flags: request.flags,
            attempts: request.attempts,
        };
        // The reasons, cluster... are the line's either way (`LineFacts`).
        let direct = judge::judge(
            &mut table,
            &attributes,
            &mut LineFacts(&request),
            config,
            Bookkeeping::Record,
        );
        // The filter's path on the same facts gives the same answer and
        // the same view of the connection.
        assert_eq!(judged, direct, "{line}");
        out.push((judged.code(), judged.diagnosis.map(|d| d.explain)));
    }
    out
}

#[test]
fn diagnose_answers_what_the_filter_function_answers() {
    let codes: Vec<Option<&str>> = judge_all(&Config::default())
        .into_iter()
        .map(|(c, _)| c)
        .collect();
    assert_eq!(
        codes,
        [
            None,
            Some("keepalive_race"),
            Some("keepalive_race"),
            Some("keepalive_race"),
            None,
            Some("upstream_reset"),
            Some("source_address_conflict"),
            Some("connect_refused"),
            Some("connect_timeout"),
            Some("upstream_timeout"),
            None,
        ]
    );
}

#[test]
fn a_changed_rule_setting_changes_diagnose_too() {
    let default = judge_all(&Config::default());
    assert!(
        default[1].1.as_deref().unwrap().contains("Node.js"),
        "{:?}",
        default[1]
    );
    // The same plugin configuration a user loads into the filter.
    let config = config::parse(br#"{"server_idle_timeouts":{"gunicorn":5500},"idle_match_before_ms":200,"idle_match_after_ms":200}"#).unwrap();
    let changed = judge_all(&config);
    let explain = changed[1].1.as_deref().unwrap();
    assert!(
        explain.contains("gunicorn") && !explain.contains("Node.js"),
        "{explain}"
    );
}

#[test]
fn the_report_counts_what_the_rules_said() {
    let mut d = Diagnoser::new(Options::default());
    d.read("cases.log", cases().join("\n").as_bytes()).unwrap();
    let report = d.finish();
    assert_eq!(report.requests, 11);
    assert_eq!(report.diagnosed, 8);
    let race = report
        .diagnoses
        .iter()
        .find(|c| c.code == "keepalive_race")
        .unwrap();
    // One confirmed (reused after 5.6 s idle), two likely (first lines).
    assert_eq!((race.count, race.confirmed, race.likely), (3, 1, 2));
    assert_eq!(
        race.confidence,
        Some(connlab_filter::diagnose::Confidence::Likely)
    );
    assert!(!race.alternatives.is_empty());
    assert!(
        race.collect_next[0].contains("earlier lines"),
        "{:?}",
        race.collect_next
    );
    assert_eq!(race.first.as_deref(), Some("2026-12-01T00:00:05.603Z"));
    assert_eq!(
        race.replay.as_deref(),
        Some("connlab run keepalive-race --variant node")
    );
    let example = race.example.as_ref().unwrap();
    assert_eq!(example.at, "cases.log:2");
    assert!(example.fields.contains(&("nth".into(), "2".into())));
    assert!(example.fields.contains(&("idle".into(), "5.6 s".into())));
    let idle = report.failed_reuse_idle.as_ref().unwrap();
    assert_eq!(
        idle.idle.count, 2,
        "keepalive_race and the reused upstream_reset"
    );
}

const EADDRNOTAVAIL: &str = "immediate_connect_error:_Cannot_assign_requested_address";
const CONNECT_FAILURE: &str = "upstream_reset_before_response_started{remote_connection_failure}";

/// The explanation diagnose gives the failed connect in `lines`.
fn source_address_explain(lines: &[String]) -> String {
    let mut d = Diagnoser::new(Options::default());
    d.read("pinned.log", lines.join("\n").as_bytes()).unwrap();
    let report = d.finish();
    let found = report
        .diagnoses
        .iter()
        .find(|c| c.code == "source_address_conflict");
    found.and_then(|c| c.explain.clone()).unwrap()
}

/// The filter's answer for the same failed connect, with `in_flight` the
/// ports other requests on its worker hold when it ends.
fn filter_explain(line: &str, in_flight: &[u16]) -> String {
    struct Filter<'r>(LineFacts<'r>, Vec<u16>);
    impl OnDemand for Filter<'_> {
        fn reasons(&mut self) -> Reasons {
            self.0.reasons()
        }
        fn cluster(&mut self) -> Option<String> {
            self.0.cluster()
        }
        fn in_flight_ports(&mut self, _peer: &str) -> Vec<u16> {
            self.1.clone()
        }
        fn is_connect(&mut self) -> bool {
            false
        }
        fn grpc_status(&mut self) -> Option<i64> {
            None
        }
        fn opened(&mut self) -> bool {
            self.0.opened()
        }
    }
    let Line::Request(_, request) = Formats::new(None).parse(line) else {
        panic!("{line}")
    };
    let outcome = Outcome {
        peer: request.upstream_host.as_deref(),
        flags: request.flags,
        ..Outcome::default()
    };
    let mut facts = Filter(LineFacts(&request), in_flight.to_vec());
    let config = Config::default();
    let judged = judge::judge(
        &mut ReuseTable::new(8),
        &outcome,
        &mut facts,
        &config,
        Bookkeeping::Record,
    );
    judged.diagnosis.unwrap().explain
}

/// The pinned-port evidence the filter reads from requests in flight on its
/// worker is, in a log, the lines of requests that overlap the failed
/// connect and end after it (a request is logged when it ends): diagnose
/// judges the failed connect once the log has moved past it.
#[test]
fn a_port_held_by_a_request_in_flight_is_evidence_of_a_pinned_port_as_in_the_filter() {
    let failed = istio(
        "2026-12-01T00:00:01.000Z",
        503,
        "UF",
        CONNECT_FAILURE,
        EADDRNOTAVAIL,
        "-",
        0,
    );
    // Started before the failure, ended after it, from local port 40000.
    let holder = |local: &str| {
        istio(
            "2026-12-01T00:00:00.000Z",
            200,
            "-",
            "via_upstream",
            "-",
            local,
            5000,
        )
    };
    let pinned = source_address_explain(&[failed.clone(), holder("10.0.0.5:40000")]);
    assert!(pinned.contains("local port 40000"), "{pinned}");
    assert_eq!(pinned, filter_explain(&failed, &[40000]));
    // Two requests in flight on two ports: the kernel chose them.
    let two = [
        failed.clone(),
        holder("10.0.0.5:40000"),
        holder("10.0.0.5:40001"),
    ];
    let ran_out = source_address_explain(&two);
    assert!(ran_out.contains("ran out"), "{ran_out}");
    assert_eq!(ran_out, filter_explain(&failed, &[40000, 40001]));
    // Nothing in flight: no evidence.
    assert_eq!(
        source_address_explain(std::slice::from_ref(&failed)),
        filter_explain(&failed, &[])
    );
    // A connection that started after the failure was not in flight with
    // it: not evidence (the filter, when the connect failed, did not know
    // it). The failure is judged before it is recorded; the holder, logged
    // after it, is missed: the answer without evidence.
    let later = istio(
        "2026-12-01T00:00:02.000Z",
        200,
        "-",
        "via_upstream",
        "-",
        "10.0.0.5:40000",
        1,
    );
    let missed = source_address_explain(&[failed.clone(), later, holder("10.0.0.5:40000")]);
    assert_eq!(missed, filter_explain(&failed, &[]));
    // ... but a request to another host does not end the wait.
    let elsewhere = istio(
        "2026-12-01T00:00:02.000Z",
        200,
        "-",
        "via_upstream",
        "-",
        "10.0.0.5:40009",
        1,
    )
    .replace("\"10.0.0.9:8080\"", "\"10.0.0.10:8080\"");
    let kept = source_address_explain(&[failed.clone(), elsewhere, holder("10.0.0.5:40000")]);
    assert_eq!(kept, pinned);
}

/// No second copy: the reasons the filter's rules match on never appear in
/// diagnose's sources outside tests.
#[test]
fn diagnose_has_no_rule_text_of_its_own() {
    let dir = connlab::paths::root().join("lab/src/diagnose");
    let mut checked = 0;
    for entry in walk(&dir) {
        // A client library's own error texts ("Connection refused" from
        // reqwest, urllib3): evidence no filter rule reads, not a copy.
        if entry.ends_with("client_log.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&entry).unwrap();
        let code = text
            .split("#[cfg(test)]")
            .next()
            .unwrap()
            .to_ascii_lowercase();
        for rule_text in [
            "before response started",
            "before_response_started",
            "cannot assign requested address",
            "connection refused",
            "error: 99",
        ] {
            assert!(
                !code.contains(rule_text),
                "{} has rule text `{rule_text}`",
                entry.display()
            );
        }
        checked += 1;
    }
    assert!(checked >= 8);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n != "tests") {
                out.extend(walk(&p));
            }
        } else if p.extension().is_some_and(|x| x == "rs") && !p.ends_with("tests.rs") {
            out.push(p);
        }
    }
    out
}
