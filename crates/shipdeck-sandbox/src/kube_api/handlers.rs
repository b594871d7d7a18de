//! The verbs on a resource: list, get, create, update, patch, delete (and the access review
//! kubectl's `auth can-i` posts). Each checks RBAC, honours the forced-conflict fault, and
//! reads or writes `world.store`; none holds the store's lock across an await.

use super::convert;
use super::discovery::has_status_subresource;
use super::patch::{self, PatchError, PatchKind};
use super::selectors::{FieldSelector, LabelSelector};
use super::status::ApiError;
use super::table::{self, IncludeObject};
use super::{Ctx, json_response, json_value};
use crate::store::{
    DAEMONSETS, DEPLOYMENTS, JOBS, PODS, REPLICASETS, RESOURCE_TYPES, ResourceType, STATEFULSETS,
    StoreError, resource_type,
};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::sync::Arc;

pub(super) fn selectors(
    ctx: &Ctx,
    res: ResourceType,
) -> Result<(LabelSelector, FieldSelector), ApiError> {
    let labels = LabelSelector::parse(ctx.q("labelSelector").unwrap_or(""))
        .map_err(ApiError::bad_request)?;
    let fields = FieldSelector::parse(ctx.q("fieldSelector").unwrap_or(""))
        .and_then(|f| f.check(res))
        .map_err(ApiError::bad_request)?;
    Ok((labels, fields))
}

/// The Table options of the request, if it asked for a Table.
pub(super) fn table_mode(ctx: &Ctx) -> Option<IncludeObject> {
    table::wants_table(ctx.header(header::ACCEPT))
        .then(|| IncludeObject::parse(ctx.q("includeObject")))
}

/// Where a paged list resumes: the resourceVersion of its first page (-1 once it was
/// expired and the client chose the inconsistent remainder) and the last key it returned.
struct Continue {
    rv: i64,
    ns: String,
    name: String,
}

/// The API server's continue token: base64 of `{"v","rv","start"}`, `start` the key after
/// the last item returned (`ns/name\0` across namespaces, `name\0` within one).
fn encode_continue(rv: i64, ns: &str, name: &str, across_namespaces: bool) -> String {
    use base64::Engine;
    let start = if across_namespaces {
        format!("{ns}/{name}\u{0}")
    } else {
        format!("{name}\u{0}")
    };
    let token = json!({"v": "meta.k8s.io/v1", "rv": rv, "start": start});
    base64::engine::general_purpose::URL_SAFE.encode(token.to_string())
}

fn decode_continue(token: &str, ns: Option<&str>, res: ResourceType) -> Result<Continue, ApiError> {
    use base64::Engine;
    let invalid = |why: &str| ApiError::bad_request(format!("invalid continue token: {why}"));
    let raw = base64::engine::general_purpose::URL_SAFE
        .decode(token)
        .or_else(|_| base64::engine::general_purpose::STANDARD.decode(token))
        .map_err(|_| invalid("continue key is not valid: illegal base64 data"))?;
    let v: Value = serde_json::from_slice(&raw)
        .map_err(|e| invalid(&format!("continue key is not valid: {e}")))?;
    if v["v"] != "meta.k8s.io/v1" {
        return Err(invalid(
            "continue key is not valid: server does not recognize this encoded version",
        ));
    }
    let rv = v["rv"].as_i64().filter(|rv| *rv != 0).ok_or_else(|| {
        invalid("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)")
    })?;
    let start = v["start"].as_str().unwrap_or("");
    let start = start.strip_suffix('\u{0}').unwrap_or(start);
    if start.is_empty() || start.contains("..") {
        return Err(invalid(
            "continue key is not valid: encoded start key is empty or invalid",
        ));
    }
    let (ns, name) = match ns {
        Some(ns) => (ns.to_string(), start.to_string()),
        None if res.namespaced => match start.split_once('/') {
            Some((n, m)) => (n.to_string(), m.to_string()),
            None => {
                return Err(invalid(
                    "continue key is not valid: no namespace in the key",
                ));
            }
        },
        None => (String::new(), start.to_string()),
    };
    Ok(Continue { rv, ns, name })
}

fn key_of(o: &Value) -> (&str, &str) {
    (
        o["metadata"]["namespace"].as_str().unwrap_or(""),
        o["metadata"]["name"].as_str().unwrap_or(""),
    )
}

