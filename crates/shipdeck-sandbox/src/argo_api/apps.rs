//! Application endpoints: list, get (with refresh), sync, rollback, terminate, sync windows.
//! Sync and rollback write `.operation` exactly as Argo CD's API server does
//! (`SetAppOperation`: refuse when one is set, clear `status.operationState`, retry on
//! conflict); the controller runs it.

use super::listfields::ListFields;
use super::{ApiError, ApiResult, Shared, body, caller, seams, windows};
use crate::store::{APPLICATIONS, APPPROJECTS, StoreError};
use crate::{ARGOCD_NAMESPACE, IN_CLUSTER, World};
use axum::Json;
use axum::extract::{Path, Query};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{Value, json};
use shipdeck_wire::Application;
use std::sync::Arc;
use std::time::Duration;

pub const REFRESH_ANNOTATION: &str = "argocd.argoproj.io/refresh";

pub fn find(world: &World, name: &str) -> Option<Arc<Value>> {
    world
        .store
        .get(IN_CLUSTER, APPLICATIONS, ARGOCD_NAMESPACE, name)
}

pub fn not_found(name: &str) -> ApiError {
    ApiError::not_found(format!("applications.argoproj.io \"{name}\" not found"))
}

/// The app, if it exists and the caller may read it (Argo CD answers 403 for apps a user
/// cannot see, so existence does not leak).
pub fn readable(world: &World, user: &seams::User, name: &str) -> ApiResult<Arc<Value>> {
    let app = find(world, name).ok_or_else(|| not_found(name))?;
    if !seams::allowed(world, user, "get", Some(&app)) {
        return Err(denied(user, "get", &app));
    }
    Ok(app)
}

pub fn denied(user: &seams::User, action: &str, app: &Value) -> ApiError {
    ApiError::denied(format!(
        "permission denied: applications, {action}, {}/{}, sub: {}",
        app["spec"]["project"].as_str().unwrap_or("default"),
        app["metadata"]["name"].as_str().unwrap_or(""),
        user.name
    ))
}

fn typed(app: &Value) -> Application {
    serde_json::from_value(app.clone()).unwrap_or_default()
}

fn params(q: &[(String, String)], key: &str) -> Vec<String> {
    q.iter()
        .filter(|(k, _)| k == key)
        .flat_map(|(_, v)| v.split(',').map(str::trim).map(str::to_string))
        .filter(|v| !v.is_empty())
        .collect()
}

fn param<'a>(q: &'a [(String, String)], key: &str) -> Option<&'a str> {
    q.iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// Whether an Application passes the list/watch filters (`name`, `projects`, `selector`,
/// `repo`).
pub fn passes(app: &Value, q: &[(String, String)], selector: &Selector) -> bool {
    if let Some(name) = param(q, "name")
        && app["metadata"]["name"].as_str() != Some(name)
    {
        return false;
    }
    let mut projects = params(q, "projects");
    projects.extend(params(q, "project"));
    if !projects.is_empty()
        && !projects
            .iter()
            .any(|p| app["spec"]["project"].as_str() == Some(p.as_str()))
    {
        return false;
    }
    if let Some(repo) = param(q, "repo")
        && app["spec"]["source"]["repoURL"].as_str() != Some(repo)
    {
        return false;
    }
    selector.matches(&app["metadata"]["labels"])
}

pub fn selector_of(q: &[(String, String)]) -> ApiResult<Selector> {
    Selector::parse(param(q, "selector").unwrap_or(""))
        .map_err(|e| ApiError::invalid(format!("error parsing selector: {e}")))
}

