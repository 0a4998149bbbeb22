//! The diagnosis rules: from what Envoy reports about a request (flags,
//! details, transport failure reason, attempts) or a downstream connection
//! (first bytes, TLS failure), plus the reuse facts, to a stable code and one
//! human sentence. The codes are a contract (README "Diagnosis codes").

use crate::config::Config;
use crate::flags::{DC, LR, NR, UAEX, UC, UF, UH, UMSDR, UO, UPE, UR, URX, UT};
use crate::reuse::{History, Reuse};
use crate::sniff::Class;

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

/// What a log line says that the request rules leave out: a connection
/// that matched no filter chain (`NR filter_chain_not_found`: no HTTP
/// filter ever runs on it), and a client that left (`DC`: not an upstream
/// failure, so `http` names none, but the person who pasted the line needs
/// to hear it). `None` for anything else.
pub fn line_only(facts: &HttpFacts<'_>) -> Option<Diagnosis> {
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

fn failure(facts: &HttpFacts<'_>, config: &Config) -> Option<Diagnosis> {
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

const UNKNOWN_FRESH: &str = "a backend (or a proxy between) that reset a fresh connection: a \
                             crash, a connection limit, an abort of this request";
const UNKNOWN_RACE: &str = "a keep-alive race: a pooled connection the backend closed while it \
                            sat idle (the evidence has no earlier request on that connection)";

/// Reset before any response with the connection ended
/// (`connection_termination`): how a backend's close or RST shows.
fn is_termination(facts: &HttpFacts<'_>, details: &str) -> bool {
    facts.flags & (UC | UR) != 0
        && details.contains("before response started")
        && details.contains("connection termination")
}

/// The connection ended before any response on a connection whose history
/// the evidence does not hold: within the race window a keep-alive race is
/// likely; long after the request started, the backend or something
/// between closed it mid-request after that long. `None` without timing.
fn unknown_history_termination(facts: &HttpFacts<'_>, config: &Config) -> Option<Diagnosis> {
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

/// A request Istio sent through `PassthroughCluster` (plaintext: it did not
/// route it as mesh traffic) whose connection the destination reset: a
/// destination whose sidecar requires mTLS resets plaintext.
fn plaintext_to_strict_mtls(facts: &HttpFacts<'_>) -> Option<Diagnosis> {
    let shown = facts.details.unwrap_or("no details");
    likely(
        "plaintext_to_strict_mtls",
        plaintext_to_strict_explain(&format!(
            "the request left through {PASSTHROUGH_CLUSTER} (plaintext: this sidecar did not route \
             it as mesh traffic) and the destination reset the connection ({shown})"
        )),
        &[
            "a destination outside the mesh that reset the connection for its own reasons",
            "a keep-alive race on the passthrough connection (the evidence has no earlier request \
             on it)",
        ],
    )
}

/// Why plaintext through PassthroughCluster meets a STRICT destination, and
/// the fix in Istio's terms, after what the evidence showed.
fn plaintext_to_strict_explain(seen: &str) -> String {
    format!(
        "{seen}: a destination whose sidecar requires mTLS (PeerAuthentication mode STRICT) \
         resets plaintext; this sidecar sends plaintext there when the host is not in its registry \
         (no Service or ServiceEntry, a Sidecar resource that hides it), when the port's protocol \
         is not declared and detection fell through (protocolDetectionTimeout was 100 ms up to \
         Istio 1.6), or when a DestinationRule sets tls mode DISABLE; fix it in Istio's terms: \
         declare the port (name http-*, appProtocol), make the host known (ServiceEntry), or set \
         the destination's PeerAuthentication to PERMISSIVE while you migrate"
    )
}

/// What a tcp_proxy access-log line says (no HTTP request: Istio prints
/// `"- - -"`). Only a log has it for a sidecar's fall-through: Istio runs no
/// plugin on `PassthroughFilterChain` / `virtualOutbound-catchall-tcp`.
#[derive(Debug, Clone, Default)]
pub struct TcpFacts<'a> {
    pub flags: u64,
    pub cluster: Option<&'a str>,
    /// The line names the upstream host it connected to.
    pub connected: bool,
    /// Bytes from the downstream (the application) and back to it.
    pub bytes_received: Option<u64>,
    pub bytes_sent: Option<u64>,
    pub elapsed_ms: Option<u64>,
}

/// A TCP connection that left through `PassthroughCluster`, delivered the
/// application's bytes and got none back before it closed: what plaintext
/// into a STRICT destination looks like from the sender (Istio 1.6: the
/// callee's TLS handshake fails on it; from 1.8 no inbound chain matches
/// it), likely, never confirmed: the line cannot tell who closed. A
/// destination that answered a byte, a connect that failed (the flags say
/// so: the request rules name it), a client that sent nothing, or a mesh
/// cluster (mTLS originated) is not this.
pub fn tcp_line(facts: &TcpFacts<'_>) -> Option<Diagnosis> {
    let (Some(received), Some(0)) = (facts.bytes_received, facts.bytes_sent) else {
        return None;
    };
    if facts.flags != 0
        || !facts.connected
        || received == 0
        || facts.cluster != Some(PASSTHROUGH_CLUSTER)
    {
        return None;
    }
    let after = facts.elapsed_ms.map_or(String::new(), |ms| {
        format!(" {} after accept", human_ms(ms))
    });
    likely(
        "plaintext_to_strict_mtls",
        plaintext_to_strict_explain(&format!(
            "the connection left through {PASSTHROUGH_CLUSTER} as plaintext TCP (this sidecar did \
             not route it as mesh traffic), delivered {received} bytes and closed{after} with not \
             one byte back"
        )),
        &[
            "a destination outside the mesh that closed without answering",
            "the client closing first (its own timeout of about the connection's duration)",
        ],
    )
}

/// The evidence a keep-alive race leaves: the connection ended
/// (`connection_termination`, UC/UR) before any response, on a connection
/// known to be reused that sat idle, within `race_window_ms` of the request
/// being sent: a server that closed the idle connection answers the request
/// that crossed its close at once (its FIN was already on the way, or its
/// kernel resets the request on the closed socket: one round trip).
fn is_keepalive_race(facts: &HttpFacts<'_>, details: &str, config: &Config) -> bool {
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
fn dead_peer_timeout(facts: &HttpFacts<'_>, details: &str, config: &Config) -> Option<u64> {
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

fn dead_peer_explain(facts: &HttpFacts<'_>, timeout: u64) -> String {
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

fn reset_explain(facts: &HttpFacts<'_>, details: &str, config: &Config) -> String {
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

/// A connect failure (UF) with no reason given whose duration is a round
/// connect timeout (a multiple of 250 ms, within 25 ms either side): the
/// timeout, likely. Either side: `%DURATION%` and the connect timer are
/// two clocks, and real lines put the same 10 s timeout at 9994-10007 ms
/// (tests/data/diagnose/real/13-tcp-uf-round-ten-seconds.log's thread).
fn round_connect_timeout(facts: &HttpFacts<'_>) -> Option<u64> {
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
fn source_address_explain(facts: &HttpFacts<'_>, shown: &str) -> String {
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

/// The server whose idle timeout the idle time is consistent with, within
/// the window.
pub fn matching_server(idle_ms: u64, config: &Config) -> Option<&crate::config::ServerTimeout> {
    config.server_idle_timeouts.iter().find(|s| {
        idle_ms >= s.idle_ms.saturating_sub(config.idle_match_before_ms)
            && idle_ms <= s.idle_ms.saturating_add(config.idle_match_after_ms)
    })
}

fn keepalive_race_explain(
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

#[cfg(test)]
mod tests;
