//! snat-timewait (seed 003) end to end in Docker: a real Linux server
//! closing first and holding TIME_WAIT, tcpdump at its side, and either a
//! scapy "load balancer" replaying the seed packet for packet (`precise*`:
//! exact counts) or connlab-client behind a real SNAT router (`load*`:
//! random ports and ISNs, so bounds, and snapshots of what does not vary).

use connlab::outcome::{Outcome, Verdict};
use connlab_tests::lab::run_variant;

const SCENARIO: &str = "snat-timewait";

/// The seed's 17 segments at the server: its FIN first, three SYNs on the
/// reused 4-tuple each answered by a bare ACK, then the load balancer's R.
const SEED_LINE: &str = ">S <S. >. >P. <. <P. <F. >. >F. <. >S <. >S <. >S <. >R.";

fn snapshot(outcome: &Outcome) {
    insta::assert_yaml_snapshot!(format!("{SCENARIO}-{}", outcome.variant), outcome, {
        ".wall_ms" => "[wall]",
        ".explain" => "[explain]",
    });
}

/// A load run: how many requests, SYNs and challenge ACKs (and so which
/// classes appear at all) varies run to run; the verdict and which checks
/// held do not, and are what is snapshot.
fn snapshot_load(outcome: &Outcome) {
    let checks: Vec<String> = outcome
        .checks
        .iter()
        .map(|c| format!("{}: {:?}", c.check, c.holds))
        .collect();
    let stable = serde_json::json!({
        "scenario": outcome.scenario,
        "variant": outcome.variant,
        "expected": outcome.expected,
        "verdict": outcome.verdict,
        "checks": checks,
    });
    insta::assert_yaml_snapshot!(format!("{SCENARIO}-{}", outcome.variant), stable);
}

fn packets(outcome: &Outcome, count: &str) -> u64 {
    outcome.packets["server"].get(count).copied().unwrap_or(0)
}

/// The scapy load balancer's run: one connection closed by the server,
/// then one SYN (retransmitted) on the same 4-tuple.
fn assert_precise(outcome: &Outcome, verdict: Verdict, reuse: &str, challenge_acks: u64) {
    assert_eq!(outcome.verdict, verdict, "{outcome:#?}");
    assert_eq!(packets(outcome, "server_closed_first"), 1, "{outcome:#?}");
    assert_eq!(packets(outcome, reuse), 1, "{outcome:#?}");
    assert_eq!(
        packets(outcome, "challenge_acks"),
        challenge_acks,
        "{outcome:#?}"
    );
}

#[test]
fn precise() {
    let outcome = run_variant(SCENARIO, "precise");
    assert_precise(&outcome, Verdict::Reproduced, "below/reset", 3);
    assert!(
        outcome
            .checks
            .iter()
            .any(|c| c.check.contains(SEED_LINE) && c.seen == Some(1)),
        "{outcome:#?}"
    );
    snapshot(&outcome);
}

#[test]
fn precise_isn_above() {
    let outcome = run_variant(SCENARIO, "precise-isn-above");
    assert_precise(&outcome, Verdict::Fixed, "above/accepted", 0);
    snapshot(&outcome);
}

#[test]
fn precise_timestamps() {
    let outcome = run_variant(SCENARIO, "precise-timestamps");
    assert_precise(&outcome, Verdict::Fixed, "below/accepted", 0);
    snapshot(&outcome);
}

#[test]
fn precise_tw_reuse_changes_nothing() {
    let outcome = run_variant(SCENARIO, "precise-tw-reuse");
    assert_precise(&outcome, Verdict::Reproduced, "below/reset", 3);
    snapshot(&outcome);
}

#[test]
fn precise_rst() {
    let outcome = run_variant(SCENARIO, "precise-rst");
    assert_precise(&outcome, Verdict::Fixed, "below/assassinated", 1);
    snapshot(&outcome);
}

#[test]
fn load() {
    let outcome = run_variant(SCENARIO, "load");
    assert_eq!(outcome.verdict, Verdict::Reproduced, "{outcome:#?}");
    assert!(packets(&outcome, "challenge_acks") >= 1, "{outcome:#?}");
    assert!(
        outcome.client.get("connect_110").is_some_and(|n| *n >= 1),
        "{outcome:#?}"
    );
    // Every failure is a connect timeout (or a request the run's end cut).
    let other: Vec<_> = outcome
        .client
        .keys()
        .filter(|c| !["200", "connect_110", "unfinished"].contains(&c.as_str()))
        .collect();
    assert!(other.is_empty(), "{outcome:#?}");
    snapshot_load(&outcome);
}

#[test]
fn load_persistent() {
    let outcome = run_variant(SCENARIO, "load-persistent");
    assert_eq!(outcome.verdict, Verdict::Fixed, "{outcome:#?}");
    assert_eq!(packets(&outcome, "server_closed_first"), 0, "{outcome:#?}");
    assert_eq!(
        outcome.client.keys().collect::<Vec<_>>(),
        ["200"],
        "{outcome:#?}"
    );
    snapshot_load(&outcome);
}