pub async fn list(
    axum::extract::State(world): Shared,
    headers: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
) -> ApiResult<Response> {
    let user = caller(&world, &headers)?;
    let selector = selector_of(&q)?;
    let (apps, rv) = world
        .store
        .list(IN_CLUSTER, APPLICATIONS, Some(ARGOCD_NAMESPACE));
    let mut items: Vec<Arc<Value>> = apps
        .into_iter()
        .filter(|a| passes(a, &q, &selector))
        .filter(|a| seams::allowed(&world, &user, "get", Some(a)))
        .collect();
    if let Some(kind) = param(&q, "refresh") {
        let names: Vec<String> = items
            .iter()
            .filter_map(|a| a["metadata"]["name"].as_str().map(str::to_string))
            .collect();
        for n in &names {
            request_refresh(&world, n, kind);
        }
        world.refresh.notify_waiters();
        items = names.iter().filter_map(|n| find(&world, n)).collect();
    }
    Ok(list_body(items, rv.to_string(), Fields::of(&q).as_ref()))
}

/// The list written as it is sent ([`streamed`]), straight from the store's shared objects
/// (no intermediate JSON tree, no copy of any app), projected by `fields` when asked: Argo
/// CD's list picks each item's fields from its fixed table (see `listfields`); the list's
/// own metadata is always written whole.
fn list_body(items: Vec<Arc<Value>>, rv: String, fields: Option<&Fields>) -> Response {
    struct List {
        rv: String,
        items: Vec<Arc<Value>>,
        table: Option<ListFields>,
    }
    struct Items<'a>(&'a List);
    impl serde::Serialize for Items<'_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let l = self.0;
            match &l.table {
                None => s.collect_seq(l.items.iter().map(|a| a.as_ref())),
                Some(t) => s.collect_seq(l.items.iter().map(|a| t.node(a))),
            }
        }
    }
    impl serde::Serialize for List {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeMap;
            let mut m = s.serialize_map(Some(2))?;
            m.serialize_entry("metadata", &json!({"resourceVersion": self.rv}))?;
            m.serialize_entry("items", &Items(self))?;
            m.end()
        }
    }
    super::streamed::json(List {
        rv,
        items,
        table: fields.map(ListFields::of),
    })
}

fn request_refresh(world: &World, name: &str, kind: &str) {
    let kind = if kind == "hard" { "hard" } else { "normal" };
    let _ = world.store.mutate(
        IN_CLUSTER,
        APPLICATIONS,
        ARGOCD_NAMESPACE,
        name,
        false,
        |app| {
            if !app["metadata"]["annotations"].is_object() {
                app["metadata"]["annotations"] = json!({});
            }
            app["metadata"]["annotations"][REFRESH_ANNOTATION] = json!(kind);
            Ok(true)
        },
    );
}

