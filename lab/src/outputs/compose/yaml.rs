//! The YAML of a compose file, written by hand: a serializer (serde_yaml_ng,
//! serde_norway) cannot write its anchors and comments, and its output is half
//! again as long; `issue-19.md` has the measurement.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::Context;

use super::services::Service;
use super::subnets::Subnets;
use super::{Placement, CERTS_SERVICE, FILE_FORMAT, VOLUME, WORKLOAD_PROFILE};
use crate::run::roles::envoy;
use crate::run::runtime::SHARED_DIR;
use crate::scenario::{Scenario, Variant};

/// The file after its comment: the shared labels, the certificate issuer,
/// the services, the networks on their subnets and the volume.
pub(super) fn body(
    scenario: &Scenario,
    variant: &Variant,
    subnets: &Subnets,
    placement: &Placement,
    services: &[Service],
) -> anyhow::Result<String> {
    let title = format!("{}/{}", scenario.name, variant.name);
    let mut yaml = String::new();
    let labels = format!("{}/{}", scenario.name, variant.name);
    writeln!(yaml, "version: \"{FILE_FORMAT}\"").ok();
    yaml.push_str(&format!(
        "\n# On every container, network and volume: the lab's sweep removes a\n\
         # project whose CONNLAB_PID is set and no longer running (the tests set it).\n\
         x-labels: &labels\n  connlab: \"1\"\n  connlab.run: \"${{CONNLAB_RUN:-}}\"\n  \
         connlab.pid: \"${{CONNLAB_PID:-}}\"\n  connlab.compose: {}\n",
        yaml_str(&labels)
    ));
    yaml.push_str("\nservices:\n");
    let envoy_nodes: Vec<&str> = services
        .iter()
        .filter(|s| s.envoy_config.is_some())
        .map(|s| s.spec.role.as_str())
        .collect();
    let mut certs = vec!["connlab-certs".to_string(), SHARED_DIR.to_string()];
    certs.extend(envoy_nodes.iter().map(|s| s.to_string()));
    writeln!(
        yaml,
        "  # The run's CA and each Envoy's certificate, issued at `up` into the volume.\n  \
         {CERTS_SERVICE}:\n    image: {IMAGE}\n    command: {}\n    network_mode: none\n    \
         volumes:\n      - {VOLUME}:{SHARED_DIR}\n    labels: *labels",
        flow(&certs)
    )
    .ok();
    for service in services {
        yaml.push_str(&service_yaml(service, &variant.name, placement));
    }
    yaml.push_str("\nnetworks:\n");
    for network in &variant.networks {
        let base = subnets
            .of(&scenario.name, &variant.name, network)
            .with_context(|| format!("{title}: no subnet for network `{network}`"))?;
        writeln!(
            yaml,
            "  {}:\n    ipam:\n      config:\n        - subnet: {base}/24\n    labels: *labels",
            yaml_key(network)
        )
        .ok();
    }
    writeln!(yaml, "\nvolumes:\n  {VOLUME}:\n    labels: *labels").ok();
    Ok(yaml)
}

/// `${CONNLAB_IMAGE}`, with the reason when it is not set.
const IMAGE: &str =
    "${CONNLAB_IMAGE:?run make image and export CONNLAB_IMAGE from target/lab-image.tag}";

fn service_yaml(service: &Service, variant: &str, placement: &Placement) -> String {
    let spec = &service.spec;
    let mut out = String::new();
    let w = &mut out;
    writeln!(w, "  {}:", yaml_key(&spec.role)).ok();
    writeln!(w, "    image: {IMAGE}").ok();
    writeln!(w, "    hostname: {}", yaml_str(&spec.role)).ok();
    writeln!(w, "    command: {}", flow(&spec.command())).ok();
    if !spec.env.is_empty() {
        writeln!(w, "    environment:").ok();
        for (key, value) in &spec.env {
            writeln!(w, "      {}: {}", yaml_key(key), yaml_str(value)).ok();
        }
    }
    let mut caps: Vec<String> = Vec::new();
    if spec.net_admin {
        caps.push("NET_ADMIN".into());
    }
    caps.extend(
        spec.cap_add
            .iter()
            .filter(|c| !caps.contains(c))
            .cloned()
            .collect::<Vec<_>>(),
    );
    if !caps.is_empty() {
        writeln!(w, "    cap_add: {}", flow(&caps)).ok();
    }
    if !spec.sysctls.is_empty() {
        writeln!(w, "    sysctls:").ok();
        let sorted: BTreeMap<_, _> = spec.sysctls.iter().collect();
        for (key, value) in sorted {
            writeln!(w, "      {}: {}", yaml_key(key), yaml_str(value)).ok();
        }
    }
    writeln!(w, "    networks:").ok();
    for network in &spec.networks {
        match service.addresses.iter().find(|(n, _)| n == network) {
            Some((_, ip)) => writeln!(
                w,
                "      {}:\n        ipv4_address: {ip}",
                yaml_key(network)
            )
            .ok(),
            None => writeln!(w, "      {}: {{}}", yaml_key(network)).ok(),
        };
    }
    writeln!(w, "    volumes:\n      - {VOLUME}:{SHARED_DIR}").ok();
    if let Some(config) = &service.envoy_config {
        // `source` is quoted YAML already.
        let bind = |source: String, target: &str| {
            format!(
                "      - type: bind\n        source: {source}\n        target: {}\n        read_only: true\n",
                yaml_str(target)
            )
        };
        let config_source = yaml_str(&format!("./{variant}/{config}"));
        w.push_str(&bind(config_source, &format!("{SHARED_DIR}/{config}")));
        // Interpolated by compose: `$CONNLAB_FILTER_WASM` wins.
        let wasm = format!(
            "\"${{CONNLAB_FILTER_WASM:-{}}}\"",
            yaml_str(&placement.wasm).trim_matches('"')
        );
        w.push_str(&bind(wasm, &envoy::wasm_in_container().to_string_lossy()));
        writeln!(
            w,
            "    depends_on:\n      {CERTS_SERVICE}:\n        condition: service_completed_successfully"
        )
        .ok();
    }
    if service.workload {
        writeln!(w, "    profiles: [{WORKLOAD_PROFILE}]").ok();
    }
    // The lab removes its containers at once; no server here needs SIGTERM.
    writeln!(w, "    stop_grace_period: 1s").ok();
    writeln!(w, "    labels: *labels").ok();
    out
}

/// A YAML double-quoted string (JSON's escapes are YAML's) with compose's
/// interpolation escaped (`$` is `$$`).
pub(super) fn yaml_str(value: &str) -> String {
    serde_json::to_string(&value.replace('$', "$$")).unwrap_or_default()
}

/// A mapping key: plain when it is a simple name.
pub(super) fn yaml_key(key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
        && key.as_bytes()[0].is_ascii_alphabetic();
    if plain {
        key.to_string()
    } else {
        yaml_str(key)
    }
}

/// A flow sequence of strings: `["node", "/opt/..."]`.
pub(super) fn flow(items: &[String]) -> String {
    let items: Vec<String> = items.iter().map(|i| yaml_str(i)).collect();
    format!("[{}]", items.join(", "))
}
