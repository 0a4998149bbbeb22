//! Whose config it is: plain Envoy, or an Istio sidecar or gateway (fixes
//! are then said as Istio resources and fields), and which versions.

use serde_json::Value;

use super::dump::Dump;
use super::value::{items, str_of};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Envoy,
    IstioSidecar,
    IstioGateway,
}

impl Shape {
    pub fn word(self) -> &'static str {
        match self {
            Shape::Envoy => "envoy",
            Shape::IstioSidecar => "istio-sidecar",
            Shape::IstioGateway => "istio-gateway",
        }
    }

    pub fn istio(self) -> bool {
        self != Shape::Envoy
    }
}

/// The node id Istio gives its proxies (`sidecar~IP~POD.NS~NS.svc…`,
/// `router~…` for gateways), else Istio's own resource names.
pub fn detect(dump: &Dump) -> Shape {
    let node_id = dump
        .bootstrap
        .as_ref()
        .and_then(|b| b.pointer("/node/id"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if node_id.starts_with("sidecar~") {
        return Shape::IstioSidecar;
    }
    if node_id.starts_with("router~") {
        return Shape::IstioGateway;
    }
    let listener_named = |n: &str| dump.listeners.iter().any(|l| l.name == n);
    if listener_named("virtualOutbound") || listener_named("virtualInbound") {
        return Shape::IstioSidecar;
    }
    let istio_clusters = dump
        .clusters
        .iter()
        .any(|c| c.name.starts_with("outbound|") || c.name.starts_with("inbound|"));
    let istio_filters = dump.listeners.iter().any(|l| {
        super::routes::chains(&l.value, &l.at).iter().any(|(_, c)| {
            items(c, "filters")
                .iter()
                .any(|f| str_of(f, "name").is_some_and(|n| n.starts_with("istio.")))
        })
    });
    if istio_clusters || istio_filters {
        // Gateways have no inbound side.
        if dump.clusters.iter().any(|c| c.name.starts_with("inbound|")) {
            Shape::IstioSidecar
        } else {
            Shape::IstioGateway
        }
    } else {
        Shape::Envoy
    }
}

/// `1.40.0` from the bootstrap's `node.user_agent_build_version`.
pub fn envoy_version(dump: &Dump) -> Option<String> {
    let v = dump
        .bootstrap
        .as_ref()?
        .pointer("/node/user_agent_build_version/version")?;
    let n = |k: &str| v.get(k).and_then(super::value::as_u64).unwrap_or(0);
    Some(format!(
        "{}.{}.{}",
        n("major_number"),
        n("minor_number"),
        n("patch")
    ))
}

/// Istio's release, from the proxy's node metadata.
pub fn istio_version(dump: &Dump) -> Option<String> {
    dump.bootstrap
        .as_ref()?
        .pointer("/node/metadata/ISTIO_VERSION")
        .and_then(Value::as_str)
        .map(String::from)
}

/// An Istio cluster name, `outbound|PORT|SUBSET|HOST` or `inbound|PORT||`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IstioCluster<'a> {
    pub inbound: bool,
    pub port: &'a str,
    pub subset: &'a str,
    pub host: &'a str,
}

pub fn istio_cluster(name: &str) -> Option<IstioCluster<'_>> {
    let mut parts = name.split('|');
    let direction = parts.next()?;
    let inbound = match direction {
        "outbound" => false,
        "inbound" => true,
        _ => return None,
    };
    Some(IstioCluster {
        inbound,
        port: parts.next()?,
        subset: parts.next()?,
        host: parts.next()?,
    })
}

/// Where a DestinationRule field goes for this cluster: `DestinationRule
/// for host reviews.default.svc.cluster.local: spec.trafficPolicy.<field>`
/// (per port and subset where the cluster is one).
pub fn destination_rule(cluster: &str, field: &str) -> Option<String> {
    let c = istio_cluster(cluster)?;
    if c.inbound {
        return None;
    }
    let mut path = "spec".to_string();
    if !c.subset.is_empty() {
        path += &format!(".subsets[name={}]", c.subset);
    }
    path += ".trafficPolicy";
    if !c.port.is_empty() {
        path += &format!(".portLevelSettings[port.number={}]", c.port);
    }
    Some(format!(
        "DestinationRule for host `{}`: {path}.{field}",
        c.host
    ))
}

/// Istio's own bootstrap clusters (the agent, xDS, SDS, stats): not the
/// mesh's traffic, so not audited.
pub const ISTIO_OWN_CLUSTERS: [&str; 6] = [
    "prometheus_stats",
    "agent",
    "sds-grpc",
    "xds-grpc",
    "zipkin",
    "BlackHoleCluster",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn istio_cluster_names() {
        let c = istio_cluster("outbound|9080|v1|reviews.default.svc.cluster.local").unwrap();
        assert_eq!((c.inbound, c.port, c.subset), (false, "9080", "v1"));
        assert_eq!(
            destination_rule(
                "outbound|9080|v1|reviews.default.svc.cluster.local",
                "connectionPool.http.idleTimeout"
            )
            .unwrap(),
            "DestinationRule for host `reviews.default.svc.cluster.local`: \
             spec.subsets[name=v1].trafficPolicy.portLevelSettings[port.number=9080].connectionPool.http.idleTimeout"
        );
        assert!(istio_cluster("inbound|8080||").unwrap().inbound);
        assert_eq!(istio_cluster("backend"), None);
        assert_eq!(destination_rule("inbound|8080||", "x"), None);
    }
}
