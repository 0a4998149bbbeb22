use super::*;
use crate::client_hello::ClientHello;
use crate::flags::{DC, LR, NR, UAEX, UC, UF, UH, UO, UPE, UR, URX, UT};
use crate::sniff::Class;

fn code(facts: &HttpFacts<'_>) -> Option<&'static str> {
    http(facts, &Config::default()).map(|d| d.code)
}

fn reused(nth: u64, idle_ms: u64) -> Reuse {
    Reuse {
        nth,
        idle_ms: Some(idle_ms),
        age_ms: idle_ms + 10,
        forgotten: false,
        start_known: true,
    }
}

/// A reset on a reused idle connection, `elapsed_ms` after the request.
fn reset_on_reused(
    flags: u64,
    details: &'static str,
    idle: u64,
    elapsed: u64,
) -> HttpFacts<'static> {
    HttpFacts {
        code: Some(503),
        flags,
        details: Some(details),
        reuse: reused(2, idle),
        elapsed_ms: Some(elapsed),
        ..Default::default()
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
        (
            5_900,
            "consistent with Node.js's default keep-alive timeout of 5.0 s",
        ),
        (
            10_050,
            "consistent with CherryPy's default keep-alive timeout of 10.0 s",
        ),
        (
            20_700,
            "consistent with Tomcat's default keep-alive timeout of 20.0 s",
        ),
    ] {
        let facts = reset_on_reused(UC, TERMINATION, idle, 2);
        let d = http(&facts, &Config::default()).unwrap();
        assert_eq!(d.code, "keepalive_race");
        assert!(d.explain.contains(&human_ms(idle)), "{}", d.explain);
        assert!(d.explain.contains(server), "{}", d.explain);
    }
}