pub async fn get_app(
    axum::extract::State(world): Shared,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
) -> ApiResult<Json<Value>> {
    let user = caller(&world, &headers)?;
    let app = readable(&world, &user, &name)?;
    let Some(kind) = param(&q, "refresh") else {
        return Ok(Json((*app).clone()));
    };
    request_refresh(&world, &name, kind);
    world.refresh.notify_waiters();
    // Argo CD answers once the controller has refreshed (it removes the annotation), or
    // after its own timeout.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let app = find(&world, &name).ok_or_else(|| not_found(&name))?;
        if app["metadata"]["annotations"][REFRESH_ANNOTATION].is_null()
            || tokio::time::Instant::now() > deadline
        {
            return Ok(Json((*app).clone()));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Resolve a revision in the app's repository to a commit, as the repo server does.
fn resolve(world: &World, rev: &str) -> ApiResult<String> {
    seams::resolve(world, rev).map_err(|e| {
        ApiError::invalid(format!(
            "rpc error: code = Unknown desc = unable to resolve '{rev}' to a commit SHA: {e}"
        ))
    })
}

/// Argo CD's `SetAppOperation`.
fn set_operation(world: &World, name: &str, op: Value) -> ApiResult<Value> {
    if seams::take_conflict(world) {
        return Err(ApiError::conflict(format!(
            "Operation cannot be fulfilled on applications.argoproj.io \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
        )));
    }
    let res = world.store.mutate(
        IN_CLUSTER,
        APPLICATIONS,
        ARGOCD_NAMESPACE,
        name,
        true,
        |app| {
            if !app["operation"].is_null() {
                return Err(StoreError::Invalid(
                    "another operation is already in progress".into(),
                ));
            }
            app["operation"] = op.clone();
            if let Some(st) = app["status"].as_object_mut() {
                st.remove("operationState");
            }
            Ok(true)
        },
    );
    match res {
        Ok(app) => Ok((*app).clone()),
        Err(StoreError::Invalid(m)) => Err(ApiError::precondition(m)),
        Err(StoreError::NotFound { .. }) => Err(not_found(name)),
        Err(e) => Err(ApiError::conflict(e.to_string())),
    }
}

fn sync_options_of(app: &Value, req: &Value) -> Option<Value> {
    let from_req = &req["syncOptions"]["items"];
    if from_req.as_array().is_some_and(|a| !a.is_empty()) {
        return Some(from_req.clone());
    }
    let spec = &app["spec"]["syncPolicy"]["syncOptions"];
    spec.as_array()
        .filter(|a| !a.is_empty())
        .map(|_| spec.clone())
}

pub async fn sync(
    axum::extract::State(world): Shared,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    let user = caller(&world, &headers)?;
    let app = readable(&world, &user, &name)?;
    if !seams::may_sync(&world, &user, &app) {
        return Err(denied(&user, "sync", &app));
    }
    let req = body::decode(&body, &body::SYNC_REQUEST)?;
    let wins = windows::sync_windows(&world, &app, chrono::Utc::now());
    if !wins.can_sync {
        // Argo CD's words exactly (`server/application/application.go` Sync); only
        // windows that do not parse get a detail.
        let why = wins.refusal.unwrap_or_default();
        return Err(ApiError::denied(
            if why.starts_with("invalid sync window") {
                format!("cannot sync: invalid sync window: {why}")
            } else {
                "cannot sync: blocked by sync window".to_string()
            },
        ));
    }
    let t = typed(&app);
    let target = t.target_revision().unwrap_or("HEAD").to_string();
    let asked = req["revision"].as_str().filter(|r| !r.is_empty());
    let revision = resolve(&world, asked.unwrap_or(&target))?;
    if t.auto_sync()
        && let Some(asked) = asked
        && resolve(&world, &target).ok().as_deref() != Some(revision.as_str())
    {
        return Err(ApiError::precondition(format!(
            "Cannot sync to {asked}: auto-sync currently set to {target}"
        )));
    }
    let strategy = if req["strategy"].is_object() {
        req["strategy"].clone()
    } else {
        json!({"hook": {}})
    };
    let mut sync = json!({
        "revision": revision,
        "source": app["spec"]["source"],
        "prune": req["prune"].as_bool().unwrap_or(false),
        "dryRun": req["dryRun"].as_bool().unwrap_or(false),
        "syncStrategy": strategy,
    });
    if app["spec"]["source"].is_null() {
        sync.as_object_mut().map(|s| s.remove("source"));
    }
    if let Some(opts) = sync_options_of(&app, &req) {
        sync["syncOptions"] = opts;
    }
    if req["resources"].as_array().is_some_and(|r| !r.is_empty()) {
        sync["resources"] = req["resources"].clone();
    }
    let mut op = json!({"initiatedBy": {"username": user.name}, "sync": sync});
    if req["infos"].as_array().is_some_and(|i| !i.is_empty()) {
        op["info"] = req["infos"].clone();
    }
    let retry = if req["retryStrategy"].is_object() {
        req["retryStrategy"].clone()
    } else {
        app["spec"]["syncPolicy"]["retry"].clone()
    };
    if retry.is_object() {
        op["retry"] = retry;
    }
    let updated = set_operation(&world, &name, op)?;
    world.refresh.notify_waiters();
    Ok(Json(updated))
}

pub async fn rollback(
    axum::extract::State(world): Shared,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    let user = caller(&world, &headers)?;
    let app = readable(&world, &user, &name)?;
    if !seams::may_sync(&world, &user, &app) {
        return Err(denied(&user, "sync", &app));
    }
    let req = body::decode(&body, &body::ROLLBACK_REQUEST)?;
    let dry_run = req["dryRun"].as_bool().unwrap_or(false);
    if typed(&app).auto_sync() && !dry_run {
        return Err(ApiError::precondition(
            "rollback cannot be initiated when auto-sync is enabled",
        ));
    }
    let id = req["id"].as_i64().unwrap_or(0);
    let entry = app["status"]["history"]
        .as_array()
        .and_then(|h| h.iter().find(|e| e["id"].as_i64() == Some(id)))
        .cloned()
        .ok_or_else(|| {
            ApiError::invalid(format!(
                "application {name} does not have deployment with id {id}"
            ))
        })?;
    let mut sync = json!({
        "prune": req["prune"].as_bool().unwrap_or(false),
        "dryRun": dry_run,
        "syncStrategy": {"apply": {}},
    });
    for field in ["revision", "revisions", "source", "sources"] {
        if !entry[field].is_null() {
            sync[field] = entry[field].clone();
        }
    }
    if let Some(opts) = sync_options_of(&app, &json!({})) {
        sync["syncOptions"] = opts;
    }
    let mut op = json!({"initiatedBy": {"username": user.name}, "sync": sync});
    if app["spec"]["syncPolicy"]["retry"].is_object() {
        op["retry"] = app["spec"]["syncPolicy"]["retry"].clone();
    }
    let updated = set_operation(&world, &name, op)?;
    world.refresh.notify_waiters();
    Ok(Json(updated))
}

pub async fn terminate(
    axum::extract::State(world): Shared,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let user = caller(&world, &headers)?;
    let app = readable(&world, &user, &name)?;
    if !seams::may_sync(&world, &user, &app) {
        return Err(denied(&user, "sync", &app));
    }
    let res = world.store.mutate(
        IN_CLUSTER,
        APPLICATIONS,
        ARGOCD_NAMESPACE,
        &name,
        true,
        |app| {
            if app["operation"].is_null() {
                return Err(StoreError::Invalid(
                    "Unable to terminate operation. No operation is in progress".into(),
                ));
            }
            if !app["status"].is_object() {
                app["status"] = json!({});
            }
            if !app["status"]["operationState"].is_object() {
                app["status"]["operationState"] = json!({
                    "operation": app["operation"].clone(),
                    "startedAt": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                });
            }
            app["status"]["operationState"]["phase"] = json!("Terminating");
            Ok(true)
        },
    );
    match res {
        Ok(_) => {
            world.refresh.notify_waiters();
            Ok(Json(json!({})))
        }
        Err(StoreError::Invalid(m)) => Err(ApiError::invalid(m)),
        Err(e) => Err(ApiError::conflict(e.to_string())),
    }
}

pub async fn syncwindows(
    axum::extract::State(world): Shared,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let user = caller(&world, &headers)?;
    let app = readable(&world, &user, &name)?;
    let w = windows::sync_windows(&world, &app, chrono::Utc::now());
    Ok(Json(json!({
        "activeWindows": w.active,
        "assignedWindows": w.assigned,
        "canSync": w.can_sync,
    })))
}

/// A Kubernetes label selector (`a=b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`).
#[derive(Debug, Default)]
pub struct Selector(Vec<Requirement>);

#[derive(Debug)]
enum Requirement {
    Eq(String, String),
    Ne(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    Absent(String),
}

impl Selector {
    pub fn parse(s: &str) -> Result<Selector, String> {
        let mut terms = Vec::new();
        let mut depth = 0;
        let mut cur = String::new();
        for c in s.chars() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                ',' if depth == 0 => {
                    terms.push(std::mem::take(&mut cur));
                    continue;
                }
                _ => {}
            }
            cur.push(c);
        }
        terms.push(cur);
        let mut reqs = Vec::new();
        for t in terms.iter().map(|t| t.trim()).filter(|t| !t.is_empty()) {
            let set = |rest: &str| -> Result<Vec<String>, String> {
                let inner = rest
                    .trim()
                    .strip_prefix('(')
                    .and_then(|r| r.strip_suffix(')'))
                    .ok_or_else(|| format!("expected (values) in {t:?}"))?;
                Ok(inner.split(',').map(|v| v.trim().to_string()).collect())
            };
            let req = if let Some((k, v)) = t.split_once("!=") {
                Requirement::Ne(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = t.split_once("==").or_else(|| t.split_once('=')) {
                Requirement::Eq(k.trim().into(), v.trim().into())
            } else if let Some((k, rest)) = t.split_once(" notin ") {
                Requirement::NotIn(k.trim().into(), set(rest)?)
            } else if let Some((k, rest)) = t.split_once(" in ") {
                Requirement::In(k.trim().into(), set(rest)?)
            } else if let Some(k) = t.strip_prefix('!') {
                Requirement::Absent(k.trim().into())
            } else if t.chars().all(|c| c.is_alphanumeric() || "-_./".contains(c)) {
                Requirement::Exists(t.into())
            } else {
                return Err(format!("unable to parse requirement {t:?}"));
            };
            reqs.push(req);
        }
        Ok(Selector(reqs))
    }

    pub fn matches(&self, labels: &Value) -> bool {
        let get = |k: &str| labels[k].as_str();
        self.0.iter().all(|r| match r {
            Requirement::Eq(k, v) => get(k) == Some(v.as_str()),
            Requirement::Ne(k, v) => get(k) != Some(v.as_str()),
            Requirement::In(k, vs) => get(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            Requirement::NotIn(k, vs) => get(k).is_none_or(|l| !vs.iter().any(|v| v == l)),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::Absent(k) => get(k).is_none(),
        })
    }
}

/// `PATCH /api/v1/applications/{name}` (Argo CD's `ApplicationPatchRequest`): a merge or
/// JSON patch, sent as a string, applied to the Application as `argocd app patch` does.
/// Clients use it to turn automated sync off before a rollback.
pub async fn patch(
    axum::extract::State(world): Shared,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    let user = caller(&world, &headers)?;
    let app = readable(&world, &user, &name)?;
    if !seams::allowed(&world, &user, "patch", Some(&app)) {
        return Err(denied(&user, "update", &app));
    }
    let req = body::decode(&body, &body::PATCH_REQUEST)?;
    let text = req["patch"]
        .as_str()
        .ok_or_else(|| ApiError::invalid("patch: a JSON document as a string is required"))?;
    let patch: Value = serde_json::from_str(text)
        .map_err(|e| ApiError::invalid(format!("patch is not JSON: {e}")))?;
    let kind = req["patchType"].as_str().unwrap_or("json");
    let mut doc = (*app).clone();
    match kind {
        "merge" => json_patch::merge(&mut doc, &patch),
        "json" => {
            let ops: json_patch::Patch = serde_json::from_value(patch)
                .map_err(|e| ApiError::invalid(format!("invalid JSON patch: {e}")))?;
            json_patch::patch(&mut doc, &ops)
                .map_err(|e| ApiError::invalid(format!("JSON patch failed: {e}")))?;
        }
        other => {
            return Err(ApiError::invalid(format!(
                "patchType {other:?} is not supported: use merge or json"
            )));
        }
    }
    if seams::take_conflict(&world) {
        return Err(ApiError::conflict(format!(
            "Operation cannot be fulfilled on applications.argoproj.io \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
        )));
    }
    let updated = world
        .store
        .replace(IN_CLUSTER, APPLICATIONS, doc, false)
        .map_err(|e| match e {
            StoreError::Conflict { .. } => ApiError::conflict(e.to_string()),
            StoreError::NotFound { .. } => not_found(&name),
            other => ApiError::invalid(other.to_string()),
        })?;
    world.refresh.notify_waiters();
    Ok(Json((*updated).clone()))
}

fn project_of(app: &Value) -> String {
    app["spec"]["project"]
        .as_str()
        .filter(|p| !p.is_empty())
        .unwrap_or("default")
        .to_string()
}

/// What Argo CD checks before it writes an Application: a project that exists, and a
/// destination and source at all.
fn validate_app(world: &World, app: &Value) -> ApiResult<()> {
    let project = project_of(app);
    if world
        .store
        .get(IN_CLUSTER, APPPROJECTS, ARGOCD_NAMESPACE, &project)
        .is_none()
    {
        return Err(ApiError::invalid(format!(
            "application references project {project} which does not exist"
        )));
    }
    if app["spec"]["source"].is_null() && app["spec"]["sources"].is_null() {
        return Err(ApiError::invalid(
            "application spec for {name} is invalid: InvalidSpecError: spec.source or spec.sources must be specified"
                .replace("{name}", app["metadata"]["name"].as_str().unwrap_or("")),
        ));
    }
    Ok(())
}

/// `POST /api/v1/applications` (`ApplicationCreateRequest`, `?upsert=`): the body is the
/// Application. The Kubernetes API's name rules apply (Argo CD passes its 422 on as
/// InvalidArgument); an existing app with another spec needs `upsert`.
pub async fn create(
    axum::extract::State(world): Shared,
    headers: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
    body: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    let user = caller(&world, &headers)?;
    let mut app = body::decode(&body, &body::APPLICATION)?;
    let name = app["metadata"]["name"].as_str().unwrap_or("").to_string();
    let upsert = match param(&q, "upsert") {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "parsing field \"upsert\": strconv.ParseBool: parsing {}: invalid syntax",
                crate::kube_api::convert::go_quote(other)
            )));
        }
    };
    if !seams::allowed(&world, &user, "create", Some(&app)) {
        return Err(ApiError::denied(format!(
            "permission denied: applications, create, {}/{}, sub: {}",
            project_of(&app),
            name,
            user.name
        )));
    }
    if name.is_empty() {
        return Err(ApiError::invalid(
            "error creating application: Application.argoproj.io \"\" is invalid: metadata.name: Required value: name or generateName is required",
        ));
    }
    crate::kube_api::convert::validate_name(APPLICATIONS, &name)
        .map_err(|e| ApiError::invalid(format!("error creating application: {}", e.message)))?;
    validate_app(&world, &app)?;
    if let Some(existing) = find(&world, &name) {
        if existing["spec"] == app["spec"] {
            return Ok(Json((*existing).clone()));
        }
        if !upsert {
            return Err(ApiError::invalid(
                "existing application spec is different, use upsert flag to force update",
            ));
        }
        let spec = app["spec"].clone();
        let updated = world
            .store
            .mutate(
                IN_CLUSTER,
                APPLICATIONS,
                ARGOCD_NAMESPACE,
                &name,
                false,
                |a| {
                    a["spec"] = spec.clone();
                    Ok(true)
                },
            )
            .map_err(|e| ApiError::conflict(e.to_string()))?;
        world.refresh.notify_waiters();
        return Ok(Json((*updated).clone()));
    }
    if let Some(o) = app.as_object_mut() {
        o.remove("status");
        o.remove("operation");
    }
    app["metadata"]["namespace"] = json!(ARGOCD_NAMESPACE);
    let created = world
        .store
        .create(IN_CLUSTER, APPLICATIONS, app)
        .map_err(|e| match e {
            StoreError::AlreadyExists { .. } => ApiError::new(
                axum::http::StatusCode::CONFLICT,
                6,
                format!("applications.argoproj.io \"{name}\" already exists"),
            ),
            other => ApiError::invalid(format!("error creating application: {other}")),
        })?;
    world.refresh.notify_waiters();
    Ok(Json((*created).clone()))
}

