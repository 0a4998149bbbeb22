//! The report: per diagnosis code its count, share, first and last time, an
//! example line with the fields that decided it, the fix and the scenario
//! that replays it; the idle times of failed reuses; what the inputs' formats
//! cannot tell. One serde type for `--json` and the human summary.

use std::collections::BTreeMap;

use connlab_filter::diagnose::{human_ms, matching_server, Confidence};
use connlab_filter::reuse::Reuse;
use serde::Serialize;

use super::idle::{Idle, IdleReport};
use super::line::{Event, Format, Request};
use super::template::Field;
use super::{catalogue, time, Options};

/// Where a diagnosis came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// Access-log lines judged by the filter's rules here.
    AccessLog,
    /// The filter's own events, as it logged them live.
    FilterEvent,
    /// A client library's own error lines (`client_log`).
    ClientLog,
}

/// Longest example line kept.
const EXAMPLE_CHARS: usize = 400;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Example {
    /// `file:line`.
    pub at: String,
    pub line: String,
    /// The fields the diagnosis was made from, in order.
    pub fields: Vec<(String, String)>,
}

fn clipped(text: &str) -> String {
    match text.char_indices().nth(EXAMPLE_CHARS) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

impl Example {
    pub fn from_client(at: String, text: &str, c: &super::client_log::ClientLine) -> Example {
        Example {
            at,
            line: clipped(text),
            fields: vec![
                ("library".to_string(), c.library.to_string()),
                ("error".to_string(), c.matched.to_string()),
            ],
        }
    }

    pub fn from_request(at: String, text: &str, r: &Request<'_>, reuse: &Reuse) -> Example {
        let mut fields = Vec::new();
        let mut put = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                fields.push((k.to_string(), v));
            }
        };
        put("code", r.code.map(|c| c.to_string()));
        put(
            "flags",
            Some(r.flags_text.to_string()).filter(|f| !f.is_empty()),
        );
        put("details", r.details.as_deref().map(str::to_string));
        put("failure", r.failure.as_deref().map(str::to_string));
        put("attempts", r.attempts.map(|a| a.to_string()));
        let connection = match (&r.upstream_local, &r.upstream_host) {
            (Some(l), Some(h)) => Some(format!("{l} -> {h}")),
            (None, Some(h)) => Some(format!("? -> {h}")),
            (Some(l), None) => Some(l.to_string()),
            (None, None) => None,
        };
        put("connection", connection);
        put(
            "nth",
            Some(reuse.nth).filter(|n| *n > 0).map(|n| n.to_string()),
        );
        put(
            "idle",
            reuse.idle_ms.filter(|_| reuse.nth > 1).map(human_ms),
        );
        put("duration", r.duration_ms.map(|ms| format!("{ms} ms")));
        Example {
            at,
            line: clipped(text),
            fields,
        }
    }

    pub fn from_event(at: String, text: &str, e: &Event) -> Example {
        let mut fields = Vec::new();
        let mut put = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                fields.push((k.to_string(), v));
            }
        };
        put("event", Some(e.kind.clone()));
        put("code", e.code.map(|c| c.to_string()));
        put("flags", Some(e.flags.clone()).filter(|f| !f.is_empty()));
        put("details", e.details.clone());
        let connection = match (&e.local, &e.peer) {
            (Some(l), Some(p)) => Some(format!("{l} -> {p}")),
            (Some(l), None) => Some(l.clone()),
            _ => None,
        };
        put("connection", connection);
        put("nth", e.nth.map(|n| n.to_string()));
        put("idle", e.idle_ms.map(human_ms));
        Example {
            at,
            line: clipped(text),
            fields,
        }
    }
}

