//! (stub, to be written) The Deployment controller: ReplicaSets, pods, rolling updates.

use crate::sandbox::World;
use std::sync::Arc;

pub fn spawn(_world: Arc<World>) -> Vec<tokio::task::JoinHandle<()>> {
    Vec::new()
}

/// `/_sandbox/` endpoints of the Deployment controller (image faults).
pub fn admin_router(_world: Arc<World>) -> axum::Router {
    axum::Router::new()
}
