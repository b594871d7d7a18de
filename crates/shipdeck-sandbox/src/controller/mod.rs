//! The sandbox's controllers: Argo CD's application controller (`argo.rs`, `sync.rs`) and
//! the Deployment controller (`deploy.rs`), plus the helpers other rooms call to see the
//! world as Argo CD sees it (`cluster_of`, `desired_objects`, `normalize`, `truth`).
//!
//! Controllers only change the world through the store and the Git repository, as the real
//! ones do through the API server and Git; nothing here serves HTTP except the admin routes.

mod argo;
pub mod compare;
pub mod deploy;
mod pushes;
mod sync;
pub mod windows;
mod workloads;

use super::World;
use super::estate::render::INSTANCE_LABEL;
use serde::Deserialize;
use serde_json::{Value, json};
use shipdeck_wire::Application;
use std::sync::Arc;

pub use compare::normalize;

pub fn spawn_all(world: Arc<World>) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = argo::spawn(world.clone());
    tasks.extend(deploy::spawn(world.clone()));
    tasks.extend(workloads::spawn(world.clone()));
    tasks.push(pushes::spawn(world));
    tasks
}

/// Controller-owned admin endpoints under `/_sandbox/`: `GET truth` (what Argo CD believes
/// about every app) and `POST refresh` (a Git webhook: look at Git now).
pub fn admin_router(world: Arc<World>) -> axum::Router {
    use axum::routing::{get, post};
    axum::Router::new()
        .route(
            "/_sandbox/truth",
            get(
                |axum::extract::State(w): axum::extract::State<Arc<World>>| async move {
                    axum::Json(truth(&w))
                },
            ),
        )
        .route(
            "/_sandbox/refresh",
            post(
                |axum::extract::State(w): axum::extract::State<Arc<World>>| async move {
                    w.refresh.notify_waiters();
                    w.refresh.notify_one();
                    axum::Json(json!({"refreshed": true}))
                },
            ),
        )
        .with_state(world)
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
    desired_at_sha(world, app, &sha, source.path.as_deref())
}

/// Rendered manifests of an app at a resolved commit, from `path` (default: the app's).
pub(crate) fn desired_at_sha(
    world: &World,
    app: &Application,
    sha: &str,
    path: Option<&str>,
) -> Result<Vec<Value>, String> {
    let path = path
        .or(app.spec.primary_source().and_then(|s| s.path.as_deref()))
        .unwrap_or(".");
    let ns = app.spec.destination.namespace.as_deref().unwrap_or("");
    Ok(world
        .repo
        .manifests(sha, path)?
        .into_iter()
        .flat_map(|(_, objs)| objs.iter().cloned().collect::<Vec<_>>())
        .map(|o| prepare_desired(o, ns, &app.metadata.name))
        .collect())
}

/// GET `/_sandbox/truth`: every app as the sandbox itself knows it, sorted by name. Nothing
/// here asks the product: `service` and `environment` come from the estate definition,
/// `git_head` from the sandbox's own repository (the branch the app tracks, resolved by `git`),
/// `deployed_revision` from the history this controller wrote, and `cause` from comparing the
/// two: an OutOfSync app whose deployed revision is not the branch head has a pending change,
/// one that runs the head has drifted.
pub fn truth(world: &World) -> Value {
    let (apps, _) = world.store.list(
        super::IN_CLUSTER,
        super::store::APPLICATIONS,
        Some(super::ARGOCD_NAMESPACE),
    );
    let mut heads: std::collections::HashMap<String, Option<String>> = Default::default();
    let mut out: Vec<Value> = apps
        .iter()
        .filter_map(|obj| {
            let app = Application::deserialize(&**obj).ok()?;
            let name = app.metadata.name.clone();
            let def = world.estate.app(&name);
            let branch = app.target_revision().unwrap_or("HEAD").to_string();
            let head = heads
                .entry(branch.clone())
                .or_insert_with(|| world.repo.resolve(&branch).ok())
                .clone();
            let deployed = app
                .status
                .history
                .last()
                .and_then(|h| h.revision.clone().or_else(|| h.revisions.first().cloned()));
            let cause = if app.status.sync.status.as_str() != "OutOfSync" {
                "none"
            } else {
                match (&deployed, &head) {
                    (Some(d), Some(h)) if d == h => "drift",
                    (Some(_), Some(_)) => "pending-change",
                    _ => "unknown",
                }
            };
            Some(json!({
                "name": name,
                "environment": def.map(|d| d.environment.clone()).unwrap_or_else(|| app.metadata.labels.get("env").cloned().unwrap_or_default()),
                "service": def.map(|d| d.service.clone()).unwrap_or_default(),
                "sync": app.status.sync.status.as_str(),
                "health": app.status.health.status.as_str(),
                "revision": app.status.sync.revision,
                "git_head": head,
                "deployed_revision": deployed,
                "cause": cause,
                "auto_sync": app.auto_sync(),
                "operation": app.status.operation_state.as_ref().map(|o| o.phase.as_str()),
                "images": app.status.summary.as_ref().map(|s| s.images.clone()).unwrap_or_default(),
                // What the churn fault last wrote (its stamp) and when the app was last
                // reconciled: a watcher that lost no event ends with the same two.
                "reconciled_at": obj["status"]["reconciledAt"].as_str(),
                "churn": obj["metadata"]["annotations"]["sandbox.shipdeck.io/churn"].as_str(),
            }))
        })
        .collect();
    out.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    Value::Array(out)
}
