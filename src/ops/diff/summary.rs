//! One line per change that an operator understands at a glance ("image api: sha-1 ->
//! sha-2", "replicas 2 -> 3", "env LOG_LEVEL added", "ConfigMap key K removed"), computed
//! from the normalized, masked target and live objects; whatever has no better words is
//! counted ("3 fields changed"). Pure.

use serde_json::Value;
use std::collections::BTreeSet;

/// Where workload kinds keep their pod spec.
fn pod_spec_path(kind: &str) -> Option<&'static str> {
    match kind {
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" | "Rollout" => {
            Some("/spec/template/spec")
        }
        "CronJob" => Some("/spec/jobTemplate/spec/template/spec"),
        "Pod" => Some("/spec"),
        _ => None,
    }
}

/// Summaries of what turns `live` into `target` (both present, both normalized).
pub fn summarize(kind: &str, target: &Value, live: &Value) -> Vec<String> {
    let mut leaves = Vec::new();
    leaf_differences(target, live, &mut String::new(), &mut leaves);
    if leaves.is_empty() {
        return Vec::new();
    }
    let mut lines = Vec::new();
    let mut explained: Vec<String> = Vec::new();

    if let Some(base) = pod_spec_path(kind) {
        containers(target, live, base, &mut lines, &mut explained);
    }
    if kind != "CronJob" && kind != "Pod" {
        let (t, l) = (
            target.pointer("/spec/replicas"),
            live.pointer("/spec/replicas"),
        );
        if t != l {
            lines.push(match (t, l) {
                (Some(t), Some(l)) => format!("replicas {} -> {}", scalar(l), scalar(t)),
                (Some(t), None) => format!("replicas set to {}", scalar(t)),
                (None, _) => "replicas no longer set".to_string(),
            });
        }
        explained.push("/spec/replicas".into());
    }
    if kind == "ConfigMap" || kind == "Secret" {
        for field in ["data", "binaryData"] {
            keyed_map(
                target.get(field),
                live.get(field),
                &format!("{kind} key"),
                &mut lines,
            );
            explained.push(format!("/{field}"));
        }
    }

    let rest = leaves
        .iter()
        .filter(|p| !explained.iter().any(|e| under(p, e)))
        .count();
    if rest > 0 {
        let noun = if rest == 1 { "field" } else { "fields" };
        lines.push(if lines.is_empty() {
            format!("{rest} {noun} changed")
        } else {
            format!("{rest} other {noun} changed")
        });
    }
    lines
}

fn under(path: &str, prefix: &str) -> bool {
    path == prefix || (path.starts_with(prefix) && path.as_bytes().get(prefix.len()) == Some(&b'/'))
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn containers(
    target: &Value,
    live: &Value,
    base: &str,
    lines: &mut Vec<String>,
    explained: &mut Vec<String>,
) {
    for list in ["initContainers", "containers"] {
        let path = format!("{base}/{list}");
        let t = named_items(target.pointer(&path));
        let l = named_items(live.pointer(&path));
        let several = t.len().max(l.len()) > 1;
        let names: BTreeSet<&str> = t.iter().chain(l.iter()).map(|(n, _)| *n).collect();
        let mut all_explained = true;
        for name in names {
            let tc = t.iter().find(|(n, _)| *n == name).map(|(_, c)| *c);
            let lc = l.iter().find(|(n, _)| *n == name).map(|(_, c)| *c);
            let word = if list == "initContainers" {
                "init container"
            } else {
                "container"
            };
            match (tc, lc) {
                (Some(_), None) => lines.push(format!("{word} {name} added")),
                (None, Some(_)) => lines.push(format!("{word} {name} removed")),
                (Some(tc), Some(lc)) => {
                    let ti = tc.get("image").and_then(Value::as_str);
                    let li = lc.get("image").and_then(Value::as_str);
                    if ti != li {
                        lines.push(format!(
                            "image {name}: {}",
                            image_change(li.unwrap_or("-"), ti.unwrap_or("-"))
                        ));
                    }
                    let suffix = if several {
                        format!(" (container {name})")
                    } else {
                        String::new()
                    };
                    env_changes(tc.get("env"), lc.get("env"), &suffix, lines);
                    let rest = |c: &Value| {
                        let mut c = c.clone();
                        if let Some(m) = c.as_object_mut() {
                            m.remove("image");
                            m.remove("env");
                        }
                        c
                    };
                    if rest(tc) != rest(lc) {
                        all_explained = false;
                    }
                }
                (None, None) => {}
            }
        }
        // When containers line up by index, the explained fields of each are known; when
        // they were reordered or one has other changes, only image/env are claimed.
        let count = t.len().max(l.len());
        for i in 0..count {
            explained.push(format!("{path}/{i}/image"));
            explained.push(format!("{path}/{i}/env"));
        }
        if all_explained && t.len() != l.len() {
            explained.push(path);
        }
    }
}

fn named_items(v: Option<&Value>) -> Vec<(&str, &Value)> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| (c.get("name").and_then(Value::as_str).unwrap_or(""), c))
        .collect()
}

