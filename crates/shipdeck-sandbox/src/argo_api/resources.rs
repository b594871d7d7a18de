//! What an app is made of: managed resources with their target and live states (the diff
//! view's input), the resource tree down to pods, events, revision metadata from Git, and
//! pod logs. All read-only.

use super::apps::readable;
use super::{ApiError, ApiResult, Shared, caller, health, seams};
use crate::store::{EVENTS, JOBS, PODS, REPLICASETS, RESOURCE_TYPES, ResourceType};
use crate::{ARGOCD_NAMESPACE, IN_CLUSTER, World};
use axum::Json;
use axum::extract::{Path, Query};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use shipdeck_wire::Application;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

const TRACKING_LABEL: &str = "app.kubernetes.io/instance";

type RefKey = (String, String, String, String); // group, kind, namespace, name
/// The objects of one namespace that can be a workload's children: ReplicaSets, Jobs, Pods.
type Children = Vec<Arc<Value>>;

fn group_of(obj: &Value) -> String {
    obj["apiVersion"]
        .as_str()
        .and_then(|a| a.split_once('/'))
        .map(|(g, _)| g.to_string())
        .unwrap_or_default()
}

fn type_of(group: &str, kind: &str) -> Option<ResourceType> {
    RESOURCE_TYPES
        .iter()
        .copied()
        .find(|r| r.group == group && r.kind == kind)
}

fn key_of(obj: &Value) -> RefKey {
    (
        group_of(obj),
        obj["kind"].as_str().unwrap_or("").to_string(),
        obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_string(),
        obj["metadata"]["name"].as_str().unwrap_or("").to_string(),
    )
}

/// An app's resources: desired (from Git, when it renders) and live (found by the tracking
/// label or by name), keyed by group/kind/namespace/name.
pub struct Managed {
    pub cluster: String,
    pub items: BTreeMap<RefKey, (Option<Value>, Option<Arc<Value>>)>,
}

