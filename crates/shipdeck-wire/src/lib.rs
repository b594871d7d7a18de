//! The wire shapes both shipdeck and its sandbox speak: Argo CD's `Application` and
//! `AppProject` (argoproj.io/v1alpha1) and their status words, as the CRD and the API server
//! spell them. Plain data with serde, no decisions: the product's judgement (classification,
//! causes, policy) lives in the product, and the sandbox's truth in the sandbox, so that one
//! can check the other.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod argo;
mod status;
pub mod syncwindow;

pub use argo::*;
pub use status::*;
