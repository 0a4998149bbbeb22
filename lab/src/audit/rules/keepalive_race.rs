//! keepalive-race (seed 001): an HTTP/1.1 cluster whose pool keeps idle
//! connections at least as long as the backend does, with no retry on
//! reset, sends some requests on connections the backend is closing:
//! `503 UC upstream_reset_before_response_started{connection_termination}`.

use super::on_cluster;
use crate::audit::cluster::{Protocol, DEFAULT_IDLE_MS};
use crate::audit::finding::{Finding, Rule, Status};
use crate::audit::routes::RouteTo;
use crate::audit::shape::{destination_rule, istio_cluster};
use crate::audit::value::human_ms;
use crate::audit::Context;

pub fn check(ctx: &Context) -> Vec<Finding> {
    let mut out = Vec::new();
    for (resource, c) in &ctx.clusters {
        let routes = ctx.traffic.to(&resource.name);
        let http1 =
            c.protocol == Protocol::Http1 || (c.protocol == Protocol::Unset && !routes.is_empty());
        if !http1 {
            continue;
        }
        let unretried: Vec<&&RouteTo> = routes
            .iter()
            .filter(|r| r.retry.as_ref().and_then(|p| p.retries_reset()).is_none())
            .collect();
        // Every route retries the reset: the race is hidden, not failed
        // (retries-hide-failures says so).
        if !routes.is_empty() && unretried.is_empty() {
            continue;
        }
        let backend = ctx.options.backends.of(&resource.name);
        if backend.is_some_and(|b| b.close_per_request) {
            // No connection is reused: nothing to race.
            continue;
        }
        let idle_ms = c
            .idle_timeout_ms
            .as_ref()
            .map_or(DEFAULT_IDLE_MS, |f| f.value);
        let idle = match &c.idle_timeout_ms {
            Some(f) => format!("{} = {}", f.path, human_ms(f.value)),
            None => format!(
                "{}.idle_timeout unset (Envoy's default 1 h)",
                c.options_path
            ),
        };
        let retry = if routes.is_empty() {
            "no route in the dump sends to it with a retry on reset".to_string()
        } else if unretried.len() == routes.len() {
            "no route to it retries on reset".to_string()
        } else {
            format!(
                "{} of its {} routes do not retry on reset (first: {})",
                unretried.len(),
                routes.len(),
                unretried[0].label
            )
        };
        let mut f = on_cluster(Rule::KeepaliveRace, Status::Exposed, resource);
        f.cause = format!("{idle}; {retry}");
        let keepalive = backend.and_then(|b| b.keepalive_ms);
        match (keepalive, &c.idle_timeout_ms) {
            (Some(k), _) if idle_ms < k => continue,
            (Some(k), _) => {
                f.why =
                    format!(
                    "Envoy keeps an idle upstream connection {}, {} {}: the backend closes idle \
                     connections {}, and a request Envoy writes on one as it closes is answered \
                     by RST (503 UC, connection_termination)",
                    human_ms(idle_ms),
                    if idle_ms == k { "as long as" } else { "longer than" },
                    backend.map(|b| b.describe()).unwrap_or_default(),
                    if idle_ms == k { "at the same moment" } else { "first" }
                );
            }
            (None, None) => {
                f.why = "Envoy keeps idle upstream connections 1 h: any backend that closes idle \
                         connections sooner (Node.js 5 s, CherryPy 10 s, Tomcat 20 s by default) \
                         closes them first, and a request Envoy writes on one as it closes is \
                         answered by RST (503 UC, connection_termination)"
                    .into();
            }
            (None, Some(_)) => {
                f.status = Status::Unknown;
                f.why = format!(
                    "Envoy closes idle upstream connections after {}: safe only if the backend \
                     keeps them longer",
                    human_ms(idle_ms)
                );
                f.decide = Some(format!(
                    "the backend's keep-alive timeout: exposed if it is {} or less \
                     (--backend '{}=node|cherrypy|tomcat|MS')",
                    human_ms(idle_ms),
                    resource.name
                ));
            }
        }
        f.fix = fix(ctx, &resource.name, &c.options_path, keepalive);
        out.push(f);
    }
    out
}

/// An idle timeout safely below `keepalive_ms` (four fifths, whole seconds).
fn below(keepalive_ms: Option<u64>) -> String {
    match keepalive_ms {
        Some(k) if k >= 2000 => format!("e.g. {}", human_ms(k * 4 / 5 / 1000 * 1000)),
        Some(k) => format!("below {}", human_ms(k)),
        None => "e.g. 4 s for Node.js's 5 s".into(),
    }
}

fn fix(ctx: &Context, cluster: &str, options_path: &str, keepalive_ms: Option<u64>) -> String {
    let below = below(keepalive_ms);
    if ctx.shape.istio() {
        if let Some(dr) = destination_rule(cluster, "connectionPool.http.idleTimeout") {
            return format!(
                "{dr} below the backend's keep-alive timeout ({below}), or a VirtualService \
                 `http[].retries.retryOn` with `reset` (`reset-before-request` does not recover it)"
            );
        }
        if istio_cluster(cluster).is_some_and(|c| c.inbound) {
            return format!(
                "a DestinationRule for this workload's own Service host with \
                 spec.trafficPolicy.connectionPool.http.idleTimeout below the app's keep-alive \
                 timeout ({below}; Istio applies it to the inbound cluster too), or Sidecar \
                 spec.inboundConnectionPool.http.idleTimeout in releases that have it; or raise \
                 the app's keep-alive timeout above Envoy's idle timeout (the seed's fix)"
            );
        }
    }
    format!(
        "set {options_path}.idle_timeout below the backend's keep-alive timeout ({below}), or \
         raise the backend's above Envoy's; or add `reset` to the routes' retry_policy.retry_on \
         (`reset-before-request` does not recover it)"
    )
}
