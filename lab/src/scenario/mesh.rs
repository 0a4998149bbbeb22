//! Mesh mode in a scenario: `[mesh]` pins the Istio release whose sidecar
//! shape the lab builds and holds the mesh-wide config an Istio user writes
//! (meshConfig, DestinationRules, WasmPlugins); `sidecar = { ... }` on a
//! backend or client node gives it an Istio sidecar in its network
//! namespace (see `roles::sidecar`).

use serde::Deserialize;

use crate::envoy::istio::sidecar::{MtlsMode, Protocol};
use crate::envoy::istio::Release;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mesh {
    /// The Istio release (`"1.28"`): its defaults (protocol detection
    /// timeout, retries, access-log format) and its listener shapes.
    pub istio: Release,
    /// meshConfig `protocolDetectionTimeout` (absent: the release's
    /// default; 0: none).
    pub protocol_detection_timeout_ms: Option<u64>,
    #[serde(default)]
    pub destination_rules: Vec<DestinationRule>,
    /// WasmPlugin manifests applied as Istio applies them.
    #[serde(default)]
    pub wasm_plugins: Vec<WasmPluginRef>,
}

impl Mesh {
    /// meshConfig `protocolDetectionTimeout` as the sidecar builder takes
    /// it: `Some(None)` = set to 0 (no timeout).
    pub fn detection_timeout_override(&self) -> Option<Option<u64>> {
        self.protocol_detection_timeout_ms
            .map(|ms| Some(ms).filter(|ms| *ms > 0))
    }

    /// The DestinationRule for a service (by its node name).
    pub fn destination_rule(&self, host: &str) -> Option<&DestinationRule> {
        self.destination_rules.iter().find(|r| r.host == host)
    }
}

/// A DestinationRule's `trafficPolicy.connectionPool.http` for one host.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationRule {
    /// The service (a node's name; `<node>.lab.svc.cluster.local`).
    pub host: String,
    /// `connectionPool.http.idleTimeout`.
    pub idle_timeout_ms: Option<u64>,
    /// `connectionPool.http.maxRequestsPerConnection`.
    pub max_requests_per_connection: Option<u32>,
}

/// A WasmPlugin manifest (path from the project root), and the lab's
/// calibration merged over its `pluginConfig` (the edit a user would make).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WasmPluginRef {
    pub manifest: String,
    /// Replaces the manifest's `sha256`: `"image"` = the digest of the
    /// image `make filter-image` built (what a user pastes after pushing
    /// it), or 64 hex digits. Absent: the manifest's own.
    pub sha256: Option<String>,
    #[serde(default)]
    pub plugin_config: toml::Table,
}

/// A node's sidecar: how its Service port is declared and its
/// PeerAuthentication mode.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SidecarSettings {
    /// PeerAuthentication mode (Istio's default: PERMISSIVE).
    #[serde(default = "permissive")]
    pub mtls: MtlsMode,
    /// The Service port: `http` (named `http-*` / `appProtocol: http`),
    /// `tcp`, or `auto` (unnamed: sniffed; Istio's default).
    #[serde(default = "auto")]
    pub protocol: Protocol,
}

fn permissive() -> MtlsMode {
    MtlsMode::Permissive
}

fn auto() -> Protocol {
    Protocol::Auto
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::envoy::istio::sidecar::{MtlsMode, Protocol};
    use crate::scenario::Scenario;

    const MESH: &str = r#"name = "demo"
seed = "001.txt"
summary = "s"
timeout_s = 30
reproduced = [{ diagnosis = "keepalive_race", at = "backend" }]
fixed = [{ client = "failed", count = 0 }]

[nodes.backend]
kind = "backend"
server = "node"
sidecar = { mtls = "strict", protocol = "http" }

[nodes.client]
kind = "client"
target = "backend:8080"
requests = 2
sidecar = {}

[mesh]
istio = "1.28"
destination_rules = [{ host = "backend", idle_timeout_ms = 4000 }]

[[variants]]
name = "mesh"
about = "a"
expect = "reproduced"
"#;

    fn parse(text: &str) -> Result<Scenario, crate::scenario::ScenarioError> {
        Scenario::parse(Path::new("scenarios/demo.toml"), text)
    }

    #[test]
    fn a_mesh_variant_reads_as_written() {
        let s = parse(MESH).unwrap();
        let v = &s.variants[0];
        let mesh = v.mesh.as_ref().unwrap();
        assert_eq!(mesh.istio.minor, 28);
        assert_eq!(
            mesh.destination_rule("backend").unwrap().idle_timeout_ms,
            Some(4000)
        );
        let backend = v.nodes["backend"].sidecar.as_ref().unwrap();
        assert_eq!(
            (backend.mtls, backend.protocol),
            (MtlsMode::Strict, Protocol::Http)
        );
        // Istio's defaults: PERMISSIVE, an unnamed port (auto).
        let client = v.nodes["client"].sidecar.as_ref().unwrap();
        assert_eq!(
            (client.mtls, client.protocol),
            (MtlsMode::Permissive, Protocol::Auto)
        );
        assert_eq!(mesh.detection_timeout_override(), None);
    }

    /// (edit, field at fault, message) each one line of error.
    #[test]
    fn mistakes_are_named_where_they_are() {
        for (from, to, field, message) in [
            (
                "istio = \"1.28\"",
                "istio = \"1.5\"",
                "istio",
                "expected an Istio release 1.6",
            ),
            (
                "host = \"backend\"",
                "host = \"bakend\"",
                "mesh.destination_rules[0].host",
                "no node `bakend`",
            ),
            (
                "mtls = \"strict\"",
                "mtls = \"strictly\"",
                "sidecar",
                "unknown variant `strictly`",
            ),
            (
                "[mesh]\nistio = \"1.28\"\ndestination_rules = [{ host = \"backend\", idle_timeout_ms = 4000 }]\n",
                "",
                "nodes.backend.sidecar",
                "needs `[mesh]`",
            ),
        ] {
            let text = MESH.replace(from, to);
            assert_ne!(text, MESH, "{from}");
            let err = parse(&text).expect_err(from).to_string();
            assert!(err.contains(message), "{from}: {err}");
            if field != "sidecar" || message.contains("[mesh]") {
                assert!(err.contains(field), "{from}: {err}");
            }
        }
        let on_a_router = MESH.replace(
            "kind = \"backend\"\nserver = \"node\"\n",
            "kind = \"script\"\ncommand = [\"true\"]\n",
        );
        let err = parse(&on_a_router).unwrap_err().to_string();
        assert!(
            err.contains("only a backend or a client gets an Istio sidecar"),
            "{err}"
        );
    }
}