/// `repo:tag` pairs with the same repository print as tags only.
pub fn image_change(from: &str, to: &str) -> String {
    let split = |s: &str| -> (String, String) {
        if let Some((repo, digest)) = s.split_once('@') {
            return (repo.to_string(), digest.chars().take(19).collect());
        }
        let slash = s.rfind('/').map(|i| i + 1).unwrap_or(0);
        match s[slash..].rfind(':') {
            Some(c) => (s[..slash + c].to_string(), s[slash + c + 1..].to_string()),
            None => (s.to_string(), "latest".to_string()),
        }
    };
    let (fr, ft) = split(from);
    let (tr, tt) = split(to);
    if fr == tr {
        format!("{ft} -> {tt}")
    } else {
        format!("{from} -> {to}")
    }
}

fn env_changes(t: Option<&Value>, l: Option<&Value>, suffix: &str, lines: &mut Vec<String>) {
    let t = named_items(t);
    let l = named_items(l);
    for (name, tv) in &t {
        match l.iter().find(|(n, _)| n == name) {
            None => lines.push(format!("env {name} added{suffix}")),
            Some((_, lv)) if lv != tv => lines.push(format!("env {name} changed{suffix}")),
            Some(_) => {}
        }
    }
    for (name, _) in &l {
        if !t.iter().any(|(n, _)| n == name) {
            lines.push(format!("env {name} removed{suffix}"));
        }
    }
}

fn keyed_map(t: Option<&Value>, l: Option<&Value>, what: &str, lines: &mut Vec<String>) {
    let empty = serde_json::Map::new();
    let t = t.and_then(Value::as_object).unwrap_or(&empty);
    let l = l.and_then(Value::as_object).unwrap_or(&empty);
    for (k, v) in t {
        match l.get(k) {
            None => lines.push(format!("{what} {k} added")),
            Some(lv) if lv != v => lines.push(format!("{what} {k} changed")),
            Some(_) => {}
        }
    }
    for k in l.keys() {
        if !t.contains_key(k) {
            lines.push(format!("{what} {k} removed"));
        }
    }
}

/// JSON pointers of the smallest subtrees that differ (a whole added map counts once).
fn leaf_differences(t: &Value, l: &Value, path: &mut String, out: &mut Vec<String>) {
    match (t, l) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                let len = path.len();
                path.push('/');
                path.push_str(&k.replace('~', "~0").replace('/', "~1"));
                match (a.get(k), b.get(k)) {
                    (Some(x), Some(y)) => leaf_differences(x, y, path, out),
                    _ => out.push(path.clone()),
                }
                path.truncate(len);
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for i in 0..a.len().max(b.len()) {
                let len = path.len();
                path.push('/');
                path.push_str(&i.to_string());
                match (a.get(i), b.get(i)) {
                    (Some(x), Some(y)) => leaf_differences(x, y, path, out),
                    _ => out.push(path.clone()),
                }
                path.truncate(len);
            }
        }
        (a, b) if a != b => out.push(path.clone()),
        _ => {}
    }
}

