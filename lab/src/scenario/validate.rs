//! What TOML and serde cannot check: that the names a variant uses refer to
//! things it declares. Errors are (path of the field, message); the caller
//! turns the path into a place in the file.

use std::collections::{BTreeMap, BTreeSet};

use super::envoy::{EnvoyNode, Listener, ListenerKind};
use super::fault::Fault;
use super::node::{NodeKind, Server};
use super::{Measure, Variant};

type Invalid = (String, String);

fn err<T>(path: impl Into<String>, message: impl Into<String>) -> Result<T, Invalid> {
    Err((path.into(), message.into()))
}

pub fn variant(v: &Variant) -> Result<(), Invalid> {
    if v.timeout_s == 0 {
        return err("timeout_s", "must be above 0");
    }
    if let Some(mesh) = &v.mesh {
        for (i, rule) in mesh.destination_rules.iter().enumerate() {
            if !v.nodes.contains_key(&rule.host) {
                return err(
                    format!("mesh.destination_rules[{i}].host"),
                    format!("no node `{}` (nodes: {})", rule.host, names(v)),
                );
            }
        }
    }
    let mut seen = BTreeSet::new();
    for (i, network) in v.networks.iter().enumerate() {
        if !seen.insert(network) {
            return err(
                format!("networks[{i}]"),
                format!("`{network}` is declared twice"),
            );
        }
    }
    if v.nodes.is_empty() {
        return err("nodes", "a variant needs nodes");
    }
    for (name, node) in &v.nodes {
        let path = format!("nodes.{name}");
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return err(
                path,
                "a node name is letters, digits and `-` (it is a hostname)",
            );
        }
        if node.networks.is_empty() && v.networks.len() > 1 {
            return err(
                format!("{path}.networks"),
                format!(
                    "several networks are declared ({}): name the ones it joins",
                    v.networks.join(", ")
                ),
            );
        }
        for (i, network) in node.networks.iter().enumerate() {
            if !v.networks.contains(network) {
                return err(
                    format!("{path}.networks[{i}]"),
                    format!(
                        "no network `{network}` (declared: {})",
                        v.networks.join(", ")
                    ),
                );
            }
        }
        if let Some(gateway) = &node.gateway {
            gateway_of(v, &path, name, gateway)?;
        }
        if let Some(filter) = &node.capture {
            if filter.trim().is_empty() {
                return err(
                    format!("{path}.capture"),
                    "a tcpdump filter, e.g. \"tcp port 8080\"",
                );
            }
            // Its command starts with the workload, before a capture could.
            if is_workload(&node.kind) {
                return err(
                    format!("{path}.capture"),
                    "a workload node starts sending at once: capture at its peer or a router",
                );
            }
        }
        if node.sidecar.is_some() {
            if !matches!(node.kind, NodeKind::Backend(_) | NodeKind::Client(_)) {
                return err(
                    format!("{path}.sidecar"),
                    "only a backend or a client gets an Istio sidecar",
                );
            }
            if v.mesh.is_none() {
                return err(
                    format!("{path}.sidecar"),
                    "a sidecar needs `[mesh]` with the Istio release (`istio = \"1.28\"`)",
                );
            }
        }
        if let Some(key) = node.sysctls.keys().find(|k| !k.starts_with("net.")) {
            return err(
                format!("{path}.sysctls"),
                format!("`{key}`: only net.* sysctls are per container"),
            );
        }
        match &node.kind {
            NodeKind::Backend(backend) => {
                let (_, knob) = backend.tunable_args();
                if let (Some(knob), false) = (knob, backend.server == Server::ConnlabBackend) {
                    return err(
                        format!("{path}.{knob}"),
                        "a connlab-backend knob; this server is not connlab-backend",
                    );
                }
            }
            NodeKind::Envoy(envoy) => envoy_node(v, &path, envoy)?,
            NodeKind::Client(client) => {
                if let Err(e) = client.config.validate() {
                    return err(format!("{path}.{}", e.field), e.to_string());
                }
                if let Some(library) = &client.library {
                    if client.config.requests.is_none() {
                        return err(
                            format!("{path}.requests"),
                            format!("must be set with library = \"{}\"", library.name()),
                        );
                    }
                    if let Err((field, problem)) = library.validate(client.config.connections) {
                        return err(format!("{path}.{field}"), problem);
                    }
                }
                node_port(v, &format!("{path}.target"), &client.config.target)?;
            }
            NodeKind::Router(router) => {
                if node.networks.len() < 2 {
                    return err(
                        format!("{path}.networks"),
                        "a router joins at least two networks",
                    );
                }
                // Its rules run before the workload starts.
                for (i, rule) in router.iptables.iter().enumerate() {
                    rule_addresses(v, &format!("{path}.iptables[{i}]"), rule, false)?;
                }
            }
            NodeKind::Script(script) => {
                if script.command.is_empty() {
                    return err(format!("{path}.command"), "must name a program");
                }
                for (i, word) in script.command.iter().enumerate() {
                    for named in word.split("{ip:").skip(1) {
                        let other = named.split('}').next().unwrap_or_default();
                        if !v.nodes.contains_key(other) || other == name {
                            return err(
                                format!("{path}.command[{i}]"),
                                format!(
                                    "`{{ip:{other}}}`: no other node `{other}` (nodes: {})",
                                    names(v)
                                ),
                            );
                        }
                    }
                }
            }
        }
    }
    let workloads = v.nodes.values().filter(|n| is_workload(&n.kind));
    if workloads.count() == 0 {
        return err(
            "nodes",
            "no workload: a `client` node, or a `script` with workload = true",
        );
    }
    envoy_order(v)?;
    for (i, fault) in v.faults.iter().enumerate() {
        if !v.nodes.contains_key(fault.target()) {
            return err(
                format!("faults[{i}].target"),
                format!("no node `{}` (nodes: {})", fault.target(), names(v)),
            );
        }
        if let Fault::Iptables { rules, at_ms, .. } = fault {
            if rules.is_empty() {
                return err(format!("faults[{i}].rules"), "needs at least one rule");
            }
            for (j, rule) in rules.iter().enumerate() {
                rule_addresses(v, &format!("faults[{i}].rules[{j}]"), rule, *at_ms > 0)?;
            }
        }
    }
    for (list, checks) in [("reproduced", &v.reproduced), ("fixed", &v.fixed)] {
        if checks.is_empty() {
            return err(
                list,
                "needs at least one check (an empty list would always hold)",
            );
        }
        for (i, check) in checks.iter().enumerate() {
            let path = format!("{list}[{i}]");
            if matches!(check.measure, Measure::Timeline(_)) && v.timeline_fault_s().is_none() {
                return err(
                    path,
                    "a timeline check needs a fault scheduled after the start (`at_ms` > 0)",
                );
            }
            let Some(at) = &check.at else { continue };
            let Some(node) = v.nodes.get(at) else {
                return err(
                    format!("{path}.at"),
                    format!("no node `{at}` (nodes: {})", names(v)),
                );
            };
            let fits = match check.measure {
                Measure::Diagnosis(_) | Measure::Stat(_) | Measure::AccessLog(_) => {
                    matches!(node.kind, NodeKind::Envoy(_)) || node.sidecar.is_some()
                }
                Measure::Client(_) | Measure::LibraryError(_) => {
                    matches!(node.kind, NodeKind::Client(_))
                }
                Measure::Packets(_) | Measure::Conversation(_) => {
                    if node.capture.is_none() {
                        return err(
                            format!("{path}.at"),
                            format!(
                                "`{at}` captures nothing: give it `capture = \"tcp port ...\"`"
                            ),
                        );
                    }
                    true
                }
                Measure::Timeline(_) => true,
            };
            if !fits {
                return err(
                    format!("{path}.at"),
                    format!(
                        "`{at}` is a {} node; this check reads another kind",
                        node.kind.word()
                    ),
                );
            }
        }
    }
    for (i, stat) in v.stats.iter().enumerate() {
        if stat
            .split_once(':')
            .is_none_or(|(n, s)| n.is_empty() || s.is_empty())
        {
            return err(
                format!("stats[{i}]"),
                format!("`{stat}` is not node:stat.name"),
            );
        }
    }
    Ok(())
}

