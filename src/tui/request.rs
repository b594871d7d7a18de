//! What screens ask of the outside world, as data, and the answers tagged with the ticket of
//! the request they answer. A [`Provider`] runs each request in its own task; the console
//! loop receives the [`Response`]s and hands them to the screens, which keep only answers
//! to their latest request.

use crate::model::{AppId, Application, BuildRun, BuildSystem, WorkloadRollout};
use crate::sources::{AppEvent, SyncWindowsState};
use std::collections::BTreeMap;
use tokio::sync::mpsc;

/// Identifies one request; answers carry it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ticket(pub u64);

/// The one definition of each, used here as requests and answers carry them.
pub use crate::model::Commit;
pub use crate::ops::approval::Approval;
pub use crate::ops::diff::AppDiff;

#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// Desired vs live of every managed resource, as per-resource diffs.
    Diff {
        app: AppId,
    },
    /// What a rollback to an earlier deployment (history id) would change: live against
    /// the manifests at that deployment's revision, computed as for a sync.
    DiffToHistory {
        app: AppId,
        id: i64,
    },
    /// Workloads once.
    Workloads {
        app: AppId,
    },
    /// Workloads as they change, until cancelled.
    WatchWorkloads {
        app: AppId,
    },
    Events {
        app: AppId,
    },
    /// Git commits between two revisions of the app's repository.
    Commits {
        app: AppId,
        from: String,
        to: String,
    },
    /// The images each history entry of the app deployed (from its manifests in Git),
    /// oldest first, as `ops::plan::history_images` reads them.
    HistoryImages {
        app: AppId,
    },
    /// CI runs that built `sha`.
    CiRuns {
        app: AppId,
        sha: String,
    },
    /// Sync windows and the operator's permission to `action`.
    Permission {
        app: AppId,
        action: String,
    },
    SyncWindows {
        app: AppId,
    },
    Logs {
        app: AppId,
        namespace: String,
        pod: String,
        follow: bool,
    },
    Sync {
        app: AppId,
        approval: Option<Approval>,
    },
    /// `disable_auto_sync`: turn automated sync off first (Argo CD refuses a rollback
    /// while it is on); the operator was told.
    Rollback {
        app: AppId,
        id: i64,
        approval: Option<Approval>,
        disable_auto_sync: bool,
    },
    /// Four-eyes: approve the request waiting on the app (`ops::actions::approve`) as the
    /// identity the server reports; the sync or rollback it names is then followed.
    Approve {
        app: AppId,
        request: String,
        approval: Option<Approval>,
    },
    /// Who the server says the operator is on the app's instance (userinfo /
    /// SelfSubjectReview): `:pending` hides the operator's own requests.
    Identity {
        app: AppId,
    },
    /// Turn automated sync on or off (`ops::actions::auto_sync`).
    AutoSync {
        app: AppId,
        enabled: bool,
        approval: Option<Approval>,
    },
    Refresh {
        app: Option<AppId>,
        hard: bool,
    },
    /// Workflows and Jenkins jobs that can be triggered, with their inputs.
    Pipelines,
    Runs,
    Trigger {
        pipeline: Pipeline,
        inputs: BTreeMap<String, String>,
    },
    /// Follow one run until it completes.
    WatchRun {
        system: BuildSystem,
        pipeline: String,
        id: u64,
    },
    Rerun {
        system: BuildSystem,
        pipeline: String,
        id: u64,
    },
    Cancel {
        system: BuildSystem,
        pipeline: String,
        id: u64,
    },
    /// Make the promotion commit locally (clone, edit, commit) and show it.
    PromotePrepare {
        selection: Box<crate::ops::promote::Selection>,
    },
    /// Push a prepared promotion commit.
    PromotePush {
        prepared: Box<crate::ops::promote::Prepared>,
    },
    /// Drop a prepared promotion commit (the operator said no).
    PromoteCancel {
        prepared: Box<crate::ops::promote::Prepared>,
    },
    /// The image a GitHub run produced and where it goes next (its bump commit in the
    /// GitOps repo, `ops::actions::produced`).
    RunProduced {
        id: u64,
    },
    /// Incident freeze of an environment (`ops::freeze`), on every connected instance.
    Freeze {
        env: String,
        reason: String,
        until: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// Lift it; the approval names the environment (typed in the command).
    Unfreeze {
        env: String,
        approval: Option<Approval>,
    },
    /// The freezes open now (the header's line), over the projects the estate's apps use,
    /// by instance (what the console already knows: no list of every app to find them).
    Freezes {
        projects: Vec<(String, String)>,
    },
    /// Confirm the prunes the app's sync waits for (`ops::prune`); the approval names the app.
    ConfirmPrune {
        app: AppId,
        approval: Option<Approval>,
    },
    /// Delivery metrics of these apps (instance, app, service, environment) over the last
    /// `since` with the failure `window` (`ops::metrics`).
    Metrics {
        apps: Vec<MetricsApp>,
        since: chrono::Duration,
        window: chrono::Duration,
    },
}

