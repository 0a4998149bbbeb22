//! `connlab audit`: a user's Envoy config dump read against the failure
//! catalogue, before anything fails. A reader of user evidence beside
//! `diagnose`: `dump` turns any dump shape into clusters, listeners and
//! route configurations; `cluster` and `routes` read the facts the rules
//! need; `rules` says, per cluster and listener, which catalogued failure
//! the config is exposed to, why, and the fix in the config's own terms
//! (`shape`: Envoy fields, or Istio resources for Istio's dumps). The top
//! of the stack: `replay` re-runs a catalogued failure the dump is exposed
//! to (through `scenario`, `run` and `outputs`); the rules read only the dump.

pub mod backend;
pub mod cli;
pub mod cluster;
pub mod dump;
pub mod finding;
pub mod render;
pub mod replay;
pub mod routes;
pub mod rules;
pub mod shape;
pub mod value;

use backend::Backends;
use dump::{Dump, Resource};
use finding::{Report, Source};
use routes::Traffic;
use shape::Shape;

/// What the user says beyond the dump.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The backends' keep-alive, per cluster (`--backend`).
    pub backends: Backends,
    /// A SNAT (NAT gateway, F5 SNAT pool) sits between Envoy and its
    /// upstreams (`--snat`).
    pub snat: bool,
}

/// Everything a rule reads.
pub struct Context<'a> {
    pub dump: &'a Dump,
    pub shape: Shape,
    pub traffic: Traffic,
    /// The audited clusters with their facts (Istio's own left out).
    pub clusters: Vec<(&'a Resource, cluster::Cluster)>,
    pub options: &'a Options,
}

pub fn audit(file: &str, dump: &Dump, options: &Options) -> Report {
    report(file, &context(dump, options))
}

/// What the rules read, from the dump and the command line.
pub fn context<'a>(dump: &'a Dump, options: &'a Options) -> Context<'a> {
    let shape = shape::detect(dump);
    let bootstrap = dump.bootstrap.as_ref();
    let clusters = dump
        .clusters
        .iter()
        .filter(|c| !(shape.istio() && shape::ISTIO_OWN_CLUSTERS.contains(&c.name.as_str())))
        .map(|c| (c, cluster::Cluster::read(&c.value, bootstrap)))
        .collect();
    Context {
        dump,
        shape,
        traffic: Traffic::of(dump),
        clusters,
        options,
    }
}

/// Every rule's findings, with notes on what was left out.
pub fn report(file: &str, ctx: &Context) -> Report {
    let (dump, shape, options) = (ctx.dump, ctx.shape, ctx.options);
    let mut notes = dump
        .skipped
        .iter()
        .map(|s| format!("skipped {s}"))
        .collect::<Vec<_>>();
    if !dump.has_clusters {
        notes.push(
            "no clusters in the dump: keepalive-race, half-open, source-port-reuse and \
             snat-timewait not checked (dump /config_dump whole, or add `istioctl pc cluster -o json`)"
                .into(),
        );
    }
    if !dump.has_listeners {
        notes.push("no listeners in the dump: sniff-timeout not checked".into());
    }
    if !dump.has_routes && dump.has_clusters {
        notes.push(
            "no route configurations in the dump: retry policies and route timeouts of RDS \
             routes unknown"
                .into(),
        );
    }
    if shape.istio() {
        let own: Vec<&str> = dump
            .clusters
            .iter()
            .map(|c| c.name.as_str())
            .filter(|n| shape::ISTIO_OWN_CLUSTERS.contains(n))
            .collect();
        if !own.is_empty() {
            notes.push(format!(
                "Istio's own clusters not audited: {}",
                own.join(", ")
            ));
        }
    }
    notes.extend(options.backends.unused(dump));
    let findings = rules::all(ctx);
    let source = Source {
        file: file.to_string(),
        shape: shape.word(),
        envoy_version: shape::envoy_version(dump),
        istio_version: shape::istio_version(dump),
        clusters: dump.clusters.len(),
        listeners: dump.listeners.len(),
        route_configs: dump.routes.len(),
    };
    Report::new(source, findings, notes)
}