/// The `{ip:NODE}` of an iptables rule name nodes that are up when it runs
/// (workload nodes only once the workload has started).
fn rule_addresses(v: &Variant, path: &str, rule: &str, workload_up: bool) -> Result<(), Invalid> {
    for name in super::rules::placeholders(rule, "ip") {
        let Some(node) = v.nodes.get(&name) else {
            return err(
                path,
                format!("`{{ip:{name}}}`: no node `{name}` (nodes: {})", names(v)),
            );
        };
        if is_workload(&node.kind) && !workload_up {
            return err(
                path,
                format!("`{{ip:{name}}}`: a workload node, not started when this rule runs"),
            );
        }
    }
    Ok(())
}

/// A node's gateway is a router on one of its networks.
fn gateway_of(v: &Variant, path: &str, name: &str, gateway: &str) -> Result<(), Invalid> {
    let path = format!("{path}.gateway");
    let Some(router) = v.nodes.get(gateway) else {
        return err(path, format!("no node `{gateway}` (nodes: {})", names(v)));
    };
    if !matches!(router.kind, NodeKind::Router(_)) {
        return err(
            path,
            format!("`{gateway}` is a {} node, not a router", router.kind.word()),
        );
    }
    let own = networks_of(v, &v.nodes[name]);
    if !networks_of(v, router).iter().any(|n| own.contains(n)) {
        return err(
            path,
            format!("`{gateway}` is on none of `{name}`'s networks"),
        );
    }
    Ok(())
}