/// `PUT /api/v1/applications/{name}` (`ApplicationUpdateRequest`): the body is the
/// Application; its spec, labels, annotations and finalizers replace the stored ones.
pub async fn update(
    axum::extract::State(world): Shared,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    let user = caller(&world, &headers)?;
    let app = body::decode(&body, &body::APPLICATION)?;
    let cur = readable(&world, &user, &name)?;
    if !seams::allowed(&world, &user, "update", Some(&cur)) {
        return Err(denied(&user, "update", &cur));
    }
    validate_app(&world, &app)?;
    if seams::take_conflict(&world) {
        return Err(ApiError::conflict(format!(
            "Operation cannot be fulfilled on applications.argoproj.io \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
        )));
    }
    let updated = world
        .store
        .mutate(
            IN_CLUSTER,
            APPLICATIONS,
            ARGOCD_NAMESPACE,
            &name,
            false,
            |a| {
                a["spec"] = app["spec"].clone();
                for f in ["labels", "annotations", "finalizers"] {
                    match app["metadata"].get(f) {
                        Some(v) if !v.is_null() => a["metadata"][f] = v.clone(),
                        _ => {
                            if let Some(m) = a["metadata"].as_object_mut() {
                                m.remove(f);
                            }
                        }
                    }
                }
                Ok(true)
            },
        )
        .map_err(|e| match e {
            StoreError::NotFound { .. } => not_found(&name),
            other => ApiError::conflict(other.to_string()),
        })?;
    world.refresh.notify_waiters();
    Ok(Json((*updated).clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors() {
        let labels = json!({"env": "prod", "team": "shop"});
        let ok = |s: &str| Selector::parse(s).unwrap().matches(&labels);
        assert!(ok("env=prod"));
        assert!(ok("env==prod,team"));
        assert!(!ok("env!=prod"));
        assert!(ok("env in (dev, prod),team notin (infra)"));
        assert!(!ok("!team"));
        assert!(ok(""));
    }
}

/// Argo CD's `fields` query parameter (argoproj/pkg `grpc/http` forwarders, used by the API
/// server for the application list and stream): one comma-separated value; a leading `-`
/// turns it into a list of fields to leave out. A key is kept when its dotted path is named
/// or is a string prefix of a named path (so its inside is filtered further); arrays are
/// walked element by element under the same path. Paths that match nothing are dropped
/// silently, never an error.
#[derive(Debug, Clone, Default)]
pub struct Fields {
    paths: Vec<String>,
    exclude: bool,
}

impl Fields {
    pub fn of(q: &[(String, String)]) -> Option<Fields> {
        // Go's `URL.Query().Get`: the first value only.
        let raw = q
            .iter()
            .find(|(k, _)| k == "fields")
            .map(|(_, v)| v.as_str())?;
        if raw.is_empty() {
            return None;
        }
        let (raw, exclude) = match raw.strip_prefix('-') {
            Some(rest) => (rest, true),
            None => (raw, false),
        };
        Some(Fields {
            paths: raw.split(',').map(str::to_string).collect(),
            exclude,
        })
    }

    /// Whether `path` is named in the value as written.
    pub fn names(&self, path: &str) -> bool {
        self.paths.iter().any(|p| p == path)
    }

    /// Whether the value was a list of fields to leave out (a leading `-`).
    pub fn excludes(&self) -> bool {
        self.exclude
    }

    /// Whether the key at `path` stays, and whether it is named itself (then whole).
    pub fn keep(&self, path: &str) -> (bool, bool) {
        let exact = self.paths.iter().any(|p| p == path);
        let parent = exact || self.paths.iter().any(|p| p.starts_with(path));
        let keep = if self.exclude { !exact } else { parent };
        (keep, exact)
    }

    /// `value` (found at `path`, "" for the root) as the projection serializes it.
    pub fn project<'a>(&'a self, path: &'a str, value: &'a Value) -> Projected<'a> {
        Projected {
            fields: self,
            path: std::borrow::Cow::Borrowed(path),
            value,
        }
    }
}

