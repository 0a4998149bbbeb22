//! An Istio sidecar in a backend's or client's container: the container is
//! the pod (one network namespace), its command runs behind a wrapper that
//! does what istio-init and istio-proxy do before the app may send:
//! istio-iptables' rules (`istio::iptables`), then Envoy as uid/gid 1337
//! with the sidecar bootstrap (`istio::sidecar`, admin 127.0.0.1:15000),
//! then waits for it to be ready (Istio's `holdApplicationUntilProxyStarts`)
//! and execs the app. WasmPlugins reach it through ECDS files the lab
//! writes as pilot and the agent would (`istio::wasmplugin`). Its evidence
//! is collected like an `envoy` node's, under the node's name.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::envoy::istio::sidecar::{
    Certs, InboundPort, OutboundService, Protocol, Sidecar, ADMIN_PORT,
};
use crate::envoy::istio::wasmplugin::{ecds_file, FailStrategy, Placed, WasmPlugin};
use crate::envoy::istio::{iptables, module};
use crate::envoy::{certs, config as envoy_config};
use crate::evidence::EnvoyEvidence;
use crate::run::roles::envoy;
use crate::run::runtime::{ContainerSpec, Lab, LabError, SHARED_DIR};
use crate::scenario::mesh::{Mesh, SidecarSettings};

/// The sidecar's files in the run's shared directory.
pub fn config_name(node: &str) -> String {
    format!("{node}.sidecar.json")
}
fn iptables_name(node: &str) -> String {
    format!("{node}.iptables")
}
fn log_name(node: &str) -> String {
    format!("{node}.sidecar.log")
}
/// What the wrapper saves from the admin API when the app exits (a
/// client's pod stops with it).
fn exit_name(node: &str, what: &str) -> String {
    format!("{node}.sidecar-exit.{what}")
}
fn json_log_name(node: &str) -> String {
    format!("{node}.access.jsonl")
}
/// The ECDS file of one plugin on one sidecar.
pub fn ecds_name(node: &str, resource: &str) -> String {
    format!("{node}.ecds.{resource}.json")
}

/// What the sidecar of `node` knows of the mesh: the port its app serves
/// (backends), the service it calls (clients), the mesh config.
pub struct Pod<'a> {
    pub node: &'a str,
    pub settings: &'a SidecarSettings,
    pub mesh: &'a Mesh,
    /// The app's port, for a backend.
    pub serves: Option<u16>,
    /// The service a client calls: its node, address, and sidecar.
    pub calls: Option<(&'a str, SocketAddr, Option<&'a SidecarSettings>)>,
    pub plugins: &'a [WasmPlugin],
}

