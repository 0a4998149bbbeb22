//! The load generator against the tunable backend on loopback. Timings are
//! only ever asserted as lower bounds or counts fixed by construction, never
//! as exact values: these tests share two busy cores.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::Command;
use std::thread;
use std::time::Duration;

use connlab::programs::backend::{self, Behaviour};
use connlab::programs::client::{self, ClientConfig, Record};
use connlab::programs::http1::ErrorKind;

fn local() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn serve(behaviour: Behaviour) -> backend::Running {
    backend::spawn(local(), behaviour).expect("start backend")
}

fn config(addr: SocketAddr, requests: u64) -> ClientConfig {
    let mut config = ClientConfig::new(addr.to_string());
    config.requests = Some(requests);
    config.read_timeout_ms = 5_000;
    config
}

fn run(config: &ClientConfig) -> Vec<Record> {
    let mut records = client::run(config, |_| {}).expect("client run");
    records.sort_by_key(|r| (r.worker, r.seq));
    records
}

fn classes(records: &[Record]) -> Vec<String> {
    records.iter().map(Record::class).collect()
}

fn reused(records: &[Record]) -> Vec<bool> {
    records.iter().map(|r| r.reused).collect()
}

/// A port nothing listens on.
fn closed_port() -> SocketAddr {
    TcpListener::bind(local()).unwrap().local_addr().unwrap()
}

#[test]
fn keep_alive_reuses_one_connection() {
    let server = serve(Behaviour::default());
    let records = run(&config(server.addr(), 4));
    assert_eq!(classes(&records), ["200"; 4]);
    assert_eq!(reused(&records), [false, true, true, true]);
    assert!(records.iter().all(|r| r.local == records[0].local));
    assert!(records[0].local.is_some());
    assert_eq!(client::summarize(&records).new_connections, 1);
}

#[test]
fn without_keep_alive_every_request_gets_a_new_connection() {
    let server = serve(Behaviour::default());
    let mut config = config(server.addr(), 3);
    config.keep_alive = false;
    let records = run(&config);
    assert_eq!(classes(&records), ["200"; 3]);
    assert_eq!(reused(&records), [false; 3]);
}

#[test]
fn connection_close_from_the_server_opens_a_new_connection() {
    let server = serve(Behaviour {
        close_after: Some(2),
        ..Default::default()
    });
    let records = run(&config(server.addr(), 4));
    assert_eq!(classes(&records), ["200"; 4]);
    assert_eq!(reused(&records), [false, true, false, true]);
    assert_eq!(records[0].local, records[1].local);
    assert_ne!(records[1].local, records[2].local);
}

#[test]
fn a_request_failing_on_a_reused_connection_reconnects_for_the_next() {
    // The backend closes connections idle for 100 ms; the client waits
    // 400 ms before its second request, on the connection that is now gone.
    let server = serve(Behaviour {
        idle_close: Some(Duration::from_millis(100)),
        ..Default::default()
    });
    let mut config = config(server.addr(), 3);
    config.gaps_ms = vec![0, 400, 0];
    let records = run(&config);
    assert_eq!(records[0].class(), "200");
    assert!(
        matches!(records[1].error, Some(ErrorKind::Eof | ErrorKind::Reset)),
        "{:?}",
        records[1]
    );
    assert!(records[1].reused);
    assert_eq!(records[1].local, records[0].local);
    assert_eq!(records[2].class(), "200");
    assert!(!records[2].reused);
    assert_ne!(records[2].local, records[0].local);
}

#[test]
fn rst_close_is_recorded_as_reset() {
    let server = serve(Behaviour {
        close_after: Some(1),
        close_with_rst: true,
        ..Default::default()
    });
    // The backend sends `connection: close` and then an RST; a real client
    // honours the header, so every request opens a connection and succeeds.
    let records = run(&config(server.addr(), 2));
    assert_eq!(classes(&records), ["200", "200"]);
    assert_eq!(reused(&records), [false, false]);
}

#[test]
fn closed_port_is_connect_errno_111() {
    let records = run(&config(closed_port(), 2));
    assert_eq!(classes(&records), ["connect_111", "connect_111"]);
    assert_eq!(records[0].error, Some(ErrorKind::Connect(111)));
    assert!(records.iter().all(|r| r.local.is_none() && !r.reused));
}

