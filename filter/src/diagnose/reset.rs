//! An upstream reset before the response: a keep-alive race (a reused
//! connection found idle-closed), a dead peer (the kernel gave up), or a
//! backend that dropped the request, judged by the connection's history
//! (first, reused, unknown) and the timing.

use super::{human_ms, likely, Diagnosis, HttpFacts, RACE_MIN_IDLE_MS};
use crate::config::Config;
use crate::flags::{UC, UR};
use crate::reuse::{History, Reuse};

pub(super) const UNKNOWN_FRESH: &str =
    "a backend (or a proxy between) that reset a fresh connection: a \
                             crash, a connection limit, an abort of this request";
pub(super) const UNKNOWN_RACE: &str =
    "a keep-alive race: a pooled connection the backend closed while it \
                            sat idle (the evidence has no earlier request on that connection)";

/// Reset before any response with the connection ended
/// (`connection_termination`): how a backend's close or RST shows.
pub(super) fn is_termination(facts: &HttpFacts<'_>, details: &str) -> bool {
    facts.flags & (UC | UR) != 0
        && details.contains("before response started")
        && details.contains("connection termination")
}

/// The connection ended before any response on a connection whose history
/// the evidence does not hold: within the race window a keep-alive race is
/// likely; long after the request started, the backend or something
/// between closed it mid-request after that long. `None` without timing.
pub(super) fn unknown_history_termination(
    facts: &HttpFacts<'_>,
    config: &Config,
) -> Option<Diagnosis> {
    let ms = facts.elapsed_ms?;
    let shown = facts.details.unwrap_or("no details");
    let evicted = if facts.reuse.forgotten {
        " (it had carried earlier requests, but the reuse table had evicted it: raise \
         reuse_table_cap)"
    } else {
        ""
    };
    if ms <= config.race_window_ms {
        return likely(
            "keepalive_race",
            format!(
                "the upstream closed the connection {} after the request, before any response \
                 ({shown}), and the evidence does not hold that connection's earlier \
                 requests{evicted}: a keep-alive race is likely (Envoy reused a pooled connection \
                 the backend had just closed while idle); if so, set the cluster's idle_timeout \
                 below the backend's keep-alive timeout (Istio: DestinationRule \
                 connectionPool.http.idleTimeout) or retry on reset",
                human_ms(ms)
            ),
            &[
                UNKNOWN_FRESH,
                "a sidecar or proxy between that closed the connection (its own idle timeout, a \
                 restart, a drain)",
            ],
        );
    }
    likely(
        "upstream_reset",
        format!(
            "the upstream connection ended {} after the request started, before any response \
             ({shown}): the backend, or something between, closed it mid-request after that long \
             (a server-side request timeout, a crash or kill, a proxy or load balancer timeout); \
             not a keep-alive race, which ends within one round trip of the request being sent \
             upstream, unless the request waited about that long before it was sent (%DURATION% \
             counts from its first byte: a slow upload, an authorization or policy check, a wait \
             for a pooled connection)",
            human_ms(ms)
        ),
        &[
            "a server-side timeout of about that long (the backend's own request or read timeout)",
            "a backend crash, OOM kill or restart while it handled the request",
            "a proxy, load balancer or NAT between that dropped the connection",
            "a keep-alive race after a wait before the upstream send (%REQUEST_DURATION% and \
             %RESPONSE_DURATION% in the format tell)",
        ],
    )
}

/// The evidence a keep-alive race leaves: the connection ended
/// (`connection_termination`, UC/UR) before any response, on a connection
/// known to be reused that sat idle, within `race_window_ms` of the request
/// being sent: a server that closed the idle connection answers the request
/// that crossed its close at once (its FIN was already on the way, or its
/// kernel resets the request on the closed socket: one round trip).
pub(super) fn is_keepalive_race(facts: &HttpFacts<'_>, details: &str, config: &Config) -> bool {
    let termination = is_termination(facts, details);
    let idle = facts.reuse.nth > 1
        && facts
            .reuse
            .idle_ms
            .is_some_and(|idle| idle >= RACE_MIN_IDLE_MS);
    let prompt = facts
        .elapsed_ms
        .is_some_and(|ms| ms <= config.race_window_ms);
    termination && idle && prompt
}

/// Linux gives up on unacknowledged data after `tcp_retries2` (15)
/// retransmissions, about 924.6 s; no backend that is alive stays silent
/// on a request that long without its own timeout firing first.
pub const KERNEL_GIVE_UP_MS: u64 = 900_000;

/// The connection ended (`connection_termination`, UC/UR) before any
/// response, as long after the request as the kernel takes to give up on
/// a peer that stopped acknowledging: the cluster's TCP_USER_TIMEOUT
/// (`tcp_user_timeout_ms`; the kernel aborts at the first retransmission
/// timer past it, measured at 1.4 s for 1 s, hence up to 2 T + 1 s), or
/// the kernel's default give-up. The timeout that fits, or `None`.
///
/// A backend that crashes closes with a FIN or RST at whatever moment it
/// dies, which Envoy reports with the same details: only the timing tells
/// them apart, so a crash that lands in the window is named a dead peer too
/// (the explanation says "consistent with").
pub(super) fn dead_peer_timeout(
    facts: &HttpFacts<'_>,
    details: &str,
    config: &Config,
) -> Option<u64> {
    let termination = is_termination(facts, details);
    let elapsed = facts.elapsed_ms?;
    if !termination {
        return None;
    }
    if let Some(t) = config.tcp_user_timeout_ms {
        if elapsed >= t && elapsed <= t.saturating_mul(2).saturating_add(1_000) {
            return Some(t);
        }
    }
    (elapsed >= KERNEL_GIVE_UP_MS).then_some(KERNEL_GIVE_UP_MS)
}

