use serde_json::Value;

use super::*;
use crate::scenario::envoy::{Mtls, Upstream};

fn node() -> EnvoyNode {
    let mut envoy = EnvoyNode::default();
    envoy.listeners.insert(
        "main".into(),
        toml::from_str("kind = \"http\"\nport = 10000\nupstream = \"backend\"").unwrap(),
    );
    let upstream: Upstream = toml::from_str(
        "endpoints = [\"backend\"]\nidle_timeout_ms = 4000\nretry = \"istio-default\"",
    )
    .unwrap();
    envoy.upstreams.insert("backend".into(), upstream);
    envoy
        .filter
        .insert("events".into(), toml::Value::String("all".into()));
    envoy
}

#[test]
fn an_http_listener_has_both_filters_and_both_access_logs() {
    let resolve = |_: &str| Some(SocketAddr::from(([10, 0, 0, 2], 8080)));
    let config = bootstrap("envoy", &node(), Path::new("/connlab/f.wasm"), &resolve).unwrap();
    let listener = &config["static_resources"]["listeners"][0];
    let filters = &listener["filter_chains"][0]["filters"];
    assert_eq!(filters[0]["name"], "wasm.connlab_net");
    let hcm = &filters[1]["typed_config"];
    assert_eq!(hcm["http_filters"][0]["name"], "wasm.connlab_http");
    let plugin = &hcm["http_filters"][0]["typed_config"]["config"]["configuration"]["value"];
    assert_eq!(plugin, r#"{"events":"all","unknown_history_ms":0}"#);
    assert_eq!(hcm["access_log"].as_array().unwrap().len(), 2);
    let route = &hcm["route_config"]["virtual_hosts"][0]["routes"][0]["route"];
    assert_eq!(route["retry_policy"]["num_retries"], 2);
    let cluster = &config["static_resources"]["clusters"][0];
    assert_eq!(cluster["name"], "backend");
    assert_eq!(cluster["connect_timeout"], "5s");
    let options = &cluster["typed_extension_protocol_options"]
        ["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"];
    assert_eq!(
        options["common_http_protocol_options"]["idle_timeout"],
        "4s"
    );
}

#[test]
fn an_unreachable_endpoint_is_an_error() {
    let err = bootstrap("envoy", &node(), Path::new("/f.wasm"), &|_| None).unwrap_err();
    assert!(err.contains("`backend`"), "{err}");
}

/// The sniff-timeout scenario's two sidecars.
fn sidecars() -> (EnvoyNode, EnvoyNode) {
    let caller: EnvoyNode = toml::from_str(
        r#"
            upstreams.server = { endpoints = ["server"], mtls = true }
            upstreams.PassthroughCluster = { endpoints = ["server"] }
            [listeners.outbound]
            kind = "sniffing"
            port = 10000
            upstream = "server"
            passthrough = "PassthroughCluster"
            detection_timeout_ms = 100
            "#,
    )
    .unwrap();
    let server: EnvoyNode = toml::from_str(
            r#"
            listeners.inbound = { kind = "http", port = 15006, upstream = "backend", mtls = "strict" }
            upstreams.backend = { endpoints = ["backend"] }
            "#,
        )
        .unwrap();
    (caller, server)
}

fn build(node: &str, envoy: &EnvoyNode) -> Value {
    let resolve = |_: &str| Some(SocketAddr::from(([10, 0, 0, 2], 15006)));
    bootstrap(node, envoy, Path::new("/connlab/f.wasm"), &resolve).unwrap()
}

#[test]
fn a_sniffing_listener_falls_through_to_a_passthrough_chain() {
    let (caller, _) = sidecars();
    let config = build("caller", &caller);
    let listener = &config["static_resources"]["listeners"][0];
    assert_eq!(listener["stat_prefix"], "outbound");
    assert_eq!(listener["listener_filters_timeout"], "0.1s");
    assert_eq!(listener["continue_on_listener_filters_timeout"], true);
    let http = &listener["filter_chains"][0];
    assert_eq!(
        http["filter_chain_match"]["application_protocols"],
        serde_json::json!(["http/1.0", "http/1.1", "h2c"])
    );
    assert_eq!(http["filters"][0]["name"], "wasm.connlab_net");
    let default = &listener["default_filter_chain"];
    assert_eq!(default["name"], FALLTHROUGH_CHAIN);
    assert_eq!(default["filters"][0]["name"], "wasm.connlab_net");
    // The filter is told that chain is the fall-through (its default
    // is Istio's inbound one), and a scenario's own list wins.
    let plugin = &default["filters"][0]["typed_config"]["config"]["configuration"]["value"];
    assert_eq!(
        plugin,
        r#"{"fallthrough_chains":["PassthroughFilterChain"],"unknown_history_ms":0}"#
    );
    let mut own = caller.clone();
    own.filter
        .insert("fallthrough_chains".into(), toml::Value::Array(vec![]));
    assert_eq!(
        filter_config(&own)["fallthrough_chains"],
        serde_json::json!([])
    );
    let (_, server) = sidecars();
    assert!(filter_config(&server).get("fallthrough_chains").is_none());
    assert_eq!(
        default["filters"][1]["typed_config"]["cluster"],
        "PassthroughCluster"
    );
    // mTLS origination to the server, which must be the server.
    let clusters = config["static_resources"]["clusters"].as_array().unwrap();
    let server = clusters.iter().find(|c| c["name"] == "server").unwrap();
    let tls = &server["transport_socket"]["typed_config"]["common_tls_context"];
    assert_eq!(
        tls["tls_certificates"][0]["certificate_chain"]["filename"],
        "/connlab/caller.pem"
    );
    assert_eq!(
        tls["validation_context"]["match_typed_subject_alt_names"][0]["matcher"]["exact"],
        "spiffe://cluster.local/ns/lab/sa/server"
    );
    let passthrough = clusters
        .iter()
        .find(|c| c["name"] == "PassthroughCluster")
        .unwrap();
    assert!(passthrough.get("transport_socket").is_none(), "plaintext");
}

#[test]
fn strict_and_permissive_downstream_mtls() {
    let (_, mut server) = sidecars();
    let strict = build("server", &server);
    let listener = &strict["static_resources"]["listeners"][0];
    let chains = listener["filter_chains"].as_array().unwrap();
    assert_eq!(chains.len(), 1);
    let context = &chains[0]["transport_socket"]["typed_config"];
    assert_eq!(context["require_client_certificate"], true);
    assert_eq!(
        context["common_tls_context"]["tls_certificates"][0]["private_key"]["filename"],
        "/connlab/server.key"
    );

    let inbound = server.listeners.get_mut("inbound").unwrap();
    inbound.mtls = Some(Mtls::Permissive);
    let permissive = build("server", &server);
    let listener = &permissive["static_resources"]["listeners"][0];
    assert_eq!(
        listener["listener_filters"][0]["name"],
        "envoy.filters.listener.tls_inspector"
    );
    let chains = listener["filter_chains"].as_array().unwrap();
    assert_eq!(chains[0]["filter_chain_match"]["transport_protocol"], "tls");
    assert!(chains[0].get("transport_socket").is_some());
    assert_eq!(chains[1]["name"], "inbound-plaintext");
    assert_eq!(
        chains[1]["filter_chain_match"]["transport_protocol"],
        "raw_buffer"
    );
    assert!(chains[1].get("transport_socket").is_none());
}

#[test]
fn a_pinned_source_port() {
    let mut envoy = node();
    let upstream = envoy.upstreams.get_mut("backend").unwrap();
    upstream.bind = Some(
        toml::from_str(
            "source_port = 40000\nsocket_options = [{ level = 1, name = 2, int_value = 1 }]",
        )
        .unwrap(),
    );
    let config = build("envoy", &envoy);
    let bind = &config["static_resources"]["clusters"][0]["upstream_bind_config"];
    assert_eq!(bind["source_address"]["port_value"], 40000);
    assert_eq!(bind["socket_options"][0]["state"], "STATE_PREBIND");
}
