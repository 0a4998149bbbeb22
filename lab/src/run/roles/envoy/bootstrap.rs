//! The plain lab Envoy's shape: a scenario's `envoy` node compiled to a
//! bootstrap of `envoy::config` blocks — its listeners (HTTP, TCP proxy,
//! sniffing, mTLS strict or permissive) with the filter on every chain, and
//! its clusters. Istio's sidecar is the other shape (`envoy::istio::sidecar`).

use std::net::SocketAddr;
use std::path::Path;

use serde_json::Value;

use super::{access_log_name, ADMIN_PORT};
use crate::envoy::certs;
use crate::envoy::config;
use crate::run::runtime::SHARED_DIR;
use crate::scenario::envoy::{
    EnvoyNode, Listener, ListenerKind, Mtls, Retry, RetryPreset, Upstream,
};

/// The bootstrap of an Envoy node; `resolve` maps an endpoint
/// (`node[:port]`) to the address this Envoy reaches it at.
pub fn bootstrap(
    node: &str,
    envoy: &EnvoyNode,
    wasm: &Path,
    resolve: &dyn Fn(&str) -> Option<SocketAddr>,
) -> Result<Value, String> {
    let filter = filter_config(envoy);
    let access_log = Path::new(SHARED_DIR).join(access_log_name(node));
    let chains = Chains {
        envoy,
        wasm,
        filter: &filter,
        access_log: &access_log,
    };
    let mut listeners = Vec::new();
    for (name, listener) in &envoy.listeners {
        let bind = SocketAddr::from(([0, 0, 0, 0], listener.port));
        let filters = match listener.kind {
            ListenerKind::Http => chains.http(name, listener),
            ListenerKind::TcpProxy | ListenerKind::Sniffing => {
                chains.tcp_proxy(name, listener.upstream.as_deref().unwrap_or_default())
            }
        };
        let mut built = match (listener.kind, listener.mtls) {
            (ListenerKind::Sniffing, _) => {
                let http = config::matched_chain(
                    name,
                    config::chain_match(Some("raw_buffer"), &config::HTTP_APPLICATION_PROTOCOLS),
                    chains.http(name, listener),
                );
                let passthrough = listener.passthrough.as_deref().unwrap_or_default();
                let default_chain = config::filter_chain(
                    FALLTHROUGH_CHAIN,
                    chains.tcp_proxy(FALLTHROUGH_CHAIN, passthrough),
                );
                config::sniffing_listener(
                    name,
                    bind,
                    listener.detection_timeout_ms.unwrap_or_default(),
                    listener.continue_on_timeout.unwrap_or(true),
                    vec![http],
                    Some(default_chain),
                )
            }
            (_, None) => config::listener_on(name, bind, vec![config::filter_chain(name, filters)]),
            (_, Some(Mtls::Strict)) => {
                let mut chain = config::filter_chain(name, filters);
                chain["transport_socket"] = config::downstream_mtls(&tls_files(node, vec![]), true);
                config::listener_on(name, bind, vec![chain])
            }
            (_, Some(Mtls::Permissive)) => {
                let mut tls = config::matched_chain(
                    name,
                    config::chain_match(Some("tls"), &[]),
                    filters.clone(),
                );
                tls["transport_socket"] = config::downstream_mtls(&tls_files(node, vec![]), true);
                let plaintext = config::matched_chain(
                    &format!("{name}-plaintext"),
                    config::chain_match(Some("raw_buffer"), &[]),
                    filters,
                );
                let mut listener = config::listener_on(name, bind, vec![tls, plaintext]);
                listener["listener_filters"] = serde_json::json!([config::tls_inspector()]);
                listener
            }
        };
        // Listener stats read `listener.<name>.*` (not the address).
        built["stat_prefix"] = serde_json::json!(name);
        listeners.push(built);
    }
    let mut clusters = Vec::new();
    for (name, upstream) in &envoy.upstreams {
        let endpoints = upstream
            .endpoints
            .iter()
            .map(|e| resolve(e).ok_or_else(|| format!("cannot reach endpoint `{e}`")))
            .collect::<Result<Vec<_>, _>>()?;
        let mut built = cluster(name, upstream, &endpoints);
        if upstream.mtls {
            // Only the endpoints' own identities, as Istio verifies a
            // destination's service account.
            let peers: Vec<String> = upstream
                .endpoints
                .iter()
                .map(|e| certs::spiffe_id(e.split(':').next().unwrap_or_default()))
                .collect();
            let files = tls_files(node, peers);
            built["transport_socket"] = config::upstream_mtls(&files, None, &[]);
        }
        clusters.push(built);
    }
    let admin = SocketAddr::from(([0, 0, 0, 0], ADMIN_PORT));
    Ok(config::bootstrap_with_admin(listeners, clusters, admin))
}

/// The default chain of a sniffing listener: Istio's outbound name, listed
/// in the node's `fallthrough_chains` (`filter_config`).
pub const FALLTHROUGH_CHAIN: &str = "PassthroughFilterChain";

/// Builds the filters of a node's chains: `connlab_net` first on every one.
struct Chains<'a> {
    envoy: &'a EnvoyNode,
    wasm: &'a Path,
    filter: &'a Value,
    access_log: &'a Path,
}

