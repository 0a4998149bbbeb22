//! A `router` node: joins two or more networks, forwards between them
//! (`net.ipv4.ip_forward=1`, set at creation) and runs the scenario's
//! iptables rules once every node but the workload has started (a rule may
//! name any of their addresses).
//!
//! In a rule, `{dev:NET}` is the node's own interface on network NET and
//! `{ip:NODE}` is NODE's address on a network both join (else NODE's
//! first); the `iptables` fault runs its rules the same way.

use std::net::IpAddr;

use crate::runtime::{ContainerSpec, Lab, LabError};
use crate::scenario::node::RouterNode;

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
pub async fn configure(lab: &Lab, name: &str, router: &RouterNode) -> Result<(), LabError> {
    run_rules(lab, name, &router.iptables).await
}

/// Runs iptables `rules` in `node`, in order, placeholders filled in.
pub async fn run_rules(lab: &Lab, node: &str, rules: &[String]) -> Result<(), LabError> {
    let own = lab.addresses(node).await?;
    let links = lab
        .exec_ok(node, &["ip", "-o", "-4", "addr", "show"])
        .await?;
    let devices: Vec<(String, String)> = own
        .iter()
        .filter_map(|(network, ip)| Some((network.clone(), device_of(&links, *ip)?)))
        .collect();
    for rule in rules {
        let mut ips = Vec::new();
        for name in placeholders(rule, "ip") {
            let theirs = lab.addresses(&name).await?;
            let ip = theirs
                .iter()
                .find(|(network, _)| own.iter().any(|(n, _)| n == network))
                .or(theirs.first())
                .map(|(_, ip)| *ip)
                .ok_or_else(|| LabError::role(node, format!("`{{ip:{name}}}`: no address")))?;
            ips.push((name, ip));
        }
        let rule = substitute(rule, &devices, &ips).map_err(|e| LabError::role(node, e))?;
        let mut cmd = vec!["iptables"];
        cmd.extend(rule.split_whitespace());
        lab.exec_ok(node, &cmd).await?;
    }
    Ok(())
}

/// The names in a rule's `{kind:NAME}` placeholders.
pub fn placeholders(rule: &str, kind: &str) -> Vec<String> {
    let open = format!("{{{kind}:");
    rule.match_indices(&open)
        .filter_map(|(at, _)| {
            let rest = &rule[at + open.len()..];
            Some(rest[..rest.find('}')?].to_string())
        })
        .collect()
}

/// Fills `{dev:NET}` and `{ip:NODE}` in; any other `{...}` left is an error.
fn substitute(
    rule: &str,
    devices: &[(String, String)],
    ips: &[(String, IpAddr)],
) -> Result<String, String> {
    let mut out = rule.to_string();
    for (network, dev) in devices {
        out = out.replace(&format!("{{dev:{network}}}"), dev);
    }
    for (node, ip) in ips {
        out = out.replace(&format!("{{ip:{node}}}"), &ip.to_string());
    }
    match out.find('{') {
        Some(at) => Err(format!(
            "`{rule}`: cannot fill `{}` (the node is not on that network?)",
            &out[at..out[at..].find('}').map_or(out.len(), |e| at + e + 1)]
        )),
        None => Ok(out),
    }
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

    #[test]
    fn fills_devices_and_addresses() {
        let rule = "-t nat -A PREROUTING -i {dev:outside} -j DNAT --to-destination {ip:gwa}:10000";
        assert_eq!(placeholders(rule, "ip"), ["gwa"]);
        assert_eq!(placeholders(rule, "dev"), ["outside"]);
        let devices = [("outside".to_string(), "eth1".to_string())];
        let ips = [("gwa".to_string(), "172.21.0.3".parse().unwrap())];
        assert_eq!(
            substitute(rule, &devices, &ips).unwrap(),
            "-t nat -A PREROUTING -i eth1 -j DNAT --to-destination 172.21.0.3:10000"
        );
    }

    #[test]
    fn a_placeholder_left_unfilled_is_an_error() {
        let err = substitute("-o {dev:elsewhere} -j MASQUERADE", &[], &[]).unwrap_err();
        assert!(err.contains("`{dev:elsewhere}`"), "{err}");
    }
}
