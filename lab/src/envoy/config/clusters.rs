//! Clusters and what hangs off them: endpoints, HTTP/1 protocol options,
//! a pinned source address, circuit breakers, TCP keep-alive, health checks.

use std::net::SocketAddr;

use serde_json::{json, Value};

use super::{address, duration_ms};

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

/// A socket option set on the socket before `bind()` (`STATE_PREBIND`), as
/// numbers: `SOL_SOCKET` is level 1 on Linux, `SO_REUSEADDR` name 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketOption {
    pub level: i64,
    pub name: i64,
    pub value: i64,
}

/// `SO_REUSEADDR` on: what Cilium's proxy set on pinned source ports.
pub const SO_REUSEADDR: SocketOption = SocketOption {
    level: 1,
    name: 2,
    value: 1,
};

/// A cluster's `upstream_bind_config`: every upstream connection binds
/// `source` (port 0: a port the kernel picks per connection; any other
/// port: that port for every connection) with `options` set first.
pub fn upstream_bind_config(source: SocketAddr, options: &[SocketOption]) -> Value {
    let mut bind = json!({
        "source_address": {"address": source.ip().to_string(), "port_value": source.port()},
    });
    if !options.is_empty() {
        let options: Vec<Value> = options
            .iter()
            .map(|o| {
                json!({"level": o.level, "name": o.name, "int_value": o.value, "state": "STATE_PREBIND"})
            })
            .collect();
        bind["socket_options"] = json!(options);
    }
    bind
}

/// A cluster's `circuit_breakers` (default priority); `None` keeps Envoy's
/// default (1024 each, 3 retries).
pub fn circuit_breakers(
    max_connections: Option<u32>,
    max_pending_requests: Option<u32>,
    max_requests: Option<u32>,
    max_retries: Option<u32>,
) -> Value {
    let mut thresholds = json!({"priority": "DEFAULT"});
    for (key, value) in [
        ("max_connections", max_connections),
        ("max_pending_requests", max_pending_requests),
        ("max_requests", max_requests),
        ("max_retries", max_retries),
    ] {
        if let Some(n) = value {
            thresholds[key] = json!(n);
        }
    }
    json!({"thresholds": [thresholds]})
}

/// A cluster's `upstream_connection_options` with TCP keep-alive: first
/// probe after `time_s` idle seconds, then every `interval_s`, the
/// connection dropped after `probes` unanswered ones (`None`: the kernel's
/// net.ipv4.tcp_keepalive_* defaults).
pub fn tcp_keepalive(probes: Option<u32>, time_s: Option<u32>, interval_s: Option<u32>) -> Value {
    let mut keepalive = json!({});
    for (key, value) in [
        ("keepalive_probes", probes),
        ("keepalive_time", time_s),
        ("keepalive_interval", interval_s),
    ] {
        if let Some(n) = value {
            keepalive[key] = json!(n);
        }
    }
    json!({"tcp_keepalive": keepalive})
}

/// A cluster's `health_checks`: an HTTP GET / every `interval_ms`, a host
/// out of the load balancer after one answer missing `timeout_ms`, back in
/// after one good one. Connections already open stay in the pool (Envoy
/// does not close them on a failed check unless told to).
pub fn health_check(interval_ms: u64, timeout_ms: u64) -> Value {
    json!([{
        "timeout": duration_ms(timeout_ms),
        "interval": duration_ms(interval_ms),
        // Envoy's default is 60 s until the cluster has traffic: a first
        // check that fails (an endpoint network joined after Envoy started)
        // would not be retried in a run.
        "no_traffic_interval": duration_ms(interval_ms),
        "unhealthy_threshold": 1,
        "healthy_threshold": 1,
        "http_health_check": {"path": "/"},
    }])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_options_carry_only_what_is_set() {
        let options = http1_protocol_options(Some(4000), None);
        let common = &options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
            ["common_http_protocol_options"];
        assert_eq!(common, &json!({"idle_timeout": "4s"}));
    }

    #[test]
    fn a_pinned_source_port_with_so_reuseaddr() {
        let bind = upstream_bind_config(SocketAddr::from(([0, 0, 0, 0], 40000)), &[SO_REUSEADDR]);
        assert_eq!(
            bind,
            json!({
                "source_address": {"address": "0.0.0.0", "port_value": 40000},
                "socket_options": [{"level": 1, "name": 2, "int_value": 1, "state": "STATE_PREBIND"}],
            })
        );
        let any = upstream_bind_config(SocketAddr::from(([0, 0, 0, 0], 0)), &[]);
        assert!(any.get("socket_options").is_none());
    }

    #[test]
    fn breakers_and_keepalive_carry_only_what_is_set() {
        assert_eq!(
            circuit_breakers(Some(1), None, None, Some(3)),
            json!({"thresholds": [{"priority": "DEFAULT", "max_connections": 1, "max_retries": 3}]})
        );
        assert_eq!(
            tcp_keepalive(Some(3), Some(10), None),
            json!({"tcp_keepalive": {"keepalive_probes": 3, "keepalive_time": 10}})
        );
    }
}
