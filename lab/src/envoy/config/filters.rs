//! Network and HTTP filters: connlab's wasm filter (HTTP and network), the
//! HTTP connection manager with its router and routes (retries included),
//! and the TCP proxy.

use std::path::Path;

use serde_json::{json, Value};

use super::duration_ms;

/// The wasm plugin (shared by the HTTP and network filter configs). `config`
/// is the filter's configuration (Istio's `pluginConfig`); `None` = defaults.
pub fn plugin(wasm: &Path, root_id: &str, config: Option<&Value>) -> Value {
    // In Envoy's static configuration the filter starts with Envoy: no
    // upstream connection predates its reuse table, so a connection it sees
    // first is a new one (`unknown_history_ms` 0) unless the config says
    // otherwise. A filter delivered later (ECDS) keeps the default.
    let mut config = config.cloned().unwrap_or_else(|| json!({}));
    if let Some(map) = config.as_object_mut() {
        map.entry("unknown_history_ms").or_insert(json!(0));
    }
    let config = Some(&config);
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

/// The HTTP connection manager's downstream timeouts, each `None` for
/// Envoy's default: the connection's `idle_timeout` (1 h) and
/// `max_connection_duration` (none) in `common_http_protocol_options`, and
/// the HCM's `drain_timeout` (5 s), `delayed_close_timeout` (1 s),
/// `stream_idle_timeout` (5 min) and `request_headers_timeout` (none).
/// On HTTP/1.1 an idle connection closes only after idle_timeout +
/// drain_timeout + delayed_close_timeout (the idle timer starts the drain
/// sequence; measured, docs/issue notes and scenarios/client-pool-race.toml).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DownstreamTimeouts {
    pub idle_timeout_ms: Option<u64>,
    pub max_connection_duration_ms: Option<u64>,
    pub drain_timeout_ms: Option<u64>,
    pub delayed_close_timeout_ms: Option<u64>,
    pub stream_idle_timeout_ms: Option<u64>,
    pub request_headers_timeout_ms: Option<u64>,
}

/// Sets `timeouts` on an [`hcm`] block (its counters:
/// `http.<stat_prefix>.downstream_cx_idle_timeout`,
/// `downstream_cx_max_duration_reached`, `downstream_rq_idle_timeout`,
/// `downstream_rq_header_timeout`).
pub fn set_downstream_timeouts(hcm: &mut Value, timeouts: &DownstreamTimeouts) {
    let config = &mut hcm["typed_config"];
    let common = [
        ("idle_timeout", timeouts.idle_timeout_ms),
        (
            "max_connection_duration",
            timeouts.max_connection_duration_ms,
        ),
    ];
    for (field, ms) in common {
        if let Some(ms) = ms {
            config["common_http_protocol_options"][field] = duration_ms(ms);
        }
    }
    let own = [
        ("drain_timeout", timeouts.drain_timeout_ms),
        ("delayed_close_timeout", timeouts.delayed_close_timeout_ms),
        ("stream_idle_timeout", timeouts.stream_idle_timeout_ms),
        (
            "request_headers_timeout",
            timeouts.request_headers_timeout_ms,
        ),
    ];
    for (field, ms) in own {
        if let Some(ms) = ms {
            config[field] = duration_ms(ms);
        }
    }
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
