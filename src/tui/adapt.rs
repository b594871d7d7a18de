//! Narrow adapters between the console and the rooms it depends on: the approval policy by
//! environment, turning managed resources into per-resource diffs with one-line summaries,
//! and a [`Provider`] over any [`ArgoSource`]. Each piece is small on purpose so it can be
//! swapped for the `ops` engine (policy, diff, guarded actions) without touching screens.

use super::request::{
    Commit, DiffLine, LineKind, Payload, Provider, Request, ResourceDiff, Response,
    Ticket,
};
use crate::model::{Application, ApprovalPolicy, Environment};
use crate::sources::git::GitMirrors;
use crate::sources::{ArgoSource, ManagedResource};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::mpsc;

/// DESIGN.md default: prod requires approval, other environments none.
pub fn approval_policy(env: &Environment) -> ApprovalPolicy {
    if env.name == "prod" {
        ApprovalPolicy::Required
    } else {
        ApprovalPolicy::None
    }
}

/// Drop what Argo CD ignores when comparing (CONTRACTS.md "Diff").
fn normalize(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(obj) = v.as_object_mut() {
        obj.remove("status");
        if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            for k in [
                "managedFields",
                "resourceVersion",
                "uid",
                "generation",
                "creationTimestamp",
            ] {
                meta.remove(k);
            }
            if let Some(ann) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
                ann.remove("kubectl.kubernetes.io/last-applied-configuration");
                ann.remove("deployment.kubernetes.io/revision");
                if ann.is_empty() {
                    meta.remove("annotations");
                }
            }
        }
    }
    v
}

fn to_yaml(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(v) => serde_saphyr::to_string(&normalize(v)).unwrap_or_else(|e| format!("# {e}\n")),
    }
}

fn images(v: Option<&Value>) -> Vec<(String, String)> {
    let containers = v
        .and_then(|v| v.pointer("/spec/template/spec/containers"))
        .and_then(Value::as_array);
    containers
        .into_iter()
        .flatten()
        .filter_map(|c| {
            Some((
                c.get("name")?.as_str()?.to_string(),
                c.get("image")?.as_str()?.to_string(),
            ))
        })
        .collect()
}

fn short_image(img: &str) -> &str {
    img.rsplit('/').next().unwrap_or(img)
}

/// One line saying what a change means.
pub fn summarize(r: &ManagedResource, added: usize, removed: usize) -> String {
    match (&r.target, &r.live) {
        (Some(_), None) => return format!("{} {} will be created", r.kind, r.name),
        (None, Some(_)) => return format!("{} {} will be pruned", r.kind, r.name),
        (None, None) => return "nothing to compare".into(),
        _ => {}
    }
    let mut parts = Vec::new();
    let (t, l) = (images(r.target.as_ref()), images(r.live.as_ref()));
    for (name, timg) in &t {
        if let Some((_, limg)) = l.iter().find(|(n, _)| n == name)
            && limg != timg
        {
            let lt = short_image(limg)
                .rsplit_once(':')
                .map_or(limg.as_str(), |x| x.1);
            let tt = short_image(timg)
                .rsplit_once(':')
                .map_or(timg.as_str(), |x| x.1);
            parts.push(format!("image {name} {lt} -> {tt}"));
        }
    }
    let rep = |v: &Option<Value>| {
        v.as_ref()
            .and_then(|v| v.pointer("/spec/replicas"))
            .cloned()
    };
    if let (Some(a), Some(b)) = (rep(&r.live), rep(&r.target))
        && a != b
    {
        parts.push(format!("replicas {a} -> {b}"));
    }
    let data = |v: &Option<Value>| {
        v.as_ref()
            .and_then(|v| v.get("data"))
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    };
    let (td, ld) = (data(&r.target), data(&r.live));
    for k in td.keys().filter(|k| !ld.contains_key(*k)) {
        parts.push(format!("key {k} added"));
    }
    for k in ld.keys().filter(|k| !td.contains_key(*k)) {
        parts.push(format!("key {k} removed"));
    }
    for k in td
        .keys()
        .filter(|k| ld.get(*k).is_some_and(|v| Some(v) != td.get(*k)))
    {
        parts.push(format!("key {k} changed"));
    }
    if parts.is_empty() {
        if added + removed == 0 {
            return "no difference".into();
        }
        return format!("{added} lines added, {removed} removed");
    }
    parts.join("; ")
}

