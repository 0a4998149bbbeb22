//! The proxy-wasm host adapter: the only code that calls Envoy. It reads
//! attributes, hands them to the pure modules (config, judge, reuse, sniff,
//! diagnose, event) and logs, counts and stores what they return.
//!
//! One module, five plugin `root_id`s: `connlab_http` (HTTP filter),
//! `connlab_net` (network filter), `connlab_log` (a wasm access logger that
//! only failed requests reach: `http::log_failure`) and `connlab_noop` /
//! `connlab_noop_net`
//! (HTTP / network filters that do nothing: the floor
//! every proxy-wasm filter costs, for measuring connlab's own share in your
//! Envoy).

mod http;
mod metrics;
mod net;

use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext, StreamContext};
use proxy_wasm::types::{BufferType, ContextType, LogLevel};

use crate::config::{self, Config};
use crate::event::SuppressedEvent;
use crate::property;
use crate::ratelimit::EventLimiter;
use crate::reuse::{KeyBuild, ReuseTable};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

/// How often counters summed in the VM are handed to Envoy.
const FLUSH_PERIOD: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Kind {
    #[default]
    Http,
    Net,
    /// The failures-only access logger (`connlab_log`).
    Log,
    Noop,
    /// The empty network filter (`connlab_noop_net`).
    NoopNet,
}

impl Kind {
    fn is_noop(self) -> bool {
        matches!(self, Kind::Noop | Kind::NoopNet)
    }
}

/// What every request or connection context of one plugin shares.
pub(crate) struct Shared {
    pub config: Config,
    pub table: RefCell<ReuseTable>,
    pub metrics: metrics::Metrics,
    pub limiter: RefCell<EventLimiter>,
    /// Evictions already handed to the metric.
    evictions_counted: std::cell::Cell<u64>,
    /// This VM has had a request or connection: a worker's VM, not the
    /// main thread's (which Envoy also runs the plugin in, never with
    /// traffic). Only a worker's VM reports its sizes.
    served: std::cell::Cell<bool>,
    /// Envoy's token for [`OUTCOME_EXPRESSION`] (HTTP filter only), or
    /// `None` when this Envoy cannot compile it: then each attribute is read
    /// on its own.
    pub outcome_expression: Option<u32>,
    /// The HTTP contexts alive on this worker (requests in flight): where
    /// a failed connect looks for the connections other requests hold now.
    pub in_flight: RefCell<HashSet<u32, KeyBuild>>,
    /// When this configuration (and its reuse table) began.
    pub born_ns: u64,
}

impl Shared {
    /// Logs an event unless the rate limit holds it back (then counted).
    pub fn log_event(&self, json: impl FnOnce() -> String) {
        if self.limiter.borrow_mut().allow(now_ns()) {
            log_info(&json());
        }
    }
}

#[derive(Default)]
struct Root {
    kind: Kind,
    shared: Option<Rc<Shared>>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let root_id = read_string(&["plugin_root_id"]).unwrap_or_default();
        self.kind = match root_id.as_str() {
            "connlab_http" | "" => Kind::Http,
            "connlab_net" => Kind::Net,
            "connlab_log" => Kind::Log,
            "connlab_noop" => Kind::Noop,
            "connlab_noop_net" => Kind::NoopNet,
            other => {
                log_error(&format!(
                    "connlab: unknown root_id `{other}`: use connlab_http, connlab_net, connlab_log, connlab_noop or connlab_noop_net"
                ));
                return false;
            }
        };
        // Not the SDK's get_plugin_configuration(): it unwraps the host's
        // answer, and a refusal must not abort the VM.
        let bytes = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX)
            .ok()
            .flatten()
            .unwrap_or_default();
        let config = match config::parse(&bytes) {
            Ok(config) => config,
            Err(e) => {
                log_error(&e.to_string());
                return false;
            }
        };
        let table = RefCell::new(ReuseTable::new(config.reuse_table_cap));
        let limiter = RefCell::new(EventLimiter::new(config.events_per_second));
        let metrics = if self.kind.is_noop() {
            metrics::Metrics::default()
        } else {
            metrics::Metrics::define()
        };
        let outcome_expression = match self.kind {
            Kind::Http | Kind::Log => create_expression(OUTCOME_EXPRESSION),
            _ => None,
        };
        self.shared = Some(Rc::new(Shared {
            outcome_expression,
            config,
            table,
            metrics,
            limiter,
            evictions_counted: std::cell::Cell::new(0),
            served: std::cell::Cell::new(false),
            in_flight: RefCell::new(HashSet::default()),
            born_ns: now_ns(),
        }));
        if !self.kind.is_noop() && hostcalls::set_tick_period(FLUSH_PERIOD).is_err() {
            // Without a tick the metrics are never handed over; events still
            // work. Not a reason to refuse the filter.
            log_error("connlab: the host refused a tick period: metrics will not be flushed");
        }
        true
    }

    fn on_tick(&mut self) {
        let Some(shared) = &self.shared else { return };
        let evictions = shared.table.borrow().evictions();
        if shared.served.get() {
            let http = self.kind == Kind::Http;
            shared
                .metrics
                .sizes(http.then(|| shared.table.borrow().len()));
        }
        let new = evictions.saturating_sub(shared.evictions_counted.replace(evictions));
        shared.metrics.evictions(new);
        let suppressed = shared.limiter.borrow_mut().take_suppressed();
        shared.metrics.suppressed(suppressed);
        if suppressed > 0 {
            let event = SuppressedEvent {
                plugin: match self.kind {
                    Kind::Net => "connlab_net",
                    Kind::Log => "connlab_log",
                    _ => "connlab_http",
                },
                suppressed,
                limit_per_second: shared.config.events_per_second,
            };
            log_info(&event.to_json());
        }
        shared.metrics.flush();
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(match self.kind {
            Kind::Net | Kind::NoopNet => ContextType::StreamContext,
            Kind::Http | Kind::Log | Kind::Noop => ContextType::HttpContext,
        })
    }

    /// As an access logger (`connlab_log`), Envoy calls this on the root
    /// context for each request its access-log filter lets through.
    fn on_log(&mut self) {
        if let (Some(shared), Kind::Log) = (&self.shared, self.kind) {
            shared.served.set(true);
            http::log_failure(shared);
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        // The SDK aborts the VM on None, so always return a context.
        match (&self.shared, self.kind) {
            (Some(shared), Kind::Http) => {
                shared.served.set(true);
                Some(Box::new(http::Request::new(Rc::clone(shared), context_id)))
            }
            _ => Some(Box::new(Noop)),
        }
    }

    fn create_stream_context(&self, _context_id: u32) -> Option<Box<dyn StreamContext>> {
        match (&self.shared, self.kind) {
            (Some(shared), Kind::Net) => {
                shared.served.set(true);
                Some(Box::new(net::Connection::new(Rc::clone(shared))))
            }
            _ => Some(Box::new(Noop)),
        }
    }
}

