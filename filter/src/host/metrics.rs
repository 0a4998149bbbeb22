//! The filter's metrics as host handles, defined once per plugin. Everything
//! is summed in the VM and flushed to Envoy once a second (`on_tick`): a host
//! call per request per metric would cost more than the rest of the
//! filter's work.

use std::cell::Cell;

use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;

use crate::diagnose::{CONN_CODES, HTTP_CODES};
use crate::metrics::{self as names, Histogram};

/// A counter's host handle and the increments not yet flushed.
#[derive(Default)]
struct Counter {
    id: Option<u32>,
    pending: Cell<u64>,
}

impl Counter {
    fn define(name: &str) -> Self {
        Counter {
            id: hostcalls::define_metric(MetricType::Counter, name).ok(),
            pending: Cell::new(0),
        }
    }

    fn add(&self, n: u64) {
        self.pending.set(self.pending.get().saturating_add(n));
    }

    fn flush(&self) {
        let delta = self.pending.replace(0);
        if let (Some(id), 1..) = (self.id, delta) {
            let _ = hostcalls::increment_metric(id, delta.min(i64::MAX as u64) as i64);
        }
    }
}

/// A gauge's host handle; set, not summed.
#[derive(Default)]
struct Gauge {
    id: Option<u32>,
}

impl Gauge {
    fn define(name: &str) -> Self {
        Gauge {
            id: hostcalls::define_metric(MetricType::Gauge, name).ok(),
        }
    }

    fn set(&self, value: u64) {
        if let Some(id) = self.id {
            let _ = hostcalls::record_metric(id, value);
        }
    }
}

/// A histogram as cumulative bucket counters (see `metrics::Histogram`).
#[derive(Default)]
struct Buckets {
    spec: Option<Histogram>,
    /// Non-cumulative counts per bucket since the last flush.
    counts: Vec<Cell<u64>>,
    counters: Vec<Counter>,
    sum: Counter,
}

impl Buckets {
    fn define(spec: Histogram) -> Self {
        let counters: Vec<Counter> = spec
            .bucket_names()
            .iter()
            .map(|n| Counter::define(n))
            .collect();
        Buckets {
            spec: Some(spec),
            counts: counters.iter().map(|_| Cell::new(0)).collect(),
            counters,
            sum: Counter::define(&spec.sum_name()),
        }
    }

    fn observe(&self, value: u64) {
        if let Some(cell) = self.spec.and_then(|s| self.counts.get(s.bucket(value))) {
            cell.set(cell.get().saturating_add(1));
            self.sum.add(value);
        }
    }

    fn flush(&self) {
        let mut cumulative = 0u64;
        for (count, counter) in self.counts.iter().zip(&self.counters) {
            cumulative = cumulative.saturating_add(count.replace(0));
            counter.add(cumulative);
            counter.flush();
        }
        self.sum.flush();
    }
}

#[derive(Default)]
pub(crate) struct Metrics {
    requests: Counter,
    http_diagnosis: Vec<Counter>,
    nth: Buckets,
    idle: Buckets,
    connections: Counter,
    classes: Vec<Counter>,
    net_diagnosis: Vec<Counter>,
    evictions: Counter,
    suppressed: Counter,
    table_entries: Gauge,
    memory_bytes: Gauge,
}

/// The counter at `code`'s position in `codes`.
fn slot<'a>(counters: &'a [Counter], codes: &[&str], code: &str) -> Option<&'a Counter> {
    counters.get(codes.iter().position(|c| *c == code)?)
}

fn counters<'a>(
    names: impl Iterator<Item = &'a &'a str>,
    name: fn(&str) -> String,
) -> Vec<Counter> {
    names.map(|c| Counter::define(&name(c))).collect()
}

impl Metrics {
    pub fn define() -> Self {
        Metrics {
            requests: Counter::define(names::HTTP_REQUESTS),
            http_diagnosis: counters(HTTP_CODES.iter(), names::http_diagnosis),
            nth: Buckets::define(names::UPSTREAM_NTH),
            idle: Buckets::define(names::UPSTREAM_IDLE_MS),
            connections: Counter::define(names::NET_CONNECTIONS),
            classes: counters(names::CLASSES.iter(), names::net_class),
            net_diagnosis: counters(CONN_CODES.iter(), names::net_diagnosis),
            evictions: Counter::define(names::REUSE_EVICTIONS),
            suppressed: Counter::define(names::EVENTS_SUPPRESSED),
            table_entries: Gauge::define(names::REUSE_TABLE_ENTRIES),
            memory_bytes: Gauge::define(names::WASM_MEMORY_BYTES),
        }
    }

    pub fn evictions(&self, n: u64) {
        self.evictions.add(n);
    }

    pub fn suppressed(&self, n: u64) {
        self.suppressed.add(n);
    }

    /// The reuse table's size (the HTTP plugin's; the network plugin has
    /// none) and the VM's memory, as they are now.
    pub fn sizes(&self, table_entries: Option<usize>) {
        if let Some(n) = table_entries {
            self.table_entries.set(n as u64);
        }
        let pages = core::arch::wasm32::memory_size(0);
        self.memory_bytes.set(pages as u64 * 65_536);
    }

    pub fn request(&self, diagnosis: Option<&str>, nth: Option<u64>, idle_ms: Option<u64>) {
        self.requests.add(1);
        if let Some(counter) = diagnosis.and_then(|c| slot(&self.http_diagnosis, &HTTP_CODES, c)) {
            counter.add(1);
        }
        if let Some(nth) = nth {
            self.nth.observe(nth);
        }
        if let Some(idle) = idle_ms {
            self.idle.observe(idle);
        }
    }

    pub fn connection(&self, class: &str, diagnosis: Option<&str>) {
        self.connections.add(1);
        if let Some(counter) = slot(&self.classes, &names::CLASSES, class) {
            counter.add(1);
        }
        if let Some(counter) = diagnosis.and_then(|c| slot(&self.net_diagnosis, &CONN_CODES, c)) {
            counter.add(1);
        }
    }

    /// Hands the pending counts to Envoy.
    pub fn flush(&self) {
        self.requests.flush();
        self.connections.flush();
        self.evictions.flush();
        self.suppressed.flush();
        for counter in self
            .http_diagnosis
            .iter()
            .chain(&self.classes)
            .chain(&self.net_diagnosis)
        {
            counter.flush();
        }
        self.nth.flush();
        self.idle.flush();
    }
}