pub fn list(ctx: &Ctx, res: ResourceType, ns: Option<&str>) -> Result<Response, ApiError> {
    ctx.authorize("list", res, ns, None, None)?;
    let (labels, fields) = selectors(ctx, res)?;
    let limit = match ctx.q("limit").filter(|l| !l.is_empty()) {
        None => 0,
        Some(l) => l.parse::<i64>().map_err(|_| {
            ApiError::bad_request(format!("invalid value for limit: {l:?}: not an integer"))
        })?,
    };
    let limit = usize::try_from(limit).unwrap_or(0);
    let resume = match ctx.q("continue").filter(|c| !c.is_empty()) {
        None => None,
        Some(token) => Some(decode_continue(token, ns, res)?),
    };
    let store = &ctx.world.store;
    let stored = convert::storage(res);
    // A page with no selector walks only itself; anything else filters the whole type.
    let (page, rest_len, now_rv) = if labels.is_empty() && fields.is_empty() && limit > 0 {
        let resume_at = resume.as_ref().map(|c| (c.ns.as_str(), c.name.as_str()));
        store.list_page(&ctx.cluster, stored, ns, resume_at, limit)
    } else {
        let (items, now_rv) = store.list(&ctx.cluster, stored, ns);
        let after = |o: &Arc<Value>| match &resume {
            None => true,
            Some(c) => key_of(o) > (c.ns.as_str(), c.name.as_str()),
        };
        let mut matched: Vec<Arc<Value>> = items
            .into_iter()
            .filter(|o| after(o) && labels.matches(o) && fields.matches(o))
            .collect();
        let rest = if limit > 0 {
            matched.len().saturating_sub(limit)
        } else {
            0
        };
        matched.truncate(matched.len() - rest);
        (matched, rest, now_rv)
    };
    let mut list_rv = now_rv as i64;
    if let Some(c) = &resume {
        if c.rv > 0 && (c.rv as u64) < store.compacted_rv() {
            // The snapshot the list began at is compacted away, as etcd does: 410, with a
            // token for the inconsistent remainder in the Status.
            let again = encode_continue(-1, &c.ns, &c.name, ns.is_none() && res.namespaced);
            return Err(ApiError::gone(CONTINUE_EXPIRED).with_list_continue(again));
        }
        if c.rv > 0 {
            list_rv = c.rv;
        }
    }
    let mut meta = json!({"resourceVersion": list_rv.to_string()});
    if let Some(last) = page.last().filter(|_| rest_len > 0) {
        let (lns, lname) = key_of(last);
        let token_rv = resume
            .as_ref()
            .map_or(list_rv, |c| if c.rv < 0 { now_rv as i64 } else { c.rv });
        meta["continue"] = json!(encode_continue(
            token_rv,
            lns,
            lname,
            ns.is_none() && res.namespaced
        ));
        // Counted only when nothing filters the list, as the API server does.
        if labels.is_empty() && fields.is_empty() {
            meta["remainingItemCount"] = json!(rest_len);
        }
    }
    let wire: Vec<std::borrow::Cow<'_, Value>> = page
        .iter()
        .map(|o| {
            if stored == res {
                std::borrow::Cow::Borrowed(&**o)
            } else {
                std::borrow::Cow::Owned(convert::to_wire(res, o))
            }
        })
        .collect();
    if let Some(include) = table_mode(ctx) {
        let objects = wire.iter().map(|o| &**o);
        let bytes = table::write_table(res, objects, &meta, include)
            .map_err(|_| ApiError::new(500, "InternalError", "cannot encode a table"))?;
        return Ok(json_response(StatusCode::OK, bytes));
    }
    // Written by hand so a 10,000-item list is one pass with no intermediate tree.
    let mut buf = Vec::with_capacity(256 + wire.len() * 1024);
    buf.extend_from_slice(b"{\"kind\":\"");
    buf.extend_from_slice(res.kind.as_bytes());
    buf.extend_from_slice(b"List\",\"apiVersion\":\"");
    buf.extend_from_slice(res.api_version().as_bytes());
    buf.extend_from_slice(b"\",\"metadata\":");
    serde_json::to_writer(&mut buf, &meta)
        .map_err(|_| ApiError::new(500, "InternalError", "cannot encode the list"))?;
    buf.extend_from_slice(b",\"items\":[");
    for (i, item) in wire.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        if serde_json::to_writer(&mut buf, &**item).is_err() {
            return Err(ApiError::new(
                500,
                "InternalError",
                "cannot encode an object",
            ));
        }
    }
    buf.extend_from_slice(b"]}");
    Ok(json_response(StatusCode::OK, buf))
}

