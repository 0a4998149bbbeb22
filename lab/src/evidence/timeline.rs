//! A run as a timeline around a fault: per-second throughput and p99, the
//! phases before / during / after, and the time to recover — what the seed
//! 002 JMeter report showed (and what an average hides: the mean barely
//! moves while p99 and max explode). Pure numbers from client records; the
//! plot is `outputs::plots::fault_throughput`'s.

use serde::{Deserialize, Serialize};

use crate::programs::client::{percentile, Record};

/// Throughput counts as recovered when every second from then on reaches
/// this share of the throughput before the fault.
pub const RECOVERED_SHARE: f64 = 0.9;

/// The timeline plot in a run's evidence directory.
pub const SVG_FILE: &str = "timeline.svg";

/// A time that never came (a recovery not within the run): above every
/// number, written `never` in a scenario's checks.
pub const NEVER: u64 = u64::MAX;

/// Seconds at the start left out of "before": connections being opened.
pub const WARMUP_S: u64 = 2;

/// The figures a `timeline` check can compare (see [`Timeline::figure`]).
pub const FIGURES: &str = "recovery_s, dip_pct, throughput_pct, \
    before|during|after.{requests, success_pct, mean_ms, p50_ms, p99_ms, max_ms, throughput}";

const PHASE_FIELDS: [&str; 7] = [
    "requests",
    "success_pct",
    "mean_ms",
    "p50_ms",
    "p99_ms",
    "max_ms",
    "throughput",
];

/// Latency and success over a span of requests (by start time).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Phase {
    pub from_s: u64,
    pub to_s: u64,
    pub requests: u64,
    /// Share of requests answered 2xx/3xx, percent.
    pub success_pct: f64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// OK responses per second (ends in the span / its length).
    pub throughput: f64,
}

/// One second of a run with load.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Second {
    pub ok: u64,
    pub failed: u64,
    /// Latency of the requests that ended in this second, in ms.
    pub p99_ms: f64,
    pub max_ms: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    pub fault_s: u64,
    /// OK and failed requests that ended in each second, and their p99/max.
    pub seconds: Vec<Second>,
    pub before: Phase,
    /// From the fault to recovery (to the end when it never recovered).
    pub during: Phase,
    /// From recovery to the end; `None` when it never recovered.
    pub after: Option<Phase>,
    /// Seconds from the fault until throughput is back for good.
    pub recovered_after_s: Option<u64>,
    /// The lowest per-second throughput after the fault as a share of the
    /// throughput before it, percent.
    pub dip_pct: f64,
}

/// The timeline of `records` with a fault at `fault_s`; the first `warmup_s`
/// seconds are left out of "before". It ends with the last second in which
/// a request started (later ends are requests cut by the run's bound), and
/// that second, cut short, is ignored for recovery.
pub fn timeline(records: &[Record], fault_s: u64, warmup_s: u64) -> Timeline {
    let last_start = records.iter().map(|r| r.start_ms).fold(0.0, f64::max);
    let n = if records.is_empty() {
        0
    } else {
        second(last_start) + 1
    };
    let mut seconds = vec![Second::default(); n];
    let mut ended: Vec<Vec<f64>> = vec![Vec::new(); n];
    // A request cut by the run's bound ends after the last second: it is
    // counted in the last one.
    for r in records {
        let at = second(r.end_ms).min(n - 1);
        if r.is_ok() {
            seconds[at].ok += 1;
        } else {
            seconds[at].failed += 1;
        }
        ended[at].push(r.latency_ms());
    }
    for (s, mut lat) in seconds.iter_mut().zip(ended) {
        lat.sort_by(f64::total_cmp);
        s.p99_ms = percentile(&lat, 99.0);
        s.max_ms = lat.last().copied().unwrap_or(0.0);
    }
    let full = n.saturating_sub(1); // seconds before the cut last one
    let fault = (fault_s as usize).min(full);
    let baseline = mean(
        seconds[(warmup_s as usize).min(fault)..fault]
            .iter()
            .map(|s| s.ok),
    );
    let recovered = (fault..full).find(|&from| {
        seconds[from..full]
            .iter()
            .all(|s| s.ok as f64 >= RECOVERED_SHARE * baseline)
    });
    let dip = seconds[fault..full.max(fault)]
        .iter()
        .map(|s| s.ok)
        .min()
        .unwrap_or(0);
    let stop = recovered.unwrap_or(n) as u64;
    Timeline {
        fault_s,
        before: phase(records, warmup_s, fault_s),
        during: phase(records, fault_s, stop),
        after: recovered.map(|r| phase(records, r as u64, n as u64)),
        recovered_after_s: recovered.map(|r| (r - fault) as u64),
        dip_pct: if baseline > 0.0 {
            (1000.0 * dip as f64 / baseline).round() / 10.0
        } else {
            0.0
        },
        seconds,
    }
}

