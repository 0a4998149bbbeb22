//! `connlab diagnose` on what mesh-mode sidecars recorded, for every mesh
//! variant (`connlab run <scenario> --variant istio-* --evidence DIR`, each
//! sidecar's Istio TEXT access log and filter events copied untouched to
//! tests/data/diagnose/lab/mesh/<scenario>-<variant>/): from a sidecar's
//! access log alone, diagnose names what the filter in that sidecar named
//! live, and where it cannot (or names more), the table says why.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::PathBuf;

use connlab::diagnose::report::{Report, Source};
use connlab::diagnose::{Diagnoser, Options};

fn path(run: &str, file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/diagnose/lab/mesh")
        .join(run)
        .join(file)
}

fn diagnose(run: &str, file: &str) -> Report {
    let mut d = Diagnoser::new(Options::default());
    d.read(file, &std::fs::read(path(run, file)).unwrap()[..])
        .unwrap();
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

type Codes = &'static [(&'static str, u64)];

/// One sidecar of one mesh run: what its filter named (events), what
/// diagnose names from its access log alone.
struct Sidecar {
    run: &'static str,
    node: &'static str,
    filter: Codes,
    log: Codes,
}

const RACE: Codes = &[("keepalive_race", 3)];
const NONE: Codes = &[];

/// Every mesh variant's sidecars. Where the two columns differ:
/// - keepalive-race/istio-inbound-1.23, client: the caller's sidecar
///   retried the 503 away (503 retriable before 1.24); the filter counts
///   the attempts (`retried_then_ok`), Istio's default TEXT log has no
///   attempt count and the client got 200: diagnose says it cannot tell
///   (`the_gaps_are_said`), never a verdict.
/// - keepalive-race/istio-fail-open: the module failed to load and
///   FAIL_OPEN put an allow-all filter in its place, so no filter named
///   anything; the access log still shows the race.
/// - sniff-timeout/istio-strict: the filter can only see it at the callee
///   (Istio puts no plugin on the caller's PassthroughFilterChain):
///   `plaintext_on_tls` on ten connections; the callee's 1.6 line for them
///   (`"- - -" 0 - … 0 0`, no cluster) has no TLS field, so nothing is named
///   from it, rather than a guess. The caller's log names the same ten from
///   the sending side (`the_callers_log_names_the_connections_the_callees_filter_named`).
const SIDECARS: [Sidecar; 17] = [
    Sidecar {
        run: "keepalive-race-istio-inbound",
        node: "backend",
        filter: RACE,
        log: RACE,
    },
    Sidecar {
        run: "keepalive-race-istio-inbound",
        node: "client",
        filter: NONE,
        log: NONE,
    },
    Sidecar {
        run: "keepalive-race-istio-inbound-1.23",
        node: "backend",
        filter: RACE,
        log: RACE,
    },
    Sidecar {
        run: "keepalive-race-istio-inbound-1.23",
        node: "client",
        filter: &[("retried_then_ok", 3)],
        log: NONE,
    },
    Sidecar {
        run: "keepalive-race-istio-fixed-idle-timeout",
        node: "backend",
        filter: NONE,
        log: NONE,
    },
    Sidecar {
        run: "keepalive-race-istio-fixed-idle-timeout",
        node: "client",
        filter: NONE,
        log: NONE,
    },
    Sidecar {
        run: "keepalive-race-istio-fail-open",
        node: "backend",
        filter: NONE,
        log: RACE,
    },
    Sidecar {
        run: "keepalive-race-istio-fail-open",
        node: "client",
        filter: NONE,
        log: NONE,
    },
    Sidecar {
        run: "sniff-timeout-istio-strict",
        node: "backend",
        filter: &[("plaintext_on_tls", 10)],
        log: NONE,
    },
    Sidecar {
        run: "sniff-timeout-istio-strict",
        node: "slow",
        filter: NONE,
        log: &[("plaintext_to_strict_mtls", 10)],
    },
    Sidecar {
        run: "sniff-timeout-istio-strict",
        node: "fast",
        filter: NONE,
        log: NONE,
    },
    Sidecar {
        run: "sniff-timeout-istio-fixed-detection-timeout",
        node: "backend",
        filter: NONE,
        log: NONE,
    },
    Sidecar {
        run: "sniff-timeout-istio-fixed-detection-timeout",
        node: "slow",
        filter: NONE,
        log: NONE,
    },
    Sidecar {
        run: "sniff-timeout-istio-fixed-detection-timeout",
        node: "fast",
        filter: NONE,
        log: NONE,
    },
    // The nearest negative on real lines: the slow client still falls
    // through to PassthroughCluster in plaintext, but the PERMISSIVE callee
    // answers (88 bytes out, 231 back): nothing named.
    Sidecar {
        run: "sniff-timeout-istio-fixed-permissive",
        node: "slow",
        filter: NONE,
        log: NONE,
    },
    Sidecar {
        run: "sniff-timeout-istio-fixed-permissive",
        node: "backend",
        filter: NONE,
        log: NONE,
    },
    Sidecar {
        run: "sniff-timeout-istio-fixed-permissive",
        node: "fast",
        filter: NONE,
        log: NONE,
    },
];

fn owned(codes: Codes) -> Vec<(String, u64)> {
    codes.iter().map(|(c, n)| (c.to_string(), *n)).collect()
}

