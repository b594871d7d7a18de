//! Discovery documents: `/version`, `/api`, `/apis`, and the per group-version resource
//! lists kubectl and kube-rs read before anything else. Plain (non-aggregated) JSON only:
//! kubectl falls back to it when the server ignores the aggregated-discovery Accept type.

use crate::store::{APPLICATIONS, APPPROJECTS, RESOURCE_TYPES, ResourceType};
use serde_json::{Value, json};

/// Group versions served, besides the core `v1`.
pub const GROUPS: &[(&str, &str)] = &[
    ("apps", "v1"),
    ("events.k8s.io", "v1"),
    ("authorization.k8s.io", "v1"),
    ("authentication.k8s.io", "v1"),
    ("batch", "v1"),
    ("argoproj.io", "v1alpha1"),
];

const VERBS: &[&str] = &[
    "create", "delete", "get", "list", "patch", "update", "watch",
];

/// Whether the type has a `/status` subresource. Argo CD's CRDs declare none, so a plain
/// update of an Application writes its status too.
pub fn has_status_subresource(res: ResourceType) -> bool {
    res != APPLICATIONS
        && res != APPPROJECTS
        && res.kind != "ConfigMap"
        && res.kind != "Secret"
        && res.kind != "Event"
}

/// The `categories` a type belongs to (`kubectl get all` lists the `all` category).
fn categories(res: ResourceType) -> &'static [&'static str] {
    match (res.group, res.kind) {
        ("argoproj.io", _) => &["argoproj"],
        ("", "Pod" | "Service")
        | ("apps", "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet")
        | ("batch", "Job") => &["all"],
        _ => &[],
    }
}

pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "32",
        "gitVersion": "v1.32.0-shipdeck-sandbox",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.23.0",
        "compiler": "gc",
        "platform": "linux/amd64"
    })
}

pub fn api_versions(host: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}]
    })
}

fn group(name: &str, version: &str) -> Value {
    let gv = format!("{name}/{version}");
    json!({
        "name": name,
        "versions": [{"groupVersion": gv, "version": version}],
        "preferredVersion": {"groupVersion": gv, "version": version}
    })
}

pub fn api_group_list() -> Value {
    json!({
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": GROUPS.iter().map(|(g, v)| group(g, v)).collect::<Vec<_>>()
    })
}

pub fn api_group(name: &str) -> Option<Value> {
    GROUPS.iter().find(|(g, _)| *g == name).map(|(g, v)| {
        let mut d = group(g, v);
        d["kind"] = json!("APIGroup");
        d["apiVersion"] = json!("v1");
        d
    })
}

/// `APIResourceList` of a group version; None when not served.
pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    let mut resources = Vec::new();
    if group == "authorization.k8s.io" && version == "v1" {
        resources.push(json!({
            "name": "selfsubjectaccessreviews",
            "singularName": "selfsubjectaccessreview",
            "namespaced": false,
            "kind": "SelfSubjectAccessReview",
            "verbs": ["create"]
        }));
    }
    if group == "authentication.k8s.io" && version == "v1" {
        resources.push(json!({
            "name": "selfsubjectreviews",
            "singularName": "selfsubjectreview",
            "namespaced": false,
            "kind": "SelfSubjectReview",
            "verbs": ["create"]
        }));
    }
    for r in RESOURCE_TYPES
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        let mut entry = json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": VERBS,
        });
        if !r.short_names.is_empty() {
            entry["shortNames"] = json!(r.short_names);
        }
        if !categories(*r).is_empty() {
            entry["categories"] = json!(categories(*r));
        }
        resources.push(entry);
        if r.kind == "Pod" {
            resources.push(json!({"name": "pods/log", "singularName": "", "namespaced": true, "kind": "Pod", "verbs": ["get"]}));
        }
        if matches!(r.kind, "Deployment" | "ReplicaSet" | "StatefulSet") {
            resources.push(json!({"name": format!("{}/scale", r.plural), "singularName": "", "namespaced": true,
                "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"]}));
        }
        if has_status_subresource(*r) {
            resources.push(json!({
                "name": format!("{}/status", r.plural),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": ["get", "patch", "update"]
            }));
        }
    }
    if resources.is_empty() {
        return None;
    }
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}

/// `/openapi/v3`: the group versions with a document each. kubectl reads it to learn that
/// the server validates fields itself (`fieldValidation`), so it needs no client-side schema.
pub fn openapi_v3_root() -> Value {
    let mut paths = serde_json::Map::new();
    let mut gvs = vec![("".to_string(), "v1".to_string())];
    gvs.extend(GROUPS.iter().map(|(g, v)| (g.to_string(), v.to_string())));
    for (g, v) in gvs {
        let key = if g.is_empty() {
            format!("api/{v}")
        } else {
            format!("apis/{g}/{v}")
        };
        paths.insert(
            key.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash=sandbox")}),
        );
    }
    json!({"paths": paths})
}

/// A minimal OpenAPI v3 document of one group version: an object path per type whose PATCH
/// names its kind and accepts `fieldValidation`. There are no schemas: validation is the
/// server's business, and the sandbox accepts any fields.
pub fn openapi_v3_doc(key: &str) -> Option<Value> {
    let (group, version) = match key.split('/').collect::<Vec<_>>().as_slice() {
        ["api", v] => (String::new(), v.to_string()),
        ["apis", g, v] => (g.to_string(), v.to_string()),
        _ => return None,
    };
    let mut paths = serde_json::Map::new();
    let params = json!([
        {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}},
        {"name": "fieldManager", "in": "query", "schema": {"type": "string"}},
        {"name": "dryRun", "in": "query", "schema": {"type": "string"}}
    ]);
    let prefix = if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    };
    for r in RESOURCE_TYPES
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        let gvk = json!({"group": r.group, "version": r.version, "kind": r.kind});
        let op = json!({
            "x-kubernetes-group-version-kind": gvk,
            "parameters": params,
            "responses": {"200": {"description": "OK"}}
        });
        let path = if r.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", r.plural)
        } else {
            format!("{prefix}/{}/{{name}}", r.plural)
        };
        paths.insert(
            path,
            json!({"get": op, "put": op, "patch": op, "delete": op}),
        );
    }
    if paths.is_empty()
        && !(matches!(
            group.as_str(),
            "authorization.k8s.io" | "authentication.k8s.io"
        ) && version == "v1")
    {
        return None;
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes (shipdeck sandbox)", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": {}}
    }))
}
