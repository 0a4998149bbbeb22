//! Istio's default TEXT access-log format by release, as data: the format
//! strings from istio/istio's own source at each release tag
//! (`pilot/pkg/networking/core/v1alpha3/listener.go` up to 1.7,
//! `.../v1alpha3/accesslog.go` 1.8–1.14, `pilot/pkg/model/telemetry_logging.go`
//! from 1.15; checked at tags 1.5.0 … 1.28.0). The same layout serves HTTP
//! and TCP lines (a TCP line prints `"- - -"` for the request and 0 for the
//! code). A new layout is a new row, not new code.

use crate::evidence::access_log::ISTIO_TEXT_FORMAT;

/// One layout of Istio's default TEXT format and the releases that print it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IstioFormat {
    /// First and last minor release of 1.x printing it (`None`: to date).
    pub from: u32,
    pub to: Option<u32>,
    pub format: &'static str,
}

/// 1.3–1.7 (`EnvoyTextLogFormat13`): Mixer's policy status in quotes
/// where `%RESPONSE_CODE_DETAILS%` now stands, so a line reads
/// `503 UC "-" "-" 0 0 …`.
pub const ISTIO_1_5: &str = "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% \
%PROTOCOL%\" %RESPONSE_CODE% %RESPONSE_FLAGS% \"%DYNAMIC_METADATA(istio.mixer:status)%\" \
\"%UPSTREAM_TRANSPORT_FAILURE_REASON%\" %BYTES_RECEIVED% %BYTES_SENT% \
%DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \"%REQ(X-FORWARDED-FOR)%\" \
\"%REQ(USER-AGENT)%\" \"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\" \
%UPSTREAM_CLUSTER% %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% \
%DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME% %ROUTE_NAME%\n";

/// 1.8 (and 1.9–1.10 proxies older than 1.9): Mixer's field gone, no
/// details yet.
pub const ISTIO_1_8: &str = "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% \
%PROTOCOL%\" %RESPONSE_CODE% %RESPONSE_FLAGS% \
\"%UPSTREAM_TRANSPORT_FAILURE_REASON%\" %BYTES_RECEIVED% %BYTES_SENT% \
%DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \"%REQ(X-FORWARDED-FOR)%\" \
\"%REQ(USER-AGENT)%\" \"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\" \
%UPSTREAM_CLUSTER% %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% \
%DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME% %ROUTE_NAME%\n";

/// The layouts, newest first (the order lines are tried in). 1.9–1.22
/// print `%UPSTREAM_CLUSTER%` where 1.23 on print `%UPSTREAM_CLUSTER_RAW%`:
/// the same column, one row.
pub const ISTIO_FORMATS: [IstioFormat; 3] = [
    IstioFormat {
        from: 9,
        to: None,
        format: ISTIO_TEXT_FORMAT,
    },
    IstioFormat {
        from: 5,
        to: Some(7),
        format: ISTIO_1_5,
    },
    IstioFormat {
        from: 8,
        to: Some(8),
        format: ISTIO_1_8,
    },
];

/// The fields that make a keep-alive race provable, appended to Istio's
/// format: which upstream connection carried each request, and how many
/// attempts the request took (a retry-hidden 503 shows as 2). Both are
/// Envoy access-log operators Istio's proxies accept.
pub const CONNECTION_FIELDS: &str = " %UPSTREAM_CONNECTION_ID% %UPSTREAM_REQUEST_ATTEMPT_COUNT%";

/// Istio's current format with `CONNECTION_FIELDS`: what the advice asks
/// users to deploy, read without `--format`.
pub fn with_connection_fields() -> String {
    let base = ISTIO_TEXT_FORMAT
        .strip_suffix('\n')
        .unwrap_or(ISTIO_TEXT_FORMAT);
    format!("{base}{CONNECTION_FIELDS}\n")
}

/// The ready-to-paste configuration for `with_connection_fields`: a
/// mesh-wide `meshConfig.accessLogFormat` (IstioOperator / Helm values), or
/// an extension provider selected by the Telemetry API.
pub fn collect_snippet() -> String {
    let format = with_connection_fields();
    let line = format.trim_end_matches('\n');
    format!(
        "# mesh-wide (IstioOperator spec / istiod Helm values):\n\
         meshConfig:\n  accessLogFile: /dev/stdout\n  accessLogEncoding: TEXT\n  accessLogFormat: |\n    {line}\n\
         ---\n\
         # or, instead, per workload or namespace with the Telemetry API (telemetry.istio.io/v1;\n\
         # v1alpha1 before Istio 1.22): this provider in meshConfig, and the Telemetry below\n\
         meshConfig:\n  extensionProviders:\n  - name: connlab-log\n    envoyFileAccessLog:\n      path: /dev/stdout\n      logFormat:\n        text: |\n          {line}\n\
         ---\napiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata:\n  name: connlab-log\n  namespace: istio-system\nspec:\n  accessLogging:\n  - providers:\n    - name: connlab-log\n"
    )
}

impl IstioFormat {
    /// "Istio 1.9+" or "Istio 1.5–1.7".
    pub fn releases(&self) -> String {
        match self.to {
            Some(to) if to == self.from => format!("Istio 1.{}", self.from),
            Some(to) => format!("Istio 1.{}–1.{to}", self.from),
            None => format!("Istio 1.{}+", self.from),
        }
    }

    /// Every release that prints it is older than 1.`minor`.
    pub fn before(&self, minor: u32) -> bool {
        self.to.is_some_and(|to| to < minor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::template::Template;

    #[test]
    fn every_layout_and_the_snippet_compile() {
        for f in ISTIO_FORMATS {
            Template::compile(f.format).unwrap();
        }
        Template::compile(&with_connection_fields()).unwrap();
        let snippet = collect_snippet();
        assert!(snippet.contains("%UPSTREAM_CONNECTION_ID% %UPSTREAM_REQUEST_ATTEMPT_COUNT%"));
        assert!(snippet.contains("kind: Telemetry"));
        assert_eq!(ISTIO_FORMATS[1].releases(), "Istio 1.5–1.7");
        assert!(ISTIO_FORMATS[2].before(24) && !ISTIO_FORMATS[0].before(24));
    }

    /// Three YAML documents; the format line is the same in both places.
    #[test]
    fn the_snippet_carries_the_format_in_both_places() {
        let snippet = collect_snippet();
        assert_eq!(snippet.split("\n---\n").count(), 3);
        let line = with_connection_fields();
        assert_eq!(snippet.matches(line.trim_end()).count(), 2);
    }
}
