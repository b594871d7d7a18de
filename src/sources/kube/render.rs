//! Core mode's live diff input: the app's desired manifests rendered from Git at its target
//! revision (plain YAML/JSON directories; `kubectl kustomize` when a kustomization exists
//! and kubectl is installed), paired with the live objects fetched from the destination.
//! Normalizing and comparing is `ops`' job; this only fetches.

use super::{Inner, read};
use crate::model::Application;
use crate::sources::git::GitMirrors;
use crate::sources::{ManagedResource, SourceError};
use kube::api::{Api, DynamicObject};
use kube::core::GroupVersionKind;
use serde_json::Value;
use std::collections::HashMap;

const KUSTOMIZATION: [&str; 3] = ["kustomization.yaml", "kustomization.yml", "Kustomization"];
const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";

fn refused(msg: impl Into<String>) -> SourceError {
    SourceError::Refused(msg.into())
}

/// Parse a multi-document YAML (or JSON) text into objects, expanding `kind: List`.
pub fn parse_manifests(text: &str, file: &str) -> Result<Vec<Value>, SourceError> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text)
        .map_err(|e| refused(format!("manifest {file} does not parse: {e}")))?;
    let mut out = Vec::new();
    for doc in docs {
        match doc {
            Value::Null => {}
            Value::Object(ref m) if m.get("kind").and_then(Value::as_str) == Some("List") => {
                if let Some(items) = m.get("items").and_then(Value::as_array) {
                    out.extend(items.iter().cloned());
                }
            }
            Value::Object(_) => out.push(doc),
            _ => {
                return Err(refused(format!(
                    "manifest {file} holds something that is not an object"
                )));
            }
        }
    }
    Ok(out)
}

