//! Label and field selectors as the API server parses them (`env=prod,tier in (web,api)`,
//! `!legacy`, `metadata.name!=x`). Parsing happens once per request; matching is then a
//! cheap walk over each object. It only filters: it never reads the store.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
enum Op {
    Eq(String),
    NotEq(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    NotExists,
}

#[derive(Debug, Clone, PartialEq)]
struct Requirement {
    key: String,
    op: Op,
}

/// A parsed label selector; empty matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelSelector(Vec<Requirement>);

/// A parsed field selector over dotted paths (`metadata.name`, `status.phase`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldSelector(Vec<(String, bool, String)>); // path, equal?, value

/// Split on commas that are not inside parentheses.
fn split_top(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out.into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}

fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

fn set_values(rest: &str) -> Result<Vec<String>, String> {
    let rest = rest.trim();
    let inner = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| format!("expected a parenthesised set of values, found {rest:?}"))?;
    Ok(inner
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect())
}

impl LabelSelector {
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut reqs = Vec::new();
        for part in split_top(s) {
            let req = if let Some(key) = part.strip_prefix('!') {
                Requirement {
                    key: key.trim().to_string(),
                    op: Op::NotExists,
                }
            } else if let Some((k, v)) = part.split_once("!=") {
                Requirement {
                    key: k.trim().to_string(),
                    op: Op::NotEq(v.trim().to_string()),
                }
            } else if let Some((k, v)) = part.split_once("==") {
                Requirement {
                    key: k.trim().to_string(),
                    op: Op::Eq(v.trim().to_string()),
                }
            } else if let Some((k, v)) = part.split_once('=') {
                Requirement {
                    key: k.trim().to_string(),
                    op: Op::Eq(v.trim().to_string()),
                }
            } else if let Some((k, rest)) = part.split_once(" notin ") {
                Requirement {
                    key: k.trim().to_string(),
                    op: Op::NotIn(set_values(rest)?),
                }
            } else if let Some((k, rest)) = part.split_once(" in ") {
                Requirement {
                    key: k.trim().to_string(),
                    op: Op::In(set_values(rest)?),
                }
            } else {
                Requirement {
                    key: part.to_string(),
                    op: Op::Exists,
                }
            };
            if !valid_key(&req.key) {
                return Err(format!(
                    "unable to parse requirement: invalid label key {:?}",
                    req.key
                ));
            }
            reqs.push(req);
        }
        Ok(Self(reqs))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn matches(&self, obj: &Value) -> bool {
        let labels = obj.get("metadata").and_then(|m| m.get("labels"));
        self.0.iter().all(|r| {
            let v = labels.and_then(|l| l.get(&r.key)).and_then(Value::as_str);
            match &r.op {
                Op::Eq(x) => v == Some(x.as_str()),
                Op::NotEq(x) => v != Some(x.as_str()),
                Op::In(xs) => v.is_some_and(|v| xs.iter().any(|x| x == v)),
                Op::NotIn(xs) => !v.is_some_and(|v| xs.iter().any(|x| x == v)),
                Op::Exists => v.is_some(),
                Op::NotExists => v.is_none(),
            }
        })
    }
}

impl FieldSelector {
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut out = Vec::new();
        for part in split_top(s) {
            let (path, eq, value) = if let Some((k, v)) = part.split_once("!=") {
                (k, false, v)
            } else if let Some((k, v)) = part.split_once("==") {
                (k, true, v)
            } else if let Some((k, v)) = part.split_once('=') {
                (k, true, v)
            } else {
                return Err(format!(
                    "invalid selector: '{part}'; can't understand '{part}'"
                ));
            };
            let path = path.trim();
            if !valid_key(path) {
                return Err(format!("field label not supported: {path}"));
            }
            out.push((path.to_string(), eq, value.trim().to_string()));
        }
        Ok(Self(out))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The name an `metadata.name=x` requirement pins, for a direct lookup.
    pub fn pinned_name(&self) -> Option<&str> {
        self.0
            .iter()
            .find(|(p, eq, _)| *eq && p == "metadata.name")
            .map(|(_, _, v)| v.as_str())
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|(path, eq, want)| {
            let mut cur = Some(obj);
            for seg in path.split('.') {
                cur = cur.and_then(|c| c.get(seg));
            }
            let got = match cur {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(v) => v.to_string(),
            };
            (got == *want) == *eq
        })
    }
}

/// How a type refuses a field label it does not support: the wording differs by where the
/// API server registers the type's field-label conversion.
enum Refusal {
    /// Types with their own conversion (core, CRDs): `field label not supported: X`.
    NotSupported,
    /// `batch/v1` Jobs: `field label "X" not supported for batchv1.Job`.
    BatchJob,
    /// Types with the default conversion: `"X" is not a known field selector: only ...`.
    Default,
}

