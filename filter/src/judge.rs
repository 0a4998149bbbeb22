//! One request's end, from facts to verdict: put it on its upstream
//! connection in the reuse table, apply the rules (`diagnose::http`), forget
//! a connection the rules say is gone, and give the event's view of the
//! connection. The filter's `on_log` (`host/http.rs`) and `connlab
//! diagnose` (`lab/src/diagnose/connections.rs`) both call [`judge`], so the
//! two cannot drift.
//!
//! No host calls. What only some requests need, and what costs the filter a
//! host call each (about a microsecond of worker time), is asked for through
//! [`OnDemand`], only when a rule needs it: a healthy request asks nothing.

use crate::config::Config;
use crate::diagnose::{self, Diagnosis, HttpFacts};
use crate::event::Upstream;
use crate::flags::{UC, UF, UH, UO, UR};
use crate::reuse::{History, Reuse, ReuseTable};

/// What every request has when it ends.
#[derive(Debug, Clone, Copy, Default)]
pub struct Outcome<'a> {
    /// Envoy's side of the upstream connection, or any other key naming
    /// that connection (diagnose uses `%UPSTREAM_CONNECTION_ID%` when the
    /// log has it); `None`: no connection known.
    pub local: Option<&'a str>,
    /// The upstream host: the other half of the connection's identity.
    pub peer: Option<&'a str>,
    /// When the request ended (ns, on the clock the table's entries share);
    /// `None`: unknown, and the connection is not recorded.
    pub end_ns: Option<u64>,
    /// From the request's start to its end; `None` when unknown (the table
    /// then takes the end as the start).
    pub duration_ns: Option<u64>,
    pub flags: u64,
    pub attempts: Option<u64>,
}

impl Outcome<'_> {
    /// Nothing went wrong at the proxy level: no flags, one attempt.
    pub fn looks_healthy(&self) -> bool {
        self.flags == 0 && self.attempts.unwrap_or(1) <= 1
    }
}

/// What Envoy says about a request beyond its outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reasons {
    /// The response code.
    pub code: Option<i64>,
    /// `response.code_details`.
    pub details: Option<String>,
    /// `upstream.transport_failure_reason`.
    pub failure: Option<String>,
}

/// The facts only some rules need, asked for when one does (each at most
/// once per [`judge`]).
pub trait OnDemand {
    /// Asked for every request that does not look healthy.
    fn reasons(&mut self) -> Reasons;
    /// `xds.cluster_name`, for `UO` and `UH` (the advice names it) and for
    /// resets (`UC`, `UR`: Istio's PassthroughCluster).
    fn cluster(&mut self) -> Option<String>;
    /// The local ports of the upstream connections to `peer` that other
    /// requests hold right now (in flight, so not in the table yet); asked
    /// only when a connect failed with EADDRNOTAVAIL.
    fn in_flight_ports(&mut self, peer: &str) -> Vec<u16>;
    /// The request method is `CONNECT`; asked only for a 2xx that ended in
    /// a reset (is it a tunnel?).
    fn is_connect(&mut self) -> bool;
    /// The gRPC status (trailer, else header); asked only for retried
    /// requests.
    fn grpc_status(&mut self) -> Option<i64>;
    /// Evidence that the request's upstream connection was opened for it
    /// (so it is newer than the reuse table); asked only about a connection
    /// the table does not hold. Without it the connection's history is
    /// unknown: no rule takes it for a fresh one.
    fn opened(&mut self) -> bool;
}

/// What [`judge`] does to the reuse table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bookkeeping {
    /// The request has ended: record it, forget a connection that was reset.
    Record,
    /// It has not ended yet (its response headers are passing): change nothing.
    Peek,
}

/// A request as the rules judged it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judged {
    /// The connection that carried it, as the table saw it.
    pub reuse: Reuse,
    /// Asked for (`OnDemand::reasons`) when the request did not look healthy.
    pub reasons: Option<Reasons>,
    /// `None` when healthy.
    pub diagnosis: Option<Diagnosis>,
}

impl Judged {
    pub fn code(&self) -> Option<&'static str> {
        self.diagnosis.as_ref().map(|d| d.code)
    }

    /// The event's `upstream` object: `nth` null when no connection was made
    /// or its start is not known (evicted, or first seen without evidence
    /// that it was new), `age_ms` only with a connection.
    pub fn upstream(&self, local: Option<String>, peer: Option<String>) -> Upstream {
        let reuse = &self.reuse;
        Upstream {
            local,
            peer,
            nth: reuse.known_nth(),
            idle_ms: if reuse.nth > 0 { reuse.idle_ms } else { None },
            age_ms: (reuse.nth > 0).then_some(reuse.age_ms),
            history: history_name(reuse.history()),
            forgotten: reuse.forgotten,
        }
    }
}