/// The app's desired manifests, rendered from Git at the revision its spec names. Core
/// mode uses it for every diff; API mode for what the server cannot compare (a rollback's
/// target revision).
pub(crate) async fn desired(
    git: &GitMirrors,
    app: &Application,
) -> Result<Vec<Value>, SourceError> {
    let source = app
        .spec
        .primary_source()
        .ok_or_else(|| refused("the application has no source"))?;
    if source.chart.is_some() {
        return Err(refused(
            "Helm chart sources cannot be rendered in core mode; use API mode (--argocd-server) for this diff",
        ));
    }
    let unreachable = |e: crate::sources::git::GitError| SourceError::Unreachable {
        server: source.repo_url.clone(),
        detail: e.to_string(),
    };
    let mirror = git
        .mirror(&source.repo_url, false)
        .await
        .map_err(unreachable)?;
    let rev = source.target_revision.as_deref().unwrap_or("HEAD");
    let path = source.path.as_deref().unwrap_or(".").trim_matches('/');
    let path = if path.is_empty() { "." } else { path };
    let files = match mirror.list_files(rev, path).await {
        Ok(f) => f,
        // The branch may be new: fetch now and try once more.
        Err(crate::sources::git::GitError::UnknownRevision { .. }) => {
            let mirror = git
                .mirror(&source.repo_url, true)
                .await
                .map_err(unreachable)?;
            mirror.list_files(rev, path).await.map_err(unreachable)?
        }
        Err(e) => return Err(unreachable(e)),
    };
    let prefix = if path == "." {
        String::new()
    } else {
        format!("{path}/")
    };
    let direct = |f: &&String| !f[prefix.len().min(f.len())..].contains('/');
    if files
        .iter()
        .filter(direct)
        .any(|f| f.ends_with("Chart.yaml"))
    {
        return Err(refused(
            "Helm sources cannot be rendered in core mode; use API mode (--argocd-server) for this diff",
        ));
    }
    if files.iter().filter(direct).any(|f| {
        KUSTOMIZATION
            .iter()
            .any(|k| f.ends_with(&format!("/{k}")) || f == k)
    }) {
        let tmp = tempfile::tempdir().map_err(|e| refused(format!("temp dir: {e}")))?;
        // A kustomization may reference siblings (`../base`): export the whole revision.
        mirror
            .export(rev, ".", tmp.path())
            .await
            .map_err(unreachable)?;
        let out = tokio::process::Command::new("kubectl")
            .arg("kustomize")
            .arg(tmp.path().join(path))
            .output()
            .await
            .map_err(|e| {
                refused(format!(
                    "this app uses kustomize and needs kubectl on PATH ({e})"
                ))
            })?;
        if !out.status.success() {
            return Err(refused(format!(
                "kubectl kustomize {path} failed: {}",
                crate::model::text::sanitize(String::from_utf8_lossy(&out.stderr).trim())
            )));
        }
        return parse_manifests(&String::from_utf8_lossy(&out.stdout), path);
    }
    let recurse = source
        .extra
        .get("directory")
        .and_then(|d| d.get("recurse"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mut out = Vec::new();
    for f in &files {
        let is_manifest = f.ends_with(".yaml") || f.ends_with(".yml") || f.ends_with(".json");
        if !is_manifest || (!recurse && !direct(&f)) {
            continue;
        }
        if let Some(text) = mirror.read_file(rev, f).await.map_err(unreachable)? {
            out.extend(parse_manifests(&text, f)?);
        }
    }
    Ok(out)
}

fn split_api_version(api_version: &str) -> (String, String) {
    match api_version.split_once('/') {
        Some((g, v)) => (g.to_string(), v.to_string()),
        None => (String::new(), api_version.to_string()),
    }
}

pub(super) async fn managed_resources(
    inner: &Inner,
    app: &Application,
) -> Result<Vec<ManagedResource>, SourceError> {
    let objects = desired(&inner.git, app).await?;
    let (ctx, client) = inner.dest_client(app).await?;
    let dest_ns = app.spec.destination.namespace.clone().unwrap_or_default();
    let mut kinds: HashMap<(String, String, String), Option<(kube::core::ApiResource, bool)>> =
        HashMap::new();
    let mut out = Vec::new();
    for mut obj in objects {
        let is_hook = obj
            .pointer("/metadata/annotations/argocd.argoproj.io~1hook")
            .is_some();
        if is_hook {
            continue;
        }
        let (group, version) =
            split_api_version(obj.get("apiVersion").and_then(Value::as_str).unwrap_or(""));
        let kind = obj
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let key = (group.clone(), version.clone(), kind.clone());
        if !kinds.contains_key(&key) {
            let gvk = GroupVersionKind::gvk(&group, &version, &kind);
            let found = kube::discovery::pinned_kind(&client, &gvk)
                .await
                .ok()
                .map(|(ar, caps)| (ar, caps.scope == kube::discovery::Scope::Namespaced));
            kinds.insert(key.clone(), found);
        }
        let found = kinds.get(&key).cloned().flatten();
        let namespaced = found.as_ref().is_none_or(|(_, n)| *n);
        let mut namespace = obj
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if namespaced && namespace.is_empty() {
            namespace = dest_ns.clone();
            if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.insert("namespace".into(), Value::String(namespace.clone()));
            }
        }
        // Argo CD's default tracking adds its label to what it applies.
        if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            let labels = meta
                .entry("labels")
                .or_insert_with(|| Value::Object(Default::default()));
            if let Some(l) = labels.as_object_mut() {
                l.entry(INSTANCE_LABEL)
                    .or_insert_with(|| Value::String(app.metadata.name.clone()));
            }
        }
        let live = match &found {
            Some((ar, ns_scoped)) => {
                let api: Api<DynamicObject> = if *ns_scoped {
                    Api::namespaced_with(client.clone(), &namespace, ar)
                } else {
                    Api::all_with(client.clone(), ar)
                };
                read(&ctx, &format!("{kind} {namespace}/{name}"), || {
                    api.get_opt(&name)
                })
                .await?
                .and_then(|o| serde_json::to_value(o).ok())
            }
            None => None,
        };
        out.push(ManagedResource {
            group,
            version,
            kind,
            namespace,
            name,
            target: Some(obj),
            live,
        });
    }
    // Resources Argo CD says should be pruned are live-only.
    for r in app.status.resources.iter().filter(|r| r.requires_pruning) {
        if out
            .iter()
            .any(|m| m.kind == r.kind && m.name == r.name && m.namespace == r.namespace)
        {
            continue;
        }
        let gvk = GroupVersionKind::gvk(&r.group, &r.version, &r.kind);
        let live = match kube::discovery::pinned_kind(&client, &gvk).await {
            Ok((ar, _)) => {
                let api: Api<DynamicObject> = if r.namespace.is_empty() {
                    Api::all_with(client.clone(), &ar)
                } else {
                    Api::namespaced_with(client.clone(), &r.namespace, &ar)
                };
                api.get_opt(&r.name)
                    .await
                    .ok()
                    .flatten()
                    .and_then(|o| serde_json::to_value(o).ok())
            }
            Err(_) => None,
        };
        out.push(ManagedResource {
            group: r.group.clone(),
            version: r.version.clone(),
            kind: r.kind.clone(),
            namespace: r.namespace.clone(),
            name: r.name.clone(),
            target: None,
            live,
        });
    }
    Ok(out)
}

