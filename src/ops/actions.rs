//! Actions: sync, rollback, refresh and build, each as guards -> call the source -> audit
//! -> result. Nothing reaches a gated environment without an approval record written first,
//! and read-only mode refuses here, not only in the UI. Actions call sources through
//! [`ArgoSource`] and [`CiSource`]; they never draw and never print.

use super::approval::{self, Approval};
use super::audit::{AuditError, AuditLog, AuditRecord};
use super::classify::Classifier;
use super::diff::{self, AppDiff};
use super::estate::{compared_revision, deployed_revision};
use super::policy::{self, Clearance, GuardInput, Mutation, Policies, Refusal};
use crate::model::{
    AppId, Application, ApprovalRecord, HealthStatus, OperationPhase, Revision, SyncResourceRef,
    SyncStatus,
};
use crate::sources::{AppEvent, ArgoSource, Refresh, RollbackRequest, SourceError, SyncRequest};
use std::time::Duration;

/// What every action runs with.
#[derive(Debug, Clone)]
pub struct Ops {
    pub operator: String,
    pub read_only: bool,
    pub policies: Policies,
    pub classifier: Classifier,
    pub audit: AuditLog,
}

impl Ops {
    /// The operator's name: from config, else the login name, else `unknown` (the
    /// composition room asks Argo CD for the account before falling back to that).
    pub fn operator_name(configured: Option<&str>) -> String {
        configured
            .filter(|s| !s.trim().is_empty())
            .map(str::to_owned)
            .or_else(crate::config::login_name)
            .unwrap_or_else(|| UNKNOWN_OPERATOR.into())
    }
}

/// The operator's name when neither config, login name nor Argo CD account gives one.
pub const UNKNOWN_OPERATOR: &str = "unknown";

#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("{0}")]
    NotFound(String),
    #[error("the approval could not be recorded, so nothing was sent: {0}")]
    AuditBeforeSend(AuditError),
    /// The operation ran and did not succeed (failed sync, degraded app, failed build).
    #[error("{0}")]
    Failed(String),
    #[error("gave up waiting after {seconds}s: {what}")]
    Timeout { what: String, seconds: u64 },
}

#[derive(Debug, Clone, Default)]
pub struct SyncOptions {
    pub revision: Option<String>,
    pub prune: bool,
    pub dry_run: bool,
    pub resources: Vec<SyncResourceRef>,
    pub approval: Option<Approval>,
    /// Four-eyes: the request this (second) approval approves; None writes a request.
    pub four_eyes: Option<FourEyes>,
}

#[derive(Debug, Clone, Default)]
pub struct RollbackOptions {
    /// History id; None takes the previous deployment (`history[len-2]`).
    pub id: Option<i64>,
    pub prune: bool,
    pub dry_run: bool,
    /// Disable auto-sync first when it is on (it then stays disabled).
    pub disable_auto_sync: bool,
    pub approval: Option<Approval>,
    /// Four-eyes: the request this (second) approval approves; None writes a request.
    pub four_eyes: Option<FourEyes>,
}

/// What an action did.
#[derive(Debug, Clone)]
pub struct ActionOutcome {
    pub id: AppId,
    /// `sync` or `rollback`.
    pub action: &'static str,
    pub dry_run: bool,
    /// The application as the source answered after the request.
    pub app: Application,
    pub environment: String,
    pub from_revision: Option<Revision>,
    pub to_revision: Option<Revision>,
    pub diff_digest: Option<String>,
    pub approval: Option<ApprovalRecord>,
    /// Things the operator should hear (auto-sync stays disabled, event not recorded).
    pub notes: Vec<String>,
    /// `operationState.startedAt` before the request, to tell our operation's end from an
    /// earlier one's when the operation carries no id (see [`OurOperation`]).
    pub previous_started_at: Option<String>,
    /// The `shipdeck-op` info entry sent with the operation ([`INFO_OP_ID`]).
    pub op_id: Option<String>,
}

impl ActionOutcome {
    /// What tells the operation this action sent from every other one.
    pub fn ours(&self) -> OurOperation {
        OurOperation {
            id: self.op_id.clone(),
            previous_started_at: self.previous_started_at.clone(),
        }
    }
}

