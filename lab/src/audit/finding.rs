//! What an audit says about one cluster or listener, and the whole report.

use serde::Serialize;

/// The catalogued failures an audit looks for (scenario names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    KeepaliveRace,
    SniffTimeout,
    HalfOpen,
    SourcePortReuse,
    SnatTimewait,
    RetriesHideFailures,
}

impl Rule {
    pub const ALL: [Rule; 6] = [
        Rule::KeepaliveRace,
        Rule::SniffTimeout,
        Rule::HalfOpen,
        Rule::SourcePortReuse,
        Rule::SnatTimewait,
        Rule::RetriesHideFailures,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Rule::KeepaliveRace => "keepalive-race",
            Rule::SniffTimeout => "sniff-timeout",
            Rule::HalfOpen => "half-open",
            Rule::SourcePortReuse => "source-port-reuse",
            Rule::SnatTimewait => "snat-timewait",
            Rule::RetriesHideFailures => "retries-hide-failures",
        }
    }

    /// The lab scenario that replays it (`connlab run NAME`).
    pub fn scenario(self) -> &'static str {
        match self {
            Rule::RetriesHideFailures => "keepalive-race",
            other => other.name(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The config is exposed to the failure.
    Exposed,
    /// The dump cannot decide; `decide` says what would.
    Unknown,
    /// Worth knowing, not a fault (retries that hide failures).
    Info,
}

impl Status {
    pub fn word(self) -> &'static str {
        match self {
            Status::Exposed => "EXPOSED",
            Status::Unknown => "UNKNOWN",
            Status::Info => "INFO",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub rule: Rule,
    pub status: Status,
    /// `cluster` or `listener`.
    pub kind: &'static str,
    pub name: String,
    /// Where the resource is in the file (`configs[1].dynamic_active_clusters[3].cluster`).
    pub at: String,
    /// The setting that causes it, as a field path in the resource (or a
    /// route's), with its value or "unset".
    pub cause: String,
    pub why: String,
    /// The fix in the config's own terms (Envoy field, or Istio resource and field).
    pub fix: String,
    /// For `unknown`: what would decide it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decide: Option<String>,
}

/// The Envoy the dump came from, as far as it says.
#[derive(Debug, Clone, Serialize)]
pub struct Source {
    pub file: String,
    /// `envoy`, `istio-sidecar` or `istio-gateway`.
    pub shape: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub envoy_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub istio_version: Option<String>,
    pub clusters: usize,
    pub listeners: usize,
    pub route_configs: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub source: Source,
    pub findings: Vec<Finding>,
    /// Resources left out and rules that could not run, each with why.
    pub notes: Vec<String>,
    pub exposed: usize,
    pub unknown: usize,
    pub info: usize,
}

impl Report {
    pub fn new(source: Source, mut findings: Vec<Finding>, notes: Vec<String>) -> Report {
        findings.sort_by(|a, b| {
            (a.status, a.rule, a.kind, &a.name).cmp(&(b.status, b.rule, b.kind, &b.name))
        });
        let count = |s: Status| findings.iter().filter(|f| f.status == s).count();
        Report {
            exposed: count(Status::Exposed),
            unknown: count(Status::Unknown),
            info: count(Status::Info),
            source,
            findings,
            notes,
        }
    }

    pub fn of(&self, rule: Rule, status: Status) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .filter(move |f| f.rule == rule && f.status == status)
    }
}
