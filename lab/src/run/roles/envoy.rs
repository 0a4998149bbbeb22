//! An `envoy` node: its scenario description compiled to a bootstrap with
//! `envoy_config`, Envoy started in a container, and what it saw collected.
//! Envoy's log goes to the container's stderr (the filter's events among
//! them), the checker's JSON access log to stdout, Istio's TEXT access log
//! to `<node>.access.log` in the run's shared directory. The admin API is
//! read from inside the container (curl on loopback), like every probe.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::envoy::certs;
use crate::envoy::config;
use crate::evidence::{self, EnvoyEvidence};
use crate::paths;
use crate::run::runtime::{ContainerSpec, Lab, LabError, SHARED_DIR};
use crate::scenario::envoy::{
    EnvoyNode, Listener, ListenerKind, Mtls, Retry, RetryPreset, Upstream,
};

/// Every lab Envoy's admin port (on all its addresses: the host reads it).
pub const ADMIN_PORT: u16 = 9901;
pub const WASM_NAME: &str = "connlab_filter.wasm";

/// The Istio TEXT access log's file name, in the run's shared directory.
pub fn access_log_name(node: &str) -> String {
    format!("{node}.access.log")
}

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

/// Writes the config and the filter module into the run's shared
/// directory and starts Envoy; returns when its admin says LIVE.
pub async fn start(
    lab: &mut Lab,
    name: &str,
    mut spec: ContainerSpec,
    envoy: &EnvoyNode,
    resolve: &dyn Fn(&str) -> Option<SocketAddr>,
    ca: &certs::Authority,
) -> Result<(), LabError> {
    issue_certificate(ca, name).map_err(|e| LabError::role(name, e.to_string()))?;
    let wasm = lab.dir().join(WASM_NAME);
    if !wasm.exists() {
        let built = paths::filter_wasm();
        std::fs::copy(&built, &wasm).map_err(|e| {
            LabError::role(
                name,
                format!("{}: {e} (run `make filter`)", built.display()),
            )
        })?;
    }
    let (config_name, config) =
        config_file(name, envoy, resolve).map_err(|e| LabError::role(name, e))?;
    std::fs::write(lab.dir().join(&config_name), config)?;
    command(&config_name, &mut spec);
    if let Some(bin) = std::env::var_os(ENVOY_BIN_ENV) {
        // Another Envoy build (e.g. a version from `make
        // test-envoy-versions`' venvs) run in place of the image's.
        let copy = lab.dir().join(ENVOY_BIN_NAME);
        if !copy.exists() {
            std::fs::copy(&bin, &copy).map_err(|e| {
                LabError::role(
                    name,
                    format!("{ENVOY_BIN_ENV}={}: {e}", bin.to_string_lossy()),
                )
            })?;
        }
        spec.cmd[0] = format!("{SHARED_DIR}/{ENVOY_BIN_NAME}");
    }
    lab.start(spec).await?;
    let ready = format!("curl -sf http://127.0.0.1:{ADMIN_PORT}/ready | grep -qx LIVE");
    lab.wait_until(name, &ready, Duration::from_secs(30)).await
}

/// A host Envoy binary the lab's Envoy containers run instead of the
/// image's (`/connlab/envoy`); for dumps and checks across Envoy versions.
pub const ENVOY_BIN_ENV: &str = "CONNLAB_ENVOY_BIN";
const ENVOY_BIN_NAME: &str = "envoy";

/// Every Envoy gets its certificate (SPIFFE identity + its node name); only
/// TLS listeners and upstreams use them.
pub fn issue_certificate(
    ca: &certs::Authority,
    name: &str,
) -> Result<certs::NodeCert, certs::CertError> {
    ca.issue(name, &[name])
}

/// Where the filter module is in the container.
pub fn wasm_in_container() -> std::path::PathBuf {
    Path::new(SHARED_DIR).join(WASM_NAME)
}

/// The node's bootstrap as the file the container reads from the shared
/// directory: its name (`<node>.json`) and its pretty JSON.
pub fn config_file(
    name: &str,
    envoy: &EnvoyNode,
    resolve: &dyn Fn(&str) -> Option<SocketAddr>,
) -> Result<(String, String), String> {
    let config = bootstrap(name, envoy, &wasm_in_container(), resolve)?;
    let text = serde_json::to_string_pretty(&config).unwrap_or_default() + "\n";
    Ok((format!("{name}.json"), text))
}

/// Envoy's command line, reading `config_name` from the shared directory,
/// set on `spec`.
pub fn command(config_name: &str, spec: &mut ContainerSpec) {
    let cmd = [
        "envoy",
        "-c",
        &format!("{SHARED_DIR}/{config_name}"),
        // One worker: one connection pool and one wasm VM see every request,
        // as in a sidecar under light load.
        "--concurrency",
        "1",
        "--disable-hot-restart",
        "-l",
        "info",
        // Access logs are flushed on this timer (default 10 s); the evidence
        // is read as soon as the workload ends.
        "--file-flush-interval-msec",
        "100",
    ];
    spec.cmd = cmd.iter().map(|s| s.to_string()).collect();
}

