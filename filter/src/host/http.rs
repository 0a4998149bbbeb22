//! The HTTP filter (`connlab_http`): one context per request, which reads
//! the request's upstream outcome when it ends.

use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, MapType};

use super::{
    evaluate, now_ns, read_int, read_string, read_uint, report_missing, set_diagnosis_state, Shared,
};
use crate::config::Events;
use crate::diagnose::{self, Diagnosis, HttpFacts};
use crate::event::{HttpEvent, Upstream};
use crate::flags::{self, UC, UF, UH, UO, UR};
use crate::property;
use crate::reuse::{port, Reuse};

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

/// The attributes every request reads; the rest only when needed.
struct Outcome {
    local: Option<String>,
    peer: Option<String>,
    /// When the request started; read only when it matters (see `read`).
    start_ns: Option<u64>,
    end_ns: u64,
    flags: u64,
    attempts: Option<u64>,
}

impl Outcome {
    /// Reads the outcome. The request's start time is read only when it
    /// matters (`precise`, or a request that does not look healthy): for a
    /// healthy request in `failures` mode the reuse table needs only when it
    /// ended, and each property read costs the worker about a microsecond.
    fn read(shared: &Shared, precise: bool) -> Self {
        let end_ns = now_ns();
        let mut outcome = shared
            .outcome_expression
            .and_then(|token| Outcome::evaluated(token, end_ns))
            .unwrap_or_else(|| Outcome::read_each(end_ns, precise));
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
        Some(Outcome {
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
        let mut outcome = Outcome {
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

    /// Nothing went wrong at the proxy level: no flags, one attempt.
    fn looks_healthy(&self) -> bool {
        self.flags == 0 && self.attempts.unwrap_or(1) <= 1
    }

    fn start_ns(&self) -> u64 {
        self.start_ns.unwrap_or(self.end_ns)
    }

    fn reuse(&self, shared: &Shared, record: bool) -> Reuse {
        let Some(local) = &self.local else {
            return Reuse::default();
        };
        let peer = self.peer.as_deref().unwrap_or_default();
        if record {
            shared
                .table
                .borrow_mut()
                .record(local, peer, self.start_ns(), self.end_ns)
        } else {
            shared
                .table
                .borrow()
                .peek(local, peer, self.start_ns(), self.end_ns)
        }
    }
}

/// What Envoy says about a request beyond its outcome; read only for
/// requests that are logged or diagnosed.
struct Reasons {
    code: Option<i64>,
    details: Option<String>,
    failure: Option<String>,
}

impl Reasons {
    fn read() -> Self {
        Reasons {
            code: read_int(&["response", "code"]),
            details: read_string(&["response", "code_details"]),
            failure: read_string(&["upstream", "transport_failure_reason"]),
        }
    }
}

/// A response header or trailer, or `None`; never the SDK's unwrapping
/// getters (a host may refuse a map outside its phase).
fn response_map_value(map: MapType, name: &str) -> Option<String> {
    hostcalls::get_map_value(map, name).ok().flatten()
}

/// A `101` or a `CONNECT` answered 2xx; the method is read only for a
/// 2xx that ended in a reset (the only case the rules ask about).
fn is_tunnel(code: Option<i64>, flags: u64) -> bool {
    match code {
        Some(101) => true,
        Some(200..=299) if flags & (UC | UR) != 0 => {
            read_string(&["request", "method"]).as_deref() == Some("CONNECT")
        }
        _ => false,
    }
}

fn grpc_status() -> Option<i64> {
    response_map_value(MapType::HttpResponseTrailers, "grpc-status")
        .or_else(|| response_map_value(MapType::HttpResponseHeaders, "grpc-status"))
        .and_then(|s| s.trim().parse().ok())
}

impl Request {
    /// The outcome's reasons (when it needs them) and diagnosis.
    fn diagnose(&self, outcome: &Outcome, reuse: Reuse) -> (Option<Reasons>, Option<Diagnosis>) {
        let log_all = self.shared.config.events == Events::All;
        if outcome.looks_healthy() {
            return (log_all.then(Reasons::read), None);
        }
        let reasons = Reasons::read();
        let cluster = (outcome.flags & (UO | UH) != 0)
            .then(|| read_string(&["xds", "cluster_name"]))
            .flatten();
        let pinned_port = match &outcome.peer {
            Some(peer)
                if outcome.flags & UF != 0
                    && diagnose::is_eaddrnotavail(reasons.failure.as_deref()) =>
            {
                let in_flight = self.in_flight_ports(peer);
                self.shared.table.borrow().pinned_port(peer, &in_flight)
            }
            _ => None,
        };
        let retried = outcome.attempts.unwrap_or(1) > 1;
        let facts = HttpFacts {
            code: reasons.code,
            flags: outcome.flags,
            details: reasons.details.as_deref(),
            failure: reasons.failure.as_deref(),
            attempts: outcome.attempts,
            reuse,
            elapsed_ms: outcome
                .start_ns
                .map(|start| outcome.end_ns.saturating_sub(start) / 1_000_000),
            cluster: cluster.as_deref(),
            pinned_port,
            grpc_status: if retried { grpc_status() } else { None },
            tunnel: is_tunnel(reasons.code, outcome.flags),
        };
        let diagnosis = diagnose::http(&facts, &self.shared.config);
        (Some(reasons), diagnosis)
    }
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
        let outcome = Outcome::read(&self.shared, true);
        let reuse = outcome.reuse(&self.shared, false);
        if let (_, Some(d)) = self.diagnose(&outcome, reuse) {
            // Not the SDK's set_http_response_header(): it unwraps.
            let _ = hostcalls::set_map_value(MapType::HttpResponseHeaders, header, Some(d.code));
        }
        Action::Continue
    }

    fn on_log(&mut self) {
        let outcome = Outcome::read(&self.shared, self.shared.config.events == Events::All);
        // A request whose connect failed never had a connection to count.
        let connected = outcome.flags & UF == 0;
        let reuse = if connected {
            outcome.reuse(&self.shared, true)
        } else {
            Reuse::default()
        };
        let (reasons, diagnosis) = self.diagnose(&outcome, reuse);
        let code = diagnosis.as_ref().map(|d| d.code);
        if let (Some(local), Some("keepalive_race" | "upstream_reset")) = (&outcome.local, code) {
            // That connection is gone; a new one may get the same port.
            let peer = outcome.peer.as_deref().unwrap_or_default();
            self.shared.table.borrow_mut().forget(local, peer);
        }
        let (nth, idle_ms) = match reuse.nth {
            0 => (None, None),
            _ if reuse.forgotten => (None, reuse.idle_ms),
            nth => (Some(nth), reuse.idle_ms),
        };
        self.shared.metrics.request(code, nth, idle_ms);
        if let Some(code) = code {
            set_diagnosis_state(code);
        }
        let Some(reasons) = reasons else { return };
        if code.is_none() && self.shared.config.events != Events::All {
            return;
        }
        self.shared.log_event(|| {
            HttpEvent {
                conn: read_uint(&["connection", "id"]),
                upstream: Upstream {
                    local: outcome.local,
                    peer: outcome.peer,
                    nth,
                    idle_ms,
                    age_ms: (reuse.nth > 0).then_some(reuse.age_ms),
                    forgotten: reuse.forgotten,
                },
                attempts: outcome.attempts,
                code: reasons.code,
                flags: flags::short_names(outcome.flags),
                details: reasons.details,
                failure: reasons.failure,
                diagnosis: code,
                explain: diagnosis.map(|d| d.explain),
            }
            .to_json()
        });
    }
}
