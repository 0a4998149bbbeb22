//! Envoy with connlab's filter, its config generated from the scenario.
//! Logs go to the container's stderr (the filter's events among them), the
//! access log to stdout; stats come from the admin API inside the container.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use crate::envoy_config;
use crate::runtime::{ContainerSpec, Lab, LabError, SHARED_DIR};
use crate::{evidence, paths};

/// Every Envoy listens here for its clients.
pub const LISTEN_PORT: u16 = 10000;
const ADMIN: &str = "127.0.0.1:9901";
const WASM_NAME: &str = "connlab_filter.wasm";

/// A scenario's `[variants.envoy]` / `[variants.caller]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvoySettings {
    /// Upstream connect timeout; the lab's default (5 s) leaves room for the
    /// packet delays scenarios inject (Envoy's own default is 5 s too;
    /// Istio's is 10 s).
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Upstream connection idle timeout (Envoy default: 1 h).
    pub idle_timeout_ms: Option<u64>,
    /// Route timeout (Envoy default: 15 s).
    pub route_timeout_ms: Option<u64>,
    #[serde(default)]
    pub retry: RetryPolicy,
}

fn default_connect_timeout_ms() -> u64 {
    5000
}

impl Default for EnvoySettings {
    fn default() -> Self {
        EnvoySettings {
            connect_timeout_ms: default_connect_timeout_ms(),
            idle_timeout_ms: None,
            route_timeout_ms: None,
            retry: RetryPolicy::None,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RetryPolicy {
    #[default]
    None,
    /// Istio's default: 2 retries on connect-failure, refused-stream,
    /// unavailable, cancelled and a 503 from upstream.
    IstioDefault,
}

/// The filter's configuration in the lab: every request's event, not only
/// the failures. `upstream_delay_ms` is the packet delay injected on the
/// upstream's egress. It shifts the idle time Envoy sees from the server's
/// own: a delayed FIN lets the connection look idle up to one delay longer;
/// delayed data (a response held back, one segment waiting on Nagle) makes
/// it look up to two delays shorter. The window that matches an idle time to
/// a server's default is widened by as much on both sides.
pub fn filter_config(upstream_delay_ms: u64) -> serde_json::Value {
    let mut config = json!({"events": "all"});
    if upstream_delay_ms > 0 {
        // The filter's own defaults are 500 and 1500 ms (config.rs).
        config["idle_match_before_ms"] = json!(500 + 2 * upstream_delay_ms);
        config["idle_match_after_ms"] = json!(1500 + upstream_delay_ms);
    }
    config
}

/// Starts an Envoy named `role` that forwards everything to `upstream`
/// (the cluster is named after `upstream_role`, so its stats read
/// `cluster.<upstream_role>.*`), with the filter configured by `filter_config`.
pub async fn start(
    lab: &mut Lab,
    role: &str,
    settings: &EnvoySettings,
    upstream_role: &str,
    upstream: SocketAddr,
    filter_config: serde_json::Value,
) -> Result<(), LabError> {
    let wasm = lab.dir().join(WASM_NAME);
    if !wasm.exists() {
        let built = paths::filter_wasm();
        std::fs::copy(&built, &wasm).map_err(|e| {
            LabError::role(
                role,
                format!("{}: {e} (run `make filter`)", built.display()),
            )
        })?;
    }
    let wasm = std::path::PathBuf::from(format!("{SHARED_DIR}/{WASM_NAME}"));
    let mut route = envoy_config::route("/", upstream_role);
    if let Some(ms) = settings.route_timeout_ms {
        route["route"]["timeout"] = envoy_config::duration_ms(ms);
    }
    if settings.retry == RetryPolicy::IstioDefault {
        route["route"]["retry_policy"] = envoy_config::istio_default_retry_policy();
    }
    let mut cluster = envoy_config::cluster(upstream_role, &[upstream]);
    cluster["connect_timeout"] = envoy_config::duration_ms(settings.connect_timeout_ms);
    if settings.idle_timeout_ms.is_some() {
        cluster["typed_extension_protocol_options"] =
            envoy_config::http1_protocol_options(settings.idle_timeout_ms, None);
    }
    // Two access logs: Istio's TEXT format to a file the evidence keeps
    // (what a mesh operator reads), and the checker's JSON fields on stdout.
    let access_logs = vec![
        envoy_config::istio_access_log(Path::new(&format!(
            "{SHARED_DIR}/{}",
            access_log_name(role)
        ))),
        envoy_config::stdout_json_access_log(),
    ];
    let manager = envoy_config::hcm(
        "main",
        vec![envoy_config::http_wasm(
            &wasm,
            "connlab_http",
            Some(&filter_config),
        )],
        vec![route],
        access_logs,
    );
    let chain = envoy_config::filter_chain("main", vec![manager]);
    let listener = envoy_config::listener_on(
        "main",
        SocketAddr::from(([0, 0, 0, 0], LISTEN_PORT)),
        vec![chain],
    );
    let admin: SocketAddr = ADMIN
        .parse()
        .map_err(|_| LabError::role(role, "admin address"))?;
    let config = envoy_config::bootstrap_with_admin(vec![listener], vec![cluster], admin);
    let config_name = format!("{role}.json");
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
        // The access log is flushed on this timer (default 10 s); the
        // evidence is read as soon as the workload ends.
        "--file-flush-interval-msec",
        "100",
    ];
    lab.start(ContainerSpec {
        role: role.into(),
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        net_admin: true,
        ..Default::default()
    })
    .await?;
    lab.wait_until(
        role,
        &format!("curl -sf http://{ADMIN}/ready"),
        Duration::from_secs(30),
    )
    .await
}

/// The Istio TEXT access log's file name, in the run's shared directory.
pub fn access_log_name(role: &str) -> String {
    format!("{role}.access.log")
}

/// What one Envoy saw.
#[derive(Debug, Clone, Default)]
pub struct EnvoyEvidence {
    /// The filter's events.
    pub events: Vec<serde_json::Value>,
    /// Envoy's own access log entries (the JSON fields).
    pub access_log: Vec<serde_json::Value>,
    /// The same requests in Istio's default TEXT format, as written.
    pub access_log_text: String,
    /// Every counter and gauge.
    pub stats: BTreeMap<String, u64>,
}

pub async fn collect(lab: &Lab, role: &str) -> Result<EnvoyEvidence, LabError> {
    let stats_text = lab
        .exec_ok(role, &["curl", "-sf", &format!("http://{ADMIN}/stats")])
        .await?;
    let (stdout, stderr) = lab.logs(role).await;
    Ok(EnvoyEvidence {
        events: evidence::filter_events(&stderr),
        access_log: stdout
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect(),
        stats: evidence::parse_stats(&stats_text),
        access_log_text: std::fs::read_to_string(lab.dir().join(access_log_name(role)))
            .unwrap_or_default(),
    })
}
