//! The checker: turns a run's evidence into an `Outcome`. Pure: it runs on
//! recorded evidence after the topology is gone.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use crate::client::Output;
use crate::outcome::{Counts, Outcome, Verdict};
use crate::roles::envoy::EnvoyEvidence;
use crate::scenario::{Scenario, Variant};

/// Everything a run recorded.
#[derive(Debug, Clone, Default)]
pub struct Evidence {
    pub client: Output,
    /// Per Envoy role.
    pub envoys: BTreeMap<String, EnvoyEvidence>,
}

pub fn outcome(
    scenario: &Scenario,
    variant: &Variant,
    evidence: &Evidence,
    wall: Duration,
) -> Outcome {
    let mut client = Counts::new();
    for record in &evidence.client.records {
        *client.entry(record.class()).or_default() += 1;
    }
    let mut envoy = BTreeMap::new();
    let mut diagnoses = BTreeMap::new();
    let mut explain = None;
    for (role, seen) in &evidence.envoys {
        envoy.insert(role.clone(), access_log_classes(&seen.access_log));
        let mut found = Counts::new();
        for event in seen.events.iter().filter(|e| e["event"] == "http") {
            if let Some(code) = event["diagnosis"].as_str() {
                *found.entry(code.to_string()).or_default() += 1;
                if explain.is_none() && *role == scenario.signature.envoy {
                    explain = event["explain"].as_str().map(str::to_string);
                }
            }
        }
        diagnoses.insert(role.clone(), found);
    }
    let stat = |role: &str, name: &str| {
        evidence
            .envoys
            .get(role)
            .and_then(|e| e.stats.get(name))
            .copied()
            .unwrap_or(0)
    };
    let signature = &scenario.signature;
    let mut stats = Counts::new();
    stats.insert(
        format!("{}:{}", signature.envoy, signature.stat),
        stat(&signature.envoy, &signature.stat),
    );
    for spec in &scenario.stats {
        if let Some((role, name)) = spec.split_once(':') {
            if evidence.envoys.contains_key(role) {
                stats.insert(spec.clone(), stat(role, name));
            }
        }
    }

    let diagnosed = |role: &str, code: &str| {
        diagnoses
            .get(role)
            .and_then(|d: &Counts| d.get(code))
            .copied()
            .unwrap_or(0)
    };
    let signature_seen = diagnosed(&signature.envoy, &signature.diagnosis) > 0
        && stat(&signature.envoy, &signature.stat) > 0;
    let all_ok =
        !evidence.client.records.is_empty() && evidence.client.records.iter().all(|r| r.is_ok());
    let nothing_diagnosed = diagnoses.values().all(|d| d.is_empty());
    let verdict = if signature_seen {
        Verdict::Reproduced
    } else if all_ok && nothing_diagnosed && stat(&signature.envoy, &signature.stat) == 0 {
        Verdict::Fixed
    } else {
        Verdict::Unexpected
    };
    Outcome {
        scenario: scenario.name.clone(),
        variant: variant.name.clone(),
        expected: variant.expect,
        verdict,
        requests: evidence.client.records.len() as u64,
        client,
        envoy,
        diagnoses,
        stats,
        explain,
        wall_ms: wall.as_millis() as u64,
    }
}

/// `"503 UC upstream_reset_before_response_started{connection_termination}"`.
fn access_log_classes(entries: &[Value]) -> Counts {
    let mut counts = Counts::new();
    for entry in entries {
        let field = |k: &str| match &entry[k] {
            Value::String(s) => s.clone(),
            Value::Null => "-".into(),
            other => other.to_string(),
        };
        *counts
            .entry(format!(
                "{} {} {}",
                field("code"),
                field("flags"),
                field("details")
            ))
            .or_default() += 1;
    }
    counts
}
