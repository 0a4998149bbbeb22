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

impl Evidence {
    /// Writes everything as files a person can read and grep: `client.jsonl`
    /// (one record per request) and, per Envoy role, `<role>.events.jsonl`
    /// (the filter), `<role>.access.jsonl` (Envoy's access log, the checker's fields), `<role>.access.log`
    /// (the same in Istio's TEXT format) and
    /// `<role>.stats.json`.
    pub fn save(&self, dir: &std::path::Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let lines = |values: Vec<String>| values.join("\n") + "\n";
        let records = self
            .client
            .records
            .iter()
            .map(crate::client::request_line)
            .collect();
        std::fs::write(dir.join("client.jsonl"), lines(records))?;
        for (role, seen) in &self.envoys {
            let json = |values: &[Value]| lines(values.iter().map(Value::to_string).collect());
            std::fs::write(dir.join(format!("{role}.events.jsonl")), json(&seen.events))?;
            std::fs::write(
                dir.join(format!("{role}.access.jsonl")),
                json(&seen.access_log),
            )?;
            std::fs::write(
                dir.join(crate::roles::envoy::access_log_name(role)),
                &seen.access_log_text,
            )?;
            let stats = serde_json::to_string_pretty(&seen.stats).unwrap_or_default();
            std::fs::write(dir.join(format!("{role}.stats.json")), stats)?;
        }
        Ok(())
    }
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
    let mut reuse = BTreeMap::new();
    let mut explain = None;
    for (role, seen) in &evidence.envoys {
        envoy.insert(role.clone(), access_log_classes(&seen.access_log));
        let mut found = Counts::new();
        let mut connections = Counts::new();
        for event in seen.events.iter().filter(|e| e["event"] == "http") {
            // Which pooled connection carried the request: the filter's nth
            // (1 = a fresh connection). Requests that never got one are not
            // counted.
            match event["upstream"]["nth"].as_u64() {
                Some(1) => *connections.entry("fresh".into()).or_default() += 1,
                Some(_) => *connections.entry("reused".into()).or_default() += 1,
                None => {}
            }
            if let Some(code) = event["diagnosis"].as_str() {
                *found.entry(code.to_string()).or_default() += 1;
                if explain.is_none() && *role == scenario.signature.envoy {
                    explain = event["explain"].as_str().map(str::to_string);
                }
            }
        }
        diagnoses.insert(role.clone(), found);
        reuse.insert(role.clone(), connections);
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
        reuse,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::Record;
    use serde_json::json;

    fn scenario() -> Scenario {
        Scenario::parse(
            std::path::Path::new("demo.toml"),
            crate::scenario::tests::GOOD,
        )
        .unwrap()
    }

    fn record(status: u16) -> Record {
        Record {
            worker: 0,
            seq: 0,
            start_ms: 0.0,
            end_ms: 1.0,
            status: Some(status),
            error: None,
            local: None,
            reused: false,
            tag: None,
        }
    }

    fn evidence(statuses: &[u16], diagnoses: &[Option<&str>], stat: u64) -> Evidence {
        let events = diagnoses
            .iter()
            .enumerate()
            .map(|(i, d)| json!({"event": "http", "diagnosis": d, "upstream": {"nth": i % 2 + 1}}))
            .collect();
        let envoy = EnvoyEvidence {
            events,
            access_log: vec![],
            access_log_text: String::new(),
            stats: [(
                "cluster.backend.upstream_cx_destroy_remote_with_active_rq".to_string(),
                stat,
            )]
            .into(),
        };
        Evidence {
            client: Output {
                records: statuses.iter().map(|s| record(*s)).collect(),
                summary: None,
            },
            envoys: [("envoy".to_string(), envoy)].into(),
        }
    }

    fn verdict(evidence: &Evidence) -> Outcome {
        let scenario = scenario();
        outcome(&scenario, &scenario.variants[0], evidence, Duration::ZERO)
    }

    #[test]
    fn the_diagnosis_and_envoys_stat_together_reproduce() {
        let seen = verdict(&evidence(&[200, 503], &[None, Some("keepalive_race")], 1));
        assert_eq!(seen.verdict, Verdict::Reproduced);
        assert_eq!(seen.diagnoses["envoy"]["keepalive_race"], 1);
        assert_eq!(seen.reuse["envoy"]["fresh"], 1);
        assert_eq!(seen.reuse["envoy"]["reused"], 1);
    }

    #[test]
    fn the_diagnosis_without_envoys_stat_is_unexpected() {
        let seen = verdict(&evidence(&[200, 503], &[None, Some("keepalive_race")], 0));
        assert_eq!(seen.verdict, Verdict::Unexpected);
    }

    #[test]
    fn all_ok_and_nothing_diagnosed_is_fixed() {
        let seen = verdict(&evidence(&[200, 200], &[None, None], 0));
        assert_eq!(seen.verdict, Verdict::Fixed);
    }

    #[test]
    fn another_failure_is_unexpected() {
        let seen = verdict(&evidence(&[200, 503], &[None, Some("connect_timeout")], 0));
        assert_eq!(seen.verdict, Verdict::Unexpected);
        let no_requests = verdict(&evidence(&[], &[], 0));
        assert_eq!(no_requests.verdict, Verdict::Unexpected);
    }
}
