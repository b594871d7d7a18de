//! Gathering one app's delivery record from the sources: Argo CD (history, operation state,
//! the Application's events), Git (commit times, trailers, bump commits on the app's path)
//! and the audit log (syncs, rollbacks, failed operations).

use super::{AppRecord, Deploy, Failure, FailureKind, HealthChange, LeadStart, Seen};
use crate::model::{Application, Commit};
use crate::ops::audit::AuditRecord;
use crate::sources::ArgoSource;
use crate::sources::git::{GitMirrors, Mirror};
use chrono::{DateTime, Utc};
use std::collections::HashMap;

/// Argo CD's default `revisionHistoryLimit`.
pub const DEFAULT_HISTORY_LIMIT: i64 = 10;
/// Bump commits read per app from Git.
const GIT_LOG_LIMIT: usize = 2_000;

pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// `Updated health status: Healthy -> Degraded` -> `Degraded`.
pub fn health_change(message: &str) -> Option<String> {
    let rest = message.strip_prefix("Updated health status:")?;
    let (_, to) = rest.split_once("->")?;
    let to = to.trim();
    (!to.is_empty()).then(|| to.to_string())
}

/// Commits of the app's path on its branch, by sha, and a lookup for others.
struct GitView {
    mirror: Mirror,
    path: Option<String>,
    by_sha: HashMap<String, Commit>,
    /// The newest commit touching the app's path at a revision, by revision.
    change_at: HashMap<String, Option<Commit>>,
    path_log: Vec<Commit>,
}

impl GitView {
    async fn open(git: &GitMirrors, app: &Application) -> Result<GitView, String> {
        let src = app
            .spec
            .primary_source()
            .ok_or("the app has no source in Git")?;
        let mirror = git
            .mirror(&src.repo_url, false)
            .await
            .map_err(|e| e.to_string())?;
        let branch = src
            .target_revision
            .clone()
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| "HEAD".into());
        let path_log = mirror
            .log(&branch, src.path.as_deref(), GIT_LOG_LIMIT)
            .await
            .map_err(|e| e.to_string())?;
        let by_sha = path_log
            .iter()
            .map(|c| (c.sha.clone(), c.clone()))
            .collect();
        Ok(GitView {
            mirror,
            path: src.path.clone(),
            by_sha,
            change_at: HashMap::new(),
            path_log,
        })
    }

    async fn commit(&mut self, rev: &str) -> Option<Commit> {
        if let Some(c) = self.by_sha.get(rev) {
            return Some(c.clone());
        }
        let c = self
            .mirror
            .log(rev, None, 1)
            .await
            .ok()?
            .into_iter()
            .next()?;
        self.by_sha.insert(rev.to_string(), c.clone());
        Some(c)
    }

    /// Commit time of a revision itself.
    async fn time_of(&mut self, rev: &str) -> Option<DateTime<Utc>> {
        let c = self.commit(rev).await?;
        parse_time(&c.time)
    }

    /// The change a revision deployed: the newest commit at it touching the app's path
    /// (Argo CD deploys the branch head; a later commit elsewhere is not this app's change).
    async fn change(&mut self, rev: &str) -> Option<Commit> {
        if let Some(c) = self.change_at.get(rev) {
            return c.clone();
        }
        let c = match self.path.as_deref() {
            Some(p) => self
                .mirror
                .log(rev, Some(p), 1)
                .await
                .ok()
                .and_then(|v| v.into_iter().next()),
            None => self.commit(rev).await,
        };
        self.change_at.insert(rev.to_string(), c.clone());
        c
    }

    /// When the change a revision deployed was committed: the `Source-Commit:` trailer's
    /// commit when this repository has it, else the app's change at that revision.
    async fn committed(&mut self, rev: &str) -> Option<(DateTime<Utc>, LeadStart)> {
        let c = self.change(rev).await?;
        let source = c.body.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("source-commit")
                .then(|| v.trim().to_string())
        });
        if let Some(s) = source.filter(|s| !s.is_empty())
            && let Some(sc) = self.commit(&s).await
            && let Some(t) = parse_time(&sc.time)
        {
            return Some((t, LeadStart::SourceCommit));
        }
        parse_time(&c.time).map(|t| (t, LeadStart::RevisionCommit))
    }
}

