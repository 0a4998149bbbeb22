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

/// Istio 1.5–1.7's default layout (Mixer's status where the details now
/// stand): seed 000's Istio 1.6, an HTTP line and a TCP line.
#[test]
fn istio_1_5_to_1_7_lines_http_and_tcp() {
    let http =
        "[2020-10-24T17:37:23.593Z] \"GET /api HTTP/1.1\" 503 UC \"-\" \"-\" 0 95 2 - \"-\" \
\"okhttp/3.12.1\" \"6a1d-1\" \"b.preview:80\" \"10.4.1.7:80\" PassthroughCluster 10.4.0.9:51234 \
10.4.1.7:80 10.4.0.9:51232 - allow_any";
    let Line::Request(Format::IstioText15, r) = formats().parse(http) else {
        panic!("{:?}", formats().parse(http))
    };
    assert_eq!((r.code, r.flags, r.duration_ms), (Some(503), UC, Some(2)));
    assert_eq!(r.cluster.as_deref(), Some("PassthroughCluster"));
    assert_eq!((r.details, r.failure), (None, None));
    assert_eq!(r.has & Field::Details.bit(), 0);
    assert!(Format::IstioText15.istio_before(24));
    let tcp = "[2020-10-24T17:37:23.600Z] \"- - -\" 0 UF,URX \"-\" \"-\" 0 0 10001 - \"-\" \"-\" \"-\" \
\"-\" \"10.4.1.8:5432\" outbound|5432||db.default.svc.cluster.local - 10.96.0.10:5432 10.4.0.9:40000 - -";
    let Line::Request(Format::IstioText15, r) = formats().parse(tcp) else {
        panic!("{:?}", formats().parse(tcp))
    };
    assert_eq!(
        (r.code, r.flags, r.duration_ms),
        (Some(0), UF | URX, Some(10_001))
    );
    assert!(r.tcp, "`\"- - -\"`: a TCP line");
    assert_eq!((r.bytes_received, r.bytes_sent), (Some(0), Some(0)));
    let Line::Request(_, r) = formats().parse(http) else {
        panic!()
    };
    assert!(!r.tcp, "an HTTP line");
    assert_eq!((r.bytes_received, r.bytes_sent), (Some(0), Some(95)));
}

/// Only a format with `%PROTOCOL%` tells a TCP line: without it (a user's
/// own format), a line is never taken for one.
#[test]
fn a_tcp_line_needs_the_protocol_field() {
    let custom =
        Template::compile("%RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT%")
            .unwrap();
    let Line::Request(Format::Custom, r) = Formats::new(Some(custom)).parse("0 - 88 0") else {
        panic!()
    };
    assert!(!r.tcp);
    assert_eq!((r.bytes_received, r.bytes_sent), (Some(88), Some(0)));
    let json = r#"{"protocol":"-","response_code":0,"response_flags":"-","bytes_received":88,"bytes_sent":0,"upstream_cluster":"PassthroughCluster"}"#;
    let Line::Request(Format::Json, r) = formats().parse(json) else {
        panic!()
    };
    assert!(r.tcp);
    assert_eq!((r.bytes_received, r.bytes_sent), (Some(88), Some(0)));
    let http = r#"{"protocol":"HTTP/1.1","response_code":0,"response_flags":"DC","bytes_received":88,"bytes_sent":0}"#;
    let Line::Request(Format::Json, r) = formats().parse(http) else {
        panic!()
    };
    assert!(!r.tcp);
}

#[test]
fn istio_1_8_and_current_tcp_lines() {
    let line = "[2021-01-12T08:00:00.000Z] \"POST /pay HTTP/1.1\" 503 UF \"-\" 0 91 1000 - \"-\" \
\"curl/7.64\" \"id-2\" \"pay:8080\" \"10.1.2.3:8080\" outbound|8080||pay.default.svc.cluster.local - \
10.96.1.1:8080 10.1.0.4:40100 - default";
    let Line::Request(Format::IstioText18, r) = formats().parse(line) else {
        panic!("{:?}", formats().parse(line))
    };
    assert_eq!(
        (r.code, r.flags, r.duration_ms),
        (Some(503), UF, Some(1000))
    );
    let tcp =
        "[2024-05-02T10:11:12.345Z] \"- - -\" 0 NR filter_chain_not_found - \"-\" 0 0 0 - \"-\" \
\"-\" \"-\" \"-\" \"-\" - - 10.4.1.7:8080 10.4.0.9:45678 - -";
    let Line::Request(Format::IstioText, r) = formats().parse(tcp) else {
        panic!("{:?}", formats().parse(tcp))
    };
    assert_eq!(r.details.as_deref(), Some("filter_chain_not_found"));
    assert_eq!(r.code, Some(0));
}