/// kube-apiserver's words for a continue token whose snapshot is compacted.
pub const CONTINUE_EXPIRED: &str = "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.";

pub fn watch(ctx: &Ctx, res: ResourceType, ns: Option<&str>) -> Result<Response, ApiError> {
    ctx.authorize("watch", res, ns, None, None)?;
    super::watch::start(ctx, res, ns)
}

fn not_found(res: ResourceType, name: &str) -> ApiError {
    ApiError::from_store(
        res,
        StoreError::NotFound {
            kind: res.plural.into(),
            group: res.group.into(),
            name: name.into(),
        },
    )
}

/// An object of `res` (in its stored form) as the answer to a request.
fn object_response(ctx: &Ctx, res: ResourceType, code: StatusCode, obj: &Value) -> Response {
    let converted;
    let obj = if convert::storage(res) == res {
        obj
    } else {
        converted = convert::to_wire(res, obj);
        &converted
    };
    if let Some(include) = table_mode(ctx) {
        let rv = obj["metadata"]["resourceVersion"].as_str().unwrap_or("");
        let row = table::row(res, obj, include, chrono::Utc::now());
        return json_value(code, &table::table(res, vec![row], rv, true));
    }
    json_value(code, obj)
}

pub fn get(
    ctx: &Ctx,
    res: ResourceType,
    ns: Option<&str>,
    name: &str,
) -> Result<Response, ApiError> {
    ctx.authorize("get", res, ns, Some(name), None)?;
    let obj = current(ctx, res, ns, name)?;
    Ok(object_response(ctx, res, StatusCode::OK, &obj))
}

fn parse_object(res: ResourceType, body: &[u8]) -> Result<Value, ApiError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
    })?;
    if !v.is_object() {
        return Err(ApiError::bad_request(
            "the body of the request must be a JSON object",
        ));
    }
    if let Some(kind) = v.get("kind").and_then(Value::as_str)
        && kind != res.kind
    {
        return Err(ApiError::bad_request(format!(
            "the kind of the object ({kind}) does not match the resource ({})",
            res.plural
        )));
    }
    Ok(v)
}

/// Put the URL's namespace into the object; a different one in the body is a 400.
fn settle_namespace(res: ResourceType, obj: &mut Value, ns: Option<&str>) -> Result<(), ApiError> {
    if !res.namespaced {
        return Ok(());
    }
    let url_ns = ns.unwrap_or("");
    let body_ns = obj["metadata"]["namespace"]
        .as_str()
        .unwrap_or("")
        .to_string();
    if !body_ns.is_empty() && body_ns != url_ns {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    if !obj["metadata"].is_object() {
        obj["metadata"] = json!({});
    }
    obj["metadata"]["namespace"] = json!(url_ns);
    Ok(())
}

fn dry_run(ctx: &Ctx) -> bool {
    ctx.q("dryRun").is_some_and(|v| v == "All")
}

pub fn create(
    ctx: &Ctx,
    res: ResourceType,
    ns: Option<&str>,
    body: &[u8],
) -> Result<Response, ApiError> {
    let mut obj = convert::from_wire(res, parse_object(res, body)?);
    settle_namespace(res, &mut obj, ns)?;
    convert::apply_defaults(res, &mut obj);
    let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
    convert::validate_name(res, &name)?;
    ctx.authorize("create", res, ns, None, Some(&obj))?;
    if ctx.world.faults.take_conflict() {
        return Err(ApiError::conflict(res, &name));
    }
    if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
        m.remove("uid");
    }
    if dry_run(ctx) {
        return Ok(object_response(ctx, res, StatusCode::CREATED, &obj));
    }
    let created = ctx
        .world
        .store
        .create(&ctx.cluster, convert::storage(res), obj)
        .map_err(|e| ApiError::from_store(res, e))?;
    Ok(object_response(ctx, res, StatusCode::CREATED, &created))
}

fn current(
    ctx: &Ctx,
    res: ResourceType,
    ns: Option<&str>,
    name: &str,
) -> Result<Arc<Value>, ApiError> {
    ctx.world
        .store
        .get(&ctx.cluster, convert::storage(res), ns.unwrap_or(""), name)
        .ok_or_else(|| not_found(res, name))
}

