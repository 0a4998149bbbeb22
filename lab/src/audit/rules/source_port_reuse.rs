//! source-port-reuse (seed 004): `upstream_bind_config` with a fixed
//! source port. Every upstream connection binds it: a second connection to
//! the same backend while the first is open, or while Envoy holds the old
//! 4-tuple in TIME_WAIT, fails connect() with EADDRNOTAVAIL (errno 99):
//! `503 UF` with `immediate connect error: Cannot assign requested address`.

use super::on_cluster;
use crate::audit::cluster::Field;
use crate::audit::finding::{Finding, Rule, Status};
use crate::audit::Context;

pub fn check(ctx: &Context) -> Vec<Finding> {
    let mut out = Vec::new();
    for (resource, c) in &ctx.clusters {
        let Some(Field { value: port, path }) = &c.bind_port else {
            continue;
        };
        let mut f = on_cluster(Rule::SourcePortReuse, Status::Exposed, resource);
        let reuseaddr = c.socket_option((1, 2)).is_some();
        f.cause = format!(
            "{path} = {port}{}",
            if reuseaddr {
                " with SO_REUSEADDR (socket option 1/2)"
            } else {
                ""
            }
        );
        let retried = ctx
            .traffic
            .to(&resource.name)
            .iter()
            .filter_map(|r| r.retry.as_ref())
            .find(|r| r.retries_connect_failure())
            .map(|r| {
                format!(
                    "; its routes retry connect failures ({}), and each retry collides again: \
                     upstream_cx_connect_fail = (1 + {}) x the 503s",
                    r.describe(),
                    r.num_retries
                )
            })
            .unwrap_or_default();
        f.why = format!(
            "every upstream connection of this cluster binds source port {port}: a second \
             connection to the same backend while one is open, or within the 60 s TIME_WAIT \
             after Envoy closed one, fails connect() with EADDRNOTAVAIL (errno 99): 503 UF, \
             `immediate connect error: Cannot assign requested address`{retried}"
        );
        f.fix = if ctx.shape.istio() {
            "remove the EnvoyFilter that sets this cluster's upstream_bind_config port (no Istio \
             API pins a source port): each connection then gets its own ephemeral port"
                .into()
        } else {
            format!(
                "remove {path} (or set it to 0: the kernel picks a port per connection, the \
                 cilium/proxy fix); max_requests_per_connection does not help while the port is \
                 pinned (Envoy closes first and holds the same TIME_WAIT)"
            )
        };
        out.push(f);
    }
    out
}
