//! What the API server does to an object between the wire and storage: the second version
//! of a stored type (`events.k8s.io/v1` Events are core Events in storage, as in Kubernetes)
//! and the name validation every create goes through (DNS-1123, with the API server's
//! wording, so a client sees the 422 it would get from a cluster).

use super::status::ApiError;
use crate::store::{EVENTS, EVENTS_V1, ResourceType};
use serde_json::{Value, json};

/// The type an object of `res` is stored as.
pub fn storage(res: ResourceType) -> ResourceType {
    if res == EVENTS_V1 { EVENTS } else { res }
}

/// Field renames between a core Event (left) and an `events.k8s.io/v1` Event (right).
const EVENT_FIELDS: &[(&str, &str)] = &[
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
    ("reportingComponent", "reportingController"),
];

fn rename(obj: &Value, from_core: bool, res: ResourceType) -> Value {
    let Some(map) = obj.as_object() else {
        return obj.clone();
    };
    let mut out = serde_json::Map::with_capacity(map.len());
    for (k, v) in map {
        let key = EVENT_FIELDS
            .iter()
            .find(|(core, v1)| if from_core { core == k } else { v1 == k })
            .map(|(core, v1)| if from_core { *v1 } else { *core })
            .unwrap_or(k.as_str());
        out.insert(key.to_string(), v.clone());
    }
    out.insert("apiVersion".into(), json!(res.api_version()));
    out.insert("kind".into(), json!(res.kind));
    Value::Object(out)
}

/// A stored object as `res` shows it.
pub fn to_wire(res: ResourceType, stored: &Value) -> Value {
    if res == EVENTS_V1 {
        rename(stored, true, EVENTS_V1)
    } else {
        stored.clone()
    }
}

/// An object sent as `res`, as it is stored.
pub fn from_wire(res: ResourceType, obj: Value) -> Value {
    if res == EVENTS_V1 {
        rename(&obj, false, EVENTS)
    } else {
        obj
    }
}

/// Fill in what the API server defaults on write for the workload types whose controllers
/// and clients read those fields (`kubectl rollout status` refuses a StatefulSet without an
/// `updateStrategy`). Only absent fields are set, so it is idempotent.
pub fn apply_defaults(res: ResourceType, obj: &mut Value) {
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let mut default = |k: &str, v: Value| {
        if spec.get(k).is_none_or(Value::is_null) {
            spec.insert(k.to_string(), v);
        }
    };
    match (res.group, res.kind) {
        ("apps", "StatefulSet") => {
            default("replicas", json!(1));
            default("podManagementPolicy", json!("OrderedReady"));
            default(
                "updateStrategy",
                json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}),
            );
            default("revisionHistoryLimit", json!(10));
            default(
                "persistentVolumeClaimRetentionPolicy",
                json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
            );
        }
        ("apps", "DaemonSet") => {
            default(
                "updateStrategy",
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}),
            );
            default("revisionHistoryLimit", json!(10));
        }
        ("batch", "Job") => {
            let unset = |k: &str| spec.get(k).is_none_or(Value::is_null);
            if unset("completions") && unset("parallelism") {
                spec.insert("completions".into(), json!(1));
                spec.insert("parallelism".into(), json!(1));
            }
            let mut default = |k: &str, v: Value| {
                if spec.get(k).is_none_or(Value::is_null) {
                    spec.insert(k.to_string(), v);
                }
            };
            default("parallelism", json!(1));
            default("backoffLimit", json!(6));
            default("completionMode", json!("NonIndexed"));
            default("suspend", json!(false));
            default("podReplacementPolicy", json!("TerminatingOrFailed"));
        }
        _ => {}
    }
}

