//! `connlab diagnose` on the evidence users have rather than the lab's
//! complete logs: one pasted line, a grep, an export, an older Istio. Each
//! report says how sure it is and what to collect next; lines it cannot
//! read are counted and said first, never taken for an all-clear.
#![allow(clippy::unwrap_used, clippy::panic)]

use connlab::diagnose::render::human;
use connlab::diagnose::report::Report;
use connlab::diagnose::{Diagnoser, Options};
use connlab_filter::diagnose::Confidence;

fn diagnose(text: &str) -> Report {
    diagnose_with(text, Options::default())
}

fn diagnose_with(text: &str, options: Options) -> Report {
    let mut d = Diagnoser::new(options);
    d.read("pasted.log", text.as_bytes()).unwrap();
    d.finish()
}

/// The one code of an access-log report, with its confidence.
fn only(report: &Report) -> (&str, Option<Confidence>) {
    let [d] = report.diagnoses.as_slice() else {
        panic!("{:#?}", report.diagnoses)
    };
    (d.code.as_str(), d.confidence)
}

/// Seed 001's failure on a real inbound line (sidecar → Node app over
/// 127.0.0.6, 50 ms, UC connection_termination), pasted alone.
const INBOUND_UC: &str = "[2023-03-14T09:12:01.512Z] \"GET /api/items HTTP/1.1\" 503 UC \
upstream_reset_before_response_started{connection_termination} - \"-\" 0 95 50 - \"-\" \
\"axios/1.3.4\" \"5b2c-9f\" \"items:3000\" \"10.8.3.21:3000\" inbound|3000|| 127.0.0.6:53411 \
10.8.3.21:3000 10.8.1.4:40122 outbound_.3000_._.items.default.svc.cluster.local default";

#[test]
fn one_pasted_keepalive_race_line_is_a_likely_race_with_what_to_collect() {
    let report = diagnose(INBOUND_UC);
    assert_eq!(only(&report), ("keepalive_race", Some(Confidence::Likely)));
    let d = &report.diagnoses[0];
    assert!(!d.alternatives.is_empty());
    // The log says which connection (local address): its earlier lines first.
    assert!(
        d.collect_next[0].contains("earlier lines"),
        "{:?}",
        d.collect_next
    );
    assert!(d
        .collect_next
        .iter()
        .any(|c| c.contains("%UPSTREAM_CONNECTION_ID%")));
    let text = human(&report);
    assert!(text.contains("sure     likely"), "{text}");
    assert!(
        !text.contains("fresh connection on its first request"),
        "{text}"
    );
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["diagnoses"][0]["confidence"], "likely");
    assert!(
        json["diagnoses"][0]["alternatives"]
            .as_array()
            .unwrap()
            .len()
            >= 1
    );
}

/// A UC 120 s into the request is not a keep-alive race, and the duration
/// is said.
#[test]
fn a_reset_long_into_the_request_says_how_long() {
    let line = INBOUND_UC.replace(" 0 95 50 - ", " 0 95 120004 - ");
    let report = diagnose(&line);
    assert_eq!(only(&report), ("upstream_reset", Some(Confidence::Likely)));
    let explain = report.diagnoses[0].explain.as_deref().unwrap();
    assert!(
        explain.contains("120.0 s") && explain.contains("not a keep-alive race"),
        "{explain}"
    );
}

/// Seed 000's family on both sides: the caller's plaintext through
/// PassthroughCluster reset (Istio 1.6's format), the server's NR
/// filter_chain_not_found.
#[test]
fn seed_000_family_in_real_lines() {
    let caller =
        "[2020-10-24T17:37:23.593Z] \"GET /api HTTP/1.1\" 503 UC \"-\" \"-\" 0 95 2 - \"-\" \
\"okhttp/3.12.1\" \"6a1d-1\" \"b.preview:80\" \"10.4.1.7:80\" PassthroughCluster 10.4.0.9:51234 \
10.4.1.7:80 10.4.0.9:51232 - allow_any";
    let report = diagnose(caller);
    assert_eq!(
        only(&report),
        ("plaintext_to_strict_mtls", Some(Confidence::Likely))
    );
    // Istio 1.6 retried a 503 by default: said.
    assert!(
        report.notes.iter().any(|n| n.contains("before 1.24")),
        "{:?}",
        report.notes
    );
    let server =
        "[2020-10-24T17:37:23.594Z] \"- - -\" 0 NR filter_chain_not_found - \"-\" 0 0 0 - \"-\" \
\"-\" \"-\" \"-\" \"-\" - - 10.4.1.7:80 10.4.0.9:51234 - -";
    let report = diagnose(server);
    assert_eq!(only(&report).0, "no_filter_chain");
    // Without its timestamp too.
    let untimed = &server[server.find('"').unwrap()..];
    assert_eq!(only(&diagnose(untimed)).0, "no_filter_chain");
}

