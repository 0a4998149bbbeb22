//! One log line to what it says, with its format detected per line: Istio's
//! TEXT access log, Envoy's default text format, a user's own format, a JSON
//! access log keyed by operator names, or one of the filter's events (with
//! or without Envoy's log prefix). Never panics on any input.

use std::borrow::Cow;

use connlab_filter::diagnose::Confidence;
use serde::Serialize;
use serde_json::{Map, Value};

use super::istio_formats::{self, ISTIO_FORMATS};
use super::template::{Field, Partial, Template, Values};
use super::time;

/// `"event":`, searched for in every line that does not start with `{`:
/// a searcher built once is several times faster than `str::contains`.
static EVENT_KEY: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\"event\":"));

/// Where a request line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// Istio's default TEXT access log (1.9 on).
    IstioText,
    /// Istio 1.5–1.7's default TEXT access log (Mixer's status field).
    IstioText15,
    /// Istio 1.8's default TEXT access log (no details fields).
    IstioText18,
    /// Istio's format with `istio_formats::CONNECTION_FIELDS`, as the
    /// advice asks for.
    IstioConnectionFields,
    /// A known text format whose line was pasted without its leading
    /// `[START_TIME]`.
    Untimed,
    /// Envoy's default access-log format.
    EnvoyDefault,
    /// The format given with `--format`.
    Custom,
    /// A JSON access log with operator names as keys.
    Json,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::IstioText => "Istio TEXT",
            Format::IstioText15 => "Istio TEXT 1.5–1.7",
            Format::IstioText18 => "Istio TEXT 1.8",
            Format::IstioConnectionFields => "Istio TEXT + connection fields",
            Format::Untimed => "without [START_TIME]",
            Format::EnvoyDefault => "Envoy default",
            Format::Custom => "--format",
            Format::Json => "JSON",
        }
    }

    /// Every Istio release that prints this format is older than
    /// 1.`minor` (so its defaults, e.g. retrying 503, apply).
    pub fn istio_before(self, minor: u32) -> bool {
        let row = match self {
            Format::IstioText15 => ISTIO_FORMATS[1],
            Format::IstioText18 => ISTIO_FORMATS[2],
            _ => return false,
        };
        row.before(minor)
    }
}

/// What an access-log line says about one request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Request<'a> {
    pub start_ns: Option<u64>,
    pub duration_ms: Option<u64>,
    pub code: Option<i64>,
    pub flags: u64,
    pub flags_text: Cow<'a, str>,
    pub details: Option<Cow<'a, str>>,
    pub termination: Option<Cow<'a, str>>,
    pub failure: Option<Cow<'a, str>>,
    pub attempts: Option<u64>,
    pub upstream_host: Option<Cow<'a, str>>,
    pub upstream_local: Option<Cow<'a, str>>,
    pub cluster: Option<Cow<'a, str>>,
    pub connection_id: Option<u64>,
    /// µs (or the format's unit) from the request's arrival to the start
    /// of its upstream connect: present only on a connection opened for it.
    pub connect_after_start: Option<Cow<'a, str>>,
    /// The fields its format has (bits of `Field::bit`), present or `-`.
    pub has: u32,
    /// A TCP (tcp_proxy) line: its format has `%PROTOCOL%` and it is `-`
    /// (no HTTP request on the connection).
    pub tcp: bool,
    /// Bytes from the downstream and to it (`%BYTES_RECEIVED%`,
    /// `%BYTES_SENT%`).
    pub bytes_received: Option<u64>,
    pub bytes_sent: Option<u64>,
}

impl Request<'_> {
    /// The request with the field set of the format it was read in: a line
    /// is TCP only when its format has `%PROTOCOL%` (and it printed `-`).
    fn with_fields(mut self, has: u32) -> Self {
        self.has = has;
        self.tcp &= has & Field::Protocol.bit() != 0;
        self
    }
}

