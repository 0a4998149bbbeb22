use super::*;
use crate::evidence::EnvoyEvidence;
use crate::programs::client::{Output, Record};
use serde_json::json;

const STAT: &str = "cluster.backend.upstream_cx_destroy_remote_with_active_rq";

/// The fixture scenario with keepalive-race's checks.
fn scenario() -> Scenario {
    let text = crate::scenario::tests::GOOD
        .replace(
            "reproduced = [{ diagnosis = \"keepalive_race\", at = \"envoy\" }]",
            &format!(
                "reproduced = [{{ diagnosis = \"keepalive_race\", at = \"envoy\" }}, \
                 {{ stat = \"{STAT}\", at = \"envoy\", value = \">= 1\" }}]"
            ),
        )
        .replace(
            "fixed = [{ client = \"failed\", count = 0 }]",
            &format!(
                "fixed = [{{ client = \"failed\", count = 0 }}, \
                 {{ diagnosis = \"*\", at = \"envoy\", count = 0 }}, \
                 {{ stat = \"{STAT}\", at = \"envoy\", value = 0 }}]"
            ),
        );
    Scenario::parse(std::path::Path::new("demo.toml"), &text).unwrap_or_else(|e| panic!("{e}"))
}

fn record(status: u16) -> Record {
    Record {
        worker: 0,
        seq: 0,
        start_ms: 0.0,
        end_ms: 1.0,
        status: Some(status),
        error: None,
        local: None,
        reused: false,
        tag: None,
        library_error: None,
    }
}

fn evidence(statuses: &[u16], diagnoses: &[Option<&str>], stat: Option<u64>) -> Evidence {
    let events = diagnoses
        .iter()
        .enumerate()
        .map(|(i, d)| json!({"event": "http", "diagnosis": d, "upstream": {"nth": i % 2 + 1}}))
        .collect();
    let envoy = EnvoyEvidence {
        events,
        stats: stat.map(|v| (STAT.to_string(), v)).into_iter().collect(),
        ..Default::default()
    };
    Evidence {
        clients: [(
            "client".to_string(),
            Output {
                records: statuses.iter().map(|s| record(*s)).collect(),
                summary: None,
            },
        )]
        .into(),
        envoys: [("envoy".to_string(), envoy)].into(),
        ..Default::default()
    }
}

fn verdict(evidence: &Evidence) -> Outcome {
    let scenario = scenario();
    outcome(&scenario, &scenario.variants[0], evidence, Duration::ZERO)
}

#[test]
fn the_diagnosis_and_envoys_stat_together_reproduce() {
    let seen = verdict(&evidence(
        &[200, 503],
        &[None, Some("keepalive_race")],
        Some(1),
    ));
    assert_eq!(seen.verdict, Verdict::Reproduced);
    assert_eq!(seen.diagnoses["envoy"]["keepalive_race"], 1);
    assert_eq!(seen.reuse["envoy"]["fresh"], 1);
    assert_eq!(seen.reuse["envoy"]["reused"], 1);
    assert_eq!(seen.stats[&format!("envoy:{STAT}")], 1);
}

#[test]
fn the_diagnosis_without_envoys_stat_is_unexpected_and_says_which_check() {
    let seen = verdict(&evidence(
        &[200, 503],
        &[None, Some("keepalive_race")],
        Some(0),
    ));
    assert_eq!(seen.verdict, Verdict::Unexpected);
    let failed = seen.failed_checks();
    assert_eq!(failed.len(), 1, "{failed:#?}");
    assert_eq!(failed[0].holds, Truth::False);
    assert!(failed[0].check.starts_with("stat "), "{failed:#?}");
    let line = crate::outputs::human::line(&seen);
    assert!(
        line.contains(&format!("stat {STAT} at envoy >= 1: false (seen 0)")),
        "{line}"
    );
}

#[test]
fn all_ok_and_nothing_diagnosed_is_fixed() {
    let seen = verdict(&evidence(&[200, 200], &[None, None], Some(0)));
    assert_eq!(seen.verdict, Verdict::Fixed);
}

#[test]
fn another_failure_is_unexpected() {
    let seen = verdict(&evidence(
        &[200, 503],
        &[None, Some("connect_timeout")],
        Some(0),
    ));
    assert_eq!(seen.verdict, Verdict::Unexpected);
}

