//! (stub, to be written) The sandbox's controllers.

pub mod deploy;

use super::World;
use std::sync::Arc;

pub fn spawn_all(world: Arc<World>) -> Vec<tokio::task::JoinHandle<()>> {
    deploy::spawn(world)
}

/// Controller-owned admin endpoints under `/_sandbox/` (truth, pod failures).
pub fn admin_router(_world: Arc<World>) -> axum::Router {
    axum::Router::new()
}
