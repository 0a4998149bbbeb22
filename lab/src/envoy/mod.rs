//! Envoy as the lab builds it, pure and without Docker: config blocks
//! (`config`: listeners, clusters, filters, TLS, access logs, bootstrap),
//! Istio's sidecar shape composed of the same blocks for a pinned release
//! (`istio`), a mesh's certificates (`certs`), and Envoy as a local process
//! for the filter tests (`process`). A shape is a function over blocks, so a
//! second one sits beside the first without a branch in any block. Uses
//! `evidence` (the access-log format, what a process's log holds),
//! `programs` (the HTTP/1 client probing a local Envoy) and `paths`.

pub mod certs;
pub mod config;
pub mod istio;
pub mod process;
