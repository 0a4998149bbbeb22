//! The runtime: Docker (`runtime`), one module per kind of node (`roles`),
//! the faults (`faults`), packet captures, node addresses, the lab image;
//! live progress as events. Uses `scenario` (what to start), `envoy` (the
//! Envoy and sidecar configs), `programs` (what runs in the containers) and
//! `evidence` (what it records); it never judges what it recorded (`check`).
//!
//! This file runs one variant: networks and nodes up, faults and workload,
//! evidence collected, everything gone — in that order, whatever fails.
//!
//! Start order: networks; routers (others may route through them), then
//! backends and background scripts; Envoys, each after the Envoys its
//! upstreams name; the routers' rules (which may name any of those nodes'
//! addresses); packet captures; the faults at time 0; then the workload
//! (clients and workload scripts), with the scheduled faults beside it. The
//! run ends when every workload node has exited.

pub mod addresses;
pub mod capture;
pub mod faults;
pub mod image;
pub mod progress;
pub mod roles;
pub mod runtime;

use std::time::Duration;

use futures::future::join_all;

use crate::envoy::certs;
use crate::evidence::{Evidence, Packets};
use crate::run::addresses::Addresses;
use crate::run::capture::Capture;
use crate::run::roles::{backend, client, envoy, router, script, sidecar};
use crate::run::runtime::{ContainerSpec, Lab, LabError};
use crate::scenario::node::{Node, NodeKind, BACKEND_PORT};
use crate::scenario::{networks_of, start_order, Variant};
use progress::{Phase, Workload};

/// Runs a variant in a fresh `Lab` and returns what it recorded; the lab is
/// torn down whatever happened.
pub async fn record(variant: &Variant, image: &str) -> Result<Evidence, LabError> {
    let mut lab = Lab::new(image).await?;
    let evidence = drive(&mut lab, variant).await;
    lab.teardown().await;
    evidence
}

/// What every kind of node's container has: name, networks, kernel
/// settings, capabilities, its gateway's address. Each kind's role module
/// sets the command.
pub fn spec(
    variant: &Variant,
    name: &str,
    node: &Node,
    addresses: &Addresses,
) -> Result<ContainerSpec, LabError> {
    let networks = networks_of(variant, node);
    // The router's address on a network both are on (validated); routers
    // start first, so it is known.
    let gateway = match &node.gateway {
        Some(router) => Some(
            addresses
                .ip(&networks, router)
                .ok_or_else(|| LabError::role(name, format!("gateway `{router}` not started")))?,
        ),
        None => None,
    };
    Ok(ContainerSpec {
        role: name.into(),
        networks,
        sysctls: node.sysctls.clone().into_iter().collect(),
        cap_add: node.cap_add.clone(),
        // Faults (packet delay, drops) act inside the target's own network
        // namespace; a gateway is a route change.
        net_admin: variant.faults.iter().any(|f| f.target() == name) || gateway.is_some(),
        gateway,
        ..Default::default()
    })
}

