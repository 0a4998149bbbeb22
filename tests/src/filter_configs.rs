//! Envoy bootstraps for the filter's real-Envoy tests and the benchmark, as
//! JSON values that a test can adjust in place (`route["route"]["timeout"] =
//! json!("0.3s")`) before starting Envoy. Every listener binds port 0.

use std::net::SocketAddr;
use std::path::Path;

use serde_json::{json, Value};

/// `{"socket_address": ...}` for `addr`.
pub fn address(addr: SocketAddr) -> Value {
    json!({"socket_address": {"address": addr.ip().to_string(), "port_value": addr.port()}})
}

fn loopback_any() -> Value {
    json!({"socket_address": {"address": "127.0.0.1", "port_value": 0}})
}

/// The wasm plugin (shared by the HTTP and network filter configs).
pub fn plugin(wasm: &Path, root_id: &str, config: Option<&Value>) -> Value {
    let mut plugin = json!({
        "name": root_id,
        "root_id": root_id,
        "vm_config": {
            "vm_id": "connlab",
            "runtime": "envoy.wasm.runtime.v8",
            "code": {"local": {"filename": wasm}},
        },
    });
    if let Some(config) = config {
        plugin["configuration"] = json!({
            "@type": "type.googleapis.com/google.protobuf.StringValue",
            "value": config.to_string(),
        });
    }
    plugin
}

/// An HTTP filter entry for `http_filters`.
pub fn http_wasm(wasm: &Path, root_id: &str, config: Option<&Value>) -> Value {
    json!({
        "name": format!("wasm.{root_id}"),
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": plugin(wasm, root_id, config),
        },
    })
}

/// A network filter entry for a filter chain's `filters`.
pub fn net_wasm(wasm: &Path, config: Option<&Value>) -> Value {
    json!({
        "name": "wasm.connlab_net",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.wasm.v3.Wasm",
            "config": plugin(wasm, "connlab_net", config),
        },
    })
}

pub fn route(prefix: &str, cluster: &str) -> Value {
    json!({"match": {"prefix": prefix}, "route": {"cluster": cluster}})
}

/// A file access log printing `format` (one line per request).
pub fn file_access_log(path: &Path, format: &str) -> Value {
    json!({
        "name": "envoy.access_loggers.file",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
            "path": path,
            "log_format": {"text_format_source": {"inline_string": format}},
        },
    })
}

/// The HTTP connection manager network filter.
pub fn hcm(
    name: &str,
    http_filters: Vec<Value>,
    routes: Vec<Value>,
    access_log: Vec<Value>,
) -> Value {
    let mut filters = http_filters;
    filters.push(json!({
        "name": "envoy.filters.http.router",
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
    }));
    json!({
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": name,
            "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": routes}]},
            "http_filters": filters,
            "access_log": access_log,
        },
    })
}

/// A TCP proxy network filter to `cluster`.
pub fn tcp_proxy(name: &str, cluster: &str) -> Value {
    json!({
        "name": "envoy.filters.network.tcp_proxy",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
            "stat_prefix": name,
            "cluster": cluster,
        },
    })
}

/// A listener on loopback port 0 with one filter chain.
pub fn listener(name: &str, filters: Vec<Value>) -> Value {
    json!({
        "name": name,
        "address": loopback_any(),
        "filter_chains": [{"name": format!("{name}_chain"), "filters": filters}],
    })
}

/// A static cluster; `connect_timeout` 1 s.
pub fn cluster(name: &str, endpoints: &[SocketAddr]) -> Value {
    let endpoints: Vec<Value> = endpoints
        .iter()
        .map(|a| json!({"endpoint": {"address": address(*a)}}))
        .collect();
    json!({
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": endpoints}]},
    })
}

/// A DownstreamTlsContext transport socket from PEM files.
pub fn downstream_tls(cert: &Path, key: &Path, client_ca: Option<&Path>) -> Value {
    let mut context = json!({
        "common_tls_context": {
            "tls_certificates": [{
                "certificate_chain": {"filename": cert},
                "private_key": {"filename": key},
            }],
        },
    });
    if let Some(ca) = client_ca {
        context["require_client_certificate"] = json!(true);
        context["common_tls_context"]["validation_context"] =
            json!({"trusted_ca": {"filename": ca}});
    }
    context["@type"] =
        json!("type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext");
    json!({"name": "envoy.transport_sockets.tls", "typed_config": context})
}

/// An UpstreamTlsContext transport socket (no verification: tests only).
pub fn upstream_tls() -> Value {
    json!({
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
        },
    })
}

/// A whole bootstrap with its admin on loopback port 0.
pub fn bootstrap(listeners: Vec<Value>, clusters: Vec<Value>) -> Value {
    json!({
        "admin": {"address": loopback_any()},
        "static_resources": {"listeners": listeners, "clusters": clusters},
    })
}
