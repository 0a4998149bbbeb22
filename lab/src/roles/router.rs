//! A `router` node: joins two or more networks, forwards between them
//! (`net.ipv4.ip_forward=1`, set at creation) and runs the scenario's
//! iptables rules once it has joined them all.

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

/// Starts the router and applies its rules; `{dev:NET}` in a rule is the
/// router's interface on network NET.
pub async fn start(
    lab: &mut Lab,
    router: &RouterNode,
    mut spec: ContainerSpec,
) -> Result<(), LabError> {
    prepare(&mut spec);
    let name = spec.role.clone();
    lab.start(spec).await?;
    let addresses = lab.addresses(&name).await?;
    let links = lab
        .exec_ok(&name, &["ip", "-o", "-4", "addr", "show"])
        .await?;
    let device = |network: &str| {
        let (_, ip) = addresses.iter().find(|(n, _)| n == network)?;
        device_of(&links, *ip)
    };
    for rule in rules(router, &device) {
        let cmd: Vec<&str> = rule.iter().map(String::as_str).collect();
        lab.exec_ok(&name, &cmd).await?;
    }
    Ok(())
}

/// The router's iptables commands, `{dev:NET}` replaced by `device(NET)`
/// (left as it is when unknown).
pub fn rules(router: &RouterNode, device: &dyn Fn(&str) -> Option<String>) -> Vec<Vec<String>> {
    router
        .iptables
        .iter()
        .map(|rule| {
            let words = rule.split_whitespace().map(|word| {
                let mut word = word.to_string();
                let mut from = 0;
                while let Some(at) = word[from..].find("{dev:").map(|i| i + from) {
                    let Some(len) = word[at..].find('}') else {
                        break;
                    };
                    let network = word[at + 5..at + len].to_string();
                    match device(&network) {
                        Some(dev) => {
                            word.replace_range(at..=at + len, &dev);
                            from = at + dev.len();
                        }
                        None => from = at + len + 1,
                    }
                }
                word
            });
            std::iter::once("iptables".to_string())
                .chain(words)
                .collect()
        })
        .collect()
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
    fn rules_name_the_device_of_each_network() {
        let router = RouterNode {
            iptables: vec!["-t nat -A POSTROUTING -o {dev:wan} -j MASQUERADE".into()],
        };
        let device = |n: &str| (n == "wan").then(|| "eth1".to_string());
        assert_eq!(
            rules(&router, &device)[0].join(" "),
            "iptables -t nat -A POSTROUTING -o eth1 -j MASQUERADE"
        );
    }
}
