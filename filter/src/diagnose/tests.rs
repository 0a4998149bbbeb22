use super::*;
use crate::client_hello::ClientHello;
use crate::flags::URX;

fn code(facts: &HttpFacts<'_>) -> Option<&'static str> {
    http(facts, &Config::default()).map(|d| d.code)
}

fn reused(nth: u64, idle_ms: u64) -> Reuse {
    Reuse {
        nth,
        idle_ms: Some(idle_ms),
        age_ms: idle_ms + 10,
    }
}

const TERMINATION: &str = "upstream_reset_before_response_started{connection_termination}";

#[test]
fn healthy_requests_have_no_diagnosis() {
    let facts = HttpFacts {
        code: Some(200),
        attempts: Some(1),
        ..Default::default()
    };
    assert_eq!(code(&facts), None);
    // A 503 the backend itself sent is not a proxy-level failure.
    assert_eq!(
        code(&HttpFacts {
            code: Some(503),
            ..Default::default()
        }),
        None
    );
}

#[test]
fn keepalive_race_names_idle_time_and_server() {
    for (idle, server) in [
        (5_900, "Node.js's 5.0 s"),
        (10_050, "CherryPy's 10.0 s"),
        (20_700, "Tomcat's 20.0 s"),
    ] {
        let facts = HttpFacts {
            code: Some(503),
            flags: UC,
            details: Some(TERMINATION),
            reuse: reused(2, idle),
            ..Default::default()
        };
        let d = http(&facts, &Config::default()).unwrap();
        assert_eq!(d.code, "keepalive_race");
        assert!(d.explain.contains(&human_ms(idle)), "{}", d.explain);
        assert!(d.explain.contains(server), "{}", d.explain);
    }
}

#[test]
fn keepalive_race_outside_every_window_names_no_server() {
    let facts = HttpFacts {
        code: Some(503),
        flags: UC,
        details: Some(TERMINATION),
        reuse: reused(3, 300),
        ..Default::default()
    };
    let d = http(&facts, &Config::default()).unwrap();
    assert_eq!(d.code, "keepalive_race");
    assert!(
        d.explain.contains("idle 300 ms (request 3"),
        "{}",
        d.explain
    );
    assert!(!d.explain.contains("matches"), "{}", d.explain);
}

#[test]
fn match_window_is_configurable() {
    let mut config = Config::default();
    assert_eq!(
        matching_server(6_400, &config).map(|s| s.name.as_str()),
        Some("Node.js")
    );
    assert_eq!(matching_server(4_499, &config), None);
    assert_eq!(matching_server(6_501, &config), None);
    config.idle_match_after_ms = 100;
    assert_eq!(matching_server(6_400, &config), None);
    config.server_idle_timeouts.clear();
    assert_eq!(matching_server(5_000, &config), None);
}

#[test]
fn a_reset_on_a_fresh_connection_is_not_a_keepalive_race() {
    let facts = HttpFacts {
        code: Some(503),
        flags: UC,
        details: Some(TERMINATION),
        reuse: Reuse {
            nth: 1,
            idle_ms: None,
            age_ms: 1,
        },
        ..Default::default()
    };
    assert_eq!(code(&facts), Some("upstream_reset"));
    let after_headers = HttpFacts {
        flags: UR,
        details: Some("upstream_reset_after_response_started{remote_reset}"),
        reuse: reused(4, 5_900),
        ..Default::default()
    };
    assert_eq!(code(&after_headers), Some("upstream_reset"));
}

#[test]
fn connect_failures_by_reason() {
    let uf = |failure: &'static str| HttpFacts {
        code: Some(503),
        flags: UF,
        failure: Some(failure),
        ..Default::default()
    };
    assert_eq!(
        code(&uf("immediate_connect_error:_Cannot_assign_requested_address|remote_address:127.0.0.1:8080")),
        Some("source_address_conflict")
    );
    assert_eq!(
        code(&uf("immediate connect error: 99")),
        Some("source_address_conflict")
    );
    assert_eq!(
        code(&uf("delayed connect error: Connection refused")),
        Some("connect_refused")
    );
    assert_eq!(
        code(&uf("delayed_connect_error:_111")),
        Some("connect_refused")
    );
    assert_eq!(code(&uf("connection timeout")), Some("connect_timeout"));
    assert_eq!(
        code(&uf(
            "TLS_error:|268435703:SSL routines:OPENSSL_internal:WRONG_VERSION_NUMBER:TLS_error_end"
        )),
        Some("tls_handshake_failed")
    );
    assert_eq!(
        code(&HttpFacts {
            flags: UF,
            ..Default::default()
        }),
        Some("connect_failed")
    );
}

