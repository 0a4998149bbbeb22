//! Cases on streams rather than connections, caused for real in Envoy
//! 1.40: HTTP/2 upstream stream resets (RST_STREAM, GOAWAY) on a
//! multiplexed connection, a client that disconnects while Envoy retries,
//! WebSocket and CONNECT tunnels that end in a reset, gRPC retries judged by
//! grpc-status. None of them is a keep-alive race, and a client that left
//! gets no retry code.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use connlab::envoy::config::{cluster, retry_policy, route};
use connlab_tests::filter_proxy::{Proxy, TIMEOUT};
use connlab_tests::raw_servers::{self, TunnelEnd};
use serde_json::{json, Value};

fn the_route() -> Value {
    route("/", "upstream")
}

/// A cluster speaking HTTP/2 (prior knowledge) to `addr`.
fn h2_cluster(addr: std::net::SocketAddr) -> Value {
    let mut c = cluster("upstream", &[addr]);
    c["typed_extension_protocol_options"] = json!({
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "explicit_http_config": {"http2_protocol_options": {}},
        }
    });
    c
}

/// Two requests 300 ms apart on one HTTP/2 upstream connection; the second
/// one's event.
fn second_h2_request(goaway: bool) -> (Proxy, Value) {
    let server = raw_servers::h2_reset_later_streams(goaway);
    let proxy = Proxy::start(
        json!({"events": "all"}),
        the_route(),
        h2_cluster(server.addr()),
    );
    let mut conn = proxy.connect();
    assert_eq!(conn.get("/").expect("first request").status, 200);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(conn.get("/").expect("second request").status, 503);
    let events = proxy.events(2);
    assert_eq!(
        events[0]["upstream"]["local"], events[1]["upstream"]["local"],
        "one multiplexed connection: {events:#?}"
    );
    assert_eq!(events[1]["upstream"]["nth"], 2, "{events:#?}");
    drop(server);
    (proxy, events[1].clone())
}

#[test]
fn an_http2_rst_stream_on_a_reused_connection_is_not_a_keepalive_race() {
    let (proxy, event) = second_h2_request(false);
    assert_eq!(event["diagnosis"], "upstream_reset", "{event:#?}");
    assert_eq!(event["flags"], "UR", "{event:#?}");
    assert!(
        event["explain"]
            .as_str()
            .unwrap_or_default()
            .contains("RST_STREAM"),
        "{event:#?}"
    );
    proxy.assert_logged("503 flags=UR state=upstream_reset");
}

#[test]
fn an_http2_goaway_refusing_a_stream_is_not_a_keepalive_race() {
    let (_proxy, event) = second_h2_request(true);
    assert_eq!(event["diagnosis"], "upstream_reset", "{event:#?}");
    assert_eq!(event["flags"], "UR", "{event:#?}");
    assert_eq!(
        event["details"], "upstream_reset_before_response_started{remote_refused_stream_reset}",
        "{event:#?}"
    );
}

#[test]
fn a_client_that_disconnects_while_envoy_retries_gets_no_retry_code() {
    // Every attempt gets a 503 after 300 ms; the client gives up at 450 ms,
    // during the second attempt.
    let server = raw_servers::always(503, Duration::from_millis(300));
    let mut route = the_route();
    route["route"]["retry_policy"] = retry_policy("5xx", 3, &[]);
    let proxy = Proxy::start(
        json!({"events": "all"}),
        route,
        cluster("upstream", &[server.addr()]),
    );
    let mut stream = TcpStream::connect_timeout(&proxy.addr, TIMEOUT).expect("connect");
    stream
        .write_all(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n")
        .expect("send");
    std::thread::sleep(Duration::from_millis(450));
    drop(stream);
    let events = proxy.events(1);
    let event = &events[0];
    let flags = event["flags"].as_str().unwrap_or_default();
    assert!(flags.split(',').any(|f| f == "DC"), "{event:#?}");
    assert!(
        event["attempts"].as_u64().unwrap_or_default() >= 2,
        "{event:#?}"
    );
    assert_eq!(event["diagnosis"], Value::Null, "{event:#?}");
}

/// A tunnel through Envoy (`websocket` upgrade or `CONNECT`) to a backend
/// that answers `answer`, takes 10 bytes and ends the tunnel as `end` says;
/// the request's event.
fn tunnel_event(upgrade: &str, end: TunnelEnd) -> (Proxy, Value) {
    let (answer, route, request): (_, _, &[u8]) = if upgrade == "CONNECT" {
        (
            raw_servers::CONNECT_200,
            json!({"match": {"connect_matcher": {}}, "route": {"cluster": "upstream"}}),
            b"CONNECT example.com:443 HTTP/1.1\r\nhost: example.com:443\r\n\r\n",
        )
    } else {
        (
            raw_servers::WEBSOCKET_101,
            the_route(),
            b"GET /ws HTTP/1.1\r\nhost: a\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n",
        )
    };
    let server = raw_servers::tunnel(answer, 10, end);
    let proxy = Proxy::start_upgrading(
        json!({"events": "all"}),
        route,
        cluster("upstream", &[server.addr()]),
        &[upgrade],
    );
    let mut stream = TcpStream::connect_timeout(&proxy.addr, TIMEOUT).expect("connect");
    stream.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    stream.write_all(request).expect("send");
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).expect("the tunnel's answer");
    assert_eq!(&head[..9], b"HTTP/1.1 ");
    stream.write_all(b"0123456789").expect("tunnel bytes");
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    let event = proxy.events(1).remove(0);
    (proxy, event)
}