/// The info entry that names one operation shipdeck sent (`shipdeck-op=<id>`). Argo CD
/// keeps `operation.info` in `status.operationState.operation.info`, so the follower
/// knows its own operation's end from an earlier one's even within the same second.
pub const INFO_OP_ID: &str = "shipdeck-op";

/// A fresh id for one operation: random, so two shipdecks (or two syncs in one second)
/// never share one.
pub fn new_op_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// What identifies the operation we sent: its `shipdeck-op` id, and `startedAt` of the
/// operation state before we sent it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OurOperation {
    pub id: Option<String>,
    pub previous_started_at: Option<String>,
}

impl OurOperation {
    /// Only the `startedAt` fallback (an operation sent without an id).
    pub fn started_after(previous_started_at: Option<&str>) -> Self {
        Self {
            id: None,
            previous_started_at: previous_started_at.map(str::to_owned),
        }
    }

    /// Is `state` the state of our operation?
    pub fn is(&self, state: &crate::model::OperationState) -> bool {
        match (op_id_of(&state.operation), self.id.as_deref()) {
            (Some(theirs), Some(ours)) => theirs == ours,
            // No id to compare: an operation started outside shipdeck, or one whose
            // server drops info (Argo CD's rollback API takes no `infos`). Then only
            // `startedAt` tells it apart, and it has whole seconds: an operation started
            // within the same second as the previous one looks like the previous one (we
            // keep waiting, we never take its end for ours).
            _ => state.started_at.as_deref() != self.previous_started_at.as_deref(),
        }
    }

    /// Is `op` (a pending `.operation` or a state's operation) known to be another
    /// shipdeck operation than ours?
    pub fn is_other(&self, op: &crate::model::Operation) -> bool {
        matches!((op_id_of(op), self.id.as_deref()), (Some(theirs), Some(ours)) if theirs != ours)
    }

    /// Is `op` known to be ours by its id?
    pub fn is_ours_by_id(&self, op: &crate::model::Operation) -> bool {
        matches!((op_id_of(op), self.id.as_deref()), (Some(theirs), Some(ours)) if theirs == ours)
    }
}

/// The `shipdeck-op` id an operation carries.
pub fn op_id_of(op: &crate::model::Operation) -> Option<&str> {
    op.info
        .iter()
        .find(|i| i.name == INFO_OP_ID)
        .map(|i| i.value.as_str())
}

/// The info entries an operation carries: the approval's, and our operation id.
fn operation_info(approval: Option<&ApprovalRecord>, op_id: &str) -> Vec<crate::model::InfoEntry> {
    let mut info = approval.map(approval::info_entries).unwrap_or_default();
    info.push(crate::model::InfoEntry {
        name: INFO_OP_ID.into(),
        value: op_id.to_string(),
    });
    info
}

/// The diff a sync of `app` would apply, for the approval screen, `shipdeck diff` and the
/// audit digest.
pub async fn diff_of<S: ArgoSource>(src: &S, app: &Application) -> Result<AppDiff, SourceError> {
    let resources = src.managed_resources(app).await?;
    Ok(diff::diff_app(&resources, &app.spec.ignore_differences))
}

/// The diff a rollback of `app` to history entry `id` (None: the previous deployment) would
/// apply: live against the manifests of that deployment's source at its revision,
/// normalized and digested exactly as [`diff_of`] does for a sync.
pub async fn rollback_diff_of<S: ArgoSource>(
    src: &S,
    app: &Application,
    id: Option<i64>,
) -> Result<AppDiff, ActionError> {
    let at = rollback_spec(app, id)?;
    let resources = src.managed_resources_as_specified(&at).await?;
    Ok(diff::diff_app(&resources, &app.spec.ignore_differences))
}

/// `app` with its spec pointing where a rollback to history entry `id` goes: that
/// deployment's source (or the app's own) at that deployment's revision.
pub fn rollback_spec(app: &Application, id: Option<i64>) -> Result<Application, ActionError> {
    let (id, rev) = rollback_target(app, id)?;
    let rev = rev.ok_or_else(|| {
        ActionError::NotFound(format!(
            "deployment {id} of {} has no revision to compare with",
            app.metadata.name
        ))
    })?;
    let entry = app.status.history.iter().find(|h| h.id == id);
    let mut source = entry
        .and_then(|h| h.source.clone().or_else(|| h.sources.first().cloned()))
        .or_else(|| app.spec.primary_source().cloned())
        .ok_or_else(|| {
            ActionError::NotFound(format!("application {} has no source", app.metadata.name))
        })?;
    source.target_revision = Some(rev.0);
    let mut at = app.clone();
    at.spec.source = Some(source);
    at.spec.sources.clear();
    Ok(at)
}

