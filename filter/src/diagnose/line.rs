//! What a log line says that the request rules leave out: a connection
//! that matched no filter chain, a client that left, an external
//! authorization refusal. Only `connlab diagnose` reads lines; the filter
//! never sees these.

use super::{diagnosis, human_ms, likely, normalized, Diagnosis, HttpFacts};
use crate::flags::{DC, NR, UAEX};

/// What a log line says that the request rules leave out: a connection
/// that matched no filter chain (`NR filter_chain_not_found`: no HTTP
/// filter ever runs on it), and a client that left (`DC`: not an upstream
/// failure, so `http` names none, but the person who pasted the line needs
/// to hear it). `None` for anything else.
pub fn line_only(facts: &HttpFacts<'_>) -> Option<Diagnosis> {
    // Every rule here starts from one of these flags; most lines have none
    // (a healthy request), so nothing else is looked at.
    if facts.flags & (NR | UAEX | DC) == 0 {
        return None;
    }
    let details = normalized(facts.details);
    if facts.flags & NR != 0 && details.contains("filter chain not found") {
        return likely(
            "no_filter_chain",
            "the connection matched no filter chain of the listener that accepted it (NR \
             filter_chain_not_found), so Envoy closed it without reading a request: on a sidecar's \
             inbound listener (virtualInbound, 15006) that is what plaintext looks like on a port \
             whose PeerAuthentication is STRICT (its chains match only mTLS); the sender is a \
             client outside the mesh, or a sidecar that sent plaintext (through PassthroughCluster, \
             or after protocol detection fell through)"
                .to_string(),
            &[
                "a port the sidecar has no inbound chain for (not declared in the Service)",
                "TLS that is not Istio mTLS (a client doing its own TLS to the pod's port)",
            ],
        );
    }
    if facts.flags & UAEX != 0 {
        return ext_authz_rejected(facts);
    }
    if facts.flags & DC != 0 {
        let after = facts.elapsed_ms.map_or(String::new(), |ms| {
            format!(" {} after the request started", human_ms(ms))
        });
        let shown = facts.details.map_or(String::new(), |d| format!(", {d}"));
        return diagnosis(
            "downstream_disconnect",
            format!(
                "the downstream (the client) closed its connection{after}, before the response was \
                 sent (DC{shown}): not an upstream failure; a client that gives up after a fixed \
                 time is its own timeout (compare the duration with the client's timeout), and a \
                 slow upstream is what made it wait"
            ),
        );
    }
    None
}

/// `UAEX`: the external authorization check refused the request before any
/// upstream was asked. Envoy sets the flag both when the authorization
/// service said no (details `ext_authz_denied`, any status it chose: a 401,
/// a 403, a 302 to a login page) and when it could not be asked
/// (`ext_authz_error`: Envoy answers `status_on_error`, 403 by default;
/// Istio's Mixer policy check answered 503 with the same flag). The details
/// tell them apart; without them (older formats) only a 401 or a redirect
/// is surely the service's own answer.
fn ext_authz_rejected(facts: &HttpFacts<'_>) -> Option<Diagnosis> {
    const NOT_BACKEND: &str = "no upstream saw the request: look at the authorization \
                               service and its policy, not at the backend";
    const CODE: &str = "ext_authz_rejected";
    let details = normalized(facts.details);
    let status = facts
        .code
        .map_or("no status".to_string(), |c| c.to_string());
    let denied = || {
        format!(
            "the external authorization service denied the request ({status} UAEX): its own \
             decision (a 401/403, or a redirect to a login page); {NOT_BACKEND}"
        )
    };
    let error = || {
        format!(
            "the external authorization check could not decide ({status} UAEX): the \
             authorization service (or Istio's Mixer policy check, before 1.5) was unavailable \
             or failed, and Envoy refused the request without its answer (status_on_error, 403 \
             by default, when failure_mode_allow is off); {NOT_BACKEND}"
        )
    };
    if details.contains("ext authz denied") {
        return diagnosis(CODE, denied());
    }
    if details.contains("ext authz error") {
        return diagnosis(CODE, error());
    }
    match facts.code {
        Some(401 | 300..=399) => likely(
            CODE,
            denied(),
            &["an authorization service configured to answer errors with this status"],
        ),
        Some(403) => likely(
            CODE,
            format!(
                "the external authorization check refused the request (403 UAEX): the \
                 authorization service denied it, or could not be reached (Envoy answers \
                 status_on_error, 403 by default, when failure_mode_allow is off); {NOT_BACKEND}"
            ),
            &[
                "the authorization service failed or timed out (its cluster's stats, \
                ext_authz.error / ext_authz.failure_mode_allowed)",
            ],
        ),
        _ => likely(
            CODE,
            error(),
            &["the authorization service answered this status itself as its denial"],
        ),
    }
}
