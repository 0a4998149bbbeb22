//! Negative cases on streams rather than connections, caused for real in
//! Envoy 1.40: HTTP/2 upstream stream resets (RST_STREAM, GOAWAY) on a
//! multiplexed connection, a client that disconnects while Envoy retries,
//! and a WebSocket tunnel that ends in a reset. None of them is a keep-alive
//! race, and a client that left gets no retry code.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use connlab::envoy_config::{cluster, retry_policy, route};
use connlab_tests::filter_proxy::{Proxy, TIMEOUT};
use connlab_tests::raw_servers;
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

#[test]
fn a_websocket_tunnel_that_ends_in_a_reset_is_not_a_keepalive_race() {
    let server = raw_servers::upgrade_then_reset(10);
    let proxy = Proxy::start_upgrading(
        json!({"events": "all"}),
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
    stream.read_exact(&mut head).expect("101");
    assert_eq!(&head, b"HTTP/1.1 101");
    stream.write_all(b"0123456789").expect("tunnel bytes");
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    let events = proxy.events(1);
    let event = &events[0];
    assert_eq!(event["code"], 101, "{event:#?}");
    assert_ne!(event["diagnosis"], "keepalive_race", "{event:#?}");
}