/// A JSON value seen through `Fields`, serialized without copying the value.
pub struct Projected<'a> {
    fields: &'a Fields,
    path: std::borrow::Cow<'a, str>,
    value: &'a Value,
}

impl serde::Serialize for Projected<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self.value {
            Value::Object(map) => {
                let mut out = s.serialize_map(None)?;
                for (k, v) in map {
                    let path = if self.path.is_empty() {
                        k.clone()
                    } else {
                        format!("{}.{k}", self.path)
                    };
                    let (keep, exact) = self.fields.keep(&path);
                    if !keep {
                        continue;
                    }
                    if exact {
                        // Named (only possible when including): the whole value.
                        out.serialize_entry(k, v)?;
                    } else {
                        out.serialize_entry(
                            k,
                            &Projected {
                                fields: self.fields,
                                path: std::borrow::Cow::Owned(path),
                                value: v,
                            },
                        )?;
                    }
                }
                out.end()
            }
            Value::Array(items) => {
                let mut out = s.serialize_seq(Some(items.len()))?;
                for v in items {
                    out.serialize_element(&Projected {
                        fields: self.fields,
                        path: self.path.clone(),
                        value: v,
                    })?;
                }
                out.end()
            }
            other => other.serialize(s),
        }
    }
}

#[cfg(test)]
mod fields_tests {
    use super::*;