/// Running counts for one code.
#[derive(Debug, Default)]
pub struct CodeStats {
    pub count: u64,
    pub first_ns: Option<u64>,
    pub last_ns: Option<u64>,
    pub example: Option<Example>,
    pub explain: Option<String>,
    /// Idle times of the reused connections among them.
    pub idle: Idle,
    /// How many were confirmed, how many likely; the rest (events of older
    /// filters) did not say.
    pub confirmed: u64,
    pub likely: u64,
    /// The alternatives of the first likely one.
    pub alternatives: Vec<String>,
}

impl CodeStats {
    pub fn count_confidence(&mut self, confidence: Option<Confidence>, alternatives: &[String]) {
        match confidence {
            Some(Confidence::Confirmed) => self.confirmed += 1,
            Some(Confidence::Likely) => {
                self.likely += 1;
                if self.alternatives.is_empty() {
                    self.alternatives = alternatives.to_vec();
                }
            }
            None => {}
        }
    }

    pub fn add(&mut self, at_ns: Option<u64>, example: impl FnOnce() -> Example) {
        self.count += 1;
        if let Some(ns) = at_ns {
            self.first_ns = Some(self.first_ns.map_or(ns, |f| f.min(ns)));
            self.last_ns = Some(self.last_ns.map_or(ns, |l| l.max(ns)));
        }
        if self.example.is_none() {
            self.example = Some(example());
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InputReport {
    pub name: String,
    pub lines: u64,
    pub bytes: u64,
    pub requests: u64,
    /// Requests per format detected.
    pub formats: BTreeMap<String, u64>,
    pub events: u64,
    /// Lines in no format diagnose reads (Envoy's own log lines...).
    pub other: u64,
    /// A client library's error lines (`client_log`), pool race or not.
    pub client_lines: u64,
    /// Lines that looked like an access log or event but did not parse,
    /// or fit no format diagnose reads: not read.
    pub malformed: u64,
    /// Lines of a JSON entry spread over several lines, besides the one
    /// that completed it (the entry is counted once, as what it was).
    pub joined: u64,
    /// The first few malformed lines: `file:line: why`.
    pub malformed_first: Vec<String>,
}

impl InputReport {
    pub fn new(name: &str) -> Self {
        InputReport {
            name: name.to_string(),
            lines: 0,
            bytes: 0,
            requests: 0,
            formats: BTreeMap::new(),
            events: 0,
            other: 0,
            client_lines: 0,
            malformed: 0,
            joined: 0,
            malformed_first: Vec::new(),
        }
    }

    pub fn malformed(&mut self, shown: usize, why: &str) {
        self.malformed += 1;
        if self.malformed_first.len() < shown {
            self.malformed_first
                .push(format!("{}:{}: {why}", self.name, self.lines));
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CodeReport {
    pub code: String,
    pub source: Source,
    pub count: u64,
    /// Percent of all requests read (access logs only: the filter logs
    /// only failures by default, so its events have no denominator).
    pub share_pct: Option<f64>,
    pub first: Option<String>,
    pub last: Option<String>,
    pub explain: Option<String>,
    pub example: Option<Example>,
    /// Idle times of the reused connections among these requests.
    pub idle: Option<IdleReport>,
    pub fix: Option<String>,
    /// `connlab run ...` when this checkout has the scenario.
    pub replay: Option<String>,
    /// `confirmed` when every one was, `likely` when any was (then
    /// `alternatives` and `collect_next` say what else fits and what would
    /// tell), `null` when the source did not say.
    pub confidence: Option<Confidence>,
    pub confirmed: u64,
    pub likely: u64,
    pub alternatives: Vec<String>,
    /// The evidence that would confirm it, the one to collect first first.
    pub collect_next: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailedReuse {
    #[serde(flatten)]
    pub idle: IdleReport,
    /// "Node.js's default keep-alive timeout of 5.0 s", when the median fits a known
    /// server default (the filter's `server_idle_timeouts`).
    pub consistent_with: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub inputs: Vec<InputReport>,
    pub requests: u64,
    pub diagnosed: u64,
    pub diagnoses: Vec<CodeReport>,
    /// Idle times before reused connections failed (keepalive_race and
    /// upstream_reset with nth > 1).
    pub failed_reuse_idle: Option<FailedReuse>,
    /// What the formats read cannot tell, and what that means.
    pub cannot_tell: Vec<String>,
    /// Lines not read (malformed, or in no format diagnose reads): said
    /// first, so a report over lines it could not read is never taken for
    /// an all-clear.
    pub unread: u64,
    /// What the release's defaults did with these failures (e.g. Istio
    /// before 1.24 retries a 503).
    pub notes: Vec<String>,
}

pub(super) fn build(
    inputs: Vec<InputReport>,
    codes: BTreeMap<(Source, String), CodeStats>,
    failed_reuse: &Idle,
    requests: u64,
    has: &BTreeMap<Format, u32>,
    options: &Options,
) -> Report {
    let config = &options.config;
    let mut diagnoses: Vec<CodeReport> = codes
        .into_iter()
        .map(|((source, code), stats)| {
            let idle = stats.idle.report();
            let replay = catalogue::replay(&code, idle.as_ref().map(|i| i.median_ms), config)
                .and_then(|(s, v)| catalogue::command(&options.scenarios, s, v.as_deref()));
            let confidence = match (stats.confirmed, stats.likely) {
                (_, 1..) => Some(Confidence::Likely),
                (1.., 0) => Some(Confidence::Confirmed),
                _ => None,
            };
            let collect_next = if stats.likely > 0 {
                catalogue::collect_next(&code, has_connection(has))
            } else {
                Vec::new()
            };
            CodeReport {
                confidence,
                confirmed: stats.confirmed,
                likely: stats.likely,
                alternatives: stats.alternatives,
                collect_next,
                share_pct: (source == Source::AccessLog && requests > 0)
                    .then(|| stats.count as f64 * 100.0 / requests as f64),
                first: stats.first_ns.map(time::format_ms),
                last: stats.last_ns.map(time::format_ms),
                explain: stats.explain,
                example: stats.example,
                idle,
                fix: catalogue::fix(&code).map(str::to_string),
                replay,
                count: stats.count,
                source,
                code,
            }
        })
        .collect();
    diagnoses.sort_by(|a, b| {
        (a.source, std::cmp::Reverse(a.count), &a.code).cmp(&(
            b.source,
            std::cmp::Reverse(b.count),
            &b.code,
        ))
    });
    let diagnosed = diagnoses
        .iter()
        .filter(|d| d.source == Source::AccessLog)
        .map(|d| d.count)
        .sum();
    let failed_reuse_idle = failed_reuse.report().map(|idle| FailedReuse {
        consistent_with: matching_server(idle.median_ms, config).map(|s| {
            format!(
                "{}'s default keep-alive timeout of {}",
                s.name,
                human_ms(s.idle_ms)
            )
        }),
        idle,
    });
    let unread = inputs.iter().map(|i| i.malformed).sum();
    let mut notes = notes(&diagnoses, has, options);
    let client_lines: u64 = inputs.iter().map(|i| i.client_lines).sum();
    if requests > 0 && client_lines == 0 {
        notes.push(CLIENT_SIDE_UNSEEN.to_string());
    }
    Report {
        inputs,
        requests,
        diagnosed,
        diagnoses,
        failed_reuse_idle,
        cannot_tell: cannot_tell(has),
        unread,
        notes,
    }
}

/// Said whenever access-log lines were read without a client's log: a
/// client-side pool race leaves no line there (measured on Envoy 1.40, the
/// client-pool-race scenario), so the report covers only Envoy's side.
pub const CLIENT_SIDE_UNSEEN: &str = "client-side pool races are not in an Envoy access log: a \
     client that writes on a keep-alive connection Envoy's downstream idle_timeout (or its \
     server) just closed is reset before its request is a stream, so no line and no DC is \
     written; they show only in the client's own log (give it to connlab diagnose: reqwest's \
     \"connection closed before message completed\" / \"Connection reset by peer\", Python's \
     RemoteDisconnected / ConnectionResetError, Node's ECONNRESET / \"socket hang up\", Java's \
     \"header parser received no bytes\") and in Envoy's downstream_cx_idle_timeout counter";

/// Some format read says which connection carried each request.
fn has_connection(has: &BTreeMap<Format, u32>) -> bool {
    has.values().any(|fields| {
        fields & (Field::UpstreamLocal.bit() | Field::UpstreamConnectionId.bit()) != 0
    })
}

/// Release-aware notes: before Istio 1.24 the caller's sidecar retries a
/// 503 by default (`retriable_status_codes: 503`, 2 retries; Istio's
/// `pilot/pkg/networking/core/route/retry/retry.go`), so what failed here
/// may have been sent again, and a POST run twice.
fn notes(diagnoses: &[CodeReport], has: &BTreeMap<Format, u32>, options: &Options) -> Vec<String> {
    let before_1_24 = match options.istio_minor {
        Some(minor) => Some(minor < 24),
        None => has.keys().any(|f| f.istio_before(24)).then_some(true),
    };
    let failed_503 = diagnoses.iter().any(|d| {
        d.source == Source::AccessLog
            && d.example
                .as_ref()
                .is_some_and(|e| e.fields.iter().any(|(k, v)| k == "code" && v == "503"))
    });
    let mut out = Vec::new();
    match (before_1_24, failed_503) {
        (Some(true), true) => out.push(
            "Istio before 1.24 retries a 503 by default at the caller's sidecar \
             (retriable_status_codes 503, 2 retries): these 503s were most likely sent again, \
             so the client may have seen a 200, and a non-idempotent request (a POST) may have \
             run twice on the backend; the caller's log line shows it with \
             %UPSTREAM_REQUEST_ATTEMPT_COUNT% above 1"
                .to_string(),
        ),
        (Some(false), true) => out.push(
            "Istio 1.24 and later do not retry a 503 by default (503 left the retriable codes; \
             connect-failure, refused-stream, unavailable and cancelled are still retried twice): \
             the client most likely saw these 503s"
                .to_string(),
        ),
        _ => {}
    }
    out
}

/// For each format read, the fields it lacks and what is lost without them.
fn cannot_tell(has: &BTreeMap<Format, u32>) -> Vec<String> {
    let mut out = Vec::new();
    for (format, &fields) in has {
        let lacks = |f: Field| fields & f.bit() == 0;
        let mut lost = Vec::new();
        if lacks(Field::UpstreamLocal) && lacks(Field::UpstreamConnectionId) {
            lost.push(
                "which upstream connection carried each request (%UPSTREAM_LOCAL_ADDRESS%), so no \
                 nth or idle time: a reset is upstream_reset, never keepalive_race",
            );
        }
        if lacks(Field::StartTime) || lacks(Field::Duration) {
            lost.push(
                "when requests started and ended (%START_TIME%, %DURATION%), so no idle time and \
                 no time from request to reset: a reset is upstream_reset, never keepalive_race",
            );
        }
        if lacks(Field::Details) {
            lost.push(
                "whether a reset came before the response started (%RESPONSE_CODE_DETAILS%): \
                 resets are upstream_reset",
            );
        }
        if lacks(Field::Failure) {
            lost.push(
                "why a connect failed (%UPSTREAM_TRANSPORT_FAILURE_REASON%): EADDRNOTAVAIL, refused \
                 and timeout are all connect_failed",
            );
        }
        if lacks(Field::Attempts) {
            lost.push(
                "how many attempts a request took (%UPSTREAM_REQUEST_ATTEMPT_COUNT%): retried_then_ok \
                 and retried_then_failed cannot be told (URX still marks retries that gave up)",
            );
        }
        for what in lost {
            out.push(format!("{}: {what}", format.name()));
        }
    }
    out
}
