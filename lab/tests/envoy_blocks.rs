//! The sniffing, mTLS and upstream-socket blocks of `envoy_config`, loaded
//! by the real Envoy 1.40 (`envoy --mode validate`: parses the bootstrap,
//! builds every listener, cluster and TLS context, reads the certificate
//! files, and exits without serving) with certificates from `certs`.

use std::net::SocketAddr;
use std::path::Path;

use connlab::envoy::certs::Authority;
use connlab::envoy::config::*;
use serde_json::Value;

fn validate(dir: &Path, name: &str, config: &Value) -> (bool, String) {
    connlab::envoy::process::validate(dir, name, config).expect("Envoy (run `make envoy`)")
}

fn any(port: u16) -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], port))
}

/// A server sidecar's inbound listener: mTLS, then a TCP proxy to the app.
fn inbound(files: &TlsFiles, require_client_certificate: bool) -> Value {
    let mut chain = filter_chain("inbound", vec![tcp_proxy("inbound", "backend")]);
    chain["transport_socket"] = downstream_mtls(files, require_client_certificate);
    bootstrap(
        vec![listener_on("inbound", any(15006), vec![chain])],
        vec![cluster(
            "backend",
            &[SocketAddr::from(([127, 0, 0, 1], 8080))],
        )],
    )
}

/// The sniff-timeout topology's two sidecars and the source-port-reuse
/// cluster, as the scenarios build them.
#[test]
fn sniffing_mtls_and_pinned_port_configs_load_in_envoy() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Authority::create(dir.path()).unwrap();
    let caller = ca.issue("caller", &[]).unwrap();
    let server = ca.issue("server", &["server"]).unwrap();
    let upstream = SocketAddr::from(([127, 0, 0, 1], 15006));

    let caller_files = TlsFiles {
        cert: caller.cert.clone(),
        key: caller.key.clone(),
        ca: ca.ca(),
        peer_ids: vec![server.spiffe_id.clone()],
    };
    let http = matched_chain(
        "http",
        chain_match(Some("raw_buffer"), &HTTP_APPLICATION_PROTOCOLS),
        vec![hcm("outbound", vec![], vec![route("/", "server")], vec![])],
    );
    let passthrough = filter_chain(
        "PassthroughFilterChain",
        vec![tcp_proxy("passthrough", "PassthroughCluster")],
    );
    let mut mtls = cluster("server", &[upstream]);
    mtls["transport_socket"] = upstream_mtls(&caller_files, Some("server"), &["istio"]);
    let mut pinned = cluster("pinned", &[upstream]);
    pinned["upstream_bind_config"] = upstream_bind_config(any(40000), &[SO_REUSEADDR]);
    pinned["circuit_breakers"] = circuit_breakers(Some(10), None, None, Some(3));
    pinned["upstream_connection_options"] = tcp_keepalive(Some(3), Some(10), Some(5));
    pinned["typed_extension_protocol_options"] = http1_protocol_options(None, Some(100));
    let config = bootstrap(
        vec![sniffing_listener(
            "outbound",
            any(10000),
            100,
            true,
            vec![http],
            Some(passthrough),
        )],
        vec![mtls, cluster("PassthroughCluster", &[upstream]), pinned],
    );
    let (ok, log) = validate(dir.path(), "caller", &config);
    assert!(ok, "{log}");

    let server_files = TlsFiles {
        cert: server.cert.clone(),
        key: server.key.clone(),
        ca: ca.ca(),
        peer_ids: vec![caller.spiffe_id.clone()],
    };
    for require in [true, false] {
        let config = inbound(&server_files, require);
        let (ok, log) = validate(dir.path(), "server", &config);
        assert!(ok, "require_client_certificate={require}: {log}");
    }
}

/// The check is real: a certificate file that is not there fails it.
#[test]
fn validate_rejects_a_missing_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let files = TlsFiles {
        cert: dir.path().join("nope.pem"),
        key: dir.path().join("nope.key"),
        ca: dir.path().join("ca.pem"),
        peer_ids: vec![],
    };
    let (ok, log) = validate(dir.path(), "bad", &inbound(&files, true));
    assert!(!ok, "{log}");
    assert!(log.contains("Invalid path"), "{log}");
}

/// Every HCM downstream timeout a listener can set, where Envoy reads it:
/// Envoy loads it, and puts each field where the config says (a misplaced
/// field, e.g. idle_timeout on the HCM itself, fails validation).
#[test]
fn hcm_downstream_timeouts_load_in_envoy() {
    let dir = tempfile::tempdir().unwrap();
    let mut hcm = hcm("main", vec![], vec![route("/", "backend")], vec![]);
    let all = DownstreamTimeouts {
        idle_timeout_ms: Some(3000),
        max_connection_duration_ms: Some(60_000),
        drain_timeout_ms: Some(2000),
        delayed_close_timeout_ms: Some(500),
        stream_idle_timeout_ms: Some(10_000),
        request_headers_timeout_ms: Some(1500),
    };
    set_downstream_timeouts(&mut hcm, &all);
    let config = &hcm["typed_config"];
    assert_eq!(config["common_http_protocol_options"]["idle_timeout"], "3s");
    assert_eq!(
        config["common_http_protocol_options"]["max_connection_duration"],
        "60s"
    );
    assert_eq!(config["drain_timeout"], "2s");
    assert_eq!(config["request_headers_timeout"], "1.5s");
    let boot = bootstrap(
        vec![listener("main", vec![hcm])],
        vec![cluster(
            "backend",
            &[SocketAddr::from(([127, 0, 0, 1], 8080))],
        )],
    );
    let (ok, log) = validate(dir.path(), "downstream", &boot);
    assert!(ok, "{log}");
    // The check is real: idle_timeout on the HCM itself is not a field.
    let mut misplaced = boot.clone();
    let hcm_config = &mut misplaced["static_resources"]["listeners"][0]["filter_chains"][0]
        ["filters"][0]["typed_config"];
    hcm_config["idle_timeout"] = serde_json::json!("3s");
    let (ok, log) = validate(dir.path(), "misplaced", &misplaced);
    assert!(!ok, "{log}");
    // Nothing set: the HCM block is exactly what it was.
    let mut plain = hcm_plain();
    set_downstream_timeouts(&mut plain, &DownstreamTimeouts::default());
    assert_eq!(plain, hcm_plain());
}

fn hcm_plain() -> Value {
    hcm("main", vec![], vec![route("/", "backend")], vec![])
}
