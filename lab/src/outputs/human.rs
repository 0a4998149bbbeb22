//! Human output, in a fixed grammar a person scans at a glance (nextest's):
//! verdict right-aligned in a fixed width, wall time in brackets, the name,
//! the counts; the filter's explanation on an indented continuation line.

use crate::outcome::{Counts, Outcome, Truth};

fn counts(counts: &Counts) -> String {
    counts
        .iter()
        .map(|(class, n)| format!("{class}×{n}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One line per variant, plus continuation lines.
pub fn line(outcome: &Outcome) -> String {
    let mut diagnoses: Vec<String> = Vec::new();
    for (role, found) in &outcome.diagnoses {
        if !found.is_empty() {
            diagnoses.push(format!("{role}: {}", counts(found)));
        }
    }
    let mut text = format!(
        "{:>11} [{:>6.1}s] {}/{}  client {}",
        outcome.verdict.word(),
        outcome.wall_ms as f64 / 1000.0,
        outcome.scenario,
        outcome.variant,
        counts(&outcome.client),
    );
    if !diagnoses.is_empty() {
        text.push_str(&format!("  filter {}", diagnoses.join("; ")));
    }
    if !outcome.as_expected() {
        // The verdict line names the check that did not hold; any others
        // follow on continuation lines.
        let failed = outcome.failed_checks();
        text.push_str(&format!(
            "  expected {}",
            outcome.expected.word().to_lowercase()
        ));
        if let Some(first) = failed.first() {
            text.push_str(&format!(": ✗ {}", first.describe()));
        }
        for check in failed.iter().skip(1) {
            text.push_str(&format!("\n{:>11}   ✗ {}", "", check.describe()));
        }
    }
    if let Some(explain) = &outcome.explain {
        text.push_str(&format!("\n{:>11}   {explain}", ""));
    }
    if let Some(t) = &outcome.timeline {
        text.push_str(&format!("\n{:>11}   {}", "", timeline(t)));
    }
    text
}

/// `ok/s 16.0 before, 8.0 during (lowest second 50 %), recovered after 7 s;
/// during: 97.5 % ok, mean 155 ms, p50 2 ms, p99 6050 ms, max 6050 ms`.
fn timeline(t: &crate::evidence::timeline::Timeline) -> String {
    let recovered = match t.recovered_after_s {
        Some(s) => format!("recovered after {s} s"),
        None => "not recovered within the run".into(),
    };
    let d = &t.during;
    format!(
        "ok/s {:.1} before, {:.1} during (lowest second {:.0} %), {recovered}; during: \
         {:.1} % ok, mean {:.0} ms, p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        t.before.throughput,
        d.throughput,
        t.dip_pct,
        d.success_pct,
        d.mean_ms,
        d.p50_ms,
        d.p99_ms,
        d.max_ms
    )
}

/// The closing line: `N passed, N failed` counts variants whose verdict was
/// the expected one.
pub fn summary(outcomes: &[Outcome], errors: usize) -> String {
    let passed = outcomes.iter().filter(|o| o.as_expected()).count();
    let failed = outcomes.len() - passed + errors;
    format!("{passed} passed, {failed} failed")
}

/// For repeated runs: per variant, whether every run gave the same verdict
/// and counts (everything but wall time and the explanation's timings).
/// `STABLE`: all identical; `VERDICTS`: the verdict and every check's truth
/// identical, counts not (a load variant with random counts, checked with
/// bounds); `FLAKY`: a verdict or a check's truth differed.
pub fn stability(outcomes: &[Outcome]) -> Vec<String> {
    let mut by_variant: std::collections::BTreeMap<(String, String), Vec<Outcome>> =
        Default::default();
    for outcome in outcomes {
        let mut stable = outcome.clone();
        stable.wall_ms = 0;
        stable.explain = None;
        // Timings vary; whether their checks hold must not.
        stable.timeline = None;
        for check in stable.checks.iter_mut().filter(|c| c.is_timing()) {
            check.seen = None;
        }
        by_variant
            .entry((outcome.scenario.clone(), outcome.variant.clone()))
            .or_default()
            .push(stable);
    }
    fn truths(o: &Outcome) -> (crate::outcome::Verdict, Vec<(&str, Truth)>) {
        let checks = o
            .checks
            .iter()
            .map(|c| (c.check.as_str(), c.holds))
            .collect();
        (o.verdict, checks)
    }
    by_variant
        .into_iter()
        .map(|((scenario, variant), runs)| {
            let distinct = runs.iter().filter(|r| **r != runs[0]).count();
            let verdicts = runs
                .iter()
                .filter(|r| truths(r) == truths(&runs[0]))
                .count();
            let (word, same) = if distinct == 0 {
                ("STABLE", "identical")
            } else if verdicts == runs.len() {
                ("VERDICTS", "same verdict and checks, counts vary")
            } else {
                ("FLAKY", "identical")
            };
            let wall: Vec<u64> = outcomes
                .iter()
                .filter(|o| o.scenario == scenario && o.variant == variant)
                .map(|o| o.wall_ms)
                .collect();
            let (min, max) = (
                wall.iter().min().copied().unwrap_or(0),
                wall.iter().max().copied().unwrap_or(0),
            );
            let n = if word == "VERDICTS" {
                verdicts
            } else {
                runs.len() - distinct
            };
            format!(
                "{word:>11} [{n}/{} {same}] {scenario}/{variant}  wall {:.1}-{:.1}s",
                runs.len(),
                min as f64 / 1000.0,
                max as f64 / 1000.0
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::{CheckResult, Verdict};

    fn run(verdict: Verdict, failed: u64, holds: Truth) -> Outcome {
        Outcome {
            scenario: "snat-timewait".into(),
            variant: "load".into(),
            expected: Verdict::Reproduced,
            verdict,
            requests: 100,
            client: [("connect_110".to_string(), failed)].into(),
            envoy: Default::default(),
            diagnoses: Default::default(),
            reuse: Default::default(),
            stats: Default::default(),
            packets: Default::default(),
            checks: vec![CheckResult {
                list: Verdict::Reproduced,
                check: "client connect_110 >= 1".into(),
                holds,
                seen: Some(failed),
                why: None,
            }],
            explain: None,
            timeline: None,
            wall_ms: 60_000 + failed,
        }
    }

    #[test]
    fn stability_tells_identical_runs_from_varying_counts_and_flaky_verdicts() {
        let same = [1, 1].map(|n| run(Verdict::Reproduced, n, Truth::True));
        assert!(stability(&same)[0].contains("STABLE [2/2 identical]"));
        let counts = [5, 8].map(|n| run(Verdict::Reproduced, n, Truth::True));
        let line = &stability(&counts)[0];
        assert!(
            line.contains("VERDICTS [2/2 same verdict and checks, counts vary]"),
            "{line}"
        );
        let flaky = [
            run(Verdict::Reproduced, 3, Truth::True),
            run(Verdict::Unexpected, 0, Truth::False),
        ];
        assert!(stability(&flaky)[0].contains("FLAKY [1/2 identical]"));
    }
}
