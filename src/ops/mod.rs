//! Decisions and state: the Estate store, environment classification, why an app is out of
//! sync, the diff engine, approval policy and guards, actions, and the audit log. Ops calls
//! sources but performs no I/O of its own beyond the audit log.

pub mod actions;
pub mod approval;
pub mod audit;
pub mod classify;
pub mod diff;
pub mod estate;
pub mod metrics;
pub mod plan;
pub mod policy;
