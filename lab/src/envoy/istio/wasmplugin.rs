//! A WasmPlugin as Istio applies it to a sidecar:
//!
//! - where: pilot inserts an ECDS reference (`config_discovery`, resource
//!   `<namespace>.<name>`) into the chains its `type` and `match` select
//!   (HTTP: the HCM's filters; NETWORK: the chain's network filters; mode
//!   SERVER = inbound chains, CLIENT = outbound ones, ports by the port the
//!   chain serves; pilot/pkg/model/extensions.go,
//!   pilot/pkg/networking/core/extension/extensionfilter.go). Never on the
//!   outbound fall-through chains.
//! - what: the ECDS resource, a `Wasm` filter whose plugin is
//!   `pluginName` (root_id) with `pluginConfig` as JSON and the
//!   `failStrategy` as its `failure_policy` (extensions.go buildWasmConfig),
//!   the module a local file the agent fetched and checked.
//! - when the agent cannot fetch or check the module: FAIL_OPEN puts an
//!   allow-all RBAC filter in its place, FAIL_CLOSE a deny-all one
//!   (pkg/wasm/convert.go).
//!
//! The lab plays pilot and the agent: ECDS comes from a file Envoy watches
//! (`path_config_source`) instead of istiod's ADS stream; a push rewrites
//! the file.

use std::path::Path;

use serde_json::{json, Value};

use super::sidecar::Extensions;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginType {
    Http,
    Network,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailStrategy {
    Open,
    Close,
}

/// One `match` entry: a mode and the ports it selects (empty: all).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    /// `None`: CLIENT_AND_SERVER / UNDEFINED.
    pub inbound: Option<bool>,
    pub ports: Vec<u16>,
}

/// The parts of a WasmPlugin manifest the sidecar sees.
#[derive(Debug, Clone, PartialEq)]
pub struct WasmPlugin {
    /// `<namespace>.<name>`: the ECDS resource and the filter's name.
    pub resource: String,
    pub url: String,
    pub sha256: Option<String>,
    pub plugin_name: String,
    pub kind: PluginType,
    pub fail: FailStrategy,
    pub selectors: Vec<Selector>,
    pub plugin_config: Value,
}

impl WasmPlugin {
    /// From a manifest as Kubernetes read it (JSON of the YAML 1.1 document).
    pub fn from_manifest(m: &Value) -> Result<WasmPlugin, String> {
        if m["kind"] != "WasmPlugin" {
            return Err(format!("kind {} is not WasmPlugin", m["kind"]));
        }
        let spec = &m["spec"];
        let text = |v: &Value, what: &str| {
            v.as_str()
                .map(str::to_string)
                .ok_or_else(|| format!("spec.{what} missing or not a string"))
        };
        let name = text(&m["metadata"]["name"], "metadata.name")?;
        let namespace = m["metadata"]["namespace"].as_str().unwrap_or("default");
        let kind = match spec["type"].as_str() {
            None | Some("HTTP") | Some("UNSPECIFIED_PLUGIN_TYPE") => PluginType::Http,
            Some("NETWORK") => PluginType::Network,
            Some(other) => return Err(format!("spec.type {other}")),
        };
        let fail = match spec["failStrategy"].as_str() {
            Some("FAIL_OPEN") => FailStrategy::Open,
            _ => FailStrategy::Close,
        };
        let mut selectors = Vec::new();
        for entry in spec["match"].as_array().into_iter().flatten() {
            let inbound = match entry["mode"].as_str() {
                Some("SERVER") => Some(true),
                Some("CLIENT") => Some(false),
                _ => None,
            };
            let ports = entry["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p["number"].as_u64())
                .map(|p| p as u16)
                .collect();
            selectors.push(Selector { inbound, ports });
        }
        Ok(WasmPlugin {
            resource: format!("{namespace}.{name}"),
            url: text(&spec["url"], "url")?,
            sha256: spec["sha256"].as_str().map(str::to_string),
            plugin_name: spec["pluginName"].as_str().unwrap_or_default().to_string(),
            kind,
            fail,
            selectors,
            plugin_config: spec.get("pluginConfig").cloned().unwrap_or(json!({})),
        })
    }

    /// Whether a chain of this direction serving `port` gets the plugin
    /// (extensions.go matchTrafficExtensionSelectors / matchMode /
    /// matchPorts).
    pub fn selects(&self, inbound: bool, port: u16) -> bool {
        self.selectors.is_empty()
            || self.selectors.iter().any(|s| {
                s.inbound.is_none_or(|i| i == inbound)
                    && (s.ports.is_empty() || s.ports.contains(&port))
            })
    }

    fn type_urls(&self) -> [&'static str; 2] {
        match self.kind {
            PluginType::Http => [
                "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
                "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
            ],
            PluginType::Network => [
                "type.googleapis.com/envoy.extensions.filters.network.wasm.v3.Wasm",
                "type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC",
            ],
        }
    }

    /// The filter entry pilot puts in a chain: an ECDS reference, from the
    /// file `ecds` (in the container).
    pub fn reference(&self, ecds: &Path) -> Value {
        json!({
            "name": self.resource,
            "config_discovery": {
                "config_source": {"path_config_source": {"path": ecds}, "resource_api_version": "V3"},
                "type_urls": self.type_urls(),
            },
        })
    }

    /// The ECDS resource once the module is at `module` (checked).
    pub fn wasm_resource(&self, module: &Path) -> Value {
        let kind = match self.kind {
            PluginType::Http => "http",
            PluginType::Network => "network",
        };
        let policy = match self.fail {
            FailStrategy::Open => "FAIL_OPEN",
            FailStrategy::Close => "FAIL_CLOSED",
        };
        json!({
            "@type": "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig",
            "name": self.resource,
            "typed_config": {
                "@type": format!("type.googleapis.com/envoy.extensions.filters.{kind}.wasm.v3.Wasm"),
                "config": {
                    "name": self.resource,
                    "root_id": self.plugin_name,
                    "vm_config": {
                        "runtime": "envoy.wasm.runtime.v8",
                        "code": {"local": {"filename": module}},
                    },
                    "configuration": {
                        "@type": "type.googleapis.com/google.protobuf.StringValue",
                        "value": self.plugin_config.to_string(),
                    },
                    "failure_policy": policy,
                },
            },
        })
    }

    /// What the agent sends instead when it could not fetch or check the
    /// module: allow-all RBAC (FAIL_OPEN) or deny-all (FAIL_CLOSE).
    pub fn fallback_resource(&self) -> Value {
        let (kind, prefix_key) = match self.kind {
            PluginType::Http => ("http", "rules_stat_prefix"),
            PluginType::Network => ("network", "stat_prefix"),
        };
        let mut rbac = json!({
            "@type": format!("type.googleapis.com/envoy.extensions.filters.{kind}.rbac.v3.RBAC"),
        });
        match self.fail {
            FailStrategy::Open => rbac[prefix_key] = json!("wasm-default-allow"),
            FailStrategy::Close => {
                rbac[prefix_key] = json!("wasm-default-deny");
                rbac["rules"] = json!({});
            }
        }
        if self.kind == PluginType::Network && rbac.get("stat_prefix").is_none() {
            rbac["stat_prefix"] = json!("wasm-default");
        }
        json!({
            "@type": "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig",
            "name": self.resource,
            "typed_config": rbac,
        })
    }
}

/// An ECDS file's content: a discovery response holding `resource`.
pub fn ecds_file(version: u32, resource: Value) -> Value {
    json!({"version_info": version.to_string(), "resources": [resource]})
}

/// The plugins of a sidecar and where each one's ECDS file is.
pub struct Placed<'a> {
    pub plugins: &'a [(WasmPlugin, std::path::PathBuf)],
}

