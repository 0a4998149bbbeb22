//! Mesh mode: Envoy in the shape an Istio sidecar has, for a pinned
//! release, built from Istio's own rules rather than connlab's (`release`:
//! what differs between releases, as data; `sidecar`: listeners, chains,
//! clusters and routes; `iptables`: the pod's capture rules; `wasmplugin`:
//! a WasmPlugin resource as pilot turns it into ECDS; `module`: the agent's
//! fetch of the plugin from the OCI image layout). Pure functions: the roles
//! put them in containers. Uses `envoy::config` (the blocks), `envoy::certs`,
//! `evidence` (the access-log format) and `paths` (the filter image, Istio's
//! data files).

pub mod iptables;
pub mod module;
pub mod release;
pub mod sidecar;
pub mod wasmplugin;

pub use release::Release;

#[cfg(test)]
mod golden_tests {
    //! The generated shape against a real sidecar's listener dump
    //! (tests/data/istio/golden-sidecar-configdump.authz.json: PERMISSIVE,
    //! port 80 declared HTTP inbound, 9080 outbound).

    use std::net::SocketAddr;

    use serde_json::Value;

    use super::sidecar::*;
    use super::Release;

    fn golden() -> Vec<Value> {
        let path =
            crate::paths::root().join("tests/data/istio/golden-sidecar-configdump.authz.json");
        let dump: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let listeners = &dump["configs"][0];
        let mut all = Vec::new();
        for kind in ["static_listeners", "dynamic_listeners"] {
            for entry in listeners[kind].as_array().into_iter().flatten() {
                let l = entry
                    .get("active_state")
                    .map(|s| &s["listener"])
                    .unwrap_or(&entry["listener"]);
                all.push(l.clone());
            }
        }
        all
    }

    pub(crate) fn sidecar_config(release: &str, mode: MtlsMode, inbound: Protocol) -> Value {
        let certs = Certs {
            cert: "/c/me.pem".into(),
            key: "/c/me.key".into(),
            ca: "/c/ca.pem".into(),
        };
        let inbound = [InboundPort {
            port: 80,
            protocol: inbound,
            idle_timeout_ms: None,
        }];
        let outbound = [OutboundService {
            host: "reviews".into(),
            port: 9080,
            protocol: Protocol::Http,
            endpoints: vec![SocketAddr::from(([10, 0, 0, 3], 9080))],
            mtls: true,
            idle_timeout_ms: None,
            max_requests_per_connection: None,
        }];
        Sidecar {
            release: release.parse::<Release>().unwrap(),
            workload: "httpbin",
            pod_ip: [10, 0, 0, 2].into(),
            mtls: mode,
            inbound: &inbound,
            outbound: &outbound,
            certs: &certs,
            protocol_detection_timeout_ms: None,
            access_log: "/dev/stdout".into(),
            extensions: &NoExtensions,
        }
        .bootstrap()
    }

