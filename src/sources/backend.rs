//! [`Backend`]: one Argo CD instance reached either way, and the choice of which instances
//! to connect from flags, environment, shipdeck's config and the argocd CLI's config. This
//! decides only where to connect; what may be done there is `ops`' business.

use super::argocd::{ArgoApi, ArgoApiOptions};
use super::git::GitMirrors;
use super::kube::{CoreArgo, CoreOptions};
use super::{
    AppEvent, ArgoSource, ManagedResource, Refresh, RollbackRequest, SourceError, SyncRequest,
    SyncWindowsState,
};
use crate::config::Config;
use crate::model::{Application, Update, WorkloadRollout};
use crate::secrets::{ArgocdCliConfig, CredentialChain, Secret};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Argo CD through its API server or through Kubernetes (core mode).
#[derive(Debug, Clone)]
pub enum Backend {
    Api(ArgoApi),
    Core(CoreArgo),
}

/// What the command line asked for (flags and their env fallbacks, already parsed).
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    pub core: bool,
    pub contexts: Vec<String>,
    /// `--argocd-server` / `ARGOCD_SERVER`.
    pub argocd_server: Option<String>,
    /// `--auth-token` if the CLI has one; else the chain (env, keyring, argocd CLI).
    pub token: Option<Secret>,
    pub insecure: bool,
    /// The Git mirrors every backend renders and reads commits with; the front end's own
    /// set, so two sets never fetch into one directory at once. None: a set in the cache dir.
    pub git: Option<Arc<GitMirrors>>,
}

impl Backend {
    pub fn read_only(&self) -> bool {
        match self {
            Backend::Api(a) => a.read_only(),
            Backend::Core(c) => c.read_only(),
        }
    }