impl Chains<'_> {
    /// `connlab_net`, then an HTTP connection manager with `connlab_http`
    /// and the listener's routes.
    fn http(&self, name: &str, listener: &Listener) -> Vec<Value> {
        let routes = listener
            .all_routes()
            .into_iter()
            .map(|(prefix, upstream)| route(prefix, upstream, &self.envoy.upstreams[upstream]))
            .collect();
        let http_filters = vec![config::http_wasm(
            self.wasm,
            "connlab_http",
            Some(self.filter),
        )];
        // Two access logs: Istio's TEXT format (what a mesh operator reads,
        // kept as evidence) and the checker's JSON fields.
        let logs = vec![
            config::istio_access_log(self.access_log),
            config::stdout_json_access_log(),
        ];
        let mut hcm = config::hcm(name, http_filters, routes, logs);
        config::set_downstream_timeouts(&mut hcm, &listener.downstream_timeouts());
        vec![config::net_wasm(self.wasm, Some(self.filter)), hcm]
    }

    /// `connlab_net`, then a TCP proxy to `upstream`.
    fn tcp_proxy(&self, name: &str, upstream: &str) -> Vec<Value> {
        let mut proxy = config::tcp_proxy(name, upstream);
        proxy["typed_config"]["access_log"] =
            serde_json::json!([config::istio_access_log(self.access_log)]);
        vec![config::net_wasm(self.wasm, Some(self.filter)), proxy]
    }
}

/// The node's certificate files as the container sees them (made per run by
/// `certs::Authority::issue` in the shared directory).
fn tls_files(node: &str, peer_ids: Vec<String>) -> config::TlsFiles {
    let dir = Path::new(SHARED_DIR);
    config::TlsFiles {
        cert: dir.join(format!("{node}.pem")),
        key: dir.join(format!("{node}.key")),
        ca: dir.join(certs::CA_FILE),
        peer_ids,
    }
}

/// The filter's configuration as written in the scenario. A node with a
/// sniffing listener also names its fall-through chain (unless the scenario
/// lists its own): the filter's default is where Istio places a NETWORK
/// plugin (`virtualInbound`), not this Istio-named outbound chain, which
/// carries no plugin in a real sidecar but does in the lab's plain Envoy.
pub fn filter_config(envoy: &EnvoyNode) -> Value {
    let mut config = serde_json::to_value(&envoy.filter).unwrap_or_default();
    let sniffs = envoy
        .listeners
        .values()
        .any(|l| l.kind == ListenerKind::Sniffing);
    if let (true, Some(map)) = (sniffs, config.as_object_mut()) {
        map.entry("fallthrough_chains")
            .or_insert_with(|| serde_json::json!([FALLTHROUGH_CHAIN]));
    }
    config
}

fn route(prefix: &str, cluster: &str, upstream: &Upstream) -> Value {
    let mut route = config::route(prefix, cluster);
    if let Some(ms) = upstream.route_timeout_ms {
        route["route"]["timeout"] = config::duration_ms(ms);
    }
    match &upstream.retry {
        None | Some(Retry::Preset(RetryPreset::None)) => {}
        Some(Retry::Preset(RetryPreset::IstioDefault)) => {
            route["route"]["retry_policy"] = config::istio_default_retry_policy();
        }
        Some(Retry::Policy(p)) => {
            route["route"]["retry_policy"] =
                config::retry_policy(&p.retry_on, p.num_retries, &p.retriable_status_codes);
        }
    }
    route
}

fn cluster(name: &str, upstream: &Upstream, endpoints: &[SocketAddr]) -> Value {
    let mut cluster = config::cluster(name, endpoints);
    cluster["connect_timeout"] = config::duration_ms(upstream.connect_timeout_ms);
    if upstream.idle_timeout_ms.is_some() || upstream.max_requests_per_connection.is_some() {
        cluster["typed_extension_protocol_options"] = config::http1_protocol_options(
            upstream.idle_timeout_ms,
            upstream.max_requests_per_connection,
        );
    }
    if let Some(bind) = &upstream.bind {
        let options: Vec<config::SocketOption> = bind
            .socket_options
            .iter()
            .map(|o| config::SocketOption {
                level: o.level,
                name: o.name,
                value: o.int_value,
            })
            .collect();
        let source = SocketAddr::from(([0, 0, 0, 0], bind.source_port));
        cluster["upstream_bind_config"] = config::upstream_bind_config(source, &options);
    }
    if let Some(cb) = &upstream.circuit_breakers {
        cluster["circuit_breakers"] = config::circuit_breakers(
            cb.max_connections,
            cb.max_pending_requests,
            cb.max_requests,
            cb.max_retries,
        );
    }
    if let Some(k) = &upstream.tcp_keepalive {
        cluster["upstream_connection_options"] =
            config::tcp_keepalive(k.probes, k.time_s, k.interval_s);
    }
    if let Some(h) = &upstream.health_check {
        cluster["health_checks"] = config::health_check(h.interval_ms, h.timeout_ms);
    }
    cluster
}