#[test]
fn slow_response_past_the_read_timeout_is_timeout() {
    let server = serve(Behaviour {
        response_delay: Duration::from_millis(1_500),
        ..Default::default()
    });
    let mut config = config(server.addr(), 1);
    config.read_timeout_ms = 200;
    let records = run(&config);
    assert_eq!(records[0].error, Some(ErrorKind::Timeout));
    assert!(records[0].latency_ms() >= 200.0, "{:?}", records[0]);
    assert!(records[0].latency_ms() < 1_500.0, "{:?}", records[0]);
}

#[test]
fn without_read_timeout_the_duration_bound_cuts_a_hung_request() {
    let server = serve(Behaviour {
        response_delay: Duration::from_millis(3_000),
        ..Default::default()
    });
    let mut config = config(server.addr(), 5);
    config.read_timeout_ms = 0;
    config.duration_ms = Some(300);
    let records = run(&config);
    assert_eq!(classes(&records), ["unfinished"]);
    assert!(records[0].end_ms >= 300.0, "{:?}", records[0]);
    assert!(records[0].end_ms < 3_000.0, "{:?}", records[0]);
}

#[test]
fn gaps_are_cycled_idle_times_between_requests() {
    let server = serve(Behaviour::default());
    let mut config = config(server.addr(), 5);
    config.gaps_ms = vec![0, 250];
    let records = run(&config);
    assert_eq!(classes(&records), ["200"; 5]);
    assert_eq!(reused(&records), [false, true, true, true, true]);
    // Gaps before requests 1 and 3 are 250 ms; 2 and 4 follow at once.
    for seq in [1, 3] {
        let idle = records[seq].start_ms - records[seq - 1].end_ms;
        assert!(idle >= 250.0, "request {seq} idle {idle}");
    }
    let total = records[4].end_ms - records[0].start_ms;
    assert!(total >= 500.0, "{total}");
}

#[test]
fn duration_bounds_a_run_without_a_request_count() {
    let server = serve(Behaviour::default());
    let mut config = ClientConfig::new(server.addr().to_string());
    config.connections = 2;
    config.duration_ms = Some(500);
    config.gaps_ms = vec![100];
    let records = run(&config);
    // Each worker waits at least 100 ms before each request, so at most 4
    // requests start before 500 ms (at >= 100, 200, 300, 400 ms).
    for worker in 0..2 {
        let n = records.iter().filter(|r| r.worker == worker).count();
        assert!((1..=4).contains(&n), "worker {worker}: {n} requests");
    }
    assert!(records.iter().all(|r| r.start_ms < 500.0 && r.is_ok()));
}

#[test]
fn rate_schedules_requests_per_second() {
    let server = serve(Behaviour::default());
    let mut config = ClientConfig::new(server.addr().to_string());
    config.duration_ms = Some(500);
    config.rate = Some(10.0);
    let records = run(&config);
    // Request i starts no earlier than slot i (i * 100 ms); at most 5 fit.
    assert!((1..=5).contains(&records.len()), "{}", records.len());
    for (i, record) in records.iter().enumerate() {
        assert!(record.start_ms >= i as f64 * 100.0, "{record:?}");
    }
}

#[test]
fn rate_skips_slots_missed_by_a_slow_response() {
    let server = serve(Behaviour {
        response_delay: Duration::from_millis(150),
        ..Default::default()
    });
    let mut config = config(server.addr(), 3);
    config.rate = Some(10.0);
    let records = run(&config);
    assert_eq!(classes(&records), ["200"; 3]);
    // No catch-up burst: each request waits for the first slot (a multiple
    // of 100 ms) after the previous one ended.
    for pair in records.windows(2) {
        let next_slot = (pair[0].end_ms / 100.0).ceil() * 100.0;
        assert!(pair[1].start_ms >= next_slot - 0.01, "{pair:?}");
    }
}

/// A listener whose accept queue is full, so a new SYN goes unanswered.
fn unanswering_listener() -> (socket2::Socket, Vec<std::net::TcpStream>, SocketAddr) {
    use socket2::{Domain, Socket, Type};
    let listener = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    listener.bind(&local().into()).unwrap();
    listener.listen(0).unwrap();
    let addr = listener.local_addr().unwrap().as_socket().unwrap();
    let held = (0..3)
        .filter_map(|_| {
            std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()
        })
        .collect();
    (listener, held, addr)
}

