//! (stub, to be written) Fault injection and admin endpoints under `/_sandbox/`.

use super::World;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use std::sync::Arc;

#[derive(Debug, Default)]
pub struct Faults {}

pub fn admin_router(_world: Arc<World>) -> axum::Router {
    axum::Router::new()
}

pub async fn fault_layer(State(_world): State<Arc<World>>, req: Request, next: Next) -> Response {
    next.run(req).await
}
