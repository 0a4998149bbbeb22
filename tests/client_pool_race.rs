//! client-pool-race (seed 001 on the caller's side, issue 17) end to end in
//! Docker: real reqwest, Python requests and Node's http.Agent with their
//! defaults, a real Envoy with a downstream idle_timeout, real packet delay.
//! The scenario's own checks assert each library's error text and Envoy's
//! counter; here also the signature an SRE reads: the library's failures
//! are resets on reused connections, and Envoy's access log has no line
//! for them. (Java's variant runs with `connlab run client-pool-race`.)

use connlab::outcome::{Outcome, Verdict};
use connlab_tests::lab::run_variant;

const SCENARIO: &str = "client-pool-race";

fn classes(outcome: &Outcome) -> Vec<(&str, u64)> {
    outcome
        .client
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect()
}

/// Every racing request (one in two) was reset, and each fresh one was
/// answered; through Envoy, its access log shows only the answered ones.
fn assert_race(variant: &str, through_envoy: bool) {
    let outcome = run_variant(SCENARIO, variant);
    assert_eq!(outcome.verdict, Verdict::Reproduced, "{outcome:#?}");
    assert_eq!(
        classes(&outcome),
        [("200", 3), ("reset", 3)],
        "{outcome:#?}"
    );
    if through_envoy {
        let logged: u64 = outcome.envoy["envoy"].values().sum();
        assert_eq!(logged, 3, "{outcome:#?}");
        assert!(
            outcome.envoy["envoy"].keys().all(|k| k.starts_with("200")),
            "{outcome:#?}"
        );
    }
}

fn assert_fixed(variant: &str) {
    let outcome = run_variant(SCENARIO, variant);
    assert_eq!(outcome.verdict, Verdict::Fixed, "{outcome:#?}");
    assert_eq!(classes(&outcome), [("200", 6)], "{outcome:#?}");
}

#[test]
fn reqwest_node() {
    assert_race("reqwest-node", false);
}

#[test]
fn reqwest_envoy_idle() {
    assert_race("reqwest-envoy-idle", true);
}

#[test]
fn requests_envoy_idle() {
    assert_race("requests-envoy-idle", true);
}

#[test]
fn node_agent_envoy_idle() {
    assert_race("node-agent-envoy-idle", true);
}

#[test]
fn fixed_pool_idle_timeout() {
    assert_fixed("fixed-pool-idle-timeout");
}

#[test]
fn fixed_server_idle_above_pool() {
    assert_fixed("fixed-server-idle-above-pool");
}