/// A string as Go's `%q` writes it (the API server quotes names and values that way).
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => {
                let n = c as u32;
                if n <= 0xffff {
                    out.push_str(&format!("\\u{n:04x}"));
                } else {
                    out.push_str(&format!("\\U{n:08x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1035_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";

fn is_label(s: &str, alpha_first: bool) -> bool {
    let b = s.as_bytes();
    let inner = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-';
    let Some((first, last)) = b.first().zip(b.last()) else {
        return false;
    };
    let first_ok = if alpha_first {
        first.is_ascii_lowercase()
    } else {
        first.is_ascii_lowercase() || first.is_ascii_digit()
    };
    first_ok && (last.is_ascii_lowercase() || last.is_ascii_digit()) && b.iter().all(inner)
}

/// Why `name` is not a valid name for `res`, in the API server's words (empty when valid).
pub fn name_problems(res: ResourceType, name: &str) -> Vec<String> {
    let (max, ok, msg) = match res.kind {
        "Namespace" => (63, is_label(name, false), LABEL_MSG),
        "Service" => (63, is_label(name, true), DNS1035_MSG),
        _ => (
            253,
            name.split('.').all(|part| is_label(part, false)),
            SUBDOMAIN_MSG,
        ),
    };
    let mut out = Vec::new();
    if name.len() > max {
        out.push(format!("must be no more than {max} characters"));
    }
    if !ok {
        out.push(msg.to_string());
    }
    out
}

/// 422 Invalid unless `name` is a valid name for `res`.
pub fn validate_name(res: ResourceType, name: &str) -> Result<(), ApiError> {
    if name.is_empty() {
        return Ok(()); // generateName, or the store's own "Required value"
    }
    let problems = name_problems(res, name);
    if problems.is_empty() {
        return Ok(());
    }
    let quoted = go_quote(name);
    let causes: Vec<Value> = problems
        .iter()
        .map(|p| {
            json!({"reason": "FieldValueInvalid", "message": format!("Invalid value: {quoted}: {p}"),
                   "field": "metadata.name"})
        })
        .collect();
    let listed: Vec<String> = problems
        .iter()
        .map(|p| format!("metadata.name: Invalid value: {quoted}: {p}"))
        .collect();
    let joined = if listed.len() == 1 {
        listed[0].clone()
    } else {
        format!("[{}]", listed.join(", "))
    };
    let mut details = json!({"name": name, "group": res.group, "kind": res.kind, "causes": causes});
    if res.group.is_empty() {
        details["group"] = json!("");
    }
    let kind = if res.group.is_empty() {
        res.kind.to_string()
    } else {
        format!("{}.{}", res.kind, res.group)
    };
    Err(ApiError::new(
        422,
        "Invalid",
        format!("{kind} {quoted} is invalid: {joined}"),
    )
    .with_details(details))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{CONFIGMAPS, NAMESPACES, SERVICES};

    #[test]
    fn names_are_validated_as_the_api_server_does() {
        assert!(validate_name(CONFIGMAPS, "web.example-1").is_ok());
        let e = validate_name(CONFIGMAPS, "Bad\u{1b}[31m").unwrap_err();
        assert_eq!(e.code, 422);
        assert!(
            e.message.starts_with(
                "ConfigMap \"Bad\\x1b[31m\" is invalid: metadata.name: Invalid value: \"Bad\\x1b[31m\": a lowercase RFC 1123 subdomain"
            ),
            "{}",
            e.message
        );
        assert!(validate_name(NAMESPACES, "a.b").is_err());
        assert!(validate_name(SERVICES, "1abc").is_err());
        assert!(validate_name(CONFIGMAPS, "1abc").is_ok());
        assert_eq!(go_quote("a\"b\\\n"), "\"a\\\"b\\\\\\n\"");
    }

    #[test]
    fn workload_defaults_fill_only_what_is_absent() {
        use crate::store::{JOBS, STATEFULSETS};
        let mut sts = json!({"spec": {"replicas": 3, "podManagementPolicy": "Parallel"}});
        apply_defaults(STATEFULSETS, &mut sts);
        assert_eq!(sts["spec"]["replicas"], 3);
        assert_eq!(sts["spec"]["podManagementPolicy"], "Parallel");
        assert_eq!(sts["spec"]["updateStrategy"]["type"], "RollingUpdate");
        let again = sts.clone();
        apply_defaults(STATEFULSETS, &mut sts);
        assert_eq!(sts, again);
        let mut job = json!({"spec": {"parallelism": 2}});
        apply_defaults(JOBS, &mut job);
        assert!(job["spec"]["completions"].is_null());
        assert_eq!(job["spec"]["backoffLimit"], 6);
    }

    #[test]
    fn events_convert_both_ways() {
        let core = json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e"},
            "involvedObject": {"name": "web"}, "message": "hi", "count": 2});
        let wire = to_wire(EVENTS_V1, &core);
        assert_eq!(wire["regarding"]["name"], "web");
        assert_eq!(wire["note"], "hi");
        assert_eq!(wire["apiVersion"], "events.k8s.io/v1");
        assert_eq!(from_wire(EVENTS_V1, wire), core);
    }
}
