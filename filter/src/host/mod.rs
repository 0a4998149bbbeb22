//! The one file that talks to the proxy-wasm host. It reads Envoy
//! attributes, hands them to the pure modules and logs what they return.

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{ContextType, LogLevel};

use crate::event::{HttpEvent, Upstream};
use crate::{flags, property};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root) });
}}

struct Root;

impl Context for Root {}

impl RootContext for Root {
    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Request))
    }
}

struct Request;

impl Context for Request {}

impl HttpContext for Request {
    fn on_log(&mut self) {
        let event = HttpEvent {
            conn: read(&["connection", "id"]).and_then(|b| property::uint(&b)),
            upstream: Upstream {
                local: read(&["upstream", "local_address"]).and_then(|b| property::string(&b)),
                peer: read(&["upstream", "address"]).and_then(|b| property::string(&b)),
            },
            code: read(&["response", "code"]).and_then(|b| property::int(&b)),
            flags: read(&["response", "flags"])
                .and_then(|b| property::uint(&b))
                .map(flags::short_names)
                .unwrap_or_default(),
        };
        // A failed log call has nowhere better to be reported; ignore it.
        let _ = hostcalls::log(LogLevel::Info, &event.to_json());
    }
}

/// A property's bytes; `None` when it is absent or the host refused.
fn read(path: &[&str]) -> Option<Vec<u8>> {
    hostcalls::get_property(path.to_vec()).ok().flatten()
}
