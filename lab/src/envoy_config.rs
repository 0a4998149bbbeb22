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

#[derive(Debug, Clone)]
pub struct Route {
    pub prefix: String,
    pub cluster: String,
}

#[derive(Debug, Clone)]
pub struct HttpListener {
    pub name: String,
    pub bind: SocketAddr,
    pub routes: Vec<Route>,
    pub filter: Option<WasmFilter>,
}

#[derive(Debug, Clone)]
pub struct Cluster {
    pub name: String,
    pub endpoints: Vec<SocketAddr>,
    pub connect_timeout_ms: u64,
}

impl Cluster {
    pub fn new(name: &str, endpoints: Vec<SocketAddr>) -> Self {
        Cluster {
            name: name.into(),
            endpoints,
            connect_timeout_ms: 1000,
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
        let routes: Vec<Value> = self
            .routes
            .iter()
            .map(|r| json!({"match": {"prefix": r.prefix}, "route": {"cluster": r.cluster}}))
            .collect();
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
        json!({
            "name": self.name,
            "address": socket_address(self.bind),
            "filter_chains": [{"filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                    "stat_prefix": self.name,
                    "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": routes}]},
                    "http_filters": http_filters,
                },
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
        json!({
            "name": self.name,
            "type": "STATIC",
            "connect_timeout": duration_ms(self.connect_timeout_ms),
            "load_assignment": {"cluster_name": self.name, "endpoints": [{"lb_endpoints": endpoints}]},
        })
    }
}

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
