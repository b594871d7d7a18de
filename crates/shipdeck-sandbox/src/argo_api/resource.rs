//! `GET /api/v1/applications/{name}/resource`: one live object of the app, as Argo CD's
//! `ApplicationService.GetResource` answers it (`{"manifest": "<the object as JSON>"}`). The
//! object must be a node of the app's resource tree; anything else is refused the way
//! Argo CD refuses it, so a reader of one app cannot read another's objects through it.

use super::apps::readable;
use super::resources::tree_of;
use super::{ApiError, ApiResult, Shared, caller, seams};
use crate::store::RESOURCE_TYPES;
use crate::{IN_CLUSTER, World};
use axum::Json;
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use shipdeck_wire::Application;

fn param<'a>(q: &'a [(String, String)], key: &str) -> &'a str {
    q.iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

/// The live object, if `(group, kind, namespace, name)` is a node of the app's tree.
pub fn live_resource(
    world: &World,
    app: &Value,
    group: &str,
    kind: &str,
    namespace: &str,
    name: &str,
) -> Option<std::sync::Arc<Value>> {
    let tree = tree_of(world, app);
    let in_tree = tree["nodes"].as_array().into_iter().flatten().any(|n| {
        n["group"].as_str().unwrap_or("") == group
            && n["kind"] == kind
            && n["namespace"].as_str().unwrap_or("") == namespace
            && n["name"] == name
    });
    if !in_tree {
        return None;
    }
    let typed: Application = serde_json::from_value(app.clone()).unwrap_or_default();
    let cluster = seams::cluster_of(world, &typed).unwrap_or_else(|| IN_CLUSTER.to_string());
    let res = RESOURCE_TYPES
        .iter()
        .find(|r| r.group == group && r.kind == kind)?;
    world.store.get(&cluster, *res, namespace, name)
}

pub async fn get_resource(
    axum::extract::State(world): Shared,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
) -> ApiResult<Json<Value>> {
    let user = caller(&world, &headers)?;
    let app = readable(&world, &user, &name)?;
    let (group, kind, ns, rname) = (
        param(&q, "group"),
        param(&q, "kind"),
        param(&q, "namespace"),
        param(&q, "resourceName"),
    );
    match live_resource(&world, &app, group, kind, ns, rname) {
        Some(obj) => Ok(Json(json!({"manifest": obj.to_string()}))),
        // Argo CD: status.Errorf(codes.InvalidArgument, "%s %s %s not found as part of
        // application %s", kind, group, name, app).
        None => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            3,
            format!("{kind} {group} {rname} not found as part of application {name}"),
        )),
    }
}
