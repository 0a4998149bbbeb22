//! Every sidecar shape `connlab::envoy::istio` builds, loaded by the real Envoy
//! (`envoy --mode validate`), for the releases the seeds need and both
//! mTLS modes and all three port protocols, with certificates from the
//! run's CA.

use std::net::SocketAddr;

use connlab::envoy::certs::Authority;
use connlab::envoy::istio::sidecar::*;
use connlab::envoy::istio::Release;
use connlab::envoy::process::validate;

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
                    extensions: &NoExtensions,
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