impl Placed<'_> {
    fn filters(&self, kind: PluginType, inbound: bool, port: u16) -> Vec<Value> {
        self.plugins
            .iter()
            .filter(|(p, _)| p.kind == kind && p.selects(inbound, port))
            .map(|(p, ecds)| p.reference(ecds))
            .collect()
    }
}

impl Extensions for Placed<'_> {
    fn http(&self, inbound: bool, port: u16) -> Vec<Value> {
        self.filters(PluginType::Http, inbound, port)
    }
    fn network(&self, inbound: bool, port: u16) -> Vec<Value> {
        self.filters(PluginType::Network, inbound, port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plugin(kind: &str, matches: Value) -> WasmPlugin {
        WasmPlugin::from_manifest(&json!({
            "apiVersion": "extensions.istio.io/v1alpha1",
            "kind": "WasmPlugin",
            "metadata": {"name": "connlab", "namespace": "shop"},
            "spec": {"url": "oci://r/x:1", "pluginName": "connlab_net", "type": kind,
                     "failStrategy": "FAIL_OPEN", "match": matches, "pluginConfig": {"events": "all"}},
        }))
        .unwrap()
    }

    #[test]
    fn match_selects_direction_and_port_as_pilot_does() {
        let server = plugin("NETWORK", json!([{"mode": "SERVER"}]));
        assert!(server.selects(true, 8080));
        assert!(!server.selects(false, 8080));
        let both = plugin("HTTP", json!([{"mode": "CLIENT_AND_SERVER"}]));
        assert!(both.selects(true, 1) && both.selects(false, 1));
        let ported = plugin(
            "HTTP",
            json!([{"mode": "CLIENT", "ports": [{"number": 9080}]}]),
        );
        assert!(ported.selects(false, 9080));
        assert!(!ported.selects(false, 8080));
        assert!(
            plugin("HTTP", json!([])).selects(true, 1),
            "no match: everywhere"
        );
    }

    #[test]
    fn resources_carry_the_manifest() {
        let p = plugin("NETWORK", json!([]));
        assert_eq!(p.resource, "shop.connlab");
        let r = p.wasm_resource(Path::new("/m.wasm"));
        let config = &r["typed_config"]["config"];
        assert_eq!(config["root_id"], "connlab_net");
        assert_eq!(config["failure_policy"], "FAIL_OPEN");
        assert_eq!(config["configuration"]["value"], r#"{"events":"all"}"#);
        let fallback = p.fallback_resource();
        assert_eq!(
            fallback["typed_config"]["@type"],
            "type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC"
        );
        assert!(fallback["typed_config"].get("rules").is_none(), "allow all");
        let reference = p.reference(Path::new("/connlab/x.ecds.json"));
        assert_eq!(reference["name"], "shop.connlab");
    }
}
