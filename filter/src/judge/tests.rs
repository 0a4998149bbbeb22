use super::*;
use crate::flags::{DC, URX};

const MS: u64 = 1_000_000;
const PEER: &str = "10.0.0.9:8080";
const TERMINATION: &str = "upstream_reset_before_response_started{connection_termination}";

/// Facts a test sets, and which of them the judge asked for (each is a
/// host call in the filter).
#[derive(Default)]
struct Asked {
    reasons: Reasons,
    cluster: Option<String>,
    in_flight: Vec<u16>,
    connect: bool,
    grpc_status: Option<i64>,
    /// Whether the pool's wait shows a new connection (the filter reads it
    /// only for a connection its table does not hold).
    opened: bool,
    asked: Vec<&'static str>,
}

impl OnDemand for Asked {
    fn reasons(&mut self) -> Reasons {
        self.asked.push("reasons");
        self.reasons.clone()
    }
    fn cluster(&mut self) -> Option<String> {
        self.asked.push("cluster");
        self.cluster.clone()
    }
    fn in_flight_ports(&mut self, _peer: &str) -> Vec<u16> {
        self.asked.push("in_flight");
        self.in_flight.clone()
    }
    fn is_connect(&mut self) -> bool {
        self.asked.push("method");
        self.connect
    }
    fn grpc_status(&mut self) -> Option<i64> {
        self.asked.push("grpc_status");
        self.grpc_status
    }
    fn opened(&mut self) -> bool {
        self.asked.push("opened");
        self.opened
    }
}

fn reasons(code: i64, details: &str, failure: Option<&str>) -> Asked {
    Asked {
        reasons: Reasons {
            code: Some(code),
            details: Some(details.to_string()),
            failure: failure.map(str::to_string),
        },
        ..Default::default()
    }
}

fn on<'a>(local: &'a str, end_ms: u64, flags: u64) -> Outcome<'a> {
    Outcome {
        local: Some(local),
        peer: Some(PEER),
        end_ns: Some(end_ms * MS),
        duration_ns: Some(MS),
        flags,
        attempts: Some(1),
    }
}

fn record(table: &mut ReuseTable, outcome: &Outcome<'_>, more: &mut Asked) -> Judged {
    judge(
        table,
        outcome,
        more,
        &Config::default(),
        Bookkeeping::Record,
    )
}

#[test]
fn a_healthy_request_is_recorded_and_asks_for_nothing() {
    let mut table = ReuseTable::new(8);
    let mut more = Asked::default();
    let first = record(&mut table, &on("a:1", 10, 0), &mut more);
    let second = record(&mut table, &on("a:1", 5_010, 0), &mut more);
    assert_eq!((first.reuse.nth, second.reuse.nth), (1, 2));
    assert_eq!(second.reuse.idle_ms, Some(4_999));
    assert_eq!((second.diagnosis, second.reasons), (None, None));
    // One read per connection the table does not hold: was it opened for
    // this request (the pool's wait)? Not one per request.
    assert_eq!(more.asked, ["opened"]);
    assert_eq!(
        (first.reuse.history(), second.reuse.history()),
        (History::Unknown, History::Reused)
    );
}

#[test]
fn a_keepalive_race_forgets_its_connection_and_peeking_changes_nothing() {
    let mut table = ReuseTable::new(8);
    record(&mut table, &on("a:1", 10, 0), &mut Asked::default());
    let raced = on("a:1", 5_610, UC);
    let peeked = judge(
        &mut table,
        &raced,
        &mut reasons(503, TERMINATION, None),
        &Config::default(),
        Bookkeeping::Peek,
    );
    let judged = record(&mut table, &raced, &mut reasons(503, TERMINATION, None));
    assert_eq!(peeked, judged, "peek and record see the same");
    assert_eq!(judged.code(), Some("keepalive_race"));
    assert_eq!(judged.reuse.nth, 2);
    // The connection is gone: a new one on that port is a fresh one.
    assert_eq!(
        record(&mut table, &on("a:1", 6_000, 0), &mut Asked::default())
            .reuse
            .nth,
        1
    );
}

#[test]
fn a_failed_connect_is_not_a_connection_and_asks_only_what_its_rule_needs() {
    let mut table = ReuseTable::new(8);
    let mut refused = reasons(503, "x", Some("delayed connect error: Connection refused"));
    let judged = record(&mut table, &on("a:1", 10, UF), &mut refused);
    assert_eq!(
        (judged.reuse, judged.code()),
        (Reuse::default(), Some("connect_refused"))
    );
    assert_eq!(refused.asked, ["reasons"]);
    assert!(table.is_empty());
}

