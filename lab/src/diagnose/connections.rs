//! What the filter sees live, rebuilt from access-log lines: each request
//! is put on its upstream connection (Envoy's local address and the upstream
//! host, as the filter keys it; `%UPSTREAM_CONNECTION_ID%` instead of the
//! local address when the log has it) with its `nth` and idle time, then
//! judged by the filter's own rules (`connlab_filter::diagnose::http`,
//! `connlab_filter::reuse::ReuseTable`), built natively: one rule set in
//! both places, never a second copy.
//!
//! Lines are taken in log order, which is the order the filter records them
//! in (both run when a request ends, `on_log`); on one HTTP/1.1 connection
//! that is also start order.

use connlab_filter::config::Config;
use connlab_filter::diagnose::{self, Diagnosis, HttpFacts};
use connlab_filter::flags::{UF, UH, UO};
use connlab_filter::reuse::{Reuse, ReuseTable};

use super::line::Request;

/// Upstream connections remembered at once. The filter keeps 1024 per
/// worker; one log holds every worker's, and a gateway's may hold many, so
/// more here, still bounded (about 100 bytes each).
pub const TABLE_CAP: usize = 1 << 16;

#[derive(Debug)]
pub struct Connections {
    table: ReuseTable,
    local: String,
}

/// A request as the filter would have judged it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judged {
    pub reuse: Reuse,
    pub diagnosis: Option<Diagnosis>,
}

impl Default for Connections {
    fn default() -> Self {
        Connections::new(TABLE_CAP)
    }
}

impl Connections {
    pub fn new(cap: usize) -> Self {
        Connections {
            table: ReuseTable::new(cap),
            local: String::new(),
        }
    }

    /// The connection's local end, in `self.local` (the upstream host is
    /// the other); false when the line cannot tell which connection
    /// carried the request.
    fn local_of(&mut self, r: &Request<'_>) -> bool {
        self.local.clear();
        match (r.connection_id, &r.upstream_local) {
            (Some(id), _) => {
                self.local.push_str("cx#");
                self.local.push_str(&id.to_string());
            }
            (None, Some(local)) => self.local.push_str(local),
            (None, None) => return false,
        }
        true
    }

    /// Records the request on its connection and applies the rules, as the
    /// filter's `on_log` does (filter/src/host/http.rs): a request whose
    /// connect failed (UF) had no connection to count; a healthy one (no
    /// flags, one attempt) is not judged; a reset connection is forgotten
    /// so a new one on the same port starts at nth 1.
    pub fn judge(&mut self, r: &Request<'_>, config: &Config) -> Judged {
        let connected = r.flags & UF == 0;
        let keyed = self.local_of(r);
        let peer = r.upstream_host.as_deref().unwrap_or_default();
        let reuse = match r.start_ns {
            Some(start) if keyed && connected => {
                let end = start.saturating_add(r.duration_ms.unwrap_or(0).saturating_mul(1_000_000));
                self.table.record(&self.local, peer, start, end)
            }
            _ => Reuse::default(),
        };
        let healthy = r.flags == 0 && r.attempts.unwrap_or(1) <= 1;
        let diagnosis = if healthy {
            None
        } else {
            let pinned_port = match (&r.upstream_host, r.flags & UF != 0) {
                (Some(host), true) => self.table.pinned_port(host, &[]),
                _ => None,
            };
            diagnose::http(&facts(r, reuse, pinned_port), config)
        };
        if keyed && matches!(diagnosis.as_ref().map(|d| d.code), Some("keepalive_race" | "upstream_reset")) {
            self.table.forget(&self.local, peer);
        }
        Judged { reuse, diagnosis }
    }
}