/// Unified diff of one resource with unchanged runs folded (3 lines of context).
pub fn diff_resource(r: &ManagedResource) -> ResourceDiff {
    let live = to_yaml(r.live.as_ref());
    let target = to_yaml(r.target.as_ref());
    let diff = similar::TextDiff::from_lines(&live, &target);
    let mut lines = Vec::new();
    let (mut added, mut removed) = (0, 0);
    for group in diff.grouped_ops(3) {
        let (Some(first), Some(last)) = (group.first(), group.last()) else {
            continue;
        };
        let (o, n) = (first.old_range(), first.new_range());
        let (oe, ne) = (last.old_range().end, last.new_range().end);
        lines.push(DiffLine {
            kind: LineKind::Hunk,
            text: format!(
                "@@ -{},{} +{},{} @@",
                o.start + 1,
                oe - o.start,
                n.start + 1,
                ne - n.start
            ),
        });
        for op in &group {
            for change in diff.iter_changes(op) {
                let kind = match change.tag() {
                    similar::ChangeTag::Equal => LineKind::Context,
                    similar::ChangeTag::Insert => {
                        added += 1;
                        LineKind::Added
                    }
                    similar::ChangeTag::Delete => {
                        removed += 1;
                        LineKind::Removed
                    }
                };
                let text = change.value().trim_end_matches('\n');
                lines.push(DiffLine {
                    kind,
                    text: crate::model::text::sanitize(text).into_owned(),
                });
            }
        }
    }
    // Fold markers between hunks say how much is hidden.
    let total_old = live.lines().count();
    let mut with_folds = Vec::with_capacity(lines.len());
    let mut shown_until = 0usize;
    for l in lines {
        if l.kind == LineKind::Hunk
            && let Some(start) = hunk_old_start(&l.text)
        {
            if start > shown_until + 1 {
                with_folds.push(DiffLine {
                    kind: LineKind::Folded,
                    text: format!("⋯ {} unchanged lines", start - 1 - shown_until),
                });
            }
            shown_until = start - 1 + hunk_old_len(&l.text);
        }
        with_folds.push(l);
    }
    if total_old > shown_until && !with_folds.is_empty() {
        with_folds.push(DiffLine {
            kind: LineKind::Folded,
            text: format!("⋯ {} unchanged lines", total_old - shown_until),
        });
    }
    ResourceDiff {
        kind: crate::model::text::sanitize(&r.kind).into_owned(),
        namespace: crate::model::text::sanitize(&r.namespace).into_owned(),
        name: crate::model::text::sanitize(&r.name).into_owned(),
        summary: crate::model::text::sanitize(&summarize(r, added, removed)).into_owned(),
        lines: with_folds,
    }
}

fn hunk_old_start(h: &str) -> Option<usize> {
    h.strip_prefix("@@ -")?.split(',').next()?.parse().ok()
}

fn hunk_old_len(h: &str) -> usize {
    h.strip_prefix("@@ -")
        .and_then(|r| r.split(',').nth(1))
        .and_then(|r| r.split(' ').next())
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// Diffs for every resource, changed ones first.
pub fn diff_all(resources: &[ManagedResource]) -> Vec<ResourceDiff> {
    let mut v: Vec<ResourceDiff> = resources.iter().map(diff_resource).collect();
    v.sort_by_key(|d| !d.changed());
    v
}

/// A provider over one or more Argo CD sources of the same kind, keyed by instance.
pub struct ArgoProvider<A: ArgoSource + 'static> {
    pub sources: HashMap<String, Arc<A>>,
    /// Git mirrors for commits and diffs between revisions; None when Git is unavailable.
    pub git: Option<Arc<GitMirrors>>,
    pub label: String,
}

impl<A: ArgoSource + 'static> ArgoProvider<A> {
    pub fn new(sources: Vec<A>, git: Option<Arc<GitMirrors>>, label: String) -> Self {
        ArgoProvider {
            sources: sources
                .into_iter()
                .map(|s| (s.instance().to_string(), Arc::new(s)))
                .collect(),
            git,
            label,
        }
    }
}

