//! Connections to the outside world: Kubernetes (kube-rs), the Argo CD API server, Git
//! (the system `git`), GitHub Actions and Jenkins. Each system has its own file and its own
//! error type. Sources turn outside data into `model` values and send [`Update`]s; they
//! never import ratatui and never decide policy (that is `ops`).
//!
//! Argo CD is reached two ways behind one trait, [`ArgoSource`]: the API server
//! (`argocd.rs`, API mode) or the Application CRs through a kubeconfig context (`kube.rs`,
//! core mode). [`Backend`] holds either.

pub mod argocd;
mod backend;
pub mod fate;
pub mod git;
pub mod github;
pub mod jenkins;
pub mod kube;
pub mod retry;
pub mod rollout;
pub(crate) mod split;
pub mod sse;
pub mod syncwindow;

pub use backend::{Backend, ConnectOptions};

use crate::model::{Application, InfoEntry, SyncResourceRef, SyncWindow, Update, WorkloadRollout};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::future::Future;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// What went wrong talking to Argo CD (either way), phrased for the operator.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SourceError {
    #[error("{server}: not authenticated ({detail}); {hint}")]
    Unauthorized {
        server: String,
        detail: String,
        hint: String,
    },
    #[error("permission denied: {0}")]
    Forbidden(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("conflict: {0}")]
    Conflict(String),
    /// The server understood and refused (auto-sync on, operation in progress, window).
    #[error("{0}")]
    Refused(String),
    #[error("{server} unreachable: {detail}")]
    Unreachable { server: String, detail: String },
    #[error("timed out after {seconds}s: {what}")]
    Timeout { what: String, seconds: u64 },
    /// Local configuration (kubeconfig, argocd CLI config, shipdeck config) is unusable.
    #[error("{0}")]
    Config(String),
    /// The request itself is wrong (an input the workflow does not declare): fix the
    /// command line, retrying will not help.
    #[error("{0}")]
    Invalid(String),
    /// The answer did not have the expected shape.
    #[error("unexpected answer from {server}: {detail}")]
    Protocol { server: String, detail: String },
}

/// How hard to ask Argo CD to look at Git again before answering.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Refresh {
    #[default]
    None,
    Normal,
    Hard,
}

/// One managed resource with its desired (Git) and live (cluster) state, for diffs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ManagedResource {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    /// Desired state; None when the resource should not exist (to be pruned).
    pub target: Option<Value>,
    /// Live state; None when it does not exist yet.
    pub live: Option<Value>,
}

/// A sync request. `initiated_by` and `info` carry the operator and the approval.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SyncRequest {
    pub revision: Option<String>,
    pub prune: bool,
    pub dry_run: bool,
    /// Partial sync; empty means the whole app.
    pub resources: Vec<SyncResourceRef>,
    /// `apply` strategy instead of the default `hook`.
    pub apply_strategy: bool,
    pub initiated_by: String,
    pub info: Vec<InfoEntry>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RollbackRequest {
    /// `status.history[].id` to return to.
    pub id: i64,
    pub prune: bool,
    pub dry_run: bool,
    pub initiated_by: String,
    pub info: Vec<InfoEntry>,
}

/// A Kubernetes Event about an application or one of its resources.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AppEvent {
    /// `Normal` or `Warning`.
    pub event_type: String,
    pub reason: String,
    pub message: String,
    /// `Kind/name` of the object the event is about.
    pub object: String,
    pub count: u32,
    pub last_seen: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SyncWindowsState {
    pub can_sync: bool,
    pub active: Vec<SyncWindow>,
    pub assigned: Vec<SyncWindow>,
}

/// Everything shipdeck asks of one Argo CD instance, in either mode.
pub trait ArgoSource: Send + Sync {
    /// The instance name every [`crate::model::AppId`] from this source carries.
    fn instance(&self) -> &str;

    /// Watch applications until `tx` closes: list, then stream changes; reconnect with
    /// backoff, relist after 410 Gone; report connection state as `Update::Connection`.
    fn watch_applications(&self, tx: mpsc::Sender<Update>) -> JoinHandle<()>;

    fn list_applications(
        &self,
    ) -> impl Future<Output = Result<Vec<Application>, SourceError>> + Send;

