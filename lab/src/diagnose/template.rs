//! Text access-log formats, compiled from Envoy format strings into literal
//! and field pieces, and matched against lines. The Istio format is parsed
//! from `access_log::ISTIO_TEXT_FORMAT` itself, so the lab's Envoys and this
//! reader share one definition; a user's own `log_format` compiles the same
//! way (`connlab diagnose --format`).

use memchr::memmem;

/// The operators `diagnose` reads; every other one is matched and ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    StartTime,
    ResponseCode,
    ResponseFlags,
    Details,
    Termination,
    Failure,
    Duration,
    UpstreamHost,
    UpstreamLocal,
    UpstreamCluster,
    Attempts,
    UpstreamConnectionId,
    Route,
    /// `%COMMON_DURATION(DS_RX_BEG:US_CX_BEG:…)%`: a value only when the
    /// upstream connect began after the request arrived (a new connection).
    ConnectAfterStart,
    /// `%PROTOCOL%`: `-` on a TCP (tcp_proxy) line, which has no request.
    Protocol,
    /// `%BYTES_RECEIVED%` and `%BYTES_SENT%`: from and to the downstream.
    BytesReceived,
    BytesSent,
    Other,
}

impl Field {
    /// This field's bit in a field set (`Request::has`).
    pub fn bit(self) -> u32 {
        1 << (self as u32)
    }

    /// By operator name (`START_TIME`, `RESPONSE_FLAGS`, ...), as JSON keys
    /// spell them too (case-insensitive).
    pub fn from_operator(name: &str) -> Field {
        match name.to_ascii_uppercase().as_str() {
            "START_TIME" => Field::StartTime,
            "RESPONSE_CODE" => Field::ResponseCode,
            "RESPONSE_FLAGS" => Field::ResponseFlags,
            "RESPONSE_CODE_DETAILS" => Field::Details,
            "CONNECTION_TERMINATION_DETAILS" => Field::Termination,
            "UPSTREAM_TRANSPORT_FAILURE_REASON" => Field::Failure,
            "DURATION" => Field::Duration,
            "UPSTREAM_HOST" => Field::UpstreamHost,
            "UPSTREAM_LOCAL_ADDRESS" => Field::UpstreamLocal,
            "UPSTREAM_CLUSTER" | "UPSTREAM_CLUSTER_RAW" => Field::UpstreamCluster,
            "UPSTREAM_REQUEST_ATTEMPT_COUNT" => Field::Attempts,
            "UPSTREAM_CONNECTION_ID" => Field::UpstreamConnectionId,
            "ROUTE_NAME" => Field::Route,
            "PROTOCOL" => Field::Protocol,
            "BYTES_RECEIVED" => Field::BytesReceived,
            "BYTES_SENT" => Field::BytesSent,
            _ => Field::Other,
        }
    }

