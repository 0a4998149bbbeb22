//! The HTTP filter's diagnosis codes, each caused for real: the real Envoy
//! 1.40 binary with connlab_http on loopback, real sockets, real failures
//! (a closed port, a pinned source port, a slow backend, resets), and the
//! code read back from the filter's event. Each test also checks the flag
//! names the filter decoded against Envoy's own `%RESPONSE_FLAGS%`.

use std::time::Duration;

use connlab::envoy::config::{cluster, route, upstream_tls};
use connlab_tests::filter_proxy::Proxy;
use connlab_tests::{
    any_local_port, backend, closed_port, pinnable_port, raw_servers, slow_backend,
};
use serde_json::{json, Value};

fn the_route() -> Value {
    route("/", "upstream")
}

fn assert_diagnosis(proxy: &Proxy, code: &str, status: u16, flags: &str) -> Value {
    proxy.assert_diagnosis(code, status, flags)
}

#[test]
fn connect_refused_from_a_closed_port() {
    let proxy = Proxy::start(
        json!({}),
        the_route(),
        cluster("upstream", &[closed_port()]),
    );
    assert_eq!(proxy.get("/").status, 503);
    let event = assert_diagnosis(&proxy, "connect_refused", 503, "UF");
    let failure = event["failure"].as_str().unwrap_or_default();
    assert!(failure.contains("Connection refused"), "{event:#?}");
}

/// Envoy whose upstream connections all leave from one pinned local port
/// (SO_REUSEADDR, as Cilium's proxy set it) to a backend that answers after
/// `delay`; the port.
fn pinned_proxy(delay: Duration) -> (Proxy, u16, backend::Running) {
    let server = slow_backend(delay);
    let mut upstream = cluster("upstream", &[server.addr()]);
    let pinned = pinnable_port();
    upstream["upstream_bind_config"] = json!({
        "source_address": {"address": "127.0.0.1", "port_value": pinned},
        "socket_options": [{"level": 1, "name": 2, "int_value": 1, "state": "STATE_PREBIND"}],
    });
    (
        Proxy::start(json!({}), the_route(), upstream),
        pinned,
        server,
    )
}

/// The second of two concurrent requests collided with the first's
/// connection (EADDRNOTAVAIL, errno 99) and the explanation names the
/// pinned port.
fn assert_pinned_collision(proxy: &Proxy, pinned: u16) {
    // Normally the first request gets the connection; on a stalled machine
    // the second may win.
    assert_eq!(
        proxy.concurrent_statuses(2, Duration::from_millis(150)),
        [200, 503]
    );
    let event = assert_diagnosis(proxy, "source_address_conflict", 503, "UF");
    let failure = event["failure"].as_str().unwrap_or_default();
    assert!(
        failure.contains("Cannot assign requested address"),
        "{event:#?}"
    );
    let explain = event["explain"].as_str().unwrap_or_default();
    assert!(
        explain.contains(&format!("local port {pinned}")) && explain.contains("pinned"),
        "{explain}"
    );
    assert!(!explain.contains("ran out"), "{explain}");
}

#[test]
fn source_address_conflict_from_a_pinned_source_port() {
    // One request first: the filter sees the pinned port on a finished
    // connection to that host, and Envoy keeps it pooled; then two at once
    // need a second connection from the same port.
    let (proxy, pinned, _server) = pinned_proxy(Duration::from_millis(500));
    let mut first = proxy.connect();
    assert_eq!(first.get("/").expect("first request").status, 200);
    assert_pinned_collision(&proxy, pinned);
}

#[test]
fn source_address_conflict_names_a_pinned_port_held_by_a_request_in_flight() {
    // The source-port-reuse scenario's `concurrent` variant: no request has
    // finished yet; the first one's connection, still waiting for its
    // answer, holds the pinned port when the second connect() fails. The
    // filter reads that connection's address from the request in flight.
    let (proxy, pinned, _server) = pinned_proxy(Duration::from_millis(800));
    assert_pinned_collision(&proxy, pinned);
}

#[test]
fn upstream_timeout_from_a_slow_backend() {
    let server = slow_backend(Duration::from_secs(3));
    let mut route = the_route();
    route["route"]["timeout"] = json!("0.3s");
    let proxy = Proxy::start(json!({}), route, cluster("upstream", &[server.addr()]));
    assert_eq!(proxy.get("/").status, 504);
    assert_diagnosis(&proxy, "upstream_timeout", 504, "UT");
}

#[test]
fn retried_then_ok_when_a_retry_hides_a_reset() {
    let server = raw_servers::reset_first_connection();
    let mut route = the_route();
    route["route"]["retry_policy"] = json!({"retry_on": "reset", "num_retries": 2});
    let proxy = Proxy::start(json!({}), route, cluster("upstream", &[server.addr()]));
    assert_eq!(
        proxy.get("/").status,
        200,
        "the client never sees the reset"
    );
    let event = assert_diagnosis(&proxy, "retried_then_ok", 200, "");
    assert_eq!(event["attempts"], 2, "{event:#?}");
}

#[test]
fn retried_then_failed_when_retries_on_5xx_run_out() {
    let server = raw_servers::always_503();
    let mut route = the_route();
    route["route"]["retry_policy"] = json!({"retry_on": "5xx", "num_retries": 1});
    let proxy = Proxy::start(json!({}), route, cluster("upstream", &[server.addr()]));
    assert_eq!(proxy.get("/").status, 503);
    // URX: Envoy's "retry limit exceeded" bit (0x8000), checked against
    // %RESPONSE_FLAGS%.
    let event = assert_diagnosis(&proxy, "retried_then_failed", 503, "URX");
    assert_eq!(event["attempts"], 2, "{event:#?}");
}

