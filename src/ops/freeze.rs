//! Incident freeze: a `deny` sync window that shipdeck adds to the AppProjects of an
//! environment's apps, so that Argo CD itself refuses syncs of those apps from every client
//! (UI, CLI, auto-sync, a plain `kubectl patch` of `.operation`) until `unfreeze` removes
//! exactly that window.
//!
//! - The window names the environment's apps in that project (`applications`), is
//!   `manualSync: false` (manual syncs are refused too), and is marked as shipdeck's by its
//!   `description` (Argo CD's SyncWindow field for free text): `shipdeck-freeze env=ENV
//!   by=WHO at=WHEN until=UNTIL: REASON`. Unfreeze removes only windows with that mark for
//!   that environment; other windows stay as they are.
//! - "Until further notice" is written the way Argo CD's own docs show an always-open
//!   window: schedule `* * * * *` with duration `1h` (a start every minute, each open an
//!   hour). `--until` is a one-off window: its schedule names the minute before the freeze
//!   began (`M H D MON *`, UTC) and its duration reaches the until time (whole minutes, up).
//!   Cron has no year, so such a window would open again on that date next year: a freeze
//!   longer than 364 days is refused (use an open-ended one), and unfreeze removes it.
//! - Freezing needs no approval (it is the safe direction); unfreezing a gated environment
//!   needs one as a sync does (the environment's name typed again; a reason where the policy
//!   is `required`). Read-only refuses both. Both are audited (`freeze`, `unfreeze`).
//! - Writes carry the resourceVersion read; a 409 (someone else changed the project) is read
//!   again and retried a few times, never written blind.

use super::actions::{ActionError, Ops};
use super::approval::Approval;
use super::audit::AuditRecord;
use super::policy::Refusal;
use crate::model::{Application, SyncWindow};
use crate::sources::{ArgoSource, Backend, SourceError};
use chrono::{DateTime, Duration, DurationRound, Utc};
use serde_json::Value;
use std::collections::BTreeMap;

/// The start of the description of every window shipdeck adds.
pub const MARK: &str = "shipdeck-freeze";
/// The schedule and duration of an open-ended freeze.
pub const OPEN_SCHEDULE: &str = "* * * * *";
pub const OPEN_DURATION: &str = "1h";
/// How many times a write that met a conflicting change is read again and retried.
const CONFLICT_RETRIES: usize = 3;

/// A freeze as its window's description records it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FreezeMark {
    pub env: String,
    pub by: String,
    pub at: Option<DateTime<Utc>>,
    /// None: until further notice.
    pub until: Option<DateTime<Utc>>,
    pub reason: String,
}

impl FreezeMark {
    /// The window's `description`.
    pub fn describe(&self) -> String {
        let token = |s: &str| -> String {
            let t: String = s
                .chars()
                .map(|c| {
                    if c.is_whitespace() || c == ':' {
                        '_'
                    } else {
                        c
                    }
                })
                .collect();
            if t.is_empty() { "unknown".into() } else { t }
        };
        let time = |t: &Option<DateTime<Utc>>| {
            t.map_or("open".to_string(), |t| {
                t.format("%Y-%m-%dT%H.%M.%SZ").to_string()
            })
        };
        format!(
            "{MARK} env={} by={} at={} until={}: {}",
            token(&self.env),
            token(&self.by),
            time(&self.at),
            time(&self.until),
            self.reason.trim()
        )
    }

    /// Read a description shipdeck wrote; None for any other window.
    pub fn parse(description: &str) -> Option<FreezeMark> {
        let rest = description.strip_prefix(MARK)?.strip_prefix(' ')?;
        let (head, reason) = rest.split_once(": ").unwrap_or((rest, ""));
        let mut fields = BTreeMap::new();
        for kv in head.split_whitespace() {
            let (k, v) = kv.split_once('=')?;
            fields.insert(k, v);
        }
        let time = |k: &str| {
            fields.get(k).and_then(|v| {
                chrono::NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H.%M.%SZ")
                    .ok()
                    .map(|t| t.and_utc())
            })
        };
        Some(FreezeMark {
            env: fields.get("env")?.to_string(),
            by: fields.get("by").unwrap_or(&"unknown").to_string(),
            at: time("at"),
            until: time("until"),
            reason: reason.to_string(),
        })
    }