pub(super) fn dead_peer_explain(facts: &HttpFacts<'_>, timeout: u64) -> String {
    let elapsed = human_ms(facts.elapsed_ms.unwrap_or_default());
    let which = if timeout == KERNEL_GIVE_UP_MS {
        "the kernel's own retransmission give-up (tcp_retries2, about 15 min)".to_string()
    } else {
        format!("the cluster's TCP_USER_TIMEOUT ({})", human_ms(timeout))
    };
    let idle = match (facts.reuse.nth, facts.reuse.idle_ms) {
        (2.., Some(idle)) => format!(
            " on a connection reused after {} idle (request {}): a peer that died or was cut \
             off while it sat idle leaves it half-open",
            human_ms(idle),
            facts.reuse.nth
        ),
        _ => String::new(),
    };
    format!(
        "the upstream connection ended {elapsed} after the request with nothing back, \
         consistent with {which}: the peer stopped acknowledging (a dead host, a dropped \
         NAT/conntrack entry, a partition) and the kernel gave up{idle}; not a keep-alive race \
         and not a backend that answered: detect it sooner with TCP keepalive on the cluster \
         (upstream_connection_options.tcp_keepalive) and a TCP_USER_TIMEOUT, bound the request \
         with a route timeout and retry_on reset, and let outlier detection eject the host"
    )
}

pub(super) fn reset_explain(facts: &HttpFacts<'_>, details: &str, config: &Config) -> String {
    let shown = facts.details.unwrap_or("no details");
    let reuse = &facts.reuse;
    if details.contains("after response started") {
        return format!(
            "the upstream reset the stream after the response had started ({shown}): the backend \
             (or something between) broke off mid-response"
        );
    }
    if details.contains("remote reset") || details.contains("remote refused stream reset") {
        return format!(
            "the upstream reset this stream ({shown}: an HTTP/2 RST_STREAM or GOAWAY from the \
             backend, or Envoy's own codec rejecting the response, which Envoy reports the same \
             way: see the cluster's http2.rx_messaging_error and http2.header_overflow stats) \
             before answering; the connection itself was not found idle"
        );
    }
    if reuse.forgotten && reuse.history() == History::Unknown {
        return format!(
            "the upstream connection was reset before any response ({shown}); it had carried \
             earlier requests, but the reuse table had evicted it (raise reuse_table_cap), so \
             how long it sat idle is unknown"
        );
    }
    match (reuse.history(), facts.elapsed_ms) {
        (History::Reused, Some(ms)) if ms > config.race_window_ms => format!(
            "the upstream reset the connection {} after the request was sent, before any \
             response ({shown}): the backend dropped it mid-request (a crash, a kill, its own \
             timeout, or a proxy in between), not an idle keep-alive close (that answers within \
             one round trip); request {} on that connection",
            human_ms(ms),
            reuse.nth
        ),
        (History::Reused, _) => format!(
            "the upstream connection was reset before any response ({shown}) on request {} of \
             that connection, which had not sat idle: not a keep-alive race",
            reuse.nth
        ),
        (History::First, _) => format!(
            "the upstream reset a fresh connection on its first request ({shown}): the backend \
             (or something between) refused or dropped the request itself"
        ),
        (History::Unknown, _) => format!(
            "the upstream connection was reset ({shown}); whether it was fresh or reused after \
             an idle time is not in the evidence"
        ),
        (History::None, _) => format!("the upstream connection was reset ({shown})"),
    }
}

/// The server whose idle timeout the idle time is consistent with, within
/// the window.
pub fn matching_server(idle_ms: u64, config: &Config) -> Option<&crate::config::ServerTimeout> {
    config.server_idle_timeouts.iter().find(|s| {
        idle_ms >= s.idle_ms.saturating_sub(config.idle_match_before_ms)
            && idle_ms <= s.idle_ms.saturating_add(config.idle_match_after_ms)
    })
}

pub(super) fn keepalive_race_explain(
    idle_ms: u64,
    reuse: &Reuse,
    elapsed: Option<u64>,
    config: &Config,
) -> String {
    let nth = match reuse.known_nth() {
        Some(n) => format!("request {n} on it"),
        None => format!("at least request {} on it", reuse.nth),
    };
    let matched = match matching_server(idle_ms, config) {
        Some(s) => format!(
            ", consistent with {}'s default keep-alive timeout of {}",
            s.name,
            human_ms(s.idle_ms)
        ),
        None => String::new(),
    };
    let within = elapsed.map_or(String::new(), |ms| {
        format!(" {} after the request", human_ms(ms))
    });
    format!(
        "Envoy reused an upstream connection that had been idle {} ({nth}) and \
         the backend closed it{within}, before answering{matched}: set the cluster's \
         idle_timeout below the backend's keep-alive timeout, or retry on reset",
        human_ms(idle_ms)
    )
}
