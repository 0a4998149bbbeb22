//! snat-timewait (seed 003): connection churn through a SNAT. A new
//! upstream connection per request (`max_requests_per_connection: 1`, or a
//! backend that closes after every response) makes a SNAT with a port pool
//! reuse its ports at the request rate; when the server closed first it
//! holds each old 4-tuple in TIME_WAIT for 60 s and answers a reused one's
//! SYN with a challenge ACK: the connection fails. Whether a SNAT sits in
//! between is not in the dump: `--snat` says so.

use super::on_cluster;
use crate::audit::finding::{Finding, Rule, Status};
use crate::audit::shape::destination_rule;
use crate::audit::Context;

pub fn check(ctx: &Context) -> Vec<Finding> {
    let mut out = Vec::new();
    for (resource, c) in &ctx.clusters {
        let one = c
            .max_requests_per_connection
            .as_ref()
            .filter(|f| f.value == 1);
        let closing = ctx
            .options
            .backends
            .of(&resource.name)
            .filter(|b| b.close_per_request);
        let cause = match (one, closing) {
            (Some(f), _) => format!("{} = 1: a new upstream connection per request", f.path),
            (None, Some(b)) => format!("--backend: {}", b.describe()),
            (None, None) => continue,
        };
        let status = if ctx.options.snat {
            Status::Exposed
        } else {
            Status::Unknown
        };
        let mut f = on_cluster(Rule::SnatTimewait, status, resource);
        f.cause = cause;
        f.why = format!(
            "every request opens a new connection: a SNAT between Envoy and the backend reuses \
             its few ports at the request rate{}, and a SYN from a reused port that meets the \
             server's TIME_WAIT with a lower sequence number gets a challenge ACK instead of a \
             SYN-ACK: the connection times out or is reset",
            if closing.is_some() {
                " while the server, which closes first, holds each old 4-tuple in TIME_WAIT 60 s"
            } else {
                ""
            }
        );
        if !ctx.options.snat {
            f.decide = Some(
                "whether a SNAT (NAT gateway, load balancer SNAT pool) sits between Envoy and \
                 this backend (--snat)"
                    .into(),
            );
        }
        f.fix = match (ctx.shape.istio(), one.is_some()) {
            (true, true) => destination_rule(
                &resource.name,
                "connectionPool.http.maxRequestsPerConnection",
            )
            .map(|dr| {
                format!("{dr}: unset it or raise it (persistent connections, the seed's fix)")
            })
            .unwrap_or_else(|| {
                "reuse upstream connections (unset maxRequestsPerConnection)".into()
            }),
            (false, true) => format!(
                "unset {} or raise it: persistent connections (the seed's fix) open an order of \
                 magnitude fewer connections",
                one.map(|f| f.path.as_str()).unwrap_or_default()
            ),
            (_, false) => "let the backend keep connections alive (HTTP/1.1 keep-alive, no \
                           Connection: close; the seed's Go 1.8 fix)"
                .into(),
        };
        out.push(f);
    }
    out
}