    /// By operator name and its arguments (`COMMON_DURATION(A:B:unit)`).
    pub fn from_operator_args(name: &str, args: &str) -> Field {
        if name == "COMMON_DURATION" && args.starts_with("DS_RX_BEG:US_CX_BEG:") {
            return Field::ConnectAfterStart;
        }
        Field::from_operator(name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(Vec<u8>),
    Field(Field),
}

/// A compiled text format.
#[derive(Debug, Clone)]
pub struct Template {
    pieces: Vec<Piece>,
    /// Which fields it has (bits of `Field::bit`), so a report can say
    /// what it cannot tell.
    pub fields: u32,
    /// Per piece, a searcher for a literal of two bytes or more, built once:
    /// building one per search cost more than the search.
    finders: Vec<Option<memmem::Finder<'static>>>,
}

/// Values of one matched line, by field; `None` for absent or `-`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Values<'a> {
    pub start_time: Option<&'a str>,
    pub code: Option<&'a str>,
    pub flags: Option<&'a str>,
    pub details: Option<&'a str>,
    pub termination: Option<&'a str>,
    pub failure: Option<&'a str>,
    pub duration: Option<&'a str>,
    pub upstream_host: Option<&'a str>,
    pub upstream_local: Option<&'a str>,
    pub cluster: Option<&'a str>,
    pub attempts: Option<&'a str>,
    pub connection_id: Option<&'a str>,
    pub route: Option<&'a str>,
    pub connect_after_start: Option<&'a str>,
    pub protocol: Option<&'a str>,
    pub bytes_received: Option<&'a str>,
    pub bytes_sent: Option<&'a str>,
}

impl<'a> Values<'a> {
    pub fn set(&mut self, field: Field, value: &'a str) {
        let value = match value {
            "" | "-" => return,
            v => Some(v),
        };
        match field {
            Field::StartTime => self.start_time = value,
            Field::ResponseCode => self.code = value,
            Field::ResponseFlags => self.flags = value,
            Field::Details => self.details = value,
            Field::Termination => self.termination = value,
            Field::Failure => self.failure = value,
            Field::Duration => self.duration = value,
            Field::UpstreamHost => self.upstream_host = value,
            Field::UpstreamLocal => self.upstream_local = value,
            Field::UpstreamCluster => self.cluster = value,
            Field::Attempts => self.attempts = value,
            Field::UpstreamConnectionId => self.connection_id = value,
            Field::Route => self.route = value,
            Field::ConnectAfterStart => self.connect_after_start = value,
            Field::Protocol => self.protocol = value,
            Field::BytesReceived => self.bytes_received = value,
            Field::BytesSent => self.bytes_sent = value,
            Field::Other => {}
        }
    }
}

/// A format string that cannot be matched reliably.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unterminated operator at byte {0}")]
    Unterminated(usize),
    #[error("operators {0} and {1} have nothing between them, so a line cannot be split")]
    Adjacent(String, String),
    #[error("the format has no %RESPONSE_CODE% or %RESPONSE_FLAGS%: nothing to diagnose")]
    NothingToRead,
}

