//! source-port-reuse (seed 004) end to end in Docker: real Envoy 1.40 with
//! its upstream pinned to one source port (SO_REUSEADDR), connlab-backend
//! closing every 100th request like S3, real kernels refusing the 4-tuple.
//! Each variant asserts the seed's signature — `503 UF,URX`, errno 99, and
//! exactly 4 connect failures per 503 — then snapshots the Outcome.

use connlab::outcome::{Outcome, Verdict};
use connlab_tests::lab::run_variant;

const SCENARIO: &str = "source-port-reuse";
const CONNECT_FAIL: &str = "envoy:cluster.backend.upstream_cx_connect_fail";

fn snapshot(outcome: &Outcome) {
    insta::assert_yaml_snapshot!(format!("{SCENARIO}-{}", outcome.variant), outcome, {
        ".wall_ms" => "[wall]",
        ".explain" => "[explain]",
    });
}

/// `failures` requests got `503 UF,URX` after 1 try + 3 retries, each an
/// immediate EADDRNOTAVAIL: the seed's ratio of 4 connect failures per 503.
fn assert_collisions(outcome: &Outcome, ok: u64, failures: u64) {
    assert_eq!(outcome.verdict, Verdict::Reproduced, "{outcome:#?}");
    assert_eq!(outcome.client.get("200"), Some(&ok), "{outcome:#?}");
    assert_eq!(outcome.client.get("503"), Some(&failures), "{outcome:#?}");
    let access = &outcome.envoy["envoy"];
    let uf: u64 = access
        .iter()
        .filter(|(class, _)| {
            class.starts_with("503 URX,UF ")
                && class.contains("immediate_connect_error:_Cannot_assign_requested_address")
        })
        .map(|(_, n)| n)
        .sum();
    assert_eq!(uf, failures, "{outcome:#?}");
    assert_eq!(
        outcome.diagnoses["envoy"].get("source_address_conflict"),
        Some(&failures),
        "{outcome:#?}"
    );
    assert_eq!(outcome.stats[CONNECT_FAIL], 4 * failures, "{outcome:#?}");
    // The evidence of the pinned port: earlier connections from it
    // (sequential) or the one still in flight on it (concurrent).
    let explain = outcome.explain.as_deref().unwrap_or_default();
    assert!(
        explain.contains("local port 40000") && explain.contains("pinned"),
        "{explain}"
    );
}

fn assert_fixed(outcome: &Outcome, requests: u64) {
    assert_eq!(outcome.verdict, Verdict::Fixed, "{outcome:#?}");
    assert_eq!(outcome.client.get("200"), Some(&requests), "{outcome:#?}");
    assert_eq!(outcome.stats[CONNECT_FAIL], 0, "{outcome:#?}");
}

#[test]
fn sequential() {
    let outcome = run_variant(SCENARIO, "sequential");
    assert_collisions(&outcome, 100, 5);
    snapshot(&outcome);
}

#[test]
fn concurrent() {
    let outcome = run_variant(SCENARIO, "concurrent");
    assert_collisions(&outcome, 1, 1);
    snapshot(&outcome);
}

#[test]
fn max_requests_pinned_does_not_help() {
    let outcome = run_variant(SCENARIO, "max-requests-pinned");
    assert_collisions(&outcome, 99, 6);
    snapshot(&outcome);
}

#[test]
fn fixed_unpinned() {
    let outcome = run_variant(SCENARIO, "fixed-unpinned");
    assert_fixed(&outcome, 105);
    snapshot(&outcome);
}

#[test]
fn fixed_concurrent() {
    let outcome = run_variant(SCENARIO, "fixed-concurrent");
    assert_fixed(&outcome, 2);
    snapshot(&outcome);
}
