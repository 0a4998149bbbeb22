//! connlab's lab. The folders follow a run through the pipeline:
//!
//! ```text
//! scenario → run → evidence → check → outcome → outputs      (replay drives it)
//! ```
//!
//! A `scenario` (data) is started by `run` (Docker, the roles, the faults,
//! the captures), which records `evidence`; `check` judges the evidence into
//! an `outcome`; `outputs` write it for people and machines. `diagnose` reads
//! evidence a user already has and judges it with the filter's rules;
//! `audit` reads a user's Envoy config dump against the failure catalogue.
//!
//! Each layer uses only the layers under it in this stack (bottom first), so
//! a type two layers share lives in the lower one; `lab/tests/layers.rs`
//! fails on a module cycle or a use upward:
//!
//! 1. `paths`: where the project's files are.
//! 2. `programs`: what runs inside the containers (backend, load generator).
//! 3. `evidence`: what a run records and the parsers of it.
//! 4. `envoy`: Envoy config as blocks, the shapes built of them (Istio's
//!    sidecar), a mesh's certificates, Envoy as a local process.
//! 5. `outcome`: the one result type.
//! 6. `scenario`: a failure as data.
//! 7. `check`: evidence and a scenario's checks to an outcome.
//! 8. `run`: Docker, the roles, faults and captures; evidence out.
//! 9. `outputs`: human lines, JUnit, HTML report, plots, ladders, compose.
//! 10. `replay`: one variant through the whole pipeline.
//! 11. `diagnose`: a user's logs and captures, through the filter's rules.
//! 12. `audit`: a user's Envoy config dump, against the failure catalogue.

pub mod paths;

pub mod programs;

pub mod evidence;

pub mod envoy;

pub mod outcome;

pub mod scenario;

pub mod check;

pub mod run;

pub mod outputs;

pub mod replay;

pub mod diagnose;

pub mod audit;