/// Ask `can_i`; a failure to ask is not a denial (the server still checks), except a lost
/// session, which the operator must fix first.
async fn permitted_as<S: ArgoSource>(
    src: &S,
    rbac: &str,
    app: &Application,
    notes: &mut Vec<String>,
) -> Result<Option<bool>, ActionError> {
    match src.can_i(rbac, app).await {
        Ok(b) => Ok(Some(b)),
        Err(e @ SourceError::Unauthorized { .. }) => Err(e.into()),
        Err(e) => {
            notes.push(format!("could not ask for permission first ({e})"));
            Ok(None)
        }
    }
}

async fn windows<S: ArgoSource>(
    src: &S,
    app: &Application,
    notes: &mut Vec<String>,
) -> Result<Option<crate::sources::SyncWindowsState>, ActionError> {
    match src.sync_windows(app).await {
        Ok(w) => Ok(Some(w)),
        Err(e @ SourceError::Unauthorized { .. }) => Err(e.into()),
        Err(e) => {
            notes.push(format!(
                "could not read sync windows ({e}); Argo CD still enforces them"
            ));
            Ok(None)
        }
    }
}

struct Prepared {
    app: Application,
    id: AppId,
    environment: String,
    clearance: Clearance,
    notes: Vec<String>,
}

async fn prepare<S: ArgoSource>(
    src: &S,
    ops: &Ops,
    name: &str,
    (m, word): (Mutation, &'static str),
    approval: Option<&Approval>,
    disable_auto_sync: bool,
    prune: bool,
) -> Result<Prepared, ActionError> {
    if ops.read_only {
        // Refuse before touching the server at all.
        let r = Refusal::ReadOnly {
            action: m.as_str(),
            app: name.to_string(),
        };
        audit_refusal(ops, src.instance(), name, "", word, &r);
        return Err(r.into());
    }
    let app = src.get_application(name, Refresh::None).await?;
    let environment = ops.classifier.classify(&app).environment.name;
    let policy = ops.policies.for_env_name(&environment);
    let mut notes = Vec::new();
    // Auto-sync's permission depends on the server's route (its resource action or
    // `update`); a refusal names the one this server checks.
    let rbac = if m == Mutation::DisableAutoSync {
        src.auto_sync_rbac(&app).await
    } else {
        m.rbac_action()
    };
    let permitted = permitted_as(src, rbac, &app, &mut notes).await?;
    if permitted == Some(false) && rbac != m.rbac_action() {
        let r = Refusal::PermissionDenied {
            action: m.as_str(),
            app: name.to_string(),
            rbac,
        };
        audit_refusal(ops, src.instance(), name, &environment, word, &r);
        return Err(r.into());
    }
    let windows = windows(src, &app, &mut notes).await?;
    let checked = policy::check(&GuardInput {
        mutation: m,
        app: &app,
        environment: &environment,
        policy: &policy,
        read_only: ops.read_only,
        permitted,
        windows: windows.as_ref(),
        approval,
        disable_auto_sync,
        prune,
    });
    let clearance = match checked {
        Ok(c) => c,
        Err(r) => {
            audit_refusal(ops, src.instance(), name, &environment, word, &r);
            return Err(r.into());
        }
    };
    notes.extend(clearance.notes.iter().cloned());
    let id = AppId::new(src.instance(), app.metadata.namespace.clone(), name);
    Ok(Prepared {
        app,
        id,
        environment,
        clearance,
        notes,
    })
}

/// A refused attempt is recorded too: who tried what, and why it was refused.
fn audit_refusal(
    ops: &Ops,
    instance: &str,
    app: &str,
    environment: &str,
    action: &str,
    r: &Refusal,
) {
    let rec = AuditRecord {
        at: chrono::Utc::now(),
        who: ops.operator.clone(),
        action: action.into(),
        instance: instance.to_string(),
        app: app.to_string(),
        environment: environment.to_string(),
        from_revision: None,
        to_revision: None,
        diff_digest: None,
        approval_id: None,
        reason: None,
        outcome: "refused".into(),
        detail: Some(r.to_string()),
        dry_run: false,
    };
    if let Err(e) = ops.audit.append(&rec) {
        tracing::warn!("audit log not written: {e}");
    }
}

/// The audit log's word for a mutation.
fn action_word(m: Mutation) -> &'static str {
    match m {
        Mutation::Sync => "sync",
        Mutation::Rollback => "rollback",
        Mutation::Build => "build",
        Mutation::DisableAutoSync => "disable-auto-sync",
    }
}