/// One app a metrics request is about, as the estate holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsApp {
    pub id: AppId,
    pub app: Application,
    pub service: String,
    pub environment: String,
}

impl Request {
    /// The application the request is about, if any.
    pub fn app(&self) -> Option<&AppId> {
        match self {
            Request::Diff { app }
            | Request::DiffToHistory { app, .. }
            | Request::Workloads { app }
            | Request::WatchWorkloads { app }
            | Request::Events { app }
            | Request::Commits { app, .. }
            | Request::CiRuns { app, .. }
            | Request::HistoryImages { app }
            | Request::Permission { app, .. }
            | Request::SyncWindows { app }
            | Request::Logs { app, .. }
            | Request::Sync { app, .. }
            | Request::Rollback { app, .. }
            | Request::Approve { app, .. }
            | Request::Identity { app }
            | Request::AutoSync { app, .. }
            | Request::ConfirmPrune { app, .. } => Some(app),
            Request::Refresh { app, .. } => app.as_ref(),
            _ => None,
        }
    }

    /// Whether this request changes the world (read-only mode refuses these).
    pub fn mutates(&self) -> bool {
        matches!(
            self,
            Request::Sync { .. }
                | Request::Rollback { .. }
                | Request::Approve { .. }
                | Request::AutoSync { .. }
                | Request::Trigger { .. }
                | Request::Rerun { .. }
                | Request::Cancel { .. }
                | Request::PromotePrepare { .. }
                | Request::PromotePush { .. }
                | Request::PromoteCancel { .. }
                | Request::Freeze { .. }
                | Request::Unfreeze { .. }
                | Request::ConfirmPrune { .. }
        )
    }
}

/// The one shape of a triggerable pipeline and its inputs (ops owns it; both front ends
/// use it).
pub use crate::ops::actions::{Pipeline, PipelineInput};

#[derive(Debug, Clone)]
pub enum Payload {
    Diff(AppDiff),
    Workloads(Vec<WorkloadRollout>),
    Events(Vec<AppEvent>),
    Commits(Vec<Commit>),
    CiRuns(Vec<BuildRun>),
    /// Images per history entry, oldest first.
    HistoryImages(Vec<Vec<String>>),
    Allowed(bool),
    Windows(SyncWindowsState),
    /// More log lines (appended to what came before for the same ticket).
    LogLines(Vec<String>),
    /// An action was accepted; the text says what happens next.
    Accepted(String),
    /// Four-eyes: nothing was sent; the request is written and waits for a second
    /// approver (the text says which and how).
    Requested(String),
    /// The operator's identity as the server reports it.
    Identity(String),
    Pipelines(Vec<Pipeline>),
    Runs(Vec<BuildRun>),
    Run(BuildRun),
    Promotion(Box<crate::ops::promote::Prepared>),
    Produced {
        produced: Vec<crate::ops::actions::produced::Produced>,
        next: Vec<crate::ops::actions::produced::NextStop>,
    },
    Freezes(Vec<crate::ops::freeze::FreezeMark>),
    Metrics(crate::ops::metrics::Report),
}

#[derive(Debug, Clone)]
pub struct Response {
    pub ticket: Ticket,
    pub result: Result<Payload, String>,
}

/// Runs requests. Each call starts a task that sends one or more responses on `tx`
/// (streams send many) and returns a handle to stop it.
pub trait Provider: Send + Sync + 'static {
    /// `app` is the application the request is about, as the estate holds it now.
    fn submit(
        &self,
        ticket: Ticket,
        req: Request,
        app: Option<Application>,
        tx: mpsc::Sender<Response>,
    ) -> Option<tokio::task::AbortHandle>;

    /// One line for the header: what the console is connected to.
    fn describe(&self) -> String;

    /// Warnings that arose in the background since the last call (an undelivered
    /// notification), for the flash line and `:warnings`.
    fn notices(&self) -> Vec<String> {
        Vec::new()
    }

    /// Whether [`Provider::notices`] can ever have something (a notifier is configured);
    /// the loop looks only then, so a console without one never wakes for it.
    fn has_notices(&self) -> bool {
        false
    }
}

/// A provider with nothing behind it: every request fails and says why. Used by render
/// tests and when no source is configured.
pub struct Disconnected(pub String);

impl Provider for Disconnected {
    fn submit(
        &self,
        ticket: Ticket,
        _req: Request,
        _app: Option<Application>,
        tx: mpsc::Sender<Response>,
    ) -> Option<tokio::task::AbortHandle> {
        let _ = tx.try_send(Response {
            ticket,
            result: Err(self.0.clone()),
        });
        None
    }

    fn describe(&self) -> String {
        "not connected".into()
    }
}
