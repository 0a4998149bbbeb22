//! The nearest failures that must NOT get each diagnosis, caused for real:
//! the real Envoy 1.40 binary with connlab_http / connlab_net on loopback
//! and raw socket backends. Each case is one a user met with an own Envoy
//! config (issue 9); each checks the flags the filter decoded against
//! Envoy's own `%RESPONSE_FLAGS%` where Envoy logs one.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use connlab::envoy::config::{bootstrap, cluster, hcm, listener, net_wasm, retry_policy, route};
use connlab_tests::envoy_process::EnvoyProcess;
use connlab_tests::filter_proxy::{Proxy, TIMEOUT};
use connlab_tests::{
    any_local_port, backend, closed_port, ephemeral_port_pair, filter_wasm, pinnable_port,
    raw_servers, slow_backend, wait_stat,
};
use serde_json::{json, Value};

fn the_route() -> Value {
    route("/", "upstream")
}

fn explain(event: &Value) -> &str {
    event["explain"].as_str().unwrap_or_default()
}

/// One request answered, then a second one on the same kept-alive
/// connection after `idle`; both events.
fn two_requests_on_one_connection(proxy: &Proxy, idle: Duration) -> (u16, Vec<Value>) {
    let mut conn = proxy.connect();
    assert_eq!(conn.get("/").expect("first request").status, 200);
    std::thread::sleep(idle);
    let second = conn.get("/").expect("second request").status;
    let events = proxy.events(2);
    assert_eq!(
        events[0]["upstream"]["local"], events[1]["upstream"]["local"],
        "the same pooled connection: {events:#?}"
    );
    assert_eq!(events[1]["upstream"]["nth"], 2, "{events:#?}");
    (second, events)
}

#[test]
fn a_reset_long_after_the_request_is_an_upstream_reset_not_a_keepalive_race() {
    // An app crash 1.5 s into a request on a reused connection: the reset
    // arrives long after the request was sent, not within a round trip.
    let server = raw_servers::reset_reused_connection_after(Duration::from_millis(1500));
    let proxy = Proxy::start(
        json!({"events": "all"}),
        the_route(),
        cluster("upstream", &[server.addr()]),
    );
    let (status, events) = two_requests_on_one_connection(&proxy, Duration::from_millis(300));
    assert_eq!(status, 503);
    let late = &events[1];
    assert_eq!(late["diagnosis"], "upstream_reset", "{late:#?}");
    assert_eq!(late["flags"], "UC");
    assert!(
        explain(late).contains("after the request was sent"),
        "{late:#?}"
    );
    assert!(!explain(late).contains("idle_timeout"), "{late:#?}");
    proxy.assert_logged("503 flags=UC state=upstream_reset");
}

#[test]
fn an_upstream_protocol_error_on_a_reused_connection_is_not_a_keepalive_race() {
    let server = raw_servers::garbage_on_reused_connection();
    let proxy = Proxy::start(
        json!({"events": "all"}),
        the_route(),
        cluster("upstream", &[server.addr()]),
    );
    let (status, events) = two_requests_on_one_connection(&proxy, Duration::from_millis(300));
    assert_eq!(status, 502);
    let event = &events[1];
    assert_eq!(event["diagnosis"], "upstream_protocol_error", "{event:#?}");
    assert_eq!(event["flags"], "UPE");
    proxy.assert_logged("502 flags=UPE state=upstream_protocol_error");
}

#[test]
fn circuit_breaker_overflow_has_its_own_code() {
    // One connection, one pending request at most: of three concurrent
    // requests to a slow backend the third overflows (UO).
    let server = slow_backend(Duration::from_millis(800));
    let mut upstream = cluster("upstream", &[server.addr()]);
    upstream["circuit_breakers"] = json!({"thresholds": [{
        "max_connections": 1, "max_pending_requests": 1, "max_requests": 1}]});
    let proxy = Proxy::start(json!({}), the_route(), upstream);
    assert_eq!(
        proxy.concurrent_statuses(3, Duration::from_millis(50)),
        [200, 200, 503]
    );
    let event = proxy.assert_diagnosis("circuit_breaker_overflow", 503, "UO");
    for needle in [
        "cluster `upstream`",
        "upstream_rq_pending_overflow",
        "max_pending_requests",
    ] {
        assert!(explain(&event).contains(needle), "{needle}: {event:#?}");
    }
    assert_eq!(
        proxy
            .envoy
            .stat("cluster.upstream.upstream_rq_pending_overflow"),
        1,
        "the stat the explanation names"
    );
}