impl Pod<'_> {
    fn in_container(name: &str) -> PathBuf {
        Path::new(SHARED_DIR).join(name)
    }

    /// The sidecar's bootstrap, paths as the container sees them.
    pub fn bootstrap(&self) -> Value {
        let rule = |host: &str| self.mesh.destination_rule(host);
        let inbound: Vec<InboundPort> = self
            .serves
            .map(|port| InboundPort {
                port,
                protocol: self.settings.protocol,
                idle_timeout_ms: rule(self.node).and_then(|r| r.idle_timeout_ms),
            })
            .into_iter()
            .collect();
        let outbound: Vec<OutboundService> = self
            .calls
            .map(|(host, addr, peer)| OutboundService {
                host: host.to_string(),
                port: addr.port(),
                protocol: peer.map_or(Protocol::Auto, |p| p.protocol),
                endpoints: vec![addr],
                mtls: peer.is_some(),
                idle_timeout_ms: rule(host).and_then(|r| r.idle_timeout_ms),
                max_requests_per_connection: rule(host).and_then(|r| r.max_requests_per_connection),
            })
            .into_iter()
            .collect();
        let certs = Certs {
            cert: Self::in_container(&format!("{}.pem", self.node)),
            key: Self::in_container(&format!("{}.key", self.node)),
            ca: Self::in_container(certs::CA_FILE),
        };
        let placed: Vec<(WasmPlugin, PathBuf)> = self
            .plugins
            .iter()
            .map(|p| {
                let file = Self::in_container(&ecds_name(self.node, &p.resource));
                (p.clone(), file)
            })
            .collect();
        let extensions = Placed { plugins: &placed };
        let sidecar = Sidecar {
            release: self.mesh.istio,
            workload: self.node,
            pod_ip: [0, 0, 0, 0].into(),
            mtls: self.settings.mtls,
            inbound: &inbound,
            outbound: &outbound,
            certs: &certs,
            protocol_detection_timeout_ms: self.mesh.detection_timeout_override(),
            access_log: Self::in_container(&envoy::access_log_name(self.node)),
            extensions: &extensions,
        };
        let mut config = sidecar.bootstrap();
        add_json_log(&mut config, &Self::in_container(&json_log_name(self.node)));
        config
    }

    /// Writes the sidecar's files (bootstrap, iptables rules, its
    /// certificate, the ECDS files with `resource` for each plugin, files it
    /// writes as uid 1337) and wraps `spec`'s command.
    pub fn prepare(
        &self,
        lab: &Lab,
        spec: &mut ContainerSpec,
        ca: &certs::Authority,
        resources: &[Value],
    ) -> Result<(), LabError> {
        let dir = lab.dir();
        let fail = |e: String| LabError::role(self.node, e);
        envoy::issue_certificate(ca, self.node).map_err(|e| fail(e.to_string()))?;
        let config = serde_json::to_string_pretty(&self.bootstrap()).unwrap_or_default();
        std::fs::write(dir.join(config_name(self.node)), config)?;
        std::fs::write(
            dir.join(iptables_name(self.node)),
            iptables::restore_input(true),
        )?;
        for (plugin, resource) in self.plugins.iter().zip(resources) {
            let file = dir.join(ecds_name(self.node, &plugin.resource));
            std::fs::write(file, ecds_file(1, resource.clone()).to_string())?;
        }
        // Envoy runs as 1337: it must enter the run's directory and write
        // its logs (created here, world-writable: a lab-only shortcut).
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
        for name in [
            log_name(self.node),
            envoy::access_log_name(self.node),
            json_log_name(self.node),
        ] {
            let path = dir.join(name);
            std::fs::write(&path, "")?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666))?;
        }
        let key = dir.join(format!("{}.key", self.node));
        std::fs::set_permissions(key, std::fs::Permissions::from_mode(0o644))?;
        wrap(self.node, spec);
        Ok(())
    }
}