fn record_approval(
    ops: &Ops,
    p: &Prepared,
    approval: Option<&Approval>,
    from: Option<Revision>,
    to: Option<Revision>,
    digest: Option<String>,
    four_eyes: Option<&FourEyes>,
) -> Result<Option<ApprovalRecord>, ActionError> {
    let Some(a) = approval else {
        return Ok(None);
    };
    let mut rec = approval::record(a, &p.id, &p.environment, from, to, digest);
    // A four-eyes approval carries the request's id: one id from request to operation.
    if let Some(fe) = four_eyes {
        rec.id = fe.request.id.clone();
    }
    match ops.audit.append(&AuditRecord::approval(&rec)) {
        Ok(()) => Ok(Some(rec)),
        Err(e) if p.clearance.approval_required => Err(ActionError::AuditBeforeSend(e)),
        // Not needed here, so a lost record does not stop the action.
        Err(_) => Ok(Some(rec)),
    }
}

#[allow(clippy::too_many_arguments)]
fn mutation_record(
    ops: &Ops,
    p: &Prepared,
    action: &str,
    from: &Option<Revision>,
    to: &Option<Revision>,
    digest: &Option<String>,
    approval: &Option<ApprovalRecord>,
    dry_run: bool,
    result: Result<(), String>,
) -> AuditRecord {
    AuditRecord {
        at: chrono::Utc::now(),
        who: ops.operator.clone(),
        action: action.into(),
        instance: p.id.instance.clone(),
        app: p.id.name.clone(),
        environment: p.environment.clone(),
        from_revision: from.clone(),
        to_revision: to.clone(),
        diff_digest: digest.clone(),
        approval_id: approval.as_ref().map(|a| a.id.clone()),
        reason: approval.as_ref().and_then(|a| a.reason.clone()),
        outcome: if result.is_ok() { "started" } else { "failed" }.into(),
        detail: result.err(),
        dry_run,
    }
}

/// Best effort: a Kubernetes Event on the Application; a failure is a note, not an error.
async fn event<S: ArgoSource>(
    src: &S,
    app: &Application,
    reason: &str,
    message: String,
    notes: &mut Vec<String>,
) {
    let ev = AppEvent {
        event_type: "Normal".into(),
        reason: reason.into(),
        message,
        object: format!("Application/{}", app.metadata.name),
        count: 1,
        last_seen: None,
    };
    match src.record_event(app, &ev).await {
        Ok(true) => {}
        Ok(false) => {}
        Err(e) => notes.push(format!("no Kubernetes Event recorded ({e})")),
    }
}

fn audit_or_note(ops: &Ops, rec: &AuditRecord, notes: &mut Vec<String>) {
    if let Err(e) = ops.audit.append(rec) {
        notes.push(format!("audit log not written: {e}"));
    }
}

