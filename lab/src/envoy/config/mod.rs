//! The one Envoy config builder: bootstrap blocks as JSON values (which
//! Envoy reads as YAML). The lab's scenario model compiles down to these
//! functions, and the filter tests and the benchmark call them directly and
//! adjust the values in place (`route["route"]["timeout"] = json!("0.3s")`).
//! One function per Envoy block; each returns the block and nothing else.
//!
//! Blocks, not shapes: a shape (the plain lab Envoy, `roles::envoy::bootstrap`;
//! Istio's sidecar, `envoy::istio::sidecar`) composes these blocks, so a second
//! shape sits beside the first without a branch in any block. One file per
//! part of a bootstrap: `listeners`, `clusters`, `filters` (HTTP and network,
//! routes), `tls`, `access_log`, `bootstrap`. Uses only `evidence` (the
//! access-log format the checker parses back).

mod access_log;
mod bootstrap;
mod clusters;
mod filters;
mod listeners;
mod tls;

pub use access_log::*;
pub use bootstrap::*;
pub use clusters::*;
pub use filters::*;
pub use listeners::*;
pub use tls::*;

use std::net::SocketAddr;

use serde_json::{json, Value};

/// `{"socket_address": ...}` for `addr`.
pub fn address(addr: SocketAddr) -> Value {
    json!({"socket_address": {"address": addr.ip().to_string(), "port_value": addr.port()}})
}

/// Loopback, port picked by the kernel (tests read it back from the admin).
pub fn loopback_any() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// An Envoy duration (`"1.5s"`) from milliseconds.
pub fn duration_ms(ms: u64) -> Value {
    json!(format!("{}s", ms as f64 / 1000.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_envoy_seconds() {
        assert_eq!(duration_ms(4000), json!("4s"));
        assert_eq!(duration_ms(1500), json!("1.5s"));
    }
}
