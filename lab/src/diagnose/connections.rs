//! What the filter sees live, rebuilt from access-log lines: each request
//! is put on its upstream connection (Envoy's local address and the upstream
//! host, as the filter keys it; `%UPSTREAM_CONNECTION_ID%` instead of the
//! local address when the log has it) with its `nth` and idle time, then
//! judged by the filter's own rules, through the very function its `on_log`
//! calls (`connlab_filter::judge::judge`: reuse table, rules, forgetting a
//! reset connection), built natively: one path in both places, never a
//! second copy. This module only turns a line into that function's facts.
//!
//! Lines are taken in log order, which is the order the filter records them
//! in (both run when a request ends, `on_log`); on one HTTP/1.1 connection
//! that is also start order.

use connlab_filter::config::Config;
pub use connlab_filter::judge::Judged;
use connlab_filter::judge::{self, Bookkeeping, OnDemand, Outcome, Reasons};
use connlab_filter::reuse::ReuseTable;

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

    /// Judges the request as the filter's `on_log` does, with the same
    /// function (`connlab_filter::judge::judge`) on the facts the line
    /// carries.
    pub fn judge(&mut self, r: &Request<'_>, config: &Config) -> Judged {
        let keyed = self.local_of(r);
        let outcome = outcome(r, keyed.then_some(self.local.as_str()));
        judge::judge(
            &mut self.table,
            &outcome,
            &mut LineFacts(r),
            config,
            Bookkeeping::Record,
        )
    }
}

/// What the line alone says when the request rules name nothing
/// (`connlab_filter::diagnose::line_only`: no filter chain, a client that
/// left; `tcp_line` for a TCP line: plaintext through PassthroughCluster
/// that got nothing back).
pub fn line_only(r: &Request<'_>) -> Option<connlab_filter::diagnose::Diagnosis> {
    let tcp = connlab_filter::diagnose::TcpFacts {
        flags: r.flags,
        cluster: r.cluster.as_deref(),
        connected: r.upstream_host.is_some(),
        bytes_received: r.bytes_received,
        bytes_sent: r.bytes_sent,
        elapsed_ms: r.duration_ms,
    };
    if let Some(d) = r
        .tcp
        .then(|| connlab_filter::diagnose::tcp_line(&tcp))
        .flatten()
    {
        return Some(d);
    }
    connlab_filter::diagnose::line_only(&connlab_filter::diagnose::HttpFacts {
        code: r.code,
        flags: r.flags,
        details: r.details.as_deref(),
        elapsed_ms: r.duration_ms,
        ..Default::default()
    })
}

/// A connect that failed with EADDRNOTAVAIL: the filter judges it with the
/// connections other requests hold in flight, whose lines come later in
/// the log; diagnose waits for them (`super::IN_FLIGHT_WAIT_NS`).
pub fn waits_for_in_flight(r: &Request<'_>) -> bool {
    judge::asks_in_flight(r.flags, r.failure.as_deref())
}

/// The outcome the filter reads from Envoy's attributes, from the log line:
/// `%DURATION%` for the time from the request's start to its end. `local`
/// is the connection's key (`Connections::local_of`).
pub fn outcome<'a>(r: &'a Request<'_>, local: Option<&'a str>) -> Outcome<'a> {
    let duration_ns = r.duration_ms.map(|ms| ms.saturating_mul(1_000_000));
    Outcome {
        local,
        peer: r.upstream_host.as_deref(),
        end_ns: r
            .start_ns
            .map(|start| start.saturating_add(duration_ns.unwrap_or(0))),
        duration_ns,
        flags: r.flags,
        attempts: r.attempts,
    }
}

/// The rest of what the filter reads, from the log line. Access logs carry
/// no gRPC status and (here) no method, so CONNECT tunnels are not seen.
pub struct LineFacts<'r>(pub &'r Request<'r>);

impl OnDemand for LineFacts<'_> {
    fn reasons(&mut self) -> Reasons {
        let r = self.0;
        Reasons {
            code: r.code,
            details: r.details.as_deref().map(str::to_string),
            failure: r.failure.as_deref().map(str::to_string),
        }
    }

    fn cluster(&mut self) -> Option<String> {
        self.0.cluster.as_deref().map(str::to_string)
    }

    /// None beyond the table: diagnose judges a failed connect after the
    /// lines of the requests in flight with it, which the table has recorded
    /// by then (`waits_for_in_flight`).
    fn in_flight_ports(&mut self, _peer: &str) -> Vec<u16> {
        Vec::new()
    }

    fn is_connect(&mut self) -> bool {
        false
    }

    fn grpc_status(&mut self) -> Option<i64> {
        None
    }

    /// A log line proves its connection new only with a field that shows
    /// the upstream connect began after the request did
    /// (`%COMMON_DURATION(DS_RX_BEG:US_CX_BEG:…)%` has a value: Envoy
    /// prints `-` when the connect began earlier, on a pooled connection).
    /// Otherwise a connection's first line in the log is of unknown
    /// history: the log may not hold its earlier requests (a grep, a
    /// pasted line, a log that starts mid-traffic).
    fn opened(&mut self) -> bool {
        self.0.connect_after_start.is_some()
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

    /// A connection's first line in a log is not a fresh connection: the
    /// log may not hold its earlier requests. Reset at once, a keep-alive
    /// race is likely, not confirmed; with a field that shows the connect
    /// began after the request, it is known fresh: not a race.
    #[test]
    fn a_first_line_is_of_unknown_history_unless_a_field_shows_the_connect() {
        use connlab_filter::diagnose::Confidence;
        use connlab_filter::reuse::History;
        let mut c = Connections::default();
        let judged = c.judge(&request(0.0, "10.0.0.5:40001", 503, "UC"), &config());
        assert_eq!(judged.reuse.history(), History::Unknown);
        let d = judged.diagnosis.unwrap();
        assert_eq!(
            (d.code, d.confidence),
            ("keepalive_race", Confidence::Likely)
        );
        let mut fresh = request(0.0, "10.0.0.5:40002", 503, "UC");
        fresh.connect_after_start = Some(Cow::Borrowed("212"));
        let judged = c.judge(&fresh, &config());
        assert_eq!(judged.reuse.history(), History::First);
        let d = judged.diagnosis.unwrap();
        assert_eq!(
            (d.code, d.confidence),
            ("upstream_reset", Confidence::Confirmed)
        );
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
        assert_eq!(judged.reuse, connlab_filter::reuse::Reuse::default());
        // A reset connection whose history the line cannot give: a likely
        // race (reset 2 ms after the request), never a fresh connection.
        let d = judged.diagnosis.unwrap();
        assert_eq!(
            (d.code, d.confidence),
            (
                "keepalive_race",
                connlab_filter::diagnose::Confidence::Likely
            )
        );
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