#[test]
fn a_client_that_left_is_said_with_its_time() {
    let line = INBOUND_UC
        .replace(
            "503 UC upstream_reset_before_response_started{connection_termination}",
            "0 DC downstream_remote_disconnect",
        )
        .replace(" 0 95 50 - ", " 0 0 2970 - ");
    let report = diagnose(&line);
    assert_eq!(
        only(&report),
        ("downstream_disconnect", Some(Confidence::Confirmed))
    );
    assert!(report.diagnoses[0]
        .explain
        .as_deref()
        .unwrap()
        .contains("3.0 s"));
}

/// Release-aware: the user says the release.
#[test]
fn the_retry_note_follows_the_release() {
    let options = |minor| Options {
        istio_minor: Some(minor),
        ..Options::default()
    };
    let old = diagnose_with(INBOUND_UC, options(22));
    assert!(old.notes[0].contains("POST"), "{:?}", old.notes);
    let new = diagnose_with(INBOUND_UC, options(24));
    assert!(
        new.notes[0].contains("do not retry a 503"),
        "{:?}",
        new.notes
    );
    // Unknown release, current format: nothing claimed about retries; only
    // the line that says client-side races are not in an access log.
    assert_eq!(
        diagnose(INBOUND_UC).notes,
        vec![connlab::diagnose::report::CLIENT_SIDE_UNSEEN.to_string()]
    );
}

/// Client-library error lines: the client-side pool race gets its verdict
/// from the client's log (Envoy writes no line for it), with its
/// alternatives and what to collect; a refused connect in the same log is
/// not one; and the "not in an access log" line is said only when no
/// client log was given.
#[test]
fn a_client_log_names_the_client_side_pool_race() {
    let client = "2026-12-07T05:00:00Z ERROR request failed: error sending request for url \
                  (http://envoy:10000/): client error (SendRequest): connection error: \
                  Connection reset by peer (os error 104)\n\
                  2026-12-07T05:00:01Z ERROR request failed: error sending request for url \
                  (http://envoy:10000/): client error (Connect): tcp connect error: Connection \
                  refused (os error 111)\n";
    let report = diagnose(client);
    assert_eq!(report.diagnoses.len(), 1, "{:?}", report.diagnoses);
    let d = &report.diagnoses[0];
    assert_eq!(
        (d.code.as_str(), d.count, d.confidence),
        ("client_pool_race", 1, Some(Confidence::Likely))
    );
    assert!(!d.alternatives.is_empty());
    assert!(d
        .collect_next
        .iter()
        .any(|c| c.contains("downstream_cx_idle_timeout")));
    assert_eq!(report.inputs[0].client_lines, 1);
    assert!(report.notes.is_empty(), "{:?}", report.notes);
    let human = connlab::diagnose::render::human(&report);
    assert!(human.contains("client_pool_race"), "{human}");
    assert!(human.contains("1 client-library errors"), "{human}");
}

/// Pretty-printed JSON entries (a log store's export as an array, `jq .`)
/// are read as one entry each; every line is still counted.
#[test]
fn pretty_printed_json_entries_spread_over_lines() {
    let entry = serde_json::json!({
        "insertId": "abc",
        "textPayload": format!("{INBOUND_UC}\n"),
        "resource": {"type": "k8s_container", "labels": {"container_name": "istio-proxy"}},
    });
    let pretty = serde_json::to_string_pretty(&serde_json::json!([entry, entry])).unwrap();
    let report = diagnose(&pretty);
    let input = &report.inputs[0];
    assert_eq!(input.requests, 2, "{input:?}");
    assert_eq!(input.malformed, 0, "{input:?}");
    assert_eq!(
        input.requests + input.events + input.other + input.malformed + input.joined,
        input.lines
    );
    assert_eq!(only(&report).0, "keepalive_race");
}

/// Lines diagnose cannot read are said first, and the report is never an
/// all-clear over them.
#[test]
fn unread_lines_come_first_and_are_never_an_all_clear() {
    let report = diagnose("GET /api 503 UC 2ms\nsomething else entirely\n");
    assert_eq!(report.unread, 2);
    let text = human(&report);
    assert!(text.starts_with("NOT READ: 2 line(s)"), "{text}");
    assert!(text.contains("not an all-clear"), "{text}");
    assert!(
        !text.contains("no failure the filter's rules name"),
        "{text}"
    );
    // A clean log with nothing unread is the all-clear.
    let ok = INBOUND_UC.replace(
        "503 UC upstream_reset_before_response_started{connection_termination}",
        "200 - via_upstream",
    );
    let text = human(&diagnose(&ok));
    assert!(
        text.contains("no failure the filter's rules name"),
        "{text}"
    );
}
