//! connlab as a failures-only wasm access logger (`connlab_log`), in the
//! real Envoy 1.40: Envoy's CEL access-log filter lets only failed or
//! retried requests into the VM, so healthy requests are never counted,
//! and a failure is judged by the same rules without the connection's
//! history (a reset on a reused connection is `likely` a keep-alive race,
//! never `confirmed`, and never "a fresh connection").

use std::time::Duration;

use connlab::envoy::config::{cluster, failures_only_logger, route, FAILURES_ONLY};
use connlab_tests::envoy_process::EnvoyProcess;
use connlab_tests::{
    any_local_port, backend, closed_port, filter_wasm, http1, logger_envoy, raw_servers,
};
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(5);

fn connect(addr: std::net::SocketAddr) -> http1::Conn {
    logger_envoy::connect(addr, TIMEOUT)
}

/// The counter after its next flush (connlab hands counters to Envoy on
/// its one-second tick; a logger's VM ticks too).
fn counter_after_flush(envoy: &EnvoyProcess, name: &str) -> u64 {
    std::thread::sleep(Duration::from_millis(2_500));
    envoy.stat(&format!("wasmcustom.{name}"))
}

#[test]
fn only_failed_requests_reach_the_logger_and_are_judged_without_history() {
    let healthy =
        backend::spawn(any_local_port(), backend::Behaviour::default()).expect("start backend");
    let racing = raw_servers::reset_reused_connection();
    let logger = failures_only_logger(&filter_wasm(), "connlab_log", None);
    let routes = vec![
        route("/dead", "dead"),
        route("/race", "racing"),
        route("/", "healthy"),
    ];
    let clusters = vec![
        cluster("healthy", &[healthy.addr()]),
        cluster("racing", &[racing.addr()]),
        cluster("dead", &[closed_port()]),
    ];
    let (envoy, addr) = logger_envoy::start(logger, routes, clusters);

    // Healthy keep-alive traffic: the VM is never entered.
    let mut conn = connect(addr);
    for _ in 0..20 {
        assert_eq!(conn.get("/").expect("healthy request").status, 200);
    }
    assert_eq!(
        counter_after_flush(&envoy, "connlab_http_requests_total"),
        0,
        "a healthy request reached the logger\n{}",
        envoy.log_tail()
    );
    assert!(envoy.events().is_empty(), "{:#?}", envoy.events());

    // A refused connect: the CEL filter lets it through (UF), judged as the
    // HTTP filter judges it.
    assert_eq!(conn.get("/dead").expect("503 from Envoy").status, 503);
    let events = envoy.wait_events(1, TIMEOUT);
    assert_eq!(events.len(), 1, "{events:#?}\n{}", envoy.log_tail());
    assert_eq!(
        events[0]["diagnosis"], "connect_refused",
        "{:#?}",
        events[0]
    );
    assert_eq!(events[0]["confidence"], "confirmed", "{:#?}", events[0]);

    // A keep-alive race made certain: the backend answers the first request
    // on a connection and resets it when the next arrives. The first is
    // healthy (not logged); the second fails with UC on the reused
    // connection, whose history the logger never saw.
    let mut raced = connect(addr);
    assert_eq!(raced.get("/race").expect("first request").status, 200);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(raced.get("/race").expect("503 from Envoy").status, 503);
    let events = envoy.wait_events(2, TIMEOUT);
    assert_eq!(events.len(), 2, "{events:#?}\n{}", envoy.log_tail());
    let race = &events[1];
    assert_eq!(race["flags"], "UC", "{race:#?}");
    assert_eq!(race["diagnosis"], "keepalive_race", "{race:#?}");
    assert_eq!(race["confidence"], "likely", "{race:#?}");
    assert_eq!(race["upstream"]["history"], "unknown", "{race:#?}");
    assert_eq!(race["upstream"]["nth"], Value::Null, "{race:#?}");
    let explain = race["explain"].as_str().unwrap_or_default();
    assert!(!explain.contains("fresh connection"), "{explain}");

    // Only the two failures were counted; no reuse histogram (no history).
    assert_eq!(
        counter_after_flush(&envoy, "connlab_http_requests_total"),
        2
    );
    assert_eq!(
        envoy.stat("wasmcustom.connlab_http_diagnosis_connect_refused_total"),
        1
    );
    assert_eq!(
        envoy.stat("wasmcustom.connlab_upstream_nth_bucket_le_inf"),
        0
    );
}

/// The filter expression is exactly the filter's idea of healthy: a retry
/// that ended in 200 (no flag, two attempts) is let through, and judged.
#[test]
fn a_retry_that_hid_a_failure_reaches_the_logger() {
    assert!(FAILURES_ONLY.contains("request_attempt_count != 1u"));
    let racing = raw_servers::reset_reused_connection();
    let logger = failures_only_logger(&filter_wasm(), "connlab_log", None);
    let mut retried = route("/", "racing");
    retried["route"]["retry_policy"] = serde_json::json!({"retry_on": "reset", "num_retries": 1});
    let clusters = vec![cluster("racing", &[racing.addr()])];
    let (envoy, addr) = logger_envoy::start(logger, vec![retried], clusters);
    let mut conn = connect(addr);
    assert_eq!(conn.get("/").expect("first request").status, 200);
    std::thread::sleep(Duration::from_millis(200));
    // Reset on the reused connection, retried on a new one: 200.
    assert_eq!(conn.get("/").expect("retried request").status, 200);
    let events = envoy.wait_events(1, TIMEOUT);
    assert_eq!(events.len(), 1, "{events:#?}\n{}", envoy.log_tail());
    assert_eq!(events[0]["attempts"], 2, "{:#?}", events[0]);
    assert_eq!(
        events[0]["diagnosis"], "retried_then_ok",
        "{:#?}",
        events[0]
    );
}