pub fn managed_of(world: &World, app: &Value) -> Managed {
    let typed: Application = serde_json::from_value(app.clone()).unwrap_or_default();
    let name = app["metadata"]["name"].as_str().unwrap_or("");
    let cluster = seams::cluster_of(world, &typed).unwrap_or_else(|| IN_CLUSTER.to_string());
    let dest_ns = app["spec"]["destination"]["namespace"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let mut items: BTreeMap<RefKey, (Option<Value>, Option<Arc<Value>>)> = BTreeMap::new();
    let desired = seams::desired_objects(world, &typed, None).unwrap_or_default();
    let mut namespaces = vec![dest_ns];
    for d in desired {
        let k = key_of(&d);
        if !namespaces.contains(&k.2) {
            namespaces.push(k.2.clone());
        }
        items.entry(k).or_default().0 = Some(d);
    }
    // Refs the controller already reported, in case Git does not render here.
    for r in app["status"]["resources"].as_array().into_iter().flatten() {
        let k = (
            r["group"].as_str().unwrap_or("").to_string(),
            r["kind"].as_str().unwrap_or("").to_string(),
            r["namespace"].as_str().unwrap_or("").to_string(),
            r["name"].as_str().unwrap_or("").to_string(),
        );
        if !namespaces.contains(&k.2) {
            namespaces.push(k.2.clone());
        }
        items.entry(k).or_default();
    }
    for (k, entry) in items.iter_mut() {
        if let Some(res) = type_of(&k.0, &k.1) {
            entry.1 = world.store.get(&cluster, res, &k.2, &k.3);
        }
    }
    // Live objects carrying the app's tracking label but absent from Git (to prune).
    for res in RESOURCE_TYPES
        .iter()
        .filter(|r| !matches!(r.kind, "Pod" | "ReplicaSet" | "Event"))
    {
        for ns in &namespaces {
            let scope = res.namespaced.then_some(ns.as_str());
            for obj in world.store.list(&cluster, *res, scope).0 {
                if obj["metadata"]["labels"][TRACKING_LABEL].as_str() == Some(name) {
                    let k = key_of(&obj);
                    items.entry(k).or_default().1 = Some(obj);
                }
            }
            if !res.namespaced {
                break;
            }
        }
    }
    Managed { cluster, items }
}

/// `normalized` contains every field `desired` sets (desired is a subset of live).
fn subset(desired: &Value, live: &Value) -> bool {
    match (desired, live) {
        (Value::Object(d), Value::Object(l)) => d
            .iter()
            .all(|(k, v)| v.is_null() || l.get(k).is_some_and(|lv| subset(v, lv))),
        (Value::Array(d), Value::Array(l)) => {
            d.len() == l.len() && d.iter().zip(l).all(|(a, b)| subset(a, b))
        }
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        _ => desired == live,
    }
}

fn merge(base: &Value, over: &Value) -> Value {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            let mut out = b.clone();
            for (k, v) in o {
                let merged = match b.get(k) {
                    Some(bv) => merge(bv, v),
                    None => v.clone(),
                };
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (_, o) => o.clone(),
    }
}

/// Secret values masked as Argo CD does: equal values share a mask, different ones do not.
fn mask_secrets(target: &mut Value, lives: &mut [&mut Value]) {
    for field in ["data", "stringData"] {
        let keys: Vec<String> = target[field]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        for k in keys {
            let tv = target[field][k.as_str()].clone();
            target[field][k.as_str()] = json!("++++++++");
            for live in lives.iter_mut() {
                if live[field].get(k.as_str()).is_some() {
                    let same = live[field][k.as_str()] == tv;
                    live[field][k.as_str()] = json!(if same { "++++++++" } else { "+++++++++" });
                }
            }
        }
        for live in lives.iter_mut() {
            if let Some(m) = live[field].as_object_mut() {
                for v in m.values_mut() {
                    if v.as_str().is_some_and(|s| !s.starts_with('+')) {
                        *v = json!("+++++++++");
                    }
                }
            }
        }
    }
}

fn state_string(v: &Option<Value>) -> String {
    match v {
        Some(v) => v.to_string(),
        None => "null".into(),
    }
}

pub async fn managed(
    axum::extract::State(world): Shared,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
) -> ApiResult<Json<Value>> {
    let user = caller(&world, &headers)?;
    let app = readable(&world, &user, &name)?;
    let m = managed_of(&world, &app);
    let filter = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let reported: HashMap<RefKey, &Value> = app["status"]["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            (
                (
                    r["group"].as_str().unwrap_or("").to_string(),
                    r["kind"].as_str().unwrap_or("").to_string(),
                    r["namespace"].as_str().unwrap_or("").to_string(),
                    r["name"].as_str().unwrap_or("").to_string(),
                ),
                r,
            )
        })
        .collect();
    let mut items = Vec::new();
    for (k, (desired, live)) in &m.items {
        if filter("kind").is_some_and(|f| f != k.1)
            || filter("name").is_some_and(|f| f != k.3)
            || filter("namespace").is_some_and(|f| f != k.2)
            || filter("group").is_some_and(|f| f != k.0)
        {
            continue;
        }
        let mut target = desired.clone();
        let mut live_v = live.as_ref().map(|l| (**l).clone());
        let mut normalized = live_v.as_ref().map(seams::normalize);
        let mut predicted = match (&normalized, &target) {
            (Some(n), Some(t)) => Some(merge(n, &seams::normalize(t))),
            (None, Some(t)) => Some(seams::normalize(t)),
            _ => None,
        };
        let modified = match reported.get(k) {
            Some(r) => r["status"] == "OutOfSync",
            None => match (&target, &normalized) {
                (Some(t), Some(n)) => !subset(&seams::normalize(t), n),
                _ => true,
            },
        };
        if k.1 == "Secret" {
            let mut empty = json!({});
            let t = target.as_mut().unwrap_or(&mut empty);
            let mut lives: Vec<&mut Value> = [&mut live_v, &mut normalized, &mut predicted]
                .into_iter()
                .filter_map(Option::as_mut)
                .collect();
            mask_secrets(t, &mut lives);
        }
        items.push(json!({
            "group": k.0, "kind": k.1, "namespace": k.2, "name": k.3,
            "targetState": state_string(&target),
            "liveState": state_string(&live_v),
            "normalizedLiveState": state_string(&normalized),
            "predictedLiveState": state_string(&predicted),
            "resourceVersion": live.as_ref().map(|l| l["metadata"]["resourceVersion"].clone()).unwrap_or(Value::Null),
            "modified": modified,
            "hook": false,
        }));
    }
    Ok(Json(json!({"items": items})))
}

