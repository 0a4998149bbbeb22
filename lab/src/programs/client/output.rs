//! The record format on the wire: the JSON lines `connlab-client` prints
//! (`request_line` per request, then `summary_line`), parsed back by
//! [`parse_output`] for the checker.

use serde::{Deserialize, Serialize};

use super::record::Record;
use super::summary::Summary;

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
mod tests {
    use super::*;
    use crate::programs::client::record::tests::{failed, record};
    use crate::programs::client::summary::summarize;
    use crate::programs::http1::ErrorKind;

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
