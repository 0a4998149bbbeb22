//! The HTTP filter (`connlab_http`): one context per request, which reads
//! the request's upstream outcome when it ends. And the failures-only
//! access logger (`connlab_log`, `log_failure`): the same reading and
//! judging for the requests Envoy's own access-log filter lets through,
//! with no connection history.

use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, MapType};

use super::{
    evaluate, now_ns, read_int, read_string, read_uint, report_missing, set_diagnosis_state, Shared,
};
use crate::config::Events;
use crate::event::HttpEvent;
use crate::flags;
use crate::judge::{self, Bookkeeping, Judged, OnDemand, Reasons};
use crate::property;
use crate::reuse::port;

pub(crate) struct Request {
    shared: Rc<Shared>,
    /// This request's context id (for `set_effective_context`).
    id: u32,
}

impl Request {
    pub fn new(shared: Rc<Shared>, id: u32) -> Self {
        shared.in_flight.borrow_mut().insert(id);
        Request { shared, id }
    }
}

impl Drop for Request {
    fn drop(&mut self) {
        self.shared.in_flight.borrow_mut().remove(&self.id);
    }
}

/// Most other requests a failed connect looks at (bounds the cost of an
/// EADDRNOTAVAIL storm: each failure reads two attributes of each).
const MAX_IN_FLIGHT_LOOKS: usize = 64;

/// The attributes every request reads; the rest only when a rule asks
/// (`Host`).
struct Attributes {
    local: Option<String>,
    peer: Option<String>,
    /// When the request started; read only when it matters (see `read`).
    start_ns: Option<u64>,
    end_ns: u64,
    flags: u64,
    attempts: Option<u64>,
}

impl Attributes {
    /// Reads the outcome. The request's start time is read only when it
    /// matters (`precise`, or a request that does not look healthy): for a
    /// healthy request in `failures` mode the reuse table needs only when it
    /// ended, and each property read costs the worker about a microsecond.
    fn read(shared: &Shared, precise: bool) -> Self {
        let end_ns = now_ns();
        let mut outcome = shared
            .outcome_expression
            .and_then(|token| Attributes::evaluated(token, end_ns))
            .unwrap_or_else(|| Attributes::read_each(end_ns, precise));
        if precise || !outcome.looks_healthy() {
            outcome.start_ns = read_uint(&["request", "time"]);
        }
        outcome
    }

    /// The four attributes from one evaluation of `OUTCOME_EXPRESSION`;
    /// `None` when it failed (one was absent) or its value is not the list
    /// it should be.
    fn evaluated(token: u32, end_ns: u64) -> Option<Self> {
        let bytes = evaluate(token)?;
        let items = property::list(&bytes)?;
        let [flags, attempts, local, peer] = items.as_slice() else {
            return None;
        };
        Some(Attributes {
            local: property::string(local),
            peer: property::string(peer),
            start_ns: None,
            end_ns,
            flags: property::uint(flags)?,
            attempts: property::uint(attempts),
        })
    }

    /// The attributes read one by one (no expression support, or a request
    /// without an upstream connection).
    fn read_each(end_ns: u64, precise: bool) -> Self {
        let flags = read_uint(&["response", "flags"]);
        if flags.is_none() {
            report_missing("response.flags");
        }
        let mut outcome = Attributes {
            local: read_string(&["upstream", "local_address"]),
            peer: None,
            start_ns: None,
            end_ns,
            flags: flags.unwrap_or(0),
            attempts: read_uint(&["upstream", "request_attempt_count"]),
        };
        // The peer is half of the connection's identity; no local address
        // means no connection, and then no peer is needed for the table.
        if outcome.local.is_some() || !outcome.looks_healthy() || precise {
            outcome.peer = read_string(&["upstream", "address"]);
        }
        outcome
    }

    fn looks_healthy(&self) -> bool {
        self.outcome().looks_healthy()
    }

    /// What the rules start from.
    fn outcome(&self) -> judge::Outcome<'_> {
        judge::Outcome {
            local: self.local.as_deref(),
            peer: self.peer.as_deref(),
            end_ns: Some(self.end_ns),
            duration_ns: self.start_ns.map(|start| self.end_ns.saturating_sub(start)),
            flags: self.flags,
            attempts: self.attempts,
        }
    }
}

fn read_reasons() -> Reasons {
    Reasons {
        code: read_int(&["response", "code"]),
        details: read_string(&["response", "code_details"]),
        failure: read_string(&["upstream", "transport_failure_reason"]),
    }
}

/// A response header or trailer, or `None`; never the SDK's unwrapping
/// getters (a host may refuse a map outside its phase).
fn response_map_value(map: MapType, name: &str) -> Option<String> {
    hostcalls::get_map_value(map, name).ok().flatten()
}

/// The attributes a rule asks for, read when it asks. `request` is `None`
/// in the failures-only logger, which sees no other request.
struct Host<'r> {
    shared: &'r Shared,
    request: Option<&'r Request>,
}