    /// One line for the header and the CLI: who froze it, why, until when.
    pub fn line(&self) -> String {
        let until = self.until.map_or("further notice".to_string(), |t| {
            t.format("%Y-%m-%d %H:%M UTC").to_string()
        });
        format!(
            "FROZEN {} by {} until {}: {}",
            self.env, self.by, until, self.reason
        )
    }
}

/// Parse `--until`: an RFC 3339 time, or a Go duration from now (`2h`, `90m`, `1h30m`).
pub fn parse_until(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s.trim()) {
        return Ok(t.with_timezone(&Utc));
    }
    shipdeck_wire::syncwindow::parse_duration(s.trim())
        .map(|d| now + d)
        .map_err(|_| {
            format!(
                "--until {s:?}: not a time (2026-12-01T18:00:00Z) nor a duration from now (2h, 90m)"
            )
        })
}

/// The deny window of a freeze of `apps`, set at `now`.
pub fn window(
    mark: &FreezeMark,
    apps: &[String],
    now: DateTime<Utc>,
) -> Result<SyncWindow, String> {
    let (schedule, duration) = match mark.until {
        None => (OPEN_SCHEDULE.to_string(), OPEN_DURATION.to_string()),
        Some(until) => {
            // The minute before now, so the window is open at once whatever the seconds.
            let start = now
                .duration_trunc(Duration::minutes(1))
                .map_err(|e| e.to_string())?
                - Duration::minutes(1);
            if until <= now {
                return Err(format!(
                    "--until {} is not in the future",
                    until.format("%Y-%m-%dT%H:%M:%SZ")
                ));
            }
            let minutes = ((until - start).num_seconds() + 59) / 60;
            if minutes > 364 * 24 * 60 {
                return Err(
                    "a freeze longer than 364 days cannot be one window (cron has no year): leave out --until for a freeze until further notice".into(),
                );
            }
            use chrono::{Datelike, Timelike};
            (
                format!(
                    "{} {} {} {} *",
                    start.minute(),
                    start.hour(),
                    start.day(),
                    start.month()
                ),
                format!("{minutes}m"),
            )
        }
    };
    Ok(SyncWindow {
        kind: "deny".into(),
        schedule,
        duration,
        applications: apps.to_vec(),
        manual_sync: false,
        description: Some(mark.describe()),
        ..Default::default()
    })
}

/// The freezes among a project's windows that are open at `now`.
pub fn active_in(project: &Value, now: DateTime<Utc>) -> Vec<FreezeMark> {
    let windows: Vec<SyncWindow> =
        serde_json::from_value(project["spec"]["syncWindows"].clone()).unwrap_or_default();
    windows
        .iter()
        .filter_map(|w| {
            let mark = FreezeMark::parse(w.description.as_deref()?)?;
            (w.kind == "deny" && shipdeck_wire::syncwindow::is_active(w, now).unwrap_or(true))
                .then_some(mark)
        })
        .collect()
}

/// Reading and replacing AppProjects whole: the projects API in API mode, the custom
/// resource in core mode.
pub trait Projects: ArgoSource {
    fn projects_read_only(&self) -> bool;
    fn get_project(
        &self,
        name: &str,
    ) -> impl std::future::Future<Output = Result<Value, SourceError>> + Send;
    fn put_project(
        &self,
        project: &Value,
    ) -> impl std::future::Future<Output = Result<Value, SourceError>> + Send;
}

impl Projects for crate::sources::argocd::ArgoApi {
    fn projects_read_only(&self) -> bool {
        self.read_only()
    }
    async fn get_project(&self, name: &str) -> Result<Value, SourceError> {
        crate::sources::argocd::ArgoApi::get_project(self, name).await
    }
    async fn put_project(&self, project: &Value) -> Result<Value, SourceError> {
        crate::sources::argocd::ArgoApi::put_project(self, project).await
    }
}

impl Projects for crate::sources::kube::CoreArgo {
    fn projects_read_only(&self) -> bool {
        self.read_only()
    }
    async fn get_project(&self, name: &str) -> Result<Value, SourceError> {
        crate::sources::kube::CoreArgo::get_project(self, name).await
    }
    async fn put_project(&self, project: &Value) -> Result<Value, SourceError> {
        crate::sources::kube::CoreArgo::put_project(self, project).await
    }
}

