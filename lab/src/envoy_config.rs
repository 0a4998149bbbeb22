//! The one Envoy config builder: bootstrap blocks as JSON values (which
//! Envoy reads as YAML). The lab's scenario model compiles down to these
//! functions, and the filter tests and the benchmark call them directly and
//! adjust the values in place (`route["route"]["timeout"] = json!("0.3s")`).
//! One function per Envoy block; each returns the block and nothing else.

use std::net::SocketAddr;
use std::path::Path;

use serde_json::{json, Value};

use crate::access_log::ISTIO_TEXT_FORMAT;

/// `{"socket_address": ...}` for `addr`.
pub fn address(addr: SocketAddr) -> Value {
    json!({"socket_address": {"address": addr.ip().to_string(), "port_value": addr.port()}})
}

/// Loopback, port picked by the kernel (tests read it back from the admin).
pub fn loopback_any() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// An Envoy duration (`"1.5s"`) from milliseconds.
pub fn duration_ms(ms: u64) -> Value {
    json!(format!("{}s", ms as f64 / 1000.0))
}

/// The wasm plugin (shared by the HTTP and network filter configs). `config`
/// is the filter's configuration (Istio's `pluginConfig`); `None` = defaults.
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

/// An HTTP filter entry for `http_filters` (`root_id` `connlab_http`, or
/// another root of the module such as the benchmark's `connlab_noop`).
pub fn http_wasm(wasm: &Path, root_id: &str, config: Option<&Value>) -> Value {
    json!({
        "name": format!("wasm.{root_id}"),
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": plugin(wasm, root_id, config),
        },
    })
}

/// The `connlab_net` network filter entry for a filter chain's `filters`.
pub fn net_wasm(wasm: &Path, config: Option<&Value>) -> Value {
    json!({
        "name": "wasm.connlab_net",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.wasm.v3.Wasm",
            "config": plugin(wasm, "connlab_net", config),
        },
    })
}

/// The router, always the last HTTP filter.
pub fn router_filter() -> Value {
    json!({
        "name": "envoy.filters.http.router",
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
    })
}

/// A route sending every path under `prefix` to `cluster`; set
/// `["route"]["timeout"]` / `["route"]["retry_policy"]` on it to change those.
pub fn route(prefix: &str, cluster: &str) -> Value {
    json!({"match": {"prefix": prefix}, "route": {"cluster": cluster}})
}

/// A route's `retry_policy`.
pub fn retry_policy(retry_on: &str, num_retries: u32, retriable_status_codes: &[u16]) -> Value {
    json!({
        "retry_on": retry_on,
        "num_retries": num_retries,
        "retriable_status_codes": retriable_status_codes,
    })
}

/// What Istio configures on every route unless told otherwise (pilot's
/// default retry policy): 2 retries on connection failures and on a 503
/// from upstream.
pub fn istio_default_retry_policy() -> Value {
    retry_policy(
        "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
        2,
        &[503],
    )
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

/// Istio's default TEXT access log to `path`: what a mesh operator reads.
pub fn istio_access_log(path: &Path) -> Value {
    file_access_log(path, ISTIO_TEXT_FORMAT)
}

/// The fields the lab's checker reads, one JSON object per request.
pub const JSON_ACCESS_LOG_FIELDS: &[(&str, &str)] = &[
    ("code", "%RESPONSE_CODE%"),
    ("flags", "%RESPONSE_FLAGS%"),
    ("details", "%RESPONSE_CODE_DETAILS%"),
    ("attempts", "%UPSTREAM_REQUEST_ATTEMPT_COUNT%"),
    ("upstream_local", "%UPSTREAM_LOCAL_ADDRESS%"),
    ("failure", "%UPSTREAM_TRANSPORT_FAILURE_REASON%"),
];

/// A JSON access log on Envoy's stdout with `JSON_ACCESS_LOG_FIELDS`.
pub fn stdout_json_access_log() -> Value {
    let fields: serde_json::Map<String, Value> = JSON_ACCESS_LOG_FIELDS
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    json!({
        "name": "envoy.access_loggers.stdout",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
            "log_format": {"json_format": fields},
        },
    })
}

/// The HTTP connection manager network filter; the router is appended to
/// `http_filters`.
pub fn hcm(
    name: &str,
    http_filters: Vec<Value>,
    routes: Vec<Value>,
    access_log: Vec<Value>,
) -> Value {
    let mut filters = http_filters;
    filters.push(router_filter());
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

/// A static cluster; `connect_timeout` 1 s (set `["connect_timeout"]` to
/// change it).
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

/// A cluster's `typed_extension_protocol_options` for HTTP/1.1 upstreams:
/// the pool's idle timeout (Envoy's default 1 h; Istio: DestinationRule
/// `connectionPool.http.idleTimeout`) and requests per connection (Istio:
/// `maxRequestsPerConnection`).
pub fn http1_protocol_options(
    idle_timeout_ms: Option<u64>,
    max_requests_per_connection: Option<u32>,
) -> Value {
    let mut common = json!({});
    if let Some(ms) = idle_timeout_ms {
        common["idle_timeout"] = duration_ms(ms);
    }
    if let Some(n) = max_requests_per_connection {
        common["max_requests_per_connection"] = json!(n);
    }
    json!({
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "common_http_protocol_options": common,
            "explicit_http_config": {"http_protocol_options": {}},
        },
    })
}

/// A DownstreamTlsContext transport socket from PEM files; with
/// `client_ca`, client certificates are required and checked against it.
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

/// A whole bootstrap with its admin on `admin`.
pub fn bootstrap_with_admin(
    listeners: Vec<Value>,
    clusters: Vec<Value>,
    admin: SocketAddr,
) -> Value {
    json!({
        "admin": {"address": address(admin)},
        "static_resources": {"listeners": listeners, "clusters": clusters},
    })
}

/// A whole bootstrap with its admin on loopback port 0.
pub fn bootstrap(listeners: Vec<Value>, clusters: Vec<Value>) -> Value {
    bootstrap_with_admin(listeners, clusters, loopback_any())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_envoy_seconds() {
        assert_eq!(duration_ms(4000), json!("4s"));
        assert_eq!(duration_ms(1500), json!("1.5s"));
    }

    #[test]
    fn protocol_options_carry_only_what_is_set() {
        let options = http1_protocol_options(Some(4000), None);
        let common = &options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
            ["common_http_protocol_options"];
        assert_eq!(common, &json!({"idle_timeout": "4s"}));
    }

    #[test]
    fn hcm_ends_with_the_router() {
        let manager = hcm("main", vec![json!({"name": "x"})], vec![], vec![]);
        let filters = manager["typed_config"]["http_filters"].as_array().unwrap();
        assert_eq!(filters.len(), 2);
        assert_eq!(filters[1]["name"], "envoy.filters.http.router");
    }
}
