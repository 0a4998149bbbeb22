//! The filter's configuration and contract in real Envoy 1.40: a bad
//! configuration makes Envoy refuse the filter (with a log line naming the
//! key), no configuration means defaults (only failures logged, everything
//! counted), `"events":"all"` logs every request with its reuse facts, the
//! opt-in response header, and both root_ids loaded from one module.

use std::net::SocketAddr;
use std::time::Duration;

use connlab::envoy::config::{bootstrap, cluster, hcm, http_wasm, listener, net_wasm, route};
use connlab_tests::envoy_process::{EnvoyError, EnvoyProcess};
use connlab_tests::{any_local_port, backend, closed_port, filter_wasm, http1, wait_stat};
use serde_json::{json, Value};

const TIMEOUT: Duration = Duration::from_secs(5);

/// Envoy with connlab_http (`root_id`, `config`) in front of a healthy
/// backend on `/` and a closed port on `/dead`.
fn config(root_id: &str, plugin_config: Option<&Value>, backend: SocketAddr) -> Value {
    let filters = vec![http_wasm(&filter_wasm(), root_id, plugin_config)];
    let routes = vec![route("/dead", "dead"), route("/", "backend")];
    bootstrap(
        vec![listener("main", vec![hcm("main", filters, routes, vec![])])],
        vec![
            cluster("backend", &[backend]),
            cluster("dead", &[closed_port()]),
        ],
    )
}

fn healthy_backend() -> backend::Running {
    backend::spawn(any_local_port(), backend::Behaviour::default()).expect("start backend")
}

fn refused(plugin_config: &Value) -> String {
    let server = healthy_backend();
    match EnvoyProcess::start(&config("connlab_http", Some(plugin_config), server.addr())) {
        Ok(envoy) => panic!("Envoy accepted {plugin_config}:\n{}", envoy.log_tail()),
        Err(EnvoyError::Exited { log, .. }) | Err(EnvoyError::NotReady(_, log)) => log,
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn an_unknown_key_makes_envoy_refuse_the_filter() {
    let log = refused(&json!({"events": "all", "reuse_tabel_cap": 10}));
    assert!(
        log.contains("connlab: bad configuration key `reuse_tabel_cap`: unknown key"),
        "{log}"
    );
}

#[test]
fn a_bad_value_makes_envoy_refuse_the_filter() {
    let log = refused(&json!({"events": "everything"}));
    assert!(log.contains("bad configuration key `events`"), "{log}");
}

/// Sends `paths` on one keep-alive connection, returns the statuses.
fn requests(addr: SocketAddr, paths: &[&str]) -> Vec<u16> {
    let mut conn = http1::Conn::connect(addr, TIMEOUT).expect("connect to Envoy");
    conn.set_read_timeout(Some(TIMEOUT));
    paths
        .iter()
        .map(|p| conn.get(p).expect("a response").status)
        .collect()
}

#[test]
fn defaults_log_only_failures_and_count_everything() {
    let server = healthy_backend();
    let envoy = EnvoyProcess::start(&config("connlab_http", None, server.addr())).expect("Envoy");
    let addr = envoy.listener("main").expect("listener");
    assert_eq!(
        requests(addr, &["/", "/", "/dead", "/"]),
        [200, 200, 503, 200]
    );
    let events = envoy.wait_events(1, TIMEOUT);
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0]["diagnosis"], "connect_refused");
    // Metrics see all four.
    let stat = |name: &str, n| wait_stat(&envoy, &format!("wasmcustom.{name}"), n, TIMEOUT);
    assert_eq!(stat("connlab_http_requests_total", 4), 4);
    assert_eq!(stat("connlab_http_diagnosis_connect_refused_total", 1), 1);
    // Reuse histograms as cumulative buckets: three requests on one upstream
    // connection (nth 1, 2, 3; the refused one never had a connection).
    assert_eq!(stat("connlab_upstream_nth_bucket_le_1", 1), 1);
    assert_eq!(stat("connlab_upstream_nth_bucket_le_5", 3), 3);
    assert_eq!(stat("connlab_upstream_nth_bucket_le_inf", 3), 3);
    assert_eq!(
        stat("connlab_upstream_idle_ms_bucket_le_inf", 2),
        2,
        "idle only when reused"
    );
}

#[test]
fn events_all_logs_every_request_with_its_reuse() {
    let server = healthy_backend();
    let plugin = json!({"events": "all"});
    let envoy =
        EnvoyProcess::start(&config("connlab_http", Some(&plugin), server.addr())).expect("Envoy");
    let addr = envoy.listener("main").expect("listener");
    assert_eq!(requests(addr, &["/", "/"]), [200, 200]);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(requests(addr, &["/"]), [200]);
    let events = envoy.wait_events(3, TIMEOUT);
    assert_eq!(events.len(), 3, "{events:#?}");
    let nth: Vec<&Value> = events.iter().map(|e| &e["upstream"]["nth"]).collect();
    assert_eq!(nth, [&json!(1), &json!(2), &json!(3)], "{events:#?}");
    assert_eq!(events[0]["upstream"]["idle_ms"], Value::Null);
    let idle = events[2]["upstream"]["idle_ms"]
        .as_u64()
        .unwrap_or_default();
    assert!(idle >= 200, "{events:#?}");
    for event in &events {
        assert_eq!(event["diagnosis"], Value::Null);
        assert_eq!(event["explain"], Value::Null);
        assert_eq!(event["attempts"], 1);
        assert_eq!(event["details"], "via_upstream");
        let mut keys: Vec<&str> = event
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        keys.sort_unstable();
        let mut v1 = [
            "v",
            "event",
            "conn",
            "upstream",
            "attempts",
            "code",
            "flags",
            "details",
            "failure",
            "diagnosis",
            "explain",
        ];
        v1.sort_unstable();
        assert_eq!(keys, v1, "the v1 fields");
    }
}