/// One app's record. `audit` is the whole audit log (or why it cannot be read).
pub async fn gather<S: ArgoSource>(
    src: &S,
    app: &Application,
    service: &str,
    environment: &str,
    git: Option<&GitMirrors>,
    audit: Result<&[AuditRecord], &str>,
) -> AppRecord {
    let name = app.metadata.name.clone();
    let mut r = AppRecord {
        app: name.clone(),
        service: service.to_string(),
        environment: environment.to_string(),
        health_now: app.status.health.status.as_str().to_string(),
        history_limit: app
            .spec
            .revision_history_limit
            .unwrap_or(DEFAULT_HISTORY_LIMIT),
        history_len: app.status.history.len(),
        ..Default::default()
    };
    let mut view = match git {
        None => {
            r.git_unknown = Some("no Git mirror is configured".into());
            None
        }
        Some(g) => match GitView::open(g, app).await {
            Ok(v) => Some(v),
            Err(e) => {
                r.git_unknown = Some(crate::model::text::sanitize(&e).into_owned());
                None
            }
        },
    };

    // Argo CD history, oldest first.
    let mut history: Vec<_> = app.status.history.iter().collect();
    history.sort_by_key(|h| h.id);
    let mut revisions_before: Vec<String> = Vec::new();
    let mut oldest: Option<DateTime<Utc>> = None;
    for h in history {
        let Some(at) = h.deployed_at.as_deref().and_then(parse_time) else {
            r.notes.push(format!(
                "history entry {} has no deployedAt; not counted",
                h.id
            ));
            continue;
        };
        let Some(rev) = h.revision.clone().or_else(|| h.revisions.first().cloned()) else {
            continue;
        };
        oldest = Some(oldest.map_or(at, |o| o.min(at)));
        // Returning to a revision an older entry ran (not the one just before), or to a
        // revision committed before the one running, is a rollback.
        let mut rollback = revisions_before.last() != Some(&rev) && revisions_before.contains(&rev);
        if let (Some(v), Some(prev)) = (view.as_mut(), revisions_before.last())
            && !rollback
            && prev != &rev
        {
            let prev = prev.clone();
            if let (Some(p), Some(t)) = (v.time_of(&prev).await, v.time_of(&rev).await) {
                rollback = t < p;
            }
        }
        let committed = match view.as_mut() {
            Some(v) => v.committed(&rev).await,
            None => None,
        };
        r.deploys.push(Deploy {
            at,
            revision: rev.clone(),
            seen: Seen::History,
            committed,
            rollback,
        });
        revisions_before.push(rev);
    }
    let truncated = r.history_len as i64 >= r.history_limit;

    // Before Argo CD's oldest entry: auto-synced apps deployed each commit on their path.
    if truncated
        && app.auto_sync()
        && let (Some(v), Some(oldest)) = (view.as_ref(), oldest)
    {
        for c in &v.path_log {
            if let Some(t) = parse_time(&c.time)
                && t < oldest
            {
                r.deploys.push(Deploy {
                    at: t,
                    revision: c.sha.clone(),
                    seen: Seen::Git,
                    // When Argo CD applied it is not recorded: no lead time.
                    committed: None,
                    rollback: false,
                });
            }
        }
    }

    // The audit log: this console's syncs, rollbacks and failed operations.
    match audit {
        Err(why) => {
            r.signals_unknown = Some(format!("the audit log cannot be read: {why}"));
        }
        Ok(records) => {
            for a in records
                .iter()
                .filter(|a| a.app == name && a.environment == environment && !a.dry_run)
            {
                let failed = matches!(a.outcome.as_str(), "failed" | "timed-out");
                let done = a.outcome == "succeeded";
                match a.action.as_str() {
                    "sync" | "rollback" if failed => r.failures.push(Failure {
                        at: a.at,
                        kind: FailureKind::FailedOperation,
                    }),
                    "rollback" if done => r.failures.push(Failure {
                        at: a.at,
                        kind: FailureKind::Rollback,
                    }),
                    "sync" if done && truncated && oldest.is_some_and(|o| a.at < o) => {
                        let committed = match (view.as_mut(), a.to_revision.as_ref()) {
                            (Some(v), Some(rev)) => v.committed(rev.as_str()).await,
                            _ => None,
                        };
                        r.deploys.push(Deploy {
                            at: a.at,
                            revision: a
                                .to_revision
                                .as_ref()
                                .map(|x| x.as_str().to_string())
                                .unwrap_or_default(),
                            seen: Seen::Audit,
                            committed,
                            rollback: false,
                        });
                    }
                    _ => {}
                }
            }
        }
    }

    // The operation Argo CD last ran.
    if let Some(op) = &app.status.operation_state
        && matches!(
            op.phase,
            crate::model::OperationPhase::Failed | crate::model::OperationPhase::Error
        )
        && let Some(at) = op
            .finished_at
            .as_deref()
            .or(op.started_at.as_deref())
            .and_then(parse_time)
    {
        r.failures.push(Failure {
            at,
            kind: FailureKind::FailedOperation,
        });
    }

    // The Application's events: health changes and failed operations.
    match src.events(app).await {
        Err(e) => {
            let why = format!(
                "Argo CD events: {}",
                crate::model::text::sanitize(&e.to_string())
            );
            r.signals_unknown = Some(match r.signals_unknown.take() {
                Some(a) => format!("{a}; {why}"),
                None => why,
            });
        }
        Ok(events) => {
            // The Application's own events (an app-of-apps' resources are Applications too).
            let own = format!("Application/{name}");
            for e in events.iter().filter(|e| e.object == own) {
                let Some(at) = e.last_seen.as_deref().and_then(parse_time) else {
                    continue;
                };
                if let Some(to) = health_change(&e.message) {
                    r.health.push(HealthChange { at, to });
                } else if e.reason == "OperationCompleted"
                    && (e.event_type == "Warning" || e.message.contains(" failed"))
                {
                    r.failures.push(Failure {
                        at,
                        kind: FailureKind::FailedOperation,
                    });
                }
            }
        }
    }
    if r.health_now == "Degraded" && !r.health.iter().any(|h| h.to == "Degraded") {
        r.notes
            .push("Degraded now, and no event says since when".to_string());
    }
    r
}

