//! What one container runs, as data: the runtime starts it, compose writes
//! it as a service.

use std::collections::HashMap;
use std::net::IpAddr;

/// What one container runs.
#[derive(Debug, Clone, Default)]
pub struct ContainerSpec {
    /// The role's name; also the container's hostname.
    pub role: String,
    pub cmd: Vec<String>,
    pub env: Vec<(String, String)>,
    /// NET_ADMIN, for iptables and NFQUEUE faults inside the container.
    pub net_admin: bool,
    /// net.* sysctls set in the container's network namespace.
    pub sysctls: HashMap<String, String>,
    /// Networks it joins, by the names given to `Lab::add_network`, in
    /// order; empty = the run's default network.
    pub networks: Vec<String>,
    /// More capabilities (`NET_RAW`, ...).
    pub cap_add: Vec<String>,
    /// The default route's next hop (a router node's address), set before
    /// `cmd` runs; needs `net_admin`.
    pub gateway: Option<IpAddr>,
}

impl ContainerSpec {
    /// What the container runs: `cmd`, behind the route change when there is
    /// a gateway (the route must be in place before the command's first
    /// packet, so it cannot wait for an exec after the start).
    pub fn command(&self) -> Vec<String> {
        let Some(gateway) = self.gateway else {
            return self.cmd.clone();
        };
        let mut command = vec![
            "sh".to_string(),
            "-c".into(),
            "ip route replace default via \"$0\" && exec \"$@\"".into(),
            gateway.to_string(),
        ];
        command.extend(self.cmd.iter().cloned());
        command
    }
}
