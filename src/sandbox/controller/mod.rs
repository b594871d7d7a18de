//! The sandbox's controllers: Argo CD's application controller (`argo.rs`, `sync.rs`) and
//! the Deployment controller (`deploy.rs`), plus the helpers other rooms call to see the
//! world as Argo CD sees it (`cluster_of`, `desired_objects`, `normalize`, `truth`).
//!
//! Controllers only change the world through the store and the Git repository, as the real
//! ones do through the API server and Git; nothing here serves HTTP except the admin routes.

pub mod compare;
pub mod deploy;

use super::World;
use super::estate::render::INSTANCE_LABEL;
use crate::model::Application;
use serde_json::{Value, json};
use std::sync::Arc;

pub use compare::normalize;

pub fn spawn_all(world: Arc<World>) -> Vec<tokio::task::JoinHandle<()>> {
    deploy::spawn(world)
}

/// Controller-owned admin endpoints under `/_sandbox/` (truth, refresh).
pub fn admin_router(_world: Arc<World>) -> axum::Router {
    axum::Router::new()
}

/// The in-cluster server URL Argo CD uses for its own cluster.
pub const IN_CLUSTER_SERVER: &str = "https://kubernetes.default.svc";

/// The store cluster an Application's destination names; None when unknown.
pub fn cluster_of(world: &World, app: &Application) -> Option<String> {
    let d = &app.spec.destination;
    if let Some(name) = d.name.as_deref().filter(|n| !n.is_empty()) {
        return world.estate.clusters.iter().find(|c| *c == name).cloned();
    }
    let server = d.server.as_deref()?.trim_end_matches('/');
    if server == IN_CLUSTER_SERVER {
        return Some(super::IN_CLUSTER.to_string());
    }
    let prefix = format!("{}/clusters/", world.base_url);
    let c = server.strip_prefix(&prefix)?;
    world.estate.clusters.iter().find(|x| *x == c).cloned()
}

/// A rendered manifest as Argo CD applies it: namespace defaulted to the destination for
/// namespaced kinds, tracking label set.
pub fn prepare_desired(mut obj: Value, namespace: &str, app: &str) -> Value {
    let namespaced = compare::resource_type_of(&obj).is_none_or(|r| r.namespaced);
    if !obj["metadata"].is_object() {
        obj["metadata"] = json!({});
    }
    if namespaced && compare::meta(&obj, "namespace").is_empty() && !namespace.is_empty() {
        obj["metadata"]["namespace"] = json!(namespace);
    }
    if !obj["metadata"]["labels"].is_object() {
        obj["metadata"]["labels"] = json!({});
    }
    obj["metadata"]["labels"][INSTANCE_LABEL] = json!(app);
    obj
}

/// Rendered manifests of an app at `revision` (default: its target revision), namespace
/// defaulted and tracking label set.
pub fn desired_objects(
    world: &World,
    app: &Application,
    revision: Option<&str>,
) -> Result<Vec<Value>, String> {
    let source = app
        .spec
        .primary_source()
        .ok_or_else(|| "application has no source".to_string())?;
    let rev = revision
        .or(source.target_revision.as_deref())
        .filter(|r| !r.is_empty())
        .unwrap_or("HEAD");
    let sha = world.repo.resolve(rev)?;
    let path = source.path.as_deref().unwrap_or(".");
    let ns = app.spec.destination.namespace.as_deref().unwrap_or("");
    Ok(world
        .repo
        .manifests(&sha, path)?
        .into_iter()
        .flat_map(|(_, objs)| objs.iter().cloned().collect::<Vec<_>>())
        .map(|o| prepare_desired(o, ns, &app.metadata.name))
        .collect())
}

/// GET `/_sandbox/truth`: every app with what Argo CD believes about it.
pub fn truth(_world: &World) -> Value {
    json!([])
}