/// Keep only `status` of `incoming` on top of `current` (writes to `/status`).
fn status_only(current: &Value, incoming: &Value, rv: Value) -> Value {
    let mut next = current.clone();
    match incoming.get("status") {
        Some(s) => next["status"] = s.clone(),
        None => {
            if let Some(o) = next.as_object_mut() {
                o.remove("status");
            }
        }
    }
    next["metadata"]["resourceVersion"] = rv;
    next
}

pub fn update(
    ctx: &Ctx,
    res: ResourceType,
    ns: Option<&str>,
    name: &str,
    body: &[u8],
    to_status: bool,
) -> Result<Response, ApiError> {
    let mut obj = convert::from_wire(res, parse_object(res, body)?);
    settle_namespace(res, &mut obj, ns)?;
    convert::apply_defaults(res, &mut obj);
    let body_name = obj["metadata"]["name"].as_str().unwrap_or("");
    if body_name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    let cur = current(ctx, res, ns, name)?;
    ctx.authorize("update", res, ns, Some(name), Some(&cur))?;
    ctx.authorize("update", res, ns, Some(name), Some(&obj))?;
    if ctx.world.faults.take_conflict() {
        return Err(ApiError::conflict(res, name));
    }
    let next = if to_status {
        let rv = obj["metadata"]["resourceVersion"].clone();
        status_only(&cur, &obj, rv)
    } else {
        obj
    };
    if dry_run(ctx) {
        return Ok(object_response(ctx, res, StatusCode::OK, &next));
    }
    let write_status = to_status || !has_status_subresource(res);
    let saved = ctx
        .world
        .store
        .replace(&ctx.cluster, convert::storage(res), next, write_status)
        .map_err(|e| ApiError::from_store(res, e))?;
    Ok(object_response(ctx, res, StatusCode::OK, &saved))
}

pub fn patch(
    ctx: &Ctx,
    res: ResourceType,
    ns: Option<&str>,
    name: &str,
    content_type: &str,
    body: &[u8],
    to_status: bool,
) -> Result<Response, ApiError> {
    let Some(kind) = PatchKind::from_content_type(content_type) else {
        return Err(ApiError::unsupported_media(content_type));
    };
    let mut conflict_checked = false;
    // Retry when another writer slips in between reading and writing, as the API server
    // does for patches (they carry no resourceVersion unless the client put one in).
    for _ in 0..5 {
        let cur = current(ctx, res, ns, name)?;
        ctx.authorize("patch", res, ns, Some(name), Some(&cur))?;
        let patched =
            patch::apply(kind, &convert::to_wire(res, &cur), body).map_err(|e| match e {
                PatchError::Malformed(m) => ApiError::bad_request(m),
                PatchError::Failed(m) => ApiError::invalid(res, name, m),
            })?;
        let mut patched = convert::from_wire(res, patched);
        convert::apply_defaults(res, &mut patched);
        ctx.authorize("patch", res, ns, Some(name), Some(&patched))?;
        if !conflict_checked {
            conflict_checked = true;
            if ctx.world.faults.take_conflict() {
                return Err(ApiError::conflict(res, name));
            }
        }
        let cur_rv = cur["metadata"]["resourceVersion"].clone();
        if patched["metadata"]["resourceVersion"] != cur_rv {
            // The patch named a resourceVersion: a precondition that no longer holds.
            return Err(ApiError::conflict(res, name));
        }
        let mut next = if to_status {
            status_only(&cur, &patched, cur_rv)
        } else {
            patched
        };
        // Identity is not patchable.
        for field in ["name", "namespace", "uid"] {
            if let Some(v) = cur["metadata"].get(field) {
                next["metadata"][field] = v.clone();
            }
        }
        if dry_run(ctx) {
            return Ok(object_response(ctx, res, StatusCode::OK, &next));
        }
        let write_status = to_status || !has_status_subresource(res);
        match ctx
            .world
            .store
            .replace(&ctx.cluster, convert::storage(res), next, write_status)
        {
            Ok(saved) => return Ok(object_response(ctx, res, StatusCode::OK, &saved)),
            Err(StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(ApiError::from_store(res, e)),
        }
    }
    Err(ApiError::conflict(res, name))
}

pub fn delete(
    ctx: &Ctx,
    res: ResourceType,
    ns: Option<&str>,
    name: &str,
) -> Result<Response, ApiError> {
    let cur = current(ctx, res, ns, name)?;
    ctx.authorize("delete", res, ns, Some(name), Some(&cur))?;
    if ctx.world.faults.take_conflict() {
        return Err(ApiError::conflict(res, name));
    }
    if dry_run(ctx) {
        return Ok(deleted_response(ctx, res, &cur));
    }
    let gone = ctx
        .world
        .store
        .delete(&ctx.cluster, convert::storage(res), ns.unwrap_or(""), name)
        .map_err(|e| ApiError::from_store(res, e))?;
    collect_garbage(ctx, res, &gone);
    Ok(deleted_response(ctx, res, &gone))
}

/// What a DELETE answers: the object for the types whose registry returns it (custom
/// resources, and pods and namespaces, which a real cluster deletes gracefully), a
/// `Status` of `Success` naming it for every other built-in type, as kube-apiserver does.
fn deleted_response(ctx: &Ctx, res: ResourceType, gone: &Value) -> Response {
    if res.group == "argoproj.io" || matches!(res.kind, "Pod" | "Namespace") {
        return object_response(ctx, res, StatusCode::OK, gone);
    }
    let meta = &gone["metadata"];
    json_value(
        StatusCode::OK,
        &json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": {"name": meta["name"], "group": res.group, "kind": res.plural, "uid": meta["uid"]},
        }),
    )
}

