//! Prune confirmation (Argo CD 3.4+): a sync whose prunes include a resource marked
//! `argocd.argoproj.io/sync-options: Prune=confirm` (or an app with the `Prune=confirm` sync
//! option) stays Running with "waiting for pruning confirmation of ..." until the app carries
//! `argocd.argoproj.io/deletion-approved` with a time at or after the operation's start
//! (Argo CD's `IsDeletionConfirmed`; `argocd app confirm-deletion` writes it the same way).
//!
//! [`waiting`] tells from the app alone whether it waits and which resources the sync will
//! delete (every resource the app's status marks `requiresPruning`: a confirmed sync with
//! prune deletes them all). [`confirm`] writes the annotation, gated like a sync (the app's
//! name typed again in a gated environment, a reason where required), refused in read-only
//! mode, and audited as `confirm-prune`.

use super::actions::{ActionError, Ops};
use super::approval::Approval;
use super::audit::AuditRecord;
use super::policy::Refusal;
use crate::model::{Application, ApprovalPolicy, OperationPhase};
use crate::sources::{ArgoSource, Backend, Refresh, SourceError};
use serde_json::{Value, json};

/// The annotation that confirms pending prunes.
pub const DELETION_APPROVED: &str = "argocd.argoproj.io/deletion-approved";
/// The start of gitops-engine's message while it waits.
pub const WAITING: &str = "waiting for pruning confirmation of";

/// A sync waiting for someone to confirm its prunes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PruneWait {
    /// Argo CD's own message.
    pub message: String,
    /// `Kind namespace/name` of every resource the sync will delete.
    pub resources: Vec<String>,
}

impl PruneWait {
    /// "waiting for prune confirmation: these N resources will be deleted".
    pub fn headline(&self) -> String {
        let n = self.resources.len();
        format!(
            "waiting for prune confirmation: {} {n} resource{} will be deleted",
            if n == 1 { "this" } else { "these" },
            if n == 1 { "" } else { "s" }
        )
    }
}

/// Whether the app's running sync waits for a prune confirmation, and what it will delete.
pub fn waiting(app: &Application) -> Option<PruneWait> {
    let state = app.status.operation_state.as_ref()?;
    if state.phase != OperationPhase::Running {
        return None;
    }
    let message = state.message.clone().filter(|m| m.starts_with(WAITING))?;
    let resources = app
        .status
        .resources
        .iter()
        .filter(|r| r.requires_pruning)
        .map(|r| {
            let ns = if r.namespace.is_empty() {
                String::new()
            } else {
                format!("{}/", r.namespace)
            };
            crate::model::text::sanitize(&format!("{} {ns}{}", r.kind, r.name)).into_owned()
        })
        .collect();
    Some(PruneWait {
        message: crate::model::text::sanitize(&message).into_owned(),
        resources,
    })
}

/// Writing one annotation on an Application: a merge patch through the API server, or on
/// the custom resource in core mode.
pub trait Annotate: ArgoSource {
    fn annotate_read_only(&self) -> bool;
    fn set_annotation(
        &self,
        app: &Application,
        key: &str,
        value: &str,
    ) -> impl std::future::Future<Output = Result<(), SourceError>> + Send;
}

fn merge_patch(key: &str, value: &str) -> Value {
    json!({"metadata": {"annotations": {key: value}}})
}

impl Annotate for crate::sources::argocd::ArgoApi {
    fn annotate_read_only(&self) -> bool {
        self.read_only()
    }
    async fn set_annotation(
        &self,
        app: &Application,
        key: &str,
        value: &str,
    ) -> Result<(), SourceError> {
        self.patch_application(app, &merge_patch(key, value)).await
    }
}

impl Annotate for crate::sources::kube::CoreArgo {
    fn annotate_read_only(&self) -> bool {
        self.read_only()
    }
    async fn set_annotation(
        &self,
        app: &Application,
        key: &str,
        value: &str,
    ) -> Result<(), SourceError> {
        self.patch_application(app, &merge_patch(key, value)).await
    }
}

impl Annotate for Backend {
    fn annotate_read_only(&self) -> bool {
        self.read_only()
    }
    async fn set_annotation(
        &self,
        app: &Application,
        key: &str,
        value: &str,
    ) -> Result<(), SourceError> {
        match self {
            Backend::Api(a) => a.set_annotation(app, key, value).await,
            Backend::Core(c) => c.set_annotation(app, key, value).await,
        }
    }
}

fn audit<S: ArgoSource>(
    ops: &Ops,
    src: &S,
    app: &str,
    env: &str,
    reason: Option<&str>,
    outcome: &str,
    detail: Option<String>,
) {
    let rec = AuditRecord {
        at: chrono::Utc::now(),
        who: ops.operator.clone(),
        action: "confirm-prune".into(),
        instance: src.instance().to_string(),
        app: app.to_string(),
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

/// The approval a gated environment needs, as for a sync: `named` must be the app.
pub fn check_approval(
    ops: &Ops,
    name: &str,
    env: &str,
    approval: Option<&Approval>,
) -> Result<(), Refusal> {
    let policy = ops.policies.for_env_name(env);
    if !policy.gated() {
        return Ok(());
    }
    let Some(a) = approval else {
        return Err(match policy.approval {
            ApprovalPolicy::Required => Refusal::NeedsApproval {
                app: name.to_string(),
                environment: env.to_string(),
            },
            _ => Refusal::NeedsConfirmation {
                app: name.to_string(),
                environment: env.to_string(),
            },
        });
    };
    if a.named_app != name {
        return Err(Refusal::ApprovalNamesOtherApp {
            named: a.named_app.clone(),
            app: name.to_string(),
        });
    }
    if policy.approval == ApprovalPolicy::Required
        && a.reason.as_deref().is_none_or(|r| r.trim().is_empty())
    {
        return Err(Refusal::ReasonRequired {
            app: name.to_string(),
            environment: env.to_string(),
        });
    }
    Ok(())
}

/// Confirm the pending prunes of `name`: what will be deleted, once the annotation is written.
pub async fn confirm<S: Annotate>(
    src: &S,
    ops: &Ops,
    name: &str,
    approval: Option<&Approval>,
) -> Result<PruneWait, ActionError> {
    if ops.read_only || src.annotate_read_only() {
        let r = Refusal::ReadOnly {
            action: "confirm prune of",
            app: name.to_string(),
        };
        audit(ops, src, name, "", None, "refused", Some(r.to_string()));
        return Err(r.into());
    }
    let app = src.get_application(name, Refresh::None).await?;
    let env = ops.classifier.classify(&app).environment.name;
    if let Err(r) = check_approval(ops, name, &env, approval) {
        audit(ops, src, name, &env, None, "refused", Some(r.to_string()));
        return Err(r.into());
    }
    let reason = approval.and_then(|a| a.reason.as_deref());
    let Some(wait) = waiting(&app) else {
        let why =
            format!("{name} has no sync waiting for a prune confirmation: nothing to confirm");
        audit(ops, src, name, &env, reason, "refused", Some(why.clone()));
        return Err(ActionError::NotFound(why));
    };
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    match src.set_annotation(&app, DELETION_APPROVED, &now).await {
        Ok(()) => {
            audit(
                ops,
                src,
                name,
                &env,
                reason,
                "succeeded",
                Some(format!(
                    "{DELETION_APPROVED}={now}; will delete: {}",
                    wait.resources.join(", ")
                )),
            );
            Ok(wait)
        }
        Err(e) => {
            audit(ops, src, name, &env, reason, "failed", Some(e.to_string()));
            Err(e.into())
        }
    }
}
