//! A whole bootstrap: listeners and clusters under `static_resources`, and
//! the admin address.

use std::net::SocketAddr;

use serde_json::{json, Value};

use super::{address, loopback_any};

/// A whole bootstrap with its admin on `admin`.
pub fn bootstrap_with_admin(
    listeners: Vec<Value>,
    clusters: Vec<Value>,
    admin: SocketAddr,
) -> Value {
    json!({
        "admin": {"address": address(admin)},
        "static_resources": {"listeners": listeners, "clusters": clusters},
    })
}

/// A whole bootstrap with its admin on loopback port 0.
pub fn bootstrap(listeners: Vec<Value>, clusters: Vec<Value>) -> Value {
    bootstrap_with_admin(listeners, clusters, loopback_any())
}