/// Background cascading deletion, as Kubernetes' garbage collector does: a namespace takes
/// its objects with it; a Deployment its ReplicaSets, a ReplicaSet its Pods.
fn collect_garbage(ctx: &Ctx, res: ResourceType, gone: &Value) {
    let store = &ctx.world.store;
    let name = gone["metadata"]["name"].as_str().unwrap_or("");
    if res.kind == "Namespace" {
        for r in RESOURCE_TYPES.iter().filter(|r| r.namespaced) {
            for o in store.list(&ctx.cluster, *r, Some(name)).0 {
                let n = o["metadata"]["name"].as_str().unwrap_or("");
                let _ = store.delete(&ctx.cluster, *r, name, n);
            }
        }
        return;
    }
    let children = match res {
        r if r == DEPLOYMENTS => REPLICASETS,
        r if r == REPLICASETS || r == STATEFULSETS || r == DAEMONSETS || r == JOBS => PODS,
        _ => return,
    };
    let uid = gone["metadata"]["uid"].as_str().unwrap_or("");
    let ns = gone["metadata"]["namespace"].as_str().unwrap_or("");
    for o in store.list(&ctx.cluster, children, Some(ns)).0 {
        let owned = o["metadata"]["ownerReferences"]
            .as_array()
            .is_some_and(|refs| refs.iter().any(|r| r["uid"].as_str() == Some(uid)));
        if owned {
            let n = o["metadata"]["name"].as_str().unwrap_or("").to_string();
            if let Ok(child) = store.delete(&ctx.cluster, children, ns, &n) {
                collect_garbage(ctx, children, &child);
            }
        }
    }
}

/// `POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews` (`kubectl auth can-i`).
pub fn access_review(ctx: &Ctx, body: &[u8]) -> Result<Response, ApiError> {
    let mut review: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
    })?;
    let users = &ctx.world.users;
    let spec = &review["spec"];
    let allowed = if let Some(ra) = spec.get("resourceAttributes") {
        let s = |k: &str| ra[k].as_str().unwrap_or("").to_string();
        let (verb, group, resource, ns, name) = (
            s("verb"),
            s("group"),
            s("resource"),
            s("namespace"),
            s("name"),
        );
        match resource_type(&group, &resource) {
            Some(res) => {
                let obj = (!name.is_empty())
                    .then(|| ctx.world.store.get(&ctx.cluster, res, &ns, &name))
                    .flatten();
                users.allowed(&ctx.user, &verb, &res, obj.as_deref())
            }
            // A type the sandbox does not serve: only what any reader may do.
            None => {
                ctx.user.role == crate::auth::Role::Admin
                    || matches!(verb.as_str(), "get" | "list" | "watch")
            }
        }
    } else {
        let verb = spec["nonResourceAttributes"]["verb"].as_str().unwrap_or("");
        ctx.user.role == crate::auth::Role::Admin || verb == "get"
    };
    review["apiVersion"] = json!("authorization.k8s.io/v1");
    review["kind"] = json!("SelfSubjectAccessReview");
    review["metadata"] = json!({"creationTimestamp": null});
    review["status"] = if allowed {
        json!({"allowed": true, "reason": format!("sandbox RBAC: {} may", ctx.user.name)})
    } else {
        json!({"allowed": false, "reason": format!("sandbox RBAC: {} may not", ctx.user.name)})
    };
    Ok(json_value(StatusCode::CREATED, &review))
}

