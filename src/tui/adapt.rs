//! A [`Provider`] over any [`ArgoSource`]: each request a screen makes goes to the source,
//! the Git mirrors, CI or the `ops` actions, and the answer comes back in the types those
//! rooms define (the ops diff engine's `AppDiff`, the model's `Commit`, the ops
//! `Approval`); nothing is translated or re-parsed on the way.

use super::request::{Commit, Payload, Provider, Request, Response, Ticket};
use crate::model::Application;
use crate::ops::actions::{ActionOutcome, Ops, RollbackOptions, SyncOptions};
use crate::sources::ArgoSource;
use crate::sources::git::GitMirrors;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::mpsc;

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
    /// How long a started sync or rollback is followed (`[poll] follow_deadline_seconds`).
    pub follow_deadline: std::time::Duration,
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
            follow_deadline: crate::ops::actions::follow::DEFAULT_DEADLINE,
        }
    }

    /// The follower's deadline, the same one headless `--wait` uses.
    pub fn with_follow_deadline(mut self, d: std::time::Duration) -> Self {
        self.follow_deadline = d;
        self
    }

    pub fn with_ci(mut self, ci: crate::connect::Ci) -> Self {
        self.ci = Some(Arc::new(ci));
        self
    }
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
    mirror
        .commits_between(from, to, src.path.as_deref())
        .await
        .map_err(|e| e.to_string())
}

/// A four-eyes request written is not a failure: nothing was sent, and the screen says
/// what waits for whom.
fn requested_or(e: crate::ops::actions::ActionError) -> Result<Payload, String> {
    match e {
        crate::ops::actions::ActionError::Refused(
            r @ crate::ops::policy::Refusal::AwaitingSecondApprover(_),
        ) => Ok(Payload::Requested(r.to_string())),
        e => Err(e.to_string()),
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

/// Follow a started sync or rollback to its end in the background with the one follower
/// (`ops::actions::follow`), record the final outcome in the audit log (screens may
/// close; the record still ends), and answer the same ticket a second time with how it
/// ended: `Ok(Accepted("✓ ..."))` or `Err(why)`.
fn follow_to_end<A: ArgoSource + 'static>(
    source: Arc<A>,
    ops: Arc<Ops>,
    outcome: ActionOutcome,
    deadline: std::time::Duration,
    ticket: Ticket,
    tx: mpsc::Sender<Response>,
) {
    tokio::spawn(async move {
        let r = crate::ops::actions::follow_operation(
            &*source,
            &ops,
            &outcome,
            deadline,
            std::time::Duration::from_secs(1),
        )
        .await;
        let line = crate::ops::actions::follow::outcome_line(&outcome.id.name, outcome.action, &r);
        let result = match r {
            Ok(_) => Ok(Payload::Accepted(line)),
            Err(e) => Err(e.to_string()),
        };
        let _ = tx.send(Response { ticket, result }).await;
    });
}

/// A run's bump commits in the GitOps repos the apps deploy from, and where the image
/// goes next.
async fn run_produced<A: ArgoSource>(
    sources: &[Arc<A>],
    git: Option<Arc<GitMirrors>>,
    ops: &Ops,
    id: u64,
) -> Result<Payload, String> {
    let git = git.ok_or("Git is not available: the run's bump commit cannot be read")?;
    let mut apps = Vec::new();
    for s in sources {
        apps.extend(s.list_applications().await.map_err(|e| e.to_string())?);
    }
    let produced = crate::ops::actions::produced::produced_by(&git, &apps, id)
        .await
        .map_err(|e| e.to_string())?;
    let next = crate::ops::actions::produced::next_stops(ops, &produced, &apps);
    Ok(Payload::Produced { produced, next })
}

/// Freeze, unfreeze or list freezes over every instance (the environment may span several).
async fn freeze_task<A: crate::ops::freeze::Projects>(
    sources: &[Arc<A>],
    ops: &Ops,
    req: Request,
) -> Result<Payload, String> {
    use crate::ops::actions::ActionError;
    use crate::ops::freeze;
    let mut done = Vec::new();
    let mut missing = None;
    for s in sources {
        let r = match &req {
            Request::Freezes { projects } => {
                let mine = projects
                    .iter()
                    .filter(|(instance, _)| instance == s.instance())
                    .map(|(_, p)| p.clone());
                done.extend(
                    freeze::active_freezes_in(&**s, mine)
                        .await
                        .into_iter()
                        .map(|m| (m, Vec::new())),
                );
                continue;
            }
            Request::Freeze { env, reason, until } => {
                freeze::freeze(&**s, ops, env, reason, *until).await
            }
            Request::Unfreeze { env, approval } => {
                freeze::unfreeze(&**s, ops, env, approval.as_ref()).await
            }
            _ => return Err(not_yet("this request")),
        };
        match r {
            Ok(o) => done.push((
                o.mark.clone().unwrap_or(freeze::FreezeMark {
                    env: o.env.clone(),
                    by: ops.operator.clone(),
                    at: None,
                    until: None,
                    reason: String::new(),
                }),
                o.projects,
            )),
            Err(ActionError::NotFound(m)) => missing = Some(m),
            Err(e) => return Err(e.to_string()),
        }
    }
    match req {
        Request::Freezes { .. } => Ok(Payload::Freezes(done.into_iter().map(|(m, _)| m).collect())),
        _ if done.is_empty() => Err(missing.unwrap_or_else(|| "nothing to do".into())),
        Request::Freeze { env, .. } => {
            let projects: Vec<String> = done.into_iter().flat_map(|(_, p)| p).collect();
            Ok(Payload::Accepted(format!(
                "✓ {env} frozen: a deny window on project(s) {}; Argo CD refuses its syncs until :unfreeze {env}",
                projects.join(", ")
            )))
        }
        Request::Unfreeze { env, .. } => {
            let projects: Vec<String> = done.into_iter().flat_map(|(_, p)| p).collect();
            Ok(Payload::Accepted(format!(
                "✓ {env} unfrozen: the freeze window is gone from project(s) {}",
                projects.join(", ")
            )))
        }
        _ => Err(not_yet("this request")),
    }
}

impl<A: ArgoSource + 'static> ArgoProvider<A> {
    /// `:metrics`: the one computation `shipdeck metrics` runs, over the estate's apps.
    fn metrics(
        &self,
        ticket: Ticket,
        apps: Vec<super::request::MetricsApp>,
        since: chrono::Duration,
        window: chrono::Duration,
        tx: mpsc::Sender<Response>,
    ) -> tokio::task::JoinHandle<()> {
        let sources = self.sources.clone();
        let git = self.git.clone();
        let ops = self.ops.clone();
        tokio::spawn(async move {
            let audit = ops.audit.read_all().map_err(|e| e.to_string());
            let audit_ref = audit.as_deref().map_err(String::as_str);
            let now = chrono::Utc::now();
            let params = crate::ops::metrics::Params {
                since: now - since,
                now,
                window,
            };
            let entries: Vec<(Arc<A>, &super::request::MetricsApp)> = apps
                .iter()
                .filter_map(|a| sources.get(&a.id.instance).map(|s| (s.clone(), a)))
                .collect();
            let refs: Vec<(&A, &Application, &str, &str)> = entries
                .iter()
                .map(|(s, a)| (&**s, &a.app, a.service.as_str(), a.environment.as_str()))
                .collect();
            let report =
                crate::ops::metrics::gather::report_of(&refs, git.as_deref(), audit_ref, &params)
                    .await;
            let _ = tx
                .send(Response {
                    ticket,
                    result: Ok(Payload::Metrics(report)),
                })
                .await;
        })
    }
}