#[test]
fn retries_that_ran_out_on_a_retriable_status_are_retried_then_failed() {
    let server = raw_servers::always(409, Duration::ZERO);
    let mut route = the_route();
    route["route"]["retry_policy"] = retry_policy("retriable-status-codes", 2, &[409]);
    let proxy = Proxy::start(json!({}), route, cluster("upstream", &[server.addr()]));
    assert_eq!(proxy.get("/").status, 409);
    let event = proxy.assert_diagnosis("retried_then_failed", 409, "URX");
    assert_eq!(event["attempts"], 3, "{event:#?}");
}

#[test]
fn ephemeral_ports_that_ran_out_are_not_a_pinned_port() {
    // A genuinely exhausted ephemeral range: the cluster's sockets get two
    // ports (IP_LOCAL_PORT_RANGE, level IPPROTO_IP 0, name 51: the kernel
    // still picks the port at connect(), as with the system-wide
    // net.ipv4.ip_local_port_range, but for these sockets only). Three
    // concurrent slow requests: two connections take both ports, the third
    // connect() finds none (EADDRNOTAVAIL). The two in flight use two
    // ports: no pinned port.
    let server = slow_backend(Duration::from_millis(800));
    // Another process may bind() one of the two ports while this runs
    // (bind(0) picks from the same range): then only one port is left and
    // two requests fail. That is the machine, not the filter: try another
    // pair.
    let (proxy, events) = (0..3)
        .find_map(|_| {
            let (low, high) = ephemeral_port_pair();
            let mut upstream = cluster("upstream", &[server.addr()]);
            upstream["upstream_bind_config"] = json!({
                "socket_options": [{"level": 0, "name": 51,
                    "int_value": (u64::from(high) << 16) | u64::from(low), "state": "STATE_PREBIND"}],
            });
            let proxy = Proxy::start(json!({"events": "all"}), the_route(), upstream);
            if proxy.concurrent_statuses(3, Duration::from_millis(100)) != [200, 200, 503] {
                return None;
            }
            let events = proxy.events(3);
            let mut ports: Vec<&str> = events
                .iter()
                .filter_map(|e| e["upstream"]["local"].as_str())
                .collect();
            ports.sort();
            assert_eq!(
                ports,
                [format!("127.0.0.1:{low}"), format!("127.0.0.1:{high}")],
                "{events:#?}"
            );
            Some((proxy, events))
        })
        .expect("two connections on the two ports, the third refused, in one of 3 tries");
    let failed: Vec<&Value> = events.iter().filter(|e| e["code"] == 503).collect();
    let event = failed[0];
    assert_eq!(event["diagnosis"], "source_address_conflict", "{event:#?}");
    assert_eq!(event["flags"], "UF", "{event:#?}");
    assert!(
        event["failure"]
            .as_str()
            .unwrap_or_default()
            .contains("Cannot assign requested address"),
        "{event:#?}"
    );
    assert!(
        explain(event).contains("ephemeral ports ran out"),
        "{event:#?}"
    );
    assert!(!explain(event).contains("pinned"), "{event:#?}");
    proxy.assert_logged("503 flags=UF state=source_address_conflict");
}

