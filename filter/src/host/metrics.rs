//! The filter's metrics as host handles, defined once per plugin.

use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;

use crate::diagnose::{CONN_CODES, HTTP_CODES};
use crate::metrics as names;

#[derive(Default)]
pub(crate) struct Metrics {
    requests: Option<u32>,
    http_diagnosis: Vec<Option<u32>>,
    nth: Option<u32>,
    idle: Option<u32>,
    connections: Option<u32>,
    classes: Vec<Option<u32>>,
    net_diagnosis: Vec<Option<u32>>,
}

fn define(kind: MetricType, name: &str) -> Option<u32> {
    hostcalls::define_metric(kind, name).ok()
}

fn counters(names: impl Iterator<Item = String>) -> Vec<Option<u32>> {
    names.map(|n| define(MetricType::Counter, &n)).collect()
}

/// The handle at `code`'s position in `codes`.
fn slot(ids: &[Option<u32>], codes: &[&str], code: &str) -> Option<u32> {
    let at = codes.iter().position(|c| *c == code)?;
    ids.get(at).copied().flatten()
}

fn increment(id: Option<u32>) {
    if let Some(id) = id {
        let _ = hostcalls::increment_metric(id, 1);
    }
}

impl Metrics {
    pub fn define() -> Self {
        Metrics {
            requests: define(MetricType::Counter, names::HTTP_REQUESTS),
            http_diagnosis: counters(HTTP_CODES.iter().map(|c| names::http_diagnosis(c))),
            nth: define(MetricType::Histogram, names::UPSTREAM_NTH),
            idle: define(MetricType::Histogram, names::UPSTREAM_IDLE_MS),
            connections: define(MetricType::Counter, names::NET_CONNECTIONS),
            classes: counters(names::CLASSES.iter().map(|c| names::net_class(c))),
            net_diagnosis: counters(CONN_CODES.iter().map(|c| names::net_diagnosis(c))),
        }
    }

    pub fn request(&self, diagnosis: Option<&str>, nth: Option<u64>, idle_ms: Option<u64>) {
        increment(self.requests);
        if let Some(code) = diagnosis {
            increment(slot(&self.http_diagnosis, &HTTP_CODES, code));
        }
        if let (Some(id), Some(nth)) = (self.nth, nth) {
            let _ = hostcalls::record_metric(id, nth);
        }
        if let (Some(id), Some(idle)) = (self.idle, idle_ms) {
            let _ = hostcalls::record_metric(id, idle);
        }
    }

    pub fn connection(&self, class: &str, diagnosis: Option<&str>) {
        increment(self.connections);
        increment(slot(&self.classes, &names::CLASSES, class));
        if let Some(code) = diagnosis {
            increment(slot(&self.net_diagnosis, &CONN_CODES, code));
        }
    }
}
