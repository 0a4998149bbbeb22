//! What each kind of node does in a run, one module per kind: start it in
//! a container of the lab image, and (for Envoys, clients and workload
//! scripts) collect what it saw. Uses `runtime` (containers), `envoy`
//! (configs, certificates, Istio's shapes), `scenario` (the node), `programs`
//! (the client's plan) and `evidence` (what a role hands back).

pub mod backend;
pub mod client;
pub mod envoy;
pub mod router;
pub mod script;
pub mod sidecar;