#[test]
fn one_local_address_to_two_upstream_hosts_is_two_connections() {
    // A pinned source port with SO_REUSEADDR towards two clusters: legal,
    // the 4-tuples differ. Each connection counts its own requests.
    let a = backend::spawn(any_local_port(), backend::Behaviour::default()).expect("backend a");
    let b = backend::spawn(any_local_port(), backend::Behaviour::default()).expect("backend b");
    let pinned = pinnable_port();
    let pin = |mut c: Value| {
        c["upstream_bind_config"] = json!({
            "source_address": {"address": "127.0.0.1", "port_value": pinned},
            "socket_options": [{"level": 1, "name": 2, "int_value": 1, "state": "STATE_PREBIND"}],
        });
        c
    };
    let proxy = Proxy::start_with(
        json!({"events": "all"}),
        vec![route("/a", "a"), route("/b", "b")],
        vec![
            pin(cluster("a", &[a.addr()])),
            pin(cluster("b", &[b.addr()])),
        ],
    );
    let mut conn = proxy.connect();
    for path in ["/a", "/b", "/a", "/b"] {
        let status = conn.get(path).expect("request").status;
        assert_eq!(
            status,
            200,
            "{path}: {:#?}\n{}",
            proxy.envoy.events(),
            proxy.envoy.log_tail()
        );
    }
    let events = proxy.events(4);
    let local = format!("127.0.0.1:{pinned}");
    assert!(
        events
            .iter()
            .all(|e| e["upstream"]["local"] == local.as_str()),
        "{events:#?}"
    );
    let nths: Vec<&Value> = events.iter().map(|e| &e["upstream"]["nth"]).collect();
    assert_eq!(
        nths,
        [&json!(1), &json!(1), &json!(2), &json!(2)],
        "{events:#?}"
    );
}

#[test]
fn a_slow_client_on_a_listener_that_does_not_sniff_is_not_a_sniff_fallthrough() {
    // connlab_net in front of an HTTP connection manager, no listener
    // filters: nothing sniffs, so nothing can fall through.
    let server = backend::spawn(any_local_port(), backend::Behaviour::default()).expect("backend");
    let net = net_wasm(&filter_wasm(), Some(&json!({"events": "all"})));
    let http = hcm("main", vec![], vec![the_route()], vec![]);
    let config = bootstrap(
        vec![listener("main", vec![net, http])],
        vec![cluster("upstream", &[server.addr()])],
    );
    let envoy = EnvoyProcess::start(&config).expect("start Envoy");
    let addr = envoy.listener("main").expect("listener");
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT).expect("connect");
    std::thread::sleep(Duration::from_millis(700));
    stream
        .write_all(b"GET / HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n")
        .expect("send");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    drop(stream);
    let events = envoy.wait_events(1, TIMEOUT);
    let event = events.first().expect("a conn event");
    assert_eq!(event["class"], "http1", "{event:#?}");
    assert!(
        event["first_byte_ms"].as_u64().unwrap_or_default() >= 650,
        "{event:#?}"
    );
    assert_eq!(event["diagnosis"], Value::Null, "{event:#?}");
}

#[test]
fn an_outage_logs_a_bounded_number_of_events_and_counts_every_request() {
    // 600 refused requests as fast as one client sends them: at most 100
    // event lines per second (the default), a `suppressed` summary for the
    // rest, and every request in the metrics.
    let proxy = Proxy::start(
        json!({}),
        the_route(),
        cluster("upstream", &[closed_port()]),
    );
    let mut conn = proxy.connect();
    let start = Instant::now();
    for _ in 0..600 {
        assert_eq!(conn.get("/").expect("503").status, 503);
    }
    let seconds = start.elapsed().as_secs() + 1;
    let name = "wasmcustom.connlab_http_diagnosis_connect_refused_total";
    assert_eq!(wait_stat(&proxy.envoy, name, 600, TIMEOUT), 600);
    let limit = Instant::now() + TIMEOUT;
    let (logged, suppressed) = loop {
        let events = proxy.envoy.events();
        let logged = events.iter().filter(|e| e["event"] == "http").count() as u64;
        let suppressed: u64 = events
            .iter()
            .filter(|e| e["event"] == "suppressed")
            .map(|e| e["suppressed"].as_u64().unwrap_or_default())
            .sum();
        if logged + suppressed >= 600 || Instant::now() > limit {
            break (logged, suppressed);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(logged + suppressed, 600, "every event logged or counted");
    assert!(
        logged <= 100 * (seconds + 1),
        "{logged} lines in {seconds} s"
    );
    assert!(suppressed > 0);
    let counted = "wasmcustom.connlab_events_suppressed_total";
    assert_eq!(
        wait_stat(&proxy.envoy, counted, suppressed, TIMEOUT),
        suppressed
    );
}
