//! The human report: a header naming the dump, then one block per finding
//! (status word right-aligned, rule, object; cause, why, fix and what would
//! decide it on indented lines), the notes, and a one-line summary. Plain
//! text, no colour.

use std::fmt::Write;

use super::finding::{Finding, Report, Rule, Status};

/// Findings of one rule and status shown in full; the rest by name.
const SHOWN: usize = 5;

pub fn human(r: &Report) -> String {
    let mut out = String::new();
    let s = &r.source;
    let mut versions = Vec::new();
    if let Some(v) = &s.envoy_version {
        versions.push(format!("Envoy {v}"));
    }
    if let Some(v) = &s.istio_version {
        versions.push(format!("Istio {v}"));
    }
    let _ = writeln!(
        out,
        "audit {}: {}{}, {} clusters, {} listeners, {} route configurations",
        s.file,
        s.shape,
        if versions.is_empty() {
            String::new()
        } else {
            format!(" ({})", versions.join(", "))
        },
        s.clusters,
        s.listeners,
        s.route_configs
    );
    for status in [Status::Exposed, Status::Unknown, Status::Info] {
        for rule in Rule::ALL {
            let group: Vec<&Finding> = r.of(rule, status).collect();
            for f in group.iter().take(SHOWN) {
                finding(&mut out, f);
            }
            if group.len() > SHOWN {
                let rest: Vec<&str> = group[SHOWN..].iter().map(|f| f.name.as_str()).collect();
                let _ = writeln!(
                    out,
                    "{:>8} {} on {} more: {} (--json lists each)",
                    "…",
                    rule.name(),
                    rest.len(),
                    rest.join(", ")
                );
            }
        }
    }
    if !r.notes.is_empty() {
        let _ = writeln!(out);
        for n in &r.notes {
            let _ = writeln!(out, "note: {n}");
        }
    }
    let _ = writeln!(
        out,
        "\n{} exposed, {} unknown, {} info{}",
        r.exposed,
        r.unknown,
        r.info,
        if r.exposed == 0 && r.unknown == 0 {
            ": no catalogued failure this config is exposed to"
        } else {
            ""
        }
    );
    out
}

fn finding(out: &mut String, f: &Finding) {
    let _ = writeln!(
        out,
        "\n{:>8} {} {} `{}`",
        f.status.word(),
        f.rule.name(),
        f.kind,
        f.name
    );
    let _ = writeln!(out, "         at      {}", f.at);
    let _ = writeln!(out, "         cause   {}", f.cause);
    let _ = writeln!(out, "         why     {}", f.why);
    if let Some(d) = &f.decide {
        let _ = writeln!(out, "         decide  {d}");
    }
    let _ = writeln!(out, "         fix     {}", f.fix);
    if f.status != Status::Info {
        let _ = writeln!(out, "         replay  connlab run {}", f.rule.scenario());
    }
}
