//! connlab's lab. The folders follow a run through the pipeline:
//!
//! ```text
//! scenario → run → evidence → check → outcome → outputs      (replay drives it)
//! ```
//!
//! A `scenario` (data) is started by `run` (Docker, the roles, the faults,
//! the captures), which records `evidence`; `check` judges the evidence into
//! an `outcome`; `outputs` write it for people and machines. `diagnose` reads
//! evidence a user already has and judges it with the filter's rules.
//!
//! Each layer uses only the layers under it in this stack (bottom first), so
//! a type two layers share lives in the lower one; `lab/tests/layers.rs`
//! fails on a module cycle or a use upward:
//!
//! 1. `paths`: where the project's files are.
//! 2. `programs`: what runs inside the containers (backend, load generator).
//! 3. `evidence`: what a run records and the parsers of it.
//! 4. `outcome`: the one result type.
//! 5. `scenario`: a failure as data.
//! 6. `check`: evidence and a scenario's checks to an outcome.
//! 7. `run`: Docker, the roles, faults and captures; evidence out.
//! 8. `outputs`: human lines, JUnit, HTML report, plots, ladders, compose.
//! 9. `replay`: one variant through the whole pipeline.
//! 10. `diagnose`: a user's logs and captures, through the filter's rules.

pub mod paths;

pub mod programs;

pub mod evidence;

pub mod outcome;

pub mod scenario;

pub mod check;

pub mod run;

pub mod outputs;

pub mod replay;

pub mod diagnose;