/// The figures of every app of `estate` (the CLI's and the console's one computation):
/// sorted by service, then environment in promotion order.
pub async fn report<S: ArgoSource>(
    backends: &[S],
    estate: &crate::ops::estate::Estate,
    git: Option<&GitMirrors>,
    audit: Result<&[AuditRecord], &str>,
    params: &super::Params,
) -> super::Report {
    let mut entries: Vec<&crate::ops::estate::AppEntry> = estate.apps().collect();
    entries.sort_by(|a, b| {
        (a.service.as_str(), a.environment.rank, a.id.name.as_str()).cmp(&(
            b.service.as_str(),
            b.environment.rank,
            b.id.name.as_str(),
        ))
    });
    // Each app decoded once (the estate keeps them packed).
    let apps: Vec<(&S, Application, &str, &str)> = entries
        .iter()
        .filter_map(|e| {
            let src = backends.iter().find(|b| b.instance() == e.id.instance)?;
            Some((
                src,
                e.app(),
                e.service.as_str(),
                e.environment.name.as_str(),
            ))
        })
        .collect();
    let list: Vec<(&S, &Application, &str, &str)> = apps
        .iter()
        .map(|(s, a, sv, env)| (*s, a, *sv, *env))
        .collect();
    report_of(&list, git, audit, params).await
}

/// The figures of these apps (source, app, service, environment), in this order.
pub async fn report_of<S: ArgoSource>(
    apps: &[(&S, &Application, &str, &str)],
    git: Option<&GitMirrors>,
    audit: Result<&[AuditRecord], &str>,
    params: &super::Params,
) -> super::Report {
    // Four apps at a time (each reads its events and Git); a plain loop keeps the future
    // Send for the console's task.
    let mut out: Vec<super::Figures> = Vec::with_capacity(apps.len());
    for chunk in apps.chunks(4) {
        let mut futs = Vec::with_capacity(chunk.len());
        for (src, app, service, env) in chunk {
            futs.push(gather(*src, app, service, env, git, audit));
        }
        for r in futures::future::join_all(futs).await {
            out.push(super::figures(&r, params));
        }
    }
    let apps = out;
    super::Report {
        since: super::ts(params.since),
        until: super::ts(params.now),
        window_seconds: params.window.num_seconds(),
        apps,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_health_changes() {
        assert_eq!(
            health_change("Updated health status: Healthy -> Degraded").as_deref(),
            Some("Degraded")
        );
        assert_eq!(
            health_change("Updated sync status: Synced -> OutOfSync"),
            None
        );
    }
}
