//! Argo CD's REST API (the subset in `reference/argocd/swagger-subset.json`) over the
//! sandbox's store: what the argocd CLI and shipdeck's API mode talk to. Errors are shaped as
//! Argo CD's grpc-gateway sends them (`{"error", "code", "message"}` with gRPC codes).
//!
//! It reads Applications and live objects and writes only what the real API server writes:
//! `.operation` (sync, rollback), `operationState.phase = Terminating`, and the refresh
//! annotation. Running an operation is the Argo CD controller's job, never this file's.

mod actions;
mod apps;
mod body;
mod health;
mod listfields;
mod logs;
mod projects;
mod resource;
mod resources;
pub(crate) mod seams;
mod stream;
mod streamed;
mod windows;

use crate::World;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use seams::{AuthError, User};
use serde_json::{Value, json};
use std::sync::Arc;

pub use windows::{SyncWindows, sync_windows};

type Shared = State<Arc<World>>;

pub fn router(world: Arc<World>) -> axum::Router {
    axum::Router::new()
        .route("/api/version", get(version))
        .route("/api/v1/settings", get(settings))
        .route(
            "/api/v1/session",
            post(session_create).delete(session_delete),
        )
        .route("/api/v1/session/userinfo", get(userinfo))
        .route(
            "/api/v1/account/can-i/{resource}/{action}/{*subresource}",
            get(can_i),
        )
        .route("/api/v1/applications", get(apps::list).post(apps::create))
        .route(
            "/api/v1/applications/{name}",
            get(apps::get_app).patch(apps::patch).put(apps::update),
        )
        .route(
            "/api/v1/projects/{name}",
            get(projects::get_project).put(projects::update_project),
        )
        .route("/api/v1/applications/{name}/sync", post(apps::sync))
        .route("/api/v1/applications/{name}/rollback", post(apps::rollback))
        .route(
            "/api/v1/applications/{name}/operation",
            delete(apps::terminate),
        )
        .route(
            "/api/v1/applications/{name}/syncwindows",
            get(apps::syncwindows),
        )
        .route(
            "/api/v1/applications/{name}/managed-resources",
            get(resources::managed),
        )
        .route(
            "/api/v1/applications/{name}/resource-tree",
            get(resources::tree),
        )
        .route(
            "/api/v1/applications/{name}/resource",
            get(resource::get_resource),
        )
        .route("/api/v1/applications/{name}/events", get(resources::events))
        .route(
            "/api/v1/applications/{name}/resource/actions",
            get(actions::list).post(actions::run_v1),
        )
        .route(
            "/api/v1/applications/{name}/resource/actions/v2",
            post(actions::run_v2),
        )
        .route(
            "/api/v1/applications/{name}/revisions/{revision}/metadata",
            get(resources::revision_metadata),
        )
        .route(
            "/api/v1/applications/{name}/pods/{pod}/logs",
            get(resources::pod_logs),
        )
        .route("/api/v1/applications/{name}/logs", get(resources::app_logs))
        .route("/api/v1/stream/applications", get(stream::applications))
        .route(
            "/api/v1/stream/applications/{name}/resource-tree",
            get(stream::resource_tree),
        )
        .with_state(world)
}

/// An error as Argo CD's grpc-gateway answers it.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: u32,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: u32, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
    pub fn unauthenticated(m: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, 16, m)
    }
    pub fn denied(m: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, 7, m)
    }
    pub fn not_found(m: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, 5, m)
    }
    pub fn invalid(m: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, 3, m)
    }
    pub fn precondition(m: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, 9, m)
    }
    pub fn conflict(m: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, 10, m)
    }
    pub fn internal(m: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, 13, m)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": self.message, "code": self.code, "message": self.message});
        (self.status, Json(body)).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// The `Authorization` header, or the `argocd.token` cookie the web UI uses.
fn credentials(headers: &HeaderMap) -> Option<String> {
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        return Some(v.to_string());
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix("argocd.token="))
        .map(|t| format!("Bearer {t}"))
}

