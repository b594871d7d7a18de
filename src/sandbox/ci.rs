//! (stub, to be written) Simulated CI runs shared by the GitHub and Jenkins APIs.

use super::World;
use std::sync::Arc;

#[derive(Debug, Default)]
pub struct Ci {}

pub fn spawn(_world: Arc<World>) -> Vec<tokio::task::JoinHandle<()>> {
    Vec::new()
}
