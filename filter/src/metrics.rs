//! Metric names (Prometheus-friendly: `[a-z0-9_]`, counters end in
//! `_total`). Envoy keeps them under its `wasmcustom.` stats scope in
//! `/stats` and drops that scope in `/stats/prometheus`, where they appear
//! exactly as named here.

use crate::diagnose::{CONN_CODES, HTTP_CODES};

pub const HTTP_REQUESTS: &str = "connlab_http_requests_total";
pub const NET_CONNECTIONS: &str = "connlab_net_connections_total";
/// Connections the reuse table evicted because it was full.
pub const REUSE_EVICTIONS: &str = "connlab_reuse_evictions_total";
/// Events the rate limit held back (`events_per_second`).
pub const EVENTS_SUPPRESSED: &str = "connlab_events_suppressed_total";
/// Gauge: connections the reuse table holds now (at most `reuse_table_cap`).
pub const REUSE_TABLE_ENTRIES: &str = "connlab_reuse_table_entries";
/// Gauge: the wasm VM's linear memory (`memory.size`), in bytes. Both
/// gauges are set once a second by each worker's VM (the main thread's VM
/// carries no traffic and does not report): with several workers they
/// show the last one to report.
pub const WASM_MEMORY_BYTES: &str = "connlab_wasm_memory_bytes";

/// A histogram kept as Prometheus-style cumulative bucket counters
/// (`<name>_bucket_le_<bound>`, `..._le_inf`, `<name>_sum`): counted in the
/// VM and flushed once a second, where an Envoy histogram would cost a host
/// call per request (measured: about 1.3 µs of worker CPU each).
#[derive(Debug, Clone, Copy)]
pub struct Histogram {
    pub name: &'static str,
    pub bounds: &'static [u64],
}

/// Position of a request on its upstream connection (1 = fresh connection).
pub const UPSTREAM_NTH: Histogram = Histogram {
    name: "connlab_upstream_nth",
    bounds: &[1, 2, 5, 10, 100, 1000],
};

/// Idle time before a request on a reused upstream connection, in ms; the
/// bounds bracket the known servers' keep-alive timeouts.
pub const UPSTREAM_IDLE_MS: Histogram = Histogram {
    name: "connlab_upstream_idle_ms",
    bounds: &[
        100, 1000, 4000, 5000, 6000, 10000, 15000, 20000, 30000, 60000,
    ],
};

impl Histogram {
    /// The bucket counter names, smallest bound first, then `le_inf`.
    pub fn bucket_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .bounds
            .iter()
            .map(|b| format!("{}_bucket_le_{b}", self.name))
            .collect();
        names.push(format!("{}_bucket_le_inf", self.name));
        names
    }

    pub fn sum_name(&self) -> String {
        format!("{}_sum", self.name)
    }

    /// The first bucket `value` falls in (`bounds.len()` = +Inf); a flush
    /// adds it to that bucket and every larger one.
    pub fn bucket(&self, value: u64) -> usize {
        self.bounds.partition_point(|b| *b < value)
    }
}

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
    let mut names = vec![
        HTTP_REQUESTS.to_string(),
        NET_CONNECTIONS.to_string(),
        REUSE_EVICTIONS.to_string(),
        EVENTS_SUPPRESSED.to_string(),
    ];
    names.extend(HTTP_CODES.iter().map(|c| http_diagnosis(c)));
    names.extend(CONN_CODES.iter().map(|c| net_diagnosis(c)));
    names.extend(CLASSES.iter().map(|c| net_class(c)));
    for histogram in [UPSTREAM_NTH, UPSTREAM_IDLE_MS] {
        names.extend(histogram.bucket_names());
        names.push(histogram.sum_name());
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_prometheus_friendly_and_unique() {
        let mut names = all_counters();
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

    #[test]
    fn values_land_in_the_first_bucket_that_holds_them() {
        assert_eq!(UPSTREAM_NTH.bucket(1), 0);
        assert_eq!(UPSTREAM_NTH.bucket(2), 1);
        assert_eq!(UPSTREAM_NTH.bucket(3), 2);
        assert_eq!(UPSTREAM_NTH.bucket(1000), 5);
        assert_eq!(UPSTREAM_NTH.bucket(1001), 6);
        assert_eq!(UPSTREAM_IDLE_MS.bucket(0), 0);
        assert_eq!(UPSTREAM_IDLE_MS.bucket(5_900), 4);
        assert_eq!(
            UPSTREAM_IDLE_MS.bucket(u64::MAX),
            UPSTREAM_IDLE_MS.bounds.len()
        );
        assert_eq!(
            UPSTREAM_NTH.bucket_names().last().map(String::as_str),
            Some("connlab_upstream_nth_bucket_le_inf")
        );
    }
}