fn node(obj: &Value, parents: Vec<Value>, reported_health: Option<&Value>) -> Value {
    let (group, version) = match obj["apiVersion"].as_str().unwrap_or("v1").split_once('/') {
        Some((g, v)) => (g.to_string(), v.to_string()),
        None => (
            String::new(),
            obj["apiVersion"].as_str().unwrap_or("v1").to_string(),
        ),
    };
    let meta = &obj["metadata"];
    let mut n = json!({
        "group": group, "version": version, "kind": obj["kind"],
        "namespace": meta["namespace"].as_str().unwrap_or(""), "name": meta["name"],
        "uid": meta["uid"], "resourceVersion": meta["resourceVersion"],
        "createdAt": meta["creationTimestamp"],
    });
    if !parents.is_empty() {
        n["parentRefs"] = json!(parents);
    }
    if let Some(h) = reported_health.cloned().or_else(|| health::of(obj)) {
        n["health"] = h;
    }
    let containers = obj["spec"]["containers"]
        .as_array()
        .or_else(|| obj["spec"]["template"]["spec"]["containers"].as_array());
    let images: Vec<Value> = containers
        .into_iter()
        .flatten()
        .filter_map(|c| c["image"].as_str().map(|i| json!(i)))
        .collect();
    if !images.is_empty() {
        n["images"] = json!(images);
    }
    if obj["kind"] == "Pod" {
        let statuses = obj["status"]["containerStatuses"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let ready = statuses.iter().filter(|c| c["ready"] == true).count();
        let total = containers.map(|c| c.len()).unwrap_or(statuses.len());
        let restarts: i64 = statuses
            .iter()
            .map(|c| c["restartCount"].as_i64().unwrap_or(0))
            .sum();
        let mut info = vec![json!({"name": "Status Reason", "value": health::pod_reason(obj)})];
        if let Some(node) = obj["spec"]["nodeName"].as_str() {
            info.push(json!({"name": "Node", "value": node}));
        }
        info.push(json!({"name": "Containers", "value": format!("{ready}/{total}")}));
        if restarts > 0 {
            info.push(json!({"name": "Restart Count", "value": restarts.to_string()}));
        }
        n["info"] = json!(info);
    }
    n
}

fn parent_ref(obj: &Value) -> Value {
    let k = key_of(obj);
    json!({"group": k.0, "kind": k.1, "namespace": k.2, "name": k.3, "uid": obj["metadata"]["uid"]})
}

fn owner_uid(obj: &Value) -> Option<&str> {
    obj["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|r| r["controller"] == true)
        .and_then(|r| r["uid"].as_str())
}

/// Kinds whose children (by controlling owner reference) the tree shows.
const OWNER_KINDS: &[&str] = &[
    "Deployment",
    "ReplicaSet",
    "StatefulSet",
    "DaemonSet",
    "Job",
    "CronJob",
];

/// Under `parent`, every object of `candidates` it controls (owner reference with
/// `controller: true` and its uid), each with `parentRefs` naming the parent (group, kind,
/// namespace, name, uid) as Argo CD's resource tree does, and their children in turn:
/// Deployment -> ReplicaSet -> Pod, StatefulSet/DaemonSet/Job -> Pod, CronJob -> Job -> Pod.
fn add_children(
    parent: &Value,
    candidates: &Children,
    nodes: &mut Vec<Value>,
    seen: &mut std::collections::HashSet<String>,
) {
    let uid = parent["metadata"]["uid"].as_str().unwrap_or("");
    if uid.is_empty() {
        return;
    }
    for c in candidates.iter().filter(|c| owner_uid(c) == Some(uid)) {
        let cuid = c["metadata"]["uid"].as_str().unwrap_or("").to_string();
        if !seen.insert(cuid) {
            continue;
        }
        nodes.push(node(c, vec![parent_ref(parent)], None));
        if OWNER_KINDS.contains(&c["kind"].as_str().unwrap_or("")) {
            add_children(c, candidates, nodes, seen);
        }
    }
}

/// The app's resource tree: managed objects, and under each workload its children by
/// owner reference (ReplicaSets, Jobs, Pods), to any depth.
pub fn tree_of(world: &World, app: &Value) -> Value {
    let m = managed_of(world, app);
    let reported: HashMap<RefKey, &Value> = app["status"]["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            (
                (
                    r["group"].as_str().unwrap_or("").to_string(),
                    r["kind"].as_str().unwrap_or("").to_string(),
                    r["namespace"].as_str().unwrap_or("").to_string(),
                    r["name"].as_str().unwrap_or("").to_string(),
                ),
                &r["health"],
            )
        })
        .collect();
    let mut nodes = Vec::new();
    let mut by_ns: HashMap<String, Children> = HashMap::new();
    // Managed objects are nodes of their own (a managed Job is not again a CronJob's child).
    let mut seen: std::collections::HashSet<String> = m
        .items
        .values()
        .filter_map(|(_, l)| l.as_ref())
        .filter_map(|l| l["metadata"]["uid"].as_str().map(str::to_string))
        .collect();
    for (k, (_, live)) in &m.items {
        let Some(live) = live else { continue };
        let rh = reported.get(k).copied().filter(|h| h.is_object());
        // The live workload's own status is fresher than the last reconcile's verdict.
        let rh = if matches!(k.1.as_str(), "Deployment" | "Application") {
            None
        } else {
            rh
        };
        nodes.push(node(live, Vec::new(), rh));
        if !OWNER_KINDS.contains(&k.1.as_str()) {
            continue;
        }
        let candidates = by_ns.entry(k.2.clone()).or_insert_with(|| {
            let mut c = world.store.list(&m.cluster, REPLICASETS, Some(&k.2)).0;
            c.extend(world.store.list(&m.cluster, JOBS, Some(&k.2)).0);
            c.extend(world.store.list(&m.cluster, PODS, Some(&k.2)).0);
            c
        });
        add_children(live, candidates, &mut nodes, &mut seen);
    }
    json!({"nodes": nodes, "hosts": []})
}