/// Whether `name` is one of [`FIGURES`].
pub fn is_figure(name: &str) -> bool {
    match name.split_once('.') {
        Some((phase, field)) => {
            ["before", "during", "after"].contains(&phase) && PHASE_FIELDS.contains(&field)
        }
        None => ["recovery_s", "dip_pct", "throughput_pct"].contains(&name),
    }
}

impl Timeline {
    /// One of [`FIGURES`], rounded to an integer: `recovery_s` (seconds from
    /// the fault until throughput is back for good; [`NEVER`] when it
    /// did not come back within the run), `dip_pct` (the lowest second after
    /// the fault, % of before), `throughput_pct` (during vs before, %), or a
    /// phase's field. Why not, when the run cannot tell.
    pub fn figure(&self, name: &str) -> Result<u64, String> {
        let round = |v: f64| v.max(0.0).round() as u64;
        match name {
            "recovery_s" => Ok(self.recovered_after_s.unwrap_or(NEVER)),
            "dip_pct" => Ok(round(self.dip_pct)),
            "throughput_pct" if self.before.throughput > 0.0 => Ok(round(
                100.0 * self.during.throughput / self.before.throughput,
            )),
            "throughput_pct" => Err("no throughput before the fault".into()),
            _ => {
                let (phase, field) = name
                    .split_once('.')
                    .ok_or_else(|| format!("unknown timeline figure `{name}`"))?;
                let phase = match phase {
                    "before" => &self.before,
                    "during" => &self.during,
                    "after" => self
                        .after
                        .as_ref()
                        .ok_or("throughput never came back: no \"after\" phase")?,
                    _ => return Err(format!("unknown timeline figure `{name}`")),
                };
                let value = match field {
                    "requests" => phase.requests as f64,
                    "success_pct" => phase.success_pct,
                    "mean_ms" => phase.mean_ms,
                    "p50_ms" => phase.p50_ms,
                    "p99_ms" => phase.p99_ms,
                    "max_ms" => phase.max_ms,
                    "throughput" => phase.throughput,
                    _ => return Err(format!("unknown timeline figure `{name}`")),
                };
                Ok(round(value))
            }
        }
    }
}

fn second(ms: f64) -> usize {
    (ms.max(0.0) / 1000.0).floor() as usize
}

fn mean(values: impl Iterator<Item = u64>) -> f64 {
    let (sum, count) = values.fold((0u64, 0u64), |(s, c), v| (s + v, c + 1));
    if count == 0 {
        0.0
    } else {
        sum as f64 / count as f64
    }
}