/// The `connlab_noop` filter, and the fallback that keeps the VM alive.
struct Noop;
impl Context for Noop {}
impl HttpContext for Noop {}
impl StreamContext for Noop {}

/// What every request needs to know, as one CEL expression Envoy compiles
/// once per VM and evaluates per request (its `expr_create` and
/// `expr_evaluate` foreign functions): one host call and one copy into the
/// VM instead of four property reads. Measured with `BENCH_CALLGRIND=1
/// make bench-filter`: a property read costs Envoy about 12,500
/// instructions, this expression about 30,000 for all four. It fails
/// (and the attributes are read one by one) when one of them is absent: a
/// request that never reached an upstream.
pub(crate) const OUTCOME_EXPRESSION: &str =
    "[response.flags, upstream.request_attempt_count, upstream.local_address, upstream.address]";

/// Compiles a CEL expression in Envoy; its token, or `None` (logged once)
/// when this Envoy has no expression support or refuses it.
fn create_expression(text: &str) -> Option<u32> {
    let token = hostcalls::call_foreign_function("expr_create", Some(text.as_bytes()))
        .ok()
        .flatten()
        .and_then(|b| <[u8; 4]>::try_from(b.as_slice()).ok())
        .map(u32::from_le_bytes);
    if token.is_none() {
        let _ = hostcalls::log(
            LogLevel::Warn,
            "connlab: this Envoy cannot compile a CEL expression (expr_create): reading each \
             attribute on its own, which costs more per request",
        );
    }
    token
}

/// Evaluates a compiled expression for the current request.
pub(crate) fn evaluate(token: u32) -> Option<Vec<u8>> {
    hostcalls::call_foreign_function("expr_evaluate", Some(&token.to_le_bytes()))
        .ok()
        .flatten()
}

/// A property's bytes; `None` when it is absent or the host refused.
pub(crate) fn read(path: &[&str]) -> Option<Vec<u8>> {
    hostcalls::get_property(path.to_vec()).ok().flatten()
}

pub(crate) fn read_string(path: &[&str]) -> Option<String> {
    read(path).and_then(property::string_owned)
}

pub(crate) fn read_uint(path: &[&str]) -> Option<u64> {
    read(path).and_then(|b| property::uint(&b))
}

pub(crate) fn read_int(path: &[&str]) -> Option<i64> {
    read(path).and_then(|b| property::int(&b))
}

thread_local! {
    /// Attributes already reported missing (each is reported once per VM).
    static MISSING: RefCell<Vec<&'static str>> = const { RefCell::new(Vec::new()) };
}

/// Says once per VM that an attribute every request has is missing in this
/// Envoy: the fields that depend on it are null, and no rule fires on them.
pub(crate) fn report_missing(attribute: &'static str) {
    let first = MISSING.with(|seen| {
        let mut seen = seen.borrow_mut();
        let first = !seen.contains(&attribute);
        if first {
            seen.push(attribute);
        }
        first
    });
    if first {
        let _ = hostcalls::log(
            LogLevel::Warn,
            &format!(
                "connlab: attribute `{attribute}` is not available in this Envoy: the fields \
                 that need it are null and no diagnosis is made from it"
            ),
        );
    }
}

/// The host's clock, ns since the epoch (0 if unavailable).
pub(crate) fn now_ns() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

pub(crate) fn log_info(message: &str) {
    // A failed log call has nowhere better to be reported; ignore it.
    let _ = hostcalls::log(LogLevel::Info, message);
}

fn log_error(message: &str) {
    let _ = hostcalls::log(LogLevel::Error, message);
}

/// Stores the diagnosis as filter state, `%FILTER_STATE(wasm.connlab.diagnosis:PLAIN)%`.
pub(crate) fn set_diagnosis_state(code: &str) {
    let _ = hostcalls::set_property(vec!["connlab.diagnosis"], Some(code.as_bytes()));
}