    fn listener<'a>(listeners: &'a [Value], name: &str) -> &'a Value {
        listeners
            .iter()
            .find(|l| l["name"] == name)
            .unwrap_or_else(|| panic!("no listener {name}"))
    }

    /// A listener's address, listener filters and their timeout, and each
    /// chain's (name, match, terminates TLS, last filter's name).
    fn shape(l: &Value) -> Value {
        let chain = |c: &Value| {
            serde_json::json!({
                "name": c["name"],
                "match": c.get("filter_chain_match").cloned().unwrap_or(serde_json::json!({})),
                "tls": c.get("transport_socket").is_some(),
                "terminal": c["filters"].as_array().and_then(|f| f.last()).map(|f| f["name"].clone()),
            })
        };
        serde_json::json!({
            "address": l["address"],
            "use_original_dst": l.get("use_original_dst"),
            "listener_filters": l["listener_filters"].as_array().map(|f| f.iter().map(|f| f["name"].clone()).collect::<Vec<_>>()),
            "listener_filters_timeout": l.get("listener_filters_timeout"),
            "continue_on_listener_filters_timeout": l.get("continue_on_listener_filters_timeout"),
            "traffic_direction": l.get("traffic_direction"),
            "chains": l["filter_chains"].as_array().map(|c| c.iter().map(chain).collect::<Vec<_>>()),
            "default_chain": l.get("default_filter_chain").map(chain),
        })
    }

    #[test]
    fn listeners_chains_and_listener_filters_are_the_golden_sidecars() {
        let golden = golden();
        let ours = sidecar_config("1.28", MtlsMode::Permissive, Protocol::Http);
        let ours = ours["static_resources"]["listeners"].as_array().unwrap();
        for name in ["virtualOutbound", "virtualInbound", "0.0.0.0_9080"] {
            let (mut theirs, mine) = (shape(listener(&golden, name)), shape(listener(ours, name)));
            if name == "virtualOutbound" {
                // The dump leaves out the field set to its default.
                theirs["traffic_direction"] = mine["traffic_direction"].clone();
            }
            assert_eq!(
                mine,
                theirs,
                "{name}:\nours   {}\ngolden {}",
                serde_json::to_string_pretty(&mine).unwrap(),
                serde_json::to_string_pretty(&theirs).unwrap()
            );
        }
    }

    /// Every cluster a golden chain or route names exists in ours, by the
    /// same name scheme.
    #[test]
    fn cluster_names_follow_istios_scheme() {
        let ours = sidecar_config("1.28", MtlsMode::Permissive, Protocol::Http);
        let names: Vec<&str> = ours["static_resources"]["clusters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "inbound|80||",
                "outbound|9080||reviews.lab.svc.cluster.local",
                "PassthroughCluster",
                "InboundPassthroughClusterIpv4",
                "BlackHoleCluster"
            ]
        );
        let text = serde_json::to_string(&golden()).unwrap();
        for fixed in [
            "PassthroughCluster",
            "InboundPassthroughClusterIpv4",
            "BlackHoleCluster",
            "inbound|80||",
            "outbound|15012||istiod.istio-system.svc.cluster.local",
        ] {
            assert!(
                text.contains(&format!("\"cluster\":\"{fixed}\"")),
                "{fixed}"
            );
        }
    }

    /// Seed 000's shape: in 1.6 a STRICT port's chains match no transport
    /// protocol (plaintext meets the TLS handshake); from 1.8 they match
    /// `tls` only (plaintext matches no chain).
    #[test]
    fn strict_chains_by_release() {
        let transport = |release: &str| -> Vec<Value> {
            let c = sidecar_config(release, MtlsMode::Strict, Protocol::Auto);
            let l = &c["static_resources"]["listeners"];
            let inbound = l
                .as_array()
                .unwrap()
                .iter()
                .find(|l| l["name"] == "virtualInbound")
                .unwrap();
            inbound["filter_chains"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|c| c["name"] == "0.0.0.0_80")
                .map(|c| c["filter_chain_match"]["transport_protocol"].clone())
                .collect()
        };
        assert_eq!(transport("1.6"), [Value::Null, Value::Null]);
        assert_eq!(transport("1.28"), ["tls", "tls"]);
    }

    #[test]
    fn release_data_reaches_the_config() {
        let c = sidecar_config("1.6", MtlsMode::Strict, Protocol::Http);
        let l = c["static_resources"]["listeners"].as_array().unwrap();
        let out = listener(l, "0.0.0.0_9080");
        assert_eq!(out["listener_filters_timeout"], "0.1s");
        let hcm = &out["filter_chains"][0]["filters"][0]["typed_config"];
        let route = &hcm["route_config"]["virtual_hosts"][0]["routes"][0]["route"];
        assert_eq!(
            route["retry_policy"]["retriable_status_codes"],
            serde_json::json!([503])
        );
        assert_eq!(route["timeout"], "0s");
        let c = sidecar_config("1.28", MtlsMode::Strict, Protocol::Http);
        let l = c["static_resources"]["listeners"].as_array().unwrap();
        let inbound = listener(l, "virtualInbound");
        let chain = inbound["filter_chains"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "0.0.0.0_80")
            .unwrap();
        let hcm = &chain["filters"][0]["typed_config"];
        let route = &hcm["route_config"]["virtual_hosts"][0]["routes"][0]["route"];
        assert_eq!(route["retry_policy"]["retry_on"], "reset-before-request");
        assert_eq!(route["cluster"], "inbound|80||");
        assert_eq!(c["admin"]["address"]["socket_address"]["port_value"], 15000);
        assert_eq!(
            c["admin"]["address"]["socket_address"]["address"],
            "127.0.0.1"
        );
    }
}