/// Pair desired objects (rendered from Git) with the live side of resources a server
/// already compared: each desired object takes the live state of the resource with the
/// same group, kind, namespace and name (an object without a namespace takes the live
/// resource's, else the app's destination namespace); live resources no desired object
/// names are left with no target (a sync with prune deletes them).
pub(crate) fn pair_with_live(
    app: &Application,
    desired: Vec<Value>,
    live: Vec<ManagedResource>,
) -> Vec<ManagedResource> {
    let dest_ns = app.spec.destination.namespace.clone().unwrap_or_default();
    let mut live: Vec<Option<ManagedResource>> = live.into_iter().map(Some).collect();
    let mut out = Vec::new();
    for mut obj in desired {
        if obj
            .pointer("/metadata/annotations/argocd.argoproj.io~1hook")
            .is_some()
        {
            continue;
        }
        let (group, version) =
            split_api_version(obj.get("apiVersion").and_then(Value::as_str).unwrap_or(""));
        let text = |p: &str| {
            obj.pointer(p)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let kind = text("/kind");
        let name = text("/metadata/name");
        let given_ns = text("/metadata/namespace");
        let slot = live.iter_mut().find(|m| {
            m.as_ref().is_some_and(|m| {
                m.group == group
                    && m.kind == kind
                    && m.name == name
                    && (m.namespace == given_ns || given_ns.is_empty())
            })
        });
        let found = slot.and_then(Option::take);
        let namespace = match (&found, given_ns.is_empty()) {
            (_, false) => given_ns,
            (Some(m), true) => m.namespace.clone(),
            (None, true) => dest_ns.clone(),
        };
        if !namespace.is_empty()
            && let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut)
        {
            meta.insert("namespace".into(), Value::String(namespace.clone()));
        }
        out.push(ManagedResource {
            group,
            version,
            kind,
            namespace,
            name,
            target: Some(obj),
            live: found.and_then(|m| m.live),
        });
    }
    out.extend(
        live.into_iter()
            .flatten()
            .map(|m| ManagedResource { target: None, ..m }),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_multi_document_yaml_and_lists() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n---\napiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Service, metadata: {name: b}}\n";
        let objs = parse_manifests(text, "x.yaml").unwrap();
        assert_eq!(objs.len(), 2);
        assert_eq!(objs[1]["kind"], "Service");
        assert!(parse_manifests("- 1\n- 2\n", "y.yaml").is_err());
    }

    #[test]
    fn desired_objects_take_the_live_side_of_the_same_resource() {
        use serde_json::json;
        let mut app = Application::default();
        app.spec.destination.namespace = Some("shop".into());
        let live = |kind: &str, ns: &str, name: &str| ManagedResource {
            group: String::new(),
            version: "v1".into(),
            kind: kind.into(),
            namespace: ns.into(),
            name: name.into(),
            target: Some(json!({"server": "target"})),
            live: Some(json!({"live": name})),
        };
        let desired = vec![
            json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"}}),
            json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"new"}}),
            json!({"apiVersion":"v1","kind":"Secret","metadata":{"name":"h",
                "annotations":{"argocd.argoproj.io/hook":"PreSync"}}}),
        ];
        let out = pair_with_live(
            &app,
            desired,
            vec![
                live("ConfigMap", "shop", "a"),
                live("ConfigMap", "shop", "gone"),
            ],
        );
        let view: Vec<(&str, &str, bool, bool)> = out
            .iter()
            .map(|m| {
                (
                    m.name.as_str(),
                    m.namespace.as_str(),
                    m.target.is_some(),
                    m.live.is_some(),
                )
            })
            .collect();
        assert_eq!(
            view,
            [
                ("a", "shop", true, true),
                ("new", "shop", true, false),
                ("gone", "shop", false, true),
            ]
        );
        // The target is Git's object (namespace filled in), never the server's.
        assert_eq!(
            out[0].target.as_ref().unwrap()["metadata"]["namespace"],
            "shop"
        );
        assert_eq!(out[0].live, Some(json!({"live": "a"})));
    }
}
