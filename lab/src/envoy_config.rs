//! Envoy bootstrap configs generated from typed descriptions, as JSON (which
//! Envoy reads as YAML). One place knows Envoy's config shape; tests and
//! scenarios describe listeners, routes and clusters in connlab's terms.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde_json::{json, Value};

/// The connlab wasm filter as Envoy should load it.
#[derive(Debug, Clone)]
pub struct WasmFilter {
    pub path: PathBuf,
    /// `connlab_http` or `connlab_net`.
    pub root_id: String,
    /// The plugin configuration (Istio's `pluginConfig`); `None` = defaults.
    pub config: Option<Value>,
}

impl WasmFilter {
    pub fn http(path: PathBuf) -> Self {
        WasmFilter {
            path,
            root_id: "connlab_http".into(),
            config: None,
        }
    }

    fn plugin(&self) -> Value {
        let mut plugin = json!({
            "name": "connlab",
            "root_id": self.root_id,
            "vm_config": {
                "vm_id": "connlab",
                "runtime": "envoy.wasm.runtime.v8",
                "code": {"local": {"filename": self.path}},
            },
        });
        if let Some(config) = &self.config {
            plugin["configuration"] = json!({
                "@type": "type.googleapis.com/google.protobuf.StringValue",
                "value": config.to_string(),
            });
        }
        plugin
    }
}

#[derive(Debug, Clone, Default)]
pub struct Route {
    pub prefix: String,
    pub cluster: String,
    /// Route timeout; `None` keeps Envoy's default (15 s).
    pub timeout_ms: Option<u64>,
    pub retry: Option<Retry>,
}

impl Route {
    pub fn new(prefix: &str, cluster: &str) -> Self {
        Route {
            prefix: prefix.into(),
            cluster: cluster.into(),
            ..Default::default()
        }
    }

    fn to_json(&self) -> Value {
        let mut route = json!({"cluster": self.cluster});
        if let Some(ms) = self.timeout_ms {
            route["timeout"] = json!(duration_ms(ms));
        }
        if let Some(retry) = &self.retry {
            route["retry_policy"] = json!({
                "retry_on": retry.retry_on,
                "num_retries": retry.num_retries,
                "retriable_status_codes": retry.retriable_status_codes,
            });
        }
        json!({"match": {"prefix": self.prefix}, "route": route})
    }
}

/// A route retry policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Retry {
    pub retry_on: String,
    pub num_retries: u32,
    pub retriable_status_codes: Vec<u16>,
}

impl Retry {
    /// What Istio configures on every route unless told otherwise
    /// (pilot's default retry policy): 2 retries on connection failures and
    /// on a 503 from upstream.
    pub fn istio_default() -> Self {
        Retry {
            retry_on: "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
                .into(),
            num_retries: 2,
            retriable_status_codes: vec![503],
        }
    }
}

#[derive(Debug, Clone)]
pub struct HttpListener {
    pub name: String,
    pub bind: SocketAddr,
    pub routes: Vec<Route>,
    pub filter: Option<WasmFilter>,
    /// Envoy's own access log, one JSON object per request on stdout: the
    /// proxy's view, independent of the filter's.
    pub access_log: bool,
}

#[derive(Debug, Clone)]
pub struct Cluster {
    pub name: String,
    pub endpoints: Vec<SocketAddr>,
    pub connect_timeout_ms: u64,
    /// Upstream connection idle timeout (Istio: DestinationRule
    /// `connectionPool.http.idleTimeout`); `None` keeps Envoy's 1 h.
    pub idle_timeout_ms: Option<u64>,
}

impl Cluster {
    pub fn new(name: &str, endpoints: Vec<SocketAddr>) -> Self {
        Cluster {
            name: name.into(),
            endpoints,
            connect_timeout_ms: 1000,
            idle_timeout_ms: None,
        }
    }
}

fn socket_address(addr: SocketAddr) -> Value {
    json!({"socket_address": {"address": addr.ip().to_string(), "port_value": addr.port()}})
}

fn duration_ms(ms: u64) -> String {
    format!("{}s", ms as f64 / 1000.0)
}

impl HttpListener {
    fn to_json(&self) -> Value {
        let routes: Vec<Value> = self.routes.iter().map(Route::to_json).collect();
        let mut http_filters = Vec::new();
        if let Some(filter) = &self.filter {
            http_filters.push(json!({
                "name": "connlab",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
                    "config": filter.plugin(),
                },
            }));
        }
        http_filters.push(json!({
            "name": "envoy.filters.http.router",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
        }));
        let mut manager = json!({
            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": self.name,
            "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": routes}]},
            "http_filters": http_filters,
        });
        if self.access_log {
            manager["access_log"] = json!([{
                "name": "envoy.access_loggers.stdout",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
                    "log_format": {"json_format": ACCESS_LOG_FIELDS.clone()},
                },
            }]);
        }
        json!({
            "name": self.name,
            "address": socket_address(self.bind),
            "filter_chains": [{"filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": manager,
            }]}],
        })
    }
}

impl Cluster {
    fn to_json(&self) -> Value {
        let endpoints: Vec<Value> = self
            .endpoints
            .iter()
            .map(|a| json!({"endpoint": {"address": socket_address(*a)}}))
            .collect();
        let mut cluster = json!({
            "name": self.name,
            "type": "STATIC",
            "connect_timeout": duration_ms(self.connect_timeout_ms),
            "load_assignment": {"cluster_name": self.name, "endpoints": [{"lb_endpoints": endpoints}]},
        });
        if let Some(ms) = self.idle_timeout_ms {
            cluster["typed_extension_protocol_options"] = json!({
                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                    "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                    "common_http_protocol_options": {"idle_timeout": duration_ms(ms)},
                    "explicit_http_config": {"http_protocol_options": {}},
                },
            });
        }
        cluster
    }
}

/// Fields of Envoy's access log (`HttpListener::access_log`).
static ACCESS_LOG_FIELDS: std::sync::LazyLock<Value> = std::sync::LazyLock::new(|| {
    json!({
        "code": "%RESPONSE_CODE%",
        "flags": "%RESPONSE_FLAGS%",
        "details": "%RESPONSE_CODE_DETAILS%",
        "attempts": "%UPSTREAM_REQUEST_ATTEMPT_COUNT%",
        "upstream_local": "%UPSTREAM_LOCAL_ADDRESS%",
        "failure": "%UPSTREAM_TRANSPORT_FAILURE_REASON%",
    })
});

/// A whole bootstrap: listeners, clusters and the admin endpoint.
pub fn bootstrap(listeners: &[HttpListener], clusters: &[Cluster], admin: SocketAddr) -> Value {
    json!({
        "admin": {"address": socket_address(admin)},
        "static_resources": {
            "listeners": listeners.iter().map(HttpListener::to_json).collect::<Vec<_>>(),
            "clusters": clusters.iter().map(Cluster::to_json).collect::<Vec<_>>(),
        },
    })
}
