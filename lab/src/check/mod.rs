//! The checker (Jepsen-style): evaluates a variant's `reproduced` and
//! `fixed` checks on a run's recorded evidence and turns it into an
//! `Outcome`. Pure: it runs after the topology is gone and reads only
//! `Evidence`.
//!
//! A check is true, false, or unknown when the evidence it needs is missing
//! (never silently true). A list holds when every check is true; false beats
//! unknown beats true. Verdict: reproduced if the `reproduced` list holds,
//! fixed if the `fixed` list does, else unexpected.
//!
//! Uses `scenario` (the checks), `evidence` and `outcome`; nothing runs here.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use crate::evidence::timeline::{self, Timeline};
use crate::evidence::{Evidence, Packets};
use crate::outcome::{CheckResult, Counts, Outcome, Truth, Verdict};
use crate::scenario::{Check, Measure, Scenario, Variant};

pub fn outcome(
    scenario: &Scenario,
    variant: &Variant,
    evidence: &Evidence,
    wall: Duration,
) -> Outcome {
    let mut client = Counts::new();
    for record in evidence.client_records() {
        *client.entry(record.class()).or_default() += 1;
    }
    let mut envoy = BTreeMap::new();
    let mut diagnoses = BTreeMap::new();
    let mut reuse = BTreeMap::new();
    for (node, seen) in &evidence.envoys {
        envoy.insert(node.clone(), access_log_classes(&seen.access_log));
        let mut found = Counts::new();
        let mut connections = Counts::new();
        for event in &seen.events {
            if let Some(code) = diagnosis(event) {
                *found.entry(code.to_string()).or_default() += 1;
            }
            // Which pooled connection carried the request: the filter's
            // history of it (first / reused / unknown: a filter delivered into
            // a running Envoy cannot know a connection it first sees is new),
            // or, in events from before `history`, its nth (1 = fresh).
            // Requests that never got a connection are not counted.
            if event["event"] == "http" {
                let upstream = &event["upstream"];
                let class = match (upstream["history"].as_str(), upstream["nth"].as_u64()) {
                    (Some("first"), _) | (None, Some(1)) => Some("fresh"),
                    (Some("reused"), _) | (None, Some(_)) => Some("reused"),
                    (Some("unknown"), _) => Some("unknown"),
                    _ => None,
                };
                if let Some(class) = class {
                    *connections.entry(class.into()).or_default() += 1;
                }
            }
        }
        diagnoses.insert(node.clone(), found);
        reuse.insert(node.clone(), connections);
    }

    // Around the first scheduled fault, when there was throughput before it
    // to compare with (a load of one request per 5 s has none).
    let timeline = variant
        .timeline_fault_s()
        .map(|fault_s| {
            let records: Vec<_> = evidence.client_records().cloned().collect();
            timeline::timeline(&records, fault_s, timeline::WARMUP_S)
        })
        .filter(|t| t.before.throughput > 0.0);
    let evaluate_list = |list: Verdict, checks: &[Check]| -> Vec<CheckResult> {
        checks
            .iter()
            .map(|check| evaluate(list, check, evidence, timeline.as_ref()))
            .collect()
    };
    let reproduced = evaluate_list(Verdict::Reproduced, &variant.reproduced);
    let fixed = evaluate_list(Verdict::Fixed, &variant.fixed);
    let holds = |results: &[CheckResult]| all(results.iter().map(|r| r.holds)) == Truth::True;
    let verdict = if holds(&reproduced) {
        Verdict::Reproduced
    } else if holds(&fixed) {
        Verdict::Fixed
    } else {
        Verdict::Unexpected
    };
    let checks = reproduced.into_iter().chain(fixed).collect();

    Outcome {
        scenario: scenario.name.clone(),
        variant: variant.name.clone(),
        expected: variant.expect,
        verdict,
        requests: evidence.client_records().count() as u64,
        client,
        envoy,
        diagnoses,
        reuse,
        stats: reported_stats(variant, evidence),
        packets: evidence
            .packets
            .iter()
            .map(|(node, packets)| (node.clone(), packets.reuse_counts().to_counts()))
            .collect(),
        checks,
        explain: explain(variant, evidence),
        timeline,
        wall_ms: wall.as_millis() as u64,
    }
}

/// False beats unknown beats true.
pub fn all(truths: impl Iterator<Item = Truth>) -> Truth {
    truths.fold(Truth::True, |acc, t| match (acc, t) {
        (Truth::False, _) | (_, Truth::False) => Truth::False,
        (Truth::Unknown, _) | (_, Truth::Unknown) => Truth::Unknown,
        _ => Truth::True,
    })
}

