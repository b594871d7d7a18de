//! Normalization before comparing, as Argo CD does it (CONTRACTS.md "Diff"): fields the
//! API server or controllers own are dropped, `spec.ignoreDifferences` json pointers are
//! removed, Secret `stringData` folds into `data`, and Secret values are masked so a diff
//! can say that a value changed without ever showing it. Pure functions on JSON values.

use base64::Engine;
use serde_json::{Map, Value};

/// Annotation `kubectl apply` (and Argo CD's client-side apply) writes with the last
/// configuration it applied; used for the three-way comparison and never shown.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Argo CD's default tracking label: Argo CD adds it to every object it applies, so it is
/// the same on both sides whenever it matters and only noise when one side lacks it.
pub const TRACKING_LABEL: &str = "app.kubernetes.io/instance";

const DROPPED_METADATA: &[&str] = &[
    "managedFields",
    "resourceVersion",
    "uid",
    "generation",
    "creationTimestamp",
    "selfLink",
];

/// Maps whose keys are user data: a key present live but gone from Git is a removal, even
/// without a last-applied record to prove it was ours.
const DATA_MAPS: &[&str] = &["data", "stringData", "binaryData"];

/// Drop what Argo CD ignores by default: server-owned metadata, the last-applied
/// annotation, the tracking label and `status`.
pub fn normalize(obj: &Value) -> Value {
    let mut out = obj.clone();
    if let Some(map) = out.as_object_mut() {
        map.remove("status");
        if let Some(meta) = map.get_mut("metadata").and_then(Value::as_object_mut) {
            for f in DROPPED_METADATA {
                meta.remove(*f);
            }
            remove_key_and_empty(meta, "annotations", LAST_APPLIED);
            remove_key_and_empty(meta, "labels", TRACKING_LABEL);
        }
    }
    out
}

fn remove_key_and_empty(meta: &mut Map<String, Value>, map: &str, key: &str) {
    let empty = match meta.get_mut(map).and_then(Value::as_object_mut) {
        Some(m) => {
            m.remove(key);
            m.is_empty()
        }
        None => false,
    };
    if empty {
        meta.remove(map);
    }
}

/// The configuration last applied, from the live object's annotation, if readable.
pub fn last_applied(live: &Value) -> Option<Value> {
    live.pointer("/metadata/annotations")
        .and_then(|a| a.get(LAST_APPLIED))
        .and_then(Value::as_str)
        .and_then(|s| serde_json::from_str(s).ok())
        .map(|v: Value| normalize(&v))
}

/// Keep in `live` only what the target or the last applied configuration speaks about:
/// fields the API server defaulted (`imagePullPolicy`, `strategy`, ...) are not a
/// difference, as in Argo CD's three-way diff. Without a last-applied record, keys of data
/// maps (`data`, `stringData`, `binaryData`) still count: a removed ConfigMap key must show.
pub fn restrict_to_managed(live: &mut Value, target: &Value, applied: Option<&Value>) {
    restrict(live, target, applied, 0, None);
}

fn restrict(
    live: &mut Value,
    target: &Value,
    applied: Option<&Value>,
    depth: usize,
    key: Option<&str>,
) {
    match (live, target) {
        (Value::Object(l), Value::Object(t)) => {
            let keep_all = depth == 1 && key.is_some_and(|k| DATA_MAPS.contains(&k));
            if !keep_all {
                l.retain(|k, _| t.contains_key(k) || applied.and_then(|a| a.get(k)).is_some());
            }
            for (k, lv) in l.iter_mut() {
                if let Some(tv) = t.get(k) {
                    restrict(lv, tv, applied.and_then(|a| a.get(k)), depth + 1, Some(k));
                }
            }
        }
        (Value::Array(l), Value::Array(t)) => {
            for (i, lv) in l.iter_mut().enumerate() {
                if let Some(tv) = t.get(i) {
                    let a = applied.and_then(|a| a.get(i));
                    restrict(lv, tv, a, depth + 1, None);
                }
            }
        }
        _ => {}
    }
}

/// Argo CD compares Secrets by `data`; `stringData` written in Git is folded into it
/// (base64) so the two sides speak the same form.
pub fn fold_string_data(obj: &mut Value) {
    if !is_secret(obj) {
        return;
    }
    let Some(map) = obj.as_object_mut() else {
        return;
    };
    let Some(Value::Object(string_data)) = map.remove("stringData") else {
        return;
    };
    let data = map
        .entry("data")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Some(data) = data.as_object_mut() {
        for (k, v) in string_data {
            let raw = v
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| v.to_string());
            let encoded = base64::engine::general_purpose::STANDARD.encode(raw.as_bytes());
            data.insert(k, Value::String(encoded));
        }
    }
}

pub fn is_secret(obj: &Value) -> bool {
    obj.get("kind").and_then(Value::as_str) == Some("Secret")
        && obj
            .get("apiVersion")
            .and_then(Value::as_str)
            .is_none_or(|v| v == "v1")
}

