//! Policy and guards: whether a mutation may go ahead, decided from facts the caller has
//! already gathered (read-only mode, `can_i`, sync windows, the app's operation and
//! auto-sync, the environment's approval policy, the operator's approval). Pure: no I/O,
//! no clock. Every refusal says what to do next.

use super::approval::Approval;
use crate::model::{Application, ApprovalPolicy, Environment};
use crate::sources::SyncWindowsState;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// An environment's rules for changes (DESIGN.md "Environments").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EnvPolicy {
    pub approval: ApprovalPolicy,
    /// How many operators must approve. 2 or more: four-eyes (one requests, a different
    /// identity approves; `ops::foureyes`).
    pub approvers: u32,
    /// Whether a prune may go ahead without an extra confirmation.
    pub prune_without_confirmation: bool,
    /// How long a four-eyes request stands (`4h`, `90m`); None: [`super::foureyes::DEFAULT_TTL`].
    pub approval_request_ttl: Option<String>,
}

impl Default for EnvPolicy {
    fn default() -> Self {
        Self {
            approval: ApprovalPolicy::None,
            approvers: 1,
            prune_without_confirmation: true,
            approval_request_ttl: None,
        }
    }
}

impl EnvPolicy {
    /// The compiled-in default, failing closed: whatever reads as production (`prod`, `prd`,
    /// `production`, `live`, `prod-eu`, `eu-prod`, ...) requires an approval with a reason;
    /// dev and staging in the vocabulary's spellings need nothing; every other environment
    /// (one the vocabulary does not know, or `other` for an app with no hint at all) needs
    /// at least a typed confirmation. Nothing unknown falls back to `none`.
    pub fn default_for(env: &str) -> Self {
        use super::classify::{canonical, reads_as_production};
        if reads_as_production(env) {
            Self {
                approval: ApprovalPolicy::Required,
                approvers: 1,
                prune_without_confirmation: false,
                approval_request_ttl: None,
            }
        } else if canonical(env).is_some() {
            Self::default()
        } else {
            Self {
                approval: ApprovalPolicy::Confirm,
                approvers: 1,
                prune_without_confirmation: false,
                approval_request_ttl: None,
            }
        }
    }

    /// The policy's name as config spells it, for the board and `status`.
    pub fn label(&self) -> &'static str {
        match self.approval {
            ApprovalPolicy::None => "none",
            ApprovalPolicy::Confirm => "confirm",
            ApprovalPolicy::Required => "required",
        }
    }

    pub fn gated(&self) -> bool {
        self.approval != ApprovalPolicy::None || self.four_eyes()
    }

    /// Two or more approvers: a request by one identity, an approval by another.
    pub fn four_eyes(&self) -> bool {
        self.approvers > 1
    }

    /// How long a request stands; an unreadable value is an error (fail closed).
    pub fn request_ttl(&self) -> Result<chrono::Duration, String> {
        super::foureyes::parse_ttl(
            self.approval_request_ttl
                .as_deref()
                .unwrap_or(super::foureyes::DEFAULT_TTL),
        )
    }
}

/// Per-environment policies from config over the compiled-in defaults.
#[derive(Debug, Clone, Default)]
pub struct Policies {
    configured: BTreeMap<String, EnvPolicy>,
}

impl Policies {
    pub fn new(configured: BTreeMap<String, EnvPolicy>) -> Self {
        Self { configured }
    }

    pub fn for_env(&self, env: &Environment) -> EnvPolicy {
        self.for_env_name(&env.name)
    }

    pub fn for_env_name(&self, env: &str) -> EnvPolicy {
        self.configured
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(env))
            .map(|(_, p)| p.clone())
            .unwrap_or_else(|| EnvPolicy::default_for(env))
    }
}

/// The mutations shipdeck guards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mutation {
    Sync,
    Rollback,
    Build,
    DisableAutoSync,
}

impl Mutation {
    pub fn as_str(self) -> &'static str {
        match self {
            Mutation::Sync => "sync",
            Mutation::Rollback => "rollback",
            Mutation::Build => "build",
            Mutation::DisableAutoSync => "disable auto-sync of",
        }
    }

    /// The Argo CD RBAC action `can_i` is asked about.
    pub fn rbac_action(self) -> &'static str {
        match self {
            Mutation::Sync | Mutation::Rollback => "sync",
            Mutation::Build => "get",
            Mutation::DisableAutoSync => "update",
        }
    }
}