/// The lab's JSON access log (the checker's fields, to a file: the
/// container's stdout is the app's) beside Istio's TEXT one, on every HCM
/// and TCP proxy of the sidecar. Not in a real sidecar.
fn add_json_log(config: &mut Value, path: &Path) {
    let mut json_log = envoy_config::stdout_json_access_log();
    json_log["name"] = "envoy.access_loggers.file".into();
    let format = json_log["typed_config"]["log_format"].clone();
    json_log["typed_config"] = serde_json::json!({
        "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
        "path": path,
        "log_format": format,
    });
    fn walk(v: &mut Value, log: &Value) {
        match v {
            Value::Object(map) => {
                let is_filter = map.get("@type").and_then(Value::as_str).is_some_and(|t| {
                    t.ends_with("HttpConnectionManager") || t.ends_with("TcpProxy")
                });
                if is_filter {
                    if let Some(Value::Array(logs)) = map.get_mut("access_log") {
                        logs.push(log.clone());
                    }
                }
                for value in map.values_mut() {
                    walk(value, log);
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|i| walk(i, log)),
            _ => {}
        }
    }
    walk(config, &json_log);
}

/// `spec`'s command behind the pod's start: rules, sidecar as 1337, wait
/// for it, then the app. Needs NET_ADMIN.
pub fn wrap(node: &str, spec: &mut ContainerSpec) {
    let mut envoy_spec = ContainerSpec::default();
    envoy::command(&config_name(node), &mut envoy_spec);
    let envoy_cmd = envoy_spec.cmd.join(" ");
    let uid = iptables::PROXY_UID;
    let script = format!(
        "set -e; iptables-restore --noflush < {SHARED_DIR}/{rules}; \
         setpriv --reuid {uid} --regid {uid} --clear-groups -- {envoy_cmd} \
         --log-path {SHARED_DIR}/{log} & envoy=$!; \
         i=0; until curl -sf http://127.0.0.1:{ADMIN_PORT}/ready >/dev/null; do \
         i=$((i+1)); [ $i -lt 300 ] || {{ echo 'sidecar not ready' >&2; exit 1; }}; sleep 0.1; done; \
         set +e; \"$@\"; rc=$?; sleep 0.5; `# access logs flush every 100 ms` \
         curl -s http://127.0.0.1:{ADMIN_PORT}/stats > {SHARED_DIR}/{stats}; \
         curl -s http://127.0.0.1:{ADMIN_PORT}/config_dump > {SHARED_DIR}/{dump}; \
         curl -s http://127.0.0.1:{ADMIN_PORT}/clusters > {SHARED_DIR}/{clusters}; \
         curl -s -X POST http://127.0.0.1:{ADMIN_PORT}/quitquitquit >/dev/null; wait $envoy; \
         exit $rc",
        rules = iptables_name(node),
        log = log_name(node),
        stats = exit_name(node, "stats"),
        dump = exit_name(node, "config_dump"),
        clusters = exit_name(node, "clusters"),
    );
    let mut cmd = vec!["sh".to_string(), "-c".into(), script, "pod".into()];
    cmd.append(&mut spec.cmd);
    spec.cmd = cmd;
    spec.net_admin = true;
}

/// Waits until the sidecar of a started pod is ready.
pub async fn wait_ready(lab: &Lab, node: &str) -> Result<(), LabError> {
    let ready = format!("curl -sf http://127.0.0.1:{ADMIN_PORT}/ready | grep -qx LIVE");
    lab.wait_until(node, &ready, Duration::from_secs(30)).await
}

/// Rewrites one plugin's ECDS file on a running sidecar: what istiod does
/// when a WasmPlugin changes (Envoy picks up the moved file).
pub fn push(
    lab: &Lab,
    node: &str,
    resource_name: &str,
    version: u32,
    resource: Value,
) -> std::io::Result<()> {
    let file = lab.dir().join(ecds_name(node, resource_name));
    let staged = file.with_extension("tmp");
    std::fs::write(&staged, ecds_file(version, resource).to_string())?;
    std::fs::rename(staged, file)
}

/// What the sidecar saw, as an `envoy` node's evidence: from its admin
/// API while the pod runs, or (`exited`: a client's pod stops with the
/// client) from what the wrapper saved at the app's exit.
pub async fn collect(lab: &Lab, node: &str, exited: bool) -> Result<EnvoyEvidence, LabError> {
    let read = |name: String| std::fs::read_to_string(lab.dir().join(name)).unwrap_or_default();
    let logs = envoy::Logs {
        envoy: read(log_name(node)),
        json_access: read(json_log_name(node)),
        text_access: read(envoy::access_log_name(node)),
    };
    if !exited {
        return envoy::collect_from(lab, node, ADMIN_PORT, logs).await;
    }
    Ok(envoy::evidence_of(
        logs,
        &read(exit_name(node, "stats")),
        read(exit_name(node, "config_dump")),
        read(exit_name(node, "clusters")),
    ))
}

/// A run's mesh: the variant's settings, its WasmPlugins and the ECDS
/// resource each one gets (the module checked, or the fail-strategy
/// fallback).
pub struct MeshRun {
    pub mesh: Option<Mesh>,
    pub plugins: Vec<WasmPlugin>,
    pub resources: Vec<Value>,
}

impl MeshRun {
    /// Reads the WasmPlugins and puts their module where the sidecars read
    /// it; nothing for a variant without `[mesh]`.
    pub fn prepare(lab: &Lab, variant: &crate::scenario::Variant) -> Result<MeshRun, LabError> {
        let Some(mesh) = &variant.mesh else {
            return Ok(MeshRun {
                mesh: None,
                plugins: Vec::new(),
                resources: Vec::new(),
            });
        };
        let plugins = load_plugins(mesh).map_err(|e| LabError::role("mesh", e))?;
        let mut resources = Vec::new();
        for (plugin, fetched) in plugins.iter().zip(module::fetch_all(lab.dir(), &plugins)) {
            resources.push(match fetched {
                Ok(file) => plugin.wasm_resource(&Path::new(SHARED_DIR).join(file)),
                Err(why) => {
                    // The run says so: what the agent logs, then the fail
                    // strategy's filter in the plugin's place.
                    eprintln!(
                        "connlab: WasmPlugin {}: {why}: {}",
                        plugin.resource,
                        match plugin.fail {
                            FailStrategy::Open => "FAIL_OPEN puts an allow-all filter in its place",
                            FailStrategy::Close => "FAIL_CLOSE puts a deny-all filter in its place",
                        }
                    );
                    plugin.fallback_resource()
                }
            });
        }
        Ok(MeshRun {
            mesh: Some(mesh.clone()),
            plugins,
            resources,
        })
    }

    /// The pod of `node` (validated: it has a sidecar and the variant a
    /// mesh).
    pub fn pod<'a>(
        &'a self,
        variant: &'a crate::scenario::Variant,
        node: &'a str,
        serves: Option<u16>,
        calls: Option<(&'a str, SocketAddr)>,
    ) -> Result<Pod<'a>, LabError> {
        let missing = || LabError::role(node, "a sidecar needs [mesh]");
        let settings = variant.nodes[node].sidecar.as_ref().ok_or_else(missing)?;
        let mesh = self.mesh.as_ref().ok_or_else(missing)?;
        let calls = calls.map(|(host, addr)| {
            let peer = variant.nodes.get(host).and_then(|n| n.sidecar.as_ref());
            (host, addr, peer)
        });
        Ok(Pod {
            node,
            settings,
            mesh,
            serves,
            calls,
            plugins: &self.plugins,
        })
    }
}

