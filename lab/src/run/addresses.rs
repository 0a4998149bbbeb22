//! Where each node can be reached, per network: learnt from Docker as the
//! nodes start (a run), or assigned up front (`connlab compose`).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use crate::run::runtime::{Lab, LabError};
use crate::scenario::rules::fill_word;
use crate::scenario::Variant;

/// Where each node can be reached, per network: learnt from Docker as nodes
/// start, or assigned up front (`connlab compose`).
#[derive(Default)]
pub struct Addresses(pub BTreeMap<String, Vec<(String, IpAddr)>>);

impl Addresses {
    pub(crate) async fn learn(&mut self, lab: &Lab, name: &str) -> Result<(), LabError> {
        self.0.insert(name.into(), lab.addresses(name).await?);
        Ok(())
    }

    /// A node's address as seen from a node on `from`: on a network they
    /// share, else its first one (reached through a router).
    pub fn ip(&self, from: &[String], name: &str) -> Option<IpAddr> {
        reach(from, self.0.get(name)?)
    }

    /// `node[:port]` as seen from a node on `from` (see `ip`).
    pub fn reach(&self, variant: &Variant, from: &[String], target: &str) -> Option<SocketAddr> {
        let (name, port) = match target.split_once(':') {
            Some((name, port)) => (name, port.parse().ok()?),
            None => (
                target,
                crate::scenario::default_port(&variant.nodes.get(target)?.kind)?,
            ),
        };
        Some(SocketAddr::new(self.ip(from, name)?, port))
    }

    /// `{ip:NODE}` in each word replaced by NODE's address as seen from `from`.
    pub fn fill(&self, from: &[String], words: &[String]) -> Result<Vec<String>, String> {
        let ip = |node: &str| self.ip(from, node).map(|ip| ip.to_string());
        words
            .iter()
            .map(|word| {
                let filled = fill_word(word, &|_| None, &ip);
                match filled.find("{ip:") {
                    Some(at) => Err(format!(
                        "`{word}`: `{}` has not started",
                        &filled[at..filled[at..].find('}').map_or(filled.len(), |e| at + e + 1)]
                    )),
                    None => Ok(filled),
                }
            })
            .collect()
    }
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

#[cfg(test)]
mod tests {
    use super::*;

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
