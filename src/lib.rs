//! shipdeck: a terminal operations console for GitOps estates (Argo CD applications by
//! environment, live diffs, rollouts, approvals, rollbacks, builds), with an embedded
//! sandbox that simulates such an estate on loopback.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod cli;
pub mod config;
pub mod connect;
pub mod logging;
pub mod memory;
pub mod model;
pub mod ops;
pub mod paths;
pub use shipdeck_sandbox as sandbox;
pub mod secrets;
pub mod sources;
pub mod tui;