/// The authenticated caller, or 401 as Argo CD words it.
pub fn caller(world: &World, headers: &HeaderMap) -> ApiResult<User> {
    seams::authenticate(world, credentials(headers).as_deref()).map_err(|e| match e {
        AuthError::Missing => ApiError::unauthenticated("no session information"),
        AuthError::Expired => {
            ApiError::unauthenticated("invalid session: token has invalid claims: token is expired")
        }
        AuthError::Invalid => {
            ApiError::unauthenticated("invalid session: token signature is invalid")
        }
    })
}

async fn version(State(world): Shared) -> Json<Value> {
    let v = world.faults.argocd_version();
    Json(json!({
        "Version": format!("{v}+sandbox"), "BuildDate": "2026-01-01T00:00:00Z",
        "GitCommit": "0000000000000000000000000000000000000000", "GitTag": v,
        "GitTreeState": "clean", "GoVersion": "go1.24.0", "Compiler": "gc",
        "Platform": "linux/amd64", "KustomizeVersion": "v5.6.0", "HelmVersion": "v3.17.0",
        "KubectlVersion": "v0.32.0", "JsonnetVersion": "v0.20.0",
    }))
}

async fn settings(State(world): Shared) -> Json<Value> {
    Json(json!({
        "url": world.base_url,
        "appLabelKey": "app.kubernetes.io/instance",
        "controllerNamespace": crate::ARGOCD_NAMESPACE,
        "trackingMethod": "label",
        "statusBadgeEnabled": false,
        "userLoginsDisabled": false,
        "execEnabled": false,
        "resourceViewEnabled": true,
        "appsInAnyNamespaceEnabled": false,
        "hydratorEnabled": false,
        "impersonationEnabled": false,
        "syncWithReplaceAllowed": true,
        "passwordPattern": "^.{8,32}$",
        "kustomizeOptions": {"buildOptions": ""},
        "resourceOverrides": {},
        "help": {"chatUrl": "", "chatText": ""},
    }))
}

async fn session_create(State(world): Shared, body: axum::body::Bytes) -> ApiResult<Json<Value>> {
    let req = body::decode(&body, &body::SESSION_REQUEST)?;
    let username = req["username"].as_str().unwrap_or("");
    let password = req["password"].as_str().unwrap_or("");
    match seams::login(&world, username, password) {
        Some(token) => Ok(Json(json!({"token": token}))),
        None => Err(ApiError::unauthenticated("Invalid username or password")),
    }
}

async fn session_delete(State(world): Shared, headers: HeaderMap) -> ApiResult<Json<Value>> {
    caller(&world, &headers)?;
    Ok(Json(json!({})))
}

async fn userinfo(State(world): Shared, headers: HeaderMap) -> Json<Value> {
    match caller(&world, &headers) {
        Ok(user) => Json(
            json!({"loggedIn": true, "username": user.name, "iss": "argocd",
            "groups": []}),
        ),
        Err(_) => Json(json!({"loggedIn": false})),
    }
}

/// `can-i` as `argocd account can-i ACTION RESOURCE SUBRESOURCE` asks it; the subresource
/// is `project/app` (or `*`).
async fn can_i(
    State(world): Shared,
    headers: HeaderMap,
    Path((resource, action, subresource)): Path<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    let user = caller(&world, &headers)?;
    let app_name = subresource.rsplit('/').next().unwrap_or("");
    let app = (!app_name.is_empty() && app_name != "*")
        .then(|| apps::find(&world, app_name))
        .flatten();
    let yes = match (resource.as_str(), action.as_str()) {
        ("applications", a)
            if matches!(a, "sync" | "override" | "action") || a.starts_with("action/") =>
        {
            match &app {
                Some(a) => seams::may_sync(&world, &user, a),
                // A wildcard asks whether the user may sync some apps at all.
                None => user.role != seams::Role::Viewer,
            }
        }
        ("applications", verb) => {
            let verb = match verb {
                "get" => "get",
                "create" => "create",
                "update" => "update",
                "delete" => "delete",
                _ => "patch",
            };
            seams::allowed(&world, &user, verb, app.as_deref())
        }
        (_, "get") => true,
        _ => user.role == seams::Role::Admin,
    };
    Ok(Json(json!({"value": if yes { "yes" } else { "no" }})))
}
