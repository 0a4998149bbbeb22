//! From a recorded run to plot data: which request rode which upstream
//! connection, when, and how it ended.
//!
//! The filter's events carry no timestamps, so they are placed on the
//! client's clock by order: an Envoy that saw as many requests as the client
//! made is the one the client calls (its k-th event, in log order, is the
//! k-th request to end); an Envoy behind it saw one request per attempt of
//! the first (`attempts`, retries included), in the same order. This holds
//! for the lab's sequential workloads; an Envoy that fits neither rule is
//! left off the timeline, and the page says so.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::evidence::timeline::Second;
use crate::outputs::plots::{Interval, Mark, Timeline};
use crate::outputs::recorded::RecordedRun;
use crate::programs::client::Record;

/// Above this many upstream connections an Envoy gets one lane, not one per
/// connection.
const LANES_PER_ENVOY: usize = 10;

/// The timeline, and the Envoy roles that could not be placed in time.
pub fn timeline(run: &RecordedRun) -> (Timeline, Vec<String>) {
    let mut records: Vec<&Record> = run.records.iter().collect();
    records.sort_by(|a, b| a.end_ms.total_cmp(&b.end_ms));
    let end_s = records.iter().map(|r| r.end_ms).fold(0.0, f64::max) / 1000.0;
    // One lane per client worker (its own connection) when there are a
    // few: a worker hung on a dead peer shows as a lane that goes quiet.
    let mut workers: Vec<u32> = records.iter().map(|r| r.worker).collect();
    workers.sort();
    workers.dedup();
    let lanes = if workers.len() > 1 && workers.len() <= LANES_PER_ENVOY {
        workers
            .iter()
            .map(|w| format!("{} worker {}", run.client, w + 1))
            .collect()
    } else {
        workers.clear();
        vec![run.client.clone()]
    };
    let mut plot = Timeline {
        lanes,
        faults: intervals(run, end_s),
        end_s,
        ..Timeline::default()
    };
    for record in &records {
        plot.marks.push(Mark {
            lane: workers.binary_search(&record.worker).unwrap_or(0),
            start_s: record.start_ms / 1000.0,
            latency_ms: Some(record.latency_ms()),
            class: record.class(),
            reused: record.reused,
            idle_ms: None,
        });
    }
    let (placed, unplaced) = place(&records, &run.http_events);
    for (role, events) in placed {
        add_envoy_lanes(&mut plot, &role, &events);
    }
    (plot, unplaced)
}

/// One event with the client request it belongs to: the `attempt`th of
/// `attempts` this Envoy made for it.
struct Placed<'a> {
    event: &'a Value,
    record: &'a Record,
    attempt: usize,
    attempts: usize,
}

/// Envoy roles in the client's direction first, with their placed events.
type Placement<'a> = Vec<(String, Vec<Placed<'a>>)>;

fn place<'a>(
    records: &[&'a Record],
    events: &'a BTreeMap<String, Vec<Value>>,
) -> (Placement<'a>, Vec<String>) {
    let mut placed: Placement = Vec::new();
    for (role, list) in events {
        if list.len() == records.len() && !list.is_empty() {
            let pairs = list
                .iter()
                .zip(records)
                .map(|(event, record)| Placed {
                    event,
                    record,
                    attempt: 0,
                    attempts: 1,
                })
                .collect();
            placed.push((role.clone(), pairs));
        }
    }
    let mut unplaced = Vec::new();
    for (role, list) in events {
        if placed.iter().any(|(r, _)| r == role) || list.is_empty() {
            continue;
        }
        // Behind a placed Envoy: one event per attempt of the front's.
        let behind = placed.iter().find_map(|(_, front)| {
            let attempts: Vec<usize> = front.iter().map(|p| attempts(p.event)).collect();
            (attempts.iter().sum::<usize>() == list.len()).then(|| {
                let mut events = list.iter();
                front
                    .iter()
                    .zip(attempts)
                    .flat_map(|(p, n)| (0..n).map(move |attempt| (p.record, attempt, n)))
                    .filter_map(|(record, attempt, attempts)| {
                        Some(Placed {
                            event: events.next()?,
                            record,
                            attempt,
                            attempts,
                        })
                    })
                    .collect::<Vec<_>>()
            })
        });
        match behind {
            Some(pairs) => placed.push((role.clone(), pairs)),
            None => unplaced.push(role.clone()),
        }
    }
    (placed, unplaced)
}

fn attempts(event: &Value) -> usize {
    event["attempts"].as_u64().unwrap_or(1).max(1) as usize
}