    /// `api` or `core`, for the header and `--output json`.
    pub fn mode(&self) -> &'static str {
        match self {
            Backend::Api(_) => "api",
            Backend::Core(_) => "core",
        }
    }

    /// One API-mode backend for a server, with its token from the credential chain.
    pub fn api(
        server: &str,
        name: Option<String>,
        token: Option<Secret>,
        insecure: bool,
        config: &Config,
        chain: &CredentialChain,
    ) -> Result<Backend, SourceError> {
        let from_config = config
            .instances
            .iter()
            .find(|i| crate::secrets::host_of(&i.server) == crate::secrets::host_of(server));
        let flag = token.as_ref().map(|t| t.expose().to_string());
        let token = chain
            .argocd_token(server, flag.as_deref())
            .map(|(t, origin)| {
                tracing::info!(server, "Argo CD token from {origin}");
                t
            });
        Ok(Backend::Api(ArgoApi::new(ArgoApiOptions {
            name: name.or_else(|| from_config.and_then(|i| i.name.clone())),
            server: server.to_string(),
            token,
            insecure: insecure || from_config.is_some_and(|i| i.insecure),
            namespace: from_config.and_then(|i| i.namespace.clone()),
            timeout: None,
            workload_poll: Some(Duration::from_secs(
                config.poll.workloads_api_seconds.max(1),
            )),
            read_only: from_config.is_some_and(|i| i.read_only),
        })?))
    }

    /// One core-mode backend for a kubeconfig context (None = current context).
    pub async fn core(
        context: Option<&str>,
        config: &Config,
        git: Arc<GitMirrors>,
    ) -> Result<Backend, SourceError> {
        let from_config = context.and_then(|c| config.contexts.iter().find(|x| x.name == c));
        Ok(Backend::Core(
            CoreArgo::connect(CoreOptions {
                context: context.map(str::to_string),
                namespace: from_config
                    .map(|c| c.argocd_namespace.clone())
                    .unwrap_or_else(|| "argocd".into()),
                instance: None,
                clusters: config.clusters.clone(),
                git: Some(git),
                kubeconfig: None,
                read_only: from_config.is_some_and(|c| c.read_only),
            })
            .await?,
        ))
    }

    /// [`Backend::api`] with the default credential chain, off the async runtime (keyring
    /// lookups block on D-Bus or the kernel).
    pub async fn api_from_chain(
        server: String,
        name: Option<String>,
        token: Option<Secret>,
        insecure: bool,
        config: Config,
    ) -> Result<Backend, SourceError> {
        tokio::task::spawn_blocking(move || {
            Backend::api(
                &server,
                name,
                token,
                insecure,
                &config,
                &CredentialChain::default(),
            )
        })
        .await
        .map_err(|e| SourceError::Config(format!("credential lookup failed: {e}")))?
    }

    /// Every backend to connect, in this order of preference:
    /// 1. `--argocd-server`/`ARGOCD_SERVER` (unless `--core`): that server;
    /// 2. `--core` or `--context`: those contexts (or the current one);
    /// 3. config `instances` and `contexts`;
    /// 4. the argocd CLI's current context (its server, or core mode if it is a core context);
    /// 5. core mode on the current kubeconfig context.
    pub async fn connect_all(
        opts: &ConnectOptions,
        config: &Config,
    ) -> Result<Vec<Backend>, SourceError> {
        let argocd_config = crate::secrets::argocd_config_path();
        let git = match &opts.git {
            Some(g) => g.clone(),
            None => Arc::new({
                let mut m = GitMirrors::new(
                    GitMirrors::default_root().map_err(|e| SourceError::Config(e.to_string()))?,
                );
                m.min_fetch_interval = Duration::from_secs(config.poll.git_fetch_min_seconds);
                m
            }),
        };
        if let Some(server) = opts
            .argocd_server
            .as_ref()
            .filter(|s| !s.is_empty() && !opts.core)
        {
            let b = Backend::api_from_chain(
                server.clone(),
                None,
                opts.token.clone(),
                opts.insecure,
                config.clone(),
            );
            return Ok(vec![with_git(b.await?, &git)]);
        }
        if opts.core || !opts.contexts.is_empty() {
            if opts.contexts.is_empty() {
                return Ok(vec![Backend::core(None, config, git).await?]);
            }
            let mut out = Vec::new();
            for c in &opts.contexts {
                out.push(Backend::core(Some(c), config, git.clone()).await?);
            }
            return Ok(out);
        }
        if !config.instances.is_empty() || !config.contexts.is_empty() {
            let mut out = Vec::new();
            for i in &config.instances {
                let b = Backend::api_from_chain(
                    i.server.clone(),
                    i.name.clone(),
                    None,
                    opts.insecure,
                    config.clone(),
                );
                out.push(with_git(b.await?, &git));
            }
            for c in &config.contexts {
                out.push(Backend::core(Some(&c.name), config, git.clone()).await?);
            }
            return Ok(out);
        }
        if let Some(cur) = argocd_config
            .as_ref()
            .and_then(|p| ArgocdCliConfig::load(p).ok())
            .and_then(|c| c.current())
        {
            if cur.core {
                return Ok(vec![Backend::core(None, config, git).await?]);
            }
            let b = Backend::api_from_chain(
                cur.server.clone(),
                None,
                opts.token.clone(),
                opts.insecure || cur.insecure,
                config.clone(),
            );
            return Ok(vec![with_git(b.await?, &git)]);
        }
        Ok(vec![Backend::core(None, config, git).await?])
    }
}

/// API-mode clients render Git themselves only for a rollback's diff; give them the same
/// mirrors core mode uses.
fn with_git(b: Backend, git: &Arc<GitMirrors>) -> Backend {
    if let Backend::Api(a) = &b {
        a.set_git(git.clone());
    }
    b
}

macro_rules! dispatch {
    ($self:ident, $b:ident => $e:expr) => {
        match $self {
            Backend::Api($b) => $e,
            Backend::Core($b) => $e,
        }
    };
}

impl ArgoSource for Backend {
    fn instance(&self) -> &str {
        dispatch!(self, b => b.instance())
    }