/// Classify the lines of `git diff` output.
pub fn parse_unified(text: &str) -> Vec<DiffLine> {
    text.lines()
        .filter(|l| {
            !(l.starts_with("diff --git")
                || l.starts_with("index ")
                || l.starts_with("--- ")
                || l.starts_with("+++ "))
        })
        .map(|l| {
            let (kind, rest) = if let Some(r) = l.strip_prefix('+') {
                (LineKind::Added, r)
            } else if let Some(r) = l.strip_prefix('-') {
                (LineKind::Removed, r)
            } else if l.starts_with("@@") {
                (LineKind::Hunk, l)
            } else {
                (LineKind::Context, l.strip_prefix(' ').unwrap_or(l))
            };
            DiffLine {
                kind,
                text: crate::model::text::sanitize(rest).into_owned(),
            }
        })
        .collect()
}

async fn git_commits(
    git: Option<Arc<GitMirrors>>,
    app: &Application,
    from: &str,
    to: &str,
) -> Result<Vec<Commit>, String> {
    let git = git.ok_or_else(|| "Git is not available (no mirror directory)".to_string())?;
    let src = app
        .spec
        .primary_source()
        .ok_or_else(|| "the application has no source".to_string())?;
    let mirror = git.mirror(&src.repo_url, false).await.map_err(|e| e.to_string())?;
    let commits = mirror
        .commits_between(from, to, src.path.as_deref())
        .await
        .map_err(|e| e.to_string())?;
    Ok(commits
        .into_iter()
        .map(|c| Commit {
            sha: c.sha,
            author: c.author,
            when: c.time,
            subject: c.subject,
        })
        .collect())
}

async fn git_history_diff(
    git: Option<Arc<GitMirrors>>,
    app: &Application,
    id: i64,
) -> Result<Vec<ResourceDiff>, String> {
    let git = git.ok_or_else(|| "Git is not available (no mirror directory)".to_string())?;
    let entry = app
        .status
        .history
        .iter()
        .find(|h| h.id == id)
        .ok_or_else(|| format!("no deployment with id {id}"))?;
    let to = entry
        .revision
        .clone()
        .or_else(|| entry.revisions.first().cloned())
        .ok_or_else(|| format!("deployment {id} has no revision"))?;
    let from = crate::ops::estate::deployed_revision(app)
        .ok_or_else(|| "nothing deployed to compare with".to_string())?;
    let src = entry
        .source
        .as_ref()
        .or(app.spec.primary_source())
        .ok_or_else(|| "the application has no source".to_string())?;
    let path = src.path.clone().unwrap_or_default();
    let mirror = git.mirror(&src.repo_url, false).await.map_err(|e| e.to_string())?;
    let text = mirror
        .diff(from.as_str(), &to, &path)
        .await
        .map_err(|e| e.to_string())?;
    let lines = parse_unified(&text);
    let changed = lines
        .iter()
        .filter(|l| matches!(l.kind, LineKind::Added | LineKind::Removed))
        .count();
    Ok(vec![ResourceDiff {
        kind: "Manifests".into(),
        namespace: String::new(),
        name: crate::model::text::sanitize(&path).into_owned(),
        summary: if changed == 0 {
            "no difference".into()
        } else {
            format!(
                "{changed} lines change going back from {} to {}",
                from.short(),
                crate::model::Revision(to.clone()).short()
            )
        },
        lines,
    }])
}

fn not_yet(what: &str) -> String {
    format!("{what} is not available in this build yet")
}

