//! An Envoy whose one listener carries no HTTP filter and a given access
//! logger (connlab's failures-only logger, `connlab_log`), for the tests of
//! the logger alone and of its Istio manifest.

use std::net::SocketAddr;
use std::time::Duration;

use connlab::envoy::config::{bootstrap, hcm, listener};
use connlab::envoy::process::EnvoyProcess;
use connlab::programs::http1;
use serde_json::Value;

/// Envoy with `logger` as the access log of listener `main`.
pub fn start(
    logger: Value,
    routes: Vec<Value>,
    clusters: Vec<Value>,
) -> (EnvoyProcess, SocketAddr) {
    let main = listener("main", vec![hcm("main", vec![], routes, vec![logger])]);
    let envoy = EnvoyProcess::start(&bootstrap(vec![main], clusters)).expect("start Envoy");
    let addr = envoy.listener("main").expect("listener address");
    (envoy, addr)
}

/// A keep-alive connection to `addr` that waits at most `timeout` for a reply.
pub fn connect(addr: SocketAddr, timeout: Duration) -> http1::Conn {
    let conn = http1::Conn::connect(addr, timeout).expect("connect to Envoy");
    conn.set_read_timeout(Some(timeout));
    conn
}