/// Sync an application: guards, approval record, `sync`, audit.
pub async fn sync<S: ArgoSource>(
    src: &S,
    ops: &Ops,
    name: &str,
    opts: SyncOptions,
) -> Result<ActionOutcome, ActionError> {
    let mut p = prepare(
        src,
        ops,
        name,
        (Mutation::Sync, action_word(Mutation::Sync)),
        opts.approval.as_ref(),
        false,
        opts.prune,
    )
    .await?;
    let from = deployed_revision(&p.app);
    let to = opts
        .revision
        .clone()
        .map(Revision)
        .or_else(|| compared_revision(&p.app));
    let digest = match diff_of(src, &p.app).await {
        Ok(d) => Some(d.digest()),
        Err(e) => {
            p.notes
                .push(format!("diff not available for the record ({e})"));
            None
        }
    };
    let mut given = opts.approval.clone();
    let mut request_info = Vec::new();
    if p.clearance.second_approver_required && !opts.dry_run {
        match (&opts.four_eyes, given.as_mut()) {
            (Some(fe), Some(a)) => {
                let git_target = compared_revision(&p.app);
                request_info = foureyes::consume(
                    src,
                    ops,
                    &p,
                    fe,
                    git_target.as_ref(),
                    digest.as_deref(),
                    a,
                    opts.dry_run,
                )
                .await?;
            }
            _ => {
                return Err(foureyes::write_request(
                    src,
                    ops,
                    &p,
                    RequestAction::Sync,
                    given.as_ref(),
                    (to.clone(), None),
                    digest.clone(),
                    opts.prune,
                )
                .await);
            }
        }
    }
    let approval = record_approval(
        ops,
        &p,
        given.as_ref(),
        from.clone(),
        to.clone(),
        digest.clone(),
        opts.four_eyes.as_ref(),
    )?;
    let op_id = new_op_id();
    let req = SyncRequest {
        revision: opts.revision.clone(),
        prune: opts.prune,
        dry_run: opts.dry_run,
        resources: opts.resources.clone(),
        apply_strategy: false,
        initiated_by: ops.operator.clone(),
        info: request_info
            .iter()
            .cloned()
            .chain(operation_info(approval.as_ref(), &op_id))
            .collect(),
    };
    let previous_started_at = started_at(&p.app);
    let result = src.sync(&p.app, req).await;
    let rec = mutation_record(
        ops,
        &p,
        "sync",
        &from,
        &to,
        &digest,
        &approval,
        opts.dry_run,
        result.as_ref().map(|_| ()).map_err(|e| e.to_string()),
    );
    audit_or_note(ops, &rec, &mut p.notes);
    let app = result?;
    let who = approval
        .as_ref()
        .map(|a| format!(", approved by {}", a.approved_by))
        .unwrap_or_default();
    event(
        src,
        &app,
        "ShipdeckSync",
        format!(
            "{} requested a sync to {}{who}",
            ops.operator,
            to.as_ref()
                .map(|r| r.short())
                .unwrap_or("the target revision")
        ),
        &mut p.notes,
    )
    .await;
    Ok(ActionOutcome {
        id: p.id,
        action: "sync",
        dry_run: opts.dry_run,
        app,
        environment: p.environment,
        from_revision: from,
        to_revision: to,
        diff_digest: digest,
        approval,
        notes: p.notes,
        previous_started_at,
        op_id: Some(op_id),
    })
}

/// Audit how a waited-for operation ended (`succeeded` or `failed` with the reason).
pub fn audit_finish(
    ops: &Ops,
    outcome: &ActionOutcome,
    result: &Result<Application, ActionError>,
) -> Result<(), AuditError> {
    // The images the app runs once the operation succeeded, for notifications; after a
    // failure the live images are the old ones, so none are claimed (the detail names the
    // failing image).
    let images = result
        .as_ref()
        .ok()
        .and_then(|app| app.status.summary.as_ref())
        .map(|s| s.images.clone())
        .unwrap_or_default();
    let rec = AuditRecord {
        at: chrono::Utc::now(),
        who: ops.operator.clone(),
        action: outcome.action.into(),
        instance: outcome.id.instance.clone(),
        app: outcome.id.name.clone(),
        environment: outcome.environment.clone(),
        from_revision: outcome.from_revision.clone(),
        to_revision: outcome.to_revision.clone(),
        diff_digest: outcome.diff_digest.clone(),
        approval_id: outcome.approval.as_ref().map(|a| a.id.clone()),
        reason: outcome.approval.as_ref().and_then(|a| a.reason.clone()),
        outcome: build::final_outcome(result).into(),
        detail: result.as_ref().err().map(|e| e.to_string()),
        dry_run: outcome.dry_run,
    };
    ops.audit.append_with_images(&rec, &images)
}

/// Wait for a started sync or rollback to end and record how it ended (`succeeded`,
/// `failed`, `timed-out`): what a front end runs after the action so the audit log never
/// stops at `started`.
pub async fn follow_operation<S: ArgoSource>(
    src: &S,
    ops: &Ops,
    outcome: &ActionOutcome,
    timeout: Duration,
    poll: Duration,
) -> Result<Application, ActionError> {
    let r = wait_for_operation(src, &outcome.id.name, &outcome.ours(), timeout, poll).await;
    if let Err(e) = audit_finish(ops, outcome, &r) {
        tracing::warn!("audit log not written: {e}");
    }
    r
}