#[test]
fn every_mesh_variant_diagnose_names_what_the_sidecars_filter_named() {
    // Every sidecar log recorded has its row, and every row its log.
    let mut recorded = std::collections::BTreeSet::new();
    for run in std::fs::read_dir(path("", "")).unwrap() {
        let run = run.unwrap().file_name().into_string().unwrap();
        for file in std::fs::read_dir(path(&run, "")).unwrap() {
            let file = file.unwrap().file_name().into_string().unwrap();
            if let Some(node) = file.strip_suffix(".access.log") {
                recorded.insert(format!("{run}/{node}"));
            }
        }
    }
    let rows = SIDECARS
        .iter()
        .map(|s| format!("{}/{}", s.run, s.node))
        .collect::<std::collections::BTreeSet<_>>();
    assert_eq!(
        recorded, rows,
        "a sidecar log without a row, or a row without a log"
    );
    for s in &SIDECARS {
        let at = format!("{}/{}", s.run, s.node);
        let live = diagnose(s.run, &format!("{}.events.jsonl", s.node));
        assert_eq!(
            codes(&live, Source::FilterEvent),
            owned(s.filter),
            "{at} events"
        );
        let offline = diagnose(s.run, &format!("{}.access.log", s.node));
        assert_eq!(
            codes(&offline, Source::AccessLog),
            owned(s.log),
            "{at} access log"
        );
        let input = &offline.inputs[0];
        assert!(input.requests > 0, "{at}: no request read");
        assert_eq!((input.malformed, input.other), (0, 0), "{at}");
    }
}

/// Where the log cannot say what the filter said, the report says so.
#[test]
fn the_gaps_are_said() {
    let client = diagnose("keepalive-race-istio-inbound-1.23", "client.access.log");
    assert!(
        client
            .cannot_tell
            .iter()
            .any(|c| c.contains("retried_then_ok") && c.contains("UPSTREAM_REQUEST_ATTEMPT_COUNT")),
        "{:?}",
        client.cannot_tell
    );
}

/// Seed 000 in Istio 1.6's shape, from the sender: tcp_proxy lines to
/// PassthroughCluster that delivered the request and got nothing back
/// (`plaintext_to_strict_mtls`, likely: the line cannot say who closed).
/// They are the very connections the callee's filter named: each caller
/// line's upstream local address is the peer of one of the callee's ten
/// handshake-failed connections (`"- - -" 0 - … 0 0`).
#[test]
fn the_callers_log_names_the_connections_the_callees_filter_named() {
    let run = "sniff-timeout-istio-strict";
    let caller = diagnose(run, "slow.access.log");
    let d = &caller.diagnoses[0];
    assert_eq!(
        (d.code.as_str(), d.likely, d.confirmed),
        ("plaintext_to_strict_mtls", 10, 0)
    );
    let read = |file: &str| std::fs::read_to_string(path(run, file)).unwrap();
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

/// The class beyond the recorded 1.6 line, and its nearest neighbours, one
/// line each, in the formats of 1.8 and of today (lines written from the
/// recorded ones, addresses and counts changed as stated).
#[test]
fn the_class_in_every_istio_format_and_its_nearest_negatives() {
    let named = |line: &str| {
        let mut d = Diagnoser::new(Options::default());
        d.read("line", line.as_bytes()).unwrap();
        let report = d.finish();
        assert_eq!(report.requests, 1, "{line}");
        report.diagnoses.first().map(|d| d.code.clone())
    };
    let strict = Some("plaintext_to_strict_mtls".to_string());
    let tail = "\"-\" \"-\" \"-\" \"-\" \"10.4.1.7:8080\"";
    let ends = "10.4.0.9:51234 10.4.1.7:8080 10.4.0.9:51232 - -";
    // Plaintext through PassthroughCluster, nothing back: 1.8, today.
    let v18 = format!(
        "[2026-12-07T05:28:00.000Z] \"- - -\" 0 - \"-\" 88 0 3 - {tail} PassthroughCluster {ends}"
    );
    let now = format!("[2026-12-07T05:28:00.000Z] \"- - -\" 0 - - - \"-\" 88 0 3 - {tail} PassthroughCluster {ends}");
    assert_eq!(named(&v18), strict);
    assert_eq!(named(&now), strict);
    // A destination that answered (PERMISSIVE, or outside the mesh).
    let answered = now.replace(" 88 0 3 ", " 88 231 3 ");
    assert_eq!(named(&answered), None);
    // A mesh cluster: the sidecar originated mTLS.
    let mesh = now.replace(
        "PassthroughCluster",
        "outbound|8080||backend.lab.svc.cluster.local",
    );
    assert_eq!(named(&mesh), None);
    // A connect that failed (a destination outside the mesh refusing).
    let refused = now.replace("\"- - -\" 0 - - -", "\"- - -\" 0 UF,URX - -");
    assert_ne!(named(&refused), strict);
    // An HTTP 503 a destination outside the mesh answered through
    // PassthroughCluster (via_upstream): nothing.
    let http_503 = format!("[2026-12-07T05:28:00.000Z] \"GET / HTTP/1.1\" 503 - via_upstream - \"-\" 0 95 4 4 \"-\" \"curl/8.5.0\" \"id-1\" \"10.4.1.7:8080\" \"10.4.1.7:8080\" PassthroughCluster {ends}");
    assert_eq!(named(&http_503), None);
    // A plain UC race on a mesh cluster stays what it was.
    let race = format!("[2026-12-07T05:28:00.000Z] \"GET / HTTP/1.1\" 503 UC upstream_reset_before_response_started{{connection_termination}} - \"-\" 0 95 1 - \"-\" \"curl/8.5.0\" \"id-2\" \"10.4.1.7:8080\" \"10.4.1.7:8080\" outbound|8080||backend.lab.svc.cluster.local {ends}");
    assert_eq!(named(&race), Some("keepalive_race".to_string()));
}