fn evaluate(
    list: Verdict,
    check: &Check,
    evidence: &Evidence,
    timeline: Option<&Timeline>,
) -> CheckResult {
    let (holds, seen, why) = match measure(check, evidence, timeline) {
        Ok(seen) => {
            let truth = if check.expect.holds(seen) {
                Truth::True
            } else {
                Truth::False
            };
            (truth, Some(seen), None)
        }
        Err(why) => (Truth::Unknown, None, Some(why)),
    };
    CheckResult {
        list,
        check: check.to_string(),
        holds,
        seen,
        why,
    }
}

/// The number a check compares, or why the evidence cannot tell.
fn measure(check: &Check, evidence: &Evidence, timeline: Option<&Timeline>) -> Result<u64, String> {
    let at = check.at.as_deref().unwrap_or_default();
    let envoy = || {
        evidence
            .envoys
            .get(at)
            .ok_or_else(|| format!("no evidence from Envoy `{at}`"))
    };
    match &check.measure {
        Measure::Diagnosis(code) => Ok(envoy()?
            .events
            .iter()
            .filter_map(diagnosis)
            .filter(|d| code == "*" || d == code)
            .count() as u64),
        Measure::Stat(name) => envoy()?
            .stats
            .get(name)
            .copied()
            .ok_or_else(|| format!("Envoy `{at}` has no stat `{name}`")),
        Measure::AccessLog(pattern) => Ok(envoy()?
            .access_log
            .iter()
            .filter(|entry| access_log_matches(entry, pattern))
            .count() as u64),
        Measure::Client(class) => Ok(client_records(evidence, check)?
            .iter()
            .filter(|r| match class.as_str() {
                "*" => true,
                "ok" => r.is_ok(),
                "failed" => !r.is_ok(),
                other => r.class() == other,
            })
            .count() as u64),
        Measure::LibraryError(text) => Ok(client_records(evidence, check)?
            .iter()
            .filter(|r| {
                r.library_error
                    .as_ref()
                    .is_some_and(|e| e.contains(text.as_str()))
            })
            .count() as u64),
        Measure::Packets(name) => {
            let counts = captured(evidence, at)?.reuse_counts();
            counts
                .get(name)
                .ok_or_else(|| format!("no packets count `{name}`"))
        }
        Measure::Conversation(line) => Ok(captured(evidence, at)?
            .served()
            .iter()
            .filter(|c| c.flags_line() == *line)
            .count() as u64),
        Measure::Timeline(figure) => timeline
            .ok_or("no timeline: no scheduled fault, or no throughput before it")?
            .figure(figure),
    }
}

/// The client requests a check looks at: one client's (`at`) or every one.
fn client_records<'e>(
    evidence: &'e Evidence,
    check: &Check,
) -> Result<Vec<&'e crate::programs::client::Record>, String> {
    let records: Vec<_> = match &check.at {
        Some(node) => evidence
            .clients
            .get(node)
            .map(|o| o.records.iter().collect())
            .unwrap_or_default(),
        None => evidence.client_records().collect(),
    };
    if records.is_empty() {
        return Err("no client requests recorded".into());
    }
    Ok(records)
}

fn captured<'e>(evidence: &'e Evidence, at: &str) -> Result<&'e Packets, String> {
    evidence
        .packets
        .get(at)
        .ok_or_else(|| format!("no packet capture at `{at}`"))
}

/// The diagnosis of a filter event (`http` or `conn`), if any.
fn diagnosis(event: &Value) -> Option<&str> {
    if event["event"] != "http" && event["event"] != "conn" {
        return None;
    }
    event["diagnosis"].as_str()
}

