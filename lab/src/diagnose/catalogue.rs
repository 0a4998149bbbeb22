//! What to do about each diagnosis, and which lab scenario replays it.
//! Codes the catalogue does not know (a newer filter's) still get counted
//! and explained by the filter's own sentence; they just have no fix line.

use std::path::Path;

use connlab_filter::config::Config;
use connlab_filter::diagnose::matching_server;

/// The fix an SRE applies for a code.
pub fn fix(code: &str) -> Option<&'static str> {
    Some(match code {
        "keepalive_race" => {
            "set the upstream cluster's idle_timeout below the backend's keep-alive timeout \
             (Istio: DestinationRule trafficPolicy.connectionPool.http.idleTimeout), or raise the \
             backend's keep-alive timeout above Envoy's; `retry_on: reset` recovers the request \
             (`reset-before-request` does not)"
        }
        "retried_then_ok" => {
            "the retry policy hid failed attempts: find them in the next hop's access log (often \
             503 UC keepalive_race) and fix that cause; retries only mask it"
        }
        "retried_then_failed" => "every attempt failed: fix the cause the first attempt shows",
        "source_address_conflict" => {
            "do not pin the upstream source port (upstream_bind_config without a port); if ports \
             ran out, widen net.ipv4.ip_local_port_range or reuse connections"
        }
        "connect_refused" => "nothing listens on the endpoint: check the port and the app's readiness",
        "connect_timeout" => {
            "the host did not answer the SYN within connect_timeout: a dead or filtered node \
             (--pcap shows SYN retransmits without answer)"
        }
        "connect_failed" => "the upstream connection could not be opened: see the failure reason",
        "tls_handshake_failed" => "check certificates, SNI and the TLS mode on both sides",
        "upstream_timeout" => {
            "the upstream did not answer within the route timeout: if its node died, pooled \
             connections are half-open; set per-try timeouts, TCP keep-alive or TCP_USER_TIMEOUT"
        }
        "upstream_dead_peer" => {
            "the peer stopped acknowledging (dead node, dropped NAT entry): enable TCP keepalive on \
             the cluster so idle pooled connections to it die before reuse, keep a TCP_USER_TIMEOUT \
             (socket option 6/18) for requests in flight, add a route timeout with retry_on reset, \
             and outlier detection to eject the host"
        }
        "upstream_reset" => {
            "the backend reset a connection that was not idle-reused: look at the backend (crash, \
             connection limits, a Connection: close it did not send)"
        }
        "upstream_protocol_error" => {
            "the backend's answer is not the protocol the cluster speaks: check the port, the \
             cluster's protocol (HTTP/1.1 vs HTTP/2, TLS) and the server's response"
        }
        "upstream_local_reset" => {
            "Envoy reset the stream itself: check its buffer, header and stream limits and \
             whether the pool was draining"
        }
        "circuit_breaker_overflow" => {
            "raise the cluster's circuit_breakers thresholds (Istio: DestinationRule \
             connectionPool) or add capacity; the overflow stats say which limit"
        }
        "no_healthy_upstream" => {
            "no endpoint passed health checks or outlier detection: check the endpoints and the \
             outlier_detection settings"
        }
        "plaintext_to_strict_mtls" => {
            "send mesh traffic as mesh traffic: declare the destination port's protocol (port name \
             http-*, appProtocol) and make the host known (Service or ServiceEntry) so the sidecar \
             routes it with ISTIO_MUTUAL; or set the destination's PeerAuthentication to PERMISSIVE \
             while clients migrate"
        }
        "no_filter_chain" => {
            "find the sender (the line's downstream address): give it a sidecar, or make its \
             sidecar route this host as mesh traffic (not PassthroughCluster); or PERMISSIVE \
             PeerAuthentication on the destination while it migrates"
        }
        "downstream_disconnect" => {
            "look at the client's timeout (the duration is often exactly it) and at why the \
             upstream took that long; nothing to fix between Envoy and the upstream"
        }
        "client_pool_race" => {
            "set the client pool's idle timeout below every server's on the path (reqwest \
             pool_idle_timeout; Node new http.Agent({keepAlive: true, timeout}); Java \
             -Djdk.httpclient.keepalive.timeout; urllib3 has none: retry idempotent requests on \
             RemoteDisconnected / ConnectionResetError), or the server's idle timeout above the \
             pool's (Envoy's HCM idle_timeout, Node's server.keepAliveTimeout)"
        }
        "ext_authz_rejected" => {
            "look at the external authorization service: its decision log for this request id \
             (a 401/403 it chose), or its health and Envoy's ext_authz stats (error, \
             failure_mode_allowed) when it could not be asked; nothing to fix in the backend"
        }
        "plaintext_on_tls" | "sniff_fallthrough" => {
            "raise the client listener's protocol detection timeout (listener_filters_timeout, \
             Istio protocolDetectionTimeout) or declare the protocol (port name http-*/appProtocol)"
        }
        _ => return None,
    })
}