/// Why a mutation was refused; each message tells the operator what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("read-only mode: {action} {app} refused; run without --read-only to act")]
    ReadOnly { action: &'static str, app: String },
    #[error(
        "{app} ({environment}) needs approval: rerun with --approve {app} --reason '...' (the approval names the app again)"
    )]
    NeedsApproval { app: String, environment: String },
    #[error(
        "{app} ({environment}) needs confirmation: rerun with --approve {app} (a --reason is welcome)"
    )]
    NeedsConfirmation { app: String, environment: String },
    #[error("the approval names {named}, not {app}: approve with --approve {app}")]
    ApprovalNamesOtherApp { named: String, app: String },
    #[error("{app} ({environment}) needs a reason with its approval: add --reason '...'")]
    ReasonRequired { app: String, environment: String },
    #[error(
        "{app} ({environment}) requires {approvers} approvers, and turning auto-sync on would let Git deploy without the second approval: refused; sync through a four-eyes request instead"
    )]
    TooFewApprovers {
        app: String,
        environment: String,
        approvers: u32,
    },
    #[error(
        "permission denied: you may not {action} {app} (Argo CD RBAC `{rbac}`); ask an admin for a role that allows it"
    )]
    PermissionDenied {
        action: &'static str,
        app: String,
        rbac: &'static str,
    },
    #[error(
        "cannot sync {app}: blocked by sync window{detail}; wait until the window allows it, or ask the project owner to allow manual syncs"
    )]
    SyncWindow { app: String, detail: String },
    #[error(
        "{app}: another operation is already in progress; wait for it (shipdeck sync {app} --wait) or terminate it in Argo CD"
    )]
    OperationRunning { app: String },
    #[error(
        "rollback cannot be initiated when auto-sync is enabled on {app}: rerun with --disable-auto-sync (auto-sync then stays disabled until you enable it again)"
    )]
    AutoSyncOn { app: String },
    #[error(
        "{app} ({environment}): prune needs an approval in this environment: rerun with --approve {app}"
    )]
    PruneNeedsConfirmation { app: String, environment: String },
    /// Four-eyes: the first approval became a request on the Application; nothing was sent.
    #[error("{0}")]
    AwaitingSecondApprover(Box<Awaiting>),
    #[error(
        "cannot tell who you are as the server sees it ({detail}), and four-eyes approvals compare exactly that: refused; log in again or check the kubeconfig context"
    )]
    IdentityUnknown { detail: String },
    #[error(
        "{who} requested {id} for {app}, so {who} cannot approve it: a different operator must approve"
    )]
    SelfApproval {
        app: String,
        id: String,
        who: String,
    },
    #[error(
        "{app} has no approval request waiting; request one with `shipdeck sync {app} --approve {app} --reason '...'`"
    )]
    NoRequest { app: String },
    #[error(
        "{app}'s waiting request is {found}, not {id}: look again (`shipdeck approve {app}` without --request lists it)"
    )]
    OtherRequest {
        app: String,
        id: String,
        found: String,
    },
    #[error("request {id} for {app} is {standing}: request it again")]
    RequestStale {
        app: String,
        id: String,
        standing: String,
    },
    #[error("{0}")]
    RequestUnreadable(String),
    #[error(
        "{app} already has request {id} by {requested_by} waiting (until {expires}): approve it (a different operator) or let it expire; it is not overwritten"
    )]
    RequestPending {
        app: String,
        id: String,
        requested_by: String,
        expires: String,
    },
    #[error(
        "request {id} for {app} changed while it was being approved (someone else approved or replaced it): nothing was sent; look again"
    )]
    RequestRaced { app: String, id: String },
    #[error("{0}")]
    RequestConfig(String),
}

impl Refusal {
    /// Permission problems exit 4, every other refusal 3.
    pub fn is_permission(&self) -> bool {
        matches!(
            self,
            Refusal::PermissionDenied { .. } | Refusal::IdentityUnknown { .. }
        )
    }
}

/// A four-eyes request just written: what the requester hears.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Awaiting {
    pub action: &'static str,
    pub app: String,
    pub environment: String,
    pub id: String,
    pub requested_by: String,
    pub expires: String,
}

impl std::fmt::Display for Awaiting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Awaiting {
            action,
            app,
            environment,
            id,
            requested_by,
            expires,
        } = self;
        write!(
            f,
            "{action} of {app} ({environment}) not sent: it needs a second approver; request {id} by {requested_by} is written on the Application until {expires}; a different operator approves with `shipdeck approve {app} --request {id} --approve {app} --reason '...'` (or on the console's :pending)"
        )
    }
}

