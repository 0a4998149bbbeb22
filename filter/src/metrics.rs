//! Metric names (Prometheus-friendly: `[a-z0-9_]`, counters end in
//! `_total`). Envoy exports them under its `wasmcustom` stats scope, so in
//! Prometheus they appear as `envoy_wasmcustom_<name>`.

use crate::diagnose::{CONN_CODES, HTTP_CODES};

pub const HTTP_REQUESTS: &str = "connlab_http_requests_total";
/// Requests per upstream connection position (1 = fresh connection).
pub const UPSTREAM_NTH: &str = "connlab_upstream_request_nth";
/// Idle time before a request on a reused upstream connection, in ms.
pub const UPSTREAM_IDLE_MS: &str = "connlab_upstream_idle_ms";
pub const NET_CONNECTIONS: &str = "connlab_net_connections_total";

pub fn http_diagnosis(code: &str) -> String {
    format!("connlab_http_diagnosis_{code}_total")
}

pub fn net_diagnosis(code: &str) -> String {
    format!("connlab_net_diagnosis_{code}_total")
}

pub fn net_class(class: &str) -> String {
    format!("connlab_net_class_{class}_total")
}

pub const CLASSES: [&str; 5] = ["tls", "http1", "http2", "other", "none"];

/// Every counter name, for defining them all up front in `on_configure`.
pub fn all_counters() -> Vec<String> {
    let mut names = vec![HTTP_REQUESTS.to_string(), NET_CONNECTIONS.to_string()];
    names.extend(HTTP_CODES.iter().map(|c| http_diagnosis(c)));
    names.extend(CONN_CODES.iter().map(|c| net_diagnosis(c)));
    names.extend(CLASSES.iter().map(|c| net_class(c)));
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_prometheus_friendly_and_unique() {
        let mut names = all_counters();
        names.push(UPSTREAM_NTH.into());
        names.push(UPSTREAM_IDLE_MS.into());
        for name in &names {
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{name}"
            );
        }
        let count = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), count);
    }
}