pub async fn tree(
    axum::extract::State(world): Shared,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let user = caller(&world, &headers)?;
    let app = readable(&world, &user, &name)?;
    Ok(Json(tree_of(&world, &app)))
}

pub async fn events(
    axum::extract::State(world): Shared,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
) -> ApiResult<Json<Value>> {
    let user = caller(&world, &headers)?;
    let app = readable(&world, &user, &name)?;
    let get = |k: &str| {
        q.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    };
    let items: Vec<Value> = match get("resourceName") {
        None => world
            .store
            .list(IN_CLUSTER, EVENTS, Some(ARGOCD_NAMESPACE))
            .0
            .iter()
            .filter(|e| {
                e["involvedObject"]["kind"] == "Application"
                    && e["involvedObject"]["name"].as_str() == Some(name.as_str())
            })
            .map(|e| (**e).clone())
            .collect(),
        Some(rname) => {
            let typed: Application = serde_json::from_value((*app).clone()).unwrap_or_default();
            let cluster =
                seams::cluster_of(&world, &typed).unwrap_or_else(|| IN_CLUSTER.to_string());
            let ns = get("resourceNamespace");
            let uid = get("resourceUID");
            // As Argo CD's ListResourceEvents: the resource must be a node of this app's
            // tree (same uid, name and namespace), or the caller could read any object's
            // events through an app it may read.
            let tree = tree_of(&world, &app);
            let found = tree["nodes"].as_array().into_iter().flatten().any(|n| {
                n["name"].as_str() == Some(rname.as_str())
                    && n["namespace"].as_str().unwrap_or("") == ns.as_deref().unwrap_or("")
                    && n["uid"].as_str().unwrap_or("") == uid.as_deref().unwrap_or("")
            });
            if !found {
                return Err(ApiError::new(
                    axum::http::StatusCode::BAD_REQUEST,
                    3,
                    format!("{rname} not found as part of application {name}"),
                ));
            }
            world
                .store
                .list(&cluster, EVENTS, ns.as_deref())
                .0
                .iter()
                .filter(|e| e["involvedObject"]["name"].as_str() == Some(rname.as_str()))
                .filter(|e| {
                    uid.as_deref()
                        .is_none_or(|u| e["involvedObject"]["uid"].as_str() == Some(u))
                })
                .map(|e| (**e).clone())
                .collect()
        }
    };
    Ok(Json(json!({"metadata": {}, "items": items})))
}

