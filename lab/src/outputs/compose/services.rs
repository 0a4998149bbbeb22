//! The services of a variant's compose file: each node's container as the
//! lab builds it (`run::spec` and its role's command), in the runtime's start
//! order, on static addresses in place of the ones a run learns.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use anyhow::Context;

use super::subnets::Subnets;
use crate::run;
use crate::run::addresses::Addresses;
use crate::run::roles::{backend, client, envoy, router, script};
use crate::run::runtime::ContainerSpec;
use crate::scenario::node::NodeKind;
use crate::scenario::{networks_of, start_order, Scenario, Variant};

/// First host number of nodes in a subnet (.1 is Docker's gateway).
const FIRST_HOST: u8 = 10;

/// One node, ready to write as a service.
pub(super) struct Service {
    pub spec: ContainerSpec,
    /// Its static address per network (none: workload nodes, so `run` can
    /// start them again and again).
    pub addresses: Vec<(String, IpAddr)>,
    pub envoy_config: Option<String>,
    pub workload: bool,
}

/// Every node of `variant` as a service, in start order, and each Envoy's
/// bootstrap as (file name, text).
pub(super) fn build(
    scenario: &Scenario,
    variant: &Variant,
    subnets: &Subnets,
) -> anyhow::Result<(Vec<Service>, Vec<(String, String)>)> {
    let title = format!("{}/{}", scenario.name, variant.name);
    let workload = |kind: &NodeKind| match kind {
        NodeKind::Client(_) => true,
        NodeKind::Script(s) => s.workload,
        _ => false,
    };
    // Static addresses, in node order, for every node a run starts before
    // the workload.
    let mut addresses = Addresses::default();
    let mut next_host: BTreeMap<String, u8> = BTreeMap::new();
    for (name, node) in &variant.nodes {
        if workload(&node.kind) {
            continue;
        }
        let mut mine = Vec::new();
        for network in &networks_of(variant, node) {
            let base = subnets
                .of(&scenario.name, &variant.name, network)
                .with_context(|| format!("{title}: no subnet for network `{network}`"))?;
            let host = next_host.entry(network.clone()).or_insert(FIRST_HOST);
            let ip = Ipv4Addr::from(u32::from(base) | u32::from(*host));
            *host += 1;
            mine.push((network.clone(), IpAddr::V4(ip)));
        }
        addresses.0.insert(name.clone(), mine);
    }

    // The runtime's start order: routers, then backends and background
    // scripts; Envoys after the Envoys they forward to; then the workload.
    let envoys =
        start_order(variant).map_err(|n| anyhow::anyhow!("{title}: Envoy cycle at {n}"))?;
    let router = |kind: &NodeKind| matches!(kind, NodeKind::Router(_));
    let before_envoys = variant
        .nodes
        .iter()
        .filter(|(_, n)| n.kind.envoy().is_none() && !workload(&n.kind));
    let (routers, others): (Vec<_>, Vec<_>) = before_envoys.partition(|(_, n)| router(&n.kind));
    let mut order: Vec<&String> = routers
        .into_iter()
        .chain(others)
        .map(|(name, _)| name)
        .collect();
    order.extend(envoys.iter());
    order.extend(
        variant
            .nodes
            .iter()
            .filter(|(_, n)| workload(&n.kind))
            .map(|(name, _)| name),
    );

    let mut services = Vec::new();
    let mut files = Vec::new();
    for name in order {
        let node = &variant.nodes[name];
        let mut spec = run::spec(variant, name, node, &addresses)
            .map_err(|e| anyhow::anyhow!("{title}: {e}"))?;
        let mut envoy_config = None;
        match &node.kind {
            NodeKind::Backend(b) => backend::command(b, &mut spec),
            NodeKind::Router(_) => router::prepare(&mut spec),
            NodeKind::Script(s) => {
                let words = addresses
                    .fill(&spec.networks, &s.command)
                    .map_err(|e| anyhow::anyhow!("{title}: {name}: {e}"))?;
                script::command(words, &mut spec)
            }
            NodeKind::Envoy(e) => {
                let from = networks_of(variant, node);
                let resolve = |endpoint: &str| addresses.reach(variant, &from, endpoint);
                let (file, text) = envoy::config_file(name, e, &resolve)
                    .map_err(|e| anyhow::anyhow!("{title}: {name}: {e}"))?;
                envoy::command(&file, &mut spec);
                files.push((file.clone(), text));
                envoy_config = Some(file);
            }
            NodeKind::Client(c) => {
                let target = addresses
                    .reach(variant, &spec.networks, &c.config.target)
                    .with_context(|| format!("{title}: {name}: cannot reach the target"))?;
                client::command(c, target.to_string(), &mut spec);
            }
        }
        services.push(Service {
            addresses: addresses.0.get(name).cloned().unwrap_or_default(),
            spec,
            envoy_config,
            workload: workload(&node.kind),
        });
    }

    Ok((services, files))
}
