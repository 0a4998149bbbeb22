//! The facts of one cluster the rules need, each with the field it came
//! from: upstream protocol, idle timeout, requests per connection, bind
//! config, socket options, TCP keepalive, health checks, outlier detection.

use serde_json::Value;

use super::value::{as_u64, duration_ms, items, str_of};

const HTTP_OPTIONS: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";
/// Envoy's upstream idle timeout when none is set.
pub const DEFAULT_IDLE_MS: u64 = 3_600_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.1 to the upstream (explicit, or the downstream's, or ALPN
    /// that may fall back to it).
    Http1,
    /// HTTP/2 (or 3) only.
    Http2,
    /// No HTTP options: TCP, or HTTP/1.1 when a route sends to it.
    Unset,
}

/// A setting with the field path it is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field<T> {
    pub value: T,
    pub path: String,
}

#[derive(Debug, Clone)]
pub struct Cluster {
    pub protocol: Protocol,
    /// Where the HTTP options are (or would go).
    pub options_path: String,
    pub idle_timeout_ms: Option<Field<u64>>,
    pub max_requests_per_connection: Option<Field<u64>>,
    /// A fixed upstream source port (cluster's, else the bootstrap's
    /// `cluster_manager.upstream_bind_config`).
    pub bind_port: Option<Field<u64>>,
    /// (level, name, int value, path) of every socket option the cluster's
    /// bind config sets.
    pub socket_options: Vec<(i64, i64, Option<i64>, String)>,
    pub tcp_keepalive: Option<String>,
    pub health_checks: bool,
    pub outlier_detection: bool,
    /// Originates TLS (a TLS transport socket or a TLS socket match).
    pub tls: bool,
    /// Endpoints come from EDS (not in the dump unless `?include_eds`).
    pub eds: bool,
}

pub const TCP_USER_TIMEOUT: (i64, i64) = (6, 18);
pub const SO_KEEPALIVE: (i64, i64) = (1, 9);

impl Cluster {
    pub fn read(c: &Value, bootstrap: Option<&Value>) -> Cluster {
        let typed = c
            .get("typed_extension_protocol_options")
            .and_then(|t| t.get(HTTP_OPTIONS));
        let typed_path = format!("typed_extension_protocol_options[\"{HTTP_OPTIONS}\"]");
        let protocol = match typed {
            Some(o) => {
                let explicit = o.get("explicit_http_config");
                if explicit.is_some_and(|e| {
                    e.get("http2_protocol_options").is_some()
                        || e.get("http3_protocol_options").is_some()
                }) {
                    Protocol::Http2
                } else {
                    Protocol::Http1
                }
            }
            None if c.get("http2_protocol_options").is_some() => Protocol::Http2,
            None if c.get("http_protocol_options").is_some()
                || c.get("common_http_protocol_options").is_some() =>
            {
                Protocol::Http1
            }
            None => Protocol::Unset,
        };
        let common = |field: &str| -> Option<(Value, String)> {
            if let Some(v) =
                typed.and_then(|o| o.pointer(&format!("/common_http_protocol_options/{field}")))
            {
                return Some((
                    v.clone(),
                    format!("{typed_path}.common_http_protocol_options.{field}"),
                ));
            }
            c.pointer(&format!("/common_http_protocol_options/{field}"))
                .map(|v| (v.clone(), format!("common_http_protocol_options.{field}")))
        };
        let idle_timeout_ms = common("idle_timeout").and_then(|(v, path)| {
            Some(Field {
                value: duration_ms(&v)?,
                path,
            })
        });
        let max_requests_per_connection = common("max_requests_per_connection")
            .and_then(|(v, path)| {
                // A UInt32Value: a number, or `{"value": n}` in some printers.
                let n = as_u64(&v).or_else(|| v.get("value").and_then(as_u64))?;
                Some(Field { value: n, path })
            })
            .or_else(|| {
                let v = c.get("max_requests_per_connection")?;
                let n = as_u64(v).or_else(|| v.get("value").and_then(as_u64))?;
                Some(Field {
                    value: n,
                    path: "max_requests_per_connection".into(),
                })
            });
        let (bind, bind_path) = match c.get("upstream_bind_config") {
            Some(b) => (Some(b), "upstream_bind_config".to_string()),
            None => (
                bootstrap.and_then(|b| b.pointer("/cluster_manager/upstream_bind_config")),
                "(bootstrap) cluster_manager.upstream_bind_config".to_string(),
            ),
        };
        let bind_port = bind
            .and_then(|b| b.pointer("/source_address/port_value"))
            .and_then(as_u64)
            .filter(|&p| p != 0)
            .map(|p| Field {
                value: p,
                path: format!("{bind_path}.source_address.port_value"),
            });
        let socket_options = bind
            .map(|b| {
                items(b, "socket_options")
                    .iter()
                    .enumerate()
                    .filter_map(|(i, o)| {
                        let num = |k: &str| {
                            o.get(k)
                                .and_then(|v| v.as_i64().or_else(|| v.as_str()?.parse().ok()))
                        };
                        Some((
                            num("level")?,
                            num("name")?,
                            num("int_value"),
                            format!("{bind_path}.socket_options[{i}]"),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let tcp_keepalive = c
            .pointer("/upstream_connection_options/tcp_keepalive")
            .map(|_| "upstream_connection_options.tcp_keepalive".to_string());
        let tls_socket = |ts: &Value| {
            str_of(ts, "name").is_some_and(|n| n.contains("tls"))
                || ts
                    .pointer("/typed_config/@type")
                    .and_then(Value::as_str)
                    .is_some_and(|t| t.ends_with("UpstreamTlsContext"))
        };
        let tls = c.get("transport_socket").is_some_and(tls_socket)
            || items(c, "transport_socket_matches")
                .iter()
                .any(|m| m.get("transport_socket").is_some_and(tls_socket));
        Cluster {
            protocol,
            options_path: format!("{typed_path}.common_http_protocol_options"),
            idle_timeout_ms,
            max_requests_per_connection,
            bind_port,
            socket_options,
            tcp_keepalive,
            health_checks: !items(c, "health_checks").is_empty(),
            outlier_detection: c.get("outlier_detection").is_some(),
            tls,
            eds: str_of(c, "type") == Some("EDS") || c.get("eds_cluster_config").is_some(),
        }
    }

    pub fn socket_option(
        &self,
        (level, name): (i64, i64),
    ) -> Option<&(i64, i64, Option<i64>, String)> {
        self.socket_options
            .iter()
            .find(|(l, n, v, _)| *l == level && *n == name && v.unwrap_or(1) != 0)
    }
}
