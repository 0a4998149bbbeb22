//! `make bench-filter`: what the filter costs Envoy, in one run through one
//! Envoy (one worker). Listeners in the same Envoy differ only in their
//! filters: none; an empty proxy-wasm filter (`connlab_noop`, the floor any
//! proxy-wasm filter pays), twice; connlab with defaults; connlab with
//! `"events":"all"` (not under callgrind); and a native file access log
//! printing the same fields.
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
//! BENCH_MODULES=name=path.wasm[@root_id],...: more listeners, each running
//! connlab (`connlab_http`, defaults, or the root given) from another build
//! of the module, so a
//! candidate is measured in the same run, the same Envoy and the same
//! rounds as the module it would replace. Every wasm variant (the empty
//! filter twice, connlab, each module) runs in a VM of its own, so all are
//! the same kind of module; the second empty filter shows what the method
//! itself adds (its ratio should be 1.00). Under callgrind at most one
//! module: valgrind's address space holds four wasm VMs
//! (`assert_every_vm_started`).
//! BENCH_WORKLOADS=0 skips the two throughput workloads.
//! BENCH_CALLGRIND_DUMPS=<dir> keeps callgrind's dumps there;
//! BENCH_CALLGRIND_WARMUP (default 2000) requests warm each listener up
//! before it is counted; BENCH_CALLGRIND_ROUNDS (default 3) rounds, each
//! with an idle spell of BENCH_CALLGRIND_IDLE_MS (default 5000).
//!
//! Two throughput workloads follow, each connlab against the empty filter
//! in the same Envoy, interleaved rounds, median of per-round ratios:
//! 1 MiB request and response bodies through connlab_http
//! (BENCH_BODY_REQUESTS per round, default 200, over 2 connections), and one
//! long TCP stream through connlab_net + tcp_proxy (BENCH_STREAM_MIB per
//! round, default 512).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::io::Write;

use connlab::envoy::config::{
    bootstrap, cluster, failures_only_logger, file_access_log, hcm, http_wasm, listener, net_wasm,
    plugin, route, tcp_proxy,
};
use connlab_tests::envoy_process::EnvoyProcess;
use connlab_tests::{any_local_port, backend, filter_wasm, http1, raw_servers};
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

/// How long a benchmark request may take: under callgrind Envoy runs some
/// fifty times slower, and V8 compiles a module's functions on first use.
fn request_timeout() -> Duration {
    if std::env::var_os("BENCH_CALLGRIND").is_some() {
        Duration::from_secs(300)
    } else {
        Duration::from_secs(5)
    }
}