/// Turn automated sync on or off (`shipdeck autosync APP on|off`, the console's key):
/// read-only and policy first. Turning it on lets Argo CD deploy Git on its own, so it is
/// guarded like a sync (a gated environment needs an approval, a running operation or a
/// closed window refuses); turning it off is what a rollback needs. The approval is
/// recorded before anything is sent; the change is audited (`enable-auto-sync` /
/// `disable-auto-sync`, `succeeded` or `failed`).
pub async fn auto_sync<S: ArgoSource>(
    src: &S,
    ops: &Ops,
    name: &str,
    enabled: bool,
    approval: Option<Approval>,
) -> Result<Application, ActionError> {
    let m = if enabled {
        Mutation::Sync
    } else {
        Mutation::DisableAutoSync
    };
    let action = if enabled {
        "enable-auto-sync"
    } else {
        "disable-auto-sync"
    };
    let mut p = prepare(
        src,
        ops,
        name,
        (m, action),
        approval.as_ref(),
        !enabled,
        false,
    )
    .await?;
    // Four-eyes environments: auto-sync on would deploy Git without a second approval.
    if enabled && p.clearance.second_approver_required {
        let r = Refusal::TooFewApprovers {
            app: name.to_string(),
            environment: p.environment.clone(),
            approvers: ops.policies.for_env_name(&p.environment).approvers,
        };
        audit_refusal(ops, src.instance(), name, &p.environment, action, &r);
        return Err(r.into());
    }
    // Whichever way it goes, the change needs the permission of this server's route: the
    // `toggle-auto-sync` action's, or `update` of the Application.
    let rbac = src.auto_sync_rbac(&p.app).await;
    if enabled && permitted_as(src, rbac, &p.app, &mut p.notes).await? == Some(false) {
        let r = Refusal::PermissionDenied {
            action: "enable auto-sync of",
            app: name.to_string(),
            rbac,
        };
        audit_refusal(ops, src.instance(), name, &p.environment, action, &r);
        return Err(r.into());
    }
    let approval = record_approval(ops, &p, approval.as_ref(), None, None, None, None)?;
    let r = src
        .set_auto_sync(&p.app, enabled)
        .await
        .map_err(|e| missing_permission(e, &p.app, rbac));
    let mut rec = mutation_record(
        ops,
        &p,
        action,
        &None,
        &None,
        &None,
        &approval,
        false,
        r.as_ref().map(|_| ()).map_err(|e| e.to_string()),
    );
    // Setting a flag is done when the server accepted it.
    if r.is_ok() {
        rec.outcome = "succeeded".into();
    }
    audit_or_note(ops, &rec, &mut p.notes);
    Ok(r?)
}

/// A refused policy change names the Argo CD permission it needs.
fn missing_permission(e: SourceError, app: &Application, rbac: &str) -> SourceError {
    match e {
        SourceError::Forbidden(m) => {
            let project = if app.spec.project.is_empty() {
                "default"
            } else {
                &app.spec.project
            };
            SourceError::Forbidden(format!(
                "changing the sync policy of {} needs the Argo CD permission `applications, {rbac}, {project}/{}` ({})",
                app.metadata.name,
                app.metadata.name,
                crate::model::text::sanitize(&m)
            ))
        }
        other => other,
    }
}

/// [`auto_sync`] without an approval (non-gated environments, or turning it off).
pub async fn set_auto_sync<S: ArgoSource>(
    src: &S,
    ops: &Ops,
    name: &str,
    enabled: bool,
) -> Result<Application, ActionError> {
    auto_sync(src, ops, name, enabled, None).await
}

fn started_at(app: &Application) -> Option<String> {
    app.status
        .operation_state
        .as_ref()
        .and_then(|o| o.started_at.clone())
}