#[test]
fn missing_evidence_is_unknown_never_true() {
    // No requests at all: "no failed request" cannot be claimed.
    let seen = verdict(&evidence(&[], &[], Some(0)));
    assert_eq!(seen.verdict, Verdict::Unexpected);
    let client = seen
        .checks
        .iter()
        .find(|c| c.check.starts_with("client failed"))
        .unwrap();
    assert_eq!(client.holds, Truth::Unknown);
    // Envoy's stat missing (a misspelt name, say): unknown, not 0.
    let seen = verdict(&evidence(&[200], &[None], None));
    assert_eq!(seen.verdict, Verdict::Unexpected);
    let stat = seen
        .checks
        .iter()
        .find(|c| c.check.starts_with("stat"))
        .unwrap();
    assert_eq!(stat.holds, Truth::Unknown);
    assert!(
        stat.why.as_deref().unwrap().contains("no stat"),
        "{stat:#?}"
    );
    // No evidence from the Envoy at all.
    let mut gone = evidence(&[200], &[None], Some(0));
    gone.envoys.clear();
    assert_eq!(verdict(&gone).verdict, Verdict::Unexpected);
}

#[test]
fn false_beats_unknown_beats_true() {
    use Truth::*;
    assert_eq!(all([True, Unknown, False].into_iter()), False);
    assert_eq!(all([True, Unknown].into_iter()), Unknown);
    assert_eq!(all([True, True].into_iter()), True);
    assert_eq!(all([].into_iter()), True);
}

#[test]
fn access_log_patterns_match_word_by_word() {
    let entry = json!({"code": "503", "flags": "UC", "details": "upstream_reset_before_response_started{connection_termination}"});
    assert!(access_log_matches(&entry, "503 UC"));
    assert!(access_log_matches(&entry, "* UC *"));
    assert!(!access_log_matches(&entry, "503 UF"));
    assert!(!access_log_matches(&entry, "200"));
}

#[test]
fn conn_events_count_as_diagnoses_too() {
    let mut seen = evidence(&[200], &[None], Some(0));
    let envoy = seen.envoys.get_mut("envoy").unwrap();
    envoy
        .events
        .push(json!({"event": "conn", "diagnosis": "sniff_fallthrough"}));
    let outcome = verdict(&seen);
    assert_eq!(outcome.diagnoses["envoy"]["sniff_fallthrough"], 1);
    // So "nothing diagnosed" does not hold.
    assert_eq!(outcome.verdict, Verdict::Unexpected);
}

fn check(text: &str) -> Check {
    toml::from_str::<toml::Table>(&format!("c = {text}")).unwrap()["c"]
        .clone()
        .try_into()
        .unwrap()
}