/// Lanes `<role> conn N` (first use order) with each request's mark; the
/// class is what this Envoy answered (`503 UC`).
fn add_envoy_lanes(plot: &mut Timeline, role: &str, events: &[Placed]) {
    let mut conns: Vec<String> = Vec::new();
    for placed in events {
        let local = connection(placed.event);
        if !conns.contains(&local) {
            conns.push(local);
        }
    }
    let one_lane = conns.len() > LANES_PER_ENVOY;
    let first = plot.lanes.len();
    if one_lane {
        plot.lanes.push(format!("{role} (all conns)"));
    } else {
        for (i, local) in conns.iter().enumerate() {
            plot.lanes.push(match local.as_str() {
                "" => format!("{role}: no conn"),
                _ => format!("{role} conn {}", i + 1),
            });
        }
    }
    for placed in events {
        // Attempts of one client request happen within its latency, in
        // order; where within it is not recorded, so they share it evenly.
        let share = placed.attempt as f64 / placed.attempts as f64;
        let offset = share * placed.record.latency_ms() / 1000.0;
        let local = connection(placed.event);
        let lane = if one_lane {
            first
        } else {
            first + conns.iter().position(|c| *c == local).unwrap_or(0)
        };
        let upstream = &placed.event["upstream"];
        plot.marks.push(Mark {
            lane,
            start_s: placed.record.start_ms / 1000.0 + offset,
            // The client's latency is this Envoy's only when it made one
            // attempt for the request.
            latency_ms: (placed.attempts == 1).then(|| placed.record.latency_ms()),
            class: event_class(placed.event),
            reused: upstream["nth"].as_u64().is_some_and(|n| n > 1),
            idle_ms: upstream["idle_ms"].as_u64().map(|ms| ms as f64),
        });
    }
}

fn connection(event: &Value) -> String {
    event["upstream"]["local"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// `503 UC`, `200`.
fn event_class(event: &Value) -> String {
    let code = event["code"].as_i64().unwrap_or(0);
    match event["flags"]
        .as_str()
        .filter(|f| !f.is_empty() && *f != "-")
    {
        Some(flags) => format!("{code} {flags}"),
        None => code.to_string(),
    }
}

fn intervals(run: &RecordedRun, end_s: f64) -> Vec<Interval> {
    run.faults
        .iter()
        .map(|f| Interval {
            label: f.label.clone(),
            start_s: f.at_ms as f64 / 1000.0,
            end_s: f.until_ms.map_or(end_s, |ms| ms as f64 / 1000.0),
        })
        .collect()
}

/// Per-second buckets when the run had load: at least 2 requests per second
/// on average over at least 3 seconds (keepalive-race's 6 requests in 16 s
/// have none; a load generator's thousands do). The buckets are the
/// Outcome timeline's (`crate::evidence::timeline`), so both count a second alike.
pub fn seconds(run: &RecordedRun) -> Option<Vec<Second>> {
    let end_ms = run.records.iter().map(|r| r.end_ms).fold(0.0, f64::max);
    let n = run.records.len() as f64;
    if end_ms < 3000.0 || n / (end_ms / 1000.0) < 2.0 {
        return None;
    }
    Some(crate::evidence::timeline::timeline(&run.records, 0, 0).seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded(run: &str) -> RecordedRun {
        RecordedRun::load(&crate::paths::root().join("tests/data/recorded").join(run)).unwrap()
    }

    #[test]
    fn a_hung_worker_is_a_lane_that_goes_quiet() {
        let (plot, unplaced) = timeline(&recorded("half-open/broken-0"));
        let lanes: Vec<String> = (1..=8).map(|w| format!("client worker {w}")).collect();
        assert_eq!(plot.lanes, lanes);
        assert!(unplaced.is_empty(), "{unplaced:?}");
        let hung: Vec<&Mark> = plot
            .marks
            .iter()
            .filter(|m| m.class == "unfinished")
            .collect();
        let mut hung_lanes: Vec<usize> = hung.iter().map(|m| m.lane).collect();
        hung_lanes.sort();
        hung_lanes.dedup();
        assert_eq!(hung_lanes.len(), 4, "one per hung worker: {hung_lanes:?}");
        for m in hung {
            // Node B went silent at 5.25 s; the 6 s request never ended and
            // its worker sent nothing after it.
            assert!((6.0..6.1).contains(&m.start_s), "{m:?}");
            assert!(!plot
                .marks
                .iter()
                .any(|o| o.lane == m.lane && o.start_s > m.start_s));
        }
        // The three faults at 5.25 s, in place to the end.
        assert_eq!(plot.faults.len(), 3);
        assert!(plot.faults.iter().all(|f| f.start_s == 5.25));
    }

    #[test]
    fn one_worker_is_one_client_lane_and_few_requests_no_throughput() {
        let run = recorded("keepalive-race/node-0");
        let (plot, _) = timeline(&run);
        assert_eq!(plot.lanes[0], "client");
        assert!(!plot.lanes.iter().any(|l| l.contains("worker")));
        assert!(seconds(&run).is_none());
    }

    #[test]
    fn throughput_is_the_outcome_timelines_seconds() {
        let run = recorded("half-open/broken-0");
        let outcome: Vec<Second> =
            serde_json::from_value(run.outcome["timeline"]["seconds"].clone()).unwrap();
        assert_eq!(seconds(&run), Some(outcome));
    }
}
