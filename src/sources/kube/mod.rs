//! Core mode: Argo CD reached through nothing but a kubeconfig context for the cluster it
//! runs in. Applications and AppProjects are read and watched as custom resources; sync and
//! rollback write `.operation` exactly as `argocd --core` does; workloads, events and logs
//! come from the destination clusters through the kubeconfig contexts that reach them; the
//! live diff renders the Git manifests itself. Decisions (may this sync run?) belong to
//! `ops`; this file only reports facts and performs what it is told.

mod apps;
mod compact;
mod foureyes;
pub mod kubeconfig;
mod paged;
mod projects;
mod render;
pub(crate) use render::{desired as render_desired, pair_with_live};
mod workloads;

pub use apps::{
    ANOTHER_OPERATION, AUTO_SYNC_OFF_SINCE, ROLLBACK_AUTO_SYNC, auto_sync_patch,
    rollback_operation, sync_operation,
};

use super::git::GitMirrors;
use super::retry::{self, Transience};
use super::{
    AppEvent, ArgoSource, ManagedResource, Refresh, RollbackRequest, SourceError, SyncRequest,
    SyncWindowsState,
};
use crate::model::{Application, Update, WorkloadRollout};
use kube::config::Kubeconfig;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// How to reach Argo CD in core mode.
#[derive(Debug, Clone)]
pub struct CoreOptions {
    /// Kubeconfig context of the cluster running Argo CD; None = current context.
    pub context: Option<String>,
    /// Namespace of Argo CD's Applications (default `argocd`).
    pub namespace: String,
    /// Instance name apps carry; None = the context name.
    pub instance: Option<String>,
    /// Destination server URL or cluster name -> kubeconfig context, from config.
    pub clusters: BTreeMap<String, String>,
    /// Git mirrors for rendering manifests; None = the default cache dir.
    pub git: Option<Arc<GitMirrors>>,
    /// A kubeconfig already loaded (tests); None = `KUBECONFIG` / `~/.kube/config`.
    pub kubeconfig: Option<Kubeconfig>,
    /// Config marks this context read-only (ops refuses mutations).
    pub read_only: bool,
}

impl Default for CoreOptions {
    fn default() -> Self {
        Self {
            context: None,
            namespace: "argocd".into(),
            instance: None,
            clusters: BTreeMap::new(),
            git: None,
            kubeconfig: None,
            read_only: false,
        }
    }
}

/// Argo CD in core mode over one kubeconfig context. Cheap to clone.
#[derive(Clone)]
pub struct CoreArgo {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    instance: String,
    context: String,
    namespace: String,
    client: kube::Client,
    kubeconfig: Kubeconfig,
    clusters: BTreeMap<String, String>,
    dest_clients: tokio::sync::Mutex<HashMap<String, kube::Client>>,
    git: Arc<GitMirrors>,
    read_only: bool,
}

impl std::fmt::Debug for CoreArgo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoreArgo")
            .field("instance", &self.inner.instance)
            .field("context", &self.inner.context)
            .field("namespace", &self.inner.namespace)
            .finish()
    }
}

impl CoreArgo {
    /// Load kubeconfig and make a client for the context. Does not talk to the cluster yet.
    pub async fn connect(opts: CoreOptions) -> Result<CoreArgo, SourceError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let kc = match opts.kubeconfig {
            Some(kc) => kc,
            None => kubeconfig::load_kubeconfig()?,
        };
        let context = kubeconfig::pick_context(&kc, opts.context.as_deref())?;
        let client = kubeconfig::client_for(&kc, &context).await?;
        let git = match opts.git {
            Some(g) => g,
            None => Arc::new(GitMirrors::new(
                GitMirrors::default_root().map_err(|e| SourceError::Config(e.to_string()))?,
            )),
        };
        Ok(CoreArgo {
            inner: Arc::new(Inner {
                instance: opts.instance.unwrap_or_else(|| context.clone()),
                context: context.clone(),
                namespace: opts.namespace,
                client: client.clone(),
                kubeconfig: kc,
                clusters: opts.clusters,
                dest_clients: tokio::sync::Mutex::new(HashMap::from([(context, client)])),
                git,
                read_only: opts.read_only,
            }),
        })
    }

    pub fn context(&self) -> &str {
        &self.inner.context
    }

    pub fn namespace(&self) -> &str {
        &self.inner.namespace
    }

    pub fn read_only(&self) -> bool {
        self.inner.read_only
    }

    pub fn git(&self) -> &Arc<GitMirrors> {
        &self.inner.git
    }
}