impl Projects for Backend {
    fn projects_read_only(&self) -> bool {
        self.read_only()
    }
    async fn get_project(&self, name: &str) -> Result<Value, SourceError> {
        match self {
            Backend::Api(a) => a.get_project(name).await,
            Backend::Core(c) => c.get_project(name).await,
        }
    }
    async fn put_project(&self, project: &Value) -> Result<Value, SourceError> {
        match self {
            Backend::Api(a) => a.put_project(project).await,
            Backend::Core(c) => c.put_project(project).await,
        }
    }
}

async fn get_project<S: Projects>(b: &S, name: &str) -> Result<Value, SourceError> {
    Projects::get_project(b, name).await
}

async fn put_project<S: Projects>(b: &S, p: &Value) -> Result<Value, SourceError> {
    Projects::put_project(b, p).await
}

fn project_of(app: &Application) -> String {
    if app.spec.project.is_empty() {
        "default".into()
    } else {
        app.spec.project.clone()
    }
}

/// The environment's apps, by project.
async fn env_apps<S: Projects>(
    b: &S,
    ops: &Ops,
    env: &str,
) -> Result<BTreeMap<String, Vec<String>>, ActionError> {
    let apps = b.list_applications().await?;
    let mut by_project: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for a in &apps {
        if ops
            .classifier
            .classify(a)
            .environment
            .name
            .eq_ignore_ascii_case(env)
        {
            by_project
                .entry(project_of(a))
                .or_default()
                .push(a.metadata.name.clone());
        }
    }
    Ok(by_project)
}

/// Change one project's windows with `edit` (false: nothing to change), re-reading it on a
/// conflict. Returns whether it was written.
async fn edit_windows<S: Projects>(
    b: &S,
    project: &str,
    mut edit: impl FnMut(&mut Vec<Value>) -> bool,
) -> Result<bool, SourceError> {
    let mut last = None;
    for _ in 0..=CONFLICT_RETRIES {
        let mut p = get_project(b, project).await?;
        let mut windows = p["spec"]["syncWindows"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if !edit(&mut windows) {
            return Ok(false);
        }
        if !p["spec"].is_object() {
            p["spec"] = serde_json::json!({});
        }
        p["spec"]["syncWindows"] = Value::Array(windows);
        match put_project(b, &p).await {
            Ok(_) => return Ok(true),
            Err(e @ SourceError::Conflict(_)) => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| SourceError::Conflict(format!("project {project}"))))
}

fn is_mark_for(w: &Value, env: &str) -> bool {
    w["description"]
        .as_str()
        .and_then(FreezeMark::parse)
        .is_some_and(|m| m.env.eq_ignore_ascii_case(env))
}

/// What a freeze or unfreeze did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FreezeOutcome {
    pub env: String,
    /// `freeze` or `unfreeze`.
    pub action: &'static str,
    pub projects: Vec<String>,
    pub apps: Vec<String>,
    pub mark: Option<FreezeMark>,
}

#[allow(clippy::too_many_arguments)]
fn audit<S: Projects>(
    ops: &Ops,
    b: &S,
    action: &str,
    env: &str,
    apps: &[String],
    reason: Option<&str>,
    outcome: &str,
    detail: Option<String>,
) {
    let rec = AuditRecord {
        at: Utc::now(),
        who: ops.operator.clone(),
        action: action.into(),
        instance: b.instance().to_string(),
        app: apps.join(","),
        environment: env.to_string(),
        from_revision: None,
        to_revision: None,
        diff_digest: None,
        approval_id: None,
        reason: reason.map(str::to_string).filter(|r| !r.trim().is_empty()),
        outcome: outcome.into(),
        detail,
        dry_run: false,
    };
    if let Err(e) = ops.audit.append(&rec) {
        tracing::warn!("audit log not written: {e}");
    }
}

fn refused<S: Projects>(ops: &Ops, b: &S, action: &str, env: &str, r: Refusal) -> ActionError {
    audit(
        ops,
        b,
        action,
        env,
        &[],
        None,
        "refused",
        Some(r.to_string()),
    );
    ActionError::Refused(r)
}