/// The evidence that would confirm a likely diagnosis, in the user's
/// terms, the one to collect first first. `has_connection`: the log says
/// which upstream connection carried each request (then its earlier lines
/// tell; otherwise the fields must be added first).
pub fn collect_next(code: &str, has_connection: bool) -> Vec<String> {
    let snippet = format!(
        "log which upstream connection carried each request and how many attempts it took \
         (%UPSTREAM_CONNECTION_ID% %UPSTREAM_REQUEST_ATTEMPT_COUNT%; connlab diagnose reads this \
         format as it is):\n{}",
        super::istio_formats::collect_snippet()
    );
    let earlier = "the earlier lines of that connection: the whole access log around the \
                   failure (not a grep of the 503s), from the same istio-proxy container; the \
                   line before on the same upstream local address gives the idle time"
        .to_string();
    let filter = "load connlab's filter (WasmPlugin type HTTP) on the caller's sidecar: it \
                  records every request on each pooled connection from then on"
        .to_string();
    let capture = "a capture on the backend's side (tcpdump -i lo 'tcp[tcpflags] & \
                   (tcp-fin|tcp-rst) != 0' in its pod): a FIN from the backend just before the \
                   request is a keep-alive race; connlab diagnose --pcap reads it"
        .to_string();
    match code {
        "keepalive_race" | "upstream_reset" => {
            if has_connection {
                vec![earlier, snippet, filter, capture]
            } else {
                vec![snippet, earlier, filter, capture]
            }
        }
        "plaintext_to_strict_mtls" | "no_filter_chain" => vec![
            "the destination's mTLS mode: kubectl get peerauthentication -A (STRICT on its \
             namespace or workload?), and istioctl x describe pod on the destination"
                .to_string(),
            "the other side's line: the destination sidecar's inbound log at the same time \
             (NR filter_chain_not_found), or the caller's outbound line (PassthroughCluster)"
                .to_string(),
        ],
        "connect_timeout" | "connect_failed" => vec![
            "why the connect failed: %UPSTREAM_TRANSPORT_FAILURE_REASON% in the access-log \
             format (Istio's default has it from 1.5), and the cluster's connect_timeout \
             (istioctl proxy-config cluster <pod> -o json)"
                .to_string(),
        ],
        "client_pool_race" => vec![
            "the idle timeouts on both sides: the server's (Envoy's HCM idle_timeout: Istio \
             leaves Envoy's 1 h default; an app server's keep-alive timeout: Node 5 s, gunicorn \
             2 s) against the client pool's (reqwest 90 s; urllib3, Node's agent and Java keep \
             idle connections for far longer); a pool that outlives the server's timeout races"
                .to_string(),
            "Envoy's downstream_cx_idle_timeout counter on the server-side proxy (kubectl exec \
             <pod> -c istio-proxy -- pilot-agent request GET stats | grep \
             downstream_cx_idle_timeout): rising at the failures, Envoy closed the idle \
             connections"
                .to_string(),
            "whether the failed request went out on a reused connection and after how long idle \
             (Node's req.reusedSocket; urllib3's debug log \"Resetting dropped connection\"; \
             hyper's debug log \"reuse idle connection\"), or a capture on the client's side: \
             the server's FIN, then the client's request, then the RST"
                .to_string(),
        ],
        "ext_authz_rejected" => vec![
            "the authorization service's own log for this request (the line's x-request-id) \
             and Envoy's ext_authz stats on this proxy (curl localhost:15000/stats | grep \
             ext_authz: ok, denied, error, failure_mode_allowed): denied is its decision, error \
             is a service that could not be asked"
                .to_string(),
        ],
        _ => vec![snippet],
    }
}