/// The history id a rollback goes to: the one asked for, or the previous deployment.
pub fn rollback_target(
    app: &Application,
    id: Option<i64>,
) -> Result<(i64, Option<Revision>), ActionError> {
    let history = &app.status.history;
    let name = &app.metadata.name;
    let entry = match id {
        Some(id) => history.iter().find(|h| h.id == id).ok_or_else(|| {
            ActionError::NotFound(format!(
                "application {name} does not have deployment with id {id}; see `shipdeck history {name}`"
            ))
        })?,
        None => {
            if history.len() < 2 {
                return Err(ActionError::NotFound(format!(
                    "application {name} has no previous deployment to roll back to; see `shipdeck history {name}`"
                )));
            }
            &history[history.len() - 2]
        }
    };
    let rev = entry
        .revision
        .clone()
        .or_else(|| entry.revisions.first().cloned())
        .map(Revision);
    Ok((entry.id, rev))
}

/// Roll back to a history entry: guards (auto-sync refused unless asked to disable it),
/// approval record, optional auto-sync off, `rollback`, audit.
pub async fn rollback<S: ArgoSource>(
    src: &S,
    ops: &Ops,
    name: &str,
    opts: RollbackOptions,
) -> Result<ActionOutcome, ActionError> {
    let mut p = prepare(
        src,
        ops,
        name,
        (Mutation::Rollback, action_word(Mutation::Rollback)),
        opts.approval.as_ref(),
        opts.disable_auto_sync,
        opts.prune,
    )
    .await?;
    let (id, to) = rollback_target(&p.app, opts.id)?;
    let from = deployed_revision(&p.app);
    // The same digest a sync records, of the diff between live and the rollback target.
    let digest = match rollback_diff_of(src, &p.app, Some(id)).await {
        Ok(d) => Some(d.digest()),
        Err(e) => {
            p.notes
                .push(format!("diff not available for the record ({e})"));
            None
        }
    };
    let mut given = opts.approval.clone();
    let mut request_info = Vec::new();
    if p.clearance.second_approver_required && !opts.dry_run {
        match (&opts.four_eyes, given.as_mut()) {
            (Some(fe), Some(a)) => {
                request_info = foureyes::consume(
                    src,
                    ops,
                    &p,
                    fe,
                    to.as_ref(),
                    digest.as_deref(),
                    a,
                    opts.dry_run,
                )
                .await?;
            }
            _ => {
                return Err(foureyes::write_request(
                    src,
                    ops,
                    &p,
                    RequestAction::Rollback,
                    given.as_ref(),
                    (to.clone(), Some(id)),
                    digest.clone(),
                    opts.prune,
                )
                .await);
            }
        }
    }
    let approval = record_approval(
        ops,
        &p,
        given.as_ref(),
        from.clone(),
        to.clone(),
        digest.clone(),
        opts.four_eyes.as_ref(),
    )?;
    if p.clearance.disable_auto_sync_first {
        let r = src.set_auto_sync(&p.app, false).await;
        let rec = mutation_record(
            ops,
            &p,
            "disable-auto-sync",
            &None,
            &None,
            &None,
            &approval,
            false,
            r.as_ref().map(|_| ()).map_err(|e| e.to_string()),
        );
        audit_or_note(ops, &rec, &mut p.notes);
        p.app = r?;
    }
    let op_id = new_op_id();
    let req = RollbackRequest {
        id,
        prune: opts.prune,
        dry_run: opts.dry_run,
        initiated_by: ops.operator.clone(),
        info: request_info
            .iter()
            .cloned()
            .chain(operation_info(approval.as_ref(), &op_id))
            .collect(),
    };
    let previous_started_at = started_at(&p.app);
    let result = src.rollback(&p.app, req).await;
    let rec = mutation_record(
        ops,
        &p,
        "rollback",
        &from,
        &to,
        &digest,
        &approval,
        opts.dry_run,
        result.as_ref().map(|_| ()).map_err(|e| e.to_string()),
    );
    audit_or_note(ops, &rec, &mut p.notes);
    let app = result?;
    event(
        src,
        &app,
        "ShipdeckRollback",
        format!("{} requested a rollback to deployment {id}", ops.operator),
        &mut p.notes,
    )
    .await;
    Ok(ActionOutcome {
        id: p.id,
        action: "rollback",
        dry_run: opts.dry_run,
        app,
        environment: p.environment,
        from_revision: from,
        to_revision: to,
        diff_digest: digest,
        approval,
        notes: p.notes,
        previous_started_at,
        op_id: Some(op_id),
    })
}

