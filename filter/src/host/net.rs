//! The network filter (`connlab_net`): one context per downstream
//! connection, which classifies the first bytes and reports how the
//! connection ended.

use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, StreamContext};
use proxy_wasm::types::{Action, BufferType, PeerType};

use super::{now_ns, read_string, read_uint, Shared};
use crate::config::Events;
use crate::diagnose::{self, ConnFacts};
use crate::event::ConnEvent;
use crate::sniff::{self, Class, Verdict, MAX_SNIFF_BYTES};

pub(crate) struct Connection {
    shared: Rc<Shared>,
    accepted_ns: u64,
    first_byte_ns: Option<u64>,
    buffer: Vec<u8>,
    class: Option<Class>,
    reported: bool,
}

impl Connection {
    pub fn new(shared: Rc<Shared>) -> Self {
        Connection {
            shared,
            accepted_ns: 0,
            first_byte_ns: None,
            buffer: Vec::new(),
            class: None,
            reported: false,
        }
    }

    fn report(&mut self) {
        if self.reported {
            return;
        }
        self.reported = true;
        let class = match self.class.take() {
            Some(class) => class,
            None => match sniff::classify(&self.buffer, true) {
                Verdict::Decided(class) => class,
                Verdict::NeedMore => Class::Other,
            },
        };
        self.buffer = Vec::new();
        let first_byte_ms = self
            .first_byte_ns
            .map(|t| t.saturating_sub(self.accepted_ns) / 1_000_000);
        let chain = read_string(&["xds", "filter_chain_name"]);
        let tls_failure = read_string(&["connection", "transport_failure_reason"]);
        let facts = ConnFacts {
            first_byte_ms,
            class: &class,
            chain: chain.as_deref(),
            tls_failure: tls_failure.as_deref(),
        };
        let diagnosis = diagnose::conn(&facts, &self.shared.config);
        let code = diagnosis.as_ref().map(|d| d.code);
        self.shared.metrics.connection(class.name(), code);
        if code.is_none() && self.shared.config.events != Events::All {
            return;
        }
        let (sni, alpn, method) = match &class {
            Class::Tls(hello) => (hello.sni.clone(), hello.alpn.clone(), None),
            Class::Http1 { method } => (None, Vec::new(), Some(method.clone())),
            _ => (None, Vec::new(), None),
        };
        self.shared.log_event(|| {
            ConnEvent {
                conn: read_uint(&["connection", "id"]),
                first_byte_ms,
                class: class.name(),
                sni,
                alpn,
                method,
                chain,
                tls_failure,
                diagnosis: code,
                explain: diagnosis.map(|d| d.explain),
            }
            .to_json()
        });
    }
}

impl Context for Connection {}

impl StreamContext for Connection {
    fn on_new_connection(&mut self) -> Action {
        // The connection's start (accept) time, before any listener filter
        // waited for bytes; the filter's own clock when unavailable.
        self.accepted_ns = read_uint(&["request", "time"]).unwrap_or_else(now_ns);
        Action::Continue
    }

    fn on_downstream_data(&mut self, data_size: usize, end_of_stream: bool) -> Action {
        if self.class.is_some() || self.reported {
            return Action::Continue;
        }
        if data_size > 0 && self.first_byte_ns.is_none() {
            self.first_byte_ns = Some(now_ns());
        }
        let room = MAX_SNIFF_BYTES.saturating_sub(self.buffer.len());
        // Not the SDK's get_downstream_data(): it unwraps the host's answer.
        let bytes = hostcalls::get_buffer(BufferType::DownstreamData, 0, data_size.min(room));
        if let Ok(Some(bytes)) = bytes {
            self.buffer
                .extend_from_slice(&bytes[..bytes.len().min(room)]);
        }
        if let Verdict::Decided(class) = sniff::classify(&self.buffer, end_of_stream) {
            self.class = Some(class);
            self.buffer = Vec::new();
        }
        Action::Continue
    }

    fn on_downstream_close(&mut self, _peer: PeerType) {
        self.report();
    }

    fn on_log(&mut self) {
        self.report();
    }
}
