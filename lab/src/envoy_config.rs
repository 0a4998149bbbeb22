//! The one Envoy config builder: bootstrap blocks as JSON values (which
//! Envoy reads as YAML). The lab's scenario model compiles down to these
//! functions, and the filter tests and the benchmark call them directly and
//! adjust the values in place (`route["route"]["timeout"] = json!("0.3s")`).
//! One function per Envoy block; each returns the block and nothing else.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

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

// --- Sniffing listeners, TLS and upstream socket blocks (source-port-reuse,
// sniff-timeout). Each returns one Envoy block.

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

/// A certificate and key from PEM files, and the CA that peers' certificates
/// must chain to, with (if any) the SPIFFE URIs a peer may present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
    /// Peer identities accepted (URI SANs, e.g. `spiffe://.../sa/caller`);
    /// empty: any certificate the CA signed.
    pub peer_ids: Vec<String>,
}

impl TlsFiles {
    fn common_context(&self) -> Value {
        let mut validation = json!({"trusted_ca": {"filename": self.ca}});
        if !self.peer_ids.is_empty() {
            let sans: Vec<Value> = self
                .peer_ids
                .iter()
                .map(|id| json!({"san_type": "URI", "matcher": {"exact": id}}))
                .collect();
            validation["match_typed_subject_alt_names"] = json!(sans);
        }
        json!({
            "tls_certificates": [{
                "certificate_chain": {"filename": self.cert},
                "private_key": {"filename": self.key},
            }],
            "validation_context": validation,
        })
    }
}

/// Downstream mTLS (a server sidecar's inbound): the client must present a
/// certificate (`require_client_certificate`: Istio STRICT), or may
/// (validated when presented).
pub fn downstream_mtls(files: &TlsFiles, require_client_certificate: bool) -> Value {
    json!({
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
            "require_client_certificate": require_client_certificate,
            "common_tls_context": files.common_context(),
        },
    })
}

/// Upstream mTLS origination (a client sidecar's outbound): presents this
/// node's certificate, verifies the server's against the CA (and
/// `peer_ids`), sends `sni` and offers `alpn` (Istio: `istio-http/1.1`,
/// `istio`).
pub fn upstream_mtls(files: &TlsFiles, sni: Option<&str>, alpn: &[&str]) -> Value {
    let mut common = files.common_context();
    if !alpn.is_empty() {
        common["alpn_protocols"] = json!(alpn);
    }
    let mut context = json!({
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
        "common_tls_context": common,
    });
    if let Some(sni) = sni {
        context["sni"] = json!(sni);
    }
    json!({"name": "envoy.transport_sockets.tls", "typed_config": context})
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

    #[test]
    fn mtls_contexts_carry_certificate_ca_and_peer_identities() {
        let ids = vec!["spiffe://cluster.local/ns/lab/sa/caller".to_string()];
        let files = TlsFiles {
            cert: "/c/server.pem".into(),
            key: "/c/server.key".into(),
            ca: "/c/ca.pem".into(),
            peer_ids: ids.clone(),
        };
        let strict = downstream_mtls(&files, true);
        let context = &strict["typed_config"];
        assert_eq!(context["require_client_certificate"], true);
        let common = &context["common_tls_context"];
        assert_eq!(
            common["tls_certificates"][0]["private_key"]["filename"],
            "/c/server.key"
        );
        assert_eq!(
            common["validation_context"]["trusted_ca"]["filename"],
            "/c/ca.pem"
        );
        assert_eq!(
            common["validation_context"]["match_typed_subject_alt_names"],
            json!([{"san_type": "URI", "matcher": {"exact": ids[0]}}])
        );
        assert_eq!(
            downstream_mtls(&files, false)["typed_config"]["require_client_certificate"],
            false
        );

        let anyone = TlsFiles {
            peer_ids: vec![],
            ..files
        };
        let upstream = upstream_mtls(&anyone, Some("outbound_.8080_._.server"), &["istio"]);
        let context = &upstream["typed_config"];
        assert_eq!(context["sni"], "outbound_.8080_._.server");
        assert_eq!(
            context["common_tls_context"]["alpn_protocols"],
            json!(["istio"])
        );
        assert!(context["common_tls_context"]["validation_context"]
            .get("match_typed_subject_alt_names")
            .is_none());
        assert!(upstream_mtls(&anyone, None, &[])["typed_config"]
            .get("sni")
            .is_none());
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