/// Freeze `env`: a shipdeck deny window on every project of its apps (replacing an earlier
/// shipdeck freeze of the same environment).
pub async fn freeze<S: Projects>(
    b: &S,
    ops: &Ops,
    env: &str,
    reason: &str,
    until: Option<DateTime<Utc>>,
) -> Result<FreezeOutcome, ActionError> {
    if ops.read_only || b.projects_read_only() {
        let r = Refusal::ReadOnly {
            action: "freeze",
            app: env.to_string(),
        };
        return Err(refused(ops, b, "freeze", env, r));
    }
    if reason.trim().is_empty() {
        return Err(ActionError::Refused(Refusal::ReasonRequired {
            app: env.to_string(),
            environment: env.to_string(),
        }));
    }
    let by_project = env_apps(b, ops, env).await?;
    if by_project.is_empty() {
        return Err(ActionError::NotFound(format!(
            "no applications in environment {env}"
        )));
    }
    let now = Utc::now();
    let mark = FreezeMark {
        env: env.to_string(),
        by: ops.operator.clone(),
        at: Some(now.duration_trunc(Duration::seconds(1)).unwrap_or(now)),
        until,
        reason: crate::model::text::sanitize(reason.trim()).into_owned(),
    };
    let all_apps: Vec<String> = by_project.values().flatten().cloned().collect();
    let mut done = Vec::new();
    for (project, apps) in &by_project {
        // The CLI and console check --until first; this is the last word.
        let w = window(&mark, apps, now).map_err(ActionError::Failed)?;
        let value = serde_json::to_value(&w).map_err(|e| ActionError::Failed(e.to_string()))?;
        let res = edit_windows(b, project, |ws| {
            ws.retain(|x| !is_mark_for(x, env));
            ws.push(value.clone());
            true
        })
        .await;
        if let Err(e) = res {
            let detail = format!(
                "project {project}: {e}{}",
                if done.is_empty() {
                    String::new()
                } else {
                    format!(" (already frozen: {})", done.join(", "))
                }
            );
            audit(
                ops,
                b,
                "freeze",
                env,
                &all_apps,
                Some(reason),
                "failed",
                Some(detail),
            );
            return Err(e.into());
        }
        done.push(project.clone());
    }
    audit(
        ops,
        b,
        "freeze",
        env,
        &all_apps,
        Some(reason),
        "succeeded",
        Some(format!(
            "deny window on project(s) {}: {}",
            done.join(", "),
            mark.describe()
        )),
    );
    Ok(FreezeOutcome {
        env: env.to_string(),
        action: "freeze",
        projects: done,
        apps: all_apps,
        mark: Some(mark),
    })
}

/// The approval an unfreeze of a gated environment needs (as a sync's: the name typed
/// again, a reason where required).
fn check_unfreeze_approval(
    ops: &Ops,
    env: &str,
    approval: Option<&Approval>,
) -> Result<(), Refusal> {
    // The environment's name stands where a sync types the app's.
    crate::ops::prune::check_approval(ops, env, env, approval)
}

/// Unfreeze `env`: remove exactly shipdeck's freeze windows of that environment.
pub async fn unfreeze<S: Projects>(
    b: &S,
    ops: &Ops,
    env: &str,
    approval: Option<&Approval>,
) -> Result<FreezeOutcome, ActionError> {
    if ops.read_only || b.projects_read_only() {
        let r = Refusal::ReadOnly {
            action: "unfreeze",
            app: env.to_string(),
        };
        return Err(refused(ops, b, "unfreeze", env, r));
    }
    if let Err(r) = check_unfreeze_approval(ops, env, approval) {
        return Err(refused(ops, b, "unfreeze", env, r));
    }
    let reason = approval.and_then(|a| a.reason.as_deref());
    let by_project = env_apps(b, ops, env).await?;
    let all_apps: Vec<String> = by_project.values().flatten().cloned().collect();
    let mut done = Vec::new();
    for project in by_project.keys() {
        let res = edit_windows(b, project, |ws| {
            let before = ws.len();
            ws.retain(|x| !is_mark_for(x, env));
            ws.len() != before
        })
        .await;
        match res {
            Ok(true) => done.push(project.clone()),
            Ok(false) => {}
            Err(e) => {
                audit(
                    ops,
                    b,
                    "unfreeze",
                    env,
                    &all_apps,
                    reason,
                    "failed",
                    Some(format!("project {project}: {e}")),
                );
                return Err(e.into());
            }
        }
    }
    if done.is_empty() {
        return Err(ActionError::NotFound(format!(
            "{env} is not frozen by shipdeck (no shipdeck freeze window in its projects)"
        )));
    }
    audit(
        ops,
        b,
        "unfreeze",
        env,
        &all_apps,
        reason,
        "succeeded",
        Some(format!(
            "removed the freeze window from project(s) {}",
            done.join(", ")
        )),
    );
    Ok(FreezeOutcome {
        env: env.to_string(),
        action: "unfreeze",
        projects: done,
        apps: all_apps,
        mark: None,
    })
}