/// Judges one request: the reuse table first (a request whose connect
/// failed had no connection to count), then the rules, then, when recording,
/// forgets a connection that was reset, so a new connection the kernel gives
/// the same port starts again at `nth` 1.
pub fn judge(
    table: &mut ReuseTable,
    outcome: &Outcome<'_>,
    more: &mut impl OnDemand,
    config: &Config,
    bookkeeping: Bookkeeping,
) -> Judged {
    let reuse = reuse(table, outcome, more, bookkeeping);
    if outcome.looks_healthy() {
        return Judged {
            reuse,
            reasons: None,
            diagnosis: None,
        };
    }
    let flags = outcome.flags;
    let reasons = more.reasons();
    let cluster = if flags & (UO | UH | UC | UR) != 0 {
        more.cluster()
    } else {
        None
    };
    let pinned_port = match outcome.peer {
        Some(peer) if asks_in_flight(flags, reasons.failure.as_deref()) => {
            table.pinned_port(peer, &more.in_flight_ports(peer))
        }
        _ => None,
    };
    let tunnel = match reasons.code {
        Some(101) => true,
        Some(200..=299) if flags & (UC | UR) != 0 => more.is_connect(),
        _ => false,
    };
    let retried = outcome.attempts.unwrap_or(1) > 1;
    let facts = HttpFacts {
        code: reasons.code,
        flags,
        details: reasons.details.as_deref(),
        failure: reasons.failure.as_deref(),
        attempts: outcome.attempts,
        reuse,
        elapsed_ms: outcome.duration_ns.map(|ns| ns / 1_000_000),
        cluster: cluster.as_deref(),
        pinned_port,
        grpc_status: if retried { more.grpc_status() } else { None },
        tunnel,
    };
    let diagnosis = diagnose::http(&facts, config);
    let gone = matches!(
        diagnosis.as_ref().map(|d| d.code),
        Some("keepalive_race" | "upstream_reset")
    );
    if let (Bookkeeping::Record, Some(local), true) = (bookkeeping, outcome.local, gone) {
        table.forget(local, outcome.peer.unwrap_or_default());
    }
    Judged {
        reuse,
        reasons: Some(reasons),
        diagnosis,
    }
}

/// Shortest wait for a connection from Envoy's pool
/// (`upstream.cx_pool_ready_duration`) that shows a connect: Envoy hands an
/// idle pooled connection to a request synchronously, inside the pool call
/// (a few µs), and a new one only after its connect completed on a later
/// turn of the event loop (a TCP handshake: Envoy 1.40 logged 23 µs from
/// connect start to connected on loopback, and the real-Envoy tests see a
/// fresh loopback connection as `first` and a pooled one as not).
/// A request that waited behind
/// busy connections also waits; the connection it then gets carried a
/// request the table recorded, unless that request began before the filter
/// was loaded (a window of one request's duration after loading).
pub const POOL_CONNECT_MIN_NS: u64 = 20_000;

/// Whether the pool's wait shows that the connection was opened for the
/// request; `None` (an Envoy without the attribute): no evidence.
pub fn opened_by_pool_wait(ready_ns: Option<u64>) -> bool {
    ready_ns.is_some_and(|ns| ns >= POOL_CONNECT_MIN_NS)
}

/// A connect that failed with EADDRNOTAVAIL: the one rule that asks for the
/// connections other requests hold in flight (`OnDemand::in_flight_ports`).
pub fn asks_in_flight(flags: u64, failure: Option<&str>) -> bool {
    flags & UF != 0 && diagnose::is_eaddrnotavail(failure)
}

/// The event's name for a history.
pub fn history_name(history: History) -> Option<&'static str> {
    match history {
        History::None => None,
        History::First => Some("first"),
        History::Reused => Some("reused"),
        History::Unknown => Some("unknown"),
    }
}

/// The request's connection as the table sees it, recorded when asked.
fn reuse(
    table: &mut ReuseTable,
    outcome: &Outcome<'_>,
    more: &mut impl OnDemand,
    bookkeeping: Bookkeeping,
) -> Reuse {
    let connected = outcome.flags & UF == 0;
    let (Some(local), Some(end), true) = (outcome.local, outcome.end_ns, connected) else {
        return Reuse::default();
    };
    let peer = outcome.peer.unwrap_or_default();
    let start = end.saturating_sub(outcome.duration_ns.unwrap_or(0));
    let opened = !table.knows(local, peer) && more.opened();
    match bookkeeping {
        Bookkeeping::Record => table.record(local, peer, start, end, opened),
        Bookkeeping::Peek => table.peek(local, peer, start, end, opened),
    }
}

#[cfg(test)]
mod tests;
