//! What differs between Istio releases and matters to the seeds, as data.
//! Each value is read from Istio's own source at the release's tag (public
//! istio/istio repository):
//!
//! | what | where | values |
//! |---|---|---|
//! | `protocolDetectionTimeout` default | `pkg/config/mesh/mesh.go` | 100 ms (≤ 1.6), 5 s (1.7, 1.8), 0 = none (≥ 1.9) |
//! | default outbound retry | `pilot/pkg/networking/core/route/retry/retry.go` | 2 retries on `connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes`, 503 retriable before 1.24 (`EXCLUDE_UNSAFE_503_FROM_DEFAULT_RETRY`, on from 1.24) |
//! | default inbound retry | `pilot/pkg/networking/core/route/route.go` | none before 1.24; from 1.24 2 retries on `reset-before-request` (`ENABLE_INBOUND_RETRY_POLICY`) |
//! | default TEXT access log | `pilot/pkg/model/telemetry_logging.go` (older: `pilot/pkg/networking/core/v1alpha3/accesslog.go`) | mixer status column ≤ 1.7; none 1.8; `%RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS%` from 1.9; `%UPSTREAM_CLUSTER_RAW%` from 1.23 |

use std::fmt;
use std::str::FromStr;

use serde_json::{json, Value};

/// An Istio release `1.<minor>` whose sidecar shape the lab builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Release {
    pub minor: u32,
}

/// The releases the lab knows the shape of: 1.6 (seed 000's) to 1.30.
pub const OLDEST: u32 = 6;
pub const NEWEST: u32 = 30;

impl FromStr for Release {
    type Err = String;

    fn from_str(s: &str) -> Result<Release, String> {
        let bad =
            || format!("`{s}`: expected an Istio release 1.{OLDEST} … 1.{NEWEST}, as \"1.28\"");
        let minor = s
            .strip_prefix("1.")
            .and_then(|m| m.parse::<u32>().ok())
            .ok_or_else(bad)?;
        if !(OLDEST..=NEWEST).contains(&minor) {
            return Err(bad());
        }
        Ok(Release { minor })
    }
}

impl fmt::Display for Release {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "1.{}", self.minor)
    }
}

impl<'de> serde::Deserialize<'de> for Release {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Release, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

const DEFAULT_RETRY_ON: &str =
    "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes";

impl Release {
    /// meshConfig `protocolDetectionTimeout` by default; `None` = 0s, no
    /// timeout (a sniffing listener waits for the first bytes).
    pub fn protocol_detection_timeout_ms(self) -> Option<u64> {
        match self.minor {
            0..=6 => Some(100),
            7..=8 => Some(5000),
            _ => None,
        }
    }

    /// Whether 503 is among the default outbound retriable status codes.
    pub fn retries_503(self) -> bool {
        self.minor < 24
    }

    /// Whether inbound routes retry `reset-before-request` by default.
    pub fn inbound_retry(self) -> bool {
        self.minor >= 24
    }

    /// The default outbound route retry policy (`retry.DefaultPolicy`).
    pub fn outbound_retry_policy(self) -> Value {
        let codes: &[u16] = if self.retries_503() { &[503] } else { &[] };
        let mut policy = json!({
            "retry_on": DEFAULT_RETRY_ON,
            "num_retries": 2,
            "retry_host_predicate": [{
                "name": "envoy.retry_host_predicates.previous_hosts",
                "typed_config": {"@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"},
            }],
            "host_selection_retry_max_attempts": 5,
        });
        if !codes.is_empty() {
            policy["retriable_status_codes"] = json!(codes);
        }
        policy
    }

    /// The default inbound route retry policy, if the release has one.
    pub fn inbound_retry_policy(self) -> Option<Value> {
        self.inbound_retry()
            .then(|| json!({"retry_on": "reset-before-request", "num_retries": 2}))
    }

    /// The default TEXT access-log format (meshConfig `accessLogFile` set,
    /// `accessLogEncoding: TEXT`, no `accessLogFormat`).
    pub fn access_log_format(self) -> String {
        let head =
            "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" \
%RESPONSE_CODE% %RESPONSE_FLAGS% ";
        let middle = match self.minor {
            0..=7 => "\"%DYNAMIC_METADATA(istio.mixer:status)%\" ",
            8 => "",
            _ => "%RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% ",
        };
        let cluster = if self.minor >= 23 {
            "%UPSTREAM_CLUSTER_RAW%"
        } else {
            "%UPSTREAM_CLUSTER%"
        };
        format!(
            "{head}{middle}\"%UPSTREAM_TRANSPORT_FAILURE_REASON%\" %BYTES_RECEIVED% %BYTES_SENT% \
%DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" \
\"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\" {cluster} \
%UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% \
%REQUESTED_SERVER_NAME% %ROUTE_NAME%\n"
        )
    }

    /// The ALPN Istio's HTTP chains sniff for plaintext (1.6 listed
    /// `http/1.0` too).
    pub fn plaintext_http_alpns(self) -> &'static [&'static str] {
        if self.minor <= 6 {
            &["http/1.0", "http/1.1", "h2c"]
        } else {
            &["http/1.1", "h2c"]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> Release {
        s.parse().unwrap()
    }

    #[test]
    fn releases_parse_and_refuse_what_the_lab_has_no_shape_for() {
        assert_eq!(r("1.28").minor, 28);
        assert_eq!(r("1.6").to_string(), "1.6");
        for bad in ["1.5", "1.31", "2.0", "28", "1.x", ""] {
            assert!(bad.parse::<Release>().is_err(), "{bad}");
        }
    }

    #[test]
    fn protocol_detection_timeout_by_release() {
        assert_eq!(r("1.6").protocol_detection_timeout_ms(), Some(100));
        assert_eq!(r("1.7").protocol_detection_timeout_ms(), Some(5000));
        assert_eq!(r("1.8").protocol_detection_timeout_ms(), Some(5000));
        assert_eq!(r("1.9").protocol_detection_timeout_ms(), None);
        assert_eq!(r("1.28").protocol_detection_timeout_ms(), None);
    }

    #[test]
    fn retries_by_release() {
        let old = r("1.23").outbound_retry_policy();
        assert_eq!(old["retriable_status_codes"], json!([503]));
        assert_eq!(old["num_retries"], 2);
        let new = r("1.24").outbound_retry_policy();
        assert!(new.get("retriable_status_codes").is_none());
        assert_eq!(new["retry_on"], DEFAULT_RETRY_ON);
        assert!(r("1.23").inbound_retry_policy().is_none());
        assert_eq!(
            r("1.24").inbound_retry_policy().unwrap()["retry_on"],
            "reset-before-request"
        );
    }

    #[test]
    fn the_text_log_format_by_release() {
        assert!(r("1.6").access_log_format().contains("istio.mixer:status"));
        assert!(!r("1.8")
            .access_log_format()
            .contains("RESPONSE_CODE_DETAILS"));
        let f22 = r("1.22").access_log_format();
        assert!(f22.contains("%RESPONSE_CODE_DETAILS%") && f22.contains("%UPSTREAM_CLUSTER% "));
        // From 1.23 the format is the one connlab's own Envoys write.
        assert_eq!(
            r("1.23").access_log_format(),
            crate::evidence::access_log::ISTIO_TEXT_FORMAT
        );
    }
}