fn not_yet(what: &str) -> String {
    format!("{what} is not available in this build yet")
}

impl<A: crate::ops::freeze::Projects + crate::ops::prune::Annotate + 'static> Provider
    for ArgoProvider<A>
{
    fn describe(&self) -> String {
        self.label.clone()
    }

    fn notices(&self) -> Vec<String> {
        self.ops
            .audit
            .notifier()
            .map(|n| n.take_warnings())
            .unwrap_or_default()
    }

    fn has_notices(&self) -> bool {
        self.ops.audit.notifier().is_some()
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
        let deadline = self.follow_deadline;
        let follow_tx = tx.clone();
        if matches!(
            req,
            Request::PromotePrepare { .. }
                | Request::PromotePush { .. }
                | Request::PromoteCancel { .. }
        ) {
            return Some(super::promote::task(git, ops, ticket, req, tx).abort_handle());
        }
        if matches!(
            req,
            Request::Freeze { .. } | Request::Unfreeze { .. } | Request::Freezes { .. }
        ) {
            let sources: Vec<Arc<A>> = self.sources.values().cloned().collect();
            let task = tokio::spawn(async move {
                let result = freeze_task(&sources, &ops, req).await;
                let _ = tx.send(Response { ticket, result }).await;
            });
            return Some(task.abort_handle());
        }
        if let Request::RunProduced { id } = req {
            let sources: Vec<Arc<A>> = self.sources.values().cloned().collect();
            let task = tokio::spawn(async move {
                let result = run_produced(&sources, git, &ops, id).await;
                let _ = tx.send(Response { ticket, result }).await;
            });
            return Some(task.abort_handle());
        }
        if let Request::Metrics {
            apps,
            since,
            window,
        } = req
        {
            return Some(self.metrics(ticket, apps, since, window, tx).abort_handle());
        }
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
                    .map(Payload::Diff)
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
                    if !follow {
                        let r = source.pod_logs(&app, &namespace, &pod, 500).await;
                        send(&tx, r.map(Payload::LogLines).map_err(|e| e.to_string())).await;
                        return;
                    }
                    // The first batch comes even when empty (the pod wrote nothing), then
                    // new lines; ends when the screen closes (abort) or the stream does.
                    let (ltx, mut lrx) = mpsc::channel(16);
                    let follower = source.follow_pod_logs(&app, &namespace, &pod, 500, ltx);
                    let forward = async {
                        while let Some(r) = lrx.recv().await {
                            send(&tx, r.map(Payload::LogLines).map_err(|e| e.to_string())).await;
                        }
                    };
                    tokio::join!(follower, forward);
                    return;
                }
                Request::Commits { from, to, .. } => git_commits(git, &app, &from, &to)
                    .await
                    .map(Payload::Commits),
                Request::CiRuns { sha, .. } => super::ci::runs_for_sha(ci, &sha).await,
                Request::HistoryImages { .. } => {
                    crate::ops::plan::history_images(git.as_deref(), &app)
                        .await
                        .map(Payload::HistoryImages)
                        .ok_or_else(|| "Git cannot tell this app's images".to_string())
                }
                Request::DiffToHistory { id, .. } => {
                    crate::ops::actions::rollback_diff_of(&*source, &app, Some(id))
                        .await
                        .map(Payload::Diff)
                        .map_err(|e| e.to_string())
                }
                Request::Sync { approval, .. } => {
                    let opts = SyncOptions {
                        approval,
                        ..Default::default()
                    };
                    crate::ops::actions::sync(&*source, &ops, &app.metadata.name, opts)
                        .await
                        .map(|o| {
                            follow_to_end(
                                source.clone(),
                                ops.clone(),
                                o.clone(),
                                deadline,
                                ticket,
                                follow_tx.clone(),
                            );
                            Payload::Accepted(outcome_words("sync", &app, &o))
                        })
                        .or_else(requested_or)
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
                        approval,
                        ..Default::default()
                    };
                    crate::ops::actions::rollback(&*source, &ops, &app.metadata.name, opts)
                        .await
                        .map(|o| {
                            follow_to_end(
                                source.clone(),
                                ops.clone(),
                                o.clone(),
                                deadline,
                                ticket,
                                follow_tx.clone(),
                            );
                            Payload::Accepted(outcome_words("rollback", &app, &o))
                        })
                        .or_else(requested_or)
                }
                Request::Approve {
                    request, approval, ..
                } => {
                    let opts = crate::ops::actions::ApproveOptions {
                        request: Some(request),
                        approval,
                        dry_run: false,
                        disable_auto_sync: app.auto_sync(),
                    };
                    crate::ops::actions::approve(&*source, &ops, &app.metadata.name, opts)
                        .await
                        .map(|o| {
                            follow_to_end(
                                source.clone(),
                                ops.clone(),
                                o.clone(),
                                deadline,
                                ticket,
                                follow_tx.clone(),
                            );
                            Payload::Accepted(outcome_words(o.action, &app, &o))
                        })
                        .map_err(|e| e.to_string())
                }
                Request::Identity { .. } => source
                    .identity()
                    .await
                    .map(Payload::Identity)
                    .map_err(|e| e.to_string()),
                Request::AutoSync {
                    enabled, approval, ..
                } => crate::ops::actions::auto_sync(
                    &*source,
                    &ops,
                    &app.metadata.name,
                    enabled,
                    approval,
                )
                .await
                .map(|a| {
                    Payload::Accepted(format!(
                        "✓ auto-sync of {} is {}",
                        a.metadata.name,
                        if a.auto_sync() { "on" } else { "off" }
                    ))
                })
                .map_err(|e| e.to_string()),
                Request::ConfirmPrune { approval, .. } => crate::ops::prune::confirm(
                    &*source,
                    &ops,
                    &app.metadata.name,
                    approval.as_ref(),
                )
                .await
                .map(|w| {
                    Payload::Accepted(format!(
                        "✓ prune of {} confirmed; the sync goes ahead and deletes {}",
                        app.metadata.name,
                        w.resources.join(", ")
                    ))
                })
                .map_err(|e| e.to_string()),
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