    fn project(q: &str, v: Value) -> Value {
        let q = vec![("fields".to_string(), q.to_string())];
        let f = Fields::of(&q).unwrap_or_default();
        serde_json::to_value(f.project("", &v)).unwrap_or_default()
    }

    #[test]
    fn named_paths_are_kept_through_arrays_and_unknown_ones_dropped() {
        let list = json!({
            "metadata": {"resourceVersion": "7"},
            "items": [
                {"metadata": {"name": "a", "managedFields": [{"x": 1}]},
                 "status": {"sync": {"status": "Synced", "comparedTo": {"x": 1}},
                            "resources": [{"kind": "Deployment", "name": "d", "extra": 1}]}},
                {"metadata": {"name": "b"}, "spec": {"project": "p"}}
            ]
        });
        let got = project(
            "metadata.resourceVersion,items.metadata.name,items.status.sync.status,items.status.resources.kind,items.no.such.path",
            list,
        );
        assert_eq!(
            got,
            json!({
                "metadata": {"resourceVersion": "7"},
                "items": [
                    {"metadata": {"name": "a"},
                     "status": {"sync": {"status": "Synced"}, "resources": [{"kind": "Deployment"}]}},
                    {"metadata": {"name": "b"}}
                ]
            })
        );
    }

    #[test]
    fn a_leading_minus_leaves_the_named_paths_out() {
        let got = project(
            "-items.status.resources,items.metadata.managedFields",
            json!({"items": [{"metadata": {"name": "a", "managedFields": []},
                              "status": {"resources": [], "health": {"status": "Healthy"}}}]}),
        );
        assert_eq!(
            got,
            json!({"items": [{"metadata": {"name": "a"}, "status": {"health": {"status": "Healthy"}}}]})
        );
    }

    #[test]
    fn a_named_parent_keeps_its_whole_inside_and_prefixes_match_as_strings() {
        // A named path keeps everything under it; a sibling nobody names goes.
        let got = project(
            "result.application.status.health,result.type",
            json!({"result": {"type": "ADDED", "application": {
                "status": {"health": {"status": "Degraded", "message": "m"}, "sync": {}}}}}),
        );
        assert_eq!(
            got,
            json!({"result": {"type": "ADDED", "application": {
                "status": {"health": {"status": "Degraded", "message": "m"}}}}})
        );
    }
}