/// `POST /apis/authentication.k8s.io/v1/selfsubjectreviews` (`kubectl auth whoami`): the
/// caller's user info as kube-apiserver answers it (201 Created, `status.userInfo`).
pub fn self_subject_review(ctx: &Ctx) -> Response {
    let groups = if ctx.user.name == "system:anonymous" {
        json!(["system:unauthenticated"])
    } else {
        json!(["system:authenticated"])
    };
    let review = json!({
        "kind": "SelfSubjectReview",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": null},
        "status": {"userInfo": {"username": ctx.user.name, "groups": groups}}
    });
    json_value(StatusCode::CREATED, &review)
}

/// `GET .../pods/{name}/log`: the lines the Deployment controller derives for the pod.
pub fn pod_log(ctx: &Ctx, ns: Option<&str>, name: &str) -> Result<Response, ApiError> {
    ctx.authorize("get", PODS, ns, Some(name), None)?;
    let ns = ns.unwrap_or("");
    current(ctx, PODS, Some(ns), name)?;
    let mut lines = crate::controller::deploy::pod_log_lines(&ctx.world, &ctx.cluster, ns, name);
    if let Some(n) = ctx.q("tailLines").and_then(|n| n.parse::<usize>().ok()) {
        let skip = lines.len().saturating_sub(n);
        lines.drain(..skip);
    }
    let mut text = lines.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    let mut resp = (StatusCode::OK, text).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("text/plain"),
    );
    Ok(resp)
}

fn scale_of(obj: &Value) -> Value {
    let selector = obj["spec"]["selector"]["matchLabels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    let meta = &obj["metadata"];
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {"name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"],
                     "resourceVersion": meta["resourceVersion"], "creationTimestamp": meta["creationTimestamp"]},
        "spec": {"replicas": obj["spec"]["replicas"].as_i64().unwrap_or(1)},
        "status": {"replicas": obj["status"]["replicas"].as_i64().unwrap_or(0), "selector": selector},
    })
}

/// The `scale` subresource of Deployments and ReplicaSets (`kubectl scale`).
pub fn scale(
    ctx: &Ctx,
    res: ResourceType,
    ns: Option<&str>,
    name: &str,
    method: &axum::http::Method,
    content_type: &str,
    body: &[u8],
) -> Result<Response, ApiError> {
    let cur = current(ctx, res, ns, name)?;
    if method == axum::http::Method::GET {
        ctx.authorize("get", res, ns, Some(name), Some(&cur))?;
        return Ok(json_value(StatusCode::OK, &scale_of(&cur)));
    }
    let verb = if method == axum::http::Method::PUT {
        "update"
    } else {
        "patch"
    };
    ctx.authorize(verb, res, ns, Some(name), Some(&cur))?;
    if ctx.world.faults.take_conflict() {
        return Err(ApiError::conflict(res, name));
    }
    let wanted = if method == axum::http::Method::PUT {
        parse_scale(body)?
    } else {
        let kind = PatchKind::from_content_type(content_type)
            .ok_or_else(|| ApiError::unsupported_media(content_type))?;
        let patched = patch::apply(kind, &scale_of(&cur), body).map_err(|e| match e {
            PatchError::Malformed(m) => ApiError::bad_request(m),
            PatchError::Failed(m) => ApiError::invalid(res, name, m),
        })?;
        patched["spec"]["replicas"]
            .as_i64()
            .ok_or_else(|| ApiError::invalid(res, name, "spec.replicas: Required value"))?
    };
    if wanted < 0 {
        return Err(ApiError::invalid(
            res,
            name,
            "spec.replicas: must be greater than or equal to 0",
        ));
    }
    let saved = ctx
        .world
        .store
        .mutate(&ctx.cluster, res, ns.unwrap_or(""), name, false, |o| {
            o["spec"]["replicas"] = json!(wanted);
            Ok(true)
        })
        .map_err(|e| ApiError::from_store(res, e))?;
    Ok(json_value(StatusCode::OK, &scale_of(&saved)))
}

fn parse_scale(body: &[u8]) -> Result<i64, ApiError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
    })?;
    v["spec"]["replicas"]
        .as_i64()
        .ok_or_else(|| ApiError::bad_request("spec.replicas: Required value"))
}
