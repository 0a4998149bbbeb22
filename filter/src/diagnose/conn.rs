//! A downstream connection when it closes: plaintext on a TLS listener, a
//! failed TLS handshake, or a client whose first bytes came after protocol
//! detection gave up (`sniff_fallthrough`).

use super::{diagnosis, human_ms, normalized, Diagnosis};
use crate::config::Config;
use crate::sniff::Class;

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
    // Only a connection that took a chain configured as the fall-through
    // (Istio's inbound passthrough chain by default) fell through: on a listener
    // that does not sniff, a slow client is just slow.
    let fell_through = facts
        .chain
        .is_some_and(|c| config.fallthrough_chains.iter().any(|f| f == c));
    match facts.first_byte_ms {
        Some(ms)
            if fell_through && facts.class.looks_like_http() && ms >= config.sniff_threshold_ms =>
        {
            diagnosis(
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
            )
        }
        _ => None,
    }
}
