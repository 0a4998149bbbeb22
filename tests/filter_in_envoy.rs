//! The chain end to end: connlab's wasm filter, built on this machine,
//! running inside the real Envoy 1.40 binary in front of a real backend on
//! loopback, its events read back from Envoy's log.

use std::time::Duration;

use connlab::envoy::config::{bootstrap, cluster, hcm, http_wasm, listener, route};
use connlab_tests::envoy_process::EnvoyProcess;
use connlab_tests::{any_local_port, backend, closed_port, filter_wasm, http1};
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(5);

fn connect(addr: std::net::SocketAddr) -> http1::Conn {
    let conn = http1::Conn::connect(addr, TIMEOUT).expect("connect to Envoy");
    conn.set_read_timeout(Some(TIMEOUT));
    conn
}

fn upstream_local(event: &Value) -> &str {
    event["upstream"]["local"].as_str().unwrap_or_default()
}

#[test]
fn filter_logs_one_event_per_request_and_tracks_upstream_reuse() {
    // The backend closes its side after the third request on a connection.
    let server = backend::spawn(
        any_local_port(),
        backend::Behaviour {
            close_after: Some(3),
            ..Default::default()
        },
    )
    .expect("start backend");
    // Every request, not only failures (the default).
    let plugin = serde_json::json!({"events": "all"});
    let filters = vec![http_wasm(&filter_wasm(), "connlab_http", Some(&plugin))];
    let routes = vec![route("/dead", "dead"), route("/", "backend")];
    let config = bootstrap(
        vec![listener("main", vec![hcm("main", filters, routes, vec![])])],
        vec![
            cluster("backend", &[server.addr()]),
            cluster("dead", &[closed_port()]),
        ],
    );
    let envoy = EnvoyProcess::start(&config).expect("start Envoy");
    let listener = envoy.listener("main").expect("listener address");

    // Three requests on one downstream keep-alive connection: Envoy carries
    // them on one pooled upstream connection, which the backend then closes.
    let mut first = connect(listener);
    for _ in 0..3 {
        assert_eq!(
            first
                .get("/")
                .expect("request on kept-alive connection")
                .status,
            200
        );
    }
    // A new downstream connection; the pooled upstream one is gone, so Envoy
    // must open another.
    std::thread::sleep(Duration::from_millis(200));
    let mut second = connect(listener);
    assert_eq!(
        second.get("/").expect("request on new connection").status,
        200
    );
    // And a route whose only endpoint refuses connections.
    let dead = second.get("/dead").expect("503 from Envoy");
    assert_eq!(dead.status, 503);

    let events = envoy.wait_events(5, TIMEOUT);
    assert_eq!(
        events.len(),
        5,
        "one event per request: {events:#?}\n{}",
        envoy.log_tail()
    );
    for event in &events {
        assert_eq!(event["v"], 1);
        assert_eq!(event["event"], "http");
    }
    let (kept, fresh, refused) = (&events[..3], &events[3], &events[4]);

    // Same downstream connection for the first three, another for the rest.
    assert!(
        kept.iter().all(|e| e["conn"] == kept[0]["conn"]),
        "{kept:#?}"
    );
    assert_ne!(fresh["conn"], kept[0]["conn"]);

    // The pooled connection's identity is Envoy's local address towards the
    // backend: one address while it was reused, another after the close.
    let reused = upstream_local(&kept[0]);
    assert!(reused.starts_with("127.0.0.1:"), "{kept:#?}");
    assert!(
        kept.iter().all(|e| upstream_local(e) == reused),
        "{kept:#?}"
    );
    assert!(!upstream_local(fresh).is_empty());
    assert_ne!(
        upstream_local(fresh),
        reused,
        "a new upstream connection after the backend closed"
    );
    assert!(
        events[..4]
            .iter()
            .all(|e| e["code"] == 200 && e["flags"] == ""),
        "{events:#?}"
    );

    // Connection refused: 503 with Envoy's UF flag.
    assert_eq!(refused["code"], 503);
    let flags = refused["flags"].as_str().unwrap_or_default();
    assert!(flags.split(',').any(|f| f == "UF"), "{refused:#?}");
}

#[test]
fn envoy_is_gone_after_the_test() {
    let config = bootstrap(vec![], vec![]);
    let envoy = EnvoyProcess::start(&config).expect("start Envoy");
    let pid = envoy.pid();
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    drop(envoy);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "Envoy {pid} outlived its handle"
    );
}
