//! keepalive-race (seed 001) end to end in Docker: real Envoy with the
//! filter, real Node.js / CherryPy / Tomcat with their defaults, real packet
//! delay. Each variant asserts the seed's signature, then snapshots the
//! Outcome (counts only; times and explanations redacted).

use connlab::outcome::{Outcome, Verdict};
use connlab_tests::lab::run_variant;

const SCENARIO: &str = "keepalive-race";
const UC: &str = "503 UC upstream_reset_before_response_started{connection_termination}";

fn snapshot(outcome: &Outcome) {
    insta::assert_yaml_snapshot!(format!("{SCENARIO}-{}", outcome.variant), outcome, {
        ".wall_ms" => "[wall]",
        ".explain" => "[explain]",
    });
}

/// The broken variants: every racing request fails the way the seed saw it,
/// at the client, in Envoy's access log and stats, and in the filter.
fn assert_race(outcome: &Outcome, failures: u64, server_default: &str) {
    assert_eq!(outcome.verdict, Verdict::Reproduced, "{outcome:#?}");
    assert_eq!(outcome.client.get("503"), Some(&failures), "{outcome:#?}");
    assert_eq!(
        outcome.envoy["envoy"].get(UC),
        Some(&failures),
        "{outcome:#?}"
    );
    assert_eq!(
        outcome.diagnoses["envoy"].get("keepalive_race"),
        Some(&failures),
        "{outcome:#?}"
    );
    let stat = "envoy:cluster.backend.upstream_cx_destroy_remote_with_active_rq";
    assert_eq!(outcome.stats[stat], failures, "{outcome:#?}");
    let explain = outcome.explain.as_deref().unwrap_or_default();
    assert!(
        explain.contains(server_default),
        "explanation should name {server_default}: {explain}"
    );
}

#[test]
fn node() {
    let outcome = run_variant(SCENARIO, "node");
    assert_race(&outcome, 3, "Node.js");
    snapshot(&outcome);
}

#[test]
fn cherrypy() {
    let outcome = run_variant(SCENARIO, "cherrypy");
    assert_race(&outcome, 3, "CherryPy");
    snapshot(&outcome);
}

#[test]
fn tomcat() {
    let outcome = run_variant(SCENARIO, "tomcat");
    assert_race(&outcome, 2, "Tomcat");
    snapshot(&outcome);
}

#[test]
fn retry_hidden() {
    let outcome = run_variant(SCENARIO, "retry-hidden");
    assert_eq!(outcome.verdict, Verdict::Reproduced, "{outcome:#?}");
    // The client sees only 200s; the caller's filter sees the retries.
    assert_eq!(
        outcome.client.keys().collect::<Vec<_>>(),
        ["200"],
        "{outcome:#?}"
    );
    assert_eq!(
        outcome.diagnoses["caller"].get("retried_then_ok"),
        Some(&3),
        "{outcome:#?}"
    );
    assert_eq!(
        outcome.diagnoses["envoy"].get("keepalive_race"),
        Some(&3),
        "{outcome:#?}"
    );
    assert_eq!(
        outcome.stats["caller:cluster.envoy.upstream_rq_retry"], 3,
        "{outcome:#?}"
    );
    snapshot(&outcome);
}

#[test]
fn fixed_idle_timeout() {
    let outcome = run_variant(SCENARIO, "fixed-idle-timeout");
    assert_eq!(outcome.verdict, Verdict::Fixed, "{outcome:#?}");
    assert_eq!(outcome.client.get("200"), Some(&6), "{outcome:#?}");
    snapshot(&outcome);
}

#[test]
fn fixed_server_keepalive() {
    let outcome = run_variant(SCENARIO, "fixed-server-keepalive");
    assert_eq!(outcome.verdict, Verdict::Fixed, "{outcome:#?}");
    assert_eq!(outcome.client.get("200"), Some(&6), "{outcome:#?}");
    snapshot(&outcome);
}

/// Mesh mode: the race between the callee's inbound sidecar and Node over
/// loopback, named by the filter in that sidecar (delivered as the
/// WasmPlugin manifest says); what the client sees follows the release's
/// default retries.
fn assert_mesh_race(variant: &str, client_sees: &str) {
    let outcome = run_variant(SCENARIO, variant);
    assert_eq!(outcome.verdict, Verdict::Reproduced, "{outcome:#?}");
    let want = if client_sees == "503" { 3 } else { 6 };
    assert_eq!(outcome.client.get(client_sees), Some(&want), "{outcome:#?}");
    assert_eq!(outcome.envoy["backend"].get(UC), Some(&3), "{outcome:#?}");
    assert_eq!(
        outcome.diagnoses["backend"].get("keepalive_race"),
        Some(&3),
        "{outcome:#?}"
    );
    snapshot(&outcome);
}

/// 1.28 no longer retries 503: the client sees each one.
#[test]
fn istio_inbound() {
    assert_mesh_race("istio-inbound", "503");
}

/// 1.23 still retries 503: the caller's sidecar hides it, as in the seed.
#[test]
fn istio_inbound_1_23() {
    assert_mesh_race("istio-inbound-1.23", "200");
}

#[test]
fn istio_fixed_idle_timeout() {
    let outcome = run_variant(SCENARIO, "istio-fixed-idle-timeout");
    assert_eq!(outcome.verdict, Verdict::Fixed, "{outcome:#?}");
    assert_eq!(outcome.client.get("200"), Some(&6), "{outcome:#?}");
    snapshot(&outcome);
}

/// The WasmPlugin as shipped (placeholder sha256): the agent's digest
/// check fails, FAIL_OPEN puts an allow-all filter in its place, traffic
/// flows without the filter.
#[test]
fn istio_fail_open() {
    let outcome = run_variant(SCENARIO, "istio-fail-open");
    assert_eq!(outcome.verdict, Verdict::Reproduced, "{outcome:#?}");
    assert_eq!(outcome.client.get("200"), Some(&3), "{outcome:#?}");
    assert!(outcome.diagnoses["backend"].is_empty(), "{outcome:#?}");
    snapshot(&outcome);
}
