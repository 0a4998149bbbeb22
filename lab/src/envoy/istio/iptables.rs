//! The rules istio-iptables (and the CNI plugin) write into a pod's network
//! namespace, in `iptables-save` form (tools/istio-iptables/pkg/capture):
//! inbound TCP to 15006 except the sidecar's own ports, outbound TCP to
//! 15001 except the sidecar's own traffic (uid/gid 1337), loopback the app
//! sends itself, and the inbound clusters' connections from 127.0.0.6.
//! The lab applies them with `iptables-restore --noflush`.

use super::sidecar::{INBOUND_PORT, INBOUND_SOURCE, OUTBOUND_PORT};

/// The uid and gid the sidecar runs as (istio-proxy's).
pub const PROXY_UID: u32 = 1337;
/// HBONE; never redirected.
pub const HBONE_PORT: u16 = 15008;
/// pilot-agent (15020), health (15021) and Prometheus (15090): excluded
/// from inbound capture by the injector's defaults
/// (`traffic.sidecar.istio.io/excludeInboundPorts` = 15090,15021,15020).
pub const EXCLUDED_INBOUND: [u16; 3] = [15020, 15021, 15090];

/// The `nat` table as istio-iptables writes it (`-b '*'`, default
/// exclusions when `default_exclusions`), one rule per line, `* nat` to
/// `COMMIT`.
pub fn nat_rules(default_exclusions: bool) -> Vec<String> {
    let mut r: Vec<String> = vec!["* nat".into()];
    for chain in [
        "ISTIO_INBOUND",
        "ISTIO_REDIRECT",
        "ISTIO_IN_REDIRECT",
        "ISTIO_OUTPUT",
    ] {
        r.push(format!("-N {chain}"));
    }
    r.push(format!(
        "-A ISTIO_INBOUND -p tcp --dport {HBONE_PORT} -j RETURN"
    ));
    r.push(format!(
        "-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports {OUTBOUND_PORT}"
    ));
    r.push(format!(
        "-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports {INBOUND_PORT}"
    ));
    r.push("-A PREROUTING -p tcp -j ISTIO_INBOUND".into());
    if default_exclusions {
        for port in EXCLUDED_INBOUND {
            r.push(format!("-A ISTIO_INBOUND -p tcp --dport {port} -j RETURN"));
        }
    }
    r.push("-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT".into());
    r.push("-A OUTPUT -j ISTIO_OUTPUT".into());
    if default_exclusions {
        r.push("-A ISTIO_OUTPUT -p tcp --dport 15020 -j RETURN".into());
        r.push("-A ISTIO_OUTPUT -p udp --dport 15020 -j RETURN".into());
    }
    r.push(format!(
        "-A ISTIO_OUTPUT -o lo -s {INBOUND_SOURCE}/32 -j RETURN"
    ));
    for owner in ["uid", "gid"] {
        r.push(format!(
            "-A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport {HBONE_PORT} -m owner --{owner}-owner {PROXY_UID} -j ISTIO_IN_REDIRECT"
        ));
        r.push(format!(
            "-A ISTIO_OUTPUT -o lo -m owner ! --{owner}-owner {PROXY_UID} -j RETURN"
        ));
        r.push(format!(
            "-A ISTIO_OUTPUT -m owner --{owner}-owner {PROXY_UID} -j RETURN"
        ));
    }
    r.push("-A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN".into());
    r.push("-A ISTIO_OUTPUT -j ISTIO_REDIRECT".into());
    r.push("COMMIT".into());
    r
}

/// The same rules as `iptables-restore` input (`*nat`, no space).
pub fn restore_input(default_exclusions: bool) -> String {
    let mut text = nat_rules(default_exclusions).join("\n");
    text = text.replacen("* nat", "*nat", 1);
    text + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn golden(name: &str) -> Vec<String> {
        let path = crate::paths::root().join("tests/data/istio").join(name);
        let text = std::fs::read_to_string(&path).unwrap();
        text.lines()
            .map(str::to_string)
            .filter(|l| !l.ends_with("-save"))
            .collect()
    }

    #[test]
    fn the_default_rules_are_the_cni_plugins_golden() {
        assert_eq!(nat_rules(true), golden("iptables-cni-basic.golden"));
    }

    /// The wildcard golden has no excluded ports and no final redirect (it
    /// is a test of `-b '*'` with outbound capture off): the same rules
    /// otherwise, in the same order.
    #[test]
    fn without_exclusions_the_rules_are_the_wildcard_golden_plus_outbound_capture() {
        let mut ours = nat_rules(false);
        let at = ours.len() - 2;
        assert_eq!(ours.remove(at), "-A ISTIO_OUTPUT -j ISTIO_REDIRECT");
        assert_eq!(ours, golden("iptables-inbound-ports-wildcard.golden"));
    }

    #[test]
    fn restore_input_is_a_nat_table() {
        let text = restore_input(true);
        assert!(text.starts_with("*nat\n-N ISTIO_INBOUND\n"));
        assert!(text.ends_with("COMMIT\n"));
    }
}
