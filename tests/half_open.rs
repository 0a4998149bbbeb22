//! half-open (seed 002) end to end in Docker: a JMeter-like client behind a
//! DNAT vip, two gateway Envoys (node A, node B) each in front of a backend,
//! node B blackholed mid-run (iptables DROP both ways: silence). Each
//! variant asserts the seed's signature from the client's timeline — B's
//! share of the throughput gone, the median unmoved, hung requests, the time
//! to recover — and the gateway's own (504 UT, 503 UC), then snapshots the
//! stable part of the Outcome: classes and counts, never timings.

use connlab::evidence::timeline::Timeline;
use connlab::outcome::{Outcome, Verdict};
use connlab_tests::lab::run_variant;
use insta::internals::Content;

const SCENARIO: &str = "half-open";

/// The Outcome without what varies between runs: wall time, explanation,
/// the timeline's numbers, what timing checks saw. With `checks_only`
/// (the gateway variants, whose counts follow Envoy's round-robin start and
/// the health checker's phase), only the verdict and which checks held.
fn snapshot(outcome: &Outcome, checks_only: bool) {
    let mut settings = insta::Settings::clone_current();
    settings.add_redaction(".wall_ms", "[wall]");
    settings.add_redaction(".explain", "[explain]");
    settings.add_redaction(".timeline", "[timeline]");
    if checks_only {
        for varies in [
            ".requests",
            ".client",
            ".envoy",
            ".diagnoses",
            ".reuse",
            ".stats",
        ] {
            settings.add_redaction(varies, "[varies]");
        }
        settings.add_dynamic_redaction(".checks[]", |value, _| {
            redact_field(value, "seen", "[varies]")
        });
    } else {
        settings.add_dynamic_redaction(".checks[]", |value, _| timing_seen_redacted(value));
    }
    settings.bind(|| {
        insta::assert_yaml_snapshot!(format!("{SCENARIO}-{}", outcome.variant), outcome);
    });
}

fn redact_field(value: Content, name: &str, with: &str) -> Content {
    match value {
        Content::Struct(n, fields) => Content::Struct(
            n,
            fields
                .into_iter()
                .map(|(k, v)| {
                    if k == name {
                        (k, Content::from(with))
                    } else {
                        (k, v)
                    }
                })
                .collect(),
        ),
        other => other,
    }
}

/// A check on a timeline figure keeps whether it held, not what it saw.
fn timing_seen_redacted(value: Content) -> Content {
    let timing = match &value {
        Content::Struct(_, fields) => fields
            .iter()
            .any(|(k, v)| *k == "check" && v.as_str().is_some_and(|c| c.starts_with("timeline "))),
        _ => false,
    };
    if timing {
        redact_field(value, "seen", "[timing]")
    } else {
        value
    }
}

fn client(outcome: &Outcome, class: &str) -> u64 {
    outcome.client.get(class).copied().unwrap_or(0)
}

fn timeline(outcome: &Outcome) -> &Timeline {
    outcome.timeline.as_ref().expect("a timeline")
}

/// B's four connections hung to the bound: half the throughput gone for
/// good, while the median and the success rate barely moved.
fn assert_hung(outcome: &Outcome) {
    assert_eq!(outcome.verdict, Verdict::Reproduced, "{outcome:#?}");
    assert_eq!(client(outcome, "unfinished"), 4, "{outcome:#?}");
    let t = timeline(outcome);
    assert_eq!(t.recovered_after_s, None, "{t:#?}");
    assert!(t.dip_pct <= 60.0, "{t:#?}");
    assert!(
        t.during.p50_ms < 100.0 && t.during.max_ms >= 10_000.0,
        "{t:#?}"
    );
}

/// B's four workers gave up (`timeout`: a read timeout or the kernel's
/// ETIMEDOUT), reconnected through the vip to A, and throughput came back.
fn assert_recovered(outcome: &Outcome, within_s: u64) {
    assert_eq!(outcome.verdict, Verdict::Fixed, "{outcome:#?}");
    assert_eq!(client(outcome, "unfinished"), 0, "{outcome:#?}");
    assert_eq!(client(outcome, "timeout"), 4, "{outcome:#?}");
    let t = timeline(outcome);
    assert!(t.recovered_after_s.is_some_and(|s| s <= within_s), "{t:#?}");
}

