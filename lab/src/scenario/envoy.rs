//! An `envoy` node, described the way an Envoy (or Istio) user would:
//! listeners, upstreams, and connlab's filter configuration. It compiles to
//! a bootstrap through `envoy_config` (see `roles::envoy::bootstrap`).

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvoyNode {
    /// By name (the name is Envoy's listener name and stat prefix).
    #[serde(default)]
    pub listeners: BTreeMap<String, Listener>,
    /// Clusters, by name (Envoy's stats read `cluster.<name>.*`).
    #[serde(default)]
    pub upstreams: BTreeMap<String, Upstream>,
    /// connlab's filter configuration, keys as the filter reads them
    /// (filter/README: `events`, `idle_match_before_ms`, ...). Both
    /// `connlab_http` (on every HTTP chain) and `connlab_net` (on every
    /// chain) get it; absent = the filter's defaults.
    #[serde(default)]
    pub filter: toml::Table,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListenerKind {
    /// An HTTP connection manager: `connlab_net`, then `connlab_http` and
    /// the router.
    Http,
    /// A TCP proxy to one upstream, behind `connlab_net`.
    TcpProxy,
    /// Protocol sniffing, as Istio's outbound listener for a port of unknown
    /// protocol: `tls_inspector` + `http_inspector` wait at most
    /// `detection_timeout_ms` for the first bytes; plaintext HTTP takes the
    /// HTTP chain (routes to `upstream`), anything else — and, with
    /// `continue_on_timeout`, a connection silent until the timeout — the
    /// default chain `PassthroughFilterChain`, a TCP proxy to `passthrough`.
    Sniffing,
}

/// Downstream mTLS on a listener, in Istio's PeerAuthentication terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mtls {
    /// Every connection must be TLS with a client certificate the run's CA
    /// signed (`require_client_certificate`); plaintext fails the handshake.
    Strict,
    /// `tls_inspector` picks: TLS connections get mTLS as in `strict`,
    /// plaintext ones a plaintext chain (`<listener>-plaintext`).
    Permissive,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listener {
    pub kind: ListenerKind,
    /// Bound on 0.0.0.0.
    pub port: u16,
    /// `http`: where the catch-all route `/` goes; `tcp_proxy`: where every
    /// connection goes.
    pub upstream: Option<String>,
    /// `http`: routes matched in order before the catch-all.
    #[serde(default)]
    pub routes: Vec<Route>,
    /// `http` / `tcp_proxy`: downstream mTLS with this node's certificate.
    pub mtls: Option<Mtls>,
    /// `sniffing`: where the default chain's TCP proxy goes.
    pub passthrough: Option<String>,
    /// `sniffing`: `listener_filters_timeout` (Istio's
    /// `protocolDetectionTimeout`).
    pub detection_timeout_ms: Option<u64>,
    /// `sniffing`: `continue_on_listener_filters_timeout` (Istio sets it;
    /// without it a connection silent until the timeout is closed).
    pub continue_on_timeout: Option<bool>,
    // The HTTP connection manager's downstream side (`http` and `sniffing`
    // listeners), Envoy's names; absent = Envoy's default. An idle HTTP/1.1
    // connection closes idle_timeout + drain_timeout + delayed_close_timeout
    // after its last response (measured; scenarios/client-pool-race.toml).
    /// `common_http_protocol_options.idle_timeout` (Envoy: 1 h).
    pub idle_timeout_ms: Option<u64>,
    /// `common_http_protocol_options.max_connection_duration` (none).
    pub max_connection_duration_ms: Option<u64>,
    /// `drain_timeout` (5 s).
    pub drain_timeout_ms: Option<u64>,
    /// `delayed_close_timeout` (1 s).
    pub delayed_close_timeout_ms: Option<u64>,
    /// `stream_idle_timeout` (5 min).
    pub stream_idle_timeout_ms: Option<u64>,
    /// `request_headers_timeout` (none).
    pub request_headers_timeout_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub prefix: String,
    pub upstream: String,
}

impl Listener {
    /// The HCM's downstream timeouts as set (`None` = Envoy's default).
    pub fn downstream_timeouts(&self) -> crate::envoy::config::DownstreamTimeouts {
        crate::envoy::config::DownstreamTimeouts {
            idle_timeout_ms: self.idle_timeout_ms,
            max_connection_duration_ms: self.max_connection_duration_ms,
            drain_timeout_ms: self.drain_timeout_ms,
            delayed_close_timeout_ms: self.delayed_close_timeout_ms,
            stream_idle_timeout_ms: self.stream_idle_timeout_ms,
            request_headers_timeout_ms: self.request_headers_timeout_ms,
        }
    }

    /// Every (prefix, upstream) of an `http` listener, the catch-all last.
    pub fn all_routes(&self) -> Vec<(&str, &str)> {
        let mut routes: Vec<(&str, &str)> = self
            .routes
            .iter()
            .map(|r| (r.prefix.as_str(), r.upstream.as_str()))
            .collect();
        if let Some(upstream) = &self.upstream {
            routes.push(("/", upstream));
        }
        routes
    }
}

/// A cluster, and what the routes to it do (Istio puts retries and timeouts
/// per destination too).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    /// Node names, `node` or `node:port` (without a port: a backend's 8080,
    /// an Envoy's only listener).
    pub endpoints: Vec<String>,
    /// The lab's default (5 s) is Envoy's own; Istio's is 10 s.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// The pool's idle timeout (Envoy: 1 h; Istio: DestinationRule
    /// `connectionPool.http.idleTimeout`).
    pub idle_timeout_ms: Option<u64>,
    /// Istio: `connectionPool.http.maxRequestsPerConnection`.
    pub max_requests_per_connection: Option<u32>,
    /// The route timeout (Envoy: 15 s).
    pub route_timeout_ms: Option<u64>,
    /// `"istio-default"`, or a policy table.
    pub retry: Option<Retry>,
    /// Pins the upstream connections' source (Envoy's
    /// `upstream_bind_config`).
    pub bind: Option<Bind>,
    /// Envoy's `circuit_breakers` default thresholds.
    pub circuit_breakers: Option<CircuitBreakers>,
    /// TCP keep-alive on upstream connections
    /// (`upstream_connection_options.tcp_keepalive`).
    pub tcp_keepalive: Option<TcpKeepalive>,
    /// Originate mTLS: present this node's certificate and accept only the
    /// endpoints' own (their SPIFFE identities, from the run's CA).
    #[serde(default)]
    pub mtls: bool,
    /// Active HTTP health checking: an endpoint that misses one check leaves
    /// the load balancer (as Kubernetes removes a NotReady node's endpoints)
    /// while its open connections stay pooled.
    pub health_check: Option<HealthCheck>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    pub interval_ms: u64,
    pub timeout_ms: u64,
}

fn default_connect_timeout_ms() -> u64 {
    5000
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Retry {
    Preset(RetryPreset),
    Policy(RetryPolicy),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RetryPreset {
    /// No retry policy on the route.
    None,
    /// Istio's default: 2 retries on connect-failure, refused-stream,
    /// unavailable, cancelled and a 503 from upstream.
    IstioDefault,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    pub retry_on: String,
    pub num_retries: u32,
    #[serde(default)]
    pub retriable_status_codes: Vec<u16>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bind {
    /// 0 = any.
    #[serde(default)]
    pub source_port: u16,
    /// Socket options set before bind, e.g. `{ level = 1, name = 2,
    /// int_value = 1 }` (SO_REUSEADDR).
    #[serde(default)]
    pub socket_options: Vec<SocketOption>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SocketOption {
    pub level: i64,
    pub name: i64,
    pub int_value: i64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CircuitBreakers {
    pub max_connections: Option<u32>,
    pub max_pending_requests: Option<u32>,
    pub max_requests: Option<u32>,
    pub max_retries: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpKeepalive {
    pub time_s: Option<u32>,
    pub interval_s: Option<u32>,
    pub probes: Option<u32>,
}