impl Template {
    /// Compiles an Envoy format string (`%OPERATOR%`, `%OPERATOR(args)%`,
    /// `%OPERATOR(args):len%`; `%%` is a literal percent sign). A trailing
    /// newline is dropped: lines are matched without theirs.
    pub fn compile(format: &str) -> Result<Template, TemplateError> {
        let format = format.strip_suffix('\n').unwrap_or(format);
        let b = format.as_bytes();
        let mut pieces: Vec<Piece> = Vec::new();
        let mut names: Vec<String> = Vec::new();
        let mut literal = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] != b'%' {
                literal.push(b[i]);
                i += 1;
                continue;
            }
            if b.get(i + 1) == Some(&b'%') {
                literal.push(b'%');
                i += 2;
                continue;
            }
            let (name, args, next) = operator(b, i).ok_or(TemplateError::Unterminated(i))?;
            if literal.is_empty() {
                if let Some(Piece::Field(_)) = pieces.last() {
                    let before = names.last().cloned().unwrap_or_default();
                    return Err(TemplateError::Adjacent(before, name));
                }
            } else {
                pieces.push(Piece::Literal(std::mem::take(&mut literal)));
            }
            pieces.push(Piece::Field(Field::from_operator_args(&name, &args)));
            names.push(name);
            i = next;
        }
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal));
        }
        let fields = pieces
            .iter()
            .filter_map(|p| match p {
                Piece::Field(f) => Some(f.bit()),
                Piece::Literal(_) => None,
            })
            .fold(0, |set, bit| set | bit);
        if fields & (Field::ResponseCode.bit() | Field::ResponseFlags.bit()) == 0 {
            return Err(TemplateError::NothingToRead);
        }
        Ok(Template::new(pieces, fields))
    }

    fn new(pieces: Vec<Piece>, fields: u32) -> Template {
        let finders = pieces
            .iter()
            .map(|p| match p {
                Piece::Literal(lit) if lit.len() > 1 => Some(memmem::Finder::new(lit).into_owned()),
                _ => None,
            })
            .collect();
        Template {
            pieces,
            fields,
            finders,
        }
    }

    /// A template that matches nothing a log holds (only a line of two NULs).
    pub fn never() -> Template {
        Template::new(vec![Piece::Literal(b"\0\0".to_vec())], 0)
    }

    /// The same format without its leading `[%START_TIME%] `: how a line
    /// pasted from the quoted request on reads. `None` when the format does
    /// not start that way.
    pub fn untimed(&self) -> Option<Template> {
        let [Piece::Literal(open), Piece::Field(Field::StartTime), Piece::Literal(after), rest @ ..] =
            self.pieces.as_slice()
        else {
            return None;
        };
        let after = after.strip_prefix(b"] ")?;
        if open.as_slice() != b"[" || after.is_empty() {
            return None;
        }
        let mut pieces = vec![Piece::Literal(after.to_vec())];
        pieces.extend(rest.iter().cloned());
        Some(Template::new(pieces, self.fields & !Field::StartTime.bit()))
    }

    pub fn has(&self, field: Field) -> bool {
        self.fields & field.bit() != 0
    }

    /// Matches a whole line (no newline). A field ends at the first
    /// occurrence of the literal after it; `None` when the line does not
    /// fit (another format, or truncated).
    pub fn matches<'a>(&self, line: &'a str) -> Option<Values<'a>> {
        let mut m = Partial::default();
        self.advance(line, &mut m, self.pieces.len()).ok()?;
        (m.pos == line.len()).then_some(m.values)
    }

    /// Leading pieces this template and `other` match alike on any line:
    /// their equal leading pieces, less a last field (where a field ends
    /// depends on the piece after it). `Formats` matches those once for
    /// both (Istio's format with the connection fields is Istio's plus two
    /// fields).
    pub fn shared_with(&self, other: &Template) -> usize {
        let n = self
            .pieces
            .iter()
            .zip(&other.pieces)
            .take_while(|(a, b)| a == b)
            .count();
        match n.checked_sub(1).map(|last| &self.pieces[last]) {
            Some(Piece::Field(_)) => n - 1,
            _ => n,
        }
    }

    /// Matches pieces from `m.piece` up to `until` (at most all of them);
    /// `Err` with the index of the piece that did not fit.
    pub fn advance<'a>(
        &self,
        line: &'a str,
        m: &mut Partial<'a>,
        until: usize,
    ) -> Result<(), usize> {
        let bytes = line.as_bytes();
        let until = until.min(self.pieces.len());
        while m.piece < until {
            let fits = match &self.pieces[m.piece] {
                Piece::Literal(lit) => bytes[m.pos..].starts_with(lit).then(|| m.pos += lit.len()),
                Piece::Field(field) => {
                    let (end, after) = match self.pieces.get(m.piece + 1) {
                        Some(Piece::Literal(lit)) => match &self.finders[m.piece + 1] {
                            Some(finder) => finder.find(&bytes[m.pos..]),
                            None => lit
                                .first()
                                .and_then(|b| memchr::memchr(*b, &bytes[m.pos..])),
                        }
                        .map_or((None, 0), |at| (Some(m.pos + at), lit.len())),
                        _ => (Some(bytes.len()), 0),
                    };
                    // Both ends sit next to ASCII literals (or the line's
                    // ends), so they are char boundaries.
                    end.and_then(|end| line.get(m.pos..end)).map(|value| {
                        m.values.set(*field, value);
                        m.pos += value.len();
                        // The literal after it is where it was found: taken
                        // too, unless the match stops before it.
                        if after > 0 && m.piece + 1 < until {
                            m.pos += after;
                            m.piece += 1;
                        }
                    })
                }
            };
            if fits.is_none() {
                return Err(m.piece);
            }
            m.piece += 1;
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.pieces.len()
    }
}

/// A match in progress: the pieces matched so far, where the line's next
/// piece starts, and the values read.
#[derive(Debug, Default, Clone)]
pub struct Partial<'a> {
    piece: usize,
    pos: usize,
    pub values: Values<'a>,
}

impl Partial<'_> {
    /// The pieces matched so far.
    pub fn piece(&self) -> usize {
        self.piece
    }

    /// The whole line is matched.
    pub fn done(&self, template: &Template, line: &str) -> bool {
        self.piece == template.pieces.len() && self.pos == line.len()
    }
}

/// The operator starting at `b[at] == '%'`: its name, its arguments and the
/// index after its closing `%`.
fn operator(b: &[u8], at: usize) -> Option<(String, String, usize)> {
    let mut i = at + 1;
    let start = i;
    while i < b.len() && (b[i].is_ascii_uppercase() || b[i].is_ascii_digit() || b[i] == b'_') {
        i += 1;
    }
    if i == start {
        return None;
    }
    let name = String::from_utf8_lossy(&b[start..i]).into_owned();
    let mut args = String::new();
    if b.get(i) == Some(&b'(') {
        // Arguments may hold `%` (`%START_TIME(%s.%3f)%`): skip to `)`.
        let close = i + b[i..].iter().position(|&c| c == b')')?;
        args = String::from_utf8_lossy(&b[i + 1..close]).into_owned();
        i = close + 1;
    }
    if b.get(i) == Some(&b':') {
        i += 1;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
    }
    (b.get(i) == Some(&b'%')).then_some((name, args, i + 1))
}

