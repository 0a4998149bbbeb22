//! The filter loaded or updated into an Envoy that already holds pooled
//! upstream connections (Istio delivers a WasmPlugin through ECDS into
//! running sidecars): a connection pooled before the filter's reuse table
//! began has an unknown history, and the filter must not take it for a
//! fresh one. Real Envoy 1.40, connlab_http delivered through ECDS from a
//! file (`path_config_source`), updated by an atomic rename as a config push
//! does; a backend that resets a kept-alive connection when the next request
//! arrives on it (a keep-alive race made certain).

use std::path::Path;
use std::time::{Duration, Instant};

use connlab::envoy::config::{cluster, plugin, route};
use connlab_tests::filter_proxy::Proxy;
use connlab_tests::{filter_wasm, raw_servers};
use serde_json::{json, Value};

const RESOURCE: &str = "connlab-http";

/// The ECDS discovery response holding connlab_http in VM `vm_id`, with
/// the filter's default `unknown_history_ms` (a filter delivered into a
/// running Envoy) or `known_from_start` (0: as if it started with Envoy).
fn ecds(vm_id: &str, version: u32, known_from_start: bool) -> Value {
    let mut settings = json!({"events": "all"});
    if !known_from_start {
        settings["unknown_history_ms"] = json!(3_600_000);
    }
    let mut config = plugin(&filter_wasm(), "connlab_http", Some(&settings));
    config["vm_config"]["vm_id"] = json!(vm_id);
    json!({
        "version_info": version.to_string(),
        "resources": [{
            "@type": "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig",
            "name": RESOURCE,
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
                "config": config,
            },
        }],
    })
}

/// Writes the ECDS file as a config push does: a new file renamed into place.
fn push(file: &Path, resource: &Value) {
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, resource.to_string()).expect("write ECDS file");
    std::fs::rename(&tmp, file).expect("rename ECDS file");
}

#[test]
fn a_race_on_a_connection_pooled_before_the_filter_was_updated_is_not_a_fresh_connection() {
    let server = raw_servers::reset_reused_connection();
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("ecds.json");
    // The first filter starts with Envoy, before any connection.
    push(&file, &ecds("connlab-v1", 1, true));
    let reference = json!({
        "name": RESOURCE,
        "config_discovery": {
            "config_source": {
                "path_config_source": {
                    "path": file,
                    "watched_directory": {"path": dir.path()},
                },
                "resource_api_version": "V3",
            },
            "type_urls": ["type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"],
        },
    });
    let proxy = Proxy::start_with_filters(
        dir,
        vec![reference],
        route("/", "upstream"),
        cluster("upstream", &[server.addr()]),
    );
    // One request: its upstream connection stays in Envoy's pool, known to
    // the first filter (its table saw it opened).
    let mut conn = proxy.connect();
    assert_eq!(conn.get("/").expect("first request").status, 200);
    let first = &proxy.events(1)[0];
    assert_eq!(first["upstream"]["history"], "first", "{first:#?}");
    assert_eq!(first["upstream"]["nth"], 1, "{first:#?}");

    // A config push: a new VM, so a new reuse table, while the connection
    // sits in the pool.
    push(&file, &ecds("connlab-v2", 2, false));
    let updated = Instant::now();
    while proxy
        .envoy
        .stat("extension_config_discovery.http_filter.connlab-http.config_reload")
        < 2
    {
        assert!(
            updated.elapsed() < Duration::from_secs(10),
            "ECDS update not applied: {}",
            proxy.envoy.log_tail()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // The next request reuses the pooled connection, and the backend resets
    // it: the new filter did not see that connection opened.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(conn.get("/").expect("second request").status, 503);
    let events = proxy.events(2);
    let raced = &events[1];
    assert_eq!(raced["flags"], "UC", "{raced:#?}");
    assert_eq!(
        raced["upstream"]["local"], first["upstream"]["local"],
        "the same pooled connection"
    );
    assert_eq!(raced["upstream"]["history"], "unknown", "{raced:#?}");
    assert_eq!(raced["upstream"]["nth"], Value::Null, "{raced:#?}");
    assert_eq!(raced["diagnosis"], "keepalive_race", "{raced:#?}");
    assert_eq!(raced["confidence"], "likely", "{raced:#?}");
    let explain = raced["explain"].as_str().unwrap_or_default();
    assert!(!explain.contains("fresh connection"), "{explain}");

    // Within its first hour the new filter cannot tell a new connection
    // from one pooled before it (Envoy exposes nothing per connection that
    // tells): unknown too, and a healthy request needs no verdict.
    assert_eq!(proxy.get("/").status, 200);
    let next = &proxy.events(3)[2];
    assert_eq!(next["upstream"]["history"], "unknown", "{next:#?}");
    assert_eq!(next["diagnosis"], Value::Null, "{next:#?}");
}
