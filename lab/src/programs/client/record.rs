//! What the client records: one [`Record`] per request, and the JSON lines
//! `connlab-client` prints (`request_line`, `summary_line`), parsed back by
//! [`parse_output`] for the checker.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::summary::Summary;
use crate::programs::http1::ErrorKind;

/// One request as the client saw it. Times are ms since the run started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub worker: u32,
    /// The request's number within its worker, from 0.
    pub seq: u64,
    /// When the worker began it (before connecting, when it had to).
    pub start_ms: f64,
    pub end_ms: f64,
    /// The response's status; `None` when there was no response.
    pub status: Option<u16>,
    pub error: Option<ErrorKind>,
    /// The connection's local address; `None` when connect failed.
    pub local: Option<SocketAddr>,
    /// Sent on a connection that had already carried a request.
    pub reused: bool,
    /// The response's `x-connlab` header.
    pub tag: Option<String>,
}

impl Record {
    /// The class counted in [`Summary::classes`]: the status (`"200"`,
    /// `"503"`), or the error (`"reset"`, `"eof"`, `"timeout"`,
    /// `"connect_111"`, `"protocol"`, `"unfinished"`).
    pub fn class(&self) -> String {
        match (self.status, self.error) {
            (Some(status), _) => status.to_string(),
            (None, Some(ErrorKind::Connect(errno))) => format!("connect_{errno}"),
            (None, Some(ErrorKind::Reset)) => "reset".into(),
            (None, Some(ErrorKind::Eof)) => "eof".into(),
            (None, Some(ErrorKind::Timeout)) => "timeout".into(),
            (None, Some(ErrorKind::Protocol)) => "protocol".into(),
            (None, Some(ErrorKind::Unfinished)) => "unfinished".into(),
            (None, None) => "unknown".into(),
        }
    }

    /// A response with a 2xx or 3xx status.
    pub fn is_ok(&self) -> bool {
        self.status.is_some_and(|s| (200..400).contains(&s))
    }

    /// `end_ms - start_ms`, to the µs the times are recorded in.
    pub fn latency_ms(&self) -> f64 {
        round_us(self.end_ms - self.start_ms)
    }
}

/// Milliseconds rounded to the µs, so sums and differences print short.
pub(super) fn round_us(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

/// One line of `connlab-client`'s stdout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Line {
    Request(Record),
    Summary(Summary),
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum LineRef<'a> {
    Request(&'a Record),
    Summary(&'a Summary),
}

/// `{"type":"request",...}` for stdout.
pub fn request_line(record: &Record) -> String {
    serde_json::to_string(&LineRef::Request(record)).unwrap_or_default()
}

/// `{"type":"summary",...}` for stdout.
pub fn summary_line(summary: &Summary) -> String {
    serde_json::to_string(&LineRef::Summary(summary)).unwrap_or_default()
}

/// What `connlab-client` printed, parsed back.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Output {
    pub records: Vec<Record>,
    /// Missing when the client was killed before it finished.
    pub summary: Option<Summary>,
}

/// Parses `connlab-client`'s stdout; blank lines are skipped, anything else
/// that is not one of its lines is an error.
pub fn parse_output(stdout: &str) -> Result<Output, serde_json::Error> {
    let mut output = Output::default();
    for line in stdout.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str(line)? {
            Line::Request(record) => output.records.push(record),
            Line::Summary(summary) => output.summary = Some(summary),
        }
    }
    Ok(output)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::summary::summarize;
    use super::*;

    pub(crate) fn record(seq: u64, start_ms: f64, end_ms: f64, status: Option<u16>) -> Record {
        Record {
            worker: 0,
            seq,
            start_ms,
            end_ms,
            status,
            error: None,
            local: Some("127.0.0.1:40000".parse().unwrap()),
            reused: seq > 0,
            tag: None,
        }
    }

    pub(crate) fn failed(seq: u64, start_ms: f64, end_ms: f64, error: ErrorKind) -> Record {
        Record {
            error: Some(error),
            ..record(seq, start_ms, end_ms, None)
        }
    }

    #[test]
    fn lines_round_trip_through_parse_output() {
        let mut records = vec![
            record(0, 0.5, 1.25, Some(200)),
            failed(1, 2.0, 3.0, ErrorKind::Connect(99)),
            failed(2, 4.0, 5.0, ErrorKind::Eof),
        ];
        records[0].tag = Some("keepalive_race".into());
        let summary = summarize(&records);
        let mut stdout: String = records.iter().map(|r| request_line(r) + "\n").collect();
        stdout += &summary_line(&summary);
        stdout += "\n\n";
        let output = parse_output(&stdout).unwrap();
        assert_eq!(output.records, records);
        assert_eq!(output.summary, Some(summary));
        assert!(parse_output("{\"type\":\"other\"}").is_err());
    }

    #[test]
    fn request_line_has_the_documented_shape() {
        let line = request_line(&failed(3, 1.0, 2.5, ErrorKind::Connect(111)));
        assert_eq!(
            line,
            r#"{"type":"request","worker":0,"seq":3,"start_ms":1.0,"end_ms":2.5,"status":null,"error":{"kind":"connect","errno":111},"local":"127.0.0.1:40000","reused":true,"tag":null}"#
        );
        let ok = request_line(&record(0, 0.0, 1.0, Some(503)));
        assert!(ok.contains(r#""status":503,"error":null"#), "{ok}");
    }
}
