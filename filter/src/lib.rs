//! connlab's proxy-wasm filter.
//!
//! Everything that decides something lives in plain modules with no host
//! calls, unit-tested natively (`cargo test -p connlab-filter`). The only code
//! that talks to Envoy is `host/`, compiled for wasm32 only.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod client_hello;
pub mod config;
pub mod diagnose;
pub mod event;
pub mod flags;
pub mod judge;
pub mod metrics;
pub mod property;
pub mod ratelimit;
pub mod reuse;
pub mod sniff;

#[cfg(target_arch = "wasm32")]
mod host;
