//! Resource actions of an Application itself, as Argo CD's API server serves them:
//! `GET /api/v1/applications/{name}/resource/actions` (ListResourceActions, RBAC
//! `applications, get`) and `POST .../resource/actions/v2` (RunResourceActionV2; the
//! deprecated `POST .../resource/actions` with the action name as the body runs the same),
//! RBAC `applications, action/argoproj.io/Application/<action>, <project>/<app>`.
//!
//! The one built-in action of `argoproj.io/Application` is `toggle-auto-sync` (Argo CD 3.5,
//! `resource_customizations/argoproj.io/Application/actions/`): its discovery script offers
//! it as "Disable Auto-Sync" / "Enable Auto-Sync", and its action script flips
//! `spec.syncPolicy.automated.enabled` (keeping `prune`/`selfHeal`), creating
//! `automated: {enabled: true}` when there is none. The server records an Event
//! `ResourceActionRan` "<user> ran action toggle-auto-sync" on the Application. A sandbox
//! told to be an older Argo CD (fault `argocd-version`) lists no action for an Application
//! and answers a run as such a server does ("built-in script does not exist").
//!
//! Actions of live resources (Deployment restart, ...) are not served: 501.

use super::apps::{denied, not_found, readable};
use super::{ApiError, ApiResult, Shared, body, caller, seams};
use crate::store::{APPLICATIONS, StoreError};
use crate::{IN_CLUSTER, World};
use axum::Json;
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use std::collections::HashMap;

pub const TOGGLE_AUTO_SYNC: &str = "toggle-auto-sync";
const GROUP: &str = "argoproj.io";
const KIND: &str = "Application";

/// Whether auto-sync is on as the discovery script decides it: an `automated` block whose
/// `enabled` is true or unset.
fn auto_sync_on(app: &Value) -> bool {
    let automated = &app["spec"]["syncPolicy"]["automated"];
    automated.is_object() && automated["enabled"].as_bool().unwrap_or(true)
}

/// The request names the Application itself (the only resource whose actions are served).
fn names_the_app(name: &str, q: &HashMap<String, String>) -> ApiResult<()> {
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or("");
    if get("kind") == KIND && get("group") == GROUP && get("resourceName") == name {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            12,
            "the sandbox serves resource actions of Applications only (group argoproj.io, kind Application, resourceName = the app)",
        ))
    }
}

pub async fn list(
    axum::extract::State(world): Shared,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let user = caller(&world, &headers)?;
    let app = readable(&world, &user, &name)?;
    names_the_app(&name, &q)?;
    if !world.faults.argocd_at_least(3, 5) {
        // No discovery script for Applications before 3.5: an empty list, which Argo CD's
        // marshaller sends as `{}`.
        return Ok(Json(json!({})));
    }
    let display = if auto_sync_on(&app) {
        "Disable Auto-Sync"
    } else {
        "Enable Auto-Sync"
    };
    Ok(Json(json!({"actions": [
        {"name": TOGGLE_AUTO_SYNC, "displayName": display, "disabled": false}
    ]})))
}

/// `POST .../resource/actions/v2` with a `ResourceActionRunRequestV2` body.
pub async fn run_v2(
    axum::extract::State(world): Shared,
    headers: HeaderMap,
    Path(name): Path<String>,
    raw: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    let req = body::decode(&raw, &body::RESOURCE_ACTION_RUN_V2)?;
    let q: HashMap<String, String> = ["kind", "group", "resourceName", "action"]
        .iter()
        .filter_map(|k| req[*k].as_str().map(|v| (k.to_string(), v.to_string())))
        .collect();
    run(&world, &headers, &name, &q)
}

/// The deprecated `POST .../resource/actions`: the body is the action name (a JSON
/// string), the rest comes in the query.
pub async fn run_v1(
    axum::extract::State(world): Shared,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(mut q): Query<HashMap<String, String>>,
    raw: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    let action: String = serde_json::from_slice(&raw).map_err(|_| {
        ApiError::invalid("json: cannot unmarshal the body into Go value of type string")
    })?;
    q.insert("action".into(), action);
    run(&world, &headers, &name, &q)
}

fn run(
    world: &World,
    headers: &HeaderMap,
    name: &str,
    q: &HashMap<String, String>,
) -> ApiResult<Json<Value>> {
    let user = caller(world, headers)?;
    let action = q.get("action").map(String::as_str).unwrap_or("");
    let app = super::apps::find(world, name).ok_or_else(|| not_found(name))?;
    // RBAC first, on `action/<group>/<kind>/<action>`; the sandbox lets whoever may sync
    // the app run its actions (as a role with `action/*` next to `sync` would).
    let rbac = format!(
        "action/{}/{}/{action}",
        q.get("group").map(String::as_str).unwrap_or(""),
        q.get("kind").map(String::as_str).unwrap_or("")
    );
    if !seams::allowed(world, &user, "get", Some(&app)) || !seams::may_sync(world, &user, &app) {
        return Err(denied(&user, &rbac, &app));
    }
    names_the_app(name, q)?;
    if action != TOGGLE_AUTO_SYNC || !world.faults.argocd_at_least(3, 5) {
        return Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            2,
            "error getting Lua resource action: built-in script does not exist",
        ));
    }
    let mut doc = (*app).clone();
    let on = auto_sync_on(&doc);
    let policy = &mut doc["spec"]["syncPolicy"];
    if !policy.is_object() {
        *policy = json!({});
    }
    let automated = &mut policy["automated"];
    if automated.is_object() {
        automated["enabled"] = json!(!on);
    } else {
        *automated = json!({"enabled": true});
    }
    let updated = world
        .store
        .replace(IN_CLUSTER, APPLICATIONS, doc, false)
        .map_err(|e| match e {
            StoreError::Conflict { .. } => ApiError::conflict(e.to_string()),
            StoreError::NotFound { .. } => not_found(name),
            other => ApiError::invalid(other.to_string()),
        })?;
    world.refresh.notify_waiters();
    crate::events::emit(
        &world.store,
        IN_CLUSTER,
        &updated,
        "Normal",
        "ResourceActionRan",
        &format!("{} ran action {action}", user.name),
        "argocd-server",
    );
    Ok(Json(json!({})))
}
