//! Decisions and state: the Estate store, environment classification, why an app is out of
//! sync, the diff engine, approval policy and guards, actions, and the audit log. Ops calls
//! sources but performs no I/O of its own beyond the audit log and its fan-out to webhooks
//! (`notify`).

pub mod actions;
pub mod approval;
pub mod audit;
pub mod classify;
pub mod diff;
pub mod estate;
pub mod foureyes;
pub mod freeze;
pub mod metrics;
pub mod notify;
pub mod plan;
pub mod policy;
pub mod promote;
pub mod prune;
