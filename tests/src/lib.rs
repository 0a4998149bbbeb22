//! Shared set-up for connlab's integration tests.

use std::net::{SocketAddr, TcpListener};

pub mod certs;
pub mod filter_configs;
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
