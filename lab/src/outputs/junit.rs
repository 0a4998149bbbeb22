//! JUnit XML for CI (`connlab run --junit FILE`), written with quick-junit
//! (nextest's crate): one test suite per scenario, one test case per variant
//! run (`node`, `node#2`, ... with `--repeat`). A case passes when the
//! verdict is the one the variant expects; its failure message is the
//! verdict line, the explanation follows in the failure text, and the raw
//! evidence files are properties, so a CI test view links them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};

use crate::outcome::Outcome;
use crate::outputs::human;
use crate::run::progress::RunId;

/// One finished run, as the JUnit report needs it.
pub struct Case<'a> {
    pub run: &'a RunId,
    /// The outcome, or the lab's error when the run could not finish.
    pub result: Result<&'a Outcome, &'a str>,
    /// The run's evidence directory, when kept.
    pub evidence: Option<&'a Path>,
    pub wall: Duration,
}

/// The whole report, serialized.
pub fn xml(cases: &[Case]) -> Result<String, quick_junit::SerializeError> {
    let mut suites: BTreeMap<&str, TestSuite> = BTreeMap::new();
    for case in cases {
        let suite = suites
            .entry(case.run.scenario.as_str())
            .or_insert_with(|| TestSuite::new(case.run.scenario.as_str()));
        suite.add_test_case(test_case(case));
    }
    let mut report = Report::new("connlab");
    report.add_test_suites(suites.into_values());
    report.to_string()
}

/// Writes the report to `path`, creating its directory.
pub fn write(path: &Path, cases: &[Case]) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, xml(cases)?)?;
    Ok(())
}

fn test_case(case: &Case) -> TestCase {
    let name = match case.run.repeat {
        0 => case.run.variant.clone(),
        n => format!("{}#{}", case.run.variant, n + 1),
    };
    let status = match case.result {
        Ok(outcome) if outcome.as_expected() => TestCaseStatus::success(),
        Ok(outcome) => {
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
            let line = human::line(outcome);
            let first = line.lines().next().unwrap_or_default().trim().to_string();
            status.set_message(format!(
                "{first} (expected {})",
                outcome.expected.word().to_lowercase()
            ));
            status.set_type(outcome.verdict.word());
            status.set_description(line);
            status
        }
        Err(error) => {
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Error);
            status.set_message(error);
            status.set_type("lab error");
            status
        }
    };
    let mut test_case = TestCase::new(name, status);
    test_case.set_classname(case.run.scenario.as_str());
    test_case.set_time(case.wall);
    if let Ok(outcome) = case.result {
        // The verdict line of a passing case too: the explanation is worth
        // reading when the failure was the expected one.
        test_case.set_system_out(human::line(outcome));
        test_case.add_property(Property::new("expected", outcome.expected.word()));
        test_case.add_property(Property::new("verdict", outcome.verdict.word()));
    }
    if let Some(dir) = case.evidence {
        test_case.add_property(Property::new("evidence", dir.display().to_string()));
        for file in evidence_files(dir) {
            let name = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            test_case.add_property(Property::new(
                format!("evidence.{name}"),
                file.display().to_string(),
            ));
        }
    }
    test_case
}

/// The files of an evidence directory, sorted (none when it is missing).
pub fn evidence_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::Verdict;
    use quick_junit::TestCaseStatus;

    fn outcome(variant: &str, expected: Verdict, verdict: Verdict) -> Outcome {
        Outcome {
            scenario: "keepalive-race".into(),
            variant: variant.into(),
            expected,
            verdict,
            requests: 6,
            client: [("200".to_string(), 3), ("503".to_string(), 3)].into(),
            envoy: Default::default(),
            diagnoses: Default::default(),
            reuse: Default::default(),
            stats: Default::default(),
            packets: Default::default(),
            checks: Default::default(),
            explain: Some("Envoy reused an upstream connection that had been idle 5.5 s".into()),
            timeline: None,
            wall_ms: 17_300,
        }
    }

    fn id(variant: &str, repeat: usize) -> RunId {
        RunId {
            scenario: "keepalive-race".into(),
            variant: variant.into(),
            repeat,
        }
    }

    #[test]
    fn the_report_parses_back_with_one_case_per_run() {
        let evidence = tempfile::tempdir().unwrap();
        std::fs::write(evidence.path().join("client.jsonl"), "{}\n").unwrap();
        let passed = outcome("node", Verdict::Reproduced, Verdict::Reproduced);
        let failed = outcome("fixed-idle-timeout", Verdict::Fixed, Verdict::Reproduced);
        let (a, b, c, d) = (
            id("node", 0),
            id("node", 1),
            id("fixed-idle-timeout", 0),
            id("tomcat", 0),
        );
        let wall = Duration::from_millis(17_300);
        let cases = [
            Case {
                run: &a,
                result: Ok(&passed),
                evidence: Some(evidence.path()),
                wall,
            },
            Case {
                run: &b,
                result: Ok(&passed),
                evidence: None,
                wall,
            },
            Case {
                run: &c,
                result: Ok(&failed),
                evidence: None,
                wall,
            },
            Case {
                run: &d,
                result: Err("backend: connection refused"),
                evidence: None,
                wall,
            },
        ];
        let xml = xml(&cases).unwrap();
        let report = Report::deserialize_from_str(&xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));
        assert_eq!(report.test_suites.len(), 1);
        let suite = &report.test_suites[0];
        assert_eq!(suite.name.as_str(), "keepalive-race");
        assert_eq!((suite.tests, suite.failures, suite.errors), (4, 1, 1));
        let names: Vec<&str> = suite.test_cases.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["node", "node#2", "fixed-idle-timeout", "tomcat"]);

        let node = &suite.test_cases[0];
        assert!(matches!(node.status, TestCaseStatus::Success { .. }));
        assert_eq!(node.time, Some(wall));
        let property = |name: &str| {
            node.properties
                .iter()
                .find(|p| p.name.as_str() == name)
                .map(|p| p.value.as_str().to_string())
        };
        assert_eq!(property("verdict").as_deref(), Some("REPRODUCED"));
        let client = evidence.path().join("client.jsonl");
        assert_eq!(
            property("evidence.client.jsonl").as_deref(),
            Some(client.to_str().unwrap())
        );

        let TestCaseStatus::NonSuccess {
            kind,
            message,
            description,
            ..
        } = &suite.test_cases[2].status
        else {
            panic!("fixed-idle-timeout should fail");
        };
        assert_eq!(*kind, NonSuccessKind::Failure);
        let message = message.as_ref().unwrap().as_str();
        assert!(
            message.starts_with("REPRODUCED [  17.3s] keepalive-race/fixed-idle-timeout")
                && message.ends_with("(expected fixed)"),
            "{message}"
        );
        let description = description.as_ref().unwrap().as_str();
        assert!(description.contains("idle 5.5 s"), "{description}");

        let TestCaseStatus::NonSuccess { kind, message, .. } = &suite.test_cases[3].status else {
            panic!("tomcat should be an error");
        };
        assert_eq!(*kind, NonSuccessKind::Error);
        assert_eq!(
            message.as_ref().unwrap().as_str(),
            "backend: connection refused"
        );
    }
}
