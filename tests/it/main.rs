//! Bulwark integration tests: ONE test binary (`cargo test --test it`).
//!
//! Shared harness: `common` (see tests/README.md). Test modules for the
//! gateway go next to `harness` as `mod <area>;`.

// Tests may panic freely: unwrap/expect are the point of an assertion here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod attacks;
mod auth;
mod cache;
mod common;
mod control;
mod gateway;
mod gateway_smoke;
mod governance;
mod guardrails;
mod harness;
mod keep_alive;
mod pools;
mod remote;
mod replicas;
mod runtime;
mod telemetry;
mod timeouts;
mod tools_at_scale;
mod ui;
