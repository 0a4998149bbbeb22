//! The one result type of a run: tests snapshot it, the CLI prints it (human
//! or `--json`). Counts are deterministic by design of the scenarios; times
//! and explanations (which quote measured idle times) are not, and are
//! redacted in snapshots.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The documented failure happened, and Envoy's own stats agree.
    Reproduced,
    /// No failure of any kind: every request succeeded, nothing diagnosed.
    Fixed,
    /// Anything else: partial evidence, or failures of another kind.
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
    /// What each Envoy's access log saw, per role: `code flags details`.
    pub envoy: BTreeMap<String, Counts>,
    /// What the filter diagnosed, per Envoy role.
    pub diagnoses: BTreeMap<String, Counts>,
    /// Requests per Envoy role by the upstream connection that carried them,
    /// from the filter's reuse table: `fresh` (its first request) or
    /// `reused` (a pooled connection).
    pub reuse: BTreeMap<String, Counts>,
    /// The signature stat and the scenario's extra stats, as `role:stat`.
    pub stats: Counts,
    /// The filter's explanation of the first diagnosed failure.
    pub explain: Option<String>,
    pub wall_ms: u64,
}

impl Outcome {
    /// Whether the verdict is the one the variant was written to show.
    pub fn as_expected(&self) -> bool {
        self.verdict == self.expected
    }
}
