//! A run as it lies on disk: the `--evidence` directory of one variant run
//! (`<root>/<scenario>/<variant>-<n>/`) with the `outcome.json` and
//! `faults.json` the CLI writes beside the raw evidence. The report reads
//! only this, never the run's internals, so it renders (and is tested) on
//! recorded runs without Docker.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::evidence::{ACCESS_SUFFIX, CLIENT_SUFFIX, EVENTS_SUFFIX};
use crate::outcome::Outcome;
use crate::outputs::ladder::LADDER_SUFFIX;
use crate::programs::client::{self, Record};
use crate::scenario::fault::Fault;

/// The Outcome, as JSON.
pub const OUTCOME_FILE: &str = "outcome.json";
/// The injected faults, as [`FaultRecord`]s.
pub const FAULTS_FILE: &str = "faults.json";

/// One injected fault on the workload's clock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultRecord {
    /// What a person reads: `backend: FIN from :8080 held 1000 ms`.
    pub label: String,
    pub at_ms: u64,
    /// `None`: in place until the run ended.
    pub until_ms: Option<u64>,
}

impl FaultRecord {
    pub fn of(fault: &Fault) -> FaultRecord {
        let label = match fault {
            Fault::Delay {
                target,
                sport,
                delay_ms,
                tcp_flags,
                loss_percent,
                ..
            } => {
                let what = match tcp_flags {
                    Some(flags) => format!("{flags:?}").to_uppercase(),
                    None => "every packet".into(),
                };
                let loss = match loss_percent {
                    0 => String::new(),
                    p => format!(", {p}% lost"),
                };
                format!("{target}: {what} from :{sport} held {delay_ms} ms{loss}")
            }
            Fault::Blackhole { target, .. } => format!("{target}: blackholed"),
            Fault::Iptables { target, rules, .. } => {
                format!("{target}: iptables {}", rules.join("; "))
            }
            Fault::Pause { target, .. } => format!("{target}: paused"),
            Fault::Kill { target, .. } => format!("{target}: killed"),
        };
        FaultRecord {
            label,
            at_ms: fault.at().as_millis() as u64,
            until_ms: None,
        }
    }
}

/// Writes what the report needs beside a run's raw evidence.
pub fn save(dir: &Path, outcome: &Outcome, faults: &[Fault]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let faults: Vec<FaultRecord> = faults.iter().map(FaultRecord::of).collect();
    let outcome = serde_json::to_string_pretty(outcome).unwrap_or_default();
    std::fs::write(dir.join(OUTCOME_FILE), outcome)?;
    let faults = serde_json::to_string_pretty(&faults).unwrap_or_default();
    std::fs::write(dir.join(FAULTS_FILE), faults)
}

/// A recorded run, read back.
#[derive(Debug, Clone)]
pub struct RecordedRun {
    pub dir: PathBuf,
    /// The Outcome as JSON: the report reads the fields it knows and shows
    /// every other one as it is, so new Outcome fields appear unasked.
    pub outcome: Value,
    /// The first client node's name and records (the timeline's clock).
    pub client: String,
    pub records: Vec<Record>,
    /// The filter's `http` events per Envoy role, in log order.
    pub http_events: BTreeMap<String, Vec<Value>>,
    pub faults: Vec<FaultRecord>,
    /// Every file of the run directory, sorted.
    pub files: Vec<PathBuf>,
}

impl RecordedRun {
    pub fn load(dir: &Path) -> anyhow::Result<RecordedRun> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).with_context(|| format!("{}", path.display()))
        };
        let outcome: Value = serde_json::from_str(&read(OUTCOME_FILE)?)
            .with_context(|| format!("{}: not JSON", dir.join(OUTCOME_FILE).display()))?;
        let files = crate::outputs::junit::evidence_files(dir);
        let (client, records) = files
            .iter()
            .map(|f| file_name(f))
            .filter(|n| !n.ends_with(EVENTS_SUFFIX) && !n.ends_with(ACCESS_SUFFIX))
            .filter_map(|n| Some((n.strip_suffix(CLIENT_SUFFIX)?.to_string(), read(&n).ok()?)))
            .find_map(|(node, text)| {
                let records = client::parse_output(&text).ok()?.records;
                (!records.is_empty()).then_some((node, records))
            })
            .unwrap_or_default();
        let faults = match read(FAULTS_FILE) {
            Ok(text) => serde_json::from_str(&text)
                .with_context(|| format!("{}", dir.join(FAULTS_FILE).display()))?,
            Err(_) => Vec::new(),
        };
        let mut http_events = BTreeMap::new();
        for file in &files {
            let name = file_name(file);
            let Some(role) = name.strip_suffix(EVENTS_SUFFIX) else {
                continue;
            };
            let events: Vec<Value> = read(&name)?
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .filter(|e| e["event"] == "http")
                .collect();
            http_events.insert(role.to_string(), events);
        }
        Ok(RecordedRun {
            dir: dir.to_path_buf(),
            outcome,
            client,
            records,
            http_events,
            faults,
            files,
        })
    }

    /// `outcome[key]` as text (`""` when missing).
    pub fn field(&self, key: &str) -> String {
        match &self.outcome[key] {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        }
    }

    /// `scenario/variant` plus the run number from the directory name.
    pub fn title(&self) -> String {
        let run = file_name(&self.dir);
        format!("{}/{}", self.field("scenario"), run)
    }

    pub fn as_expected(&self) -> bool {
        self.outcome["verdict"] == self.outcome["expected"]
    }

    /// Packet ladders the capture evidence drew.
    pub fn ladders(&self) -> Vec<&PathBuf> {
        self.files
            .iter()
            .filter(|f| file_name(f).ends_with(LADDER_SUFFIX))
            .collect()
    }
}

pub fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Every recorded run under `root` (`<scenario>/<run>/outcome.json`),
/// sorted by path.
pub fn find_runs(root: &Path) -> Vec<PathBuf> {
    let mut runs = Vec::new();
    let dirs = |dir: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.is_dir())
                    .collect()
            })
            .unwrap_or_default()
    };
    for scenario in dirs(root) {
        for run in dirs(&scenario) {
            if run.join(OUTCOME_FILE).is_file() {
                runs.push(run);
            }
        }
    }
    runs.sort();
    runs
}