    fn watch_applications(&self, tx: mpsc::Sender<Update>) -> JoinHandle<()> {
        dispatch!(self, b => b.watch_applications(tx))
    }

    async fn list_applications(&self) -> Result<Vec<Application>, SourceError> {
        dispatch!(self, b => b.list_applications().await)
    }

    async fn for_each_application(
        &self,
        each: &mut (dyn FnMut(Application) + Send),
    ) -> Result<(), SourceError> {
        dispatch!(self, b => b.for_each_application(each).await)
    }

    async fn get_application(
        &self,
        name: &str,
        refresh: Refresh,
    ) -> Result<Application, SourceError> {
        dispatch!(self, b => b.get_application(name, refresh).await)
    }

    async fn managed_resources(
        &self,
        app: &Application,
    ) -> Result<Vec<ManagedResource>, SourceError> {
        dispatch!(self, b => b.managed_resources(app).await)
    }

    async fn managed_resources_as_specified(
        &self,
        app: &Application,
    ) -> Result<Vec<ManagedResource>, SourceError> {
        dispatch!(self, b => b.managed_resources_as_specified(app).await)
    }

    async fn workloads(&self, app: &Application) -> Result<Vec<WorkloadRollout>, SourceError> {
        dispatch!(self, b => b.workloads(app).await)
    }

    fn watch_workloads(
        &self,
        app: &Application,
        tx: mpsc::Sender<Result<Vec<WorkloadRollout>, SourceError>>,
    ) -> JoinHandle<()> {
        dispatch!(self, b => b.watch_workloads(app, tx))
    }

    async fn events(&self, app: &Application) -> Result<Vec<AppEvent>, SourceError> {
        dispatch!(self, b => b.events(app).await)
    }

    async fn sync(&self, app: &Application, req: SyncRequest) -> Result<Application, SourceError> {
        dispatch!(self, b => b.sync(app, req).await)
    }

    async fn rollback(
        &self,
        app: &Application,
        req: RollbackRequest,
    ) -> Result<Application, SourceError> {
        dispatch!(self, b => b.rollback(app, req).await)
    }

    async fn set_auto_sync(
        &self,
        app: &Application,
        enabled: bool,
    ) -> Result<Application, SourceError> {
        dispatch!(self, b => b.set_auto_sync(app, enabled).await)
    }

    async fn auto_sync_rbac(&self, app: &Application) -> &'static str {
        dispatch!(self, b => b.auto_sync_rbac(app).await)
    }

    async fn can_i(&self, action: &str, app: &Application) -> Result<bool, SourceError> {
        dispatch!(self, b => b.can_i(action, app).await)
    }

    async fn sync_windows(&self, app: &Application) -> Result<SyncWindowsState, SourceError> {
        dispatch!(self, b => b.sync_windows(app).await)
    }

    async fn pod_logs(
        &self,
        app: &Application,
        namespace: &str,
        pod: &str,
        tail: u32,
    ) -> Result<Vec<String>, SourceError> {
        dispatch!(self, b => b.pod_logs(app, namespace, pod, tail).await)
    }

    async fn follow_pod_logs(
        &self,
        app: &Application,
        namespace: &str,
        pod: &str,
        tail: u32,
        tx: mpsc::Sender<Result<Vec<String>, SourceError>>,
    ) {
        dispatch!(self, b => b.follow_pod_logs(app, namespace, pod, tail, tx).await)
    }

    async fn record_event(&self, app: &Application, event: &AppEvent) -> Result<bool, SourceError> {
        dispatch!(self, b => b.record_event(app, event).await)
    }

    async fn identity(&self) -> Result<String, SourceError> {
        dispatch!(self, b => b.identity().await)
    }

    async fn annotate(
        &self,
        app: &Application,
        key: &str,
        value: Option<&str>,
    ) -> Result<Application, SourceError> {
        dispatch!(self, b => b.annotate(app, key, value).await)
    }
}