/// The variant's WasmPlugins, each manifest read as Kubernetes reads it and
/// checked against the WasmPlugin schemas (`scripts/check-manifests.py`:
/// YAML 1.1, strict schema; a manifest the API server would refuse is an
/// error here too), with the scenario's `plugin_config` merged over its
/// `pluginConfig`.
pub fn load_plugins(mesh: &Mesh) -> Result<Vec<WasmPlugin>, String> {
    let root = crate::paths::root();
    let python = root.join(".venv/bin/python");
    let script = root.join("scripts/check-manifests.py");
    let mut plugins = Vec::new();
    for reference in &mesh.wasm_plugins {
        let path = root.join(&reference.manifest);
        let run = |args: &[&std::ffi::OsStr]| {
            std::process::Command::new(&python)
                .arg(&script)
                .args(args)
                .output()
                .map_err(|e| {
                    format!(
                        "{}: {e} (run `make test` to set up .venv)",
                        python.display()
                    )
                })
        };
        let checked = run(&[path.as_os_str()])?;
        if !checked.status.success() {
            return Err(format!(
                "{}: not a manifest Kubernetes accepts:\n{}{}",
                reference.manifest,
                String::from_utf8_lossy(&checked.stdout),
                String::from_utf8_lossy(&checked.stderr)
            ));
        }
        let read = run(&["--json".as_ref(), path.as_os_str()])?;
        let mut manifest: Value = serde_json::from_slice(&read.stdout)
            .map_err(|e| format!("{}: {e}", reference.manifest))?;
        match reference.sha256.as_deref() {
            None => {}
            // What a user does after pushing: paste the digest it printed.
            Some("image") => {
                let url = manifest["spec"]["url"].as_str().unwrap_or_default();
                let (_, digest) =
                    module::resolve(&module::layout_dir(), url.trim_start_matches("oci://"))?;
                manifest["spec"]["sha256"] = digest.trim_start_matches("sha256:").into();
            }
            Some(hex) => manifest["spec"]["sha256"] = hex.into(),
        }
        let edits = serde_json::to_value(&reference.plugin_config).unwrap_or_default();
        if let (Some(config), Some(edits)) = (
            manifest["spec"]["pluginConfig"].as_object_mut(),
            edits.as_object(),
        ) {
            config.extend(edits.clone());
        }
        plugins.push(
            WasmPlugin::from_manifest(&manifest)
                .map_err(|e| format!("{}: {e}", reference.manifest))?,
        );
    }
    Ok(plugins)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envoy::istio::sidecar::MtlsMode;
    use crate::scenario::mesh::DestinationRule;

    fn mesh() -> Mesh {
        Mesh {
            istio: "1.28".parse().unwrap(),
            protocol_detection_timeout_ms: Some(0),
            destination_rules: vec![DestinationRule {
                host: "backend".into(),
                idle_timeout_ms: Some(4000),
                max_requests_per_connection: None,
            }],
            wasm_plugins: vec![],
        }
    }

    fn cluster<'a>(config: &'a Value, name: &str) -> &'a Value {
        config["static_resources"]["clusters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no cluster {name}"))
    }

    /// The DestinationRule reaches both ends: the caller's outbound cluster
    /// and the callee's inbound one; the caller originates mTLS to a peer
    /// with a sidecar; paths are the container's.
    #[test]
    fn a_pods_sidecar_takes_the_mesh_config() {
        let mesh = mesh();
        let strict = SidecarSettings {
            mtls: MtlsMode::Strict,
            protocol: Protocol::Http,
        };
        let callee = Pod {
            node: "backend",
            settings: &strict,
            mesh: &mesh,
            serves: Some(8080),
            calls: None,
            plugins: &[],
        }
        .bootstrap();
        let idle = |c: &Value| {
            c["typed_extension_protocol_options"]
                ["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
                ["common_http_protocol_options"]["idle_timeout"]
                .clone()
        };
        assert_eq!(idle(cluster(&callee, "inbound|8080||")), "4s");
        let caller = Pod {
            node: "client",
            settings: &strict,
            mesh: &mesh,
            serves: None,
            calls: Some((
                "backend",
                SocketAddr::from(([10, 0, 0, 2], 8080)),
                Some(&strict),
            )),
            plugins: &[],
        }
        .bootstrap();
        let out = cluster(&caller, "outbound|8080||backend.lab.svc.cluster.local");
        assert_eq!(idle(out), "4s");
        let tls = &out["transport_socket"]["typed_config"];
        assert_eq!(
            tls["sni"],
            "outbound_.8080_._.backend.lab.svc.cluster.local"
        );
        assert_eq!(
            tls["common_tls_context"]["tls_certificates"][0]["certificate_chain"]["filename"],
            "/connlab/client.pem"
        );
        // protocolDetectionTimeout 0 in meshConfig: no timeout.
        let listeners = caller["static_resources"]["listeners"].as_array().unwrap();
        let port = listeners
            .iter()
            .find(|l| l["name"] == "0.0.0.0_8080")
            .unwrap();
        assert_eq!(port["listener_filters_timeout"], "0s");
        // The checker's JSON log beside Istio's TEXT one.
        let text = caller.to_string();
        assert!(text.contains("/connlab/client.access.jsonl"));
        assert!(text.contains("/connlab/client.access.log"));
    }

    #[test]
    fn the_wrapper_applies_the_rules_then_runs_envoy_as_1337_then_the_app() {
        let mut spec = ContainerSpec {
            cmd: vec!["connlab-client".into(), "--requests".into(), "2".into()],
            ..Default::default()
        };
        wrap("client", &mut spec);
        assert!(spec.net_admin);
        let script = &spec.cmd[2];
        let rules = script.find("iptables-restore").unwrap();
        let envoy = script.find("setpriv --reuid 1337 --regid 1337").unwrap();
        let ready = script.find("127.0.0.1:15000/ready").unwrap();
        let app = script.find("\"$@\"").unwrap();
        assert!(rules < envoy && envoy < ready && ready < app, "{script}");
        assert_eq!(&spec.cmd[4..], ["connlab-client", "--requests", "2"]);
    }
}
