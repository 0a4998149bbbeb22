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
