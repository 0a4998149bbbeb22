//! connlab's proxy-wasm filter.
//!
//! Everything that decides something lives in plain modules with no host
//! calls, unit-tested natively (`cargo test -p connlab-filter`). The only file
//! that talks to Envoy is `host.rs`, compiled for wasm32 only.

pub mod event;
pub mod flags;
pub mod property;

#[cfg(target_arch = "wasm32")]
mod host;