    /// Every application once, handed to `each` as it decodes, in list order (what
    /// `status` streams its rows from: no `Vec` of every app). The default walks the list.
    fn for_each_application(
        &self,
        each: &mut (dyn FnMut(Application) + Send),
    ) -> impl Future<Output = Result<(), SourceError>> + Send {
        async move {
            for a in self.list_applications().await? {
                each(a);
            }
            Ok(())
        }
    }

    fn get_application(
        &self,
        name: &str,
        refresh: Refresh,
    ) -> impl Future<Output = Result<Application, SourceError>> + Send;

    /// Desired and live state of every managed resource (API mode: managed-resources; core
    /// mode: Git manifests at the target revision against live objects).
    fn managed_resources(
        &self,
        app: &Application,
    ) -> impl Future<Output = Result<Vec<ManagedResource>, SourceError>> + Send;

    /// Like [`ArgoSource::managed_resources`], but with the desired state rendered from Git
    /// exactly as `app.spec` names it (source and revision), not as the server compares it:
    /// what a rollback to an earlier deployment would apply. A source that can only give
    /// the server's own comparison refuses (never answers with that comparison instead).
    fn managed_resources_as_specified(
        &self,
        app: &Application,
    ) -> impl Future<Output = Result<Vec<ManagedResource>, SourceError>> + Send {
        let _ = app;
        async {
            Err(SourceError::Refused(
                "this source cannot render Git at an earlier revision, so the diff of a rollback is not available"
                    .into(),
            ))
        }
    }

    /// Deployments of the app with their ReplicaSets and pods, once.
    fn workloads(
        &self,
        app: &Application,
    ) -> impl Future<Output = Result<Vec<WorkloadRollout>, SourceError>> + Send;

    /// Keep sending the app's workloads as they change until `tx` closes (only while
    /// someone looks at the app).
    fn watch_workloads(
        &self,
        app: &Application,
        tx: mpsc::Sender<Result<Vec<WorkloadRollout>, SourceError>>,
    ) -> JoinHandle<()>;

    fn events(
        &self,
        app: &Application,
    ) -> impl Future<Output = Result<Vec<AppEvent>, SourceError>> + Send;

    fn sync(
        &self,
        app: &Application,
        req: SyncRequest,
    ) -> impl Future<Output = Result<Application, SourceError>> + Send;

    fn rollback(
        &self,
        app: &Application,
        req: RollbackRequest,
    ) -> impl Future<Output = Result<Application, SourceError>> + Send;

    /// Turn automated sync on or off (a rollback with auto-sync on needs it off).
    fn set_auto_sync(
        &self,
        app: &Application,
        enabled: bool,
    ) -> impl Future<Output = Result<Application, SourceError>> + Send;