async fn drive(lab: &mut Lab, variant: &Variant) -> Result<Evidence, LabError> {
    for network in &variant.networks {
        lab.add_network(network).await?;
    }
    let mut addresses = Addresses::default();
    // The run's CA: each Envoy's and sidecar's certificate is issued as it
    // starts.
    let ca =
        certs::Authority::create(lab.dir()).map_err(|e| LabError::role("certs", e.to_string()))?;
    let mesh = sidecar::MeshRun::prepare(lab, variant)?;
    // Routers first: other nodes may route through them (`gateway`).
    let (routers, others): (Vec<_>, Vec<_>) = variant
        .nodes
        .iter()
        .partition(|(_, node)| matches!(node.kind, NodeKind::Router(_)));
    for (name, node) in routers.into_iter().chain(others) {
        let spec = spec(variant, name, node, &addresses)?;
        match &node.kind {
            NodeKind::Backend(b) if node.sidecar.is_some() => {
                let mut spec = spec;
                backend::command(b, &mut spec);
                let pod = mesh.pod(variant, name, Some(BACKEND_PORT), None)?;
                pod.prepare(lab, &mut spec, &ca, &mesh.resources)?;
                lab.start(spec).await?;
                sidecar::wait_ready(lab, name).await?;
                lab.wait_until(name, &backend::ready_probe(), Duration::from_secs(60))
                    .await?;
            }
            NodeKind::Backend(b) => backend::start(lab, b, spec).await?,
            NodeKind::Router(_) => router::start(lab, spec).await?,
            NodeKind::Script(s) if !s.workload => {
                let command = fill(&addresses, name, &spec, &s.command)?;
                script::start(lab, command, spec).await?
            }
            _ => continue,
        }
        addresses.learn(lab, name).await?;
    }
    let order = start_order(variant).map_err(|n| LabError::role(&n, "Envoy cycle"))?;
    for name in order {
        let node = &variant.nodes[&name];
        let Some(config) = node.kind.envoy() else {
            continue;
        };
        let from = networks_of(variant, node);
        let resolve = |endpoint: &str| addresses.reach(variant, &from, endpoint);
        envoy::start(
            lab,
            &name,
            spec(variant, &name, node, &addresses)?,
            config,
            &resolve,
            &ca,
        )
        .await?;
        addresses.learn(lab, &name).await?;
    }
    for (name, node) in &variant.nodes {
        if let NodeKind::Router(r) = &node.kind {
            router::configure(lab, name, r, &addresses).await?;
        }
    }
    // Captures run from before the first fault and request to the end.
    let mut captures = Vec::new();
    for (name, node) in &variant.nodes {
        if let Some(filter) = &node.capture {
            captures.push((name.clone(), Capture::start(lab, name, filter).await?));
        }
    }
    // Faults at time 0 are in place before the first request; the rest run
    // on their schedule beside the workload.
    let (now, later): (Vec<_>, Vec<_>) = variant.faults.iter().partition(|f| f.at().is_zero());
    for fault in now {
        fault.inject(lab, &addresses).await?;
    }
    progress::emit(Phase::FaultsInPlace);
    let mut clients = Vec::new();
    let mut scripts = Vec::new();
    for (name, node) in &variant.nodes {
        let spec = spec(variant, name, node, &addresses)?;
        match &node.kind {
            NodeKind::Client(c) => {
                let target = addresses
                    .reach(variant, &spec.networks, &c.config.target)
                    .ok_or_else(|| LabError::role(name, "cannot reach the target"))?;
                if node.sidecar.is_some() {
                    let mut spec = spec;
                    client::command(c, target.to_string(), &mut spec);
                    let host = c.config.target.split(':').next().unwrap_or_default();
                    let pod = mesh.pod(variant, name, None, Some((host, target)))?;
                    pod.prepare(lab, &mut spec, &ca, &mesh.resources)?;
                    lab.start(spec).await?;
                } else {
                    client::start(lab, c, target.to_string(), spec).await?;
                }
                clients.push((name.clone(), Workload::of(&c.config)));
                // A scheduled fault's rules may name it.
                addresses.learn(lab, name).await?;
            }
            NodeKind::Script(s) if s.workload => {
                let command = fill(&addresses, name, &spec, &s.command)?;
                script::start(lab, command, spec).await?;
                scripts.push(name.clone());
                addresses.learn(lab, name).await?;
            }
            _ => {}
        }
    }
    let limit = Duration::from_secs(variant.timeout_s);
    let lab_ref: &Lab = lab;
    let (client_outputs, script_outputs, scheduled) = tokio::join!(
        join_all(
            clients
                .iter()
                .map(|(name, workload)| progress::watch_client(
                    lab_ref,
                    name,
                    workload,
                    client::finish(lab_ref, name, limit)
                ))
        ),
        join_all(scripts.iter().map(|n| script::finish(lab_ref, n, limit))),
        faults::run_schedule(lab_ref, &later, &addresses)
    );
    scheduled?;
    let mut evidence = Evidence::default();
    for ((name, _), output) in clients.into_iter().zip(client_outputs) {
        evidence.clients.insert(name, output?);
    }
    for (name, output) in scripts.into_iter().zip(script_outputs) {
        evidence.scripts.insert(name, output?);
    }
    progress::emit(Phase::CollectingEvidence);
    for (name, capture) in captures {
        let file = capture.stop(lab).await?;
        let ips = addresses.0.get(&name).into_iter().flatten();
        let packets = Packets::read(&file, ips.map(|(_, ip)| *ip).collect())
            .map_err(|e| LabError::role(&name, format!("capture: {e}")))?;
        evidence.packets.insert(name, packets);
    }
    // Envoy flushes its access logs on a timer; let the last lines land.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (name, node) in &variant.nodes {
        if node.kind.envoy().is_some() {
            evidence
                .envoys
                .insert(name.clone(), envoy::collect(lab, name).await?);
        } else if node.sidecar.is_some() {
            let exited = node.kind.client().is_some();
            evidence
                .envoys
                .insert(name.clone(), sidecar::collect(lab, name, exited).await?);
        }
    }
    Ok(evidence)
}

/// A script's command with `{ip:NODE}` filled in.
fn fill(
    addresses: &Addresses,
    name: &str,
    spec: &ContainerSpec,
    command: &[String],
) -> Result<Vec<String>, LabError> {
    addresses
        .fill(&spec.networks, command)
        .map_err(|e| LabError::role(name, e))
}