impl OnDemand for Host<'_> {
    fn reasons(&mut self) -> Reasons {
        read_reasons()
    }

    fn cluster(&mut self) -> Option<String> {
        read_string(&["xds", "cluster_name"])
    }

    fn in_flight_ports(&mut self, peer: &str) -> Vec<u16> {
        self.request
            .map(|r| r.in_flight_ports(peer))
            .unwrap_or_default()
    }

    fn is_connect(&mut self) -> bool {
        read_string(&["request", "method"]).as_deref() == Some("CONNECT")
    }

    /// A connection the table does not hold is new once the table is
    /// older than the longest a connection pooled before it could have sat
    /// idle (`judge::opened_since`).
    fn opened(&mut self) -> bool {
        // The failures-only logger never sees a connection's healthy
        // requests: it cannot know one is new.
        if self.request.is_none() {
            return false;
        }
        let shared = self.shared;
        judge::opened_since(shared.born_ns, now_ns(), shared.config.unknown_history_ms)
    }

    fn grpc_status(&mut self) -> Option<i64> {
        response_map_value(MapType::HttpResponseTrailers, "grpc-status")
            .or_else(|| response_map_value(MapType::HttpResponseHeaders, "grpc-status"))
            .and_then(|s| s.trim().parse().ok())
    }
}

impl Request {
    /// Reads the request's attributes and judges it (`judge::judge`, the
    /// path `connlab diagnose` takes too).
    fn judge(&self, precise: bool, bookkeeping: Bookkeeping) -> (Attributes, Judged) {
        let attributes = Attributes::read(&self.shared, precise);
        let judged = judge::judge(
            &mut self.shared.table.borrow_mut(),
            &attributes.outcome(),
            &mut Host {
                shared: &self.shared,
                request: Some(self),
            },
            &self.shared.config,
            bookkeeping,
        );
        (attributes, judged)
    }
}

/// The failures-only access logger (`connlab_log`): Envoy's access-log
/// filter in front of it (`response.flags != 0 ||
/// upstream.request_attempt_count != 1u`, what `Outcome::looks_healthy`
/// says no to) lets only failed or retried requests into the VM, so a
/// healthy request costs no VM entry at all. It judges each by the same
/// rules with no connection history: its reuse table is only peeked at
/// and stays empty, so `nth` and the idle time are unknown and a reset on
/// a reused connection is at most `likely` a keep-alive race, as in a log
/// without the connection's earlier lines. No response header, no filter
/// state (a logger runs after the response), no pinned-port evidence.
pub(crate) fn log_failure(shared: &Shared) {
    let attributes = Attributes::read(shared, true);
    let judged = judge::judge(
        &mut shared.table.borrow_mut(),
        &attributes.outcome(),
        &mut Host {
            shared,
            request: None,
        },
        &shared.config,
        Bookkeeping::Peek,
    );
    report(shared, attributes, judged, false);
}

/// Counts a judged request and logs its event (every one with
/// `"events":"all"`, otherwise the diagnosed ones).
fn report(shared: &Shared, attributes: Attributes, judged: Judged, filter_state: bool) {
    let log_all = shared.config.events == Events::All;
    let code = judged.code();
    let upstream = judged.upstream(attributes.local, attributes.peer);
    shared.metrics.request(code, upstream.nth, upstream.idle_ms);
    if let (Some(code), true) = (code, filter_state) {
        set_diagnosis_state(code);
    }
    if code.is_none() && !log_all {
        return;
    }
    // A healthy request's reasons are read only to be logged.
    let reasons = judged.reasons.unwrap_or_else(read_reasons);
    shared.log_event(|| {
        HttpEvent {
            conn: read_uint(&["connection", "id"]),
            upstream,
            attempts: attributes.attempts,
            code: reasons.code,
            flags: flags::short_names(attributes.flags),
            details: reasons.details,
            failure: reasons.failure,
            diagnosis: code,
            confidence: judged.diagnosis.as_ref().map(|d| d.confidence),
            explain: judged.diagnosis.map(|d| d.explain),
        }
        .to_json()
    });
}

impl Request {
    /// The local ports of the upstream connections to `peer` that other
    /// requests on this worker hold right now: their attributes, read as
    /// their contexts (`set_effective_context`). A connection still in
    /// flight is not in the reuse table yet, and it is exactly the one a
    /// pinned port collides with when two requests overlap.
    fn in_flight_ports(&self, peer: &str) -> Vec<u16> {
        let others: Vec<u32> = self
            .shared
            .in_flight
            .borrow()
            .iter()
            .copied()
            .filter(|id| *id != self.id)
            .take(MAX_IN_FLIGHT_LOOKS)
            .collect();
        let mut ports = Vec::new();
        for id in others {
            if hostcalls::set_effective_context(id).is_err() {
                continue;
            }
            if read_string(&["upstream", "address"]).as_deref() != Some(peer) {
                continue;
            }
            if let Some(port) = read_string(&["upstream", "local_address"]).and_then(|a| port(&a)) {
                ports.push(port);
            }
        }
        // Back to this request's own attributes.
        let _ = hostcalls::set_effective_context(self.id);
        ports
    }
}

impl Context for Request {}

impl HttpContext for Request {
    fn on_http_response_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        let Some(header) = &self.shared.config.response_header else {
            return Action::Continue;
        };
        if let (
            _,
            Judged {
                diagnosis: Some(d), ..
            },
        ) = self.judge(true, Bookkeeping::Peek)
        {
            // Not the SDK's set_http_response_header(): it unwraps.
            let _ = hostcalls::set_map_value(MapType::HttpResponseHeaders, header, Some(d.code));
        }
        Action::Continue
    }

    fn on_log(&mut self) {
        let log_all = self.shared.config.events == Events::All;
        let (attributes, judged) = self.judge(log_all, Bookkeeping::Record);
        report(&self.shared, attributes, judged, true);
    }
}
