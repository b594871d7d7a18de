//! Four-eyes in the actions: where a sync or rollback of an `approvers = 2` environment
//! writes a request instead of sending ([`write_request`]), and where a different identity's
//! approval of that request is checked and the request consumed before anything is sent
//! ([`consume`]). [`approve`] is the entry point of the second operator.

use super::{
    ActionError, ActionOutcome, Ops, Prepared, RollbackOptions, SyncOptions, audit_refusal,
    rollback, sync,
};
use crate::model::{InfoEntry, Revision};
use crate::ops::approval::{self, Approval};
use crate::ops::audit::AuditRecord;
use crate::ops::foureyes::{self, ApprovalRequest, RequestAction, Standing};
use crate::ops::policy::Refusal;
use crate::sources::{ArgoSource, Refresh, SourceError};

/// A request the second operator is approving (carried in the options to the send).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FourEyes {
    pub request: ApprovalRequest,
}

/// The identity the server reports, or a refusal (fail closed: never a local name).
async fn identity<S: ArgoSource>(src: &S) -> Result<String, Refusal> {
    match src.identity().await {
        Ok(who) => Ok(crate::model::text::sanitize(&who).into_owned()),
        Err(e) => Err(Refusal::IdentityUnknown {
            detail: e.to_string(),
        }),
    }
}

fn refuse(ops: &Ops, p: &Prepared, action: &str, r: Refusal) -> ActionError {
    audit_refusal(ops, &p.id.instance, &p.id.name, &p.environment, action, &r);
    r.into()
}

/// Write the request (the first approval) on the Application and audit it (`request`,
/// `requested`). Always ends in an error for the caller: on success the refusal
/// [`Refusal::AwaitingSecondApprover`] that says nothing was sent and what happens next.
#[allow(clippy::too_many_arguments)]
pub(super) async fn write_request<S: ArgoSource>(
    src: &S,
    ops: &Ops,
    p: &Prepared,
    action: RequestAction,
    approval: Option<&Approval>,
    target: (Option<Revision>, Option<i64>),
    digest: Option<String>,
    prune: bool,
) -> ActionError {
    let word = action.as_str();
    let who = match identity(src).await {
        Ok(w) => w,
        Err(r) => return refuse(ops, p, "request", r),
    };
    let policy = ops.policies.for_env_name(&p.environment);
    let ttl = match policy.request_ttl() {
        Ok(t) => t,
        Err(e) => {
            let r = Refusal::RequestConfig(format!(
                "approval_request_ttl of {}: {e}; fix the config (nothing was requested)",
                p.environment
            ));
            return refuse(ops, p, "request", r);
        }
    };
    if digest.is_none() {
        let r = Refusal::RequestConfig(format!(
            "the diff of {} cannot be computed, so a request could not be bound to it: nothing was requested",
            p.id.name
        ));
        return refuse(ops, p, "request", r);
    }
    let now = chrono::Utc::now();
    // A request someone else is still waiting on is not overwritten.
    if let Some(Ok(existing)) = foureyes::request_of(&p.app)
        && existing.requested_by != who
        && now < existing.expires
    {
        let r = Refusal::RequestPending {
            app: p.id.name.clone(),
            id: existing.id.clone(),
            requested_by: existing.requested_by.clone(),
            expires: existing.expires.to_rfc3339(),
        };
        return refuse(ops, p, "request", r);
    }
    let req = ApprovalRequest {
        id: approval::new_id(now),
        action,
        requested_by: who.clone(),
        reason: approval
            .and_then(|a| a.reason.clone())
            .unwrap_or_default()
            .trim()
            .to_string(),
        at: now,
        expires: now + ttl,
        environment: p.environment.clone(),
        target_revision: target.0.as_ref().map(|r| r.0.clone()),
        diff_digest: digest.clone(),
        history_id: target.1,
        prune,
        approvers: policy.approvers,
    };
    let json = match serde_json::to_string(&req) {
        Ok(j) => j,
        Err(e) => return ActionError::Failed(format!("request not written: {e}")),
    };
    let written = src
        .annotate(&p.app, foureyes::ANNOTATION, Some(&json))
        .await;
    let rec = AuditRecord {
        at: now,
        who: who.clone(),
        action: "request".into(),
        instance: p.id.instance.clone(),
        app: p.id.name.clone(),
        environment: p.environment.clone(),
        from_revision: crate::ops::estate::deployed_revision(&p.app),
        to_revision: target.0.clone(),
        diff_digest: digest,
        approval_id: Some(req.id.clone()),
        reason: Some(req.reason.clone()).filter(|r| !r.is_empty()),
        outcome: if written.is_ok() {
            "requested"
        } else {
            "failed"
        }
        .into(),
        detail: written.as_ref().err().map(|e| e.to_string()),
        dry_run: false,
    };
    if let Err(e) = ops.audit.append(&rec) {
        tracing::warn!("audit log not written: {e}");
    }
    if let Err(e) = written {
        return e.into();
    }
    Refusal::AwaitingSecondApprover(Box::new(crate::ops::policy::Awaiting {
        action: word,
        app: p.id.name.clone(),
        environment: p.environment.clone(),
        id: req.id,
        requested_by: who,
        expires: req.expires.format("%Y-%m-%d %H:%M UTC").to_string(),
    }))
    .into()
}

