//! Shared set-up for connlab's integration tests.

use std::net::{SocketAddr, TcpListener};

pub mod certs;
pub mod filter_proxy;
pub mod lab;
pub mod logger_envoy;
pub mod raw_servers;
pub mod silent_peer;

pub use connlab::envoy::{config as envoy_config, process as envoy_process};
pub use connlab::paths;
pub use connlab::programs::{backend, http1};

/// Loopback with a kernel-picked port.
pub fn any_local_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// connlab-backend on loopback answering every request after `delay`.
pub fn slow_backend(delay: std::time::Duration) -> backend::Running {
    backend::spawn(
        any_local_port(),
        backend::Behaviour {
            response_delay: delay,
            ..Default::default()
        },
    )
    .expect("start backend")
}

/// An address nothing listens on: a port the kernel handed out and that was
/// closed again at once, so connecting to it is refused.
pub fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind(any_local_port()).expect("bind a loopback port");
    listener.local_addr().expect("local address")
}

/// The filter module, or a clear instruction when it has not been built.
pub fn filter_wasm() -> std::path::PathBuf {
    let path = paths::filter_wasm();
    assert!(
        path.exists(),
        "{} is missing: run `make filter`",
        path.display()
    );
    path
}

/// Polls a counter until it reaches `at_least` or `limit` passes; its last
/// value. (connlab flushes its counters to Envoy once a second.)
pub fn wait_stat(
    envoy: &envoy_process::EnvoyProcess,
    name: &str,
    at_least: u64,
    limit: std::time::Duration,
) -> u64 {
    let start = std::time::Instant::now();
    loop {
        let value = envoy.stat(name);
        if value >= at_least || start.elapsed() > limit {
            return value;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// The running Envoy's minor version (`40` for 1.40.0), from the admin API.
pub fn envoy_minor(envoy: &envoy_process::EnvoyProcess) -> Option<u32> {
    let info: serde_json::Value =
        serde_json::from_str(&envoy.admin_get("/server_info").ok()?).ok()?;
    // "version": "<sha>/1.40.0/Clean/RELEASE/BoringSSL"
    let version = info["version"].as_str()?.split('/').nth(1)?;
    version.split('.').nth(1)?.parse().ok()
}

/// A free loopback port below the kernel's ephemeral range, for pinning an
/// upstream source port: a port from `closed_port()` is in the ephemeral
/// range, where any concurrent connection (another test's) may take it
/// first and make the pinned bind() fail.
pub fn pinnable_port() -> u16 {
    let low: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768);
    let span = low.saturating_sub(10_000).max(1);
    // Different per process and per call, so parallel tests pick apart.
    static CALLS: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let start = (std::process::id() as u16)
        .wrapping_mul(7919)
        .wrapping_add(call.wrapping_mul(101))
        % span;
    (0..span)
        .map(|i| 10_000 + (start + i) % span)
        .find(|port| TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], *port))).is_ok())
        .expect("a free port below the ephemeral range")
}

/// Two consecutive free ports inside the kernel's ephemeral range, for a
/// socket's own `IP_LOCAL_PORT_RANGE`: a range that two connections
/// exhaust. (The kernel clamps a socket's range into the system's, so the
/// pair must lie inside it; nothing may listen on either.)
pub fn ephemeral_port_pair() -> (u16, u16) {
    let range =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
    let mut bounds = range
        .split_whitespace()
        .filter_map(|p| p.parse::<u16>().ok());
    let (low, high) = (
        bounds.next().unwrap_or(32768),
        bounds.next().unwrap_or(60999),
    );
    let span = high.saturating_sub(low).max(2) - 1;
    // Different per process and per call (a retry gets another pair).
    static CALLS: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let start = (std::process::id() as u16)
        .wrapping_mul(7919)
        .wrapping_add(call.wrapping_mul(211))
        % span;
    let free = |port: u16| TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).is_ok();
    (0..span)
        .map(|i| low + (start + i) % span)
        .find(|&port| free(port) && free(port + 1))
        .map(|port| (port, port + 1))
        .expect("two free ports in the ephemeral range")
}