impl<A: ArgoSource + 'static> Provider for ArgoProvider<A> {
    fn describe(&self) -> String {
        self.label.clone()
    }

    fn submit(
        &self,
        ticket: Ticket,
        req: Request,
        app: Option<Application>,
        tx: mpsc::Sender<Response>,
    ) -> Option<tokio::task::AbortHandle> {
        let source = req
            .app()
            .and_then(|id| self.sources.get(&id.instance).cloned());
        let git = self.git.clone();
        let send = move |tx: &mpsc::Sender<Response>, result: Result<Payload, String>| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(Response { ticket, result }).await;
            }
        };
        let (Some(source), Some(app)) = (source, app) else {
            let what = match &req {
                Request::Pipelines | Request::Runs | Request::Trigger { .. } => {
                    not_yet("CI (GitHub Actions, Jenkins)")
                }
                _ => "application not found (gone from its source?)".into(),
            };
            let _ = tx.try_send(Response {
                ticket,
                result: Err(what),
            });
            return None;
        };
        let task = tokio::spawn(async move {
            let r = match req {
                Request::Diff { .. } => source
                    .managed_resources(&app)
                    .await
                    .map(|rs| Payload::Diff(diff_all(&rs)))
                    .map_err(|e| e.to_string()),
                Request::Workloads { .. } => source
                    .workloads(&app)
                    .await
                    .map(Payload::Workloads)
                    .map_err(|e| e.to_string()),
                Request::WatchWorkloads { .. } => {
                    let (wtx, mut wrx) = mpsc::channel(16);
                    let handle = source.watch_workloads(&app, wtx);
                    while let Some(r) = wrx.recv().await {
                        send(&tx, r.map(Payload::Workloads).map_err(|e| e.to_string())).await;
                    }
                    handle.abort();
                    return;
                }
                Request::Events { .. } => source
                    .events(&app)
                    .await
                    .map(Payload::Events)
                    .map_err(|e| e.to_string()),
                Request::Permission { action, .. } => source
                    .can_i(&action, &app)
                    .await
                    .map(Payload::Allowed)
                    .map_err(|e| e.to_string()),
                Request::SyncWindows { .. } => source
                    .sync_windows(&app)
                    .await
                    .map(Payload::Windows)
                    .map_err(|e| e.to_string()),
                Request::Logs { namespace, pod, .. } => source
                    .pod_logs(&app, &namespace, &pod, 500)
                    .await
                    .map(Payload::LogLines)
                    .map_err(|e| e.to_string()),
                Request::Commits { from, to, .. } => git_commits(git, &app, &from, &to)
                    .await
                    .map(Payload::Commits),
                Request::CiRuns { .. } => Err(not_yet("CI runs")),
                Request::DiffToHistory { id, .. } => git_history_diff(git, &app, id)
                    .await
                    .map(Payload::Diff),
                Request::Sync { .. } | Request::Rollback { .. } => {
                    Err(not_yet("sync and rollback through the guarded actions"))
                }
                Request::Refresh { hard, .. } => source
                    .get_application(
                        &app.metadata.name,
                        if hard {
                            crate::sources::Refresh::Hard
                        } else {
                            crate::sources::Refresh::Normal
                        },
                    )
                    .await
                    .map(|_| Payload::Accepted("refresh requested".into()))
                    .map_err(|e| e.to_string()),
                _ => Err(not_yet("this request")),
            };
            send(&tx, r).await;
        });
        Some(task.abort_handle())
    }
}


#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deploy(image: &str, replicas: u32) -> Value {
        json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"api","namespace":"shop","resourceVersion":"7"},
               "spec":{"replicas":replicas,"template":{"spec":{"containers":[{"name":"api","image":image}]}}},
               "status":{"replicas":2}})
    }

    #[test]
    fn summary_names_image_and_replicas() {
        let r = ManagedResource {
            kind: "Deployment".into(),
            name: "api".into(),
            target: Some(deploy("reg/api:sha-2", 3)),
            live: Some(deploy("reg/api:sha-1", 2)),
            ..Default::default()
        };
        let d = diff_resource(&r);
        assert_eq!(d.summary, "image api sha-1 -> sha-2; replicas 2 -> 3");
        assert!(d.changed());
        assert!(
            d.lines
                .iter()
                .any(|l| l.kind == LineKind::Added && l.text.contains("sha-2"))
        );
        assert!(!d.lines.iter().any(|l| l.text.contains("resourceVersion")));
    }

    #[test]
    fn create_and_prune_are_said() {
        let r = ManagedResource {
            kind: "ConfigMap".into(),
            name: "cfg".into(),
            target: Some(json!({"data":{"a":"1"}})),
            ..Default::default()
        };
        assert_eq!(diff_resource(&r).summary, "ConfigMap cfg will be created");
    }
}
