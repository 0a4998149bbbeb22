//! The one result type of a run: tests snapshot it, the CLI prints it (human
//! or `--json`). Counts are deterministic by design of the scenarios; times
//! and explanations (which quote measured idle times) are not, and are
//! redacted in snapshots.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every check of the variant's `reproduced` list holds.
    Reproduced,
    /// Every check of its `fixed` list holds.
    Fixed,
    /// Neither list holds: partial evidence, or failures of another kind.
    Unexpected,
}

impl Verdict {
    pub fn word(self) -> &'static str {
        match self {
            Verdict::Reproduced => "REPRODUCED",
            Verdict::Fixed => "FIXED",
            Verdict::Unexpected => "UNEXPECTED",
        }
    }
}

/// A check's result: unknown when the evidence it needs is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Truth {
    True,
    False,
    Unknown,
}

/// One check of a variant, evaluated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// The list it belongs to: `reproduced` or `fixed`.
    pub list: Verdict,
    /// The check as written, e.g. `diagnosis keepalive_race at envoy >= 1`.
    pub check: String,
    pub holds: Truth,
    /// The number it compared.
    pub seen: Option<u64>,
    /// Why it is unknown.
    pub why: Option<String>,
}

impl CheckResult {
    /// `diagnosis keepalive_race at envoy >= 1: false (seen 0)`.
    pub fn describe(&self) -> String {
        let holds = match self.holds {
            Truth::True => "true",
            Truth::False => "false",
            Truth::Unknown => "unknown",
        };
        match (&self.seen, &self.why) {
            (Some(crate::evidence::timeline::NEVER), _) => {
                format!("{}: {holds} (seen never)", self.check)
            }
            (Some(seen), _) => format!("{}: {holds} (seen {seen})", self.check),
            (None, Some(why)) => format!("{}: {holds} ({why})", self.check),
            (None, None) => format!("{}: {holds}", self.check),
        }
    }

    /// A check on a timing (a `timeline` figure): what it saw varies from
    /// run to run, whether it holds must not.
    pub fn is_timing(&self) -> bool {
        self.check.starts_with("timeline ")
    }
}

/// Counts by class, sorted.
pub type Counts = BTreeMap<String, u64>;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub scenario: String,
    pub variant: String,
    pub expected: Verdict,
    pub verdict: Verdict,
    /// Requests the client made.
    pub requests: u64,
    /// What the client saw: status codes, or error kinds (`reset`, `eof`,
    /// `timeout`, `connect_<errno>`).
    pub client: Counts,
    /// What each Envoy's access log saw, per node: `code flags details`.
    pub envoy: BTreeMap<String, Counts>,
    /// What the filter diagnosed (`http` and `conn` events), per Envoy node.
    pub diagnoses: BTreeMap<String, Counts>,
    /// Requests per Envoy node by the upstream connection that carried them,
    /// from the filter's reuse table: `fresh` (its first request),
    /// `reused` (a pooled connection) or `unknown` (a connection whose start
    /// the filter cannot know, e.g. delivered through ECDS into a running
    /// Envoy).
    pub reuse: BTreeMap<String, Counts>,
    /// Every stat a check reads and the variant's extra stats, as
    /// `node:stat`.
    pub stats: Counts,
    /// Per capturing node, what its capture shows about TIME_WAIT
    /// (`packet_sequence::ReuseCounts`): connections it closed first,
    /// challenge ACKs, SYNs that met TIME_WAIT by ISN position / result.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub packets: BTreeMap<String, Counts>,
    /// Every check of both lists, `reproduced` first (absent in outcomes
    /// recorded before checks were data).
    #[serde(default)]
    pub checks: Vec<CheckResult>,
    /// The filter's explanation of the first diagnosed failure.
    pub explain: Option<String>,
    /// The client's timeline around the first scheduled fault: per-second
    /// throughput, the phases before / during / after, time to recover
    /// (variants with a scheduled fault only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeline: Option<crate::evidence::timeline::Timeline>,
    pub wall_ms: u64,
}

impl Outcome {
    /// Whether the verdict is the one the variant was written to show.
    pub fn as_expected(&self) -> bool {
        self.verdict == self.expected
    }

    /// The checks of the expected list that did not hold, false ones first.
    pub fn failed_checks(&self) -> Vec<&CheckResult> {
        let mut failed: Vec<&CheckResult> = self
            .checks
            .iter()
            .filter(|c| c.list == self.expected && c.holds != Truth::True)
            .collect();
        failed.sort_by_key(|c| c.holds != Truth::False);
        failed
    }
}
