//! Shared set-up for connlab's integration tests.

use std::net::{SocketAddr, TcpListener};

pub mod certs;
pub mod filter_proxy;
pub mod lab;
pub mod raw_servers;

pub use connlab::{backend, envoy_config, envoy_process, http1, paths};

/// Loopback with a kernel-picked port.
pub fn any_local_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
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
