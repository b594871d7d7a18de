//! (stub, to be written) The sandbox's controllers.

use super::World;
use std::sync::Arc;

pub fn spawn_all(_world: Arc<World>) -> Vec<tokio::task::JoinHandle<()>> {
    Vec::new()
}

/// Controller-owned admin endpoints under `/_sandbox/` (truth, pod failures).
pub fn admin_router(_world: Arc<World>) -> axum::Router {
    axum::Router::new()
}