/// Ask Argo CD to compare with Git again (`hard` also regenerates manifests). Not a
/// mutation of the estate, so read-only mode allows it.
pub async fn refresh<S: ArgoSource>(
    src: &S,
    name: &str,
    hard: bool,
) -> Result<Application, ActionError> {
    let how = if hard { Refresh::Hard } else { Refresh::Normal };
    Ok(src.get_application(name, how).await?)
}

/// Where a wait stands after one look at the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitState {
    Running,
    Done,
    Failed(String),
}

/// Judge one look at the app after our operation was sent: done when our operation
/// finished, Argo CD reconciled after it, and the app is Healthy and Synced (or, after a
/// rollback or a sync to another revision than Git's, Healthy at the revision sent).
pub fn judge(app: &Application, ours: &OurOperation) -> WaitState {
    if let Some(why) = blocked_by_window(app, ours) {
        return WaitState::Failed(why);
    }
    if app.operation.is_some() {
        return WaitState::Running;
    }
    let Some(op) = &app.status.operation_state else {
        return WaitState::Running;
    };
    if !ours.is(op) || op.finished_at.is_none() {
        return WaitState::Running;
    }
    match op.phase {
        OperationPhase::Failed | OperationPhase::Error => {
            let msg = op.message.clone().unwrap_or_default();
            return WaitState::Failed(format!(
                "operation {}: {}",
                op.phase,
                crate::model::text::sanitize(&msg)
            ));
        }
        OperationPhase::Succeeded => {}
        _ => return WaitState::Running,
    }
    let reconciled = match (&app.status.reconciled_at, &op.finished_at) {
        (Some(r), Some(f)) => r >= f,
        _ => true,
    };
    if !reconciled {
        return WaitState::Running;
    }
    let dry_run = op.operation.sync.as_ref().is_some_and(|s| s.dry_run);
    if dry_run {
        return WaitState::Done;
    }
    // A rollback, or a sync to a revision other than Git's target, ends OutOfSync by
    // design (Git holds something else): then healthy at the revision we sent is done.
    let synced_rev = op.sync_result.as_ref().and_then(|r| r.revision.as_deref());
    let git_elsewhere = synced_rev.is_some() && synced_rev != app.status.sync.revision.as_deref();
    match (app.status.sync.status, app.status.health.status) {
        (SyncStatus::Synced, HealthStatus::Healthy) => WaitState::Done,
        (SyncStatus::OutOfSync, HealthStatus::Healthy) if git_elsewhere => WaitState::Done,
        _ => WaitState::Running,
    }
}

/// What Argo CD's controller says of an operation a sync window keeps from running
/// (`controller/sync.go`): the operation stays `Running` with this message (and a detail
/// when the windows do not parse) and runs when a window allows it.
pub const BLOCKED_BY_WINDOW: &str = "Sync operation blocked by sync window";

/// Our operation is held by a sync window: it will not end on its own while the window
/// denies, so the follow ends here with Argo CD's message and what becomes of it.
fn blocked_by_window(app: &Application, ours: &OurOperation) -> Option<String> {
    let op = app.status.operation_state.as_ref()?;
    let message = op.message.as_deref()?;
    if op.phase != OperationPhase::Running
        || !ours.is(op)
        || !message.starts_with(BLOCKED_BY_WINDOW)
    {
        return None;
    }
    Some(format!(
        "{}; Argo CD keeps the operation queued and runs it when a window allows it (terminate it to drop it)",
        crate::model::text::sanitize(message)
    ))
}

/// Wait until the operation sent finishes and the app is settled (see [`judge`]), or it
/// fails, or `timeout` passes: the one follower ([`follow::follow`]), without the audit.
pub async fn wait_for_operation<S: ArgoSource>(
    src: &S,
    name: &str,
    ours: &OurOperation,
    timeout: Duration,
    poll: Duration,
) -> Result<Application, ActionError> {
    follow::follow(src, name, ours, timeout, poll).await
}

pub mod follow;

mod foureyes;
use crate::ops::foureyes::RequestAction;
pub use foureyes::{ApproveOptions, FourEyes, approve, pending};

mod build;
pub mod produced;
pub use build::{
    BuildRequest, CiSource, Pipeline, PipelineInput, RunRef, build, cancel, final_outcome,
    follow_build, follow_run, refuse_read_only, rerun, wait_for_build,
};

#[cfg(test)]
mod tests;
