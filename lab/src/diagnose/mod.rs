//! `connlab diagnose`: the filter's diagnoses on logs people already have.
//!
//! Lines stream through in bounded memory (batches of 1 MiB read ahead and
//! parsed on a second core, `input`; state only per live upstream
//! connection, capped), each parsed in whatever format it is in (`line`),
//! put on its upstream connection and judged by the filter's own rules
//! (`connections`) in log order, and counted per diagnosis (`report`).
//! `tcp` does the same for packet captures, over `crate::evidence::pcap`.
//! Uses `evidence` (the capture and access-log parsers, the TIME_WAIT
//! facts), `paths`, and the filter crate's `judge`, `reuse` and `diagnose`,
//! so a log line and the live filter get the same diagnosis; never the run.

pub mod catalogue;
pub mod cli;
pub mod client_log;
pub mod connections;
pub mod idle;
pub mod input;
pub mod istio_formats;
pub mod line;
pub mod render;
pub mod report;
pub mod tcp;
pub mod template;
pub mod time;

use std::collections::{BTreeMap, VecDeque};
use std::io::BufRead;
use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;

use connlab_filter::config::Config;

use connections::{Connections, Judged};
use input::{Batch, Parsed, What};
use line::{Format, Formats, Line, Request};
use report::{CodeStats, Example, InputReport, Report, Source};

/// Distinct diagnosis codes a report keeps apart (the filter has about 15).
const MAX_CODES: usize = 48;

/// How many malformed lines a report lists (all are counted).
const MALFORMED_SHOWN: usize = 5;

/// Failed connects waiting at once (each keeps its line); at it, those
/// waiting are judged early.
const MAX_WAITING: usize = 256;

/// A connect that failed with EADDRNOTAVAIL, waiting to be judged. The
/// filter, when it ends, counts the connections other requests on its
/// worker hold in flight as evidence of a pinned port; in a log their lines
/// come after it (a request is logged when it ends). So it is judged once
/// those lines are in the reuse table: before the first later request to
/// the same host that started after it ended (which cannot have been in
/// flight with it, and whose connection the filter would not have known),
/// or at the end of the input (or early, at `MAX_WAITING`). A request in flight with it that is logged
/// after such a request is missed: the answer is then the one without that
/// evidence ("the ephemeral ports ran out").
#[derive(Debug)]
struct Waiting {
    at: String,
    text: String,
    request: Request<'static>,
    end_ns: u64,
}

#[derive(Debug, Clone)]
pub struct Options {
    /// The filter's configuration (its defaults, or the user's plugin
    /// config): the same rules with the same settings.
    pub config: Config,
    pub formats: Formats,
    /// Where `connlab run` finds scenarios (for the replay line).
    pub scenarios: PathBuf,
    /// The Istio release the logs come from (1.`minor`), when the user
    /// says (`--istio-release`); otherwise only an old format tells.
    pub istio_minor: Option<u32>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            config: Config::default(),
            formats: Formats::new(None),
            scenarios: crate::paths::root().join("scenarios"),
            istio_minor: None,
        }
    }
}

/// Where one input's reading stands.
#[derive(Debug)]
struct Reading {
    input: InputReport,
    connections: Connections,
    waiting: VecDeque<Waiting>,
}

/// Reads inputs one after the other and builds one report.
#[derive(Debug)]
pub struct Diagnoser {
    options: Options,
    inputs: Vec<InputReport>,
    codes: BTreeMap<(Source, String), CodeStats>,
    failed_reuse: idle::Idle,
    requests: u64,
    /// Field sets each format had, for "what cannot be told".
    has: BTreeMap<Format, u32>,
}

impl Diagnoser {
    pub fn new(options: Options) -> Self {
        Diagnoser {
            options,
            inputs: Vec::new(),
            codes: BTreeMap::new(),
            failed_reuse: idle::Idle::default(),
            requests: 0,
            has: BTreeMap::new(),
        }
    }

    /// Streams one input (a file, or stdin as `-`). Each input is one
    /// Envoy's log: its connections are tracked apart from the others'.
    /// Batches of lines are parsed on a second thread while this one judges
    /// the batch before (`input`), so lines are judged in log order.
    pub fn read(&mut self, name: &str, reader: impl BufRead + Send) -> std::io::Result<()> {
        self.read_lines(name, input::Lines::new(reader))
    }

    fn read_lines(
        &mut self,
        name: &str,
        mut lines: input::Lines<impl BufRead + Send>,
    ) -> std::io::Result<()> {
        let mut at = Reading {
            input: InputReport::new(name),
            connections: Connections::default(),
            waiting: VecDeque::new(),
        };
        // Its own copy, so the parsing thread shares nothing `take` changes.
        let formats = self.options.formats.clone();
        let mut first = Batch::default();
        lines.fill(&mut first)?;
        if first.end {
            // An input of one batch (most files, every test) starts no thread.
            let parsed = first.parse(&formats);
            self.take_batch(&mut at, &first, parsed);
        } else {
            input::read_ahead(lines, |feed| {
                self.take_batches(&mut at, first, feed, &formats)
            })?;
        }
        let Reading {
            input,
            mut connections,
            waiting,
        } = at;
        for w in waiting {
            self.judge(&mut connections, || w.at, &w.text, &w.request);
        }
        self.inputs.push(input);
        Ok(())
    }