/// Envoy's default access-log format (`envoy.access_loggers.file` with no
/// `log_format`, Envoy 1.40), which has no response details, no failure
/// reason and no upstream local address.
pub const ENVOY_DEFAULT_FORMAT: &str =
    "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" \
%RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% \
%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" \
\"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\"\n";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::access_log::ISTIO_TEXT_FORMAT;

    const ISTIO_LINE: &str = "[2026-12-01T02:44:26.123Z] \"GET /slow HTTP/1.1\" 503 UC \
upstream_reset_before_response_started{connection_termination} - \"-\" 0 95 1 - \"-\" \
\"curl/8.5.0\" \"5f1c0c8e-1\" \"envoy:10000\" \"172.18.0.2:8080\" backend 172.18.0.3:43210 \
172.18.0.3:10000 172.18.0.4:51000 - default";

    #[test]
    fn istio_format_reads_its_own_lines() {
        let t = Template::compile(ISTIO_TEXT_FORMAT).unwrap();
        let v = t.matches(ISTIO_LINE).unwrap();
        assert_eq!(v.start_time, Some("2026-12-01T02:44:26.123Z"));
        assert_eq!(v.code, Some("503"));
        assert_eq!(v.flags, Some("UC"));
        assert_eq!(
            v.details,
            Some("upstream_reset_before_response_started{connection_termination}")
        );
        assert_eq!(v.termination, None);
        assert_eq!(v.failure, None);
        assert_eq!(v.duration, Some("1"));
        assert_eq!(v.upstream_host, Some("172.18.0.2:8080"));
        assert_eq!(v.upstream_local, Some("172.18.0.3:43210"));
        assert_eq!(v.cluster, Some("backend"));
        assert_eq!(v.route, Some("default"));
    }

    #[test]
    fn formats_do_not_read_each_others_lines() {
        let istio = Template::compile(ISTIO_TEXT_FORMAT).unwrap();
        let envoy = Template::compile(ENVOY_DEFAULT_FORMAT).unwrap();
        let default_line = "[2026-12-01T02:44:26.123Z] \"GET / HTTP/1.1\" 503 UC 0 95 1 - \"-\" \
\"curl/8.5.0\" \"id-1\" \"envoy:10000\" \"172.18.0.2:8080\"";
        assert!(istio.matches(default_line).is_none());
        assert!(envoy.matches(ISTIO_LINE).is_none());
        let v = envoy.matches(default_line).unwrap();
        assert_eq!(
            (v.code, v.flags, v.duration),
            (Some("503"), Some("UC"), Some("1"))
        );
        assert!(!envoy.has(Field::UpstreamLocal) && !envoy.has(Field::Details));
    }

    #[test]
    fn truncated_lines_do_not_match() {
        let t = Template::compile(ISTIO_TEXT_FORMAT).unwrap();
        for cut in [10, 40, 100, ISTIO_LINE.len() - 9] {
            assert!(t.matches(&ISTIO_LINE[..cut]).is_none(), "{cut}");
        }
    }

    #[test]
    fn operators_with_arguments_and_bad_formats() {
        let t =
            Template::compile("%START_TIME(%s.%3f)% %RESPONSE_CODE% %REQ(X-A):10% 100%%").unwrap();
        let v = t.matches("1796093066.123 200 abc 100%").unwrap();
        assert_eq!(v.start_time, Some("1796093066.123"));
        assert_eq!(
            Template::compile("%RESPONSE_CODE%%DURATION%").unwrap_err(),
            TemplateError::Adjacent("RESPONSE_CODE".into(), "DURATION".into())
        );
        assert!(matches!(
            Template::compile("%RESPONSE_CODE"),
            Err(TemplateError::Unterminated(0))
        ));
        assert_eq!(
            Template::compile("%DURATION%").unwrap_err(),
            TemplateError::NothingToRead
        );
    }
}
