//! half-open (seed 002): a peer that goes silent (node lost, NAT entry
//! dropped) answers nothing, not even RST. A cluster with no TCP
//! keepalive, no TCP_USER_TIMEOUT and no health check or outlier detection
//! keeps sending to it and keeps its pooled connections; a request in
//! flight on one waits for Envoy's timers (route timeout 15 s by default,
//! none in Istio) or the kernel's give-up (tcp_retries2 = 15: 924.6 s).
//! TCP keepalive alone does not end a request in flight (no probe while
//! data is unacknowledged: the lab's `gateway-keepalive` variant).

use super::on_cluster;
use crate::audit::cluster::{SO_KEEPALIVE, TCP_USER_TIMEOUT};
use crate::audit::finding::{Finding, Rule, Status};
use crate::audit::shape::destination_rule;
use crate::audit::value::human_ms;
use crate::audit::Context;

/// A request in flight to a silent peer that may wait longer than this is
/// called exposed (the seed's fixes bound it at 6-10 s; Envoy's default
/// route timeout is 15 s).
const IN_FLIGHT_LIMIT_MS: u64 = 60_000;
/// The kernel's give-up on unacknowledged data with tcp_retries2 = 15.
const KERNEL_GIVE_UP: &str = "the kernel's give-up, about 924.6 s with tcp_retries2 = 15";

pub fn check(ctx: &Context) -> Vec<Finding> {
    let mut out = Vec::new();
    for (resource, c) in &ctx.clusters {
        let user_timeout = c.socket_option(TCP_USER_TIMEOUT);
        let detects = c.tcp_keepalive.is_some()
            || c.socket_option(SO_KEEPALIVE).is_some()
            || user_timeout.is_some()
            || c.health_checks
            || c.outlier_detection;
        // The route whose requests in flight may wait longest.
        let routes = ctx.traffic.to(&resource.name);
        let worst = routes
            .iter()
            .max_by_key(|r| r.in_flight_bound_ms().unwrap_or(u64::MAX));
        let unbounded = user_timeout.is_none()
            && worst.is_some_and(|r| {
                r.in_flight_bound_ms()
                    .is_none_or(|ms| ms > IN_FLIGHT_LIMIT_MS)
            });
        if detects && !unbounded {
            continue;
        }
        let mut f = on_cluster(Rule::HalfOpen, Status::Exposed, resource);
        match worst.filter(|_| unbounded) {
            Some(r) => {
                let bound = r.in_flight_bound_ms();
                let ms = |v: Option<u64>, unset: &str| match v {
                    None => unset.to_string(),
                    Some(0) => "0s (off)".to_string(),
                    Some(ms) => human_ms(ms),
                };
                f.cause = format!(
                    "{}: route timeout {}, per_try_timeout {}, the connection manager's \
                     stream_idle_timeout {}; no TCP_USER_TIMEOUT on the cluster",
                    r.label,
                    ms(r.timeout_ms, "unset (15 s)"),
                    ms(r.per_try_timeout_ms, "unset"),
                    ms(r.stream_idle_ms, "unknown (5 min unless set)"),
                );
                f.why = format!(
                    "a request in flight to a peer that went silent waits {}{}",
                    bound.map_or(
                        format!("until {KERNEL_GIVE_UP}: Envoy sets no timer on it"),
                        |ms| format!("{} before Envoy gives up", human_ms(ms))
                    ),
                    if c.tcp_keepalive.is_some() {
                        " (TCP keepalive sends no probe while a request is unacknowledged)"
                    } else {
                        ""
                    }
                );
            }
            None => {
                f.cause = "no upstream_connection_options.tcp_keepalive, no TCP_USER_TIMEOUT \
                           socket option (level 6, name 18), no health_checks, no \
                           outlier_detection"
                    .into();
                f.why = "nothing notices a peer that went silent: pooled connections to it \
                         stay, new requests keep going to it, and each waits for the route \
                         timeout (504 UT) or a connect timeout"
                    .into();
            }
        }
        f.fix = fix(ctx, &resource.name);
        out.push(f);
    }
    out
}

fn fix(ctx: &Context, cluster: &str) -> String {
    if ctx.shape.istio() {
        if let Some(dr) = destination_rule(cluster, "connectionPool.tcp.tcpKeepalive") {
            return format!(
                "{dr} (time/interval/probes) and .outlierDetection; a VirtualService \
                 `http[].timeout` for requests in flight; TCP_USER_TIMEOUT only through an \
                 EnvoyFilter (cluster upstream_bind_config.socket_options level 6, name 18, the \
                 seed's 10 s)"
            );
        }
        return "TCP keepalive and TCP_USER_TIMEOUT through an EnvoyFilter on this cluster \
                (upstream_connection_options.tcp_keepalive; upstream_bind_config.socket_options \
                level 6, name 18); a route timeout"
            .into();
    }
    "add upstream_connection_options.tcp_keepalive (idle pooled connections to a dead peer die \
     before reuse), a TCP_USER_TIMEOUT socket option in upstream_bind_config.socket_options \
     (level 6, name 18, in ms: ends requests in flight), health_checks or outlier_detection (stop \
     sending to it), and a route timeout or retry_policy.per_try_timeout"
        .into()
}
