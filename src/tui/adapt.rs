//! Narrow adapters between the console and the rooms it depends on: the approval policy by
//! environment, turning managed resources into per-resource diffs with one-line summaries,
//! and a [`Provider`] over any [`ArgoSource`]. Each piece is small on purpose so it can be
//! swapped for the `ops` engine (policy, diff, guarded actions) without touching screens.

use super::request::{
    Commit, DiffLine, LineKind, Payload, Provider, Request, ResourceDiff, Response, Ticket,
};
use crate::model::Application;
use crate::ops::actions::{ActionOutcome, Ops, RollbackOptions, SyncOptions};
use crate::sources::ArgoSource;
use crate::sources::git::GitMirrors;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::mpsc;

/// The ops diff engine's answer in the shape screens draw: one entry per resource, changed
/// ones first, with the unified diff split into classified lines.
pub fn from_app_diff(d: &crate::ops::diff::AppDiff) -> Vec<ResourceDiff> {
    use crate::ops::diff::Change;
    let mut v: Vec<ResourceDiff> = d
        .resources
        .iter()
        .map(|r| {
            let summary = match r.change {
                Change::Create => format!("{} {} will be created", r.key.kind, r.key.name),
                Change::Prune => format!("{} {} will be pruned", r.key.kind, r.key.name),
                Change::Unchanged => "no difference".into(),
                Change::Modify if r.summary.is_empty() => "changed".into(),
                Change::Modify => r.summary.join("; "),
            };
            ResourceDiff {
                kind: crate::model::text::sanitize(&r.key.kind).into_owned(),
                namespace: crate::model::text::sanitize(&r.key.namespace).into_owned(),
                name: crate::model::text::sanitize(&r.key.name).into_owned(),
                summary: crate::model::text::sanitize(&summary).into_owned(),
                lines: parse_unified(&r.unified),
            }
        })
        .collect();
    v.sort_by_key(|d| !d.changed());
    v
}

/// A provider over one or more Argo CD sources of the same kind, keyed by instance.
pub struct ArgoProvider<A: ArgoSource + 'static> {
    pub sources: HashMap<String, Arc<A>>,
    /// Guards, approvals and audit: every mutation goes through these actions.
    pub ops: Arc<Ops>,
    /// Git mirrors for commits and diffs between revisions; None when Git is unavailable.
    pub git: Option<Arc<GitMirrors>>,
    /// GitHub Actions and Jenkins; None when neither is configured.
    pub ci: Option<Arc<crate::connect::Ci>>,
    pub label: String,
}

