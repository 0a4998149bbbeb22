//! Live progress, nextest style: the run code emits [`Phase`] events for a
//! [`RunId`] into a [`Sink`]; one reporter turns them into output. On a
//! terminal that is one live line per running variant (indicatif); anywhere
//! else (CI logs) one plain timestamped line per phase change, so a log
//! reader sees where a run that took minutes spent them.

use std::collections::HashMap;
use std::fmt;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// One run of one variant (`repeat` counts from 0).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RunId {
    pub scenario: String,
    pub variant: String,
    pub repeat: usize,
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.scenario, self.variant)?;
        if self.repeat > 0 {
            write!(f, "#{}", self.repeat + 1)?;
        }
        Ok(())
    }
}

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    StartingNodes,
    FaultsInPlace,
    /// Request `k` (from 1) of `n` ended; `n` is unknown for timed workloads.
    Request {
        k: u64,
        n: Option<u64>,
    },
    /// Request `k` of `n` ended and the client idles `remaining` before
    /// the next one.
    IdleGap {
        k: u64,
        n: Option<u64>,
        remaining: Duration,
    },
    CollectingEvidence,
    /// The run ended, with this verdict word (or `ERROR`).
    Finished {
        word: &'static str,
    },
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Phase::StartingNodes => write!(f, "starting nodes"),
            Phase::FaultsInPlace => write!(f, "faults in place"),
            Phase::Request { k, n: Some(n) } => write!(f, "request {k} of {n}"),
            Phase::Request { k, n: None } => write!(f, "request {k}"),
            Phase::IdleGap { k, n, remaining } => {
                let left = remaining.as_secs_f64();
                match n {
                    Some(n) => write!(f, "request {k} of {n}, idle gap {left:.1} s left"),
                    None => write!(f, "request {k}, idle gap {left:.1} s left"),
                }
            }
            Phase::CollectingEvidence => write!(f, "collecting evidence"),
            Phase::Finished { word } => write!(f, "{}", word.to_lowercase()),
        }
    }
}

/// What the run code calls. Implementations must be cheap: the runner
/// calls them from its async tasks.
pub trait Sink: Send + Sync {
    fn phase(&self, run: &RunId, phase: Phase);
}

/// Discards every event (tests, library callers that want no output).
pub struct Quiet;

impl Sink for Quiet {
    fn phase(&self, _: &RunId, _: Phase) {}
}

/// The CLI's reporter: live lines on a terminal, plain lines otherwise.
pub enum Reporter {
    Live(Live),
    Plain(Plain),
}

impl Reporter {
    /// Live lines when stderr is a terminal (stdout stays the verdict lines,
    /// so it can be piped), plain lines otherwise.
    pub fn for_stderr() -> Reporter {
        if std::io::stderr().is_terminal() {
            Reporter::Live(Live::new(ProgressDrawTarget::stderr()))
        } else {
            Reporter::Plain(Plain::new(Box::new(std::io::stderr())))
        }
    }

    /// Prints a finished line (the verdict) above the live lines.
    pub fn println(&self, line: &str) {
        match self {
            Reporter::Live(live) => live.bars.suspend(|| println!("{line}")),
            Reporter::Plain(_) => println!("{line}"),
        }
    }
}

impl Sink for Reporter {
    fn phase(&self, run: &RunId, phase: Phase) {
        match self {
            Reporter::Live(live) => live.phase(run, phase),
            Reporter::Plain(plain) => plain.phase(run, phase),
        }
    }
}

/// One indicatif line per running variant; it disappears when the run ends.
pub struct Live {
    bars: MultiProgress,
    lines: Mutex<HashMap<RunId, ProgressBar>>,
}

impl Live {
    fn new(target: ProgressDrawTarget) -> Live {
        Live {
            bars: MultiProgress::with_draw_target(target),
            lines: Mutex::new(HashMap::new()),
        }
    }
}

