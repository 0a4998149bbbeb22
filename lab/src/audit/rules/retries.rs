//! Retries that hide failures (information, not a fault): a retry policy
//! that retries what the filter would name turns a failed attempt into a
//! slow success. Clients see nothing; the failure is still there, counted
//! by `upstream_rq_retry` and named by connlab's filter (`retried_then_ok`,
//! `upstream.request_attempt_count` > 1).

use super::on_cluster;
use crate::audit::finding::{Finding, Rule, Status};
use crate::audit::Context;

pub fn check(ctx: &Context) -> Vec<Finding> {
    let mut out = Vec::new();
    for (resource, _) in &ctx.clusters {
        let routes = ctx.traffic.to(&resource.name);
        let Some((route, retry)) = routes.iter().find_map(|r| {
            r.retry
                .as_ref()
                .filter(|p| p.num_retries > 0)
                .map(|p| (r, p))
        }) else {
            continue;
        };
        let mut hides = Vec::new();
        if let Some(c) = retry.retries_reset() {
            hides.push(format!(
                "`{c}` retries a reset after the request was written: a keep-alive race (503 UC) \
                 on this cluster"
            ));
        }
        if let Some(c) = retry.retries_503() {
            hides.push(format!(
                "`{c}` retries a 503 from the next hop: its sidecar's 503 UC keep-alive race"
            ));
        }
        if retry.retries_connect_failure() {
            hides.push(
                "`connect-failure` retries failed connects (refused, timed out, EADDRNOTAVAIL \
                 from a pinned source port): a 503 only when every attempt fails"
                    .into(),
            );
        }
        if hides.is_empty() {
            continue;
        }
        let mut f = on_cluster(Rule::RetriesHideFailures, Status::Info, resource);
        f.cause = format!("{} at {}: {}", route.label, retry.at, retry.describe());
        f.why = format!(
            "{}; the client sees a slower 200 and the failure stays unseen",
            hides.join("; ")
        );
        f.fix = format!(
            "keep the retry, and watch what it hides: cluster.{}.upstream_rq_retry, and connlab's \
             filter names each hidden failure (`retried_then_ok`, request_attempt_count > 1); \
             fix the cause it shows",
            resource.name
        );
        out.push(f);
    }
    out
}