#[test]
fn unanswered_connect_is_errno_110_or_unfinished_when_the_run_ends() {
    let (_listener, _held, addr) = unanswering_listener();
    let mut config = config(addr, 1);
    config.connect_timeout_ms = 200;
    let records = run(&config);
    assert_eq!(classes(&records), ["connect_110"]);
    // poll()'s ms rounding may end the wait a little early.
    assert!(records[0].latency_ms() >= 150.0, "{:?}", records[0]);

    config.connect_timeout_ms = 5_000;
    config.duration_ms = Some(200);
    assert_eq!(classes(&run(&config)), ["unfinished"]);
}

#[test]
fn first_byte_delay_waits_after_connecting() {
    let server = serve(Behaviour::default());
    let mut config = config(server.addr(), 2);
    config.first_byte_delay_ms = 300;
    let records = run(&config);
    assert_eq!(classes(&records), ["200", "200"]);
    // Only a new connection waits.
    assert!(records[0].latency_ms() >= 300.0, "{:?}", records[0]);
    assert!(records[1].latency_ms() < 300.0, "{:?}", records[1]);
}

#[test]
fn source_port_is_bound_and_a_second_connection_on_it_fails_with_99() {
    let server = serve(Behaviour::default());
    let port = closed_port().port();
    let mut config = config(server.addr(), 1);
    config.source_port = Some(port);
    let records = run(&config);
    assert_eq!(classes(&records), ["200"]);
    assert_eq!(records[0].local.map(|a| a.port()), Some(port));

    // Two workers pinned to the same port, each holding its connection
    // for 500 ms: the second connect to the same 4-tuple cannot succeed.
    let port = closed_port().port();
    let mut pinned = config.clone();
    pinned.source_port = Some(port);
    pinned.connections = 2;
    pinned.requests = Some(2);
    pinned.gaps_ms = vec![0, 500];
    let records = run(&pinned);
    let collided = records
        .iter()
        .filter(|r| r.error == Some(ErrorKind::Connect(99)))
        .count();
    assert!(collided >= 1, "{records:#?}");
    for r in records.iter().filter(|r| r.is_ok()) {
        assert_eq!(r.local.map(|a| a.port()), Some(port));
    }
}

#[test]
fn tcp_user_timeout_and_keepalive_options_are_accepted() {
    let server = serve(Behaviour::default());
    let mut config = config(server.addr(), 2);
    config.tcp_user_timeout_ms = Some(2_000);
    config.tcp_keepalive_idle_s = Some(1);
    config.tcp_keepalive_interval_s = Some(1);
    config.tcp_keepalive_count = Some(2);
    assert_eq!(classes(&run(&config)), ["200", "200"]);
}

#[test]
fn x_connlab_header_becomes_the_tag() {
    let listener = TcpListener::bind(local()).unwrap();
    let addr = listener.local_addr().unwrap();
    let server = thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut buf = [0u8; 1024];
        let _ = stream.read(&mut buf).unwrap();
        let response = "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\
                        x-connlab: UC keepalive_race\r\nconnection: close\r\n\r\n";
        stream.write_all(response.as_bytes()).unwrap();
    });
    let records = run(&config(addr, 1));
    server.join().unwrap();
    assert_eq!(records[0].status, Some(503));
    assert_eq!(records[0].tag.as_deref(), Some("UC keepalive_race"));
    let summary = client::summarize(&records);
    assert_eq!(summary.tags.get("UC keepalive_race"), Some(&1));
    assert_eq!(summary.failed, 1);
}

#[test]
fn the_binary_prints_records_and_a_summary_the_library_parses() {
    let server = serve(Behaviour::default());
    let mut config = config(server.addr(), 3);
    config.connections = 2;
    let output = Command::new(env!("CARGO_BIN_EXE_connlab-client"))
        .args(config.to_args())
        .output()
        .expect("run connlab-client");
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let parsed = client::parse_output(&stdout).expect("parse stdout");
    assert_eq!(parsed.records.len(), 6);
    assert_eq!(parsed.summary, Some(client::summarize(&parsed.records)));
    let summary = parsed.summary.unwrap();
    assert_eq!((summary.ok, summary.new_connections), (6, 2));
    assert!(stdout.lines().all(|l| l.starts_with(r#"{"type":"#)));
}

#[test]
fn the_binary_rejects_a_bad_config_with_one_line() {
    let output = Command::new(env!("CARGO_BIN_EXE_connlab-client"))
        .args(["--target", "127.0.0.1:1", "--rate", "0"])
        .output()
        .expect("run connlab-client");
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("`requests` or `duration_ms` must be set"),
        "{stderr}"
    );
}