/// The images a change starts running: the target image of every container (init ones
/// included) whose image differs from live's, or every target image when nothing is live.
pub fn new_images(kind: &str, target: Option<&Value>, live: Option<&Value>) -> Vec<String> {
    let (Some(base), Some(target)) = (pod_spec_path(kind), target) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for list in ["initContainers", "containers"] {
        let path = format!("{base}/{list}");
        let l = named_items(live.and_then(|l| l.pointer(&path)));
        for (name, tc) in named_items(target.pointer(&path)) {
            let Some(ti) = tc.get("image").and_then(Value::as_str) else {
                continue;
            };
            let li = l
                .iter()
                .find(|(n, _)| *n == name)
                .and_then(|(_, c)| c.get("image"))
                .and_then(Value::as_str);
            if li != Some(ti) && !out.iter().any(|o| o == ti) {
                out.push(ti.to_string());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deploy(image: &str, replicas: u32, env: Value) -> Value {
        json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"api"},
            "spec":{"replicas":replicas,"template":{"spec":{"containers":[
                {"name":"api","image":image,"env":env}]}}}})
    }

    #[test]
    fn workload_changes_read_like_an_operator_speaks() {
        let live = deploy(
            "reg/api:sha-1",
            2,
            json!([{"name":"A","value":"1"},{"name":"X","value":"1"}]),
        );
        let target = deploy(
            "reg/api:sha-2",
            3,
            json!([{"name":"A","value":"1"},{"name":"X","value":"2"},{"name":"LOG_LEVEL","value":"debug"}]),
        );
        let lines = summarize("Deployment", &target, &live);
        assert_eq!(
            lines,
            [
                "image api: sha-1 -> sha-2",
                "env X changed",
                "env LOG_LEVEL added",
                "replicas 2 -> 3"
            ]
        );
    }

    #[test]
    fn other_fields_are_counted() {
        let live = deploy("api:1", 2, json!([]));
        let mut target = deploy("api:1", 2, json!([]));
        target["spec"]["minReadySeconds"] = json!(5);
        target["metadata"]["labels"] = json!({"a":"b","c":"d"});
        assert_eq!(
            summarize("Deployment", &target, &live),
            ["2 fields changed"]
        );
        target["spec"]["replicas"] = json!(4);
        assert_eq!(
            summarize("Deployment", &target, &live),
            ["replicas 2 -> 4", "2 other fields changed"]
        );
        assert!(summarize("Deployment", &live, &live).is_empty());
    }

    #[test]
    fn config_map_keys() {
        let live = json!({"kind":"ConfigMap","data":{"a":"1","b":"2"}});
        let target = json!({"kind":"ConfigMap","data":{"a":"9","c":"3"}});
        assert_eq!(
            summarize("ConfigMap", &target, &live),
            [
                "ConfigMap key a changed",
                "ConfigMap key c added",
                "ConfigMap key b removed"
            ]
        );
    }

    #[test]
    fn images_with_different_repositories_print_whole() {
        assert_eq!(image_change("a/x:1", "a/x:2"), "1 -> 2");
        assert_eq!(image_change("a/x:1", "b/x:1"), "a/x:1 -> b/x:1");
        assert_eq!(image_change("reg:5000/x", "reg:5000/x:v2"), "latest -> v2");
    }

    #[test]
    fn new_images_are_the_target_images_that_change() {
        let pod = |a: &str, b: &str| {
            json!({"spec":{"template":{"spec":{
                "initContainers":[{"name":"init","image":"init:1"}],
                "containers":[{"name":"a","image":a},{"name":"b","image":b}]}}}})
        };
        let (t, l) = (pod("a:2", "b:1"), pod("a:1", "b:1"));
        assert_eq!(new_images("Deployment", Some(&t), Some(&l)), ["a:2"]);
        assert_eq!(
            new_images("Deployment", Some(&t), None),
            ["init:1", "a:2", "b:1"]
        );
        assert!(new_images("ConfigMap", Some(&t), None).is_empty());
        assert!(new_images("Deployment", None, Some(&l)).is_empty());
    }
}
