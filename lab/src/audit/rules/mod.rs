//! One file per catalogued failure; each reads the `Context` and returns its
//! findings. A rule says `exposed` only from what the dump (and the
//! command line) shows; what they cannot show is `unknown`, with what
//! would decide it. Rules use only the audit's own readers (`dump`,
//! `cluster`, `routes`, `value`) and its `finding` and `shape` types.

mod half_open;
mod keepalive_race;
mod retries;
mod snat_timewait;
mod sniff_timeout;
mod source_port_reuse;

use super::finding::Finding;
use super::Context;

pub fn all(ctx: &Context) -> Vec<Finding> {
    let mut out = Vec::new();
    out.extend(keepalive_race::check(ctx));
    out.extend(sniff_timeout::check(ctx));
    out.extend(half_open::check(ctx));
    out.extend(source_port_reuse::check(ctx));
    out.extend(snat_timewait::check(ctx));
    out.extend(retries::check(ctx));
    out
}

/// A finding's cluster fields.
fn on_cluster(
    rule: super::finding::Rule,
    status: super::finding::Status,
    resource: &super::dump::Resource,
) -> Finding {
    Finding {
        rule,
        status,
        kind: "cluster",
        name: resource.name.clone(),
        at: resource.at.clone(),
        cause: String::new(),
        why: String::new(),
        fix: String::new(),
        decide: None,
    }
}