#[test]
fn a_connection_in_flight_is_asked_for_only_on_eaddrnotavail() {
    let mut table = ReuseTable::new(8);
    let failure = Some("immediate connect error: Cannot assign requested address");
    let mut pinned = reasons(503, "x", failure);
    pinned.in_flight = vec![40000];
    let judged = record(&mut table, &on("-", 10, UF), &mut pinned);
    assert_eq!(judged.code(), Some("source_address_conflict"));
    assert!(judged
        .diagnosis
        .unwrap()
        .explain
        .contains("local port 40000"));
    assert_eq!(pinned.asked, ["reasons", "in_flight"]);
    // Two ports in flight: the kernel chose them, the ports ran out.
    let mut ran_out = reasons(503, "x", failure);
    ran_out.in_flight = vec![40000, 40001];
    let judged = record(&mut table, &on("-", 10, UF), &mut ran_out);
    assert!(judged.diagnosis.unwrap().explain.contains("ran out"));
}

#[test]
fn the_cluster_method_and_grpc_status_are_asked_for_only_where_a_rule_reads_them() {
    let mut table = ReuseTable::new(8);
    let mut overflow = reasons(503, "overflow", None);
    overflow.cluster = Some("backend".into());
    let judged = record(&mut table, &on("-", 10, UO), &mut overflow);
    assert!(judged
        .diagnosis
        .unwrap()
        .explain
        .contains("cluster `backend`"));
    assert_eq!(overflow.asked, ["opened", "reasons", "cluster"]);

    let mut tunnel = reasons(
        200,
        "upstream_reset_after_response_started{connection_termination}",
        None,
    );
    tunnel.connect = true;
    let judged = record(&mut table, &on("b:1", 10, UC), &mut tunnel);
    assert_eq!(judged.diagnosis, None, "the end of a CONNECT tunnel");
    assert_eq!(tunnel.asked, ["opened", "reasons", "cluster", "method"]);

    let mut retried = reasons(200, "via_upstream", None);
    retried.grpc_status = Some(14);
    let outcome = Outcome {
        attempts: Some(3),
        flags: URX,
        ..on("c:1", 10, 0)
    };
    let judged = record(&mut table, &outcome, &mut retried);
    assert_eq!(judged.code(), Some("retried_then_failed"));
    assert_eq!(retried.asked, ["opened", "reasons", "grpc_status"]);
}

#[test]
fn a_client_that_left_is_read_but_not_diagnosed() {
    let mut table = ReuseTable::new(8);
    let judged = record(
        &mut table,
        &on("a:1", 10, DC),
        &mut reasons(0, "downstream_remote_disconnect", None),
    );
    assert_eq!(judged.diagnosis, None);
    assert_eq!(judged.reasons.map(|r| r.code), Some(Some(0)));
}

#[test]
fn without_an_end_time_or_a_local_address_nothing_is_recorded() {
    let mut table = ReuseTable::new(8);
    let timeless = Outcome {
        end_ns: None,
        ..on("a:1", 0, 0)
    };
    let keyless = Outcome {
        local: None,
        ..on("a:1", 0, 0)
    };
    for outcome in [timeless, keyless] {
        assert_eq!(
            record(&mut table, &outcome, &mut Asked::default()).reuse,
            Reuse::default()
        );
    }
    assert!(table.is_empty());
}

#[test]
fn the_event_upstream_says_unknown_for_no_connection_and_an_evicted_one() {
    let judged = |reuse| Judged {
        reuse,
        reasons: None,
        diagnosis: None,
    };
    let none = judged(Reuse::default()).upstream(None, Some(PEER.into()));
    assert_eq!((none.nth, none.idle_ms, none.age_ms), (None, None, None));
    let reused = Reuse {
        nth: 3,
        idle_ms: Some(500),
        age_ms: 900,
        forgotten: false,
        start_known: true,
    };
    let shown = judged(reused).upstream(Some("a:1".into()), None);
    assert_eq!(
        (shown.nth, shown.idle_ms, shown.age_ms),
        (Some(3), Some(500), Some(900))
    );
    let forgotten = judged(Reuse {
        forgotten: true,
        ..reused
    })
    .upstream(None, None);
    assert_eq!(
        (forgotten.nth, forgotten.idle_ms, forgotten.forgotten),
        (None, Some(500), true)
    );
}