/// The freezes open now over the projects of `apps` (for the header and `freeze --list`).
pub async fn active_freezes<S: Projects>(b: &S, apps: &[Application]) -> Vec<FreezeMark> {
    active_freezes_in(b, apps.iter().map(project_of)).await
}

/// The freezes open now over these projects (an app's project as [`project_of`] names it).
pub async fn active_freezes_in<S: Projects>(
    b: &S,
    projects: impl IntoIterator<Item = String>,
) -> Vec<FreezeMark> {
    let mut projects: Vec<String> = projects.into_iter().collect();
    projects.sort();
    projects.dedup();
    let now = Utc::now();
    let mut out = Vec::new();
    for p in projects {
        match get_project(b, &p).await {
            Ok(v) => {
                for m in active_in(&v, now) {
                    if !out.contains(&m) {
                        out.push(m);
                    }
                }
            }
            Err(e) => tracing::debug!("project {p}: {e}"),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn mark_round_trips() {
        let m = FreezeMark {
            env: "prod".into(),
            by: "ann smith".into(),
            at: Some(at("2026-12-01T12:00:05Z")),
            until: Some(at("2026-12-01T18:00:00Z")),
            reason: "incident 42: db failover".into(),
        };
        let d = m.describe();
        assert!(
            d.starts_with("shipdeck-freeze env=prod by=ann_smith "),
            "{d}"
        );
        let back = FreezeMark::parse(&d).unwrap();
        assert_eq!(back.by, "ann_smith");
        assert_eq!(back.until, m.until);
        assert_eq!(back.at, m.at);
        assert_eq!(back.reason, "incident 42: db failover");
        assert!(FreezeMark::parse("maintenance window").is_none());
    }

    #[test]
    fn windows_open_now_and_end_when_told() {
        let now = at("2026-12-01T12:00:00Z");
        let mut m = FreezeMark {
            env: "prod".into(),
            by: "a".into(),
            at: Some(now),
            until: None,
            reason: "r".into(),
        };
        let open = window(&m, &["x".into()], now).unwrap();
        assert_eq!(
            (open.schedule.as_str(), open.duration.as_str()),
            ("* * * * *", "1h")
        );
        let later = at("2027-03-01T00:00:30Z");
        assert!(shipdeck_wire::syncwindow::is_active(&open, later).unwrap());

        m.until = Some(at("2026-12-01T14:30:00Z"));
        let w = window(&m, &["x".into()], now).unwrap();
        assert_eq!(w.schedule, "59 11 1 12 *");
        assert_eq!(w.duration, "151m");
        for (t, open) in [
            ("2026-12-01T12:00:00Z", true),
            ("2026-12-01T14:29:00Z", true),
            ("2026-12-01T14:31:00Z", false),
            ("2026-12-02T12:00:00Z", false),
        ] {
            assert_eq!(
                shipdeck_wire::syncwindow::is_active(&w, at(t)).unwrap(),
                open,
                "{t}"
            );
        }
        m.until = Some(at("2026-12-01T11:00:00Z"));
        assert!(window(&m, &[], now).is_err());
        m.until = Some(at("2027-12-01T11:00:00Z"));
        assert!(window(&m, &[], now).is_err());
    }

    #[test]
    fn until_reads_times_and_durations() {
        let now = at("2026-12-01T12:00:00Z");
        assert_eq!(parse_until("2h", now).unwrap(), at("2026-12-01T14:00:00Z"));
        assert_eq!(
            parse_until("2026-12-02T08:00:00+01:00", now).unwrap(),
            at("2026-12-02T07:00:00Z")
        );
        assert!(parse_until("tomorrow", now).is_err());
    }
}