/// The networks a node joins: its own, or the variant's only one.
pub fn networks_of(v: &Variant, node: &super::Node) -> Vec<String> {
    if node.networks.is_empty() {
        v.networks.iter().take(1).cloned().collect()
    } else {
        node.networks.clone()
    }
}

/// Clients and workload scripts: the run waits for them.
fn is_workload(kind: &NodeKind) -> bool {
    match kind {
        NodeKind::Client(_) => true,
        NodeKind::Script(s) => s.workload,
        _ => false,
    }
}

fn names(v: &Variant) -> String {
    v.nodes.keys().cloned().collect::<Vec<_>>().join(", ")
}

fn envoy_node(v: &Variant, path: &str, envoy: &EnvoyNode) -> Result<(), Invalid> {
    if envoy.listeners.is_empty() {
        return err(format!("{path}.listeners"), "an Envoy needs a listener");
    }
    let mut ports = BTreeMap::new();
    for (name, listener) in &envoy.listeners {
        let lpath = format!("{path}.listeners.{name}");
        if let Some(other) = ports.insert(listener.port, name) {
            return err(
                format!("{lpath}.port"),
                format!("port {} is listener `{other}`'s too", listener.port),
            );
        }
        match listener.kind {
            ListenerKind::Http if listener.all_routes().is_empty() => {
                return err(&lpath, "an http listener needs `upstream` or `routes`");
            }
            ListenerKind::TcpProxy if listener.upstream.is_none() => {
                return err(&lpath, "a tcp_proxy listener needs `upstream`");
            }
            ListenerKind::TcpProxy if !listener.routes.is_empty() => {
                return err(
                    format!("{lpath}.routes"),
                    "a tcp_proxy listener has no routes",
                );
            }
            _ => {}
        }
        sniffing(envoy, &lpath, listener)?;
        downstream_timeouts(&lpath, listener)?;
        if let Some(upstream) = &listener.upstream {
            if !envoy.upstreams.contains_key(upstream) {
                return err(format!("{lpath}.upstream"), no_upstream(envoy, upstream));
            }
        }
        for (i, route) in listener.routes.iter().enumerate() {
            if !envoy.upstreams.contains_key(&route.upstream) {
                return err(
                    format!("{lpath}.routes[{i}].upstream"),
                    no_upstream(envoy, &route.upstream),
                );
            }
        }
    }
    for (name, upstream) in &envoy.upstreams {
        let upath = format!("{path}.upstreams.{name}");
        if upstream.endpoints.is_empty() {
            return err(format!("{upath}.endpoints"), "needs at least one endpoint");
        }
        for (i, endpoint) in upstream.endpoints.iter().enumerate() {
            node_port(v, &format!("{upath}.endpoints[{i}]"), endpoint)?;
        }
        if let Some(h) = &upstream.health_check {
            if h.interval_ms == 0 || h.timeout_ms == 0 {
                return err(
                    format!("{upath}.health_check"),
                    "interval_ms and timeout_ms must be above 0",
                );
            }
        }
    }
    Ok(())
}

/// The HCM's downstream timeouts exist only where there is an HCM, and a
/// zero would mean "disabled" to Envoy for some and "at once" for others:
/// rejected (leave the field out for Envoy's default).
fn downstream_timeouts(lpath: &str, listener: &Listener) -> Result<(), Invalid> {
    let t = listener.downstream_timeouts();
    let set = [
        ("idle_timeout_ms", t.idle_timeout_ms),
        ("max_connection_duration_ms", t.max_connection_duration_ms),
        ("drain_timeout_ms", t.drain_timeout_ms),
        ("delayed_close_timeout_ms", t.delayed_close_timeout_ms),
        ("stream_idle_timeout_ms", t.stream_idle_timeout_ms),
        ("request_headers_timeout_ms", t.request_headers_timeout_ms),
    ];
    for (field, ms) in set {
        match ms {
            Some(_) if listener.kind == ListenerKind::TcpProxy => {
                return err(
                    format!("{lpath}.{field}"),
                    "an HTTP connection manager timeout; a tcp_proxy listener has none",
                )
            }
            Some(0) => return err(format!("{lpath}.{field}"), "must be above 0"),
            _ => {}
        }
    }
    Ok(())
}

