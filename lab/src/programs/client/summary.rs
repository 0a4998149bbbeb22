//! Summary statistics of a run's records: counts per class and tag,
//! per-second throughput and failures, latency percentiles.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::record::{round_us, Record};

/// Latency percentiles (nearest rank), in ms; all 0 when `count` is 0.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub count: u64,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

/// What a run amounts to, computed from its records alone.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub requests: u64,
    /// Requests answered 2xx/3xx.
    pub ok: u64,
    pub failed: u64,
    /// Requests per [`Record::class`].
    pub classes: BTreeMap<String, u64>,
    /// Requests per `x-connlab` value (requests without one are not counted).
    pub tags: BTreeMap<String, u64>,
    /// Connections opened (requests sent on a fresh connection).
    pub new_connections: u64,
    /// The last request's end.
    pub duration_ms: f64,
    /// OK requests per second: entry i counts ends in [i s, i+1 s); one entry
    /// per second up to the last request's end.
    pub throughput: Vec<u64>,
    /// Failed requests per second, the same way.
    pub failures: Vec<u64>,
    /// Over every request, failed ones included (a hung request is what
    /// moves p99 and max).
    pub latency_ms: Latency,
    /// Over OK requests only.
    pub ok_latency_ms: Latency,
}

/// Counts, per-second buckets and percentiles of a run's records.
pub fn summarize(records: &[Record]) -> Summary {
    let mut summary = Summary {
        requests: records.len() as u64,
        ..Summary::default()
    };
    let last_end = records.iter().map(|r| r.end_ms).fold(0.0, f64::max);
    let seconds = if records.is_empty() {
        0
    } else {
        second_of(last_end) + 1
    };
    summary.duration_ms = last_end;
    summary.throughput = vec![0; seconds];
    summary.failures = vec![0; seconds];
    for record in records {
        *summary.classes.entry(record.class()).or_default() += 1;
        if let Some(tag) = &record.tag {
            *summary.tags.entry(tag.clone()).or_default() += 1;
        }
        if !record.reused && record.local.is_some() {
            summary.new_connections += 1;
        }
        let second = second_of(record.end_ms);
        if record.is_ok() {
            summary.ok += 1;
            summary.throughput[second] += 1;
        } else {
            summary.failed += 1;
            summary.failures[second] += 1;
        }
    }
    summary.latency_ms = latency(records.iter().map(Record::latency_ms).collect());
    summary.ok_latency_ms = latency(
        records
            .iter()
            .filter(|r| r.is_ok())
            .map(Record::latency_ms)
            .collect(),
    );
    summary
}

fn second_of(ms: f64) -> usize {
    // Records never end before the run started; a negative or NaN time from
    // a hand-edited file lands in second 0.
    (ms.max(0.0) / 1000.0).floor() as usize
}

fn latency(mut samples: Vec<f64>) -> Latency {
    if samples.is_empty() {
        return Latency::default();
    }
    samples.sort_by(f64::total_cmp);
    Latency {
        count: samples.len() as u64,
        p50: percentile(&samples, 50.0),
        p99: percentile(&samples, 99.0),
        max: samples[samples.len() - 1],
        mean: round_us(samples.iter().sum::<f64>() / samples.len() as f64),
    }
}

/// Nearest-rank percentile of ascending `sorted` samples (0 when empty).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::super::record::tests::{failed, record};
    use super::*;
    use crate::programs::http1::ErrorKind;

    #[test]
    fn percentile_is_nearest_rank() {
        let samples: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&samples, 50.0), 50.0);
        assert_eq!(percentile(&samples, 99.0), 99.0);
        assert_eq!(percentile(&samples, 100.0), 100.0);
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 50.0), 2.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
        assert_eq!(percentile(&[7.0], 0.0), 7.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }

    #[test]
    fn summary_counts_classes_buckets_and_latency() {
        let mut tagged = record(0, 0.0, 10.0, Some(200));
        tagged.tag = Some("UC".into());
        let records = vec![
            tagged,
            record(1, 100.0, 120.0, Some(200)),
            record(2, 900.0, 1_100.0, Some(503)),
            failed(3, 1_200.0, 1_201.5, ErrorKind::Reset),
            failed(4, 1_300.0, 1_300.25, ErrorKind::Connect(111)),
            record(5, 2_500.0, 2_530.0, Some(204)),
            failed(6, 2_600.0, 3_600.0, ErrorKind::Unfinished),
        ];
        let s = summarize(&records);
        assert_eq!((s.requests, s.ok, s.failed), (7, 3, 4));
        let classes: Vec<(&str, u64)> = s.classes.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        assert_eq!(
            classes,
            [
                ("200", 2),
                ("204", 1),
                ("503", 1),
                ("connect_111", 1),
                ("reset", 1),
                ("unfinished", 1)
            ]
        );
        assert_eq!(s.tags.get("UC"), Some(&1));
        // Ends at 10, 120 | 1100, 1201.5, 1300.25 | 2530 | 3600.
        assert_eq!(s.throughput, [2, 0, 1, 0]);
        assert_eq!(s.failures, [0, 3, 0, 1]);
        assert_eq!(s.duration_ms, 3_600.0);
        // Latencies sorted: 0.25 1.5 10 20 30 200 1000.
        assert_eq!(s.latency_ms.count, 7);
        assert_eq!(s.latency_ms.p50, 20.0);
        assert_eq!(s.latency_ms.p99, 1_000.0);
        assert_eq!(s.latency_ms.max, 1_000.0);
        assert_eq!(s.latency_ms.mean, 180.25);
        assert_eq!(
            s.ok_latency_ms,
            Latency {
                count: 3,
                p50: 20.0,
                p99: 30.0,
                max: 30.0,
                mean: 20.0
            }
        );
    }

    #[test]
    fn new_connections_skip_reuse_and_connect_failures() {
        let mut refused = failed(1, 0.0, 1.0, ErrorKind::Connect(111));
        refused.local = None;
        let records = [
            record(0, 0.0, 1.0, Some(200)),
            refused,
            record(2, 2.0, 3.0, Some(200)),
        ];
        assert_eq!(summarize(&records).new_connections, 1);
    }

    #[test]
    fn empty_run_summarizes_to_zeros() {
        let s = summarize(&[]);
        assert_eq!(s, Summary::default());
        assert!(s.throughput.is_empty());
    }
}