#[test]
fn the_response_header_is_opt_in() {
    let server = healthy_backend();
    for (plugin, expected) in [
        (json!({}), None),
        (
            json!({"response_header": "x-connlab-diagnosis"}),
            Some("connect_refused"),
        ),
    ] {
        let envoy = EnvoyProcess::start(&config("connlab_http", Some(&plugin), server.addr()))
            .expect("Envoy");
        let addr = envoy.listener("main").expect("listener");
        let mut conn = http1::Conn::connect(addr, TIMEOUT).expect("connect");
        conn.set_read_timeout(Some(TIMEOUT));
        let dead = conn.get("/dead").expect("503");
        assert_eq!(dead.header("x-connlab-diagnosis"), expected, "{plugin}");
        let ok = conn.get("/").expect("200");
        assert_eq!(ok.header("x-connlab-diagnosis"), None, "healthy: no header");
    }
}

#[test]
fn noop_root_id_loads_and_stays_silent() {
    let server = healthy_backend();
    let envoy = EnvoyProcess::start(&config("connlab_noop", None, server.addr())).expect("Envoy");
    let addr = envoy.listener("main").expect("listener");
    assert_eq!(requests(addr, &["/", "/dead"]), [200, 503]);
    std::thread::sleep(Duration::from_millis(300));
    assert!(envoy.events().is_empty());
    let metrics = envoy
        .admin_get("/stats?filter=wasmcustom")
        .unwrap_or_default();
    assert!(
        metrics.trim().is_empty(),
        "noop defines no metrics: {metrics}"
    );
}

#[test]
fn one_module_serves_both_root_ids_on_one_listener() {
    let server = healthy_backend();
    let plugin = json!({"events": "all"});
    let filters = vec![http_wasm(&filter_wasm(), "connlab_http", Some(&plugin))];
    let chain = vec![
        net_wasm(&filter_wasm(), Some(&plugin)),
        hcm("main", filters, vec![route("/", "backend")], vec![]),
    ];
    let envoy = EnvoyProcess::start(&bootstrap(
        vec![listener("main", chain)],
        vec![cluster("backend", &[server.addr()])],
    ))
    .expect("Envoy");
    let addr = envoy.listener("main").expect("listener");
    assert_eq!(requests(addr, &["/"]), [200]);
    let events = envoy.wait_events(2, TIMEOUT);
    let kinds: Vec<&Value> = events.iter().map(|e| &e["event"]).collect();
    assert_eq!(kinds, [&json!("http"), &json!("conn")], "{events:#?}");
    assert_eq!(events[1]["class"], "http1");
    assert_eq!(events[1]["method"], "GET");
    assert_eq!(
        events[0]["conn"], events[1]["conn"],
        "same downstream connection id"
    );
}

/// `filter/example/envoy.yaml`, the README's minimal config, as a user runs
/// it (module path and ports filled in): both root_ids load, and a request
/// gives an `http` event (that filter logs all) and the Prometheus metrics
/// of both (connlab_net, on defaults, logs only failures).
#[test]
fn the_readme_example_config_runs() {
    let server = healthy_backend();
    let path = connlab_tests::paths::root().join("filter/example/envoy.yaml");
    let text = std::fs::read_to_string(&path).expect("example config");
    let text = text
        .replace(
            "/path/to/connlab_filter.wasm",
            &filter_wasm().display().to_string(),
        )
        .replace("port_value: 9901", "port_value: 0")
        .replace("port_value: 10000", "port_value: 0")
        .replace(
            "port_value: 8080",
            &format!("port_value: {}", server.addr().port()),
        );
    let config: Value = serde_yaml::from_str(&text).expect("example is YAML");
    let envoy = EnvoyProcess::start(&config).expect("Envoy runs the example");
    let addr = envoy.listener("main").expect("listener");
    assert_eq!(requests(addr, &["/"]), [200]);
    let events = envoy.wait_events(1, TIMEOUT);
    assert_eq!(events[0]["event"], "http", "{events:#?}");
    wait_stat(
        &envoy,
        "wasmcustom.connlab_net_class_http1_total",
        1,
        TIMEOUT,
    );
    let prometheus = envoy.admin_get("/stats/prometheus").unwrap_or_default();
    for name in [
        // Envoy drops its `wasmcustom.` scope in Prometheus output.
        "connlab_http_requests_total{} 1",
        "connlab_upstream_nth_bucket_le_1{} 1",
        "connlab_net_class_http1_total{} 1",
    ] {
        assert!(
            prometheus.lines().any(|l| l.starts_with(name)),
            "{name} in\n{}",
            prometheus
                .lines()
                .filter(|l| l.contains("connlab"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}
