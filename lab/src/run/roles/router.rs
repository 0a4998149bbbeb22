//! A `router` node: joins two or more networks, forwards between them
//! (`net.ipv4.ip_forward=1`, set at creation) and runs the scenario's
//! iptables rules once every node but the workload has started (a rule may
//! name any of their addresses).
//!
//! A rule's placeholders (`scenario::rules`) are filled here: `{dev:NET}`
//! with the node's own interface on network NET, `{ip:NODE}` with NODE's
//! address on a network both join (else NODE's first); the `iptables` fault
//! runs its rules the same way.

use std::net::IpAddr;

use crate::run::addresses::Addresses;
use crate::run::runtime::{ContainerSpec, Lab, LabError};
use crate::scenario::node::RouterNode;
use crate::scenario::rules::fill;

/// The sysctl and capability a router needs, added to its spec.
pub fn prepare(spec: &mut ContainerSpec) {
    spec.sysctls
        .insert("net.ipv4.ip_forward".into(), "1".into());
    spec.net_admin = true;
    spec.cmd = vec!["sleep".into(), "infinity".into()];
}

/// Starts the router's container; its rules come later (`configure`).
pub async fn start(lab: &mut Lab, mut spec: ContainerSpec) -> Result<(), LabError> {
    prepare(&mut spec);
    lab.start(spec).await
}

/// Applies the router's rules.
pub async fn configure(
    lab: &Lab,
    name: &str,
    router: &RouterNode,
    addresses: &Addresses,
) -> Result<(), LabError> {
    run_rules(lab, name, &router.iptables, addresses).await
}

/// Runs iptables `rules` in `node`, in order, placeholders filled in
/// (`{ip:NODE}` from the nodes started so far); one that cannot be filled is
/// an error.
pub async fn run_rules(
    lab: &Lab,
    node: &str,
    rules: &[String],
    addresses: &Addresses,
) -> Result<(), LabError> {
    let own = lab.addresses(node).await?;
    let networks: Vec<String> = own.iter().map(|(n, _)| n.clone()).collect();
    let links = lab
        .exec_ok(node, &["ip", "-o", "-4", "addr", "show"])
        .await?;
    let device = |network: &str| {
        let (_, ip) = own.iter().find(|(n, _)| n == network)?;
        device_of(&links, *ip)
    };
    let ip = |name: &str| addresses.ip(&networks, name).map(|ip| ip.to_string());
    for rule in rules {
        let cmd = fill(rule, &device, &ip);
        if let Some(left) = cmd
            .iter()
            .find(|w| w.contains("{dev:") || w.contains("{ip:"))
        {
            return Err(LabError::role(
                node,
                format!("`{rule}`: cannot fill `{left}` (not on that network? not started?)"),
            ));
        }
        let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
        lab.exec_ok(node, &cmd).await?;
    }
    Ok(())
}

/// The interface holding `ip` in `ip -o -4 addr show` output (`42:
/// eth0@if43    inet 172.20.0.3/16 ...`).
fn device_of(links: &str, ip: IpAddr) -> Option<String> {
    links.lines().find_map(|line| {
        let words: Vec<&str> = line.split_whitespace().collect();
        let at = words.iter().position(|w| *w == "inet")?;
        let addr = words.get(at + 1)?.split('/').next()?;
        if addr.parse::<IpAddr>().ok()? != ip {
            return None;
        }
        let device = words.get(1)?.trim_end_matches(':');
        Some(device.split('@').next()?.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_interface_of_an_address() {
        let links = "1: lo    inet 127.0.0.1/8 scope host lo\n\
                     42: eth0@if43    inet 172.20.0.3/16 brd 172.20.255.255 scope global eth0\n\
                     44: eth1@if45    inet 172.21.0.2/16 brd 172.21.255.255 scope global eth1\n";
        let ip: IpAddr = "172.21.0.2".parse().unwrap();
        assert_eq!(device_of(links, ip).as_deref(), Some("eth1"));
    }
}
