//! Comparing desired and live objects and assessing health, as Argo CD does: pure functions
//! over JSON objects, shared by the controller and by seeding (so the status written at
//! start and the status the controller computes agree).

use crate::store::{RESOURCE_TYPES, ResourceType};
use serde_json::{Map, Value, json};
use std::sync::Arc;

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Argo CD's normalization before a diff: server-set metadata, the last-applied
/// annotation and `status` go (and an Application's `operation`, which is a request, not
/// state).
pub fn normalize(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("status");
        if o.get("kind").and_then(Value::as_str) == Some("Application") {
            o.remove("operation");
        }
        if let Some(meta) = o.get_mut("metadata").and_then(Value::as_object_mut) {
            for f in [
                "managedFields",
                "resourceVersion",
                "uid",
                "creationTimestamp",
                "generation",
                "selfLink",
            ] {
                meta.remove(f);
            }
            let empty = match meta.get_mut("annotations").and_then(Value::as_object_mut) {
                Some(a) => {
                    a.remove(LAST_APPLIED);
                    a.is_empty()
                }
                None => false,
            };
            if empty {
                meta.remove("annotations");
            }
        }
    }
    v
}

/// Whether every field the desired object sets has the same value live. Fields only live
/// has are defaults the API server or a controller filled in and do not count, as in
/// Argo CD's three-way diff; lists must match element by element.
pub fn contains(desired: &Value, live: &Value) -> bool {
    match (desired, live) {
        (Value::Object(d), Value::Object(l)) => d.iter().all(|(k, dv)| match l.get(k) {
            Some(lv) => contains(dv, lv),
            None => is_empty(dv),
        }),
        (Value::Object(d), Value::Null) => d.values().all(is_empty),
        (Value::Array(d), Value::Array(l)) => {
            d.len() == l.len() && d.iter().zip(l).all(|(a, b)| contains(a, b))
        }
        (Value::Array(d), Value::Null) => d.is_empty(),
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (Value::Null, _) => true,
        (a, b) => a == b,
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// Desired matches live after normalization.
pub fn in_sync(desired: &Value, live: &Value) -> bool {
    contains(&normalize(desired), &normalize(live))
}

/// What `kubectl apply` would leave: the live object with every desired field written over
/// it (maps merged, lists replaced), live status kept.
pub fn merge_apply(live: &Value, desired: &Value) -> Value {
    match (live, desired) {
        (Value::Object(l), Value::Object(d)) => {
            let mut out: Map<String, Value> = l.clone();
            for (k, dv) in d {
                if dv.is_null() {
                    out.remove(k);
                    continue;
                }
                let merged = match out.get(k) {
                    Some(lv) if k != "status" => merge_apply(lv, dv),
                    _ => dv.clone(),
                };
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (_, d) => d.clone(),
    }
}

/// `apps/v1` -> ("apps", "v1"); `v1` -> ("", "v1").
pub fn group_version(obj: &Value) -> (String, String) {
    let av = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    match av.split_once('/') {
        Some((g, v)) => (g.to_string(), v.to_string()),
        None => (String::new(), av.to_string()),
    }
}

/// The stored type of an object, by apiVersion group and kind.
pub fn resource_type_of(obj: &Value) -> Option<ResourceType> {
    let (group, _) = group_version(obj);
    let kind = obj.get("kind").and_then(Value::as_str)?;
    RESOURCE_TYPES
        .iter()
        .copied()
        .find(|r| r.group == group && r.kind == kind)
}

pub fn meta<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// Health of one resource as Argo CD assesses it; None for kinds without a health check
/// (ConfigMaps, Secrets, Applications since Argo CD 1.8). `pods` are the resource's pods
/// (for Deployments: image pulls and crash loops make it Degraded at once).
pub fn resource_health(obj: &Value, pods: &[Arc<Value>]) -> Option<(String, Option<String>)> {
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    let status = &obj["status"];
    let name = meta(obj, "name");
    let h = |s: &str, m: Option<String>| Some((s.to_string(), m));
    match kind {
        "Deployment" => {
            if obj["spec"]["paused"].as_bool() == Some(true) {
                return h("Suspended", Some("Deployment is paused".into()));
            }
            let selector = obj["spec"]["selector"]["matchLabels"].as_object();
            for p in pods {
                if p["metadata"].get("deletionTimestamp").is_some() {
                    continue;
                }
                if let Some(sel) = selector {
                    let labels = &p["metadata"]["labels"];
                    if !sel.iter().all(|(k, v)| &labels[k] == v) {
                        continue;
                    }
                }
                let statuses = p["status"]["containerStatuses"].as_array();
                for cs in statuses.into_iter().flatten() {
                    let reason = cs["state"]["waiting"]["reason"].as_str().unwrap_or("");
                    if matches!(
                        reason,
                        "ImagePullBackOff" | "ErrImagePull" | "CrashLoopBackOff"
                    ) {
                        let msg = cs["state"]["waiting"]["message"]
                            .as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| {
                                format!(
                                    "container {} is in {reason}",
                                    cs["name"].as_str().unwrap_or("")
                                )
                            });
                        return h("Degraded", Some(format!("Pod {}: {msg}", meta(p, "name"))));
                    }
                }
            }
            let generation = obj["metadata"]["generation"].as_i64().unwrap_or(0);
            let observed = status["observedGeneration"].as_i64();
            if observed.is_none_or(|o| o < generation) {
                return h(
                    "Progressing",
                    Some("Waiting for rollout to finish: observed deployment generation less than desired generation".into()),
                );
            }
            let deadline = status["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Progressing" && c["reason"] == "ProgressDeadlineExceeded");
            if deadline {
                return h(
                    "Degraded",
                    Some(format!(
                        "Deployment \"{name}\" exceeded its progress deadline"
                    )),
                );
            }
            let want = obj["spec"]["replicas"].as_i64().unwrap_or(1);
            let updated = status["updatedReplicas"].as_i64().unwrap_or(0);
            let total = status["replicas"].as_i64().unwrap_or(0);
            let available = status["availableReplicas"].as_i64().unwrap_or(0);
            if updated < want {
                return h(
                    "Progressing",
                    Some(format!(
                        "Waiting for rollout to finish: {updated} out of {want} new replicas have been updated..."
                    )),
                );
            }
            if total > updated {
                return h(
                    "Progressing",
                    Some(format!(
                        "Waiting for rollout to finish: {} old replicas are pending termination...",
                        total - updated
                    )),
                );
            }
            if available < updated {
                return h(
                    "Progressing",
                    Some(format!(
                        "Waiting for rollout to finish: {available} of {updated} updated replicas are available..."
                    )),
                );
            }
            h("Healthy", None)
        }
        "ReplicaSet" => {
            let want = obj["spec"]["replicas"].as_i64().unwrap_or(1);
            let available = status["availableReplicas"].as_i64().unwrap_or(0);
            if available < want {
                h(
                    "Progressing",
                    Some(format!(
                        "Waiting for rollout to finish: {available} out of {want} new replicas are available..."
                    )),
                )
            } else {
                h("Healthy", None)
            }
        }
        "Pod" => match status["phase"].as_str().unwrap_or("Pending") {
            "Running" | "Succeeded" => h("Healthy", None),
            "Failed" => h("Degraded", status["message"].as_str().map(str::to_string)),
            _ => h("Progressing", None),
        },
        "Service" | "Namespace" => h("Healthy", None),
        _ => None,
    }
}

/// Rank for aggregating health: Argo CD takes the worst.
fn rank(h: &str) -> u8 {
    match h {
        "Healthy" => 0,
        "Suspended" => 1,
        "Progressing" => 2,
        "Unknown" => 3,
        "Missing" => 4,
        "Degraded" => 5,
        _ => 3,
    }
}

/// The result of comparing an app's desired objects with what is live.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// `status.resources` entries, sorted.
    pub resources: Vec<Value>,
    pub synced: bool,
    pub health: String,
    pub health_message: Option<String>,
    pub images: Vec<String>,
}

/// Compare desired objects (namespaced and labelled) with their live counterparts (same
/// order, None when absent) and the live objects that carry the app's label but are no
/// longer desired (they need pruning). `pods_of` gives a live workload's pods.
pub fn compare(
    desired: &[Value],
    live: &[Option<Arc<Value>>],
    extra: &[Arc<Value>],
    pods_of: &dyn Fn(&Value) -> Vec<Arc<Value>>,
) -> Comparison {
    let mut resources = Vec::new();
    let mut synced = true;
    let mut health = "Healthy".to_string();
    let mut health_message = None;
    let mut images = Vec::new();
    let worse = |h: &str, m: Option<String>, health: &mut String, msg: &mut Option<String>| {
        if rank(h) > rank(health) {
            *health = h.to_string();
            *msg = m;
        }
    };
    for (d, l) in desired.iter().zip(live) {
        let (group, version) = group_version(d);
        let mut entry = json!({
            "group": group,
            "version": version,
            "kind": d["kind"],
            "namespace": meta(d, "namespace"),
            "name": meta(d, "name"),
        });
        if group.is_empty() {
            entry.as_object_mut().map(|o| o.remove("group"));
        }
        if meta(d, "namespace").is_empty() {
            entry.as_object_mut().map(|o| o.remove("namespace"));
        }
        if let Some(w) = d["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]
            .as_str()
            .and_then(|w| w.trim().parse::<i64>().ok())
            .filter(|w| *w != 0)
        {
            entry["syncWave"] = json!(w);
        }
        match l {
            None => {
                synced = false;
                entry["status"] = json!("OutOfSync");
                if resource_health(d, &[]).is_some() {
                    entry["health"] = json!({"status": "Missing"});
                    worse("Missing", None, &mut health, &mut health_message);
                }
            }
            Some(l) => {
                let ok = in_sync(d, l);
                synced &= ok;
                entry["status"] = json!(if ok { "Synced" } else { "OutOfSync" });
                if let Some((h, m)) = resource_health(l, &pods_of(l)) {
                    let mut hv = json!({"status": h});
                    if let Some(m) = &m {
                        hv["message"] = json!(m);
                    }
                    entry["health"] = hv;
                    worse(&h, m, &mut health, &mut health_message);
                }
                collect_images(l, &mut images);
            }
        }
        resources.push(entry);
    }
    for l in extra {
        let (group, version) = group_version(l);
        let mut entry = json!({
            "group": group, "version": version, "kind": l["kind"],
            "namespace": meta(l, "namespace"), "name": meta(l, "name"),
            "status": "OutOfSync", "requiresPruning": true,
        });
        if group.is_empty() {
            entry.as_object_mut().map(|o| o.remove("group"));
        }
        if let Some((h, m)) = resource_health(l, &pods_of(l)) {
            entry["health"] = json!({"status": h});
            let _ = m;
        }
        synced = false;
        collect_images(l, &mut images);
        resources.push(entry);
    }
    resources.sort_by_key(key);
    images.sort();
    images.dedup();
    Comparison {
        resources,
        synced,
        health,
        health_message,
        images,
    }
}

fn key(v: &Value) -> (String, String, String, String) {
    let s = |f: &str| v[f].as_str().unwrap_or("").to_string();
    (s("group"), s("kind"), s("namespace"), s("name"))
}

fn collect_images(obj: &Value, out: &mut Vec<String>) {
    let containers = obj["spec"]["template"]["spec"]["containers"].as_array();
    for c in containers.into_iter().flatten() {
        if let Some(i) = c["image"].as_str() {
            out.push(i.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_do_not_count_but_changes_do() {
        let desired = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "a", "namespace": "n"},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "a", "image": "x:1"}]}}}});
        let mut live = desired.clone();
        live["metadata"]["resourceVersion"] = json!("12");
        live["metadata"]["annotations"] = json!({LAST_APPLIED: "{}"});
        live["spec"]["progressDeadlineSeconds"] = json!(600);
        live["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] =
            json!("IfNotPresent");
        live["status"] = json!({"replicas": 2});
        assert!(in_sync(&desired, &live));
        live["spec"]["replicas"] = json!(3);
        assert!(!in_sync(&desired, &live));
    }

    #[test]
    fn deployment_health_follows_argo() {
        let mut d = json!({"kind": "Deployment", "metadata": {"name": "a", "generation": 2},
            "spec": {"replicas": 2}, "status": {"observedGeneration": 1}});
        assert_eq!(
            resource_health(&d, &[]).map(|h| h.0),
            Some("Progressing".into())
        );
        d["status"] = json!({"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2});
        assert_eq!(
            resource_health(&d, &[]).map(|h| h.0),
            Some("Healthy".into())
        );
        d["status"]["conditions"] =
            json!([{"type": "Progressing", "reason": "ProgressDeadlineExceeded"}]);
        assert_eq!(
            resource_health(&d, &[]).map(|h| h.0),
            Some("Degraded".into())
        );
    }

    #[test]
    fn apply_keeps_live_only_fields() {
        let live = json!({"spec": {"a": 1, "b": [1, 2]}, "status": {"x": 1}});
        let desired = json!({"spec": {"b": [3]}});
        assert_eq!(
            merge_apply(&live, &desired),
            json!({"spec": {"a": 1, "b": [3]}, "status": {"x": 1}})
        );
    }
}