impl<A: ArgoSource + 'static> ArgoProvider<A> {
    pub fn new(sources: Vec<A>, ops: Ops, git: Option<Arc<GitMirrors>>, label: String) -> Self {
        ArgoProvider {
            ops: Arc::new(ops),
            sources: sources
                .into_iter()
                .map(|s| (s.instance().to_string(), Arc::new(s)))
                .collect(),
            git,
            ci: None,
            label,
        }
    }

    pub fn with_ci(mut self, ci: crate::connect::Ci) -> Self {
        self.ci = Some(Arc::new(ci));
        self
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
    let mirror = git
        .mirror(&src.repo_url, false)
        .await
        .map_err(|e| e.to_string())?;
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
    let mirror = git
        .mirror(&src.repo_url, false)
        .await
        .map_err(|e| e.to_string())?;
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

/// The console's approval as ops takes it: the name the operator typed is the app's name
/// (the approval screen refuses anything else).
fn ops_approval(a: super::request::Approval, app: &Application) -> crate::ops::approval::Approval {
    crate::ops::approval::Approval {
        named_app: app.metadata.name.clone(),
        reason: a.reason,
        operator: a.approved_by,
    }
}

fn outcome_words(what: &str, app: &Application, o: &ActionOutcome) -> String {
    let mut s = format!("{what} of {} sent", app.metadata.name);
    if let Some(a) = &o.approval {
        s.push_str(&format!(" (approval {})", a.id));
    }
    for n in &o.notes {
        s.push_str("; ");
        s.push_str(n);
    }
    s
}

/// Follow a started sync or rollback to its end in the background and record the final
/// outcome in the audit log (screens may close; the record still ends).
fn follow_to_end<A: ArgoSource + 'static>(source: Arc<A>, ops: Arc<Ops>, outcome: ActionOutcome) {
    tokio::spawn(async move {
        let _ = crate::ops::actions::follow_operation(
            &*source,
            &ops,
            &outcome,
            std::time::Duration::from_secs(30 * 60),
            std::time::Duration::from_secs(1),
        )
        .await;
    });
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
        let ops = self.ops.clone();
        if req.app().is_none() {
            return Some(super::ci::task(self.ci.clone(), ops, ticket, req, tx).abort_handle());
        }
        let ci = self.ci.clone();
        let send = move |tx: &mpsc::Sender<Response>, result: Result<Payload, String>| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(Response { ticket, result }).await;
            }
        };
        let (Some(source), Some(app)) = (source, app) else {
            let what = "application not found (gone from its source?)".to_string();
            let _ = tx.try_send(Response {
                ticket,
                result: Err(what),
            });
            return None;
        };
        let task = tokio::spawn(async move {
            let r = match req {
                Request::Diff { .. } => crate::ops::actions::diff_of(&*source, &app)
                    .await
                    .map(|d| Payload::Diff(from_app_diff(&d)))
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
                Request::Logs {
                    namespace,
                    pod,
                    follow,
                    ..
                } => {
                    // Follow by asking for the tail again and sending only what is new
                    // after the last line seen; stops when the screen closes (abort).
                    let mut seen: Option<String> = None;
                    loop {
                        let r = source.pod_logs(&app, &namespace, &pod, 500).await;
                        let lines = match r {
                            Ok(l) => l,
                            Err(e) => {
                                send(&tx, Err(e.to_string())).await;
                                return;
                            }
                        };
                        let start = seen
                            .as_ref()
                            .and_then(|s| lines.iter().rposition(|l| l == s))
                            .map_or(0, |i| i + 1);
                        let fresh: Vec<String> = lines[start..].to_vec();
                        if let Some(last) = lines.last() {
                            seen = Some(last.clone());
                        }
                        if !fresh.is_empty() || !follow {
                            send(&tx, Ok(Payload::LogLines(fresh))).await;
                        }
                        if !follow {
                            return;
                        }
                        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                    }
                }
                Request::Commits { from, to, .. } => git_commits(git, &app, &from, &to)
                    .await
                    .map(Payload::Commits),
                Request::CiRuns { sha, .. } => super::ci::runs_for_sha(ci, &sha).await,
                Request::DiffToHistory { id, .. } => {
                    git_history_diff(git, &app, id).await.map(Payload::Diff)
                }
                Request::Sync { approval, .. } => {
                    let opts = SyncOptions {
                        approval: approval.map(|a| ops_approval(a, &app)),
                        ..Default::default()
                    };
                    crate::ops::actions::sync(&*source, &ops, &app.metadata.name, opts)
                        .await
                        .map(|o| {
                            follow_to_end(source.clone(), ops.clone(), o.clone());
                            Payload::Accepted(outcome_words("sync", &app, &o))
                        })
                        .map_err(|e| e.to_string())
                }
                Request::Rollback {
                    id,
                    approval,
                    disable_auto_sync,
                    ..
                } => {
                    let opts = RollbackOptions {
                        id: Some(id),
                        disable_auto_sync,
                        approval: approval.map(|a| ops_approval(a, &app)),
                        ..Default::default()
                    };
                    crate::ops::actions::rollback(&*source, &ops, &app.metadata.name, opts)
                        .await
                        .map(|o| {
                            follow_to_end(source.clone(), ops.clone(), o.clone());
                            Payload::Accepted(outcome_words("rollback", &app, &o))
                        })
                        .map_err(|e| e.to_string())
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

    #[test]
    fn unified_lines_are_classified_and_headers_dropped() {
        let text = "diff --git a/x b/x\nindex 1..2\n--- a/x\n+++ b/x\n@@ -1,2 +1,2 @@\n kind: A\n-image: a:1\n+image: a:2\n";
        let l = parse_unified(text);
        let kinds: Vec<LineKind> = l.iter().map(|l| l.kind).collect();
        assert_eq!(
            kinds,
            [
                LineKind::Hunk,
                LineKind::Context,
                LineKind::Removed,
                LineKind::Added
            ]
        );
        assert_eq!(l[3].text, "image: a:2");
    }
}
