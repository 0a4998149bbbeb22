//! What the client records: one [`Record`] per request, on the run's clock.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

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
    /// A library client's own error text for a failed request (reqwest's
    /// error with its causes, the Python exception, Node's `err.code`), as
    /// the service would log it; connlab-client writes none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub library_error: Option<String>,
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

#[cfg(test)]
pub(crate) mod tests {
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
            library_error: None,
        }
    }

    pub(crate) fn failed(seq: u64, start_ms: f64, end_ms: f64, error: ErrorKind) -> Record {
        Record {
            error: Some(error),
            ..record(seq, start_ms, end_ms, None)
        }
    }
}
