//! `connlab diagnose`: the filter's diagnoses on logs people already have.
//!
//! Lines stream through in bounded memory (one line at a time, state only
//! per live upstream connection, capped), each parsed in whatever format it
//! is in (`line`), put on its upstream connection and judged by the
//! filter's own rules (`connections`), and counted per diagnosis (`report`).
//! `tcp` does the same for packet captures, over `crate::evidence::pcap`.
//! Uses `evidence` (the capture and access-log parsers, the TIME_WAIT
//! facts), `paths`, and the filter crate's `judge`, `reuse` and `diagnose`,
//! so a log line and the live filter get the same diagnosis; never the run.

pub mod catalogue;
pub mod cli;
pub mod client_log;
pub mod connections;
pub mod idle;
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

use connlab_filter::config::Config;

use connections::{Connections, Judged};
use line::{Format, Formats, Line, Request};
use report::{CodeStats, Example, InputReport, Report, Source};

/// Longest line kept; the rest of a longer one is skipped and the line
/// counted as malformed (no log format diagnose reads comes near it).
pub const MAX_LINE: usize = 64 * 1024;

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
    pub fn read(&mut self, name: &str, mut reader: impl BufRead) -> std::io::Result<()> {
        let mut input = InputReport::new(name);
        let mut connections = Connections::default();
        let mut waiting = VecDeque::new();
        let mut buf = Vec::with_capacity(1024);
        let mut joining = Joining::default();
        while let Some(truncated) = read_line(&mut reader, &mut buf, MAX_LINE)? {
            input.lines += 1;
            input.bytes += buf.len() as u64 + 1;
            if truncated {
                input.malformed(MALFORMED_SHOWN, "longer than 64 KiB");
                continue;
            }
            let text = String::from_utf8_lossy(&buf);
            // A JSON entry printed over several lines (a log store's
            // export, `jq .`) is read as one.
            let text = match joining.take(&text) {
                Joined::Line => text,
                Joined::Inside => {
                    input.joined += 1;
                    continue;
                }
                Joined::Entry(entry) => std::borrow::Cow::Owned(entry),
                Joined::TooLong => {
                    input.malformed(MALFORMED_SHOWN, "a JSON entry over 64 KiB");
                    continue;
                }
            };
            let parsed = self.options.formats.parse(&text);
            self.take(&mut input, &mut connections, &mut waiting, parsed, &text);
        }
        if joining.open() {
            // Its lines were counted as joined; its first is the malformed
            // entry (each line counted once).
            input.joined = input.joined.saturating_sub(1);
            input.malformed(MALFORMED_SHOWN, "a JSON entry that never closes");
        }
        for w in waiting {
            self.judge(&mut connections, w.at, &w.text, &w.request);
        }
        self.inputs.push(input);
        Ok(())
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
                    _ => self.judge(connections, at(), text, &request),
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
                Some(w) => self.judge(connections, w.at, &w.text, &w.request),
                None => i += 1,
            }
        }
    }

    /// Judges a request line by the filter's rules and counts the diagnosis.
    fn judge(
        &mut self,
        connections: &mut Connections,
        at: String,
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
            Example::from_request(at, text, request, &judged.reuse)
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

/// Joins a JSON entry spread over lines (pretty-printed: `jq .`, a log
/// store's export): from a line that is only `{` to the line that closes
/// it. Only such a line opens one, so a damaged one-line entry (`{"a":` cut
/// short) never swallows the lines after it.
#[derive(Debug, Default)]
struct Joining {
    text: String,
    depth: i64,
}

enum Joined {
    /// An ordinary line: read it as it is.
    Line,
    /// Part of an entry still open.
    Inside,
    /// The whole entry.
    Entry(String),
    /// The entry grew past `line::MAX_JOINED`: dropped.
    TooLong,
}

impl Joining {
    fn open(&self) -> bool {
        self.depth > 0
    }

    fn take(&mut self, line: &str) -> Joined {
        if self.depth == 0 {
            if line.trim() != "{" {
                return Joined::Line;
            }
            self.text = line.to_string();
            self.depth = 1;
            return Joined::Inside;
        }
        self.depth += brace_depth(line);
        self.text.push('\n');
        self.text.push_str(line);
        if self.text.len() > line::MAX_JOINED {
            *self = Joining::default();
            return Joined::TooLong;
        }
        if self.depth > 0 {
            return Joined::Inside;
        }
        self.depth = 0;
        // An element of a JSON array ends with `},`.
        let entry = std::mem::take(&mut self.text);
        Joined::Entry(entry.trim_end().trim_end_matches(',').to_string())
    }
}

/// `{` minus `}` outside JSON strings.
fn brace_depth(line: &str) -> i64 {
    let (mut depth, mut in_string, mut escaped) = (0i64, false, false);
    for b in line.bytes() {
        match (in_string, escaped, b) {
            (true, true, _) => escaped = false,
            (true, false, b'\\') => escaped = true,
            (true, false, b'"') => in_string = false,
            (false, _, b'"') => in_string = true,
            (false, _, b'{') => depth += 1,
            (false, _, b'}') => depth -= 1,
            _ => {}
        }
    }
    depth
}

/// Reads one line (without its `\n`) into `buf`, keeping at most `max`
/// bytes; `None` at the end, `Some(true)` when the line was longer.
pub fn read_line(
    reader: &mut impl BufRead,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Option<bool>> {
    buf.clear();
    let mut truncated = false;
    let mut any = false;
    loop {
        let available = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(any.then_some(truncated));
        }
        any = true;
        let (chunk, done) = match memchr::memchr(b'\n', available) {
            Some(i) => (&available[..i], Some(i + 1)),
            None => (available, None),
        };
        let room = max.saturating_sub(buf.len());
        if chunk.len() > room {
            truncated = true;
        }
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let used = done.unwrap_or(available.len());
        reader.consume(used);
        if done.is_some() {
            return Ok(Some(truncated));
        }
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

    #[test]
    fn lines_are_bounded_and_the_last_needs_no_newline() {
        let data = format!("a\n{}\nb", "x".repeat(100));
        let mut reader = std::io::BufReader::with_capacity(7, data.as_bytes());
        let mut buf = Vec::new();
        assert_eq!(read_line(&mut reader, &mut buf, 10).unwrap(), Some(false));
        assert_eq!(buf, b"a");
        assert_eq!(read_line(&mut reader, &mut buf, 10).unwrap(), Some(true));
        assert_eq!(buf.len(), 10);
        assert_eq!(read_line(&mut reader, &mut buf, 10).unwrap(), Some(false));
        assert_eq!(buf, b"b");
        assert_eq!(read_line(&mut reader, &mut buf, 10).unwrap(), None);
    }
}
