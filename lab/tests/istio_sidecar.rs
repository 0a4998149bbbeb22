//! Every sidecar shape `connlab::envoy::istio` builds, loaded by the real Envoy
//! (`envoy --mode validate`), for the releases the seeds need and both
//! mTLS modes and all three port protocols, with certificates from the
//! run's CA and both shipped WasmPlugins' ECDS references in place.

use std::net::SocketAddr;

use connlab::envoy::certs::Authority;
use connlab::envoy::istio::sidecar::*;
use connlab::envoy::istio::wasmplugin::{ecds_file, Placed, WasmPlugin};
use connlab::envoy::istio::Release;
use connlab::envoy::process::validate;
use serde_json::json;

/// The two shipped plugins' shapes (HTTP CLIENT_AND_SERVER, NETWORK
/// SERVER), referenced by ECDS from files in `dir`.
fn plugins(dir: &std::path::Path) -> Vec<(WasmPlugin, std::path::PathBuf)> {
    [
        ("HTTP", "CLIENT_AND_SERVER", "connlab_http"),
        ("NETWORK", "SERVER", "connlab_net"),
    ]
    .into_iter()
    .map(|(kind, mode, root)| {
        let p = WasmPlugin::from_manifest(&json!({
            "kind": "WasmPlugin", "metadata": {"name": root, "namespace": "shop"},
            "spec": {"url": "oci://r/connlab-filter:0.1.0", "pluginName": root, "type": kind,
                     "failStrategy": "FAIL_OPEN", "match": [{"mode": mode}]},
        }))
        .unwrap();
        let file = dir.join(format!("{root}.ecds.json"));
        let resource = p.wasm_resource(&connlab::paths::filter_wasm());
        std::fs::write(&file, ecds_file(1, resource).to_string()).unwrap();
        (p, file)
    })
    .collect()
}

#[test]
fn every_sidecar_shape_loads_in_envoy() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Authority::create(dir.path()).unwrap();
    let me = ca.issue("backend", &["backend"]).unwrap();
    let certs = Certs {
        cert: me.cert,
        key: me.key,
        ca: ca.ca(),
    };
    let placed = plugins(dir.path());
    let extensions = Placed { plugins: &placed };
    for release in ["1.6", "1.8", "1.9", "1.23", "1.24", "1.28"] {
        for mtls in [MtlsMode::Strict, MtlsMode::Permissive] {
            for protocol in [Protocol::Http, Protocol::Auto, Protocol::Tcp] {
                let inbound = [InboundPort {
                    port: 8080,
                    protocol,
                    idle_timeout_ms: Some(4000),
                }];
                let outbound = [OutboundService {
                    host: "peer".into(),
                    port: 9080,
                    protocol,
                    endpoints: vec![SocketAddr::from(([10, 0, 0, 3], 9080))],
                    mtls: true,
                    idle_timeout_ms: Some(4000),
                    max_requests_per_connection: None,
                }];
                let config = Sidecar {
                    release: release.parse::<Release>().unwrap(),
                    workload: "backend",
                    pod_ip: [10, 0, 0, 2].into(),
                    mtls,
                    inbound: &inbound,
                    outbound: &outbound,
                    certs: &certs,
                    protocol_detection_timeout_ms: Some(Some(5000)).filter(|_| release == "1.9"),
                    access_log: dir.path().join("access.log"),
                    extensions: &extensions,
                }
                .bootstrap();
                let name = format!("{release}-{mtls:?}-{protocol:?}");
                let (ok, text) =
                    validate(dir.path(), &name, &config).expect("Envoy (run `make envoy`)");
                assert!(ok, "{name}: {text}");
            }
        }
    }
}
