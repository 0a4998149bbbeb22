//! One log line to what it says, with its format detected per line: Istio's
//! TEXT access log, Envoy's default text format, a user's own format, a JSON
//! access log keyed by operator names, or one of the filter's events (with
//! or without Envoy's log prefix). Never panics on any input.

use std::borrow::Cow;

use serde::Serialize;
use serde_json::{Map, Value};

use super::template::{Field, Template, Values};
use super::time;
use crate::evidence::access_log::ISTIO_TEXT_FORMAT;

/// Where a request line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// Istio's default TEXT access log.
    IstioText,
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
            Format::EnvoyDefault => "Envoy default",
            Format::Custom => "--format",
            Format::Json => "JSON",
        }
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
    /// The fields its format has (bits of `Field::bit`), present or `-`.
    pub has: u32,
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
    pub istio: Template,
    pub envoy: Template,
}

impl Formats {
    pub fn new(custom: Option<Template>) -> Self {
        Formats {
            custom,
            // Both are constants whose compilation is tested; should one ever
            // fail, matching nothing beats a panic.
            istio: Template::compile(ISTIO_TEXT_FORMAT).unwrap_or_else(|_| Template::never()),
            envoy: Template::compile(super::template::ENVOY_DEFAULT_FORMAT)
                .unwrap_or_else(|_| Template::never()),
        }
    }

    pub fn template(&self, format: Format) -> Option<&Template> {
        match format {
            Format::IstioText => Some(&self.istio),
            Format::EnvoyDefault => Some(&self.envoy),
            Format::Custom => self.custom.as_ref(),
            Format::Json => None,
        }
    }

    /// Parses one line (without its newline).
    pub fn parse<'a>(&self, line: &'a str) -> Line<'a> {
        let line = line.trim_end_matches(['\r', '\n']);
        let trimmed = line.trim_start();
        if trimmed.is_empty() {
            return Line::Other;
        }
        // JSON: an access log, or one of the filter's events, alone on the
        // line or after Envoy's log prefix (`... wasm log ...: {"v":1,...}`).
        let json_at = if trimmed.starts_with('{') {
            Some(0)
        } else if trimmed.contains("\"event\":") {
            trimmed.find("{\"")
        } else {
            None
        };
        if let Some(at) = json_at {
            return json(trimmed, at);
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
        if looks_like_access_log(trimmed) {
            Line::Malformed("looks like an access log but fits no known format (truncated?)")
        } else {
            Line::Other
        }
    }

    fn text<'a>(&self, line: &'a str) -> Option<Line<'a>> {
        let tries = [
            (Format::Custom, self.custom.as_ref()),
            (Format::IstioText, Some(&self.istio)),
            (Format::EnvoyDefault, Some(&self.envoy)),
        ];
        for (format, template) in tries {
            let Some(values) = template.and_then(|t| t.matches(line)) else {
                continue;
            };
            if let Some(mut request) = from_values(&values) {
                request.has = template.map_or(0, |t| t.fields);
                return Some(Line::Request(format, request));
            }
        }
        None
    }
}

/// `[2026-...` followed by a quoted request: an access-log line.
fn looks_like_access_log(line: &str) -> bool {
    let b = line.as_bytes();
    b.len() > 2 && b[0] == b'[' && b[1].is_ascii_digit() && line.contains("] \"")
}

fn number<T: std::str::FromStr>(text: Option<&str>) -> Result<Option<T>, ()> {
    match text {
        None => Ok(None),
        Some(t) => t.trim().parse().map(Some).map_err(|_| ()),
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
        has: 0,
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

/// The JSON object at byte `at`: one of the filter's events (it has `v`
/// and `event`), else a JSON access log, whose keys are operator names in
/// any case (`response_flags`, `RESPONSE_FLAGS`).
fn json(line: &str, at: usize) -> Line<'static> {
    let map: Map<String, Value> = match serde_json::from_str(&line[at..]) {
        Ok(map) => map,
        Err(_) => return Line::Malformed("JSON that does not parse (truncated?)"),
    };
    if map.contains_key("v") {
        return event(line, at, &map);
    }
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
        Some(request) => Line::Request(Format::Json, into_owned(Request { has, ..request })),
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
        has: r.has,
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
    })
}

#[cfg(test)]
mod tests;