/// `requests` GETs over `connections` keep-alive connections; wall time.
fn load(addr: SocketAddr, requests: usize, connections: usize) -> Duration {
    let left = Arc::new(AtomicUsize::new(requests));
    let start = Instant::now();
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let left = Arc::clone(&left);
            std::thread::spawn(move || {
                let mut conn = http1::Conn::connect(addr, request_timeout()).expect("connect");
                conn.set_read_timeout(Some(request_timeout()));
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
    name: String,
    listener: String,
    /// Per round: Envoy CPU µs per request, and requests per second.
    cpu_per_request: Vec<f64>,
    rate: Vec<f64>,
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN)
}

/// The listeners' Envoy (their names are `Variant::listener`): the
/// variants, then one per `BENCH_MODULES` entry. Every wasm filter runs in
/// a VM of its own (`vm_id` = its listener's name), so each is loaded,
/// compiled and warmed up the same way whichever module it comes from: the
/// empty filter, the current code and a candidate all as the same kind of
/// module. (A shared VM made the code it shared with other listeners hotter:
/// an extra module counted ~9,000 instructions per request more than the
/// same code in the shared VM.) `empty2` is a second VM of the empty
/// filter: its ratio to `empty` shows what the method itself adds (≈1.00).
fn bench_envoy(backend: SocketAddr, dir: &std::path::Path) -> EnvoyProcess {
    let names: Vec<String> = variants().into_iter().map(|(_, l)| l).collect();
    let wasm = filter_wasm();
    let routes = || vec![route("/", "backend")];
    let with_filter = |name: &str, filter: Vec<Value>, logs: Vec<Value>| {
        listener(name, vec![hcm(name, filter, routes(), logs)])
    };
    let logger = |name: &str, root_id: &str| {
        let mut logger = failures_only_logger(&wasm, root_id, None);
        logger["typed_config"]["config"]["vm_config"]["vm_id"] = json!(name);
        logger
    };
    let own_vm = |name: &str, path: &std::path::Path, root_id: &str, config: Option<&Value>| {
        let mut filter = http_wasm(path, root_id, config);
        filter["typed_config"]["config"]["vm_config"]["vm_id"] = json!(name);
        with_filter(name, vec![filter], vec![])
    };
    let listeners = vec![
        with_filter("none", vec![], vec![]),
        own_vm("empty", &wasm, "connlab_noop", None),
        own_vm("empty2", &wasm, "connlab_noop", None),
        own_vm("defaults", &wasm, "connlab_http", None),
        own_vm(
            "all",
            &wasm,
            "connlab_http",
            Some(&json!({"events": "all"})),
        ),
        with_filter(
            "native",
            vec![],
            vec![file_access_log(&dir.join("access.log"), NATIVE_FORMAT)],
        ),
        // The floor of connlab as a logger that only failed requests reach
        // (`failures_only_logger`): the empty root behind Envoy's CEL
        // filter, so a healthy request costs the filter's evaluation alone.
        with_filter("failonly", vec![], vec![logger("failonly", "connlab_noop")]),
        with_filter("log", vec![], vec![logger("log", "connlab_log")]),
    ];
    let modules = other_modules()
        .into_iter()
        .map(|(name, path, root_id)| own_vm(&name, &path, &root_id, None));
    let listeners = listeners
        .into_iter()
        .chain(modules)
        .filter(|l| names.iter().any(|n| l["name"] == json!(n)))
        .collect();
    // Under callgrind V8 compiles each module for minutes, not seconds.
    EnvoyProcess::start_within(
        &bootstrap(listeners, vec![cluster("backend", &[backend])]),
        Duration::from_secs(600),
    )
    .expect("start Envoy")
}

/// Envoy skips a wasm filter whose VM failed to start on the worker (the
/// listener then serves without it). Under valgrind that happens past four
/// wasm listeners (each VM reserves gigabytes of address space, once on the
/// main thread and once on the worker): a count of such a listener would be
/// a count of no filter, so the bench stops instead.
fn assert_every_vm_started(envoy: &EnvoyProcess) {
    let log = envoy.log();
    assert!(
        !log.contains("Failed to create new Wasm instance") && !log.contains("Wasm VM failed"),
        "a wasm VM failed to start, so its listener runs without the filter \
         (under callgrind: at most one BENCH_MODULES entry):\n{}",
        envoy.log_tail()
    );
}

const VARIANTS: [(&str, &str); 8] = [
    ("no filter", "none"),
    ("empty proxy-wasm filter", "empty"),
    ("empty filter, 2nd VM", "empty2"),
    ("connlab defaults", "defaults"),
    ("connlab events=all", "all"),
    ("native access log", "native"),
    ("failures-only logger floor", "failonly"),
    ("connlab_log (failures only)", "log"),
];

/// `BENCH_WORKLOADS=0` skips the large-body and long-stream workloads.
fn workloads() -> bool {
    std::env::var("BENCH_WORKLOADS").as_deref() != Ok("0")
}

/// `BENCH_MODULES`: (listener name, module path, root_id) per entry;
/// `name=path.wasm` runs `connlab_http`, `name=path.wasm@root_id` another
/// root of that module (the cost probes, scripts/cost/probes.patch).
fn other_modules() -> Vec<(String, std::path::PathBuf, String)> {
    let list = std::env::var("BENCH_MODULES").unwrap_or_default();
    list.split(',')
        .filter(|e| !e.is_empty())
        .map(|entry| {
            let (name, path) = entry
                .split_once('=')
                .expect("BENCH_MODULES entries are name=path.wasm[@root_id]");
            let (path, root_id) = path.split_once('@').unwrap_or((path, "connlab_http"));
            let path = std::path::PathBuf::from(path);
            assert!(path.exists(), "{} is missing", path.display());
            (format!("module {name}"), path, root_id.to_string())
        })
        .collect()
}

/// Every variant's (row name, listener name). Under callgrind not
/// `events=all` (it varies with what the rate limit lets through), and at
/// most four wasm VMs, what valgrind holds: the empty filter twice and
/// connlab, then one module (`BENCH_MODULES`) or else the failures-only
/// logger (`BENCH_LOGGER=floor` for its floor, the empty root).
fn variants() -> Vec<(String, String)> {
    let callgrind = std::env::var_os("BENCH_CALLGRIND").is_some();
    let modules = !other_modules().is_empty();
    let floor = std::env::var("BENCH_LOGGER").as_deref() == Ok("floor");
    let skipped = |listener: &str| match listener {
        "all" => true,
        "failonly" => modules || !floor,
        "log" => modules || floor,
        _ => false,
    };
    VARIANTS
        .iter()
        .filter(|(_, listener)| !(callgrind && skipped(listener)))
        .map(|(name, listener)| (name.to_string(), listener.to_string()))
        .chain(
            other_modules()
                .into_iter()
                .map(|(name, _, _)| (name.clone(), name)),
        )
        .collect()
}

fn main() {
    let server = backend::spawn(any_local_port(), backend::Behaviour::default()).expect("backend");
    let dir = tempfile::tempdir().expect("temp dir");
    if std::env::var_os("BENCH_CALLGRIND").is_some() {
        return callgrind(server.addr(), dir.path());
    }
    let requests = env("BENCH_REQUESTS", 10_000);
    let rounds = env("BENCH_ROUNDS", 9);
    let connections = env("BENCH_CONNECTIONS", 4);
    let envoy = bench_envoy(server.addr(), dir.path());
    let mut variants: Vec<Variant> = variants()
        .into_iter()
        .map(|(name, listener)| Variant {
            name,
            listener,
            cpu_per_request: Vec::new(),
            rate: Vec::new(),
        })
        .collect();
    // Warm up every path (V8 tiers up, pools fill).
    for v in &variants {
        load(
            envoy.listener(&v.listener).expect("listener"),
            2_000,
            connections,
        );
    }
    assert_every_vm_started(&envoy);
    eprintln!("bench-filter: {rounds} rounds x {requests} requests per variant, {connections} connections");
    for round in 1..=rounds {
        for v in variants.iter_mut() {
            let addr = envoy.listener(&v.listener).expect("listener");
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
    // Each connlab variant over the empty filter, per round (same round,
    // same machine load): the figure the 1.10x target is about.
    for v in variants.iter().skip(2).filter(|v| v.listener != "native") {
        let ratios: Vec<f64> = v
            .cpu_per_request
            .iter()
            .zip(&variants[1].cpu_per_request)
            .map(|(d, e)| d / e)
            .collect();
        println!(
            "{} / empty filter, CPU per request: median {:.3}x (rounds {:.3}x to {:.3}x)",
            v.name,
            median(&ratios),
            ratios.iter().copied().fold(f64::INFINITY, f64::min),
            ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        );
    }
    drop(envoy);
    if workloads() {
        throughput_workloads(rounds);
    }
}

/// `BENCH_CALLGRIND=1`: the instructions Envoy executes per request, per
/// variant, counted by valgrind's callgrind. Unlike CPU time on a shared
/// machine this repeats to about 0.1 % between runs (measured), so it is
/// the figure to compare filter versions by; it counts work, not cache
/// misses or host-call latency. Envoy runs under callgrind with collection
/// off; each variant gets a warm-up (V8 tiers up), then collection is
/// switched on for BENCH_CALLGRIND_REQUESTS requests (default 300) over one
/// keep-alive connection, and the dump's total is divided by that count.
/// Needs `valgrind` (Debian package `valgrind`).
fn callgrind(backend: SocketAddr, dir: &std::path::Path) {
    let requests = env("BENCH_CALLGRIND_REQUESTS", 300);
    // V8 compiles a module's functions with its baseline compiler first
    // and swaps in optimized code for the hot ones later, patching code it
    // already ran in place; valgrind notices code that changes in
    // anonymous memory only with --smc-check=all-non-file, and otherwise
    // may keep running what it translated first. Each wasm variant runs in
    // a VM of its own, warmed up alike (`bench_envoy`). Without the flag
    // and without taking idle work off (below), two VMs of the empty filter
    // counted 176,590 and 170,080 (3.7 % apart); with both, they agree
    // within 1 % (filter/README.md, Cost).
    let warmup = env("BENCH_CALLGRIND_WARMUP", 2_000);
    let envoy_bin = connlab::envoy::process::envoy_bin().expect("Envoy binary");
    // BENCH_CALLGRIND_DUMPS=<dir> keeps the dumps (one per variant, in
    // order) for callgrind_annotate.
    let kept = std::env::var_os("BENCH_CALLGRIND_DUMPS").map(std::path::PathBuf::from);
    let dumps = kept.as_deref().unwrap_or(dir);
    std::fs::create_dir_all(dumps).expect("the dump dir");
    let out = dumps.join("callgrind");
    let wrapper = dir.join("envoy-under-callgrind");
    // valgrind's gdbserver FIFOs (which callgrind_control talks through)
    // go in the temp dir, not /tmp: Envoy is killed at the end, so
    // valgrind never removes them itself.
    let vgdb = dir.join("vgdb-pipe");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec valgrind --tool=callgrind --vgdb-prefix={} --instr-atstart=no \
             --smc-check=all-non-file --callgrind-out-file={}.%p {} \"$@\"\n",
            vgdb.display(),
            out.display(),
            envoy_bin.display()
        ),
    )
    .expect("write the wrapper");
    std::process::Command::new("chmod")
        .args(["+x"])
        .arg(&wrapper)
        .status()
        .expect("chmod");
    // EnvoyProcess starts `$CONNLAB_ENVOY` when set; nothing else in this
    // process reads the environment concurrently.
    std::env::set_var("CONNLAB_ENVOY", &wrapper);
    let envoy = bench_envoy(backend, dir);
    let counter = Callgrind {
        pid: envoy.pid().to_string(),
        dir: dumps.to_path_buf(),
        vgdb_prefix: vgdb.clone(),
    };
    // Every listener warmed up first, then rounds, each starting one
    // variant later than the last, so no variant is always counted first
    // or right after the same neighbour.
    let variants = variants();
    let rounds = env("BENCH_CALLGRIND_ROUNDS", 3);
    for (_, listener) in &variants {
        load(envoy.listener(listener).expect("listener"), warmup, 1);
    }
    assert_every_vm_started(&envoy);
    // Envoy works when no request comes too (stats flushes, each connlab
    // VM's one-second tick): under callgrind a request takes milliseconds,
    // so that work would be charged to requests in proportion to how slow
    // the machine was at the time. Each round also counts an idle spell;
    // the median rate of those is taken off every count for its wall time.
    let idle = Duration::from_millis(env("BENCH_CALLGRIND_IDLE_MS", 5_000) as u64);
    let mut idle_rates = Vec::new();
    let mut counted = vec![Vec::new(); variants.len()];
    for round in 0..rounds {
        let (total, wall) = counter.count(|| std::thread::sleep(idle));
        idle_rates.push(total as f64 / wall.as_secs_f64());
        for k in 0..variants.len() {
            let i = (k + round) % variants.len();
            let addr = envoy.listener(&variants[i].1).expect("listener");
            counted[i].push(counter.count(|| {
                load(addr, requests, 1);
            }));
        }
        eprintln!("bench-filter: callgrind round {} done", round + 1);
    }
    let idle_rate = median(&idle_rates);
    let counted: Vec<Vec<f64>> = counted
        .iter()
        .map(|c| {
            c.iter()
                .map(|(total, wall)| {
                    (*total as f64 - idle_rate * wall.as_secs_f64()) / requests as f64
                })
                .collect()
        })
        .collect();
    let rows: Vec<(String, f64)> = variants
        .iter()
        .zip(&counted)
        .map(|((name, _), c)| (name.clone(), median(c)))
        .collect();
    let base = rows[0].1;
    let empty = rows[1].1;
    println!(
        "{:<26} {:>14} {:>10} {:>14} {:>14} {:>10} {:>20}",
        "variant",
        "instr/req",
        "x none",
        "+instr vs none",
        "+instr vs empty",
        "x empty",
        "x empty, rounds"
    );
    for ((name, ir), c) in rows.iter().zip(&counted) {
        let ratios: Vec<f64> = c.iter().zip(&counted[1]).map(|(v, e)| v / e).collect();
        println!(
            "{name:<26} {ir:>14.0} {:>10.3} {:>14.0} {:>14.0} {:>10.3} {:>9.3} to {:>6.3}",
            ir / base,
            ir - base,
            ir - empty,
            ir / empty,
            ratios.iter().copied().fold(f64::INFINITY, f64::min),
            ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        );
    }
    println!(
        "({requests} requests each, median of {rounds} rounds; idle work taken off: {idle_rate:.0} instructions/s)"
    );
    drop(envoy);
    if !workloads() {
        return;
    }
    // The workloads, per MiB through Envoy.
    let bodies = env("BENCH_CALLGRIND_BODIES", 10);
    let stream_mib = env("BENCH_CALLGRIND_STREAM_MIB", 32);
    let big = raw_servers::large_response(MIB);
    let sink = raw_servers::sink();
    let envoy = workload_envoy(big.addr(), sink.server.addr());
    let counter = Callgrind {
        pid: envoy.pid().to_string(),
        dir: dumps.to_path_buf(),
        vgdb_prefix: vgdb.clone(),
    };
    let addr = |name: &str| envoy.listener(name).expect("listener");
    let per_mib = |name: &str| -> f64 {
        if name.starts_with("body") {
            large_bodies(addr(name), 2, 1, MIB);
            let (total, _) = counter.count(|| {
                large_bodies(addr(name), bodies, 1, MIB);
            });
            total as f64 / (2 * bodies) as f64
        } else {
            long_stream(addr(name), &sink.received, MIB);
            let (total, _) = counter.count(|| {
                long_stream(addr(name), &sink.received, stream_mib * MIB);
            });
            total as f64 / stream_mib as f64
        }
    };
    println!(
        "{:<48} {:>16} {:>16} {:>8}",
        "workload", "empty instr/MiB", "connlab instr/MiB", "+ %"
    );
    for (workload, empty, connlab) in [
        (
            "1 MiB request + response bodies (connlab_http)",
            "body_empty",
            "body_connlab",
        ),
        (
            "long TCP stream (connlab_net + tcp_proxy)",
            "tcp_empty",
            "tcp_connlab",
        ),
    ] {
        let (e, c) = (per_mib(empty), per_mib(connlab));
        println!(
            "{workload:<48} {e:>16.0} {c:>16.0} {:>8.2}",
            100.0 * (c / e - 1.0)
        );
    }
}

/// Counts Envoy's instructions under callgrind (started with collection
/// off) around a piece of load.
struct Callgrind {
    pid: String,
    dir: std::path::PathBuf,
    /// The `--vgdb-prefix` valgrind was started with.
    vgdb_prefix: std::path::PathBuf,
}

impl Callgrind {
    fn control(&self, arg: &str) {
        let status = std::process::Command::new("callgrind_control")
            .arg(format!("--vgdb-prefix={}", self.vgdb_prefix.display()))
            .arg(arg)
            .arg(&self.pid)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("callgrind_control (package valgrind)");
        assert!(status.success(), "callgrind_control {arg}");
    }

    /// Instructions Envoy executed (all threads) while `load` ran, and
    /// how long that took.
    fn count(&self, load: impl FnOnce()) -> (u64, Duration) {
        self.control("--instr=on");
        self.control("--zero");
        let start = Instant::now();
        load();
        let wall = start.elapsed();
        self.control("--dump");
        self.control("--instr=off");
        (latest_total(&self.dir, &self.pid), wall)
    }
}

/// The `totals:` of callgrind's newest dump (`callgrind.<pid>.<n>`).
fn latest_total(dir: &std::path::Path, pid: &str) -> u64 {
    let prefix = format!("callgrind.{pid}.");
    let newest = std::fs::read_dir(dir)
        .expect("read the dump dir")
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let part: u64 = name.strip_prefix(&prefix)?.parse().ok()?;
            Some((part, e.path()))
        })
        .max()
        .expect("a callgrind dump")
        .1;
    std::fs::read_to_string(newest)
        .expect("read the dump")
        .lines()
        .find_map(|l| l.strip_prefix("totals:")?.trim().parse().ok())
        .expect("a totals line")
}

