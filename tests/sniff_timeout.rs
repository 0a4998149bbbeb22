//! sniff-timeout (seed 000) end to end in Docker: a caller Envoy sniffing
//! with a 100 ms detection timeout, a server Envoy with STRICT mTLS
//! (certificates made per run), a slow and a fast client. Each variant
//! asserts the seed's signature or its absence, then snapshots the Outcome.

use connlab::outcome::{Outcome, Verdict};
use connlab_tests::lab::run_variant;

const SCENARIO: &str = "sniff-timeout";
const PRE_CX_TIMEOUT: &str = "caller:listener.outbound.downstream_pre_cx_timeout";
const TLS_ERROR: &str = "server:listener.inbound.ssl.connection_error";

fn snapshot(outcome: &Outcome) {
    insta::assert_yaml_snapshot!(format!("{SCENARIO}-{}", outcome.variant), outcome, {
        ".wall_ms" => "[wall]",
        ".explain" => "[explain]",
    });
}

fn diagnosed(outcome: &Outcome, node: &str, code: &str) -> u64 {
    outcome.diagnoses[node].get(code).copied().unwrap_or(0)
}

#[test]
fn strict() {
    let outcome = run_variant(SCENARIO, "strict");
    assert_eq!(outcome.verdict, Verdict::Reproduced, "{outcome:#?}");
    // The fast client's 10 requests succeed; the slow client's 10
    // connections end without a response.
    assert_eq!(outcome.client.get("200"), Some(&10), "{outcome:#?}");
    assert_eq!(outcome.client.get("eof"), Some(&10), "{outcome:#?}");
    assert_eq!(outcome.stats[PRE_CX_TIMEOUT], 10, "{outcome:#?}");
    assert_eq!(outcome.stats[TLS_ERROR], 10, "{outcome:#?}");
    assert_eq!(diagnosed(&outcome, "caller", "sniff_fallthrough"), 10);
    assert_eq!(diagnosed(&outcome, "server", "plaintext_on_tls"), 10);
    snapshot(&outcome);
}

fn assert_fixed(outcome: &Outcome) {
    assert_eq!(outcome.verdict, Verdict::Fixed, "{outcome:#?}");
    assert_eq!(outcome.client.get("200"), Some(&20), "{outcome:#?}");
    assert_eq!(outcome.stats[TLS_ERROR], 0, "{outcome:#?}");
    assert_eq!(diagnosed(outcome, "server", "plaintext_on_tls"), 0);
}

#[test]
fn fixed_detection_timeout() {
    let outcome = run_variant(SCENARIO, "fixed-detection-timeout");
    assert_fixed(&outcome);
    assert_eq!(outcome.stats[PRE_CX_TIMEOUT], 0, "{outcome:#?}");
    snapshot(&outcome);
}

#[test]
fn fixed_explicit_protocol() {
    let outcome = run_variant(SCENARIO, "fixed-explicit-protocol");
    assert_fixed(&outcome);
    assert_eq!(diagnosed(&outcome, "caller", "sniff_fallthrough"), 0);
    snapshot(&outcome);
}

/// PERMISSIVE lets the request through, but the slow client still falls
/// through to plaintext passthrough: the weaker fix.
#[test]
fn fixed_permissive() {
    let outcome = run_variant(SCENARIO, "fixed-permissive");
    assert_fixed(&outcome);
    assert_eq!(outcome.stats[PRE_CX_TIMEOUT], 10, "{outcome:#?}");
    assert_eq!(diagnosed(&outcome, "caller", "sniff_fallthrough"), 10);
    snapshot(&outcome);
}

/// Mesh mode, Istio 1.6's shape: the slow client's sidecar falls through to
/// PassthroughCluster; the STRICT callee's sidecar fails the handshake on
/// the plaintext request, and its NETWORK plugin (mode SERVER) names it.
/// Nothing on the caller's fall-through chain can.
#[test]
fn istio_strict() {
    let outcome = run_variant(SCENARIO, "istio-strict");
    assert_eq!(outcome.verdict, Verdict::Reproduced, "{outcome:#?}");
    assert_eq!(outcome.client.get("200"), Some(&10), "{outcome:#?}");
    assert_eq!(outcome.client.get("eof"), Some(&10), "{outcome:#?}");
    let stat = |s: &str| outcome.stats[s];
    assert_eq!(
        stat("slow:listener.0.0.0.0_8080.downstream_pre_cx_timeout"),
        10
    );
    assert_eq!(
        stat("slow:cluster.PassthroughCluster.upstream_cx_total"),
        10
    );
    assert_eq!(
        stat("backend:listener.0.0.0.0_15006.ssl.connection_error"),
        10
    );
    assert_eq!(diagnosed(&outcome, "backend", "plaintext_on_tls"), 10);
    assert!(outcome.diagnoses["slow"].is_empty(), "{outcome:#?}");
    snapshot(&outcome);
}

#[test]
fn istio_fixed_detection_timeout() {
    let outcome = run_variant(SCENARIO, "istio-fixed-detection-timeout");
    assert_eq!(outcome.verdict, Verdict::Fixed, "{outcome:#?}");
    assert_eq!(outcome.client.get("200"), Some(&20), "{outcome:#?}");
    snapshot(&outcome);
}

#[test]
fn istio_fixed_permissive() {
    let outcome = run_variant(SCENARIO, "istio-fixed-permissive");
    assert_eq!(outcome.verdict, Verdict::Fixed, "{outcome:#?}");
    assert_eq!(outcome.client.get("200"), Some(&20), "{outcome:#?}");
    // Still falling through: why PERMISSIVE is the weaker fix.
    assert_eq!(
        outcome.stats["slow:listener.0.0.0.0_8080.downstream_pre_cx_timeout"],
        10
    );
    snapshot(&outcome);
}