/// Pasted from the quoted request on, without `[START_TIME]`.
#[test]
fn lines_without_their_timestamp() {
    let untimed = &ISTIO[ISTIO.find('"').unwrap()..];
    let Line::Request(Format::Untimed, r) = formats().parse(untimed) else {
        panic!("{:?}", formats().parse(untimed))
    };
    assert_eq!((r.code, r.flags, r.start_ns), (Some(503), UC, None));
    assert_eq!(r.upstream_local.as_deref(), Some("172.18.0.3:43210"));
    assert_eq!(r.has & Field::StartTime.bit(), 0);
}

/// A log shipper's envelope around a line: Docker's json-file, Loki
/// (logcli `--output jsonl`), Cloud Logging's `textPayload` and
/// `jsonPayload`.
#[test]
fn envelopes_are_read_inside() {
    let quoted = serde_json::to_string(&format!("{ISTIO}\n")).unwrap();
    for line in [
        format!(r#"{{"log":{quoted},"stream":"stdout","time":"2026-12-01T02:44:26.124Z"}}"#),
        format!(r#"{{"labels":{{"app":"b"}},"line":{quoted},"timestamp":"2026-12-01T02:44:26Z"}}"#),
        format!(
            r#"{{"insertId":"x","textPayload":{quoted},"resource":{{"type":"k8s_container"}}}}"#
        ),
    ] {
        let Line::Request(Format::IstioText, r) = formats().parse(&line) else {
            panic!("{line}: {:?}", formats().parse(&line))
        };
        assert_eq!((r.code, r.flags), (Some(503), UC), "{line}");
    }
    let payload = r#"{"insertId":"y","jsonPayload":{"response_code":503,"response_flags":"DC","duration":2970,"upstream_host":"10.0.0.1:80"},"severity":"INFO"}"#;
    let Line::Request(Format::Json, r) = formats().parse(payload) else {
        panic!()
    };
    assert_eq!((r.code, r.duration_ms), (Some(503), Some(2970)));
    // An envelope around something that is not an access log.
    let other =
        r#"{"log":"[2026-11-23 13:00:00.000][12][info][main] starting\n","stream":"stderr"}"#;
    assert_eq!(formats().parse(other), Line::Other);
}

/// A line in no format diagnose reads is not read (counted, named), never
/// silently skipped.
#[test]
fn lines_in_no_known_format_are_not_read() {
    for line in [
        "GET /api 503 UC 2ms",
        "503 UC upstream connect error or disconnect/reset before headers",
        r#"{"status":503,"path":"/"}"#,
    ] {
        assert!(
            matches!(formats().parse(line), Line::Malformed(_)),
            "{line}"
        );
    }
}

/// The format the advice asks for (Istio's with the connection fields)
/// is read as it is, and its connection id keys the connection.
#[test]
fn istio_with_connection_fields() {
    let line = format!("{ISTIO} 17 2");
    let Line::Request(Format::IstioConnectionFields, r) = formats().parse(&line) else {
        panic!("{:?}", formats().parse(&line))
    };
    assert_eq!((r.connection_id, r.attempts), (Some(17), Some(2)));
}

/// The known formats matched from the start, one after the other: what
/// `Formats::text` must answer, though it matches their shared leading
/// pieces once.
fn text_one_by_one<'a>(formats: &Formats, line: &'a str) -> Option<Line<'a>> {
    formats.known.iter().find_map(|(format, template)| {
        let request = from_values(&template.matches(line)?)?;
        Some(Line::Request(*format, request.with_fields(template.fields)))
    })
}

#[test]
fn shared_pieces_matched_once_answer_as_each_format_from_the_start() {
    let formats = formats();
    // Istio's format with the connection fields shares all but its last
    // field with Istio's.
    assert!(
        formats.shared_with_next[0] > 40,
        "{:?}",
        formats.shared_with_next
    );
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data");
    let mut lines = vec![ISTIO.to_string()];
    let mut dirs = vec![std::path::PathBuf::from(root)];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path
                .extension()
                .is_some_and(|e| e == "log" || e == "default")
            {
                let text = std::fs::read_to_string(&path).unwrap();
                lines.extend(text.lines().map(str::to_string));
            }
        }
    }
    assert!(lines.len() > 100);
    let mut read = 0;
    for line in &lines {
        // Cut short and damaged too: where matching stops must agree.
        for cut in [line.len(), line.len() * 2 / 3, line.len() / 3] {
            let Some(line) = line.get(..cut) else {
                continue;
            };
            let answer = formats.text(line);
            assert_eq!(answer, text_one_by_one(&formats, line), "{line}");
            read += usize::from(answer.is_some());
        }
        let with_fields = format!("{line} 7 1");
        assert_eq!(
            formats.text(&with_fields),
            text_one_by_one(&formats, &with_fields)
        );
    }
    assert!(read > 100, "{read}");
}