/// The scenario (and variant, when the evidence picks one) that replays a
/// code; `idle_ms` is the typical idle time of the failed reuses.
pub fn replay(
    code: &str,
    idle_ms: Option<u64>,
    config: &Config,
) -> Option<(&'static str, Option<String>)> {
    Some(match code {
        "keepalive_race" => {
            let server = idle_ms.and_then(|ms| matching_server(ms, config));
            // The variant of the matching server; with no match, every
            // variant (guessing one would claim a server the evidence does
            // not name).
            let variant = match server.map(|s| s.name.to_ascii_lowercase()) {
                Some(n) if n.starts_with("node") => Some("node"),
                Some(n) if n.starts_with("cherrypy") => Some("cherrypy"),
                Some(n) if n.starts_with("tomcat") => Some("tomcat"),
                _ => None,
            };
            ("keepalive-race", variant.map(str::to_string))
        }
        "retried_then_ok" => ("keepalive-race", Some("retry-hidden".to_string())),
        "client_pool_race" => ("client-pool-race", None),
        "source_address_conflict" => ("source-port-reuse", None),
        "plaintext_on_tls"
        | "sniff_fallthrough"
        | "plaintext_to_strict_mtls"
        | "no_filter_chain" => ("sniff-timeout", None),
        "upstream_timeout" | "connect_timeout" | "upstream_dead_peer" => ("half-open", None),
        _ => return None,
    })
}

/// The `connlab run` command for a replay, when `scenarios` has that
/// scenario (and variant); a variant that is not there is dropped, a
/// scenario that is not there gives `None`.
pub fn command(scenarios: &Path, scenario: &str, variant: Option<&str>) -> Option<String> {
    let text = std::fs::read_to_string(scenarios.join(format!("{scenario}.toml"))).ok()?;
    let has_variant = |v: &str| {
        toml::from_str::<toml::Table>(&text)
            .ok()
            .and_then(|t| t.get("variants").and_then(|v| v.as_array()).cloned())
            .is_some_and(|vs| {
                vs.iter()
                    .any(|x| x.get("name").and_then(|n| n.as_str()) == Some(v))
            })
    };
    Some(match variant {
        Some(v) if has_variant(v) => format!("connlab run {scenario} --variant {v}"),
        _ => format!("connlab run {scenario}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_filter_code_has_a_fix() {
        for code in connlab_filter::diagnose::HTTP_CODES
            .iter()
            .chain(connlab_filter::diagnose::CONN_CODES.iter())
            .chain(connlab_filter::diagnose::LINE_CODES.iter())
            .chain([super::super::client_log::CODE].iter())
        {
            assert!(fix(code).is_some(), "{code}");
        }
    }

    #[test]
    fn keepalive_race_replays_the_matching_server() {
        let c = Config::default();
        let variant = |ms| replay("keepalive_race", Some(ms), &c).unwrap().1;
        assert_eq!(variant(5_600).as_deref(), Some("node"));
        assert_eq!(variant(10_200).as_deref(), Some("cherrypy"));
        assert_eq!(variant(20_100).as_deref(), Some("tomcat"));
        assert_eq!(variant(60_000), None);
    }

    #[test]
    fn commands_name_only_what_the_checkout_has() {
        let dir = crate::paths::root().join("scenarios");
        assert_eq!(
            command(&dir, "keepalive-race", Some("tomcat")).as_deref(),
            Some("connlab run keepalive-race --variant tomcat")
        );
        assert_eq!(
            command(&dir, "keepalive-race", Some("nope")).as_deref(),
            Some("connlab run keepalive-race")
        );
        assert_eq!(command(&dir, "no-such-scenario", None), None);
    }
}