/// The field labels a type's list and watch accept, as kube-apiserver registers them.
fn selectable(res: crate::store::ResourceType) -> (&'static [&'static str], Refusal) {
    const META: &[&str] = &["metadata.name", "metadata.namespace"];
    match (res.group, res.kind) {
        ("", "Pod") => (
            &[
                "metadata.name",
                "metadata.namespace",
                "spec.nodeName",
                "spec.restartPolicy",
                "spec.schedulerName",
                "spec.serviceAccountName",
                "spec.hostNetwork",
                "status.phase",
                "status.podIP",
                "status.podIPs",
                "status.nominatedNodeName",
            ],
            Refusal::NotSupported,
        ),
        ("", "Event") => (
            &[
                "metadata.name",
                "metadata.namespace",
                "involvedObject.kind",
                "involvedObject.namespace",
                "involvedObject.name",
                "involvedObject.uid",
                "involvedObject.apiVersion",
                "involvedObject.resourceVersion",
                "involvedObject.fieldPath",
                "reason",
                "reportingComponent",
                "source",
                "type",
            ],
            Refusal::NotSupported,
        ),
        ("events.k8s.io", "Event") => (
            &[
                "metadata.name",
                "metadata.namespace",
                "regarding.kind",
                "regarding.namespace",
                "regarding.name",
                "regarding.uid",
                "regarding.apiVersion",
                "regarding.resourceVersion",
                "regarding.fieldPath",
                "reason",
                "reportingController",
                "type",
            ],
            Refusal::NotSupported,
        ),
        ("", "Namespace") => (&["metadata.name", "status.phase"], Refusal::NotSupported),
        ("", "Secret") => (
            &["metadata.name", "metadata.namespace", "type"],
            Refusal::NotSupported,
        ),
        ("", "Service") => (
            &[
                "metadata.name",
                "metadata.namespace",
                "spec.clusterIP",
                "spec.type",
            ],
            Refusal::NotSupported,
        ),
        ("", _) => (META, Refusal::NotSupported),
        ("apps", "ReplicaSet") => (
            &["metadata.name", "metadata.namespace", "status.replicas"],
            Refusal::NotSupported,
        ),
        ("batch", "Job") => (
            &["metadata.name", "metadata.namespace", "status.successful"],
            Refusal::BatchJob,
        ),
        ("apps", _) => (META, Refusal::Default),
        _ => (META, Refusal::NotSupported),
    }
}

impl FieldSelector {
    /// Refuse a field label the type does not support, with the API server's message (it
    /// answers 400 BadRequest), and map `events.k8s.io` paths onto the stored core Event.
    pub fn check(self, res: crate::store::ResourceType) -> Result<Self, String> {
        let (fields, refusal) = selectable(res);
        let mut out = Vec::with_capacity(self.0.len());
        for (path, eq, value) in self.0 {
            if !fields.contains(&path.as_str()) {
                return Err(match refusal {
                    Refusal::NotSupported => format!("field label not supported: {path}"),
                    Refusal::BatchJob => {
                        format!("field label {path:?} not supported for batchv1.Job")
                    }
                    Refusal::Default => format!(
                        "{path:?} is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
                    ),
                });
            }
            let stored = if res.group == "events.k8s.io" {
                if let Some(rest) = path.strip_prefix("regarding.") {
                    format!("involvedObject.{rest}")
                } else if path == "reportingController" {
                    "reportingComponent".to_string()
                } else {
                    path
                }
            } else {
                path
            };
            out.push((stored, eq, value));
        }
        Ok(Self(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(labels: Value) -> Value {
        json!({"metadata": {"name": "web", "namespace": "shop", "labels": labels}})
    }

    #[test]
    fn label_operators() {
        let o = obj(json!({"env": "prod", "tier": "web"}));
        let yes = [
            "env=prod",
            "env==prod",
            "env!=dev",
            "tier in (web, api)",
            "tier notin (db)",
            "env",
            "!legacy",
            "env=prod,tier in (web)",
            "",
        ];
        for s in yes {
            assert!(LabelSelector::parse(s).unwrap().matches(&o), "{s}");
        }
        let no = [
            "env=dev",
            "env!=prod",
            "tier in (db)",
            "tier notin (web,x)",
            "legacy",
            "!env",
        ];
        for s in no {
            assert!(!LabelSelector::parse(s).unwrap().matches(&o), "{s}");
        }
        assert!(LabelSelector::parse("a in b").is_err());
    }

    #[test]
    fn field_selectors() {
        let o = obj(json!({}));
        let f = FieldSelector::parse("metadata.name=web,metadata.namespace!=kube-system").unwrap();
        assert!(f.matches(&o));
        assert_eq!(f.pinned_name(), Some("web"));
        assert!(
            !FieldSelector::parse("metadata.name=api")
                .unwrap()
                .matches(&o)
        );
        assert!(FieldSelector::parse("nonsense").is_err());
    }

    #[test]
    fn unsupported_field_labels_are_refused_as_the_api_server_words_it() {
        use crate::store::{DEPLOYMENTS, EVENTS_V1, JOBS, PODS};
        let f = |s: &str| FieldSelector::parse(s).unwrap();
        assert!(f("status.phase=Running").check(PODS).is_ok());
        assert_eq!(
            f("spec.bogus=x").check(PODS).unwrap_err(),
            "field label not supported: spec.bogus"
        );
        assert_eq!(
            f("status.x=1").check(JOBS).unwrap_err(),
            "field label \"status.x\" not supported for batchv1.Job"
        );
        assert_eq!(
            f("spec.replicas=1").check(DEPLOYMENTS).unwrap_err(),
            "\"spec.replicas\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
        );
        let ev = f("regarding.name=web").check(EVENTS_V1).unwrap();
        assert!(ev.matches(&serde_json::json!({"involvedObject": {"name": "web"}})));
    }
}
