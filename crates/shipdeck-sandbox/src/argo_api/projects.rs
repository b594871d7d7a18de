//! AppProject endpoints as Argo CD's project server serves them (`server/project/project.go`):
//! `GET /api/v1/projects/{name}` answers the AppProject; `PUT /api/v1/projects/{name}` with
//! `{"project": {...}}` replaces it the way the server's `AppProjects.Update` does, so a body
//! whose `metadata.resourceVersion` is not the stored one is 409 (gRPC Aborted, Kubernetes'
//! conflict wording) and one without a resourceVersion is refused as Kubernetes refuses an
//! unconditional update of a custom resource. Sync windows are validated (`validateProject`)
//! by the one engine in `shipdeck_wire::syncwindow`.

use super::{ApiError, ApiResult, Shared, caller};
use crate::store::{APPPROJECTS, StoreError};
use crate::{ARGOCD_NAMESPACE, IN_CLUSTER};
use axum::Json;
use axum::extract::Path;
use axum::http::HeaderMap;
use serde_json::Value;
use shipdeck_wire::SyncWindow;

fn not_found(name: &str) -> ApiError {
    ApiError::not_found(format!("appprojects.argoproj.io \"{name}\" not found"))
}

fn denied(user: &super::seams::User, action: &str, name: &str) -> ApiError {
    ApiError::denied(format!(
        "permission denied: projects, {action}, {name}, sub: {}",
        user.name
    ))
}

pub async fn get_project(
    axum::extract::State(world): Shared,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let user = caller(&world, &headers)?;
    let proj = world
        .store
        .get(IN_CLUSTER, APPPROJECTS, ARGOCD_NAMESPACE, &name)
        .ok_or_else(|| not_found(&name))?;
    if !world.users.allowed(&user, "get", &APPPROJECTS, Some(&proj)) {
        return Err(denied(&user, "get", &name));
    }
    Ok(Json((*proj).clone()))
}

pub async fn update_project(
    axum::extract::State(world): Shared,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    let user = caller(&world, &headers)?;
    let req: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::invalid(format!("invalid request body: {e}")))?;
    let Some(mut proj) = req.get("project").filter(|p| p.is_object()).cloned() else {
        return Err(ApiError::invalid("missing payload 'project' in request"));
    };
    if proj["metadata"]["name"].as_str().is_some_and(|n| n != name) {
        return Err(ApiError::invalid(format!(
            "project name in the body does not match the path ({name})"
        )));
    }
    if !world.users.allowed(&user, "update", &APPPROJECTS, None) {
        return Err(denied(&user, "update", &name));
    }
    let windows: Vec<SyncWindow> = match proj["spec"].get("syncWindows") {
        None | Some(Value::Null) => Vec::new(),
        Some(w) => serde_json::from_value(w.clone())
            .map_err(|e| ApiError::invalid(format!("invalid syncWindows: {e}")))?,
    };
    for w in &windows {
        shipdeck_wire::syncwindow::validate(w).map_err(|e| ApiError::invalid(e.to_string()))?;
    }
    if world
        .store
        .get(IN_CLUSTER, APPPROJECTS, ARGOCD_NAMESPACE, &name)
        .is_none()
    {
        return Err(not_found(&name));
    }
    if proj["metadata"]["resourceVersion"]
        .as_str()
        .is_none_or(str::is_empty)
    {
        return Err(ApiError::invalid(format!(
            "AppProject.argoproj.io \"{name}\" is invalid: metadata.resourceVersion: Invalid value: 0x0: must be specified for an update"
        )));
    }
    proj["metadata"]["name"] = Value::String(name.clone());
    proj["metadata"]["namespace"] = Value::String(ARGOCD_NAMESPACE.into());
    let updated = world
        .store
        .replace(IN_CLUSTER, APPPROJECTS, proj, false)
        .map_err(|e| match e {
            StoreError::NotFound { .. } => not_found(&name),
            StoreError::Conflict { .. } => ApiError::conflict(format!(
                "Operation cannot be fulfilled on appprojects.argoproj.io \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
            )),
            other => ApiError::invalid(other.to_string()),
        })?;
    // The controller reads windows on its next pass; wake it as an informer event would.
    world.refresh.notify_waiters();
    Ok(Json((*updated).clone()))
}