pub async fn revision_metadata(
    axum::extract::State(world): Shared,
    headers: HeaderMap,
    Path((name, revision)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let user = caller(&world, &headers)?;
    readable(&world, &user, &name)?;
    let (author, date, message) = seams::commit_info(&world, &revision).map_err(|e| {
        ApiError::not_found(format!(
            "rpc error: code = NotFound desc = revision {revision} not found: {e}"
        ))
    })?;
    Ok(Json(
        json!({"author": author, "date": date, "message": message, "tags": []}),
    ))
}

pub(super) fn entry_line(pod: &str, line: &str) -> String {
    let (ts, content) = match line.split_once(' ') {
        Some((ts, rest)) if chrono::DateTime::parse_from_rfc3339(ts).is_ok() => {
            (ts.to_string(), rest.to_string())
        }
        _ => (String::new(), line.to_string()),
    };
    let mut s = json!({"result": {"content": content, "timeStamp": ts,
        "timeStampStr": ts, "podName": pod, "last": false}})
    .to_string();
    s.push('\n');
    s
}

fn log_stream(entries: Vec<(String, String)>) -> Response {
    // One JSON object per line, as grpc-gateway streams; a closing entry with `last`.
    let mut body = String::new();
    for (pod, line) in entries {
        let (ts, content) = match line.split_once(' ') {
            Some((ts, rest)) if chrono::DateTime::parse_from_rfc3339(ts).is_ok() => {
                (ts.to_string(), rest.to_string())
            }
            _ => (String::new(), line.clone()),
        };
        let entry = json!({"result": {"content": content, "timeStamp": ts,
            "timeStampStr": ts, "podName": pod, "last": false}});
        body.push_str(&entry.to_string());
        body.push('\n');
    }
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    body.push_str(
        &json!({"result": {"content": "", "timeStamp": now, "timeStampStr": now, "last": true}})
            .to_string(),
    );
    body.push('\n');
    ([("content-type", "application/json")], body).into_response()
}

pub(super) fn tail(mut lines: Vec<String>, q: &[(String, String)]) -> Vec<String> {
    if let Some(n) = q
        .iter()
        .find(|(k, _)| k == "tailLines")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        && lines.len() > n
    {
        lines.drain(..lines.len() - n);
    }
    if let Some(f) = q
        .iter()
        .find(|(k, _)| k == "filter")
        .map(|(_, v)| v.as_str())
        .filter(|f| !f.is_empty())
    {
        lines.retain(|l| l.contains(f));
    }
    lines
}

/// Pods of the app that a logs request names: one pod, or every pod of a workload.
pub(super) fn app_pods(
    world: &World,
    app: &Value,
    q: &[(String, String)],
) -> (String, Vec<Arc<Value>>) {
    let get = |k: &str| {
        q.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let tree = tree_of(world, app);
    let m_cluster = {
        let typed: Application = serde_json::from_value(app.clone()).unwrap_or_default();
        seams::cluster_of(world, &typed).unwrap_or_else(|| IN_CLUSTER.to_string())
    };
    let nodes = tree["nodes"].as_array().cloned().unwrap_or_default();
    let wanted_pod = get("podName");
    let wanted_res = get("resourceName");
    let mut pods = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for n in nodes.iter().filter(|n| n["kind"] == "Pod") {
        let pname = n["name"].as_str().unwrap_or("");
        let rs = n["parentRefs"][0]["name"].as_str().unwrap_or("");
        let take = match (wanted_pod, wanted_res) {
            (Some(p), _) => p == pname,
            (None, Some(r)) => rs == r || rs.strip_prefix(r).is_some_and(|s| s.starts_with('-')),
            (None, None) => true,
        };
        if take {
            names.push(pname.to_string());
            if let Some(p) = world.store.get(
                &m_cluster,
                PODS,
                n["namespace"].as_str().unwrap_or(""),
                pname,
            ) {
                pods.push(p);
            }
        }
    }
    (m_cluster, pods)
}

pub async fn pod_logs(
    axum::extract::State(world): Shared,
    headers: HeaderMap,
    Path((name, pod)): Path<(String, String)>,
    Query(mut q): Query<Vec<(String, String)>>,
) -> ApiResult<Response> {
    let user = caller(&world, &headers)?;
    let app = readable(&world, &user, &name)?;
    q.push(("podName".into(), pod.clone()));
    logs_for(&world, &app, &q, &pod)
}

pub async fn app_logs(
    axum::extract::State(world): Shared,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
) -> ApiResult<Response> {
    let user = caller(&world, &headers)?;
    let app = readable(&world, &user, &name)?;
    logs_for(&world, &app, &q, "")
}

fn logs_for(
    world: &Arc<World>,
    app: &Value,
    q: &[(String, String)],
    pod: &str,
) -> ApiResult<Response> {
    let (cluster, pods) = app_pods(world, app, q);
    if pods.is_empty() && !pod.is_empty() {
        return Err(ApiError::not_found(format!("pods \"{pod}\" not found")));
    }
    if q.iter().any(|(k, v)| k == "follow" && v == "true") {
        return Ok(super::logs::follow(world.clone(), app.clone(), q.to_vec()));
    }
    let mut entries = Vec::new();
    for p in pods {
        let ns = p["metadata"]["namespace"].as_str().unwrap_or("");
        let pname = p["metadata"]["name"].as_str().unwrap_or("");
        let lines = crate::controller::deploy::pod_log_lines(world, &cluster, ns, pname);
        for l in tail(lines, q) {
            entries.push((pname.to_string(), l));
        }
    }
    Ok(log_stream(entries))
}