#[test]
fn keepalive_race_outside_every_window_names_no_server() {
    let mut facts = reset_on_reused(UC, TERMINATION, 300, 1);
    facts.reuse = reused(3, 300);
    let d = http(&facts, &Config::default()).unwrap();
    assert_eq!(d.code, "keepalive_race");
    assert!(
        d.explain.contains("idle 300 ms (request 3"),
        "{}",
        d.explain
    );
    assert!(!d.explain.contains("consistent"), "{}", d.explain);
    // The case: Node.js with keepAliveTimeout 3 s, idle 3.5 s: no
    // known default fits, so no server is named.
    let d = http(
        &reset_on_reused(UC, TERMINATION, 3_500, 1),
        &Config::default(),
    )
    .unwrap();
    assert_eq!(d.code, "keepalive_race");
    assert!(!d.explain.contains("Node.js"), "{}", d.explain);
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
    let mut facts = unknown(Some(1), None);
    facts.reuse.start_known = true;
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

fn passthrough_config() -> Config {
    Config {
        fallthrough_chains: vec!["passthrough".into()],
        ..Config::default()
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
    conn(&facts, &passthrough_config()).map(|d| d.code)
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
    let d = conn(&facts, &passthrough_config()).unwrap();
    assert!(d.explain.contains("300 ms"), "{}", d.explain);
    assert!(d.explain.contains("'passthrough'"), "{}", d.explain);
}

// ---- Negative cases: the nearest failures that must not get each code ----

#[test]
fn a_late_reset_is_an_upstream_reset_mid_request_not_a_race() {
    let d = http(
        &reset_on_reused(UC, TERMINATION, 5_900, 1_500),
        &Config::default(),
    )
    .unwrap();
    assert_eq!(d.code, "upstream_reset");
    assert!(
        d.explain.contains("1.5 s after the request"),
        "{}",
        d.explain
    );
    assert!(!d.explain.contains("idle_timeout"), "{}", d.explain);
    // At the window's edge it still is one.
    let edge = reset_on_reused(UC, TERMINATION, 5_900, Config::default().race_window_ms);
    assert_eq!(code(&edge), Some("keepalive_race"));
    // Unknown timing is no evidence.
    let mut unknown = reset_on_reused(UC, TERMINATION, 5_900, 1);
    unknown.elapsed_ms = None;
    assert_eq!(code(&unknown), Some("upstream_reset"));
}

#[test]
fn a_connection_that_did_not_sit_idle_is_not_a_race() {
    // Back-to-back or multiplexed requests (idle 0).
    assert_eq!(
        code(&reset_on_reused(UC, TERMINATION, 0, 1)),
        Some("upstream_reset")
    );
    assert_eq!(
        code(&reset_on_reused(UC, TERMINATION, RACE_MIN_IDLE_MS - 1, 1)),
        Some("upstream_reset")
    );
}

#[test]
fn http2_stream_resets_are_not_races() {
    let rst = "upstream_reset_before_response_started{remote_reset}";
    let d = http(&reset_on_reused(UR, rst, 5_900, 1), &Config::default()).unwrap();
    assert_eq!(d.code, "upstream_reset");
    assert!(d.explain.contains("RST_STREAM"), "{}", d.explain);
    let refused = "upstream_reset_before_response_started{remote_refused_stream_reset}";
    assert_eq!(
        code(&reset_on_reused(UR, refused, 5_900, 1)),
        Some("upstream_reset")
    );
}

#[test]
fn overflow_protocol_error_and_local_reset_have_their_own_codes() {
    let overflow = "upstream_reset_before_response_started{overflow}";
    let mut facts = reset_on_reused(UO, overflow, 5_900, 1);
    facts.cluster = Some("backend");
    let d = http(&facts, &Config::default()).unwrap();
    assert_eq!(d.code, "circuit_breaker_overflow");
    for needle in [
        "cluster `backend`",
        "upstream_rq_pending_overflow",
        "upstream_cx_overflow",
        "max_pending_requests",
    ] {
        assert!(d.explain.contains(needle), "{needle}: {}", d.explain);
    }
    let upe = "upstream_reset_before_response_started{protocol_error}";
    assert_eq!(
        code(&reset_on_reused(UPE, upe, 5_900, 1)),
        Some("upstream_protocol_error")
    );
    assert_eq!(
        code(&reset_on_reused(UPE | UC, TERMINATION, 5_900, 1)),
        Some("upstream_protocol_error")
    );
    let lr = "upstream_reset_before_response_started{local_reset}";
    assert_eq!(
        code(&reset_on_reused(LR, lr, 5_900, 1)),
        Some("upstream_local_reset")
    );
    assert_eq!(
        code(&reset_on_reused(LR | UC, TERMINATION, 5_900, 1)),
        Some("upstream_local_reset")
    );
    assert_eq!(
        code(&HttpFacts {
            code: Some(503),
            flags: UH,
            details: Some("no_healthy_upstream"),
            ..Default::default()
        }),
        Some("no_healthy_upstream")
    );
}

#[test]
fn retries_that_ran_out_are_not_ok() {
    // retriable_status_codes [409]: the client gets the backend's 409 after
    // 3 attempts, flags URX.
    let gave_up = HttpFacts {
        code: Some(409),
        flags: URX,
        attempts: Some(3),
        details: Some("via_upstream"),
        ..Default::default()
    };
    let d = http(&gave_up, &Config::default()).unwrap();
    assert_eq!(d.code, "retried_then_failed");
    assert!(
        d.explain.contains("409") && d.explain.contains("URX"),
        "{}",
        d.explain
    );
    // A 200 that Envoy passed on after giving up is not "ok" either.
    let mut passed_on = gave_up.clone();
    passed_on.code = Some(200);
    assert_eq!(code(&passed_on), Some("retried_then_failed"));
    // gRPC: HTTP 200 with a non-OK grpc-status is a failure.
    let grpc = HttpFacts {
        code: Some(200),
        attempts: Some(2),
        grpc_status: Some(14),
        ..Default::default()
    };
    let d = http(&grpc, &Config::default()).unwrap();
    assert_eq!(d.code, "retried_then_failed");
    assert!(d.explain.contains("gRPC status 14"), "{}", d.explain);
    let grpc_ok = HttpFacts {
        grpc_status: Some(0),
        ..grpc
    };
    assert_eq!(code(&grpc_ok), Some("retried_then_ok"));
}

#[test]
fn a_client_that_left_during_retries_gets_no_code() {
    let facts = HttpFacts {
        code: Some(0),
        flags: DC,
        attempts: Some(2),
        details: Some("downstream_remote_disconnect"),
        ..Default::default()
    };
    assert_eq!(code(&facts), None);
    let with_reset = HttpFacts {
        flags: DC | UC,
        ..facts
    };
    assert_eq!(code(&with_reset), None);
}

/// An evicted connection's history is unknown: not a fresh one. Reset at
/// once, a keep-alive race is likely (not confirmed); long after the
/// request, not a race.
#[test]
fn a_forgotten_connection_is_not_a_fresh_one() {
    let mut facts = reset_on_reused(UC, TERMINATION, 5_900, 1);
    facts.reuse = Reuse {
        nth: 1,
        idle_ms: None,
        age_ms: 0,
        forgotten: true,
        start_known: false,
    };
    let d = http(&facts, &Config::default()).unwrap();
    assert_eq!(
        (d.code, d.confidence),
        ("keepalive_race", Confidence::Likely)
    );
    assert!(d.explain.contains("reuse_table_cap"), "{}", d.explain);
    facts.elapsed_ms = None;
    let d = http(&facts, &Config::default()).unwrap();
    assert_eq!(
        (d.code, d.confidence),
        ("upstream_reset", Confidence::Likely)
    );
    assert!(d.explain.contains("reuse_table_cap"), "{}", d.explain);
}

#[test]
fn pinned_port_only_with_evidence() {
    let eaddrnotavail = |pinned_port| HttpFacts {
        code: Some(503),
        flags: UF,
        failure: Some("immediate_connect_error:_Cannot_assign_requested_address"),
        pinned_port,
        ..Default::default()
    };
    let d = http(&eaddrnotavail(Some(40000)), &Config::default()).unwrap();
    assert_eq!(d.code, "source_address_conflict");
    assert!(
        d.explain.contains("pinned") && d.explain.contains("40000"),
        "{}",
        d.explain
    );
    let d = http(&eaddrnotavail(None), &Config::default()).unwrap();
    assert_eq!(d.code, "source_address_conflict");
    assert!(!d.explain.contains("pinned"), "{}", d.explain);
    assert!(
        d.explain.contains("ephemeral ports ran out"),
        "{}",
        d.explain
    );
}

#[test]
fn a_slow_client_on_a_listener_that_does_not_sniff_is_not_a_fallthrough() {
    let get = Class::Http1 {
        method: "GET".into(),
    };
    let facts = ConnFacts {
        first_byte_ms: Some(3_000),
        class: &get,
        chain: Some("main_chain"),
        tls_failure: None,
    };
    assert_eq!(conn(&facts, &Config::default()), None);
    assert_eq!(conn(&facts, &passthrough_config()), None);
    let no_chain = ConnFacts {
        chain: None,
        ..facts.clone()
    };
    assert_eq!(conn(&no_chain, &Config::default()), None);
    // The inbound passthrough chain, where Istio runs a SERVER-mode
    // plugin, is a fall-through by default; the outbound catch-all chains,
    // where Istio runs no plugin, are not (a plain Envoy lists its own).
    let inbound = ConnFacts {
        chain: Some("virtualInbound"),
        ..facts.clone()
    };
    assert_eq!(
        conn(&inbound, &Config::default()).map(|d| d.code),
        Some("sniff_fallthrough")
    );
    for outbound in ["virtualOutbound-catchall-tcp", "PassthroughFilterChain"] {
        let istio = ConnFacts {
            chain: Some(outbound),
            ..facts.clone()
        };
        assert_eq!(conn(&istio, &Config::default()), None, "{outbound}");
    }
}

#[test]
fn every_code_emitted_is_listed_and_every_listed_code_is_emitted() {
    let facts = [
        reset_on_reused(UC, TERMINATION, 5_900, 1),
        reset_on_reused(UC, TERMINATION, 5_900, 5_000),
        reset_on_reused(UC, TERMINATION, 5_900, 924_600),
        reset_on_reused(UO, TERMINATION, 5_900, 1),
        reset_on_reused(UPE, TERMINATION, 5_900, 1),
        reset_on_reused(LR, TERMINATION, 5_900, 1),
        reset_on_reused(UH, "", 0, 1),
        HttpFacts {
            flags: UF,
            failure: Some("error: 99"),
            ..Default::default()
        },
        HttpFacts {
            flags: UF,
            failure: Some("connection refused"),
            ..Default::default()
        },
        HttpFacts {
            flags: UF,
            failure: Some("connection timeout"),
            ..Default::default()
        },
        HttpFacts {
            flags: UF,
            failure: Some("TLS error"),
            ..Default::default()
        },
        HttpFacts {
            flags: UF,
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
        HttpFacts {
            code: Some(503),
            attempts: Some(2),
            ..Default::default()
        },
        HttpFacts {
            code: Some(503),
            flags: UC,
            cluster: Some(PASSTHROUGH_CLUSTER),
            ..Default::default()
        },
    ];
    let mut seen: Vec<&str> = facts.iter().filter_map(code).collect();
    seen.sort();
    seen.dedup();
    let mut listed = HTTP_CODES.to_vec();
    listed.sort();
    assert_eq!(seen, listed);
}

fn user_timeout(ms: u64) -> Config {
    Config {
        tcp_user_timeout_ms: Some(ms),
        ..Config::default()
    }
}

#[test]
fn a_dead_peer_is_the_kernel_giving_up_at_the_user_timeout() {
    // The half-open experiment: TCP_USER_TIMEOUT 10 s, the request on a
    // connection reused after 1 s idle ended 10.6 s later, nothing back.
    let facts = reset_on_reused(UC, TERMINATION, 1_000, 10_600);
    let d = http(&facts, &user_timeout(10_000)).unwrap();
    assert_eq!(d.code, "upstream_dead_peer");
    for part in [
        "10.6 s",
        "TCP_USER_TIMEOUT (10.0 s)",
        "half-open",
        "outlier detection",
    ] {
        assert!(d.explain.contains(part), "{part}: {}", d.explain);
    }
    // Without the setting, the same reset is a late upstream reset.
    assert_eq!(code(&facts), Some("upstream_reset"));
    // The kernel's own give-up needs no setting.
    assert_eq!(
        code(&reset_on_reused(UC, TERMINATION, 1_000, 924_600)),
        Some("upstream_dead_peer")
    );
}

#[test]
fn a_dead_peer_is_not_a_keepalive_race_a_crash_or_a_response_cut_short() {
    let config = user_timeout(200);
    // A keep-alive race answers within one round trip, before the user
    // timeout could fire, even when that timeout is below race_window_ms.
    let race = reset_on_reused(UC, TERMINATION, 5_900, 2);
    assert_eq!(http(&race, &config).unwrap().code, "keepalive_race");
    // A dead peer whose user timeout lies inside the race window is still
    // a dead peer: the reset came at the timeout, not at once.
    let dead = reset_on_reused(UC, TERMINATION, 5_900, 210);
    assert_eq!(http(&dead, &config).unwrap().code, "upstream_dead_peer");
    // A backend that crashed 1.5 s after the request, with a 10 s timeout.
    let crash = reset_on_reused(UC, TERMINATION, 5_900, 1_500);
    assert_eq!(
        http(&crash, &user_timeout(10_000)).unwrap().code,
        "upstream_reset"
    );
    // Past 2 T + 1 s the kernel would have given up long before.
    let late = reset_on_reused(UC, TERMINATION, 5_900, 25_000);
    assert_eq!(
        http(&late, &user_timeout(10_000)).unwrap().code,
        "upstream_reset"
    );
    // A reset after the response started, or an HTTP/2 stream reset.
    for details in [
        "upstream_reset_after_response_started{connection_termination}",
        "upstream_reset_before_response_started{remote_reset}",
    ] {
        let other = reset_on_reused(UR, details, 5_900, 10_600);
        assert_eq!(
            http(&other, &user_timeout(10_000)).unwrap().code,
            "upstream_reset"
        );
    }
    // Envoy's own route timeout on a silent peer: upstream_timeout.
    let ut = HttpFacts {
        code: Some(504),
        flags: UT,
        details: Some("response_timeout"),
        reuse: reused(2, 1_000),
        elapsed_ms: Some(15_000),
        ..Default::default()
    };
    let d = http(&ut, &user_timeout(10_000)).unwrap();
    assert_eq!(d.code, "upstream_timeout");
    assert!(d.explain.contains("cannot tell"), "{}", d.explain);
}

#[test]
fn a_tunnel_the_backend_ended_gets_no_code_a_cut_off_response_does() {
    let ended = |tunnel, code| HttpFacts {
        code: Some(code),
        flags: UC,
        details: Some("upstream_reset_after_response_started{connection_termination}"),
        reuse: reused(1, 0),
        elapsed_ms: Some(2_000),
        tunnel,
        ..Default::default()
    };
    assert_eq!(code(&ended(true, 101)), None);
    assert_eq!(code(&ended(true, 200)), None);
    assert_eq!(code(&ended(false, 200)), Some("upstream_reset"));
    // A tunnel whose handshake was reset never opened.
    let handshake = HttpFacts {
        details: Some(TERMINATION),
        code: Some(503),
        ..ended(false, 503)
    };
    assert_eq!(code(&handshake), Some("upstream_reset"));
}

/// A connection whose history the evidence does not hold (a pasted line, a
/// grep, a filter loaded into a running Envoy).
fn unknown(elapsed_ms: Option<u64>, cluster: Option<&'static str>) -> HttpFacts<'static> {
    HttpFacts {
        code: Some(503),
        flags: UC,
        details: Some(TERMINATION),
        reuse: Reuse {
            nth: 1,
            idle_ms: None,
            age_ms: 0,
            forgotten: false,
            start_known: false,
        },
        elapsed_ms,
        cluster,
        ..Default::default()
    }
}

fn judged(facts: &HttpFacts<'_>) -> (&'static str, Confidence, String) {
    let d = http(facts, &Config::default()).unwrap();
    (d.code, d.confidence, d.explain)
}

#[test]
fn unknown_history_reset_at_once_is_a_likely_keepalive_race_never_a_fresh_connection() {
    let (code, confidence, explain) = judged(&unknown(Some(50), None));
    assert_eq!((code, confidence), ("keepalive_race", Confidence::Likely));
    assert!(
        !explain.contains("fresh connection on its first"),
        "{explain}"
    );
    let d = http(&unknown(Some(50), None), &Config::default()).unwrap();
    assert!(d.alternatives.iter().any(|a| a.contains("fresh")), "{d:?}");
    // The same line on a connection known to be fresh: the backend.
    let mut fresh = unknown(Some(50), None);
    fresh.reuse.start_known = true;
    let (code, confidence, explain) = judged(&fresh);
    assert_eq!(
        (code, confidence),
        ("upstream_reset", Confidence::Confirmed)
    );
    assert!(explain.contains("fresh connection"), "{explain}");
    // Known reused after an idle time: confirmed.
    let (code, confidence, _) = judged(&reset_on_reused(UC, TERMINATION, 5_900, 1));
    assert_eq!(
        (code, confidence),
        ("keepalive_race", Confidence::Confirmed)
    );
}

#[test]
fn unknown_history_reset_long_after_the_request_is_not_a_race_and_says_how_long() {
    let (code, confidence, explain) = judged(&unknown(Some(120_000), None));
    assert_eq!((code, confidence), ("upstream_reset", Confidence::Likely));
    assert!(
        explain.contains("120.0 s") && explain.contains("not a keep-alive race"),
        "{explain}"
    );
    // %DURATION% counts from the request's first byte, not from its upstream
    // send: the wait before it is named, and a race after it stays an
    // alternative (tests/data/diagnose/real/README.md, line 01's miss).
    assert!(explain.contains("waited about that long"), "{explain}");
    let long = http(&unknown(Some(120_000), None), &Config::default()).unwrap();
    assert!(
        long.alternatives
            .iter()
            .any(|a| a.contains("%REQUEST_DURATION%")),
        "{long:?}"
    );
    // Just past the window is not a race either; just inside it is.
    let window = Config::default().race_window_ms;
    assert_eq!(judged(&unknown(Some(window + 1), None)).0, "upstream_reset");
    assert_eq!(judged(&unknown(Some(window), None)).0, "keepalive_race");
    // No timing: a reset, likely, with the race among the alternatives.
    let d = http(&unknown(None, None), &Config::default()).unwrap();
    assert_eq!(
        (d.code, d.confidence),
        ("upstream_reset", Confidence::Likely)
    );
    assert!(
        d.alternatives.iter().any(|a| a.contains("keep-alive race")),
        "{d:?}"
    );
    // Not a termination (a remote reset, an HTTP/2 stream): not a race.
    let mut remote = unknown(Some(50), None);
    remote.details = Some("upstream_reset_before_response_started{remote_reset}");
    assert_eq!(judged(&remote).0, "upstream_reset");
}

#[test]
fn a_plaintext_request_through_passthrough_that_is_reset_names_strict_mtls() {
    let (found, confidence, explain) = judged(&unknown(Some(3), Some(PASSTHROUGH_CLUSTER)));
    assert_eq!(
        (found, confidence),
        ("plaintext_to_strict_mtls", Confidence::Likely)
    );
    assert!(
        explain.contains("PeerAuthentication") && explain.contains("STRICT"),
        "{explain}"
    );
    // Another cluster: not this.
    assert_ne!(
        judged(&unknown(
            Some(3),
            Some("outbound|80||b.default.svc.cluster.local")
        ))
        .0,
        "plaintext_to_strict_mtls"
    );
    // PassthroughCluster answering (no reset): nothing.
    let answered = HttpFacts {
        code: Some(503),
        cluster: Some(PASSTHROUGH_CLUSTER),
        ..Default::default()
    };
    assert_eq!(code(&answered), None);
    // A connect failure through it is a connect failure.
    let refused = HttpFacts {
        flags: UF,
        failure: Some("delayed_connect_error:_Connection_refused"),
        cluster: Some(PASSTHROUGH_CLUSTER),
        ..Default::default()
    };
    assert_eq!(code(&refused), Some("connect_refused"));
}

#[test]
fn a_connect_failure_as_long_as_a_round_timeout_is_likely_the_connect_timeout() {
    let uf = |ms, failure: Option<&'static str>, flags| HttpFacts {
        code: Some(503),
        flags,
        details: Some("upstream_reset_before_response_started{remote_connection_failure}"),
        failure,
        elapsed_ms: Some(ms),
        ..Default::default()
    };
    // Either side of the timeout: the log's clock and the timer's differ
    // by a few ms (real lines: 9994 to 10007 ms for Istio's 10 s).
    for ms in [1_000, 1_003, 999, 10_001, 9_994, 10_007, 250, 5_020, 4_980] {
        let (found, confidence, _) = judged(&uf(ms, None, UF));
        assert_eq!(
            (found, confidence),
            ("connect_timeout", Confidence::Likely),
            "{ms}"
        );
    }
    for ms in [3, 1_337, 200, 970, 1_030, 1_100, 9_900] {
        assert_eq!(judged(&uf(ms, None, UF)).0, "connect_failed", "{ms}");
    }
    // Retried: the duration is several attempts, not one timeout.
    assert_eq!(judged(&uf(2_000, None, UF | URX)).0, "connect_failed");
    // A TCP proxy's line (status 0): URX is its connect-attempt limit, one
    // attempt by default (real lines: 9994-10007 ms, istio/istio#56356).
    let tcp = |ms| HttpFacts {
        code: Some(0),
        details: None,
        ..uf(ms, None, UF | URX)
    };
    assert_eq!(judged(&tcp(9_995)).0, "connect_timeout");
    assert_eq!(judged(&tcp(3)).0, "connect_failed");
    assert_eq!(judged(&tcp(1_337)).0, "connect_failed");
    // A reason given wins.
    let refused = uf(1_000, Some("delayed_connect_error:_Connection_refused"), UF);
    assert_eq!(judged(&refused).0, "connect_refused");
}

#[test]
fn what_only_a_line_says_no_filter_chain_and_a_client_that_left() {
    let nr = HttpFacts {
        code: Some(0),
        flags: NR,
        details: Some("filter_chain_not_found"),
        ..Default::default()
    };
    let d = line_only(&nr).unwrap();
    assert_eq!(
        (d.code, d.confidence),
        ("no_filter_chain", Confidence::Likely)
    );
    assert!(d.explain.contains("STRICT"));
    // NR for a missing route is not this.
    let no_route = HttpFacts {
        details: Some("route_not_found"),
        ..nr.clone()
    };
    assert_eq!(line_only(&no_route), None);
    let dc = HttpFacts {
        code: Some(0),
        flags: DC,
        details: Some("downstream_remote_disconnect"),
        elapsed_ms: Some(2_970),
        ..Default::default()
    };
    let d = line_only(&dc).unwrap();
    assert_eq!(
        (d.code, d.confidence),
        ("downstream_disconnect", Confidence::Confirmed)
    );
    assert!(
        d.explain.contains("3.0 s") && d.explain.contains("not an upstream failure"),
        "{}",
        d.explain
    );
    // The request rules still name none for DC (the filter counts failures).
    assert_eq!(code(&dc), None);
    // Nothing else is a line-only verdict.
    assert_eq!(line_only(&unknown(Some(1), None)), None);
    for c in LINE_CODES {
        assert!(!HTTP_CODES.contains(&c), "{c}");
    }
}

/// `UAEX`: the external authorization check refused the request; only a
/// 401 is the service's own denial for sure. Nearest failures that must
/// not get it: Istio's RBAC deny (403, no flag), an app's own 401/403,
/// a 503 without the flag.
#[test]
fn an_external_authorization_refusal_is_named_and_only_with_its_flag() {
    let authz = |code, flags, details: Option<&'static str>| HttpFacts {
        code: Some(code),
        flags,
        details,
        elapsed_ms: Some(2),
        ..Default::default()
    };
    // The details say which (Envoy 1.40: ext_authz_denied / ext_authz_error).
    let redirect = line_only(&authz(302, UAEX, Some("ext_authz_denied"))).unwrap();
    assert_eq!(
        (redirect.code, redirect.confidence),
        ("ext_authz_rejected", Confidence::Confirmed)
    );
    assert!(redirect.explain.contains("denied"), "{}", redirect.explain);
    assert!(
        !redirect.explain.contains("unavailable"),
        "{}",
        redirect.explain
    );
    let error = line_only(&authz(403, UAEX, Some("ext_authz_error"))).unwrap();
    assert_eq!(error.confidence, Confidence::Confirmed);
    assert!(
        error.explain.contains("could not decide"),
        "{}",
        error.explain
    );
    assert!(
        !error.explain.contains("service denied"),
        "{}",
        error.explain
    );
    // Without details (older formats): the status.
    let denied = line_only(&authz(401, UAEX, None)).unwrap();
    assert_eq!(
        (denied.code, denied.confidence),
        ("ext_authz_rejected", Confidence::Likely)
    );
    assert!(line_only(&authz(302, UAEX, None))
        .unwrap()
        .explain
        .contains("denied"));
    assert!(
        denied.explain.contains("not at the backend"),
        "{}",
        denied.explain
    );
    let forbidden = line_only(&authz(403, UAEX, None)).unwrap();
    assert_eq!(
        (forbidden.code, forbidden.confidence),
        ("ext_authz_rejected", Confidence::Likely)
    );
    assert!(forbidden.explain.contains("status_on_error"));
    assert!(!forbidden.alternatives.is_empty());
    let unavailable = line_only(&authz(503, UAEX, None)).unwrap();
    assert_eq!(
        (unavailable.code, unavailable.confidence),
        ("ext_authz_rejected", Confidence::Likely)
    );
    assert!(
        unavailable.explain.contains("unavailable"),
        "{}",
        unavailable.explain
    );
    // The request rules never name it (no upstream failure to count).
    assert_eq!(code(&authz(401, UAEX, None)), None);
    // Negatives: Istio's RBAC deny, an app's own 401/403, a 503 unflagged.
    let rbac = authz(
        403,
        0,
        Some("rbac_access_denied_matched_policy[default-deny-all-due-to-bad-CUSTOM-action]"),
    );
    assert_eq!(line_only(&rbac), None);
    assert_eq!(code(&rbac), None);
    for app in [
        authz(401, 0, Some("via_upstream")),
        authz(403, 0, Some("via_upstream")),
        authz(503, 0, Some("via_upstream")),
    ] {
        assert_eq!(line_only(&app), None, "{:?}", app.code);
    }
}

/// Seed 000 from the sender (Istio 1.6's caller sidecar, measured by
/// `connlab run sniff-timeout --variant istio-strict`): a tcp_proxy line to
/// PassthroughCluster, the request's 88 bytes out, nothing back. Its nearest
/// neighbours must not get it.
#[test]
fn plaintext_through_passthrough_with_nothing_back_is_likely_strict_mtls() {
    let fell_through = TcpFacts {
        flags: 0,
        cluster: Some(PASSTHROUGH_CLUSTER),
        connected: true,
        bytes_received: Some(88),
        bytes_sent: Some(0),
        elapsed_ms: Some(300),
    };
    let d = tcp_line(&fell_through).unwrap();
    assert_eq!(
        (d.code, d.confidence),
        ("plaintext_to_strict_mtls", Confidence::Likely)
    );
    for said in ["88 bytes", "300 ms", "STRICT", "protocolDetectionTimeout"] {
        assert!(d.explain.contains(said), "{said}: {}", d.explain);
    }
    assert!(d
        .alternatives
        .iter()
        .any(|a| a.contains("outside the mesh")));
    let not = |facts: TcpFacts<'static>| tcp_line(&facts).map(|d| d.code);
    // A destination outside the mesh that answered, even a little.
    assert_eq!(
        not(TcpFacts {
            bytes_sent: Some(154),
            ..fell_through.clone()
        }),
        None
    );
    // The application sent nothing: nothing plaintext reached anyone.
    assert_eq!(
        not(TcpFacts {
            bytes_received: Some(0),
            ..fell_through.clone()
        }),
        None
    );
    // A mesh cluster: the sidecar originated mTLS.
    assert_eq!(
        not(TcpFacts {
            cluster: Some("outbound|8080||backend.lab.svc.cluster.local"),
            ..fell_through.clone()
        }),
        None
    );
    // A failed connect (UF) is the request rules' (connect_*), and a line
    // with no upstream host never connected.
    assert_eq!(
        not(TcpFacts {
            flags: crate::flags::UF,
            ..fell_through.clone()
        }),
        None
    );
    assert_eq!(
        not(TcpFacts {
            connected: false,
            ..fell_through.clone()
        }),
        None
    );
    // A format without the byte counts: unknown, not a verdict.
    assert_eq!(
        not(TcpFacts {
            bytes_sent: None,
            ..fell_through.clone()
        }),
        None
    );
    assert_eq!(
        not(TcpFacts {
            bytes_received: None,
            ..fell_through
        }),
        None
    );
}