/// One of the filter's own events (`{"v":1,"event":...}`), as logged.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Event {
    pub time_ns: Option<u64>,
    /// `http` or `conn`.
    pub kind: String,
    pub diagnosis: Option<String>,
    pub explain: Option<String>,
    pub code: Option<i64>,
    pub flags: String,
    pub details: Option<String>,
    pub nth: Option<u64>,
    pub idle_ms: Option<u64>,
    pub local: Option<String>,
    pub peer: Option<String>,
    /// `confirmed` or `likely`; absent from older filters' events.
    pub confidence: Option<Confidence>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Line<'a> {
    Request(Format, Request<'a>),
    Event(Event),
    /// Not a format diagnose reads (Envoy's own log lines, blank lines).
    Other,
    /// Looked like a format diagnose reads but did not parse.
    Malformed(&'static str),
}

/// The text formats to try, in order: the user's own first.
#[derive(Debug, Clone)]
pub struct Formats {
    pub custom: Option<Template>,
    /// The known formats, in the order they are tried.
    pub known: Vec<(Format, Template)>,
    /// The same without their leading `[%START_TIME%] `, for pasted lines.
    pub untimed: Vec<Template>,
    /// For each known format, the leading pieces it matches alike with the
    /// next one (`Template::shared_with`): matched once for both.
    shared_with_next: Vec<usize>,
}

/// Longest JSON entry spread over several lines that is joined (a longer
/// one is counted as not read).
pub const MAX_JOINED: usize = 64 * 1024;

impl Formats {
    pub fn new(custom: Option<Template>) -> Self {
        // Constants whose compilation is tested; should one ever fail,
        // matching nothing beats a panic.
        let compile = |f: &str| Template::compile(f).unwrap_or_else(|_| Template::never());
        let mut known = vec![(
            Format::IstioConnectionFields,
            compile(&istio_formats::with_connection_fields()),
        )];
        for (format, row) in [Format::IstioText, Format::IstioText15, Format::IstioText18]
            .into_iter()
            .zip(ISTIO_FORMATS)
        {
            known.push((format, compile(row.format)));
        }
        known.push((
            Format::EnvoyDefault,
            compile(super::template::ENVOY_DEFAULT_FORMAT),
        ));
        let untimed = custom
            .iter()
            .chain(known.iter().map(|(_, t)| t))
            .filter_map(Template::untimed)
            .collect();
        let shared_with_next = known
            .iter()
            .zip(known.iter().skip(1))
            .map(|((_, t), (_, next))| t.shared_with(next))
            .chain([0])
            .collect();
        Formats {
            custom,
            known,
            untimed,
            shared_with_next,
        }
    }

    pub fn template(&self, format: Format) -> Option<&Template> {
        match format {
            Format::Custom => self.custom.as_ref(),
            other => self.known.iter().find(|(f, _)| *f == other).map(|(_, t)| t),
        }
    }

    /// Parses one line (without its newline).
    pub fn parse<'a>(&self, line: &'a str) -> Line<'a> {
        let line = line.trim_end_matches(['\r', '\n']);
        let trimmed = line.trim_start();
        // Blank, or the brackets and commas of a JSON array export.
        if trimmed
            .trim_end()
            .bytes()
            .all(|b| matches!(b, b'[' | b']' | b','))
        {
            return Line::Other;
        }
        // JSON: an access log, or one of the filter's events, alone on the
        // line or after Envoy's log prefix (`... wasm log ...: {"v":1,...}`).
        let json_at = if trimmed.starts_with('{') {
            Some(0)
        } else if EVENT_KEY.find(trimmed.as_bytes()).is_some() {
            trimmed.find("{\"")
        } else {
            None
        };
        if let Some(at) = json_at {
            return self.json(trimmed, at);
        }
        if let Some(found) = self.text(trimmed) {
            return found;
        }
        // `kubectl logs --timestamps` or `--prefix` put text before the
        // entry: try again from the first '['.
        if let Some(at) = trimmed.find('[').filter(|&at| at > 0) {
            if let Some(found) = self.text(&trimmed[at..]) {
                return found;
            }
        }
        // Pasted without the leading `[START_TIME]`: from the quoted
        // request on.
        if let Some(at) = trimmed.find('"') {
            for template in &self.untimed {
                let found = template
                    .matches(&trimmed[at..])
                    .and_then(|v| from_values(&v));
                if let Some(request) = found {
                    return Line::Request(Format::Untimed, request.with_fields(template.fields));
                }
            }
        }
        if looks_like_access_log(trimmed) {
            Line::Malformed("looks like an access log but fits no known format (truncated?)")
        } else if is_proxy_log(trimmed) {
            Line::Other
        } else {
            Line::Malformed(
                "fits no format diagnose reads (an access log in another format? give it with \
                 --format)",
            )
        }
    }

    /// The first format (the user's, then the known ones in order) that
    /// matches the line with numbers where it has numbers.
    fn text<'a>(&self, line: &'a str) -> Option<Line<'a>> {
        if let Some(template) = &self.custom {
            if let Some(request) = template.matches(line).and_then(|v| from_values(&v)) {
                return Some(Line::Request(
                    Format::Custom,
                    request.with_fields(template.fields),
                ));
            }
        }
        // The known formats' shared leading pieces are matched once: each
        // format starts from where the one before it stood after them, or
        // fails where it failed inside them. The same answers as matching
        // each from the start, for less than half the work on Istio's
        // lines.
        let mut snapshot: Option<Partial<'a>> = None;
        let mut failed_at = usize::MAX;
        let mut shared = 0;
        for ((format, template), &next) in self.known.iter().zip(&self.shared_with_next) {
            let mut m = Partial::default();
            if shared > 0 {
                if failed_at < shared {
                    shared = next;
                    snapshot = None;
                    continue;
                }
                if let Some(at) = snapshot.take() {
                    m = at;
                }
            }
            (snapshot, failed_at, shared) = (None, usize::MAX, next);
            // What the next format shares with this one, kept for it.
            if m.piece() <= next {
                match template.advance(line, &mut m, next) {
                    Ok(()) => snapshot = Some(m.clone()),
                    Err(at) => {
                        failed_at = at;
                        continue;
                    }
                }
            }
            if template.advance(line, &mut m, template.len()).is_err() || !m.done(template, line) {
                continue;
            }
            if let Some(request) = from_values(&m.values) {
                return Some(Line::Request(*format, request.with_fields(template.fields)));
            }
        }
        None
    }

    /// The JSON object at byte `at`: one of the filter's events (it has `v`
    /// and `event`), a JSON access log (keys are operator names in any
    /// case: `response_flags`, `RESPONSE_FLAGS`), or a log shipper's
    /// envelope around a line (Docker's json-file `log`, Loki's `line`,
    /// Cloud Logging's `textPayload` or `jsonPayload`), read inside.
    fn json(&self, line: &str, at: usize) -> Line<'static> {
        let map: Map<String, Value> = match serde_json::from_str(&line[at..]) {
            Ok(map) => map,
            Err(_) => return Line::Malformed("JSON that does not parse (truncated?)"),
        };
        if map.contains_key("v") {
            return event(line, at, &map);
        }
        let read = access_json(&map);
        if !matches!(read, Line::Other) {
            return read;
        }
        if let Some(Value::Object(payload)) = map.get("jsonPayload") {
            return access_json(payload);
        }
        for key in ["log", "line", "textPayload", "message", "MESSAGE"] {
            if let Some(Value::String(inner)) = map.get(key) {
                // Shorter than the line it came from: the recursion ends.
                let inner = inner.trim_end_matches(['\n', '\r']);
                return match self.parse(inner) {
                    Line::Request(f, r) => Line::Request(f, into_owned(r)),
                    Line::Event(e) => Line::Event(e),
                    Line::Other => Line::Other,
                    Line::Malformed(why) => Line::Malformed(why),
                };
            }
        }
        // A structured log line of the proxy's agent (zap: `level`, `msg`).
        if map.contains_key("level") || map.contains_key("msg") {
            return Line::Other;
        }
        Line::Malformed("JSON with no access-log fields and no log line inside")
    }
}