/// What the Envoy saw: its log and access logs, and its admin API's stats,
/// config dump and clusters. The admin API is read from inside the
/// container (curl on loopback): a node a fault blackholed drops the
/// host's requests too, and its counters are still evidence.
pub async fn collect(lab: &Lab, name: &str) -> Result<EnvoyEvidence, LabError> {
    let (stdout, stderr) = lab.logs(name).await;
    let logs = Logs {
        envoy: stderr,
        json_access: stdout,
        text_access: std::fs::read_to_string(lab.dir().join(access_log_name(name)))
            .unwrap_or_default(),
    };
    collect_from(lab, name, ADMIN_PORT, logs).await
}

/// An Envoy's logs, wherever it wrote them.
pub struct Logs {
    /// Envoy's own log (the filter's events among its lines).
    pub envoy: String,
    /// The checker's JSON access log.
    pub json_access: String,
    /// Istio's TEXT access log.
    pub text_access: String,
}

/// `collect` for an Envoy whose admin is on `admin_port` and whose logs
/// were read already (a sidecar's, from files).
pub async fn collect_from(
    lab: &Lab,
    name: &str,
    admin_port: u16,
    logs: Logs,
) -> Result<EnvoyEvidence, LabError> {
    let admin = |path: &'static str| async move {
        let url = format!("http://127.0.0.1:{admin_port}{path}");
        lab.exec_ok(name, &["curl", "-sSf", "--max-time", "10", &url])
            .await
            .map_err(|e| LabError::role(name, format!("admin {path}: {e}")))
    };
    let stats_text = admin("/stats").await?;
    let config_dump = admin("/config_dump").await?;
    let clusters = admin("/clusters").await?;
    Ok(evidence_of(logs, &stats_text, config_dump, clusters))
}

