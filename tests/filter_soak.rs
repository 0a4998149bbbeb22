//! The filter over a long run in real Envoy: memory stays flat, events stay
//! within the rate limit and the reuse table within its cap.
//!
//! `SOAK_REQUESTS` requests (default 20,000, the `make test` version;
//! `make soak-filter` sends 1,000,000) through one Envoy (one worker, so
//! one wasm VM sees all of it) with connlab_http at its defaults except a
//! small `reuse_table_cap`, so the short run fills and evicts it too. The
//! mix, by request number `i % 100`:
//!
//! - 0..80 healthy keep-alive GETs (connlab-backend);
//! - 80..90 healthy GETs on a cluster whose connections carry at most 4
//!   requests (`max_requests_per_connection`), so upstream connections
//!   churn: 25,000 distinct ones in the long run;
//! - 90..95 refused connects (a closed port: `connect_refused`);
//! - 95..100 resets (a backend that resets every connection when the request
//!   arrives: `upstream_reset`);
//!
//! over `CLIENTS` downstream connections, each replaced by a new one every
//! `REQUESTS_PER_DOWNSTREAM` requests; beside them one client keeps
//! causing keep-alive races (a request, 150 ms idle, a second request the
//! backend resets: `keepalive_race`) for as long as the load runs.
//!
//! Sampled every 250 ms: Envoy's RSS (`/proc/<pid>/status`), the VM's
//! memory and the table's size (the filter's gauges). After the warm-up
//! (a tenth of the requests, and the table full) both memories must stay
//! within 5 % of their value at its end; every logged event must fit the limiter's
//! one-second windows; logged + suppressed events = diagnosed requests.
//! The figures are printed (`--nocapture`).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use connlab::envoy::config::{cluster, http1_protocol_options, route};
use connlab_tests::filter_proxy::{Proxy, TIMEOUT};
use connlab_tests::{any_local_port, backend, closed_port, http1, raw_servers, wait_stat};
use serde_json::json;

const CLIENTS: usize = 4;
const REQUESTS_PER_DOWNSTREAM: usize = 50;
const TABLE_CAP: u64 = 256;
const EVENTS_PER_SECOND: u64 = 100;
/// Flat means within this fraction of the value after the warm-up.
const FLAT: f64 = 0.05;