#[test]
fn broken() {
    let outcome = run_variant(SCENARIO, "broken");
    assert_hung(&outcome);
    snapshot(&outcome, false);
}

#[test]
fn read_timeout() {
    let outcome = run_variant(SCENARIO, "read-timeout");
    assert_recovered(&outcome, 9);
    snapshot(&outcome, false);
}

#[test]
fn user_timeout() {
    let outcome = run_variant(SCENARIO, "user-timeout");
    assert_recovered(&outcome, 9);
    snapshot(&outcome, false);
}

#[test]
fn the_kernel_bound_shortened() {
    let outcome = run_variant(SCENARIO, "kernel-bound");
    assert_recovered(&outcome, 16);
    // Not before the kernel's 12.6 s of retransmits.
    assert!(timeline(&outcome).during.max_ms >= 12_600.0, "{outcome:#?}");
    snapshot(&outcome, false);
}

#[test]
fn keepalive_does_not_help_in_flight() {
    let outcome = run_variant(SCENARIO, "keepalive-in-flight");
    assert_hung(&outcome);
    snapshot(&outcome, false);
}

#[test]
fn keepalive_helps_when_idle() {
    let outcome = run_variant(SCENARIO, "keepalive-idle");
    assert_eq!(outcome.verdict, Verdict::Fixed, "{outcome:#?}");
    assert_eq!(client(&outcome, "timeout"), 4, "{outcome:#?}");
    assert_eq!(client(&outcome, "200"), 20, "{outcome:#?}");
    snapshot(&outcome, false);
}

#[test]
fn idle_without_keepalive_hangs() {
    let outcome = run_variant(SCENARIO, "idle-no-keepalive");
    assert_eq!(outcome.verdict, Verdict::Reproduced, "{outcome:#?}");
    assert_eq!(client(&outcome, "unfinished"), 4, "{outcome:#?}");
    snapshot(&outcome, false);
}

fn gateway_classes(outcome: &Outcome, prefix: &str) -> u64 {
    outcome.envoy["gwa"]
        .iter()
        .filter(|(class, _)| class.starts_with(prefix))
        .map(|(_, n)| n)
        .sum()
}

#[test]
fn gateway_route_timeout() {
    let outcome = run_variant(SCENARIO, "gateway-route-timeout");
    assert_eq!(outcome.verdict, Verdict::Fixed, "{outcome:#?}");
    assert!(
        gateway_classes(&outcome, "504 UT response_timeout") >= 1,
        "{outcome:#?}"
    );
    assert!(
        outcome.diagnoses["gwa"].contains_key("upstream_timeout"),
        "{outcome:#?}"
    );
    snapshot(&outcome, true);
}

#[test]
fn gateway_user_timeout() {
    let outcome = run_variant(SCENARIO, "gateway-user-timeout");
    assert_eq!(outcome.verdict, Verdict::Fixed, "{outcome:#?}");
    let uc = "503 UC upstream_reset_before_response_started{connection_termination}";
    assert!(gateway_classes(&outcome, uc) >= 1, "{outcome:#?}");
    let diagnoses = &outcome.diagnoses["gwa"];
    assert!(diagnoses.contains_key("upstream_dead_peer"), "{outcome:#?}");
    assert!(!diagnoses.contains_key("keepalive_race"), "{outcome:#?}");
    snapshot(&outcome, true);
}

#[test]
fn gateway_keepalive_does_not_help_in_flight() {
    let outcome = run_variant(SCENARIO, "gateway-keepalive");
    assert_eq!(outcome.verdict, Verdict::Reproduced, "{outcome:#?}");
    assert!(client(&outcome, "unfinished") >= 1, "{outcome:#?}");
    assert_eq!(gateway_classes(&outcome, "503 UC"), 0, "{outcome:#?}");
    snapshot(&outcome, true);
}