impl Sink for Live {
    fn phase(&self, run: &RunId, phase: Phase) {
        let Ok(mut lines) = self.lines.lock() else {
            return;
        };
        if let Phase::Finished { .. } = phase {
            if let Some(bar) = lines.remove(run) {
                bar.finish_and_clear();
                self.bars.remove(&bar);
            }
            return;
        }
        let bar = lines.entry(run.clone()).or_insert_with(|| {
            let bar = self.bars.add(ProgressBar::new_spinner());
            let style = ProgressStyle::with_template("{spinner} [{elapsed:>4}] {prefix}  {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner());
            bar.set_style(style);
            bar.set_prefix(run.to_string());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        bar.set_message(phase.to_string());
    }
}

/// `[   12.3s] keepalive-race/node: request 3 of 6`, one line per change;
/// an idle-gap countdown prints once per gap, not per tick, and request
/// counts at most once per [`REQUEST_LINE_EVERY`] per run (a load variant
/// ends a request every few milliseconds: a line each would bury the
/// other runs' lines in a CI log).
pub struct Plain {
    started: Instant,
    out: Mutex<Box<dyn std::io::Write + Send>>,
    last: Mutex<HashMap<RunId, Last>>,
}

/// How often a plain log shows a run's request count.
pub const REQUEST_LINE_EVERY: Duration = Duration::from_secs(10);

/// A run's last phase, and when its last request line was printed.
struct Last {
    phase: Phase,
    request_line: Option<Instant>,
}

impl Plain {
    pub fn new(out: Box<dyn std::io::Write + Send>) -> Plain {
        Plain {
            started: Instant::now(),
            out: Mutex::new(out),
            last: Mutex::new(HashMap::new()),
        }
    }
}

impl Sink for Plain {
    fn phase(&self, run: &RunId, phase: Phase) {
        if let Ok(mut last) = self.last.lock() {
            let before = last.remove(run);
            let repeat = match (before.as_ref().map(|l| l.phase), phase) {
                (Some(Phase::IdleGap { k: a, .. }), Phase::IdleGap { k: b, .. }) => a == b,
                (Some(before), now) => before == now,
                (None, _) => false,
            };
            let back_to_back = matches!(
                (before.as_ref().map(|l| l.phase), phase),
                (Some(Phase::Request { .. }), Phase::Request { .. })
            );
            let mut request_line = before.and_then(|l| l.request_line);
            // Only request after request is throttled: an idle gap and the
            // request that ends it say why nothing happened for seconds.
            let throttled =
                back_to_back && request_line.is_some_and(|at| at.elapsed() < REQUEST_LINE_EVERY);
            if matches!(phase, Phase::Request { .. }) && !throttled {
                request_line = Some(Instant::now());
            }
            last.insert(
                run.clone(),
                Last {
                    phase,
                    request_line,
                },
            );
            if repeat || throttled {
                return;
            }
        }
        if let Ok(mut out) = self.out.lock() {
            let at = self.started.elapsed().as_secs_f64();
            let _ = writeln!(out, "[{at:>8.1}s] {run}: {phase}");
            let _ = out.flush();
        }
    }
}

tokio::task_local! {
    static CURRENT: (Arc<dyn Sink>, RunId);
}

/// Runs `run` with `sink` and `id` as the place [`emit`] reports to, so the
/// run code needs no extra parameters for progress.
pub async fn scope<F: std::future::Future>(sink: Arc<dyn Sink>, id: RunId, run: F) -> F::Output {
    CURRENT.scope((sink, id), run).await
}

/// Reports a phase of the current run (nothing outside [`scope`]).
pub fn emit(phase: Phase) {
    let _ = CURRENT.try_with(|(sink, id)| sink.phase(id, phase));
}

/// Awaits `finish` (a client node's end) while reporting its requests from
/// the client's output so far, every half second.
pub async fn watch_client<T>(
    lab: &crate::run::runtime::Lab,
    role: &str,
    workload: &Workload,
    finish: impl std::future::Future<Output = T>,
) -> T {
    if CURRENT.try_with(|_| ()).is_err() {
        return finish.await;
    }
    let watch = async {
        let (mut seen, mut since) = (0u64, Instant::now());
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let (stdout, _) = lab.logs(role).await;
            let finished = stdout
                .lines()
                .filter(|l| l.starts_with("{\"type\":\"request\""))
                .count() as u64;
            if finished != seen {
                (seen, since) = (finished, Instant::now());
            }
            if let Some(phase) = client_phase(workload, seen, since.elapsed()) {
                emit(phase);
            }
        }
    };
    tokio::select! {
        out = finish => out,
        never = watch => never,
    }
}

/// What the client's progress watcher knows about the workload.
#[derive(Debug, Clone, Default)]
pub struct Workload {
    /// Requests in all, when the workload is counted rather than timed.
    pub requests: Option<u64>,
    /// The idle gaps before each request, cycled (see `ClientConfig`).
    pub gaps_ms: Vec<u64>,
}

impl Workload {
    pub fn of(config: &crate::programs::client::ClientConfig) -> Workload {
        Workload {
            requests: config
                .requests
                .filter(|_| config.duration_ms.is_none())
                .map(|n| n * u64::from(config.connections)),
            // With several workers the gaps overlap: no single countdown.
            gaps_ms: if config.connections == 1 {
                config.gaps_ms.clone()
            } else {
                Vec::new()
            },
        }
    }
}

/// Turns the client's output so far (`connlab-client` prints one line per
/// finished request) into phases: the request count and, when the next
/// request waits for a gap, the countdown measured from `since`, the moment
/// the latest request was first seen.
pub fn client_phase(workload: &Workload, finished: u64, since: Duration) -> Option<Phase> {
    if finished == 0 {
        return None;
    }
    if workload.requests.is_some_and(|n| finished >= n) {
        return Some(Phase::Request {
            k: finished,
            n: workload.requests,
        });
    }
    let gap = if workload.gaps_ms.is_empty() {
        0
    } else {
        workload.gaps_ms[(finished as usize) % workload.gaps_ms.len()]
    };
    let remaining = Duration::from_millis(gap).saturating_sub(since);
    // Gaps under a second are not worth a line of their own.
    if gap >= 1000 && !remaining.is_zero() {
        Some(Phase::IdleGap {
            k: finished,
            n: workload.requests,
            remaining,
        })
    } else {
        Some(Phase::Request {
            k: finished,
            n: workload.requests,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Buffer {
        /// The lines written, without their timestamps.
        fn phases(&self) -> Vec<String> {
            let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
            text.lines()
                .map(|l| l.split_once("] ").unwrap().1.to_string())
                .collect()
        }
    }

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn run() -> RunId {
        RunId {
            scenario: "keepalive-race".into(),
            variant: "node".into(),
            repeat: 0,
        }
    }

    #[test]
    fn plain_lines_name_the_run_and_phase_and_skip_countdown_ticks() {
        let buffer = Buffer::default();
        let plain = Plain::new(Box::new(buffer.clone()));
        plain.phase(&run(), Phase::StartingNodes);
        plain.phase(&run(), Phase::Request { k: 1, n: Some(6) });
        for s in [5, 4, 3] {
            plain.phase(
                &run(),
                Phase::IdleGap {
                    k: 1,
                    n: Some(6),
                    remaining: Duration::from_secs(s),
                },
            );
        }
        plain.phase(&run(), Phase::Request { k: 2, n: Some(6) });
        assert_eq!(
            buffer.phases(),
            [
                "keepalive-race/node: starting nodes",
                "keepalive-race/node: request 1 of 6",
                "keepalive-race/node: request 1 of 6, idle gap 5.0 s left",
                "keepalive-race/node: request 2 of 6",
            ]
        );
    }

    #[test]
    fn plain_request_counts_are_throttled_per_run_but_phases_are_not() {
        let buffer = Buffer::default();
        let plain = Plain::new(Box::new(buffer.clone()));
        let other = RunId {
            variant: "tomcat".into(),
            ..run()
        };
        plain.phase(&run(), Phase::FaultsInPlace);
        for k in 1..=50 {
            plain.phase(&run(), Phase::Request { k, n: None });
        }
        plain.phase(&other, Phase::Request { k: 1, n: None });
        plain.phase(&run(), Phase::CollectingEvidence);
        assert_eq!(
            buffer.phases(),
            [
                "keepalive-race/node: faults in place",
                "keepalive-race/node: request 1",
                "keepalive-race/tomcat: request 1",
                "keepalive-race/node: collecting evidence",
            ]
        );
    }

    #[test]
    fn the_client_phase_counts_requests_down_gaps() {
        let workload = Workload {
            requests: Some(6),
            gaps_ms: vec![0, 5500],
        };
        assert_eq!(client_phase(&workload, 0, Duration::ZERO), None);
        // After request 1 comes a 5.5 s gap.
        assert_eq!(
            client_phase(&workload, 1, Duration::from_millis(500)),
            Some(Phase::IdleGap {
                k: 1,
                n: Some(6),
                remaining: Duration::from_secs(5)
            })
        );
        // After request 2 the next goes at once.
        assert_eq!(
            client_phase(&workload, 2, Duration::ZERO),
            Some(Phase::Request { k: 2, n: Some(6) })
        );
        assert_eq!(
            client_phase(&workload, 6, Duration::ZERO),
            Some(Phase::Request { k: 6, n: Some(6) })
        );
    }

    #[test]
    fn repeats_are_numbered_from_the_second() {
        let mut id = run();
        assert_eq!(id.to_string(), "keepalive-race/node");
        id.repeat = 2;
        assert_eq!(id.to_string(), "keepalive-race/node#3");
    }
}