/// The second approval: the approver is a different identity than the requester, the
/// request still stands for what would be sent now (`git_target` and `digest`), and it is
/// removed from the Application (bound to the version read) before anything is sent, so it
/// is used once. Returns the info entries the operation carries about the request.
#[allow(clippy::too_many_arguments)]
pub(super) async fn consume<S: ArgoSource>(
    src: &S,
    ops: &Ops,
    p: &Prepared,
    fe: &FourEyes,
    git_target: Option<&Revision>,
    digest: Option<&str>,
    approval: &mut Approval,
    dry_run: bool,
) -> Result<Vec<InfoEntry>, ActionError> {
    let req = &fe.request;
    let who = identity(src)
        .await
        .map_err(|r| refuse(ops, p, "approve", r))?;
    if who == req.requested_by {
        return Err(refuse(
            ops,
            p,
            "approve",
            Refusal::SelfApproval {
                app: p.id.name.clone(),
                id: req.id.clone(),
                who,
            },
        ));
    }
    // What is on the Application now must still be this request.
    match foureyes::request_of(&p.app) {
        Some(Ok(now)) if now == *req => {}
        _ => {
            return Err(refuse(
                ops,
                p,
                "approve",
                Refusal::RequestRaced {
                    app: p.id.name.clone(),
                    id: req.id.clone(),
                },
            ));
        }
    }
    let standing = foureyes::standing(
        req,
        chrono::Utc::now(),
        git_target.map(|r| r.0.as_str()),
        digest,
    );
    if standing != Standing::Waiting {
        return Err(refuse(
            ops,
            p,
            "approve",
            Refusal::RequestStale {
                app: p.id.name.clone(),
                id: req.id.clone(),
                standing: standing.describe(),
            },
        ));
    }
    // A dry run sends nothing, so the request stays for the real approval.
    let removed = if dry_run {
        Ok(p.app.clone())
    } else {
        src.annotate(&p.app, foureyes::ANNOTATION, None).await
    };
    match removed {
        Ok(_) => {}
        Err(SourceError::Conflict(_)) => {
            return Err(refuse(
                ops,
                p,
                "approve",
                Refusal::RequestRaced {
                    app: p.id.name.clone(),
                    id: req.id.clone(),
                },
            ));
        }
        Err(e) => return Err(e.into()),
    }
    approval.operator = who;
    let mut info = vec![InfoEntry {
        name: foureyes::INFO_REQUESTED_BY.into(),
        value: req.requested_by.clone(),
    }];
    if !req.reason.is_empty() {
        info.push(InfoEntry {
            name: foureyes::INFO_REQUEST_REASON.into(),
            value: req.reason.clone(),
        });
    }
    Ok(info)
}

/// The request waiting on `name`, read fresh (a normal refresh, so Git having moved shows).
pub async fn pending<S: ArgoSource>(
    src: &S,
    name: &str,
) -> Result<(crate::model::Application, ApprovalRequest), ActionError> {
    let app = src.get_application(name, Refresh::Normal).await?;
    match foureyes::request_of(&app) {
        None => Err(Refusal::NoRequest {
            app: name.to_string(),
        }
        .into()),
        Some(Err(e)) => Err(Refusal::RequestUnreadable(e).into()),
        Some(Ok(r)) => Ok((app, r)),
    }
}

/// What the second operator gives.
#[derive(Debug, Clone, Default)]
pub struct ApproveOptions {
    /// The request id the approver saw (`--request`); None takes the one waiting.
    pub request: Option<String>,
    pub approval: Option<Approval>,
    pub dry_run: bool,
    /// For a rollback with auto-sync on: turn it off first (it stays off).
    pub disable_auto_sync: bool,
}

/// Approve the request waiting on `name` as a different identity and send what it asks
/// for (the sync pinned to the requested revision, or the rollback to its history id), with
/// both names in the operation's `info`. Every refusal is audited as `approve`.
pub async fn approve<S: ArgoSource>(
    src: &S,
    ops: &Ops,
    name: &str,
    opts: ApproveOptions,
) -> Result<ActionOutcome, ActionError> {
    if ops.read_only {
        let r = Refusal::ReadOnly {
            action: "approve",
            app: name.to_string(),
        };
        audit_refusal(ops, src.instance(), name, "", "approve", &r);
        return Err(r.into());
    }
    let (_, req) = match pending(src, name).await {
        Ok(x) => x,
        Err(ActionError::Refused(r)) => {
            audit_refusal(ops, src.instance(), name, "", "approve", &r);
            return Err(r.into());
        }
        Err(e) => return Err(e),
    };
    if let Some(id) = &opts.request
        && *id != req.id
    {
        let r = Refusal::OtherRequest {
            app: name.to_string(),
            id: id.clone(),
            found: req.id.clone(),
        };
        audit_refusal(ops, src.instance(), name, &req.environment, "approve", &r);
        return Err(r.into());
    }
    let fe = Some(FourEyes {
        request: req.clone(),
    });
    match req.action {
        RequestAction::Sync => {
            sync(
                src,
                ops,
                name,
                SyncOptions {
                    revision: req.target_revision.clone(),
                    prune: req.prune,
                    dry_run: opts.dry_run,
                    resources: Vec::new(),
                    approval: opts.approval,
                    four_eyes: fe,
                },
            )
            .await
        }
        RequestAction::Rollback => {
            rollback(
                src,
                ops,
                name,
                RollbackOptions {
                    id: req.history_id,
                    prune: req.prune,
                    dry_run: opts.dry_run,
                    disable_auto_sync: opts.disable_auto_sync,
                    approval: opts.approval,
                    four_eyes: fe,
                },
            )
            .await
        }
    }
}
