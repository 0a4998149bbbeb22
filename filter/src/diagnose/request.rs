//! A finished request's flags and failure reason to a code: circuit
//! breaker, no healthy host, connect failures (refused, timed out, TLS,
//! EADDRNOTAVAIL), timeouts, protocol errors, local resets; resets go on to
//! `reset`.

use super::reset::{
    dead_peer_explain, dead_peer_timeout, is_keepalive_race, is_termination,
    keepalive_race_explain, reset_explain, unknown_history_termination, UNKNOWN_FRESH,
    UNKNOWN_RACE,
};
use super::strict_mtls::plaintext_to_strict_mtls;
use super::{
    cluster_named, diagnosis, human_ms, likely, normalized, Diagnosis, HttpFacts,
    PASSTHROUGH_CLUSTER,
};
use crate::config::Config;
use crate::flags::{DC, LR, UC, UF, UH, UMSDR, UO, UPE, UR, URX, UT};
use crate::reuse::History;

pub(super) fn failure(facts: &HttpFacts<'_>, config: &Config) -> Option<Diagnosis> {
    let reason = normalized(facts.failure);
    let details = normalized(facts.details);
    let shown = facts.failure.or(facts.details).unwrap_or("no reason given");
    if facts.flags & UO != 0 {
        return diagnosis(
            "circuit_breaker_overflow",
            format!(
                "Envoy's circuit breaker for {} was full (UO), so the request was rejected \
                 without reaching the upstream: see the cluster's upstream_rq_pending_overflow, \
                 upstream_cx_overflow and upstream_rq_retry_overflow stats and its \
                 circuit_breakers thresholds (max_pending_requests, max_connections, \
                 max_requests, max_retries)",
                cluster_named(facts.cluster)
            ),
        );
    }
    if facts.flags & UH != 0 {
        return diagnosis(
            "no_healthy_upstream",
            format!(
                "{} had no healthy host (UH): every endpoint was failed by health checks or \
                 outlier detection, or there are none",
                cluster_named(facts.cluster)
            ),
        );
    }
    if facts.flags & UF != 0 || !reason.is_empty() {
        if is_eaddrnotavail(facts.failure) {
            return diagnosis(
                "source_address_conflict",
                source_address_explain(facts, shown),
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
        if let Some(timeout) = round_connect_timeout(facts) {
            return likely(
                "connect_timeout",
                format!(
                    "the upstream connection failed after {} ({shown}), a round connect timeout: \
                     most likely the cluster's connect_timeout expired (Istio's default is 10 s, \
                     Envoy's 5 s) because the host did not answer the SYN",
                    human_ms(timeout)
                ),
                &[
                    "a connect refused or reset that happened to take that long (the log has no \
                     %UPSTREAM_TRANSPORT_FAILURE_REASON% to tell)",
                ],
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
        // Envoy gives up on its own clock, so nothing says whether the
        // backend was slow or gone: both leave the connection silent.
        return diagnosis(
            "upstream_timeout",
            "the upstream did not answer within the route timeout: a slow backend, or a peer \
             that went silent (dead or cut off: then upstream_dead_peer shows on requests that \
             outlive the TCP_USER_TIMEOUT); Envoy's timeout cannot tell them apart"
                .to_string(),
        );
    }
    if facts.flags & UMSDR != 0 {
        return diagnosis(
            "upstream_timeout",
            "the upstream stream reached the route's max_stream_duration (UMSDR)".to_string(),
        );
    }
    if facts.flags & UPE != 0 {
        let shown = facts.details.unwrap_or("no details");
        // Measured: an HTTP/1 body the backend resets short of its
        // content-length is a protocol error after the response started.
        let explain = if details.contains("after response started") {
            format!(
                "the upstream's response broke off after it had started (UPE: {shown}): Envoy \
                 reports a body cut short of its content-length (the backend closed or reset \
                 mid-body) or a malformed chunk as a protocol error"
            )
        } else {
            format!(
                "the upstream's response broke the HTTP protocol (UPE: {shown}): Envoy could \
                 not parse it; a server answering another protocol on that port, or a \
                 malformed response"
            )
        };
        return diagnosis("upstream_protocol_error", explain);
    }
    if facts.flags & LR != 0 {
        return diagnosis(
            "upstream_local_reset",
            format!(
                "Envoy itself reset the upstream stream (LR: {}), not the backend: look at \
                 Envoy's own limits on that stream (buffer and header sizes, stream limits, a \
                 draining connection pool)",
                facts.details.unwrap_or("no details")
            ),
        );
    }
    let reset = facts.flags & (UC | UR) != 0 || details.contains("upstream reset");
    if !reset {
        return None;
    }
    // A tunnel ends when one side closes it, and Envoy reports the backend's
    // close as a termination after the response started whether it was a
    // FIN or an RST (measured: the same flags and details for both), so
    // naming a reset would be a guess on every WebSocket a server closes.
    if facts.tunnel && details.contains("after response started") {
        return None;
    }
    if let Some(timeout) = dead_peer_timeout(facts, &details, config) {
        return diagnosis("upstream_dead_peer", dead_peer_explain(facts, timeout));
    }
    if facts.cluster == Some(PASSTHROUGH_CLUSTER) && facts.reuse.history() != History::Reused {
        return plaintext_to_strict_mtls(facts);
    }
    if is_keepalive_race(facts, &details, config) {
        let idle = facts.reuse.idle_ms.unwrap_or_default();
        return diagnosis(
            "keepalive_race",
            keepalive_race_explain(idle, &facts.reuse, facts.elapsed_ms, config),
        );
    }
    // A reset connection existed even when the evidence does not say which
    // one it was (no local address or time in the line): its history is
    // unknown too.
    let unknown = match facts.reuse.history() {
        History::Unknown => true,
        History::None => facts.flags & UF == 0,
        History::First | History::Reused => false,
    };
    if unknown && is_termination(facts, &details) {
        if let Some(d) = unknown_history_termination(facts, config) {
            return Some(d);
        }
    }
    match facts.reuse.history() {
        History::First | History::Reused => {
            diagnosis("upstream_reset", reset_explain(facts, &details, config))
        }
        History::Unknown | History::None => likely(
            "upstream_reset",
            reset_explain(facts, &details, config),
            &[UNKNOWN_FRESH, UNKNOWN_RACE],
        ),
    }
}

/// A connect failure (UF) with no reason given whose duration is a round
/// connect timeout (a multiple of 250 ms, within 25 ms either side): the
/// timeout, likely. Either side: `%DURATION%` and the connect timer are
/// two clocks, and real lines put the same 10 s timeout at 9994-10007 ms
/// (tests/data/diagnose/real/13-tcp-uf-round-ten-seconds.log's thread).
pub(super) fn round_connect_timeout(facts: &HttpFacts<'_>) -> Option<u64> {
    const SLACK_MS: u64 = 25;
    let ms = facts.elapsed_ms?;
    let unexplained = facts.failure.is_none();
    // URX on a TCP proxy's line (status 0, no client that left) is its
    // connect-attempt limit, one attempt by default (Istio sets no other):
    // on an HTTP line it is retries that ran out, several attempts.
    let tcp = facts.code == Some(0) && facts.flags & DC == 0;
    let single = facts.attempts.unwrap_or(1) <= 1 && (facts.flags & URX == 0 || tcp);
    let nearest = (ms + 125) / 250 * 250;
    (facts.flags & UF != 0
        && unexplained
        && single
        && nearest >= 250
        && ms.abs_diff(nearest) <= SLACK_MS)
        .then_some(nearest)
}

/// connect() failed with EADDRNOTAVAIL (errno 99): no local port was free
/// for that destination. Envoy says "Cannot assign requested address" (or
/// the errno) in `upstream.transport_failure_reason`.
pub fn is_eaddrnotavail(failure: Option<&str>) -> bool {
    let reason = normalized(failure);
    reason.contains("cannot assign requested address") || reason.contains("error: 99")
}

/// The source-port advice, from the evidence: a pinned port only when every
/// known connection to that host left from one port.
pub(super) fn source_address_explain(facts: &HttpFacts<'_>, shown: &str) -> String {
    match facts.pinned_port {
        Some(port) => format!(
            "connect() failed with EADDRNOTAVAIL ({shown}): every connection to this host the \
             filter knows of (in flight or finished) left from local port {port}, so the source \
             port looks pinned and that 4-tuple is still in use (open, or in TIME_WAIT); do not \
             pin the source port (upstream_bind_config port_value)"
        ),
        None => format!(
            "connect() failed with EADDRNOTAVAIL ({shown}): no free local port to this host, the \
             ephemeral ports ran out: check connections to it in TIME_WAIT, \
             net.ipv4.ip_local_port_range, and connection churn (reuse connections)"
        ),
    }
}