impl Inner {
    /// A client for the cluster an application deploys to.
    async fn dest_client(&self, app: &Application) -> Result<(String, kube::Client), SourceError> {
        let dest = &app.spec.destination;
        let ctx = kubeconfig::context_for_destination(
            &self.kubeconfig,
            &self.context,
            &self.clusters,
            dest.server.as_deref(),
            dest.name.as_deref(),
        )
        .ok_or_else(|| {
            let what = dest.server.clone().or_else(|| dest.name.clone()).unwrap_or_default();
            SourceError::Config(format!(
                "no kubeconfig context reaches cluster {what}; add it under [clusters] in the config (\"{what}\" = \"CONTEXT\") or use API mode"
            ))
        })?;
        let mut cache = self.dest_clients.lock().await;
        if let Some(c) = cache.get(&ctx) {
            return Ok((ctx, c.clone()));
        }
        let client = kubeconfig::client_for(&self.kubeconfig, &ctx).await?;
        cache.insert(ctx.clone(), client.clone());
        Ok((ctx, client))
    }
}

/// Is this kube-rs error worth another attempt, for an idempotent read? 429 and 5xx
/// (with a Status' `retryAfterSeconds` honoured) and connection failures are.
pub(crate) fn transience(e: &kube::Error) -> Transience {
    match e {
        kube::Error::Api(s) if retry::transient_status(s.code) => Transience::Transient {
            retry_after: s
                .details
                .as_ref()
                .map(|d| d.retry_after_seconds)
                .filter(|s| *s > 0)
                .map(|s| std::time::Duration::from_secs(u64::from(s))),
        },
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::ReadEvents(_) => {
            Transience::Transient { retry_after: None }
        }
        _ => Transience::Permanent,
    }
}

/// Run an idempotent read under the one read policy ([`retry`]), its last error mapped.
pub(crate) async fn read<T, F, Fut>(context: &str, what: &str, op: F) -> Result<T, SourceError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    retry::read(what, op, transience)
        .await
        .map_err(|e| kube_err(context, what, e))
}

/// What to do when the API server refuses a kubeconfig credential (401): retrying will
/// not help, the credential must be refreshed where it came from.
pub fn credential_refused(context: &str) -> String {
    format!(
        "the kubeconfig credential of context `{}` was refused (401 Unauthorized: expired or \
         revoked): refresh it (re-run your cloud login, e.g. `aws eks update-kubeconfig`, \
         `gcloud container clusters get-credentials`, `az aks get-credentials`, or \
         `kubectl` auth) and start shipdeck again",
        crate::model::text::sanitize(context)
    )
}

/// What to do when the API server knows the credential but it may not do `what` (403).
pub fn credential_lacks(context: &str, what: &str) -> String {
    format!(
        "the kubeconfig credential of context `{}` lacks permission to {} (403 Forbidden): \
         grant it (RBAC), or use a context that has it (--context)",
        crate::model::text::sanitize(context),
        crate::model::text::sanitize(what)
    )
}

/// Map a kube-rs error to what the operator needs to know.
pub(crate) fn kube_err(context: &str, what: &str, e: kube::Error) -> SourceError {
    match e {
        kube::Error::Api(s) => {
            let msg = if s.message.is_empty() {
                s.reason.clone()
            } else {
                s.message.clone()
            };
            match s.code {
                401 => SourceError::Unauthorized {
                    server: context.to_string(),
                    detail: msg,
                    hint: credential_refused(context),
                },
                403 => SourceError::Forbidden(format!(
                    "{what}: {msg}; {}",
                    credential_lacks(context, what)
                )),
                404 => SourceError::NotFound(format!("{what}: {msg}")),
                409 => SourceError::Conflict(format!("{what}: {msg}")),
                400 | 422 => SourceError::Refused(msg),
                // The API server is there but cannot serve: as good as unreachable.
                502 | 503 => SourceError::Unreachable {
                    server: context.to_string(),
                    detail: format!("{what}: {} {msg}", s.code),
                },
                504 => SourceError::Timeout {
                    what: what.to_string(),
                    seconds: 0,
                },
                _ => SourceError::Protocol {
                    server: context.to_string(),
                    detail: format!("{what}: {} {msg}", s.code),
                },
            }
        }
        kube::Error::SerdeError(e) => SourceError::Protocol {
            server: context.to_string(),
            detail: format!("{what}: {e}"),
        },
        other => SourceError::Unreachable {
            server: context.to_string(),
            detail: format!("{what}: {other}"),
        },
    }
}

impl ArgoSource for CoreArgo {
    fn instance(&self) -> &str {
        &self.inner.instance
    }

    fn watch_applications(&self, tx: mpsc::Sender<Update>) -> JoinHandle<()> {
        apps::watch(self.inner.clone(), tx)
    }

    async fn list_applications(&self) -> Result<Vec<Application>, SourceError> {
        apps::list(&self.inner).await
    }

