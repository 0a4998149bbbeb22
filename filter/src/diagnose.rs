//! The diagnosis rules: from what Envoy reports about a request (flags,
//! details, transport failure reason, attempts) or a downstream connection
//! (first bytes, TLS failure), plus the reuse facts, to a stable code and one
//! human sentence. The codes are a contract (README "Diagnosis codes").

use crate::config::Config;
use crate::flags::{DC, URX};
use crate::reuse::Reuse;

/// How sure a diagnosis is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Confidence {
    /// The evidence shows the mechanism (e.g. reuse after an idle time,
    /// reset at once; Envoy's own failure reason).
    Confirmed,
    /// The signature fits, and `alternatives` fit too: the evidence cannot
    /// rule them out.
    Likely,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnosis {
    pub code: &'static str,
    pub explain: String,
    pub confidence: Confidence,
    /// For `Likely`: the other causes the evidence fits.
    pub alternatives: Vec<String>,
}

/// Every code the filter can emit (metrics are defined for each).
pub const HTTP_CODES: [&str; 16] = [
    "keepalive_race",
    "upstream_dead_peer",
    "source_address_conflict",
    "connect_refused",
    "connect_timeout",
    "connect_failed",
    "tls_handshake_failed",
    "upstream_timeout",
    "upstream_reset",
    "upstream_protocol_error",
    "upstream_local_reset",
    "circuit_breaker_overflow",
    "no_healthy_upstream",
    "retried_then_ok",
    "retried_then_failed",
    "plaintext_to_strict_mtls",
];
/// Codes only a log line gets (`line_only`): what the HTTP filter never
/// sees (a connection that matched no filter chain), does not count as an
/// upstream failure (the client left), or that no upstream was asked for
/// (the external authorization check refused the request).
pub const LINE_CODES: [&str; 3] = [
    "no_filter_chain",
    "downstream_disconnect",
    "ext_authz_rejected",
];
pub const CONN_CODES: [&str; 3] = [
    "plaintext_on_tls",
    "tls_handshake_failed",
    "sniff_fallthrough",
];

/// A keep-alive race needs a connection that sat idle at least this long:
/// every server's keep-alive timeout is longer (the shortest common default,
/// gunicorn's, is 2 s), and requests closer together than this are
/// back-to-back or multiplexed, not a connection the server found idle.
pub const RACE_MIN_IDLE_MS: u64 = 100;

/// What is known about a request when it ends.
#[derive(Debug, Clone, Default)]
pub struct HttpFacts<'a> {
    pub code: Option<i64>,
    pub flags: u64,
    pub details: Option<&'a str>,
    pub failure: Option<&'a str>,
    pub attempts: Option<u64>,
    pub reuse: Reuse,
    /// ms from the request's start to its end (when the reset or the
    /// response came); `None` when unknown.
    pub elapsed_ms: Option<u64>,
    /// `xds.cluster_name`, for the advice.
    pub cluster: Option<&'a str>,
    /// The local port every known connection to this request's upstream
    /// host used, finished or in flight (`ReuseTable::pinned_port`):
    /// evidence of a pinned port.
    pub pinned_port: Option<u16>,
    /// The gRPC status (`grpc-status` trailer or header), read only for
    /// retried requests.
    pub grpc_status: Option<i64>,
    /// The response opened a tunnel: `101` (WebSocket and other upgrades)
    /// or a `CONNECT` answered 2xx.
    pub tunnel: bool,
}

fn diagnosis(code: &'static str, explain: String) -> Option<Diagnosis> {
    Some(Diagnosis {
        code,
        explain,
        confidence: Confidence::Confirmed,
        alternatives: Vec::new(),
    })
}

fn likely(code: &'static str, explain: String, alternatives: &[&str]) -> Option<Diagnosis> {
    Some(Diagnosis {
        code,
        explain,
        confidence: Confidence::Likely,
        alternatives: alternatives.iter().map(|a| a.to_string()).collect(),
    })
}

/// Istio's cluster for traffic it does not route as mesh traffic.
pub const PASSTHROUGH_CLUSTER: &str = "PassthroughCluster";

/// "5.9 s" or "300 ms".
pub fn human_ms(ms: u64) -> String {
    if ms >= 1000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        format!("{ms} ms")
    }
}

/// Envoy spells failure reasons with spaces in attributes and underscores in
/// access logs; compare them lower-cased with spaces.
fn normalized(text: Option<&str>) -> String {
    text.unwrap_or_default()
        .to_ascii_lowercase()
        .replace('_', " ")
}

/// "cluster `x`" or "the cluster".
fn cluster_named(cluster: Option<&str>) -> String {
    match cluster {
        Some(name) => format!("cluster `{name}`"),
        None => "the cluster".to_string(),
    }
}

/// The diagnosis of a finished request; `None` when it is healthy.
pub fn http(facts: &HttpFacts<'_>, config: &Config) -> Option<Diagnosis> {
    // The client went away (DC): nobody saw an answer, whatever Envoy was
    // doing upstream (a retry, a slow backend). Not an upstream failure.
    if facts.flags & DC != 0 {
        return None;
    }
    let found = failure(facts, config);
    let attempts = facts.attempts.unwrap_or(1);
    if attempts < 2 {
        return found;
    }
    if let Some(mut d) = found {
        d.explain = format!("{} (after {attempts} attempts)", d.explain);
        return Some(d);
    }
    let grpc_ok = facts.grpc_status.is_none_or(|s| s == 0);
    let gave_up = facts.flags & URX != 0;
    match facts.code {
        Some(code @ 100..=399) if !gave_up && grpc_ok => diagnosis(
            "retried_then_ok",
            format!(
                "the request succeeded ({code}) on attempt {attempts}: {} earlier attempt(s) \
                 failed and the retry policy hid it from the client; look for resets on reused \
                 connections (keepalive_race) behind it",
                attempts - 1
            ),
        ),
        code => {
            let answer = match (code, facts.grpc_status) {
                (Some(c), Some(g)) if g != 0 => format!("{c} with gRPC status {g}"),
                (Some(c), _) => c.to_string(),
                (None, _) => "no response".to_string(),
            };
            let why = if gave_up {
                "Envoy gave up (URX: the retry limit was reached) and passed the last answer on"
            } else {
                "the last attempt's answer was not a success"
            };
            diagnosis(
                "retried_then_failed",
                format!("the request failed after {attempts} attempts ({answer}): {why}"),
            )
        }
    }
}

mod conn;
mod line;
mod request;
mod reset;
mod strict_mtls;

pub use conn::{conn, ConnFacts};
pub use line::line_only;
use request::failure;
pub use request::is_eaddrnotavail;
pub use reset::{matching_server, KERNEL_GIVE_UP_MS};
pub use strict_mtls::{tcp_line, TcpFacts};

#[cfg(test)]
mod tests;