/// The facts a guard decides on.
#[derive(Debug, Clone)]
pub struct GuardInput<'a> {
    pub mutation: Mutation,
    pub app: &'a Application,
    pub environment: &'a str,
    pub policy: &'a EnvPolicy,
    pub read_only: bool,
    /// Answer of `can_i` for [`Mutation::rbac_action`]; None when it could not be asked.
    pub permitted: Option<bool>,
    pub windows: Option<&'a SyncWindowsState>,
    pub approval: Option<&'a Approval>,
    /// The operator asked to disable auto-sync before a rollback.
    pub disable_auto_sync: bool,
    pub prune: bool,
}

/// What the guard allows, and how.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Clearance {
    /// Turn auto-sync off first (a rollback the operator asked to force).
    pub disable_auto_sync_first: bool,
    /// The environment is gated, so the approval must be recorded before anything is sent.
    pub approval_required: bool,
    /// Four-eyes: this approval is the first of `approvers`; a request is written instead of
    /// sending, and only a different identity's approval of it sends.
    pub second_approver_required: bool,
    /// Things the operator should hear ("auto-sync stays disabled").
    pub notes: Vec<String>,
}

/// Decide. Order matters for the message an operator sees: read-only, then permission
/// (no point asking for an approval one may not use), then what is in the way (an
/// operation, a window, auto-sync), then the approval.
pub fn check(input: &GuardInput<'_>) -> Result<Clearance, Refusal> {
    let app = input.app.metadata.name.clone();
    let environment = input.environment.to_string();
    let mut clearance = Clearance::default();
    if input.read_only {
        return Err(Refusal::ReadOnly {
            action: input.mutation.as_str(),
            app,
        });
    }
    if input.permitted == Some(false) {
        return Err(Refusal::PermissionDenied {
            action: input.mutation.as_str(),
            app,
            rbac: input.mutation.rbac_action(),
        });
    }
    let deploys = matches!(input.mutation, Mutation::Sync | Mutation::Rollback);
    if !deploys {
        return Ok(clearance);
    }
    if input.app.operation_in_progress() {
        return Err(Refusal::OperationRunning { app });
    }
    if let Some(w) = input.windows
        && !w.can_sync
    {
        let names: Vec<String> = w
            .active
            .iter()
            .map(|x| format!("{} {} for {}", x.kind, x.schedule, x.duration))
            .collect();
        let detail = if names.is_empty() {
            String::new()
        } else {
            format!(" ({})", names.join(", "))
        };
        return Err(Refusal::SyncWindow { app, detail });
    }
    if input.mutation == Mutation::Rollback && input.app.auto_sync() {
        if !input.disable_auto_sync {
            return Err(Refusal::AutoSyncOn { app });
        }
        clearance.disable_auto_sync_first = true;
        clearance.notes.push(format!(
            "auto-sync of {app} will be disabled before the rollback and stays disabled: enable it again in Argo CD when Git holds the version you want"
        ));
    }
    let policy = input.policy;
    let prune_gate = input.prune && !policy.prune_without_confirmation;
    if !policy.gated() && !prune_gate {
        return Ok(clearance);
    }
    clearance.approval_required = true;
    let Some(approval) = input.approval else {
        return Err(match policy.approval {
            _ if policy.four_eyes() => Refusal::NeedsApproval { app, environment },
            ApprovalPolicy::Required => Refusal::NeedsApproval { app, environment },
            ApprovalPolicy::Confirm => Refusal::NeedsConfirmation { app, environment },
            ApprovalPolicy::None => Refusal::PruneNeedsConfirmation { app, environment },
        });
    };
    if approval.named_app != app {
        return Err(Refusal::ApprovalNamesOtherApp {
            named: approval.named_app.clone(),
            app,
        });
    }
    if (policy.approval == ApprovalPolicy::Required || policy.four_eyes())
        && approval
            .reason
            .as_deref()
            .is_none_or(|r| r.trim().is_empty())
    {
        return Err(Refusal::ReasonRequired { app, environment });
    }
    clearance.second_approver_required = policy.four_eyes();
    Ok(clearance)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AutomatedSync, Operation, SyncPolicy, SyncWindow};

    fn app(name: &str) -> Application {
        let mut a = Application::default();
        a.metadata.name = name.into();
        a
    }

    fn input<'a>(m: Mutation, app: &'a Application, policy: &'a EnvPolicy) -> GuardInput<'a> {
        GuardInput {
            mutation: m,
            app,
            environment: "prod",
            policy,
            read_only: false,
            permitted: Some(true),
            windows: None,
            approval: None,
            disable_auto_sync: false,
            prune: false,
        }
    }

    fn approval(app: &str, reason: Option<&str>) -> Approval {
        Approval {
            named_app: app.into(),
            reason: reason.map(Into::into),
            operator: "ana".into(),
        }
    }

    #[test]
    fn prod_needs_an_approval_that_names_the_app_and_gives_a_reason() {
        let a = app("shop-prod");
        let p = Policies::default().for_env_name("prod");
        let err = check(&input(Mutation::Sync, &a, &p)).err();
        let msg = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(msg.contains("--approve shop-prod --reason"), "{msg}");
        let ok = approval("shop-prod", Some("release 42"));
        let wrong = approval("shop-dev", Some("x"));
        let bare = approval("shop-prod", None);
        let mut i = input(Mutation::Sync, &a, &p);
        i.approval = Some(&wrong);
        assert!(matches!(
            check(&i),
            Err(Refusal::ApprovalNamesOtherApp { .. })
        ));
        i.approval = Some(&bare);
        assert!(matches!(check(&i), Err(Refusal::ReasonRequired { .. })));
        i.approval = Some(&ok);
        let c = check(&i);
        assert!(
            matches!(
                c,
                Ok(Clearance {
                    approval_required: true,
                    ..
                })
            ),
            "{c:?}"
        );
    }

    #[test]
    fn dev_needs_nothing_and_confirm_needs_no_reason() {
        let a = app("shop-dev");
        let p = Policies::default().for_env_name("dev");
        assert_eq!(
            check(&input(Mutation::Sync, &a, &p)),
            Ok(Clearance::default())
        );
        let confirm = EnvPolicy {
            approval: ApprovalPolicy::Confirm,
            ..EnvPolicy::default()
        };
        let mut i = input(Mutation::Sync, &a, &confirm);
        assert!(matches!(check(&i), Err(Refusal::NeedsConfirmation { .. })));
        let ap = approval("shop-dev", None);
        i.approval = Some(&ap);
        assert!(check(&i).is_ok());
    }

    #[test]
    fn read_only_and_permission_come_first() {
        let a = app("shop-prod");
        let p = EnvPolicy::default_for("prod");
        let mut i = input(Mutation::Build, &a, &p);
        i.read_only = true;
        assert!(matches!(check(&i), Err(Refusal::ReadOnly { .. })));
        let mut i = input(Mutation::Sync, &a, &p);
        i.permitted = Some(false);
        let e = check(&i).err();
        assert!(e.as_ref().is_some_and(Refusal::is_permission), "{e:?}");
    }

    #[test]
    fn operation_and_window_block_deploys() {
        let mut a = app("shop-dev");
        let p = EnvPolicy::default();
        a.operation = Some(Operation::default());
        assert!(matches!(
            check(&input(Mutation::Sync, &a, &p)),
            Err(Refusal::OperationRunning { .. })
        ));
        a.operation = None;
        let w = SyncWindowsState {
            can_sync: false,
            active: vec![SyncWindow {
                kind: "deny".into(),
                schedule: "0 22 * * *".into(),
                duration: "8h".into(),
                ..Default::default()
            }],
            assigned: vec![],
        };
        let mut i = input(Mutation::Rollback, &a, &p);
        i.windows = Some(&w);
        let msg = check(&i).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            msg.contains("blocked by sync window (deny 0 22 * * * for 8h)"),
            "{msg}"
        );
    }

    #[test]
    fn rollback_with_auto_sync_is_refused_unless_asked_to_disable() {
        let mut a = app("shop-dev");
        a.spec.sync_policy = Some(SyncPolicy {
            automated: Some(AutomatedSync::default()),
            ..Default::default()
        });
        let p = EnvPolicy::default();
        let mut i = input(Mutation::Rollback, &a, &p);
        assert!(matches!(check(&i), Err(Refusal::AutoSyncOn { .. })));
        i.disable_auto_sync = true;
        let c = check(&i).unwrap_or_default();
        assert!(c.disable_auto_sync_first);
        assert!(c.notes[0].contains("stays disabled"));
        // A sync with auto-sync on is fine.
        assert!(check(&input(Mutation::Sync, &a, &p)).is_ok());
    }

    #[test]
    fn configured_policies_override_defaults() {
        let mut m = BTreeMap::new();
        m.insert(
            "staging".to_string(),
            EnvPolicy {
                approval: ApprovalPolicy::Confirm,
                ..EnvPolicy::default()
            },
        );
        let p = Policies::new(m);
        assert_eq!(p.for_env_name("staging").approval, ApprovalPolicy::Confirm);
        assert_eq!(
            p.for_env_name("production").approval,
            ApprovalPolicy::Required
        );
        assert_eq!(p.for_env_name("dev").approval, ApprovalPolicy::None);
    }

    #[test]
    fn nothing_unknown_falls_back_to_none() {
        let p = Policies::default();
        for env in [
            "prod",
            "prd",
            "production",
            "live",
            "prod-eu",
            "eu-prod",
            "PROD",
        ] {
            assert_eq!(
                p.for_env_name(env).approval,
                ApprovalPolicy::Required,
                "{env}"
            );
        }
        for env in ["other", "build", "sandbox", "preprod", "qa2", ""] {
            assert_eq!(
                p.for_env_name(env).approval,
                ApprovalPolicy::Confirm,
                "{env}"
            );
            assert!(p.for_env_name(env).gated(), "{env}");
        }
        for env in ["dev", "development", "staging", "stg", "qa", "test"] {
            assert_eq!(p.for_env_name(env).approval, ApprovalPolicy::None, "{env}");
        }
        // An unknown environment refuses a sync without a confirmation.
        let a = app("ledger");
        let pol = p.for_env_name("other");
        let mut i = input(Mutation::Sync, &a, &pol);
        i.environment = "other";
        assert!(matches!(check(&i), Err(Refusal::NeedsConfirmation { .. })));
    }
}

