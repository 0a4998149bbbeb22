//! Access logs: a file in a given format (Istio's TEXT by default), the
//! JSON fields on stdout the checker reads, and connlab as a wasm access
//! logger that only failed requests reach.

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

/// Which requests reach the failures-only logger: what the filter's
/// `Outcome::looks_healthy` says no to (a response flag, or more than one
/// attempt), decided by Envoy's native CEL access-log filter without
/// entering the wasm VM. A request with no upstream attempt and no flag
/// (the CEL attribute absent) is healthy to both.
pub const FAILURES_ONLY: &str = "response.flags != 0 || upstream.request_attempt_count != 1u";

/// connlab's plugin `root_id` (`connlab_log`, or `connlab_noop` for the
/// floor of the design) as a wasm access logger behind `FAILURES_ONLY`: a
/// healthy request costs Envoy that filter's evaluation and no VM entry.
/// The logger sees no healthy request, so it judges failures without the
/// connection's history (filter/README.md, Configuration).
pub fn failures_only_logger(wasm: &Path, root_id: &str, config: Option<&Value>) -> Value {
    json!({
        "name": "envoy.access_loggers.wasm",
        "filter": {"extension_filter": {
            "name": "envoy.access_loggers.extension_filters.cel",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.access_loggers.filters.cel.v3.ExpressionFilter",
                "expression": FAILURES_ONLY,
            },
        }},
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.wasm.v3.WasmAccessLog",
            "config": super::plugin(wasm, root_id, config),
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