/// A sniffing listener has its HTTP upstream, its passthrough and its
/// timeout; the other kinds have none of the sniffing keys.
fn sniffing(envoy: &EnvoyNode, lpath: &str, listener: &Listener) -> Result<(), Invalid> {
    let sniffing_keys = [
        ("passthrough", listener.passthrough.is_some()),
        (
            "detection_timeout_ms",
            listener.detection_timeout_ms.is_some(),
        ),
        (
            "continue_on_timeout",
            listener.continue_on_timeout.is_some(),
        ),
    ];
    if listener.kind != ListenerKind::Sniffing {
        return match sniffing_keys.iter().find(|(_, set)| *set) {
            Some((key, _)) => err(
                format!("{lpath}.{key}"),
                "only a `sniffing` listener has it",
            ),
            None => Ok(()),
        };
    }
    if listener.all_routes().is_empty() {
        return err(
            lpath,
            "a sniffing listener needs `upstream` (its HTTP chain)",
        );
    }
    if listener.mtls.is_some() {
        return err(
            format!("{lpath}.mtls"),
            "a sniffing listener is a client sidecar's outbound: no downstream mTLS",
        );
    }
    match &listener.passthrough {
        None => {
            return err(
                lpath,
                "a sniffing listener needs `passthrough` (its default chain)",
            )
        }
        Some(p) if !envoy.upstreams.contains_key(p) => {
            return err(format!("{lpath}.passthrough"), no_upstream(envoy, p));
        }
        Some(_) => {}
    }
    match listener.detection_timeout_ms {
        None => err(lpath, "a sniffing listener needs `detection_timeout_ms`"),
        Some(0) => err(format!("{lpath}.detection_timeout_ms"), "must be above 0"),
        Some(_) => Ok(()),
    }
}

fn no_upstream(envoy: &EnvoyNode, name: &str) -> String {
    let known: Vec<&str> = envoy.upstreams.keys().map(String::as_str).collect();
    format!("no upstream `{name}` (upstreams: {})", known.join(", "))
}

/// `node` or `node:port`: the node exists, and without a port it has an
/// obvious one.
fn node_port(v: &Variant, path: &str, target: &str) -> Result<(), Invalid> {
    let (name, port) = match target.split_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (target, None),
    };
    let Some(node) = v.nodes.get(name) else {
        return err(path, format!("no node `{name}` (nodes: {})", names(v)));
    };
    match port {
        Some(port) if port.parse::<u16>().is_err() => err(path, format!("`{port}` is not a port")),
        Some(_) => Ok(()),
        None => match default_port(&node.kind) {
            Some(_) => Ok(()),
            None => err(
                path,
                format!("`{name}` has no single port: write `{name}:<port>`"),
            ),
        },
    }
}

/// The port a node serves on when an address names only the node.
pub fn default_port(kind: &NodeKind) -> Option<u16> {
    match kind {
        NodeKind::Backend(_) => Some(super::node::BACKEND_PORT),
        NodeKind::Envoy(envoy) if envoy.listeners.len() == 1 => {
            envoy.listeners.values().next().map(|l| l.port)
        }
        _ => None,
    }
}

/// Envoys whose upstreams are other Envoys start after them; a cycle has no
/// order.
fn envoy_order(v: &Variant) -> Result<(), Invalid> {
    start_order(v).map(|_| ()).map_err(|name| {
        (
            format!("nodes.{name}.upstreams"),
            "Envoys whose upstreams reach each other in a cycle cannot start in order".into(),
        )
    })
}

/// Envoy node names, each after the Envoys its upstreams name; `Err(node)`
/// on a cycle.
pub fn start_order(v: &Variant) -> Result<Vec<String>, String> {
    let deps = |envoy: &EnvoyNode| -> BTreeSet<String> {
        envoy
            .upstreams
            .values()
            .flat_map(|u| u.endpoints.iter())
            .map(|e| e.split(':').next().unwrap_or_default().to_string())
            .filter(|n| v.nodes.get(n).is_some_and(|n| n.kind.envoy().is_some()))
            .collect()
    };
    let mut order: Vec<String> = Vec::new();
    let mut pending: Vec<(&String, BTreeSet<String>)> = v
        .nodes
        .iter()
        .filter_map(|(name, n)| n.kind.envoy().map(|e| (name, deps(e))))
        .collect();
    while !pending.is_empty() {
        let ready = pending
            .iter()
            .position(|(_, deps)| deps.iter().all(|d| order.contains(d)));
        match ready {
            Some(i) => order.push(pending.remove(i).0.clone()),
            None => return Err(pending[0].0.clone()),
        }
    }
    Ok(order)
}