#[test]
fn packets_are_unknown_until_captured_and_count_what_the_node_served() {
    use crate::evidence::packet_sequence::tests::seed_capture;
    use crate::evidence::Packets;
    let challenge = check(r#"{ packets = "challenge_acks", at = "server" }"#);
    let seed_line = ">S <S. >. >P. <. <P. <F. >. >F. <. >S <. >S <. >S <. >R.";
    let conversation = check(&format!(
        r#"{{ conversation = "{seed_line}", at = "server" }}"#
    ));
    let mut seen = evidence(&[200], &[], Some(0));
    assert_eq!(
        measure(&challenge, &seen, None),
        Err("no packet capture at `server`".into())
    );
    // The seed's capture, taken at its server.
    let at = |ip: [u8; 4]| Packets {
        addresses: vec![ip.into()],
        segments: seed_capture(),
        pcap: Vec::new(),
    };
    seen.packets.insert("server".into(), at([10, 0, 2, 10]));
    assert_eq!(measure(&challenge, &seen, None), Ok(3));
    assert_eq!(measure(&conversation, &seen, None), Ok(1));
    let reset = check(r#"{ packets = "below/reset", at = "server" }"#);
    assert_eq!(measure(&reset, &seen, None), Ok(1));
    let accepted = check(r#"{ packets = "above/accepted", at = "server" }"#);
    assert_eq!(measure(&accepted, &seen, None), Ok(0));
    // The same packets at a node that was not their server: nothing served.
    seen.packets.insert("server".into(), at([10, 0, 2, 2]));
    assert_eq!(measure(&challenge, &seen, None), Ok(0));
    assert_eq!(measure(&conversation, &seen, None), Ok(0));
    // One segment less: not the seed's line.
    let mut short = at([10, 0, 2, 10]);
    short.segments.pop();
    seen.packets.insert("server".into(), short);
    assert_eq!(measure(&conversation, &seen, None), Ok(0));
}

#[test]
fn access_log_classes_drop_the_peer_address() {
    assert_eq!(
        without_address(
            "upstream_reset_before_response_started{remote_connection_failure|\
             immediate_connect_error:_Cannot_assign_requested_address|remote_address:172.18.0.2:8080}"
        ),
        "upstream_reset_before_response_started{remote_connection_failure|\
         immediate_connect_error:_Cannot_assign_requested_address|remote_address:*}"
    );
    assert_eq!(without_address("via_upstream"), "via_upstream");
}

/// The fixture with a fault scheduled at 10 s and timeline checks: broken
/// = no recovery within the run, fixed = back within 8 s.
fn timeline_scenario() -> Scenario {
    let text = crate::scenario::tests::GOOD
        .replace("delay_ms = 200 }]", "delay_ms = 200, at_ms = 10000 }]")
        .replace(
            "reproduced = [{ diagnosis = \"keepalive_race\", at = \"envoy\" }]",
            "reproduced = [{ timeline = \"recovery_s\", value = \"never\" }, \
             { timeline = \"during.max_ms\", value = \">= 10000\" }]",
        )
        .replace(
            "fixed = [{ client = \"failed\", count = 0 }]",
            "fixed = [{ timeline = \"recovery_s\", value = \"<= 8\" }]",
        );
    Scenario::parse(std::path::Path::new("demo.toml"), &text).unwrap_or_else(|e| panic!("{e}"))
}

/// Two workers at 10 requests/s for 30 s; worker 1's request at the fault
/// (10 s) takes `hang_ms` (cut at the run's end).
fn hung_worker(hang_ms: f64) -> Evidence {
    let mut records = Vec::new();
    for worker in 0..2 {
        let mut t = 0.0;
        while t < 30_000.0 {
            let mut r = record(200);
            (r.worker, r.start_ms, r.end_ms) = (worker, t, t + 5.0);
            if worker == 1 && (10_000.0..10_100.0).contains(&t) {
                r.end_ms = (t + hang_ms).min(30_000.0);
                r.status = None;
                r.error = Some(crate::programs::http1::ErrorKind::Timeout);
                t = r.end_ms.max(t + 100.0);
            } else {
                t += 100.0;
            }
            records.push(r);
        }
    }
    let mut seen = evidence(&[], &[], Some(0));
    seen.clients.get_mut("client").unwrap().records = records;
    seen
}

fn timeline_verdict(evidence: &Evidence) -> Outcome {
    let scenario = timeline_scenario();
    outcome(&scenario, &scenario.variants[0], evidence, Duration::ZERO)
}

#[test]
fn a_worker_hung_to_the_end_never_recovers() {
    let seen = timeline_verdict(&hung_worker(60_000.0));
    assert_eq!(seen.verdict, Verdict::Reproduced, "{:#?}", seen.checks);
    let recovery = &seen.checks[0];
    assert_eq!(recovery.seen, Some(crate::evidence::timeline::NEVER));
    assert!(
        recovery.describe().ends_with("(seen never)"),
        "{recovery:?}"
    );
    let timeline = seen.timeline.as_ref().expect("a timeline");
    assert_eq!(timeline.fault_s, 10);
    assert!(crate::outputs::human::line(&seen).contains("not recovered within the run"));
}

#[test]
fn a_worker_that_gives_up_recovers_and_is_fixed() {
    let seen = timeline_verdict(&hung_worker(6_000.0));
    assert_eq!(seen.verdict, Verdict::Fixed, "{:#?}", seen.checks);
    let recovery = seen
        .checks
        .iter()
        .find(|c| c.list == Verdict::Fixed)
        .unwrap();
    assert_eq!(recovery.seen, Some(6));
}

#[test]
fn a_recovery_later_than_the_bound_is_neither() {
    // Back after 12 s: recovered (so not "never"), but not within 8 s.
    let seen = timeline_verdict(&hung_worker(12_000.0));
    assert_eq!(seen.verdict, Verdict::Unexpected, "{:#?}", seen.checks);
    assert_eq!(seen.failed_checks().len(), 1);
}

#[test]
fn a_timeline_without_requests_is_unknown() {
    let seen = timeline_verdict(&evidence(&[], &[], Some(0)));
    assert_eq!(seen.verdict, Verdict::Unexpected);
    assert!(seen.timeline.is_none());
    assert!(seen.checks.iter().all(|c| c.holds == Truth::Unknown));
}

#[test]
fn stability_ignores_timings_but_not_whether_they_hold() {
    let a = timeline_verdict(&hung_worker(6_000.0));
    let b = timeline_verdict(&hung_worker(6_050.0));
    assert_ne!(a.timeline, b.timeline);
    let lines = crate::outputs::human::stability(&[a.clone(), b]);
    assert!(lines[0].contains("STABLE"), "{lines:?}");
    let c = timeline_verdict(&hung_worker(60_000.0));
    let lines = crate::outputs::human::stability(&[a, c]);
    assert!(lines[0].contains("FLAKY"), "{lines:?}");
}

#[test]
fn a_scenario_without_timeline_checks_or_scheduled_faults_has_no_timeline() {
    let seen = verdict(&evidence(&[200], &[None], Some(0)));
    assert!(seen.timeline.is_none());
    let json = serde_json::to_value(&seen).unwrap();
    assert!(json.get("timeline").is_none(), "absent, not null: {json}");
}

/// Issue 17's report line for a library client: which side closed (the
/// target, with Envoy's counter that says why) and which side wrote into
/// it (the client, after how long idle, in its library's words).
#[test]
fn a_pooled_client_failure_says_which_side_closed_and_which_wrote() {
    let path = crate::paths::root().join("scenarios/client-pool-race.toml");
    let scenario = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let variant = scenario
        .variants
        .iter()
        .find(|v| v.name == "reqwest-envoy-idle")
        .unwrap();
    let text = "error sending request for url (http://envoy:10000/): client error \
                (SendRequest): connection error: Connection reset by peer (os error 104)";
    let ok = Record {
        end_ms: 2.0,
        ..record(200)
    };
    let failed = Record {
        seq: 1,
        start_ms: 9_002.0,
        end_ms: 9_003.0,
        status: None,
        error: Some(crate::programs::http1::ErrorKind::Reset),
        reused: true,
        library_error: Some(text.to_string()),
        ..record(200)
    };
    let with = |idle_stat: u64| Evidence {
        clients: [(
            "client".to_string(),
            Output {
                records: vec![ok.clone(), failed.clone()],
                summary: None,
            },
        )]
        .into(),
        envoys: [(
            "envoy".to_string(),
            EnvoyEvidence {
                stats: [(
                    "http.main.downstream_cx_idle_timeout".to_string(),
                    idle_stat,
                )]
                .into(),
                ..Default::default()
            },
        )]
        .into(),
        ..Default::default()
    };
    let said = pooled_client_explanation(variant, &with(1)).unwrap();
    assert!(said.contains("after 9.0 s idle"), "{said}");
    assert!(said.contains("Connection reset by peer"), "{said}");
    assert!(
        said.contains(
            "envoy had closed them for idle_timeout (http.main.downstream_cx_idle_timeout = 1)"
        ),
        "{said}"
    );
    assert!(
        said.contains("the client wrote into the closed connection"),
        "{said}"
    );
    // Without Envoy's counter it still says who closed, not why.
    let bare = pooled_client_explanation(variant, &with(0)).unwrap();
    assert!(bare.contains("envoy had closed them and"), "{bare}");
    // A fresh connection that failed is not this failure.
    let fresh = Evidence {
        clients: [(
            "client".to_string(),
            Output {
                records: vec![Record {
                    reused: false,
                    ..failed.clone()
                }],
                summary: None,
            },
        )]
        .into(),
        ..with(1)
    };
    assert_eq!(pooled_client_explanation(variant, &fresh), None);
}
