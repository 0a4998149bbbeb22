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
}

/// `"event":"http"`, logged when a request ends.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct HttpEvent {
    pub conn: Option<u64>,
    pub upstream: Upstream,
    pub code: Option<i64>,
    pub flags: String,
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
            },
            code: Some(503),
            flags: "UC".into(),
        };
        assert_eq!(
            event.to_json(),
            r#"{"v":1,"event":"http","conn":7,"upstream":{"local":"127.0.0.1:40000","peer":null},"code":503,"flags":"UC"}"#
        );
    }
}