/// The facts the filter reads from Envoy's attributes, from the log line:
/// `%DURATION%` for the time from the request's start to its end, the
/// cluster only where the filter reads it (UO, UH). Access logs carry no
/// gRPC status.
pub fn facts<'a>(r: &'a Request<'_>, reuse: Reuse, pinned_port: Option<u16>) -> HttpFacts<'a> {
    HttpFacts {
        code: r.code,
        flags: r.flags,
        details: r.details.as_deref(),
        failure: r.failure.as_deref(),
        attempts: r.attempts,
        reuse,
        elapsed_ms: r.duration_ms,
        cluster: (r.flags & (UO | UH) != 0).then_some(r.cluster.as_deref()).flatten(),
        pinned_port,
        grpc_status: None,
        // Access logs carry no method here: CONNECT tunnels are not seen.
        tunnel: r.code == Some(101),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    const S: u64 = 1_000_000_000;

    fn request(start_s: f64, local: &str, code: i64, flags: &'static str) -> Request<'static> {
        Request {
            start_ns: Some((start_s * S as f64) as u64),
            duration_ms: Some(2),
            code: Some(code),
            flags: connlab_filter::flags::from_short_names(flags),
            flags_text: Cow::Borrowed(flags),
            details: (flags == "UC").then_some(Cow::Borrowed(
                "upstream_reset_before_response_started{connection_termination}",
            )),
            upstream_host: Some(Cow::Borrowed("10.0.0.9:8080")),
            upstream_local: Some(Cow::Owned(local.to_string())),
            ..Default::default()
        }
    }

    #[test]
    fn reuse_after_idle_then_reset_is_a_keepalive_race() {
        let mut c = Connections::default();
        let config = Config::default();
        let first = c.judge(&request(0.0, "10.0.0.5:40000", 200, "-"), &config);
        assert_eq!((first.reuse.nth, first.diagnosis), (1, None));
        let raced = c.judge(&request(5.6, "10.0.0.5:40000", 503, "UC"), &config);
        assert_eq!(raced.reuse.nth, 2);
        assert_eq!(raced.reuse.idle_ms, Some(5_598));
        assert_eq!(raced.diagnosis.unwrap().code, "keepalive_race");
        // The connection is gone: the next one on that port starts again.
        let next = c.judge(&request(6.0, "10.0.0.5:40000", 200, "-"), &config);
        assert_eq!(next.reuse.nth, 1);
    }

    #[test]
    fn a_reset_on_a_fresh_connection_is_not_a_race() {
        let mut c = Connections::default();
        let judged = c.judge(&request(0.0, "10.0.0.5:40001", 503, "UC"), &config());
        assert_eq!(judged.diagnosis.unwrap().code, "upstream_reset");
    }

    #[test]
    fn same_local_port_to_another_host_is_another_connection() {
        // The filter keys on both ends too.
        let mut c = Connections::default();
        c.judge(&request(0.0, "10.0.0.5:40000", 200, "-"), &config());
        let mut other = request(5.6, "10.0.0.5:40000", 503, "UC");
        other.upstream_host = Some(Cow::Borrowed("10.0.0.10:8080"));
        assert_eq!(c.judge(&other, &config()).reuse.nth, 1);
    }

    #[test]
    fn without_a_local_address_nothing_is_tracked() {
        let mut c = Connections::default();
        let mut r = request(0.0, "x", 503, "UC");
        r.upstream_local = None;
        let judged = c.judge(&r, &config());
        assert_eq!(judged.reuse, Reuse::default());
        assert_eq!(judged.diagnosis.unwrap().code, "upstream_reset");
    }

    #[test]
    fn connect_failures_are_not_counted_as_connections() {
        let mut c = Connections::default();
        let mut r = request(0.0, "10.0.0.5:40002", 503, "UF");
        r.failure = Some(Cow::Borrowed("delayed_connect_error:_Connection_refused"));
        let judged = c.judge(&r, &config());
        assert_eq!(judged.reuse.nth, 0);
        assert_eq!(judged.diagnosis.unwrap().code, "connect_refused");
    }

    fn config() -> Config {
        Config::default()
    }
}