/// The large-body and long-stream workloads: connlab against the empty
/// filter, throughput in MiB/s, median of rounds.
const MIB: usize = 1 << 20;

fn throughput_workloads(rounds: usize) {
    let body_requests = env("BENCH_BODY_REQUESTS", 200);
    let stream_mib = env("BENCH_STREAM_MIB", 512);
    let big = raw_servers::large_response(MIB);
    let sink = raw_servers::sink();
    let envoy = workload_envoy(big.addr(), sink.server.addr());
    let addr = |name: &str| envoy.listener(name).expect("listener");
    let bodies = |name: &str| {
        let wall = large_bodies(addr(name), body_requests, 2, MIB);
        (2 * body_requests * MIB) as f64 / MIB as f64 / wall.as_secs_f64()
    };
    let stream = |name: &str| {
        let wall = long_stream(addr(name), &sink.received, stream_mib * MIB);
        stream_mib as f64 / wall.as_secs_f64()
    };
    // Warm up.
    bodies("body_empty");
    bodies("body_connlab");
    stream("tcp_empty");
    stream("tcp_connlab");
    let mut rows = Vec::new();
    for (workload, run, empty, connlab) in [
        (
            "1 MiB request + response bodies (connlab_http)",
            &bodies as &dyn Fn(&str) -> f64,
            "body_empty",
            "body_connlab",
        ),
        (
            "long TCP stream (connlab_net + tcp_proxy)",
            &stream,
            "tcp_empty",
            "tcp_connlab",
        ),
    ] {
        let (mut e, mut c, mut loss) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            let (a, b) = (run(empty), run(connlab));
            e.push(a);
            c.push(b);
            loss.push(100.0 * (1.0 - b / a));
        }
        eprintln!("bench-filter: {workload} done");
        rows.push((workload, median(&e), median(&c), loss));
    }
    println!(
        "{:<48} {:>14} {:>14} {:>10} {:>20}",
        "workload", "empty MiB/s", "connlab MiB/s", "loss %", "loss % range"
    );
    for (workload, empty, connlab, loss) in rows {
        println!(
            "{:<48} {:>14.0} {:>14.0} {:>10.1} {:>9.1} to {:>6.1}",
            workload,
            empty,
            connlab,
            median(&loss),
            loss.iter().copied().fold(f64::INFINITY, f64::min),
            loss.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        );
    }
}