    /// Takes the batches from `a` on, each parsed while the one before is
    /// taken, in two variables that trade places: a batch's parsed lines
    /// borrow its text until they are taken.
    fn take_batches(
        &mut self,
        at: &mut Reading,
        mut a: Batch,
        feed: &mut input::Feed,
        formats: &Formats,
    ) -> std::io::Result<()> {
        let mut parsed_a = a.parse(formats);
        let mut b = Batch::default();
        loop {
            b = feed.next(b)?;
            let parsed_b = self.take_batch_beside(at, &a, parsed_a, &b, formats);
            if b.end {
                self.take_batch(at, &b, parsed_b);
                return Ok(());
            }
            a = feed.next(a)?;
            parsed_a = self.take_batch_beside(at, &b, parsed_b, &a, formats);
            if a.end {
                self.take_batch(at, &a, parsed_a);
                return Ok(());
            }
        }
    }

    /// Takes `batch`'s lines while a second thread parses `next`'s, then
    /// parses what is left of `next` beside it.
    fn take_batch_beside<'n>(
        &mut self,
        at: &mut Reading,
        batch: &Batch,
        parsed: Parsed<'_>,
        next: &'n Batch,
        formats: &Formats,
    ) -> Parsed<'n> {
        let claimed = AtomicUsize::new(0);
        std::thread::scope(|s| {
            let parsing = s.spawn(|| next.parse_claimed(formats, &claimed));
            self.take_batch(at, batch, parsed);
            let mine = next.parse_claimed(formats, &claimed);
            parsing
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                .merge(mine)
        })
    }

    /// Takes a batch's lines in order; `parsed` holds one line per text.
    fn take_batch(&mut self, at: &mut Reading, batch: &Batch, parsed: Parsed<'_>) {
        let mut parsed = parsed.lines();
        for item in &batch.items {
            at.input.lines += 1;
            at.input.bytes += item.bytes;
            match &item.what {
                What::TooLong => at.input.malformed(MALFORMED_SHOWN, "longer than 64 KiB"),
                What::Joined => at.input.joined += 1,
                What::EntryTooLong => {
                    at.input
                        .malformed(MALFORMED_SHOWN, "a JSON entry over 64 KiB");
                }
                What::Text(range) => {
                    if let Some(line) = parsed.next() {
                        let text = batch.text(range);
                        self.take(
                            &mut at.input,
                            &mut at.connections,
                            &mut at.waiting,
                            line,
                            text,
                        );
                    }
                }
            }
        }
        if batch.unclosed {
            // Its lines were counted as joined; its first is the malformed
            // entry (each line counted once).
            at.input.joined = at.input.joined.saturating_sub(1);
            at.input
                .malformed(MALFORMED_SHOWN, "a JSON entry that never closes");
        }
    }

    fn take(
        &mut self,
        input: &mut InputReport,
        connections: &mut Connections,
        waiting: &mut VecDeque<Waiting>,
        parsed: Line<'_>,
        text: &str,
    ) {
        let at = || format!("{}:{}", input.name, input.lines);
        match parsed {
            Line::Other => match client_log::read(text) {
                Some(client) => {
                    input.client_lines += 1;
                    if let Some(d) = &client.diagnosis {
                        let stats = self.codes_entry(Source::ClientLog, d.code);
                        stats.add(None, || Example::from_client(at(), text, &client));
                        stats.count_confidence(Some(d.confidence), &d.alternatives);
                        if stats.explain.is_none() {
                            stats.explain = Some(d.explain.clone());
                        }
                    }
                }
                None => input.other += 1,
            },
            Line::Malformed(why) => input.malformed(MALFORMED_SHOWN, why),
            Line::Event(event) => {
                input.events += 1;
                let Some(code) = event.diagnosis.as_deref() else {
                    return;
                };
                let stats = self.codes_entry(Source::FilterEvent, code);
                stats.add(event.time_ns, || Example::from_event(at(), text, &event));
                stats.count_confidence(event.confidence, &[]);
                if let (None, Some(explain)) = (&stats.explain, &event.explain) {
                    stats.explain = Some(explain.clone());
                }
                if let Some(ms) = event.idle_ms {
                    stats.idle.add(ms);
                }
            }
            Line::Request(format, request) => {
                input.requests += 1;
                // Looked up before an owned key is made: once per line.
                match input.formats.get_mut(format.name()) {
                    Some(n) => *n += 1,
                    None => {
                        input.formats.insert(format.name().to_string(), 1);
                    }
                }
                *self.has.entry(format).or_default() |= request.has;
                self.requests += 1;
                if let Some(start) = request.start_ns {
                    let host = request.upstream_host.as_deref();
                    self.judge_waiting(connections, waiting, |w| {
                        w.request.upstream_host.as_deref() == host && start > w.end_ns
                    });
                }
                match request.start_ns {
                    Some(start) if connections::waits_for_in_flight(&request) => {
                        if waiting.len() >= MAX_WAITING {
                            self.judge_waiting(connections, waiting, |_| true);
                        }
                        let duration_ns =
                            request.duration_ms.unwrap_or(0).saturating_mul(1_000_000);
                        waiting.push_back(Waiting {
                            at: at(),
                            text: text.to_string(),
                            end_ns: start.saturating_add(duration_ns),
                            request: line::into_owned(request),
                        });
                    }
                    _ => self.judge(connections, at, text, &request),
                }
            }
        }
    }

    /// Judges the waiting failed connects that are `done`, in log order.
    fn judge_waiting(
        &mut self,
        connections: &mut Connections,
        waiting: &mut VecDeque<Waiting>,
        done: impl Fn(&Waiting) -> bool,
    ) {
        let mut i = 0;
        while i < waiting.len() {
            match waiting
                .get(i)
                .is_some_and(&done)
                .then(|| waiting.remove(i))
                .flatten()
            {
                Some(w) => self.judge(connections, || w.at, &w.text, &w.request),
                None => i += 1,
            }
        }
    }

    /// Judges a request line by the filter's rules and counts the diagnosis.
    fn judge(
        &mut self,
        connections: &mut Connections,
        // The line's place, made only for an example: formatting it for
        // every line was a tenth of the work.
        at: impl FnOnce() -> String,
        text: &str,
        request: &Request<'_>,
    ) {
        let judged: Judged = connections.judge(request, &self.options.config);
        let Some(d) = judged
            .diagnosis
            .clone()
            .or_else(|| connections::line_only(request))
        else {
            return;
        };
        if judged.reuse.nth > 1 && matches!(d.code, "keepalive_race" | "upstream_reset") {
            if let Some(ms) = judged.reuse.idle_ms {
                self.failed_reuse.add(ms);
            }
        }
        let stats = self.codes_entry(Source::AccessLog, d.code);
        stats.add(request.start_ns, || {
            Example::from_request(at(), text, request, &judged.reuse)
        });
        stats.count_confidence(Some(d.confidence), &d.alternatives);
        if stats.explain.is_none() {
            stats.explain = Some(d.explain);
        }
        if let Some(ms) = judged.reuse.idle_ms.filter(|_| judged.reuse.nth > 1) {
            stats.idle.add(ms);
        }
    }

    /// The counts for a code. Codes from the wire (events) are bounded: a
    /// code is a short lower-case token, and past `MAX_CODES` distinct ones
    /// the rest are counted together, so garbage cannot grow the report.
    fn codes_entry(&mut self, source: Source, code: &str) -> &mut CodeStats {
        let token = !code.is_empty()
            && code.len() <= 48
            && code
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        let mut key = (source, code.to_string());
        if !token || (!self.codes.contains_key(&key) && self.codes.len() >= MAX_CODES) {
            key.1 = "(unrecognized)".to_string();
        }
        self.codes.entry(key).or_default()
    }

    pub fn finish(self) -> Report {
        report::build(
            self.inputs,
            self.codes,
            &self.failed_reuse,
            self.requests,
            &self.has,
            &self.options,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by `make fuzz` (diagnose_log): an entry that never closed was
    /// counted twice, its lines as joined and once more as malformed.
    #[test]
    fn a_json_entry_that_never_closes_counts_each_line_once() {
        let mut d = Diagnoser::new(Options::default());
        d.read("t", &b"{\n  \"code\": 503,\n  \"flags\": \"UC\"\n"[..])
            .unwrap();
        let report = d.finish();
        let input = &report.inputs[0];
        assert_eq!(input.lines, 3);
        assert_eq!((input.joined, input.malformed), (2, 1));
    }

    /// Batches are parsed two at a time on two threads and judged in
    /// order: every checked-in log reads the same in batches of one line,
    /// of a few, and in one.
    #[test]
    fn batches_of_any_size_give_the_same_report() {
        let root = crate::paths::root().join("tests/data/diagnose");
        let mut files = Vec::new();
        let mut dirs = vec![root];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                match path.extension().and_then(|e| e.to_str()) {
                    _ if path.is_dir() => dirs.push(path),
                    Some("log" | "jsonl" | "json" | "default") => files.push(path),
                    _ => {}
                }
            }
        }
        assert!(files.len() > 50, "{files:?}");
        for file in files {
            let data = std::fs::read(&file).unwrap();
            let report = |lines: usize| {
                let mut d = Diagnoser::new(Options::default());
                d.read_lines("f", input::Lines::with_batch_lines(&data[..], lines))
                    .unwrap();
                d.finish()
            };
            let whole = report(usize::MAX);
            for lines in [1, 3, 64] {
                assert_eq!(
                    report(lines),
                    whole,
                    "{} in batches of {lines}",
                    file.display()
                );
            }
        }
    }
}