#[test]
fn upstream_reset_on_a_fresh_connection() {
    let server = raw_servers::reset_every_request();
    let proxy = Proxy::start(
        json!({}),
        the_route(),
        cluster("upstream", &[server.addr()]),
    );
    assert_eq!(proxy.get("/").status, 503);
    let event = assert_diagnosis(&proxy, "upstream_reset", 503, "UC");
    assert_eq!(event["upstream"]["nth"], 1, "{event:#?}");
}

#[test]
fn keepalive_race_when_a_reused_idle_connection_is_reset() {
    // The backend answers once, then resets the kept-alive connection when
    // the next request arrives on it, 300 ms later: the signature of a
    // keep-alive race (here without the race: the reset is certain). The
    // configured server timeout shows the explanation naming the match.
    let server = raw_servers::reset_reused_connection();
    let config = json!({"events": "all", "server_idle_timeouts": {"test-server": 300},
                        "idle_match_before_ms": 200, "idle_match_after_ms": 2000});
    let proxy = Proxy::start(config, the_route(), cluster("upstream", &[server.addr()]));
    let mut conn = proxy.connect();
    assert_eq!(conn.get("/").expect("first request").status, 200);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(conn.get("/").expect("second request").status, 503);
    let events = proxy.events(2);
    let (first, second) = (&events[0], &events[1]);
    assert_eq!(first["diagnosis"], Value::Null, "{first:#?}");
    assert_eq!(first["upstream"]["nth"], 1);
    assert_eq!(second["diagnosis"], "keepalive_race", "{second:#?}");
    assert_eq!(second["flags"], "UC");
    assert_eq!(
        second["upstream"]["local"], first["upstream"]["local"],
        "the same pooled connection"
    );
    assert_eq!(second["upstream"]["nth"], 2);
    let idle = second["upstream"]["idle_ms"].as_u64().unwrap_or_default();
    assert!(idle >= 300, "{second:#?}");
    let explain = second["explain"].as_str().unwrap_or_default();
    assert!(
        explain.contains("consistent with test-server's default keep-alive timeout of 300 ms"),
        "{explain}"
    );
    assert!(
        second["details"]
            .as_str()
            .unwrap_or_default()
            .starts_with("upstream_reset_before_response_started"),
        "{second:#?}"
    );
    let log = proxy.access_log(2);
    assert_eq!(log[1], "503 flags=UC state=keepalive_race");
}

#[test]
fn tls_handshake_failed_towards_a_plaintext_upstream() {
    // A server-first plaintext protocol: its greeting is not a ServerHello.
    // (A silent plaintext server would make it a connect_timeout instead:
    // the cluster's connect_timeout covers the TLS handshake.)
    let server = backend::spawn(
        any_local_port(),
        backend::Behaviour {
            banner: Some("220 plaintext service ready".into()),
            ..Default::default()
        },
    )
    .expect("backend");
    let mut upstream = cluster("upstream", &[server.addr()]);
    upstream["transport_socket"] = upstream_tls();
    let proxy = Proxy::start(json!({}), the_route(), upstream);
    assert_eq!(proxy.get("/").status, 503);
    let event = assert_diagnosis(&proxy, "tls_handshake_failed", 503, "UF");
    assert!(
        event["failure"].as_str().is_some_and(|f| f.contains("TLS")),
        "{event:#?}"
    );
}

#[test]
fn connect_timeout_to_a_listener_whose_backlog_is_full() {
    let blackhole = raw_servers::full_backlog();
    let mut upstream = cluster("upstream", &[blackhole.addr]);
    upstream["connect_timeout"] = json!("0.25s");
    let proxy = Proxy::start(json!({}), the_route(), upstream);
    assert_eq!(proxy.get("/").status, 503);
    assert_diagnosis(&proxy, "connect_timeout", 503, "UF");
}

/// Envoy in front of one host that fails its TCP health check (nothing
/// listens), with the cluster's panic threshold at `panic_percent`; the
/// answer to one request, once Envoy has seen the check fail.
fn behind_a_failed_health_check(panic_percent: u32) -> (Proxy, u16) {
    let mut upstream = cluster("upstream", &[closed_port()]);
    upstream["health_checks"] = json!([{
        "timeout": "0.2s", "interval": "0.1s", "unhealthy_threshold": 1,
        "healthy_threshold": 1, "tcp_health_check": {},
    }]);
    upstream["common_lb_config"] = json!({"healthy_panic_threshold": {"value": panic_percent}});
    let proxy = Proxy::start(json!({}), the_route(), upstream);
    let failures = connlab_tests::wait_stat(
        &proxy.envoy,
        "cluster.upstream.health_check.failure",
        1,
        Duration::from_secs(5),
    );
    assert!(failures >= 1, "the health check failed");
    let status = proxy.get("/").status;
    (proxy, status)
}

#[test]
fn no_healthy_upstream_when_every_host_failed_its_health_check() {
    // Panic threshold 0: Envoy never falls back to unhealthy hosts.
    let (proxy, status) = behind_a_failed_health_check(0);
    assert_eq!(status, 503);
    let event = assert_diagnosis(&proxy, "no_healthy_upstream", 503, "UH");
    let explain = event["explain"].as_str().unwrap_or_default();
    assert!(explain.contains("cluster `upstream`"), "{explain}");
}

#[test]
fn an_unhealthy_host_tried_in_panic_mode_is_not_no_healthy_upstream() {
    // The nearest case: the same failed host, Envoy's default panic
    // threshold (50 %): with no healthy host Envoy routes to all of them,
    // so the request is tried and refused (UF), not rejected (UH).
    let (proxy, status) = behind_a_failed_health_check(50);
    assert_eq!(status, 503);
    assert_diagnosis(&proxy, "connect_refused", 503, "UF");
}