/// The workloads' Envoy: `body_empty` / `body_connlab` (HTTP to `big`),
/// `tcp_empty` / `tcp_connlab` (tcp_proxy to `sink`).
fn workload_envoy(big: SocketAddr, sink: SocketAddr) -> EnvoyProcess {
    let wasm = filter_wasm();
    let http_listener = |name: &str, root_id: &str| {
        listener(
            name,
            vec![hcm(
                name,
                vec![http_wasm(&wasm, root_id, None)],
                vec![route("/", "big")],
                vec![],
            )],
        )
    };
    let tcp_listener = |name: &str, root_id: &str| {
        let filter = if root_id == "connlab_net" {
            net_wasm(&wasm, None)
        } else {
            json!({
                "name": "wasm.noop_net",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.network.wasm.v3.Wasm",
                    "config": plugin(&wasm, root_id, None),
                },
            })
        };
        listener(name, vec![filter, tcp_proxy(name, "sink")])
    };
    EnvoyProcess::start_within(
        &bootstrap(
            vec![
                http_listener("body_empty", "connlab_noop"),
                http_listener("body_connlab", "connlab_http"),
                tcp_listener("tcp_empty", "connlab_noop_net"),
                tcp_listener("tcp_connlab", "connlab_net"),
            ],
            vec![cluster("big", &[big]), cluster("sink", &[sink])],
        ),
        Duration::from_secs(600),
    )
    .expect("start Envoy")
}

