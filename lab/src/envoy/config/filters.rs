//! Network and HTTP filters: connlab's wasm filter (HTTP and network), the
//! HTTP connection manager with its router and routes (retries included),
//! and the TCP proxy.

use std::path::Path;

use serde_json::{json, Value};

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hcm_ends_with_the_router() {
        let manager = hcm("main", vec![json!({"name": "x"})], vec![], vec![]);
        let filters = manager["typed_config"]["http_filters"].as_array().unwrap();
        assert_eq!(filters.len(), 2);
        assert_eq!(filters[1]["name"], "envoy.filters.http.router");
    }
}