/// Envoy's or istio-proxy's own log lines: `[2026-12-01 02:44:26.123][12][info]…`
/// or `2026-12-01T02:44:26.123456Z\tinfo\t…` (a level after the time).
fn is_proxy_log(line: &str) -> bool {
    let b = line.as_bytes();
    if b.len() > 2 && b[0] == b'[' && b[1].is_ascii_digit() && line.contains("][") {
        return true;
    }
    let mut words = line.split_whitespace();
    let time = words.next().and_then(time::parse_ns);
    let level = words.next().map(str::to_ascii_lowercase);
    time.is_some()
        && level.is_some_and(|l| {
            [
                "trace", "debug", "info", "warn", "warning", "error", "critical",
            ]
            .contains(&l.as_str())
        })
}

/// `[2026-...` followed by a quoted request: an access-log line.
fn looks_like_access_log(line: &str) -> bool {
    let b = line.as_bytes();
    b.len() > 2 && b[0] == b'[' && b[1].is_ascii_digit() && line.contains("] \"")
}

fn number<T: std::str::FromStr>(text: Option<&str>) -> Result<Option<T>, ()> {
    match text {
        None => Ok(None),
        // Trimmed only when it does not parse as it is: trimming first cost
        // more than the parse on every field of every line.
        Some(t) => t
            .parse()
            .or_else(|_| t.trim().parse())
            .map(Some)
            .map_err(|_| ()),
    }
}

