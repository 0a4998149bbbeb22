//! Listeners and their filter chains: plain, bound to an address, and the
//! sniffing listener (TLS and HTTP inspectors, chains matched by transport
//! and application protocol, a default chain).

use std::net::SocketAddr;

use serde_json::{json, Value};

use super::{address, duration_ms, loopback_any};

/// A filter chain (add `filter_chain_match` / `transport_socket` to it).
pub fn filter_chain(name: &str, filters: Vec<Value>) -> Value {
    json!({"name": name, "filters": filters})
}

/// A listener on `bind` with `chains`.
pub fn listener_on(name: &str, bind: SocketAddr, chains: Vec<Value>) -> Value {
    json!({"name": name, "address": address(bind), "filter_chains": chains})
}

/// A listener on loopback port 0 with one filter chain (`<name>_chain`).
pub fn listener(name: &str, filters: Vec<Value>) -> Value {
    let chain = filter_chain(&format!("{name}_chain"), filters);
    listener_on(name, loopback_any(), vec![chain])
}

/// The TLS inspector listener filter: reads a ClientHello's SNI and ALPN
/// (transport protocol `tls`), or marks the connection `raw_buffer`.
pub fn tls_inspector() -> Value {
    json!({
        "name": "envoy.filters.listener.tls_inspector",
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"},
    })
}

/// The HTTP inspector listener filter: plaintext HTTP/1.x or the h2c preface
/// becomes the application protocol `http/1.0`, `http/1.1` or `h2c`.
pub fn http_inspector() -> Value {
    json!({
        "name": "envoy.filters.listener.http_inspector",
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.listener.http_inspector.v3.HttpInspector"},
    })
}

/// What `http_inspector` reports for plaintext HTTP.
pub const HTTP_APPLICATION_PROTOCOLS: [&str; 3] = ["http/1.0", "http/1.1", "h2c"];

/// A `filter_chain_match` on the transport protocol (`tls` / `raw_buffer`)
/// and application protocols (ALPN, or what `http_inspector` found); an
/// empty criterion is left out (matches anything).
pub fn chain_match(transport_protocol: Option<&str>, application_protocols: &[&str]) -> Value {
    let mut matched = json!({});
    if let Some(transport) = transport_protocol {
        matched["transport_protocol"] = json!(transport);
    }
    if !application_protocols.is_empty() {
        matched["application_protocols"] = json!(application_protocols);
    }
    matched
}

/// A filter chain taken only by connections that match `matched`.
pub fn matched_chain(name: &str, matched: Value, filters: Vec<Value>) -> Value {
    let mut chain = filter_chain(name, filters);
    chain["filter_chain_match"] = matched;
    chain
}

/// Protocol sniffing on a listener, as Istio's outbound listener does for a
/// port of unknown protocol: `tls_inspector` + `http_inspector`, which wait
/// at most `timeout_ms` for the first bytes (`listener_filters_timeout`;
/// Istio's `protocolDetectionTimeout`). When it expires, the connection goes
/// on to the chain the bytes so far select (with none: `default_chain`) if
/// `continue_on_timeout`, and is closed otherwise.
pub fn sniffing_listener(
    name: &str,
    bind: SocketAddr,
    timeout_ms: u64,
    continue_on_timeout: bool,
    chains: Vec<Value>,
    default_chain: Option<Value>,
) -> Value {
    let mut listener = listener_on(name, bind, chains);
    listener["listener_filters"] = json!([tls_inspector(), http_inspector()]);
    listener["listener_filters_timeout"] = duration_ms(timeout_ms);
    listener["continue_on_listener_filters_timeout"] = json!(continue_on_timeout);
    if let Some(chain) = default_chain {
        listener["default_filter_chain"] = chain;
    }
    listener
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envoy::config::tcp_proxy;

    #[test]
    fn a_sniffing_listener_has_both_inspectors_its_timeout_and_a_default_chain() {
        let http = matched_chain(
            "http",
            chain_match(Some("raw_buffer"), &HTTP_APPLICATION_PROTOCOLS),
            vec![],
        );
        let passthrough = filter_chain(
            "PassthroughFilterChain",
            vec![tcp_proxy("p", "PassthroughCluster")],
        );
        let bind = SocketAddr::from(([0, 0, 0, 0], 10000));
        let listener =
            sniffing_listener("outbound", bind, 100, true, vec![http], Some(passthrough));
        let names: Vec<&str> = listener["listener_filters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "envoy.filters.listener.tls_inspector",
                "envoy.filters.listener.http_inspector"
            ]
        );
        assert_eq!(listener["listener_filters_timeout"], "0.1s");
        assert_eq!(listener["continue_on_listener_filters_timeout"], true);
        assert_eq!(
            listener["filter_chains"][0]["filter_chain_match"],
            json!({"transport_protocol": "raw_buffer", "application_protocols": ["http/1.0", "http/1.1", "h2c"]})
        );
        assert_eq!(
            listener["default_filter_chain"]["name"],
            "PassthroughFilterChain"
        );
        assert_eq!(chain_match(None, &[]), json!({}));
    }
}