/// Everything that stands in the way of a mutation apart from the approval itself (which a
/// screen asks for separately), in the order [`check`] refuses. Found by asking [`check`]
/// again with each obstacle it names set aside, so a screen lists exactly what the headless
/// `sync`/`rollback` would refuse and never decides anything of its own. Empty when only an
/// approval (or nothing) is missing.
pub fn obstacles(input: &GuardInput<'_>) -> Vec<Refusal> {
    let mut out = Vec::new();
    let mut facts = input.clone();
    let mut idle_app: Option<Application> = None;
    // One round per kind of obstacle at most; the bound only guards against a loop.
    for _ in 0..8 {
        let app = idle_app.as_ref().unwrap_or(input.app);
        let refusal = match check(&GuardInput {
            app,
            ..facts.clone()
        }) {
            Ok(_) => break,
            Err(r) => r,
        };
        match &refusal {
            Refusal::ReadOnly { .. } => facts.read_only = false,
            Refusal::PermissionDenied { .. } => facts.permitted = Some(true),
            Refusal::OperationRunning { .. } => {
                let mut a = app.clone();
                a.operation = None;
                a.status.operation_state = None;
                idle_app = Some(a);
            }
            Refusal::SyncWindow { .. } => facts.windows = None,
            Refusal::AutoSyncOn { .. } => facts.disable_auto_sync = true,
            // What is left is about the approval (or how many approvers): not an obstacle
            // the approval screen can show before the operator gives one.
            _ => break,
        }
        out.push(refusal);
    }
    out
}