fn phase(records: &[Record], from_s: u64, to_s: u64) -> Phase {
    let (from, to) = (from_s as f64 * 1000.0, to_s as f64 * 1000.0);
    let span: Vec<&Record> = records
        .iter()
        .filter(|r| r.start_ms >= from && r.start_ms < to)
        .collect();
    let mut lat: Vec<f64> = span.iter().map(|r| r.latency_ms()).collect();
    lat.sort_by(f64::total_cmp);
    let ok = span.iter().filter(|r| r.is_ok()).count();
    let ended_ok = records
        .iter()
        .filter(|r| r.is_ok() && r.end_ms >= from && r.end_ms < to)
        .count();
    let round = |v: f64| (v * 10.0).round() / 10.0;
    Phase {
        from_s,
        to_s,
        requests: span.len() as u64,
        success_pct: if span.is_empty() {
            0.0
        } else {
            (10_000.0 * ok as f64 / span.len() as f64).round() / 100.0
        },
        mean_ms: round(lat.iter().sum::<f64>() / lat.len().max(1) as f64),
        p50_ms: round(percentile(&lat, 50.0)),
        p99_ms: round(percentile(&lat, 99.0)),
        max_ms: round(lat.last().copied().unwrap_or(0.0)),
        throughput: round(ended_ok as f64 / (to_s.saturating_sub(from_s)).max(1) as f64),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn rec(worker: u32, start_ms: f64, latency_ms: f64, ok: bool) -> Record {
        Record {
            worker,
            seq: 0,
            start_ms,
            end_ms: start_ms + latency_ms,
            status: ok.then_some(200),
            error: (!ok).then_some(crate::programs::http1::ErrorKind::Timeout),
            local: None,
            reused: true,
            tag: None,
            library_error: None,
        }
    }

    /// Two workers, 10 requests/s each for 20 s (`until_ms`); worker 1 hangs at the fault
    /// (t = 10 s) for `hang_ms`, then resumes.
    pub(crate) fn run(hang_ms: f64) -> Vec<Record> {
        run_until(hang_ms, 20_000.0)
    }

    fn run_until(hang_ms: f64, until_ms: f64) -> Vec<Record> {
        let mut records = Vec::new();
        for w in 0..2 {
            let mut t = 0.0;
            while t < until_ms {
                if w == 1 && (10_000.0..10_100.0).contains(&t) {
                    records.push(rec(w, t, hang_ms, false));
                    t += hang_ms;
                    continue;
                }
                records.push(rec(w, t, 5.0, true));
                t += 100.0;
            }
        }
        records
    }

    #[test]
    fn a_hung_worker_halves_throughput_until_it_gives_up() {
        let t = timeline(&run(6_000.0), 10, 2);
        assert_eq!(t.before.throughput, 20.0);
        assert_eq!(t.recovered_after_s, Some(6));
        assert_eq!(t.dip_pct, 50.0);
        assert_eq!(t.during.max_ms, 6_000.0);
        assert!(
            t.during.mean_ms < 250.0,
            "the mean hides it: {}",
            t.during.mean_ms
        );
        assert_eq!(t.after.as_ref().map(|a| a.success_pct), Some(100.0));
        // The hung request ends (and shows) 6 s later.
        assert_eq!(t.seconds[16].max_ms, 6_000.0);
    }

    #[test]
    fn a_worker_that_never_comes_back_never_recovers() {
        let t = timeline(&run_until(30_000.0, 40_000.0), 10, 2);
        assert_eq!(t.recovered_after_s, None);
        assert!(t.after.is_none());
        assert_eq!(t.dip_pct, 50.0);
    }

    #[test]
    fn requests_cut_by_the_bound_do_not_add_empty_seconds() {
        // Worker 1 still hangs when the run stops starting requests at 20 s;
        // its record ends at the bound, 40 s.
        let t = timeline(&run_until(30_000.0, 20_000.0), 10, 2);
        assert_eq!(t.seconds.len(), 20);
        assert_eq!(t.dip_pct, 50.0);
        assert_eq!(t.during.max_ms, 30_000.0);
    }

    #[test]
    fn no_fault_effect_recovers_at_once() {
        let t = timeline(&run(5.0), 10, 2);
        assert_eq!(t.recovered_after_s, Some(0));
        assert_eq!(t.during.requests, 0);
    }

    #[test]
    fn figures_for_checks() {
        let t = timeline(&run(6_000.0), 10, 2);
        assert_eq!(t.figure("recovery_s"), Ok(6));
        assert_eq!(t.figure("dip_pct"), Ok(50));
        assert_eq!(t.figure("during.max_ms"), Ok(6_000));
        assert_eq!(t.figure("before.success_pct"), Ok(100));
        assert_eq!(
            t.figure("after.requests"),
            t.after.as_ref().map(|a| a.requests).ok_or_else(String::new)
        );
        assert!(t.figure("throughput_pct").is_ok_and(|p| p < 100));
        let never = timeline(&run_until(30_000.0, 40_000.0), 10, 2);
        assert_eq!(never.figure("recovery_s"), Ok(NEVER));
        assert!(never
            .figure("after.max_ms")
            .unwrap_err()
            .contains("never came back"));
        assert!(timeline(&[], 10, 2).figure("throughput_pct").is_err());
        assert!(is_figure("during.p99_ms") && is_figure("recovery_s"));
        assert!(
            !is_figure("during.p98_ms") && !is_figure("meanwhile.max_ms") && !is_figure("max_ms")
        );
    }

    #[test]
    fn empty_records_give_an_empty_timeline() {
        let t = timeline(&[], 10, 2);
        assert_eq!(t.recovered_after_s, None);
    }
}
