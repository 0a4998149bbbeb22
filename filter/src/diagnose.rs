//! The diagnosis rules: from what Envoy reports about a request (flags,
//! details, transport failure reason, attempts) or a downstream connection
//! (first bytes, TLS failure), plus the reuse facts, to a stable code and one
//! human sentence. The codes are a contract (README "Diagnosis codes").

use crate::config::Config;
use crate::flags::{UC, UF, UR, UT};
use crate::reuse::Reuse;
use crate::sniff::Class;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnosis {
    pub code: &'static str,
    pub explain: String,
}

/// Every code the filter can emit (metrics are defined for each).
pub const HTTP_CODES: [&str; 10] = [
    "keepalive_race",
    "source_address_conflict",
    "connect_refused",
    "connect_timeout",
    "connect_failed",
    "tls_handshake_failed",
    "upstream_timeout",
    "upstream_reset",
    "retried_then_ok",
    "retried_then_failed",
];
pub const CONN_CODES: [&str; 3] = [
    "plaintext_on_tls",
    "tls_handshake_failed",
    "sniff_fallthrough",
];

/// What is known about a request when it ends.
#[derive(Debug, Clone, Default)]
pub struct HttpFacts<'a> {
    pub code: Option<i64>,
    pub flags: u64,
    pub details: Option<&'a str>,
    pub failure: Option<&'a str>,
    pub attempts: Option<u64>,
    pub reuse: Reuse,
}

fn diagnosis(code: &'static str, explain: String) -> Option<Diagnosis> {
    Some(Diagnosis { code, explain })
}

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

/// The diagnosis of a finished request; `None` when it is healthy.
pub fn http(facts: &HttpFacts<'_>, config: &Config) -> Option<Diagnosis> {
    let found = failure(facts, config);
    let attempts = facts.attempts.unwrap_or(1);
    if attempts < 2 {
        return found;
    }
    match found {
        Some(mut d) => {
            d.explain = format!("{} (after {attempts} attempts)", d.explain);
            Some(d)
        }
        None if facts.code.is_some_and(|c| c < 500) => diagnosis(
            "retried_then_ok",
            format!(
                "the request succeeded on attempt {attempts}: {} earlier attempt(s) failed and the \
                 retry policy hid it from the client; look for resets on reused connections \
                 (keepalive_race) behind it",
                attempts - 1
            ),
        ),
        None => diagnosis(
            "retried_then_failed",
            format!("the request failed after {attempts} attempts"),
        ),
    }
}

fn failure(facts: &HttpFacts<'_>, config: &Config) -> Option<Diagnosis> {
    let reason = normalized(facts.failure);
    let details = normalized(facts.details);
    let shown = facts.failure.or(facts.details).unwrap_or("no reason given");
    if facts.flags & UF != 0 || !reason.is_empty() {
        if reason.contains("cannot assign requested address") || reason.contains("error: 99") {
            return diagnosis(
                "source_address_conflict",
                format!(
                    "connect() failed with EADDRNOTAVAIL ({shown}): the upstream source address and \
                     port are pinned and that 4-tuple is still in use; do not pin the source port \
                     (upstream_bind_config)"
                ),
            );
        }
        if reason.contains("connection refused") || reason.contains("error: 111") {
            return diagnosis(
                "connect_refused",
                format!("the upstream host refused the connection ({shown}): nothing listens on that port"),
            );
        }
        if reason.contains("timed out")
            || reason.contains("timeout")
            || details.contains("connection timeout")
        {
            return diagnosis(
                "connect_timeout",
                format!("the upstream connection was not established within the cluster's connect_timeout ({shown})"),
            );
        }
        if reason.contains("tls") || reason.contains("ssl") || reason.contains("certificate") {
            return diagnosis(
                "tls_handshake_failed",
                format!("the TLS handshake with the upstream failed ({shown})"),
            );
        }
        if facts.flags & UF != 0 {
            return diagnosis(
                "connect_failed",
                format!("the upstream connection could not be established ({shown})"),
            );
        }
    }
    if facts.flags & UT != 0 {
        return diagnosis(
            "upstream_timeout",
            "the upstream did not answer within the route timeout".to_string(),
        );
    }
    let reset = facts.flags & (UC | UR) != 0 || details.contains("upstream reset");
    if !reset {
        return None;
    }
    let before_response = details.contains("before response started");
    match facts.reuse.idle_ms {
        Some(idle) if facts.reuse.nth > 1 && before_response => diagnosis(
            "keepalive_race",
            keepalive_race_explain(idle, facts.reuse.nth, config),
        ),
        _ => diagnosis(
            "upstream_reset",
            format!(
                "the upstream connection was reset ({}) on request {} of that connection",
                facts.details.unwrap_or("no details"),
                facts.reuse.nth
            ),
        ),
    }
}

