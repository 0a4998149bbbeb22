//! Access logs: a file in a given format (Istio's TEXT by default), and the
//! JSON fields on stdout the checker reads.

use std::path::Path;

use serde_json::{json, Value};

use crate::evidence::access_log::ISTIO_TEXT_FORMAT;

/// A file access log printing `format` (one line per request).
pub fn file_access_log(path: &Path, format: &str) -> Value {
    json!({
        "name": "envoy.access_loggers.file",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
            "path": path,
            "log_format": {"text_format_source": {"inline_string": format}},
        },
    })
}

/// Istio's default TEXT access log to `path`: what a mesh operator reads.
pub fn istio_access_log(path: &Path) -> Value {
    file_access_log(path, ISTIO_TEXT_FORMAT)
}

/// The fields the lab's checker reads, one JSON object per request.
pub const JSON_ACCESS_LOG_FIELDS: &[(&str, &str)] = &[
    ("code", "%RESPONSE_CODE%"),
    ("flags", "%RESPONSE_FLAGS%"),
    ("details", "%RESPONSE_CODE_DETAILS%"),
    ("attempts", "%UPSTREAM_REQUEST_ATTEMPT_COUNT%"),
    ("upstream_local", "%UPSTREAM_LOCAL_ADDRESS%"),
    ("failure", "%UPSTREAM_TRANSPORT_FAILURE_REASON%"),
];

/// A JSON access log on Envoy's stdout with `JSON_ACCESS_LOG_FIELDS`.
pub fn stdout_json_access_log() -> Value {
    let fields: serde_json::Map<String, Value> = JSON_ACCESS_LOG_FIELDS
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    json!({
        "name": "envoy.access_loggers.stdout",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
            "log_format": {"json_format": fields},
        },
    })
}
