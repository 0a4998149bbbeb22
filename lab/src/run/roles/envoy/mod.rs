//! An `envoy` node: its scenario description compiled to a bootstrap
//! (`bootstrap`: the plain shape), Envoy started in a container, and what it
//! saw collected.
//! Envoy's log goes to the container's stderr (the filter's events among
//! them), the checker's JSON access log to stdout, Istio's TEXT access log
//! to `<node>.access.log` in the run's shared directory. The admin API is
//! read from inside the container (curl on loopback), like every probe.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use crate::envoy::certs;
use crate::evidence::{self, EnvoyEvidence};
use crate::paths;
use crate::run::runtime::{ContainerSpec, Lab, LabError, SHARED_DIR};
use crate::scenario::envoy::EnvoyNode;

mod bootstrap;

pub use bootstrap::{bootstrap, filter_config, FALLTHROUGH_CHAIN};

/// Every lab Envoy's admin port (on all its addresses: the host reads it).
pub const ADMIN_PORT: u16 = 9901;
pub const WASM_NAME: &str = "connlab_filter.wasm";

/// The Istio TEXT access log's file name, in the run's shared directory.
pub fn access_log_name(node: &str) -> String {
    format!("{node}.access.log")
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
mod tests;