/// The server whose idle timeout the idle time matches, within the window.
pub fn matching_server(idle_ms: u64, config: &Config) -> Option<&crate::config::ServerTimeout> {
    config.server_idle_timeouts.iter().find(|s| {
        idle_ms >= s.idle_ms.saturating_sub(config.idle_match_before_ms)
            && idle_ms <= s.idle_ms.saturating_add(config.idle_match_after_ms)
    })
}

fn keepalive_race_explain(idle_ms: u64, nth: u64, config: &Config) -> String {
    let matched = match matching_server(idle_ms, config) {
        Some(s) => format!(
            ", which matches {}'s {} keep-alive timeout",
            s.name,
            human_ms(s.idle_ms)
        ),
        None => String::new(),
    };
    format!(
        "Envoy reused an upstream connection that had been idle {} (request {nth} on it) and the \
         backend closed it before answering{matched}: set the cluster's idle_timeout below the \
         backend's keep-alive timeout, or retry on reset",
        human_ms(idle_ms)
    )
}

/// What is known about a downstream connection when it closes.
#[derive(Debug, Clone)]
pub struct ConnFacts<'a> {
    pub first_byte_ms: Option<u64>,
    pub class: &'a Class,
    pub chain: Option<&'a str>,
    pub tls_failure: Option<&'a str>,
}

/// The diagnosis of a closed downstream connection; `None` when healthy.
pub fn conn(facts: &ConnFacts<'_>, config: &Config) -> Option<Diagnosis> {
    // A TLS failure only counts when no bytes reached the filter: a TLS
    // transport that failed its handshake passes nothing on. On a plaintext
    // chain behind `tls_inspector`, Envoy 1.40 records the inspector's own
    // parse error (HTTP_REQUEST for plain HTTP) as the connection's
    // transport failure reason although nothing failed.
    let tls_failure = match facts.class {
        Class::None => normalized(facts.tls_failure),
        _ => String::new(),
    };
    let shown = facts.tls_failure.unwrap_or_default();
    if tls_failure.contains("http request") {
        return diagnosis(
            "plaintext_on_tls",
            format!(
                "a client sent plaintext HTTP to this TLS listener ({shown}): the sender most likely \
                 fell through protocol sniffing to a plaintext passthrough chain (its \
                 listener_filters_timeout expired before its first bytes)"
            ),
        );
    }
    if !tls_failure.is_empty() {
        return diagnosis(
            "tls_handshake_failed",
            format!("the downstream TLS handshake failed ({shown})"),
        );
    }
    match facts.first_byte_ms {
        Some(ms) if facts.class.looks_like_http() && ms >= config.sniff_threshold_ms => diagnosis(
            "sniff_fallthrough",
            format!(
                "the client's first bytes ({}) arrived {} after accept, past the {} protocol \
                 detection timeout, so the connection took filter chain '{}' instead of an HTTP \
                 chain; raise listener_filters_timeout or declare the protocol",
                facts.class.name(),
                human_ms(ms),
                human_ms(config.sniff_threshold_ms),
                facts.chain.unwrap_or("(unnamed)")
            ),
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