/// `requests` POSTs of `size` bytes, each answered with `size` bytes, over
/// `connections` keep-alive connections; wall time.
fn large_bodies(addr: SocketAddr, requests: usize, connections: usize, size: usize) -> Duration {
    let left = Arc::new(AtomicUsize::new(requests));
    let body = Arc::new(vec![b'y'; size]);
    let start = Instant::now();
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let (left, body) = (Arc::clone(&left), Arc::clone(&body));
            std::thread::spawn(move || {
                let mut conn = http1::Conn::connect(addr, Duration::from_secs(5)).expect("connect");
                conn.set_read_timeout(Some(Duration::from_secs(30)));
                let head = format!(
                    "POST / HTTP/1.1\r\nhost: bench\r\ncontent-length: {}\r\n\r\n",
                    body.len()
                );
                while left
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok()
                {
                    conn.send_raw(head.as_bytes()).expect("send head");
                    conn.send_raw(&body).expect("send body");
                    let response = conn.read_response().expect("response");
                    assert_eq!((response.status, response.body.len()), (200, body.len()));
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("body worker");
    }
    start.elapsed()
}

/// Streams `bytes` through one connection and waits until the sink has
/// them all; wall time.
fn long_stream(addr: SocketAddr, received: &AtomicUsize, bytes: usize) -> Duration {
    let chunk = vec![b'z'; 256 * 1024];
    let before = received.load(Ordering::SeqCst);
    let start = Instant::now();
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    let mut sent = 0;
    while sent < bytes {
        let n = chunk.len().min(bytes - sent);
        stream.write_all(&chunk[..n]).expect("stream");
        sent += n;
    }
    while received.load(Ordering::SeqCst) < before + bytes {
        assert!(start.elapsed() < Duration::from_secs(120), "stream stalled");
        std::thread::sleep(Duration::from_millis(1));
    }
    let wall = start.elapsed();
    drop(stream);
    wall
}