fn field(entry: &Value, key: &str) -> String {
    match &entry[key] {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// `code flags details`, word by word; `*` matches anything.
fn access_log_matches(entry: &Value, pattern: &str) -> bool {
    ["code", "flags", "details"]
        .iter()
        .zip(pattern.split_whitespace())
        .all(|(key, want)| want == "*" || field(entry, key) == want)
}

/// `"503 UC upstream_reset_before_response_started{connection_termination}"`.
fn access_log_classes(entries: &[Value]) -> Counts {
    let mut counts = Counts::new();
    for entry in entries {
        let class = format!(
            "{} {} {}",
            field(entry, "code"),
            field(entry, "flags"),
            without_address(&field(entry, "details"))
        );
        *counts.entry(class).or_default() += 1;
    }
    counts
}

/// Connect failures' details name the peer (`...|remote_address:172.18.0.2:8080}`),
/// whose address Docker picks per run; a class keeps `remote_address:*` so
/// that runs compare.
fn without_address(details: &str) -> String {
    match details.split_once("remote_address:") {
        Some((head, tail)) => {
            let end = tail.find(['}', '|']).unwrap_or(tail.len());
            format!("{head}remote_address:*{}", &tail[end..])
        }
        None => details.to_string(),
    }
}

/// Every stat a check reads, and the variant's extra ones, as `node:stat`.
fn reported_stats(variant: &Variant, evidence: &Evidence) -> Counts {
    let from_checks = variant
        .reproduced
        .iter()
        .chain(&variant.fixed)
        .filter_map(|c| match (&c.measure, &c.at) {
            (Measure::Stat(name), Some(at)) => Some((at.clone(), name.clone())),
            _ => None,
        });
    let extra = variant
        .stats
        .iter()
        .filter_map(|s| s.split_once(':'))
        .map(|(n, s)| (n.to_string(), s.to_string()));
    from_checks
        .chain(extra)
        .filter_map(|(node, name)| {
            let value = evidence.envoys.get(&node)?.stats.get(&name)?;
            Some((format!("{node}:{name}"), *value))
        })
        .collect()
}

/// The filter's explanation of the first request diagnosed with the first
/// `reproduced` diagnosis.
fn explain(variant: &Variant, evidence: &Evidence) -> Option<String> {
    filter_explanation(variant, evidence).or_else(|| pooled_client_explanation(variant, evidence))
}

/// The filter's own sentence for the first diagnosis a check looks for.
fn filter_explanation(variant: &Variant, evidence: &Evidence) -> Option<String> {
    variant.reproduced.iter().find_map(|check| {
        let Measure::Diagnosis(code) = &check.measure else {
            return None;
        };
        evidence
            .envoys
            .get(check.at.as_deref()?)?
            .events
            .iter()
            .filter(|e| diagnosis(e).is_some_and(|d| code == "*" || d == code))
            .find_map(|e| e["explain"].as_str().map(str::to_string))
    })
}

/// A library client's requests that failed on reused connections: which
/// side closed (the client's target, and the Envoy counter that says why)
/// and which side wrote into it (the client, after how long idle, with its
/// library's own words). No filter sees these: the request never reached a
/// stream.
fn pooled_client_explanation(variant: &Variant, evidence: &Evidence) -> Option<String> {
    evidence.clients.iter().find_map(|(name, output)| {
        let node = variant.nodes.get(name)?.kind.client()?;
        let library = node.library.as_ref()?;
        let mut previous_end: BTreeMap<u32, f64> = BTreeMap::new();
        let mut failed = Vec::new();
        for r in &output.records {
            if r.reused && !r.is_ok() {
                let idle = previous_end.get(&r.worker).map(|end| r.start_ms - end);
                failed.push((r, idle));
            }
            previous_end.insert(r.worker, r.end_ms);
        }
        let (first, _) = failed.first()?;
        let idles: Vec<f64> = failed.iter().filter_map(|(_, idle)| *idle).collect();
        let idle = match (
            idles.iter().copied().reduce(f64::min),
            idles.iter().copied().reduce(f64::max),
        ) {
            (Some(lo), Some(hi)) if (hi - lo) < 50.0 => format!(" after {:.1} s idle", lo / 1000.0),
            (Some(lo), Some(hi)) => format!(" after {:.1}-{:.1} s idle", lo / 1000.0, hi / 1000.0),
            _ => String::new(),
        };
        let server = node.config.target.split(':').next().unwrap_or_default();
        let closer = match evidence.envoys.get(server).and_then(|envoy| {
            envoy
                .stats
                .iter()
                .find(|(k, v)| k.ends_with(".downstream_cx_idle_timeout") && **v > 0)
        }) {
            Some((stat, n)) => format!("{server} had closed them for idle_timeout ({stat} = {n})"),
            None => format!("{server} had closed them"),
        };
        Some(format!(
            "{n} request(s) of {name} ({lib}) failed on a reused pooled connection{idle}: {class}, \
             \"{text}\"; {closer} and the client wrote into the closed connection",
            n = failed.len(),
            lib = library.name(),
            class = first.class(),
            text = first.library_error.as_deref().unwrap_or("no error text"),
        ))
    })
}

#[cfg(test)]
mod tests;