/// An Envoy's evidence from its logs and its admin API's answers
/// (`/stats`, `/config_dump`, `/clusters`).
pub fn evidence_of(
    logs: Logs,
    stats_text: &str,
    config_dump: String,
    clusters: String,
) -> EnvoyEvidence {
    EnvoyEvidence {
        events: evidence::filter_events(&logs.envoy),
        access_log: evidence::json_lines(&logs.json_access),
        access_log_text: logs.text_access,
        stats: evidence::parse_stats(stats_text),
        config_dump,
        clusters,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> EnvoyNode {
        let mut envoy = EnvoyNode::default();
        envoy.listeners.insert(
            "main".into(),
            toml::from_str("kind = \"http\"\nport = 10000\nupstream = \"backend\"").unwrap(),
        );
        let upstream: Upstream = toml::from_str(
            "endpoints = [\"backend\"]\nidle_timeout_ms = 4000\nretry = \"istio-default\"",
        )
        .unwrap();
        envoy.upstreams.insert("backend".into(), upstream);
        envoy
            .filter
            .insert("events".into(), toml::Value::String("all".into()));
        envoy
    }

    #[test]
    fn an_http_listener_has_both_filters_and_both_access_logs() {
        let resolve = |_: &str| Some(SocketAddr::from(([10, 0, 0, 2], 8080)));
        let config = bootstrap("envoy", &node(), Path::new("/connlab/f.wasm"), &resolve).unwrap();
        let listener = &config["static_resources"]["listeners"][0];
        let filters = &listener["filter_chains"][0]["filters"];
        assert_eq!(filters[0]["name"], "wasm.connlab_net");
        let hcm = &filters[1]["typed_config"];
        assert_eq!(hcm["http_filters"][0]["name"], "wasm.connlab_http");
        let plugin = &hcm["http_filters"][0]["typed_config"]["config"]["configuration"]["value"];
        assert_eq!(plugin, r#"{"events":"all","unknown_history_ms":0}"#);
        assert_eq!(hcm["access_log"].as_array().unwrap().len(), 2);
        let route = &hcm["route_config"]["virtual_hosts"][0]["routes"][0]["route"];
        assert_eq!(route["retry_policy"]["num_retries"], 2);
        let cluster = &config["static_resources"]["clusters"][0];
        assert_eq!(cluster["name"], "backend");
        assert_eq!(cluster["connect_timeout"], "5s");
        let options = &cluster["typed_extension_protocol_options"]
            ["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"];
        assert_eq!(
            options["common_http_protocol_options"]["idle_timeout"],
            "4s"
        );
    }

    #[test]
    fn an_unreachable_endpoint_is_an_error() {
        let err = bootstrap("envoy", &node(), Path::new("/f.wasm"), &|_| None).unwrap_err();
        assert!(err.contains("`backend`"), "{err}");
    }

    /// The sniff-timeout scenario's two sidecars.
    fn sidecars() -> (EnvoyNode, EnvoyNode) {
        let caller: EnvoyNode = toml::from_str(
            r#"
            upstreams.server = { endpoints = ["server"], mtls = true }
            upstreams.PassthroughCluster = { endpoints = ["server"] }
            [listeners.outbound]
            kind = "sniffing"
            port = 10000
            upstream = "server"
            passthrough = "PassthroughCluster"
            detection_timeout_ms = 100
            "#,
        )
        .unwrap();
        let server: EnvoyNode = toml::from_str(
            r#"
            listeners.inbound = { kind = "http", port = 15006, upstream = "backend", mtls = "strict" }
            upstreams.backend = { endpoints = ["backend"] }
            "#,
        )
        .unwrap();
        (caller, server)
    }

    fn build(node: &str, envoy: &EnvoyNode) -> Value {
        let resolve = |_: &str| Some(SocketAddr::from(([10, 0, 0, 2], 15006)));
        bootstrap(node, envoy, Path::new("/connlab/f.wasm"), &resolve).unwrap()
    }

    #[test]
    fn a_sniffing_listener_falls_through_to_a_passthrough_chain() {
        let (caller, _) = sidecars();
        let config = build("caller", &caller);
        let listener = &config["static_resources"]["listeners"][0];
        assert_eq!(listener["stat_prefix"], "outbound");
        assert_eq!(listener["listener_filters_timeout"], "0.1s");
        assert_eq!(listener["continue_on_listener_filters_timeout"], true);
        let http = &listener["filter_chains"][0];
        assert_eq!(
            http["filter_chain_match"]["application_protocols"],
            serde_json::json!(["http/1.0", "http/1.1", "h2c"])
        );
        assert_eq!(http["filters"][0]["name"], "wasm.connlab_net");
        let default = &listener["default_filter_chain"];
        assert_eq!(default["name"], FALLTHROUGH_CHAIN);
        assert_eq!(default["filters"][0]["name"], "wasm.connlab_net");
        // The filter is told that chain is the fall-through (its default
        // is Istio's inbound one), and a scenario's own list wins.
        let plugin = &default["filters"][0]["typed_config"]["config"]["configuration"]["value"];
        assert_eq!(
            plugin,
            r#"{"fallthrough_chains":["PassthroughFilterChain"],"unknown_history_ms":0}"#
        );
        let mut own = caller.clone();
        own.filter
            .insert("fallthrough_chains".into(), toml::Value::Array(vec![]));
        assert_eq!(
            filter_config(&own)["fallthrough_chains"],
            serde_json::json!([])
        );
        let (_, server) = sidecars();
        assert!(filter_config(&server).get("fallthrough_chains").is_none());
        assert_eq!(
            default["filters"][1]["typed_config"]["cluster"],
            "PassthroughCluster"
        );
        // mTLS origination to the server, which must be the server.
        let clusters = config["static_resources"]["clusters"].as_array().unwrap();
        let server = clusters.iter().find(|c| c["name"] == "server").unwrap();
        let tls = &server["transport_socket"]["typed_config"]["common_tls_context"];
        assert_eq!(
            tls["tls_certificates"][0]["certificate_chain"]["filename"],
            "/connlab/caller.pem"
        );
        assert_eq!(
            tls["validation_context"]["match_typed_subject_alt_names"][0]["matcher"]["exact"],
            "spiffe://cluster.local/ns/lab/sa/server"
        );
        let passthrough = clusters
            .iter()
            .find(|c| c["name"] == "PassthroughCluster")
            .unwrap();
        assert!(passthrough.get("transport_socket").is_none(), "plaintext");
    }

    #[test]
    fn strict_and_permissive_downstream_mtls() {
        let (_, mut server) = sidecars();
        let strict = build("server", &server);
        let listener = &strict["static_resources"]["listeners"][0];
        let chains = listener["filter_chains"].as_array().unwrap();
        assert_eq!(chains.len(), 1);
        let context = &chains[0]["transport_socket"]["typed_config"];
        assert_eq!(context["require_client_certificate"], true);
        assert_eq!(
            context["common_tls_context"]["tls_certificates"][0]["private_key"]["filename"],
            "/connlab/server.key"
        );

        let inbound = server.listeners.get_mut("inbound").unwrap();
        inbound.mtls = Some(Mtls::Permissive);
        let permissive = build("server", &server);
        let listener = &permissive["static_resources"]["listeners"][0];
        assert_eq!(
            listener["listener_filters"][0]["name"],
            "envoy.filters.listener.tls_inspector"
        );
        let chains = listener["filter_chains"].as_array().unwrap();
        assert_eq!(chains[0]["filter_chain_match"]["transport_protocol"], "tls");
        assert!(chains[0].get("transport_socket").is_some());
        assert_eq!(chains[1]["name"], "inbound-plaintext");
        assert_eq!(
            chains[1]["filter_chain_match"]["transport_protocol"],
            "raw_buffer"
        );
        assert!(chains[1].get("transport_socket").is_none());
    }

    #[test]
    fn a_pinned_source_port() {
        let mut envoy = node();
        let upstream = envoy.upstreams.get_mut("backend").unwrap();
        upstream.bind = Some(
            toml::from_str(
                "source_port = 40000\nsocket_options = [{ level = 1, name = 2, int_value = 1 }]",
            )
            .unwrap(),
        );
        let config = build("envoy", &envoy);
        let bind = &config["static_resources"]["clusters"][0]["upstream_bind_config"];
        assert_eq!(bind["source_address"]["port_value"], 40000);
        assert_eq!(bind["socket_options"][0]["state"], "STATE_PREBIND");
    }
}