#[cfg(test)]
mod obstacles_tests {
    use super::*;
    use crate::model::Operation;

    #[test]
    fn obstacles_lists_every_refusal_but_the_approval_in_check_order() {
        let mut a = Application::default();
        a.metadata.name = "shop-prod".into();
        a.operation = Some(Operation::default());
        let p = EnvPolicy::default_for("prod");
        let w = SyncWindowsState::default();
        let i = GuardInput {
            mutation: Mutation::Sync,
            app: &a,
            environment: "prod",
            policy: &p,
            read_only: true,
            permitted: Some(false),
            windows: Some(&w),
            approval: None,
            disable_auto_sync: false,
            prune: false,
        };
        let o = obstacles(&i);
        assert!(
            matches!(
                &o[..],
                [
                    Refusal::ReadOnly { .. },
                    Refusal::PermissionDenied { .. },
                    Refusal::OperationRunning { .. },
                    Refusal::SyncWindow { .. },
                ]
            ),
            "{o:?}"
        );
        // The first obstacle is what check itself refuses with.
        assert_eq!(check(&i).err().as_ref(), o.first());
        // Nothing in the way but the missing approval: no obstacle.
        let mut idle = a.clone();
        idle.operation = None;
        let clear = GuardInput {
            app: &idle,
            read_only: false,
            permitted: Some(true),
            windows: None,
            ..i.clone()
        };
        assert!(obstacles(&clear).is_empty());
        assert!(matches!(check(&clear), Err(Refusal::NeedsApproval { .. })));
    }
}
