//! A dead peer, caused for real: real Envoy 1.40 with connlab_http, an
//! upstream cluster whose sockets carry TCP_USER_TIMEOUT (socket option
//! level 6 = IPPROTO_TCP, name 18), and a backend in its own network
//! namespace that answers once and then goes silent (every packet to it
//! dropped there). The next request on the pooled, now half-open
//! connection gets no ACK and no byte; the kernel gives up after the user
//! timeout and Envoy answers `503 UC`. That is `upstream_dead_peer`, never
//! `keepalive_race`; a route timeout that fires first is `upstream_timeout`.

use std::time::{Duration, Instant};

use connlab::envoy::config::{cluster, route};
use connlab_tests::filter_proxy::Proxy;
use connlab_tests::silent_peer::SilentPeer;
use serde_json::{json, Value};

/// The cluster's TCP_USER_TIMEOUT: short, so the test takes seconds.
const USER_TIMEOUT_MS: u64 = 1000;

fn explain(event: &Value) -> &str {
    event["explain"].as_str().unwrap_or_default()
}

/// Envoy in front of a silent-to-be peer with TCP_USER_TIMEOUT on its
/// upstream sockets; `config` is the filter's, `timeout` the route's.
fn proxy_to(peer: &SilentPeer, config: Value, timeout: &str) -> Proxy {
    let mut upstream = cluster("upstream", &[peer.addr()]);
    upstream["upstream_bind_config"] = json!({
        "source_address": {"address": "0.0.0.0", "port_value": 0},
        "socket_options": [{"level": 6, "name": 18, "int_value": USER_TIMEOUT_MS,
            "state": "STATE_PREBIND"}],
    });
    let mut the_route = route("/", "upstream");
    the_route["route"]["timeout"] = json!(timeout);
    Proxy::start(config, the_route, upstream)
}

/// One request answered, the peer goes silent, a second request on the same
/// pooled connection 300 ms later: its status, how long it took, both
/// events.
fn request_after_silence(peer: &SilentPeer, proxy: &Proxy) -> (u16, Duration, Vec<Value>) {
    let mut conn = proxy.connect();
    assert_eq!(conn.get("/").expect("first request").status, 200);
    peer.go_silent();
    std::thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    let status = conn.get("/").expect("second request").status;
    let took = start.elapsed();
    let events = proxy.events(2);
    assert_eq!(
        events[0]["upstream"]["local"], events[1]["upstream"]["local"],
        "the same pooled connection: {events:#?}"
    );
    assert_eq!(events[1]["upstream"]["nth"], 2, "{events:#?}");
    (status, took, events)
}

#[test]
fn a_request_on_a_half_open_connection_ended_by_tcp_user_timeout_is_a_dead_peer() {
    let peer = SilentPeer::start();
    let proxy = proxy_to(
        &peer,
        json!({"events": "all", "tcp_user_timeout_ms": USER_TIMEOUT_MS}),
        "0s",
    );
    let (status, took, events) = request_after_silence(&peer, &proxy);
    assert_eq!(status, 503);
    // Not before the user timeout: the kernel gave up, nothing answered.
    assert!(took >= Duration::from_millis(USER_TIMEOUT_MS), "{took:?}");
    let event = &events[1];
    assert_eq!(event["diagnosis"], "upstream_dead_peer", "{event:#?}");
    assert_eq!(event["flags"], "UC", "{event:#?}");
    assert_eq!(
        event["details"], "upstream_reset_before_response_started{connection_termination}",
        "{event:#?}"
    );
    for needle in ["TCP_USER_TIMEOUT (1.0 s)", "half-open", "outlier detection"] {
        assert!(explain(event).contains(needle), "{needle}: {event:#?}");
    }
    proxy.assert_logged("503 flags=UC state=upstream_dead_peer");
    assert_eq!(
        proxy
            .envoy
            .stat("cluster.upstream.upstream_cx_destroy_remote_with_active_rq"),
        1
    );
}

#[test]
fn a_dead_peer_without_the_user_timeout_configured_is_a_late_upstream_reset() {
    // The same failure, but the filter was not told the clusters' user
    // timeout: a reset 1.4 s into the request is a late reset (it could be
    // a crash), never a keep-alive race.
    let peer = SilentPeer::start();
    let proxy = proxy_to(&peer, json!({"events": "all"}), "0s");
    let (status, _, events) = request_after_silence(&peer, &proxy);
    assert_eq!(status, 503);
    let event = &events[1];
    assert_eq!(event["diagnosis"], "upstream_reset", "{event:#?}");
    assert!(
        explain(event).contains("after the request was sent"),
        "{event:#?}"
    );
}

#[test]
fn a_route_timeout_on_a_silent_peer_is_an_upstream_timeout() {
    // Envoy's route timeout (0.4 s) fires before the user timeout (1 s):
    // Envoy gave up on its own clock, so the filter cannot tell a dead peer
    // from a slow one and says so.
    let peer = SilentPeer::start();
    let proxy = proxy_to(
        &peer,
        json!({"events": "all", "tcp_user_timeout_ms": USER_TIMEOUT_MS}),
        "0.4s",
    );
    let (status, _, events) = request_after_silence(&peer, &proxy);
    assert_eq!(status, 504);
    let event = &events[1];
    assert_eq!(event["diagnosis"], "upstream_timeout", "{event:#?}");
    assert_eq!(event["flags"], "UT", "{event:#?}");
    assert!(explain(event).contains("cannot tell"), "{event:#?}");
    proxy.assert_logged("504 flags=UT state=upstream_timeout");
}

#[test]
fn a_keepalive_race_is_still_a_keepalive_race_with_a_user_timeout_configured() {
    // The backend resets the reused connection the moment the request
    // arrives: the reset comes within a round trip, long before any user
    // timeout, even one set below race_window_ms.
    let server = connlab_tests::raw_servers::reset_reused_connection();
    let proxy = Proxy::start(
        json!({"events": "all", "tcp_user_timeout_ms": 200}),
        route("/", "upstream"),
        cluster("upstream", &[server.addr()]),
    );
    let mut conn = proxy.connect();
    assert_eq!(conn.get("/").expect("first request").status, 200);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(conn.get("/").expect("second request").status, 503);
    let events = proxy.events(2);
    assert_eq!(events[1]["diagnosis"], "keepalive_race", "{events:#?}");
    proxy.assert_logged("503 flags=UC state=keepalive_race");
}
