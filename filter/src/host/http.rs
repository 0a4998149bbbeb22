//! The HTTP filter (`connlab_http`): one context per request, which reads
//! the request's upstream outcome when it ends.

use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;

use super::{log_info, now_ns, read_int, read_string, read_uint, set_diagnosis_state, Shared};
use crate::config::Events;
use crate::diagnose::{self, Diagnosis, HttpFacts};
use crate::event::{HttpEvent, Upstream};
use crate::flags::{self, UF};
use crate::reuse::Reuse;

pub(crate) struct Request {
    shared: Rc<Shared>,
}

impl Request {
    pub fn new(shared: Rc<Shared>) -> Self {
        Request { shared }
    }
}

/// The attributes every request reads; the rest only when needed.
struct Outcome {
    local: Option<String>,
    start_ns: u64,
    end_ns: u64,
    flags: u64,
    attempts: Option<u64>,
}

impl Outcome {
    /// Reads the outcome. The request's start time is read only when it
    /// matters (`precise`, or a request that does not look healthy): for a
    /// healthy request in `failures` mode the reuse table needs only when it
    /// ended, and each property read costs the worker about a microsecond.
    fn read(precise: bool) -> Self {
        let end_ns = now_ns();
        let mut outcome = Outcome {
            local: read_string(&["upstream", "local_address"]),
            start_ns: end_ns,
            end_ns,
            flags: read_uint(&["response", "flags"]).unwrap_or(0),
            attempts: read_uint(&["upstream", "request_attempt_count"]),
        };
        if precise || !outcome.looks_healthy() {
            outcome.start_ns = read_uint(&["request", "time"]).unwrap_or(end_ns);
        }
        outcome
    }

    /// Nothing went wrong at the proxy level: no flags, one attempt.
    fn looks_healthy(&self) -> bool {
        self.flags == 0 && self.attempts.unwrap_or(1) <= 1
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

impl Request {
    /// The outcome's reasons (when it needs them) and diagnosis.
    fn diagnose(&self, outcome: &Outcome, reuse: Reuse) -> (Option<Reasons>, Option<Diagnosis>) {
        let log_all = self.shared.config.events == Events::All;
        if outcome.looks_healthy() {
            return (log_all.then(Reasons::read), None);
        }
        let reasons = Reasons::read();
        let facts = HttpFacts {
            code: reasons.code,
            flags: outcome.flags,
            details: reasons.details.as_deref(),
            failure: reasons.failure.as_deref(),
            attempts: outcome.attempts,
            reuse,
        };
        let diagnosis = diagnose::http(&facts, &self.shared.config);
        (Some(reasons), diagnosis)
    }
}

impl Context for Request {}

impl HttpContext for Request {
    fn on_http_response_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        let Some(header) = &self.shared.config.response_header else {
            return Action::Continue;
        };
        let outcome = Outcome::read(true);
        let reuse = match &outcome.local {
            Some(local) => self
                .shared
                .table
                .borrow()
                .peek(local, outcome.start_ns, outcome.end_ns),
            None => Reuse::default(),
        };
        if let (_, Some(d)) = self.diagnose(&outcome, reuse) {
            self.set_http_response_header(header, Some(d.code));
        }
        Action::Continue
    }

    fn on_log(&mut self) {
        let outcome = Outcome::read(self.shared.config.events == Events::All);
        // A request whose connect failed never had a connection to count.
        let connected = outcome.flags & UF == 0;
        let reuse = match &outcome.local {
            Some(local) if connected => {
                self.shared
                    .table
                    .borrow_mut()
                    .record(local, outcome.start_ns, outcome.end_ns)
            }
            _ => Reuse::default(),
        };
        let (reasons, diagnosis) = self.diagnose(&outcome, reuse);
        let code = diagnosis.as_ref().map(|d| d.code);
        if let (Some(local), Some("keepalive_race" | "upstream_reset")) = (&outcome.local, code) {
            // That connection is gone; a new one may get the same port.
            self.shared.table.borrow_mut().forget(local);
        }
        let (nth, idle_ms) = match reuse.nth {
            0 => (None, None),
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
        let event = HttpEvent {
            conn: read_uint(&["connection", "id"]),
            upstream: Upstream {
                local: outcome.local,
                peer: read_string(&["upstream", "address"]),
                nth,
                idle_ms,
                age_ms: nth.map(|_| reuse.age_ms),
            },
            attempts: outcome.attempts,
            code: reasons.code,
            flags: flags::short_names(outcome.flags),
            details: reasons.details,
            failure: reasons.failure,
            diagnosis: code,
            explain: diagnosis.map(|d| d.explain),
        };
        log_info(&event.to_json());
    }
}
