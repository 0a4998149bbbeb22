//! A `router` node: joins two or more networks, forwards between them
//! (`net.ipv4.ip_forward=1`, set at creation) and runs the scenario's
//! iptables rules once every node but the workload has started (a rule may
//! name any of their addresses).
//!
//! In a rule, `{dev:NET}` is the node's own interface on network NET and
//! `{ip:NODE}` is NODE's address on a network both join (else NODE's
//! first); the `iptables` fault runs its rules the same way.

use std::net::IpAddr;

use crate::run::Addresses;
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

/// A node's address (`theirs`, per network) as seen from a node on
/// networks `from`: on a network both join, else its first (reached through
/// a router).
pub fn reach(from: &[String], theirs: &[(String, IpAddr)]) -> Option<IpAddr> {
    theirs
        .iter()
        .find(|(network, _)| from.contains(network))
        .or(theirs.first())
        .map(|(_, ip)| *ip)
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

/// One rule as an iptables command, each word through [`fill_word`].
pub fn fill(
    rule: &str,
    device: &dyn Fn(&str) -> Option<String>,
    ip: &dyn Fn(&str) -> Option<String>,
) -> Vec<String> {
    std::iter::once("iptables".to_string())
        .chain(rule.split_whitespace().map(|w| fill_word(w, device, ip)))
        .collect()
}

/// `{dev:NET}` replaced by `device(NET)` and `{ip:NODE}` by `ip(NODE)`; a
/// placeholder they do not know is left as it is.
pub fn fill_word(
    word: &str,
    device: &dyn Fn(&str) -> Option<String>,
    ip: &dyn Fn(&str) -> Option<String>,
) -> String {
    let mut word = word.to_string();
    for (open, resolve) in [("{dev:", device), ("{ip:", ip)] {
        let mut from = 0;
        while let Some(at) = word[from..].find(open).map(|i| i + from) {
            let Some(len) = word[at..].find('}') else {
                break;
            };
            let name = word[at + open.len()..at + len].to_string();
            match resolve(&name) {
                Some(value) => {
                    word.replace_range(at..=at + len, &value);
                    from = at + value.len();
                }
                None => from = at + len + 1,
            }
        }
    }
    word
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
        let device = |n: &str| (n == "outside").then(|| "eth1".to_string());
        let ip = |n: &str| (n == "gwa").then(|| "172.21.0.3".to_string());
        assert_eq!(
            fill(rule, &device, &ip).join(" "),
            "iptables -t nat -A PREROUTING -i eth1 -j DNAT --to-destination 172.21.0.3:10000"
        );
    }

    #[test]
    fn an_unknown_placeholder_is_left_as_it_is() {
        let none = |_: &str| None;
        assert_eq!(
            fill("-o {dev:elsewhere} -j MASQUERADE", &none, &none).join(" "),
            "iptables -o {dev:elsewhere} -j MASQUERADE"
        );
    }

    #[test]
    fn a_node_is_reached_on_a_shared_network_first() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let from = ["front".to_string()];
        let theirs = [
            ("back".into(), ip("10.0.2.3")),
            ("front".into(), ip("10.0.1.3")),
        ];
        assert_eq!(reach(&from, &theirs), Some(ip("10.0.1.3")));
        assert_eq!(reach(&[], &theirs), Some(ip("10.0.2.3")));
        assert_eq!(reach(&from, &[]), None);
    }
}
