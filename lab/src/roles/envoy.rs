//! An `envoy` node: its scenario description compiled to a bootstrap with
//! `envoy_config`, Envoy started in a container, and what it saw collected.
//! Envoy's log goes to the container's stderr (the filter's events among
//! them), the checker's JSON access log to stdout, Istio's TEXT access log
//! to `<node>.access.log` in the run's shared directory. The admin API is
//! read from the host with `reqwest`.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::envoy_config as config;
use crate::evidence::{self, EnvoyEvidence};
use crate::paths;
use crate::runtime::{ContainerSpec, Lab, LabError, SHARED_DIR};
use crate::scenario::envoy::{EnvoyNode, ListenerKind, Retry, RetryPreset, Upstream};

/// Every lab Envoy's admin port (on all its addresses: the host reads it).
pub const ADMIN_PORT: u16 = 9901;
const WASM_NAME: &str = "connlab_filter.wasm";

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
    let mut listeners = Vec::new();
    for (name, listener) in &envoy.listeners {
        let net = config::net_wasm(wasm, Some(&filter));
        let filters = match listener.kind {
            ListenerKind::Http => {
                let routes = listener
                    .all_routes()
                    .into_iter()
                    .map(|(prefix, upstream)| route(prefix, upstream, &envoy.upstreams[upstream]))
                    .collect();
                let http_filters = vec![config::http_wasm(wasm, "connlab_http", Some(&filter))];
                // Two access logs: Istio's TEXT format (what a mesh operator
                // reads, kept as evidence) and the checker's JSON fields.
                let logs = vec![
                    config::istio_access_log(&access_log),
                    config::stdout_json_access_log(),
                ];
                vec![net, config::hcm(name, http_filters, routes, logs)]
            }
            ListenerKind::TcpProxy => {
                let upstream = listener.upstream.as_deref().unwrap_or_default();
                let mut proxy = config::tcp_proxy(name, upstream);
                proxy["typed_config"]["access_log"] =
                    serde_json::json!([config::istio_access_log(&access_log)]);
                vec![net, proxy]
            }
        };
        let bind = SocketAddr::from(([0, 0, 0, 0], listener.port));
        let chain = config::filter_chain(name, filters);
        listeners.push(config::listener_on(name, bind, vec![chain]));
    }
    let mut clusters = Vec::new();
    for (name, upstream) in &envoy.upstreams {
        let endpoints = upstream
            .endpoints
            .iter()
            .map(|e| resolve(e).ok_or_else(|| format!("cannot reach endpoint `{e}`")))
            .collect::<Result<Vec<_>, _>>()?;
        clusters.push(cluster(name, upstream, &endpoints));
    }
    let admin = SocketAddr::from(([0, 0, 0, 0], ADMIN_PORT));
    Ok(config::bootstrap_with_admin(listeners, clusters, admin))
}

/// The filter's configuration as written in the scenario.
pub fn filter_config(envoy: &EnvoyNode) -> Value {
    serde_json::to_value(&envoy.filter).unwrap_or_default()
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
) -> Result<(), LabError> {
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
    let in_container = Path::new(SHARED_DIR).join(WASM_NAME);
    let config =
        bootstrap(name, envoy, &in_container, resolve).map_err(|e| LabError::role(name, e))?;
    let config_name = format!("{name}.json");
    std::fs::write(
        lab.dir().join(&config_name),
        serde_json::to_vec_pretty(&config).unwrap_or_default(),
    )?;
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
    lab.start(spec).await?;
    let ip = lab.ip(name).await?;
    wait_live(lab, name, ip, Duration::from_secs(30)).await
}

fn http() -> reqwest::Client {
    // Straight to the container: never through a proxy from the environment.
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_default()
}

async fn admin_get(ip: IpAddr, path: &str) -> Result<String, reqwest::Error> {
    http()
        .get(format!("http://{ip}:{ADMIN_PORT}{path}"))
        .send()
        .await?
        .error_for_status()?
        .text()
        .await
}

async fn wait_live(lab: &Lab, name: &str, ip: IpAddr, limit: Duration) -> Result<(), LabError> {
    let start = Instant::now();
    loop {
        if admin_get(ip, "/ready")
            .await
            .is_ok_and(|body| body.trim() == "LIVE")
        {
            return Ok(());
        }
        if start.elapsed() > limit {
            let (_, log) = lab.logs(name).await;
            return Err(LabError::role(
                name,
                format!("Envoy not ready after {limit:?}\n{log}"),
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What the Envoy saw: its log and access logs, and its admin API's stats,
/// config dump and clusters.
pub async fn collect(lab: &Lab, name: &str) -> Result<EnvoyEvidence, LabError> {
    let ip = lab.ip(name).await?;
    let admin = |path: &'static str| async move {
        admin_get(ip, path)
            .await
            .map_err(|e| LabError::role(name, format!("admin {path}: {e}")))
    };
    let stats_text = admin("/stats").await?;
    let config_dump = admin("/config_dump").await?;
    let clusters = admin("/clusters").await?;
    let (stdout, stderr) = lab.logs(name).await;
    Ok(EnvoyEvidence {
        events: evidence::filter_events(&stderr),
        access_log: evidence::json_lines(&stdout),
        access_log_text: std::fs::read_to_string(lab.dir().join(access_log_name(name)))
            .unwrap_or_default(),
        stats: evidence::parse_stats(&stats_text),
        config_dump,
        clusters,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::envoy::{Listener, ListenerKind};

    fn node() -> EnvoyNode {
        let mut envoy = EnvoyNode::default();
        envoy.listeners.insert(
            "main".into(),
            Listener {
                kind: ListenerKind::Http,
                port: 10000,
                upstream: Some("backend".into()),
                routes: vec![],
            },
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
        assert_eq!(plugin, r#"{"events":"all"}"#);
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
}