/// Replace Secret values by masks: for each key, the same value gets the same mask on both
/// sides and a different value a longer one (`++++++++`, `++++++++++++`, ...), so a diff
/// shows which keys changed and nothing of what they hold.
pub fn mask_secret_values(target: Option<&mut Value>, live: Option<&mut Value>) {
    let mut sides: Vec<&mut Value> = [target, live].into_iter().flatten().collect();
    if !sides.iter().any(|v| is_secret(v)) {
        return;
    }
    for field in ["data", "stringData"] {
        let mut keys: Vec<String> = sides
            .iter()
            .filter_map(|v| v.get(field).and_then(Value::as_object))
            .flat_map(|m| m.keys().cloned())
            .collect();
        keys.sort();
        keys.dedup();
        for key in keys {
            let mut seen: Vec<Value> = Vec::new();
            for side in sides.iter_mut() {
                let Some(slot) = side
                    .get_mut(field)
                    .and_then(Value::as_object_mut)
                    .and_then(|m| m.get_mut(&key))
                else {
                    continue;
                };
                let n = match seen.iter().position(|s| s == slot) {
                    Some(n) => n,
                    None => {
                        seen.push(slot.clone());
                        seen.len() - 1
                    }
                };
                *slot = Value::String("+".repeat(8 + 4 * n));
            }
        }
    }
}

/// Remove the `spec.ignoreDifferences` entries that match this object: `jsonPointers`, and
/// `jqPathExpressions` of the plain `.a.b.c` form (others are left alone: shipdeck has no jq).
pub fn apply_ignore_differences(obj: &mut Value, rules: &[Value]) {
    let (group, kind, name, namespace) = identity(obj);
    for rule in rules {
        let field = |k: &str| rule.get(k).and_then(Value::as_str).unwrap_or("");
        if field("kind") != kind || field("group") != group {
            continue;
        }
        if !field("name").is_empty() && field("name") != name {
            continue;
        }
        if !field("namespace").is_empty() && field("namespace") != namespace {
            continue;
        }
        let pointers = rule
            .get("jsonPointers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned);
        let jq = rule
            .get("jqPathExpressions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter_map(jq_to_pointer);
        for p in pointers.chain(jq) {
            remove_pointer(obj, &p);
        }
    }
}

fn identity(obj: &Value) -> (String, String, String, String) {
    let api = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let group = api.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
    let s = |p: &str| {
        obj.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    (
        group.to_owned(),
        s("/kind"),
        s("/metadata/name"),
        s("/metadata/namespace"),
    )
}

fn jq_to_pointer(expr: &str) -> Option<String> {
    let rest = expr.strip_prefix('.')?;
    if rest.is_empty()
        || !rest
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-')
    {
        return None;
    }
    Some(format!("/{}", rest.replace('.', "/")))
}

fn remove_pointer(obj: &mut Value, pointer: &str) {
    let Some((parent, last)) = pointer.rsplit_once('/') else {
        return;
    };
    let last = last.replace("~1", "/").replace("~0", "~");
    match obj.pointer_mut(parent) {
        Some(Value::Object(m)) => {
            m.remove(&last);
        }
        Some(Value::Array(a)) => {
            if let Ok(i) = last.parse::<usize>()
                && i < a.len()
            {
                a.remove(i);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn drops_server_owned_fields() {
        let live = json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c",
            "uid":"u","resourceVersion":"7","generation":2,"creationTimestamp":"t",
            "managedFields":[{}],"annotations":{LAST_APPLIED:"{}"},
            "labels":{TRACKING_LABEL:"shop","team":"a"}},"data":{"k":"v"},"status":{"x":1}});
        let n = normalize(&live);
        assert_eq!(
            n,
            json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c",
            "labels":{"team":"a"}},"data":{"k":"v"}})
        );
    }

    #[test]
    fn masks_equal_values_alike_and_changed_values_apart() {
        let mut t = json!({"apiVersion":"v1","kind":"Secret","data":{"a":"eA==","b":"eQ=="}});
        let mut l = json!({"apiVersion":"v1","kind":"Secret","data":{"a":"eA==","b":"eg=="}});
        mask_secret_values(Some(&mut t), Some(&mut l));
        assert_eq!(t["data"]["a"], l["data"]["a"]);
        assert_ne!(t["data"]["b"], l["data"]["b"]);
        assert!(!t.to_string().contains("eQ==") && !l.to_string().contains("eg=="));
    }

    #[test]
    fn string_data_folds_into_data() {
        let mut t = json!({"apiVersion":"v1","kind":"Secret","stringData":{"a":"x"}});
        fold_string_data(&mut t);
        assert_eq!(
            t,
            json!({"apiVersion":"v1","kind":"Secret","data":{"a":"eA=="}})
        );
    }

    #[test]
    fn ignore_differences_by_pointer_and_simple_jq() {
        let mut d = json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"api"},
            "spec":{"replicas":3,"paused":false}});
        let rules = [
            json!({"group":"apps","kind":"Deployment","jsonPointers":["/spec/replicas"]}),
            json!({"group":"apps","kind":"Deployment","name":"api","jqPathExpressions":[".spec.paused"]}),
            json!({"group":"apps","kind":"Deployment","name":"other","jsonPointers":["/metadata"]}),
        ];
        apply_ignore_differences(&mut d, &rules);
        assert_eq!(d["spec"], json!({}));
        assert!(d.get("metadata").is_some());
    }

    #[test]
    fn defaulted_fields_are_not_differences_but_removed_data_keys_are() {
        let t = json!({"spec":{"replicas":2},"data":{"a":"1"}});
        let mut l = json!({"spec":{"replicas":2,"strategy":{"type":"RollingUpdate"}},
            "data":{"a":"1","b":"2"}});
        restrict_to_managed(&mut l, &t, None);
        assert_eq!(l, json!({"spec":{"replicas":2},"data":{"a":"1","b":"2"}}));
        let mut l = json!({"spec":{"replicas":2,"paused":true}});
        let applied = json!({"spec":{"paused":true}});
        restrict_to_managed(&mut l, &t, Some(&applied));
        assert_eq!(l["spec"]["paused"], json!(true));
    }
}
