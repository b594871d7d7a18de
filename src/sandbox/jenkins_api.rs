//! (stub, to be written)

use super::World;
use std::sync::Arc;

pub fn router(_world: Arc<World>) -> axum::Router {
    axum::Router::new()
}
