//! The parts a scenario is made of, one module per role, each started in a
//! container of the lab image.

pub mod backend;
pub mod client;
pub mod envoy;