#[test]
fn route_timeout() {
    let facts = HttpFacts {
        code: Some(504),
        flags: UT,
        details: Some("response_timeout"),
        ..Default::default()
    };
    assert_eq!(code(&facts), Some("upstream_timeout"));
}

#[test]
fn retries_hidden_and_exhausted() {
    let ok = HttpFacts {
        code: Some(200),
        attempts: Some(2),
        ..Default::default()
    };
    let d = http(&ok, &Config::default()).unwrap();
    assert_eq!(d.code, "retried_then_ok");
    assert!(d.explain.contains("attempt 2"), "{}", d.explain);
    let exhausted = HttpFacts {
        code: Some(503),
        flags: UF | URX,
        failure: Some("delayed connect error: Connection refused"),
        attempts: Some(4),
        ..Default::default()
    };
    let d = http(&exhausted, &Config::default()).unwrap();
    assert_eq!(d.code, "connect_refused");
    assert!(d.explain.ends_with("(after 4 attempts)"), "{}", d.explain);
    let backend_503 = HttpFacts {
        code: Some(503),
        attempts: Some(3),
        ..Default::default()
    };
    assert_eq!(code(&backend_503), Some("retried_then_failed"));
}

#[test]
fn every_emitted_code_is_listed() {
    let cases = [
        HttpFacts {
            flags: UF,
            failure: Some("error: 99"),
            ..Default::default()
        },
        HttpFacts {
            flags: UT,
            ..Default::default()
        },
        HttpFacts {
            code: Some(200),
            attempts: Some(2),
            ..Default::default()
        },
    ];
    for facts in &cases {
        let found = code(facts).unwrap();
        assert!(HTTP_CODES.contains(&found), "{found}");
    }
}

fn conn_code(
    first_byte_ms: Option<u64>,
    class: &Class,
    tls_failure: Option<&str>,
) -> Option<&'static str> {
    let facts = ConnFacts {
        first_byte_ms,
        class,
        chain: Some("passthrough"),
        tls_failure,
    };
    conn(&facts, &Config::default()).map(|d| d.code)
}

#[test]
fn connection_rules() {
    let get = Class::Http1 {
        method: "GET".into(),
    };
    assert_eq!(conn_code(Some(5), &get, None), None);
    assert_eq!(conn_code(Some(150), &get, None), Some("sniff_fallthrough"));
    assert_eq!(
        conn_code(Some(150), &Class::Http2, None),
        Some("sniff_fallthrough")
    );
    assert_eq!(
        conn_code(Some(900), &Class::Tls(ClientHello::default()), None),
        None
    );
    assert_eq!(conn_code(Some(900), &Class::Other, None), None);
    assert_eq!(conn_code(None, &Class::None, None), None);
    assert_eq!(
        conn_code(
            None,
            &Class::None,
            Some("TLS_error:|268435612:SSL routines:OPENSSL_internal:HTTP_REQUEST:TLS_error_end")
        ),
        Some("plaintext_on_tls")
    );
    assert_eq!(
        conn_code(None, &Class::None, Some("TLS_error:|268435646:SSL routines:OPENSSL_internal:PEER_DID_NOT_RETURN_A_CERTIFICATE:TLS_error_end")),
        Some("tls_handshake_failed")
    );
    // tls_inspector's parse error on a plaintext chain is not a failure.
    assert_eq!(
        conn_code(
            Some(5),
            &get,
            Some(
                "TLS_error|error:1000009c:SSL routines:OPENSSL_internal:HTTP_REQUEST:TLS_error_end"
            )
        ),
        None
    );
    for code in [Some("sniff_fallthrough"), Some("plaintext_on_tls")] {
        assert!(CONN_CODES.contains(&code.unwrap()));
    }
}

#[test]
fn fallthrough_explanation_names_chain_and_delay() {
    let get = Class::Http1 {
        method: "GET".into(),
    };
    let facts = ConnFacts {
        first_byte_ms: Some(300),
        class: &get,
        chain: Some("passthrough"),
        tls_failure: None,
    };
    let d = conn(&facts, &Config::default()).unwrap();
    assert!(d.explain.contains("300 ms"), "{}", d.explain);
    assert!(d.explain.contains("'passthrough'"), "{}", d.explain);
}
