//! `make bench-filter`: what the filter costs Envoy, in one run through one
//! Envoy (one worker). Five listeners in the same Envoy differ only in their
//! filters: none; an empty proxy-wasm filter (`connlab_noop`, the floor any
//! proxy-wasm filter pays); connlab with defaults; connlab with
//! `"events":"all"`; and a native file access log printing the same fields.
//! The same keep-alive load goes through each in turn (interleaved rounds);
//! Envoy's CPU comes from deltas of its threads' on-CPU time
//! (/proc/<pid>/task/*/schedstat, the same time as utime + stime in
//! /proc/<pid>/stat but in ns rather than 10 ms ticks).
//!
//! Each figure is the median over rounds, which keeps a burst of other work
//! on the machine from skewing one variant.
//!
//! Knobs: BENCH_REQUESTS (per variant per round, default 10000),
//! BENCH_ROUNDS (default 9), BENCH_CONNECTIONS (default 4).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use connlab::envoy_config::{bootstrap, cluster, file_access_log, hcm, http_wasm, listener, route};
use connlab_tests::envoy_process::EnvoyProcess;
use connlab_tests::{any_local_port, backend, filter_wasm, http1};
use serde_json::{json, Value};

const NATIVE_FORMAT: &str = concat!(
    r#"{"v":1,"event":"http","conn":%CONNECTION_ID%,"upstream":{"local":"%UPSTREAM_LOCAL_ADDRESS%","#,
    r#""peer":"%UPSTREAM_HOST%"},"attempts":%UPSTREAM_REQUEST_ATTEMPT_COUNT%,"code":%RESPONSE_CODE%,"#,
    r#""flags":"%RESPONSE_FLAGS%","details":"%RESPONSE_CODE_DETAILS%","#,
    r#""failure":"%UPSTREAM_TRANSPORT_FAILURE_REASON%"}"#,
    "\n"
);

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Envoy's CPU time so far, in µs: the sum of its threads' on-CPU time
/// from /proc/<pid>/task/*/schedstat (ns resolution), or utime + stime from
/// /proc/<pid>/stat (10 ms ticks) where schedstat is missing.
fn cpu_us(pid: u32) -> f64 {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten();
    let ns: Option<u64> = tasks
        .map(|t| {
            let text = std::fs::read_to_string(t.path().join("schedstat")).ok()?;
            text.split_whitespace().next()?.parse::<u64>().ok()
        })
        .sum();
    match ns {
        Some(ns) if ns > 0 => ns as f64 / 1000.0,
        _ => stat_cpu_us(pid),
    }
}

fn stat_cpu_us(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the whole line.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<u64> = rest
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let ticks = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
    ticks as f64 * 1e6 / clock_ticks() as f64
}

fn clock_ticks() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100)
}

/// `requests` GETs over `connections` keep-alive connections; wall time.
fn load(addr: SocketAddr, requests: usize, connections: usize) -> Duration {
    let left = Arc::new(AtomicUsize::new(requests));
    let start = Instant::now();
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let left = Arc::clone(&left);
            std::thread::spawn(move || {
                let mut conn = http1::Conn::connect(addr, Duration::from_secs(5)).expect("connect");
                conn.set_read_timeout(Some(Duration::from_secs(5)));
                while left
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok()
                {
                    let status = conn.get("/").map(|r| r.status);
                    assert_eq!(status, Ok(200), "benchmark request failed");
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("load worker");
    }
    start.elapsed()
}

struct Variant {
    name: &'static str,
    listener: &'static str,
    /// Per round: Envoy CPU µs per request, and requests per second.
    cpu_per_request: Vec<f64>,
    rate: Vec<f64>,
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN)
}

fn main() {
    let requests = env("BENCH_REQUESTS", 10_000);
    let rounds = env("BENCH_ROUNDS", 9);
    let connections = env("BENCH_CONNECTIONS", 4);
    let server = backend::spawn(any_local_port(), backend::Behaviour::default()).expect("backend");
    let dir = tempfile::tempdir().expect("temp dir");
    let wasm = filter_wasm();
    let routes = || vec![route("/", "backend")];
    let with_filter = |name: &str, filter: Vec<Value>, logs: Vec<Value>| {
        listener(name, vec![hcm(name, filter, routes(), logs)])
    };
    let listeners = vec![
        with_filter("none", vec![], vec![]),
        with_filter(
            "empty",
            vec![http_wasm(&wasm, "connlab_noop", None)],
            vec![],
        ),
        with_filter(
            "defaults",
            vec![http_wasm(&wasm, "connlab_http", None)],
            vec![],
        ),
        with_filter(
            "all",
            vec![http_wasm(
                &wasm,
                "connlab_http",
                Some(&json!({"events": "all"})),
            )],
            vec![],
        ),
        with_filter(
            "native",
            vec![],
            vec![file_access_log(
                &dir.path().join("access.log"),
                NATIVE_FORMAT,
            )],
        ),
    ];
    let envoy = EnvoyProcess::start(&bootstrap(
        listeners,
        vec![cluster("backend", &[server.addr()])],
    ))
    .expect("start Envoy");
    let mut variants = [
        ("no filter", "none"),
        ("empty proxy-wasm filter", "empty"),
        ("connlab defaults", "defaults"),
        ("connlab events=all", "all"),
        ("native access log", "native"),
    ]
    .map(|(name, listener)| Variant {
        name,
        listener,
        cpu_per_request: Vec::new(),
        rate: Vec::new(),
    });
    // Warm up every path (V8 tiers up, pools fill).
    for v in &variants {
        load(
            envoy.listener(v.listener).expect("listener"),
            2_000,
            connections,
        );
    }
    eprintln!("bench-filter: {rounds} rounds x {requests} requests per variant, {connections} connections");
    for round in 1..=rounds {
        for v in variants.iter_mut() {
            let addr = envoy.listener(v.listener).expect("listener");
            let before = cpu_us(envoy.pid());
            let wall = load(addr, requests, connections);
            let cpu = cpu_us(envoy.pid()) - before;
            v.cpu_per_request.push(cpu / requests as f64);
            v.rate.push(requests as f64 / wall.as_secs_f64());
        }
        eprintln!("bench-filter: round {round} done");
    }
    let per_request = |v: &Variant| median(&v.cpu_per_request);
    let base = per_request(&variants[0]);
    let empty = per_request(&variants[1]);
    println!(
        "{:<26} {:>9} {:>12} {:>10} {:>12} {:>12}",
        "variant", "req/s", "CPU µs/req", "x none", "+µs vs none", "+µs vs empty"
    );
    for v in &variants {
        let us = per_request(v);
        println!(
            "{:<26} {:>9.0} {:>12.1} {:>10.2} {:>12.1} {:>12.1}",
            v.name,
            median(&v.rate),
            us,
            us / base,
            us - base,
            us - empty
        );
    }
}