/// The backend ended an open tunnel: Envoy says `UC`
/// `upstream_reset_after_response_started{connection_termination}` for an
/// RST and for a FIN alike, so the filter names nothing.
fn assert_tunnel_ended(upgrade: &str, status: u16) {
    for end in [TunnelEnd::Reset, TunnelEnd::Close] {
        let (proxy, event) = tunnel_event(upgrade, end);
        assert_eq!(event["code"], status, "{end:?}: {event:#?}");
        assert_eq!(event["flags"], "UC", "{end:?}: {event:#?}");
        assert_eq!(
            event["details"], "upstream_reset_after_response_started{connection_termination}",
            "{end:?}: {event:#?}"
        );
        assert_eq!(event["diagnosis"], Value::Null, "{end:?}: {event:#?}");
        proxy.assert_logged(&format!("{status} flags=UC state=-"));
    }
}

#[test]
fn a_websocket_tunnel_that_ends_in_a_reset_gets_no_code() {
    assert_tunnel_ended("websocket", 101);
}

#[test]
fn a_connect_tunnel_that_ends_in_a_reset_gets_no_code() {
    assert_tunnel_ended("CONNECT", 200);
}

#[test]
fn a_websocket_handshake_the_backend_resets_is_an_upstream_reset() {
    // Reset before the 101: the tunnel never opened, the request failed.
    let server = raw_servers::reset_every_request();
    let proxy = Proxy::start_upgrading(
        json!({}),
        the_route(),
        cluster("upstream", &[server.addr()]),
        &["websocket"],
    );
    let mut stream = TcpStream::connect_timeout(&proxy.addr, TIMEOUT).expect("connect");
    stream.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    stream
        .write_all(
            b"GET /ws HTTP/1.1\r\nhost: a\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n",
        )
        .expect("send");
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).expect("an answer");
    assert_eq!(&head, b"HTTP/1.1 503");
    proxy.assert_diagnosis("upstream_reset", 503, "UC");
}

#[test]
fn an_ordinary_response_cut_off_after_it_started_keeps_its_code() {
    // The nearest case the tunnel rule must not swallow: a 200 whose body
    // the backend resets 10 bytes into its content-length. Envoy 1.40
    // reports that as a protocol error after the response started (UPE).
    let server = raw_servers::partial_response_then_reset();
    let proxy = Proxy::start(
        json!({}),
        the_route(),
        cluster("upstream", &[server.addr()]),
    );
    let _ = proxy.connect().get("/");
    let event = proxy.assert_diagnosis("upstream_protocol_error", 200, "UPE");
    assert!(
        event["explain"]
            .as_str()
            .unwrap_or_default()
            .contains("broke off after it had started"),
        "{event:#?}"
    );
}

/// A unary gRPC call (bodiless, as the test client sends it) through a
/// route that retries on `unavailable` (gRPC status 14) twice, to a server
/// answering the calls `statuses`; the client's HTTP status and the event.
fn grpc_call(statuses: &'static [u32]) -> (Proxy, u16) {
    let server = raw_servers::grpc_statuses(statuses);
    let mut route = the_route();
    route["route"]["retry_policy"] = retry_policy("unavailable", 2, &[]);
    let proxy = Proxy::start(json!({}), route, h2_cluster(server.addr()));
    let status = proxy.get("/pkg.Service/Call").status;
    drop(server);
    (proxy, status)
}

#[test]
fn a_grpc_retry_that_hid_unavailable_is_retried_then_ok() {
    let (proxy, status) = grpc_call(&[14, 0]);
    assert_eq!(status, 200);
    let event = proxy.assert_diagnosis("retried_then_ok", 200, "");
    assert_eq!(event["attempts"], 2, "{event:#?}");
}

#[test]
fn grpc_retries_that_ran_out_are_retried_then_failed_with_the_grpc_status() {
    // HTTP 200 every time: only grpc-status says each call failed.
    let (proxy, status) = grpc_call(&[14]);
    assert_eq!(status, 200);
    let event = proxy.assert_diagnosis("retried_then_failed", 200, "URX");
    assert_eq!(event["attempts"], 3, "{event:#?}");
    assert!(
        event["explain"]
            .as_str()
            .unwrap_or_default()
            .contains("200 with gRPC status 14"),
        "{event:#?}"
    );
}

#[test]
fn envoys_own_reset_of_an_http2_response_with_too_many_headers_says_both_causes() {
    // 150 response headers, over Envoy's default max_response_headers_count
    // (100): Envoy's codec resets the stream itself, yet Envoy 1.40 reports
    // it as a remote reset (UR, remote_reset), never as LR. The filter
    // cannot tell; the explanation names both causes and the stats that do.
    let server = raw_servers::h2_headers_only(|_| {
        (0..150)
            .map(|i| (format!("x-h{i}"), "v".to_string()))
            .collect()
    });
    let proxy = Proxy::start(json!({}), the_route(), h2_cluster(server.addr()));
    assert_eq!(proxy.get("/").status, 503);
    let event = proxy.assert_diagnosis("upstream_reset", 503, "UR");
    assert_eq!(
        event["details"], "upstream_reset_before_response_started{remote_reset}",
        "{event:#?}"
    );
    let explain = event["explain"].as_str().unwrap_or_default();
    assert!(explain.contains("Envoy's own codec"), "{explain}");
    assert!(
        proxy
            .envoy
            .stat("cluster.upstream.http2.rx_messaging_error")
            + proxy.envoy.stat("cluster.upstream.http2.header_overflow")
            >= 1,
        "Envoy counted its own rejection"
    );
}