fn requests() -> usize {
    std::env::var("SOAK_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

/// The path request `i` takes, and the status it must get.
fn mix(i: usize) -> (&'static str, u16) {
    match i % 100 {
        0..80 => ("/ok", 200),
        80..90 => ("/churn", 200),
        90..95 => ("/refused", 503),
        _ => ("/reset", 503),
    }
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    requests: usize,
    rss_kib: u64,
    wasm_bytes: u64,
    table: u64,
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// One load client: requests from the shared counter until `total`, a new
/// downstream connection every `REQUESTS_PER_DOWNSTREAM`.
fn client(addr: SocketAddr, next: &AtomicUsize, total: usize) {
    let mut conn = None;
    let mut on_conn = 0;
    loop {
        let i = next.fetch_add(1, Ordering::SeqCst);
        if i >= total {
            return;
        }
        if on_conn == REQUESTS_PER_DOWNSTREAM {
            conn = None;
            on_conn = 0;
        }
        let c = conn.get_or_insert_with(|| {
            let c = http1::Conn::connect(addr, TIMEOUT).expect("connect to Envoy");
            c.set_read_timeout(Some(TIMEOUT));
            c
        });
        on_conn += 1;
        let (path, status) = mix(i);
        let got = c.get(path).map(|r| r.status);
        assert_eq!(got, Ok(status), "request {i} to {path}");
    }
}

/// Keep-alive races until `stop`: a request, 150 ms idle, then a second
/// request on the same pooled connection, which the backend resets.
fn racer(addr: SocketAddr, stop: &AtomicBool) -> usize {
    let mut races = 0;
    while !stop.load(Ordering::SeqCst) {
        let mut conn = http1::Conn::connect(addr, TIMEOUT).expect("connect to Envoy");
        conn.set_read_timeout(Some(TIMEOUT));
        assert_eq!(conn.get("/race").map(|r| r.status), Ok(200));
        std::thread::sleep(Duration::from_millis(150));
        assert_eq!(conn.get("/race").map(|r| r.status), Ok(503));
        races += 1;
    }
    races
}

/// Envoy's log timestamp (`[2026-12-07 01:40:00.123]...`) in ms of the day.
fn log_ms(line: &str) -> Option<u64> {
    let time = line.get(12..24)?;
    let (h, rest) = time.split_once(':')?;
    let (m, rest) = rest.split_once(':')?;
    let (s, ms) = rest.split_once('.')?;
    let [h, m, s, ms]: [u64; 4] = [h, m, s, ms].map(|v| v.parse().unwrap_or(u64::MAX));
    (ms < 1000).then(|| ((h * 60 + m) * 60 + s) * 1000 + ms)
}

/// The most events any of the limiter's windows held: windows of one second
/// that start at the first event after the previous one ended, as the
/// filter's limiter opens them (read from Envoy's log times, so a few ms
/// off the filter's own clock).
fn most_per_window(times: &[u64]) -> u64 {
    let (mut most, mut start, mut n) = (0, None, 0);
    for &t in times {
        match start {
            Some(s) if t < s + 1000 => n += 1,
            _ => {
                start = Some(t);
                n = 1;
            }
        }
        most = most.max(n);
    }
    most
}

#[test]
fn a_long_run_stays_flat_and_bounded() {
    let total = requests();
    let ok = backend::spawn(any_local_port(), backend::Behaviour::default()).expect("backend");
    let resets = raw_servers::reset_every_request();
    let races = raw_servers::reset_reused_connection();
    let mut churn = cluster("churn", &[ok.addr()]);
    churn["typed_extension_protocol_options"] = http1_protocol_options(None, Some(4));
    let proxy = Proxy::start_with(
        json!({"reuse_table_cap": TABLE_CAP}),
        vec![
            route("/ok", "ok"),
            route("/churn", "churn"),
            route("/refused", "refused"),
            route("/reset", "reset"),
            route("/race", "race"),
        ],
        vec![
            cluster("ok", &[ok.addr()]),
            churn,
            cluster("refused", &[closed_port()]),
            cluster("reset", &[resets.addr()]),
            cluster("race", &[races.addr()]),
        ],
    );
    let envoy = &proxy.envoy;
    let pid = envoy.pid();
    let next = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (addr, next) = (proxy.addr, Arc::clone(&next));
            std::thread::spawn(move || client(addr, &next, total))
        })
        .collect();
    let racer = {
        let (addr, stop) = (proxy.addr, Arc::clone(&stop));
        std::thread::spawn(move || racer(addr, &stop))
    };
    let sample = |requests| Sample {
        requests,
        rss_kib: rss_kib(pid),
        wasm_bytes: envoy.stat("wasmcustom.connlab_wasm_memory_bytes"),
        table: envoy.stat("wasmcustom.connlab_reuse_table_entries"),
    };
    let mut samples = Vec::new();
    while clients.iter().any(|c| !c.is_finished()) {
        std::thread::sleep(Duration::from_millis(250));
        samples.push(sample(next.load(Ordering::SeqCst).min(total)));
    }
    for c in clients {
        c.join().expect("load client");
    }
    stop.store(true, Ordering::SeqCst);
    let races = racer.join().expect("racer");
    let seconds = start.elapsed().as_secs_f64();
    // The gauges and counters are handed to Envoy once a second.
    let requests_total = wait_stat(
        envoy,
        "wasmcustom.connlab_http_requests_total",
        (total + 2 * races) as u64,
        TIMEOUT,
    );
    std::thread::sleep(Duration::from_millis(1100));
    samples.push(sample(total));
    assert_eq!(
        requests_total,
        (total + 2 * races) as u64,
        "every request counted"
    );

    // Warmed up: a tenth of the requests done and the reuse table full
    // (it then holds between seven eighths of its cap and the cap).
    let full = TABLE_CAP * 7 / 8;
    let at_warm = *samples
        .iter()
        .skip_while(|s| s.table < full)
        .find(|s| s.requests >= total / 10)
        .expect("a sample after the warm-up");
    let warm = at_warm.requests;
    let after: Vec<&Sample> = samples.iter().filter(|s| s.requests >= warm).collect();
    let max_rss = after.iter().map(|s| s.rss_kib).max().unwrap_or(0);
    let max_wasm = after.iter().map(|s| s.wasm_bytes).max().unwrap_or(0);
    let max_table = samples.iter().map(|s| s.table).max().unwrap_or(0);
    let last = *samples.last().expect("samples");

    let diagnosed: u64 = envoy
        .admin_get("/stats?filter=^wasmcustom.connlab_http_diagnosis_")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(": ")?.1.trim().parse::<u64>().ok())
        .sum();
    let log = envoy.log();
    let event_times: Vec<u64> = log
        .lines()
        .filter(|l| l.contains("connlab: {\"v\":1,\"event\":\"http\""))
        .filter_map(log_ms)
        .collect();
    let suppressed = envoy.stat("wasmcustom.connlab_events_suppressed_total");
    let evictions = envoy.stat("wasmcustom.connlab_reuse_evictions_total");
    let most = most_per_window(&event_times);

    println!(
        "soak: {total} requests + {races} keep-alive races in {seconds:.1} s ({:.0} req/s)",
        total as f64 / seconds
    );
    println!(
        "soak: Envoy RSS {} KiB after the warm-up ({warm} requests), at most {max_rss} KiB after it ({:+.2} %), {} KiB at the end ({:+.2} %)",
        at_warm.rss_kib,
        100.0 * (max_rss as f64 / at_warm.rss_kib as f64 - 1.0),
        last.rss_kib,
        100.0 * (last.rss_kib as f64 / at_warm.rss_kib as f64 - 1.0),
    );
    println!(
        "soak: wasm memory {} bytes after the warm-up, at most {max_wasm} after it, {} at the end",
        at_warm.wasm_bytes, last.wasm_bytes
    );
    println!(
        "soak: reuse table at most {max_table} entries (cap {TABLE_CAP}), {evictions} evictions"
    );
    println!(
        "soak: {diagnosed} diagnosed, {} events logged (at most {most} in one limiter window of 1 s, limit {EVENTS_PER_SECOND}), {suppressed} suppressed",
        event_times.len()
    );

    assert!(at_warm.rss_kib > 0 && at_warm.wasm_bytes > 0, "{at_warm:?}");
    let within = |value: u64, base: u64| (value as f64) <= base as f64 * (1.0 + FLAT);
    assert!(
        within(max_rss, at_warm.rss_kib),
        "Envoy RSS grew: {samples:?}"
    );
    assert!(
        within(max_wasm, at_warm.wasm_bytes),
        "wasm memory grew: {samples:?}"
    );
    assert!(max_table <= TABLE_CAP, "table over its cap: {samples:?}");
    assert!(evictions > 0, "the run should fill the table");
    assert!(races > 0);
    // A window may look a few events fuller by Envoy's log times than by
    // the filter's clock (each line is stamped when written).
    assert!(most <= EVENTS_PER_SECOND + 5, "{most} events in one window");
    assert_eq!(
        event_times.len() as u64 + suppressed,
        diagnosed,
        "every diagnosed request logged or counted as suppressed"
    );
}