    async fn for_each_application(
        &self,
        each: &mut (dyn FnMut(Application) + Send),
    ) -> Result<(), SourceError> {
        apps::list_each(&self.inner, each).await
    }

    async fn get_application(
        &self,
        name: &str,
        _refresh: Refresh,
    ) -> Result<Application, SourceError> {
        // Core mode has no repo server to refresh; the controller polls Git itself. A
        // refresh request is written as the annotation the controller honours.
        if _refresh != Refresh::None {
            apps::request_refresh(&self.inner, name, _refresh).await?;
        }
        apps::get(&self.inner, name).await
    }

    async fn managed_resources(
        &self,
        app: &Application,
    ) -> Result<Vec<ManagedResource>, SourceError> {
        render::managed_resources(&self.inner, app).await
    }

    /// Core mode renders Git as the spec names it for every diff, so this is the same.
    async fn managed_resources_as_specified(
        &self,
        app: &Application,
    ) -> Result<Vec<ManagedResource>, SourceError> {
        render::managed_resources(&self.inner, app).await
    }

    async fn workloads(&self, app: &Application) -> Result<Vec<WorkloadRollout>, SourceError> {
        workloads::workloads(&self.inner, app).await
    }

    fn watch_workloads(
        &self,
        app: &Application,
        tx: mpsc::Sender<Result<Vec<WorkloadRollout>, SourceError>>,
    ) -> JoinHandle<()> {
        workloads::watch(self.inner.clone(), app.clone(), tx)
    }

    async fn events(&self, app: &Application) -> Result<Vec<AppEvent>, SourceError> {
        workloads::events(&self.inner, app).await
    }

    async fn sync(&self, app: &Application, req: SyncRequest) -> Result<Application, SourceError> {
        apps::sync(&self.inner, app, req).await
    }

    async fn rollback(
        &self,
        app: &Application,
        req: RollbackRequest,
    ) -> Result<Application, SourceError> {
        apps::rollback(&self.inner, app, req).await
    }

    async fn set_auto_sync(
        &self,
        app: &Application,
        enabled: bool,
    ) -> Result<Application, SourceError> {
        apps::set_auto_sync(&self.inner, app, enabled).await
    }

    async fn record_event(&self, app: &Application, event: &AppEvent) -> Result<bool, SourceError> {
        record_event(&self.inner, app, event).await
    }

    async fn can_i(&self, action: &str, app: &Application) -> Result<bool, SourceError> {
        apps::can_i(&self.inner, action, app).await
    }

    async fn identity(&self) -> Result<String, SourceError> {
        foureyes::identity(&self.inner).await
    }

    async fn annotate(
        &self,
        app: &Application,
        key: &str,
        value: Option<&str>,
    ) -> Result<Application, SourceError> {
        foureyes::annotate(&self.inner, app, key, value).await
    }

    async fn sync_windows(&self, app: &Application) -> Result<SyncWindowsState, SourceError> {
        apps::sync_windows(&self.inner, app).await
    }

    async fn pod_logs(
        &self,
        app: &Application,
        namespace: &str,
        pod: &str,
        tail: u32,
    ) -> Result<Vec<String>, SourceError> {
        workloads::pod_logs(&self.inner, app, namespace, pod, tail).await
    }
}

/// A Kubernetes Event on the Application, as Argo CD's own controller writes them, so
/// `kubectl describe application` and other consoles see who approved and synced. Without
/// permission to create Events this is not an error: the audit log has the record.
async fn record_event(
    inner: &Inner,
    app: &Application,
    ev: &AppEvent,
) -> Result<bool, SourceError> {
    use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
    let namespace = if app.metadata.namespace.is_empty() {
        inner.namespace.clone()
    } else {
        app.metadata.namespace.clone()
    };
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let event = Event {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}.", app.metadata.name)),
            namespace: Some(namespace.clone()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            api_version: Some("argoproj.io/v1alpha1".into()),
            kind: Some("Application".into()),
            name: Some(app.metadata.name.clone()),
            namespace: Some(namespace.clone()),
            uid: app.metadata.uid.clone(),
            resource_version: app.metadata.resource_version.clone(),
            ..Default::default()
        },
        reason: Some(ev.reason.clone()),
        message: Some(ev.message.clone()),
        type_: Some(ev.event_type.clone()),
        source: Some(EventSource {
            component: Some("shipdeck".into()),
            ..Default::default()
        }),
        reporting_component: Some("shipdeck".into()),
        first_timestamp: Some(now.clone()),
        last_timestamp: Some(now),
        count: Some(1),
        ..Default::default()
    };
    let api: kube::Api<Event> = kube::Api::namespaced(inner.client.clone(), &namespace);
    match api.create(&kube::api::PostParams::default(), &event).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 403 => Ok(false),
        Err(e) => Err(kube_err(&inner.context, "record an Event", e)),
    }
}