/// A matched text line to a request; `None` when a numeric field is not a
/// number (the line belongs to another format).
fn from_values<'a>(v: &Values<'a>) -> Option<Request<'a>> {
    let flags_text = v.flags.unwrap_or("");
    Some(Request {
        start_ns: v.start_time.and_then(time::parse_ns),
        duration_ms: number(v.duration).ok()?,
        code: number(v.code).ok()?,
        flags: connlab_filter::flags::from_short_names(flags_text),
        flags_text: Cow::Borrowed(flags_text),
        details: v.details.map(Cow::Borrowed),
        termination: v.termination.map(Cow::Borrowed),
        failure: v.failure.map(Cow::Borrowed),
        attempts: number(v.attempts).ok()?,
        upstream_host: v.upstream_host.map(Cow::Borrowed),
        upstream_local: v.upstream_local.map(Cow::Borrowed),
        cluster: v.cluster.map(Cow::Borrowed),
        connection_id: number(v.connection_id).ok()?,
        connect_after_start: v.connect_after_start.map(Cow::Borrowed),
        has: 0,
        // Until `with_fields` says the format has the field at all.
        tcp: v.protocol.is_none(),
        bytes_received: number(v.bytes_received).ok()?,
        bytes_sent: number(v.bytes_sent).ok()?,
    })
}

fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if s.is_empty() || s == "-" => None,
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A JSON access log: `Other` when it has neither a code nor flags.
fn access_json(map: &Map<String, Value>) -> Line<'static> {
    let fields: Vec<(Field, Option<String>)> = map
        .iter()
        .map(|(k, v)| (Field::from_operator(k), text_of(v)))
        .filter(|(f, _)| *f != Field::Other)
        .collect();
    let has = fields.iter().fold(0, |set, (f, _)| set | f.bit());
    let owned: Vec<(Field, String)> = fields
        .into_iter()
        .filter_map(|(f, v)| Some((f, v?)))
        .collect();
    let mut values = Values::default();
    for (field, text) in &owned {
        values.set(*field, text);
    }
    if values.code.is_none() && values.flags.is_none() {
        return Line::Other;
    }
    match from_values(&values) {
        Some(request) => Line::Request(Format::Json, into_owned(request.with_fields(has))),
        None => Line::Malformed("JSON access log with a non-numeric code, duration or count"),
    }
}

fn own(text: Option<Cow<'_, str>>) -> Option<Cow<'static, str>> {
    text.map(|t| Cow::Owned(t.into_owned()))
}

pub fn into_owned(r: Request<'_>) -> Request<'static> {
    Request {
        start_ns: r.start_ns,
        duration_ms: r.duration_ms,
        code: r.code,
        flags: r.flags,
        flags_text: Cow::Owned(r.flags_text.into_owned()),
        details: own(r.details),
        termination: own(r.termination),
        failure: own(r.failure),
        attempts: r.attempts,
        upstream_host: own(r.upstream_host),
        upstream_local: own(r.upstream_local),
        cluster: own(r.cluster),
        connection_id: r.connection_id,
        connect_after_start: own(r.connect_after_start),
        has: r.has,
        tcp: r.tcp,
        bytes_received: r.bytes_received,
        bytes_sent: r.bytes_sent,
    }
}

/// A filter event at byte `at`; the time comes from Envoy's log prefix
/// (`[2026-12-01 02:44:26.123]...`) or Istio's (`2026-12-01T02:44:26.123Z\t`).
fn event(line: &str, at: usize, map: &Map<String, Value>) -> Line<'static> {
    let str_at = |path: &[&str]| -> Option<String> {
        let (first, rest) = path.split_first()?;
        let mut v = map.get(*first)?;
        for key in rest {
            v = v.get(key)?;
        }
        text_of(v)
    };
    let u64_at = |path: &[&str]| str_at(path).and_then(|t| t.parse().ok());
    let Some(kind) = str_at(&["event"]) else {
        return Line::Malformed("filter event without an `event` field");
    };
    let prefix = line[..at].trim_start().trim_start_matches('[');
    let time_ns = prefix
        .get(..23)
        .and_then(time::parse_ns)
        .or_else(|| prefix.split_whitespace().next().and_then(time::parse_ns));
    Line::Event(Event {
        time_ns,
        kind,
        diagnosis: str_at(&["diagnosis"]),
        explain: str_at(&["explain"]),
        code: str_at(&["code"]).and_then(|t| t.parse().ok()),
        flags: str_at(&["flags"]).unwrap_or_default(),
        details: str_at(&["details"]),
        nth: u64_at(&["upstream", "nth"]),
        idle_ms: u64_at(&["upstream", "idle_ms"]),
        local: str_at(&["upstream", "local"]),
        peer: str_at(&["upstream", "peer"]),
        confidence: match str_at(&["confidence"]).as_deref() {
            Some("confirmed") => Some(Confidence::Confirmed),
            Some("likely") => Some(Confidence::Likely),
            _ => None,
        },
    })
}

#[cfg(test)]
mod tests;
