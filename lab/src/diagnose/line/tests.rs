use super::*;
use connlab_filter::flags::{UC, UF, URX};

fn formats() -> Formats {
    Formats::new(None)
}

pub(crate) const ISTIO: &str = "[2026-12-01T02:44:26.123Z] \"GET /slow HTTP/1.1\" 503 UC \
upstream_reset_before_response_started{connection_termination} - \"-\" 0 95 1 - \"-\" \
\"curl/8.5.0\" \"5f1c0c8e-1\" \"envoy:10000\" \"172.18.0.2:8080\" backend 172.18.0.3:43210 \
172.18.0.3:10000 172.18.0.4:51000 - default";

#[test]
fn istio_text_line() {
    let Line::Request(Format::IstioText, r) = formats().parse(ISTIO) else {
        panic!()
    };
    assert_eq!(r.code, Some(503));
    assert_eq!(r.flags, UC);
    assert_eq!(r.start_ns, time::parse_ns("2026-12-01T02:44:26.123Z"));
    assert_eq!(r.duration_ms, Some(1));
    assert_eq!(r.upstream_local.as_deref(), Some("172.18.0.3:43210"));
    assert_eq!(r.upstream_host.as_deref(), Some("172.18.0.2:8080"));
    assert_eq!(r.attempts, None);
    assert_eq!(r.has & Field::Attempts.bit(), 0);
    assert_ne!(r.has & Field::UpstreamLocal.bit(), 0);
}

#[test]
fn istio_line_with_kubectl_prefixes_and_crlf() {
    for prefixed in [
        format!("2026-12-01T02:44:26.123456789Z {ISTIO}"),
        format!("[pod/app-1/istio-proxy] {ISTIO}\r"),
    ] {
        assert!(
            matches!(
                formats().parse(&prefixed),
                Line::Request(Format::IstioText, _)
            ),
            "{prefixed}"
        );
    }
}

#[test]
fn envoy_default_line() {
    let line = "[2026-12-01T02:44:26.123Z] \"GET / HTTP/1.1\" 503 UF,URX 0 91 1000 - \"-\" \
\"curl/8.5.0\" \"id\" \"envoy:10000\" \"10.0.0.9:8080\"";
    let Line::Request(Format::EnvoyDefault, r) = formats().parse(line) else {
        panic!()
    };
    assert_eq!(r.flags, UF | URX);
    assert_eq!(r.upstream_local, None);
    assert_eq!(r.details, None);
}

#[test]
fn json_access_log_any_key_case() {
    let line = r#"{"start_time":"2026-12-01T02:44:26.123Z","RESPONSE_CODE":503,"response_flags":"UF","upstream_transport_failure_reason":"immediate_connect_error:_Cannot_assign_requested_address","upstream_request_attempt_count":4,"duration":2,"upstream_local_address":null,"method":"GET"}"#;
    let Line::Request(Format::Json, r) = formats().parse(line) else {
        panic!()
    };
    assert_eq!((r.code, r.flags, r.attempts), (Some(503), UF, Some(4)));
    assert!(r.failure.as_deref().unwrap().contains("Cannot_assign"));
    // Present though null: the format has it.
    assert_ne!(r.has & Field::UpstreamLocal.bit(), 0);
    assert_eq!(r.has & Field::Details.bit(), 0);
}

#[test]
fn filter_events_with_and_without_envoy_prefix() {
    let event = r#"{"v":1,"event":"http","conn":7,"upstream":{"local":"127.0.0.1:40000","peer":"127.0.0.1:8080","nth":2,"idle_ms":5900,"age_ms":6000},"attempts":1,"code":503,"flags":"UC","details":"x","failure":null,"diagnosis":"keepalive_race","explain":"why"}"#;
    let prefixed = format!(
        "[2026-11-23 13:00:00.100][12][info][wasm] [source/extensions/common/wasm/context.cc:1195] wasm log connlab connlab_http connlab: {event}"
    );
    let sorted: serde_json::Value = serde_json::from_str(event).unwrap();
    for line in [event.to_string(), prefixed, sorted.to_string()] {
        let Line::Event(e) = formats().parse(&line) else {
            panic!("{line}")
        };
        assert_eq!(e.diagnosis.as_deref(), Some("keepalive_race"));
        assert_eq!((e.nth, e.idle_ms), (Some(2), Some(5900)));
        assert_eq!(e.peer.as_deref(), Some("127.0.0.1:8080"));
    }
    let Line::Event(e) = formats().parse(&format!("[2026-11-23 13:00:00.100][12] x: {event}"))
    else {
        panic!()
    };
    assert_eq!(e.time_ns, time::parse_ns("2026-11-23T13:00:00.100Z"));
}

#[test]
fn other_and_malformed_lines() {
    let f = formats();
    for other in [
        "",
        "   ",
        "[2026-11-23 13:00:00.000][12][info][main] starting",
        "2026-12-01T02:44:26.123456Z\tinfo\tads\tADS: new connection",
        r#"{"level":"info","msg":"hello"}"#,
    ] {
        assert_eq!(f.parse(other), Line::Other, "{other}");
    }
    for malformed in [
        &ISTIO[..ISTIO.len() - 30],
        r#"{"response_code":503,"#,
        r#"{"response_code":"abc"}"#,
        r#"{"v":1,"event":"http","code""#,
        r#"[2026-11-23 13:00:00.100][12] wasm log: {"v":1,"event":"http","code""#,
        r#"{"v":1}"#,
    ] {
        assert!(
            matches!(f.parse(malformed), Line::Malformed(_)),
            "{malformed}"
        );
    }
}

#[test]
fn a_custom_format_is_tried_first() {
    let custom = Template::compile(
        "%START_TIME% %RESPONSE_CODE% %RESPONSE_FLAGS% %UPSTREAM_LOCAL_ADDRESS% %DURATION%",
    )
    .unwrap();
    let f = Formats::new(Some(custom));
    let Line::Request(Format::Custom, r) =
        f.parse("2026-12-01T02:44:26.123Z 503 UC 10.0.0.1:4000 3")
    else {
        panic!()
    };
    assert_eq!(r.upstream_local.as_deref(), Some("10.0.0.1:4000"));
    assert!(matches!(
        f.parse(ISTIO),
        Line::Request(Format::IstioText, _)
    ));
}
