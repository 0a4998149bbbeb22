//! The events the filter logs: one JSON object per log message, versioned.
//! The field names are a contract (README "Events"); add fields, never
//! rename them without bumping `v`.

use serde::Serialize;

pub const VERSION: u32 = 1;

/// Envoy's side and the backend's side of the upstream connection.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct Upstream {
    /// `upstream.local_address`: the pooled connection's identity (wasm has
    /// no upstream connection id).
    pub local: Option<String>,
    /// `upstream.address`.
    pub peer: Option<String>,
    /// 1 = the first request on that upstream connection; null when the
    /// connection's start is not known (`history` `unknown`, or evicted).
    pub nth: Option<u64>,
    /// How long the connection sat idle before this request; null on nth 1.
    pub idle_ms: Option<u64>,
    pub age_ms: Option<u64>,
    /// `first` (the connection was opened for this request), `reused` (an
    /// earlier request on it was seen: `idle_ms` is known) or `unknown`
    /// (its history predates what the filter saw); null without a
    /// connection.
    pub history: Option<&'static str>,
    /// The reuse table had evicted this connection (it was full): `nth`
    /// counts from when it was seen again.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub forgotten: bool,
}

/// `"event":"http"`, logged when a request ends.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct HttpEvent {
    pub conn: Option<u64>,
    pub upstream: Upstream,
    /// `upstream.request_attempt_count`.
    pub attempts: Option<u64>,
    pub code: Option<i64>,
    pub flags: String,
    /// `response.code_details`.
    pub details: Option<String>,
    /// `upstream.transport_failure_reason`.
    pub failure: Option<String>,
    pub diagnosis: Option<&'static str>,
    pub explain: Option<String>,
    /// `confirmed` or `likely`, with a diagnosis.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confidence: Option<crate::diagnose::Confidence>,
}

/// `"event":"conn"`, logged when a downstream connection closes (network
/// filter).
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct ConnEvent {
    pub conn: Option<u64>,
    /// ms from accept to the first byte; null when none arrived.
    pub first_byte_ms: Option<u64>,
    /// `tls` | `http1` | `http2` | `other` | `none`.
    pub class: &'static str,
    pub sni: Option<String>,
    pub alpn: Vec<String>,
    /// The request method, for `http1`.
    pub method: Option<String>,
    /// `xds.filter_chain_name`.
    pub chain: Option<String>,
    /// `connection.transport_failure_reason`.
    pub tls_failure: Option<String>,
    pub diagnosis: Option<&'static str>,
    pub explain: Option<String>,
}

impl ConnEvent {
    pub fn to_json(&self) -> String {
        to_json("conn", self)
    }
}

/// `"event":"suppressed"`: how many events the rate limit held back in the
/// last second (logged once a second while it holds any back).
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct SuppressedEvent {
    /// `connlab_http` or `connlab_net`.
    pub plugin: &'static str,
    pub suppressed: u64,
    pub limit_per_second: u64,
}

impl SuppressedEvent {
    pub fn to_json(&self) -> String {
        to_json("suppressed", self)
    }
}

#[derive(Serialize)]
struct Envelope<'a, T: Serialize> {
    v: u32,
    event: &'a str,
    #[serde(flatten)]
    body: &'a T,
}

impl HttpEvent {
    pub fn to_json(&self) -> String {
        to_json("http", self)
    }
}

fn to_json<T: Serialize>(event: &str, body: &T) -> String {
    let envelope = Envelope {
        v: VERSION,
        event,
        body,
    };
    // Serializing plain structs of strings and numbers cannot fail; if it ever
    // did, an event saying so beats a panic in the host.
    serde_json::to_string(&envelope)
        .unwrap_or_else(|_| format!(r#"{{"v":{VERSION},"event":"{event}","error":"serialize"}}"#))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_event_shape() {
        let event = HttpEvent {
            conn: Some(7),
            upstream: Upstream {
                local: Some("127.0.0.1:40000".into()),
                peer: None,
                nth: Some(2),
                idle_ms: Some(5900),
                age_ms: Some(6000),
                history: Some("reused"),
                forgotten: false,
            },
            attempts: Some(1),
            code: Some(503),
            flags: "UC".into(),
            details: Some("upstream_reset_before_response_started{connection_termination}".into()),
            failure: None,
            diagnosis: Some("keepalive_race"),
            explain: Some("x".into()),
            confidence: None,
        };
        assert_eq!(
            event.to_json(),
            concat!(
                r#"{"v":1,"event":"http","conn":7,"upstream":{"local":"127.0.0.1:40000","peer":null,"#,
                r#""nth":2,"idle_ms":5900,"age_ms":6000,"history":"reused"},"attempts":1,"code":503,"flags":"UC","#,
                r#""details":"upstream_reset_before_response_started{connection_termination}","#,
                r#""failure":null,"diagnosis":"keepalive_race","explain":"x"}"#
            )
        );
    }

    #[test]
    fn suppressed_event_shape() {
        let event = SuppressedEvent {
            plugin: "connlab_http",
            suppressed: 500,
            limit_per_second: 100,
        };
        assert_eq!(
            event.to_json(),
            r#"{"v":1,"event":"suppressed","plugin":"connlab_http","suppressed":500,"limit_per_second":100}"#
        );
    }

    #[test]
    fn conn_event_shape() {
        let event = ConnEvent {
            conn: Some(3),
            first_byte_ms: None,
            class: "none",
            ..Default::default()
        };
        assert_eq!(
            event.to_json(),
            concat!(
                r#"{"v":1,"event":"conn","conn":3,"first_byte_ms":null,"class":"none","sni":null,"#,
                r#""alpn":[],"method":null,"chain":null,"tls_failure":null,"diagnosis":null,"explain":null}"#
            )
        );
    }
}