    /// The Argo CD RBAC action turning auto-sync on or off needs on this server: `update`
    /// (a patch of the sync policy), or the `toggle-auto-sync` resource action's where the
    /// server has it.
    fn auto_sync_rbac(&self, _app: &Application) -> impl Future<Output = &'static str> + Send {
        async { "update" }
    }

    /// May the current user do `action` (`get`, `sync`, `update`, `override`) on the app?
    fn can_i(
        &self,
        action: &str,
        app: &Application,
    ) -> impl Future<Output = Result<bool, SourceError>> + Send;

    fn sync_windows(
        &self,
        app: &Application,
    ) -> impl Future<Output = Result<SyncWindowsState, SourceError>> + Send;

    /// The last `tail` lines of a pod's logs (sanitized by the caller before drawing).
    fn pod_logs(
        &self,
        app: &Application,
        namespace: &str,
        pod: &str,
        tail: u32,
    ) -> impl Future<Output = Result<Vec<String>, SourceError>> + Send;

    /// Follow a pod's logs until `tx` closes: the last `tail` lines first, sent even when
    /// there are none (so a reader can say the pod has written nothing instead of waiting),
    /// then each batch of new lines. An error ends the stream. This default polls
    /// [`ArgoSource::pod_logs`]; sources that can stream override it.
    fn follow_pod_logs(
        &self,
        app: &Application,
        namespace: &str,
        pod: &str,
        tail: u32,
        tx: tokio::sync::mpsc::Sender<Result<Vec<String>, SourceError>>,
    ) -> impl Future<Output = ()> + Send {
        async move {
            let mut seen: Option<String> = None;
            let mut first = true;
            loop {
                let lines = match self.pod_logs(app, namespace, pod, tail).await {
                    Ok(l) => l,
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                };
                let start = seen
                    .as_ref()
                    .and_then(|s| lines.iter().rposition(|l| l == s))
                    .map_or(0, |i| i + 1);
                if let Some(last) = lines.last() {
                    seen = Some(last.clone());
                }
                let fresh = lines.get(start..).unwrap_or_default().to_vec();
                if (first || !fresh.is_empty()) && tx.send(Ok(fresh)).await.is_err() {
                    return;
                }
                first = false;
                tokio::select! {
                    _ = tx.closed() => return,
                    _ = tokio::time::sleep(std::time::Duration::from_secs(2)) => {}
                }
            }
        }
    }

    /// Who the server says the caller is (Argo CD `session/userinfo` in API mode, a
    /// `SelfSubjectReview` in core mode): the identity four-eyes approvals compare. Never a
    /// local name; a source that cannot ask refuses, so the caller fails closed.
    fn identity(&self) -> impl Future<Output = Result<String, SourceError>> + Send {
        async {
            Err(SourceError::Refused(
                "this source cannot ask the server who you are".into(),
            ))
        }
    }

    /// Set (Some) or remove (None) one annotation on the Application with a merge patch
    /// that carries the app's `resourceVersion`, so it lands only on the version read (a
    /// 409 Conflict otherwise, never retried here). Returns the app as written.
    fn annotate(
        &self,
        app: &Application,
        key: &str,
        value: Option<&str>,
    ) -> impl Future<Output = Result<Application, SourceError>> + Send {
        let _ = (app, key, value);
        async {
            Err(SourceError::Refused(
                "this source cannot write annotations on an Application".into(),
            ))
        }
    }

    /// Record a Kubernetes Event on the Application (audit of approvals and mutations).
    /// Ok(false) when this source cannot (API mode has no Event API; core mode without
    /// permission to create Events); the audit log has the record either way.
    fn record_event(
        &self,
        app: &Application,
        event: &AppEvent,
    ) -> impl Future<Output = Result<bool, SourceError>> + Send {
        let _ = (app, event);
        async { Ok(false) }
    }
}

/// Info entries a sync or rollback carries: the approval entries, plus the operator as
/// `initiated-by` when not already there (over the API, Argo CD takes `initiatedBy` from the
/// session, so the operator's name travels in `info` as well).
pub fn info_with_operator(info: &[InfoEntry], operator: &str) -> Vec<InfoEntry> {
    let mut out = info.to_vec();
    if !operator.is_empty() && !out.iter().any(|i| i.name == "initiated-by") {
        out.push(InfoEntry {
            name: "initiated-by".into(),
            value: operator.to_string(),
        });
    }
    out
}

/// The merge patch [`ArgoSource::annotate`] sends: the annotation (null removes it) and the
/// resourceVersion read, so the server refuses it (409) if the app changed since.
pub fn annotation_patch(app: &Application, key: &str, value: Option<&str>) -> Value {
    let mut meta = serde_json::json!({"annotations": {key: value}});
    if let Some(rv) = &app.metadata.resource_version {
        meta["resourceVersion"] = Value::String(rv.clone());
    }
    serde_json::json!({"metadata": meta})
}

/// A Kubernetes Event as the console shows it.
pub fn app_event(e: &k8s_openapi::api::core::v1::Event) -> AppEvent {
    let last_seen = e
        .last_timestamp
        .as_ref()
        .map(|t| t.0.to_string())
        .or_else(|| e.event_time.as_ref().map(|t| t.0.to_string()))
        .or_else(|| {
            e.metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.to_string())
        });
    AppEvent {
        event_type: e.type_.clone().unwrap_or_else(|| "Normal".into()),
        reason: e.reason.clone().unwrap_or_default(),
        message: e.message.clone().unwrap_or_default(),
        object: format!(
            "{}/{}",
            e.involved_object.kind.as_deref().unwrap_or(""),
            e.involved_object.name.as_deref().unwrap_or("")
        ),
        count: e.count.unwrap_or(1).max(0) as u32,
        last_seen,
    }
}
