//! connlab's lab: the roles a scenario is made of (backends, clients, Envoy,
//! faults), the runtime that starts them and the checker that turns what they
//! saw into an `Outcome`.

pub mod backend;
pub mod envoy_config;
pub mod envoy_process;
pub mod evidence;
pub mod http1;
pub mod paths;
