//! The composition room: everything a front end works with, built in one place.
//!
//! From the command-line flags ([`ConsoleArgs`]), the environment (`ARGOCD_*`, `GITHUB_*`,
//! `JENKINS_*`, `GITHUB_REPOSITORY`), shipdeck's config file, the OS keyring and the argocd
//! and gh CLI configs, it builds:
//! - the Argo CD backends: API servers and core-mode contexts, several instances
//!   (`sources::Backend::connect_all` decides where; this room only translates);
//! - the ops context ([`Ops`]): operator, read-only (flag, config, per instance), approval
//!   policies, the environment classifier from `[[environments.rules]]`, the audit log;
//! - CI ([`Ci`]): GitHub Actions repositories and Jenkins jobs from `[[pipelines]]`,
//!   `[github]`, `[jenkins]`, the environment and the apps' annotations, with typed errors;
//! - the Git mirrors.
//!
//! `status` and every other headless command, the console and `demo` start from a
//! [`Room`]. The room imports config, secrets, sources and ops; it never imports `cli` or
//! `tui` (front ends -> connect -> ops -> sources -> model).

pub mod ci;

pub use ci::{Ci, GithubCi, GithubRepo, JenkinsCi};

use crate::config::{self, Config};
use crate::ops::actions::Ops;
use crate::ops::audit::AuditLog;
use crate::ops::classify::{Classifier, EnvRule};
use crate::ops::policy::{EnvPolicy, Policies};
use crate::secrets::CredentialChain;
use crate::sources::git::GitMirrors;
use crate::sources::{ArgoSource, Backend, ConnectOptions, SourceError};
use anyhow::Context;
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Options shared by the console and the headless commands.
#[derive(Debug, Clone, Args, Default)]
pub struct ConsoleArgs {
    /// Kubeconfig context to use (core mode); repeatable for several clusters.
    #[arg(long, global = true)]
    pub context: Vec<String>,
    /// Use core mode: talk to Kubernetes directly, no Argo CD API server.
    #[arg(long, global = true)]
    pub core: bool,
    /// Argo CD API server (API mode), e.g. argocd.example.com or http://127.0.0.1:8080.
    #[arg(long, global = true, env = "ARGOCD_SERVER")]
    pub argocd_server: Option<String>,
    /// Refuse every mutation (sync, rollback, auto-sync, build, rerun, cancel).
    #[arg(long, global = true)]
    pub read_only: bool,
    /// Skip TLS verification for the servers given on the command line.
    #[arg(long, global = true)]
    pub insecure: bool,
    /// Colour theme: default, light, high-contrast, colorblind, mono.
    #[arg(long, global = true)]
    pub theme: Option<String>,
    /// Config file (default: the platform config dir's shipdeck/config.toml).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
}

/// The systems `shipdeck login` stores a credential for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LoginSystem {
    Argocd,
    Github,
    Jenkins,
}

/// Config rules in ops' terms.
pub fn env_rule(r: &config::EnvRule) -> EnvRule {
    let mut out = EnvRule {
        environment: r.environment.clone(),
        ..EnvRule::default()
    };
    match r.kind {
        config::EnvMatch::Label => out.label = r.key.clone(),
        config::EnvMatch::NameGlob => out.app = r.glob.clone(),
        config::EnvMatch::NamespaceGlob => out.namespace = r.glob.clone(),
        config::EnvMatch::Cluster => out.cluster = r.glob.clone(),
    }
    out
}

pub fn classifier(config: &Config) -> Classifier {
    Classifier::new(
        config.environments.rules.iter().map(env_rule).collect(),
        config.environments.order.clone(),
    )
    .with_policies(policies(config))
}

pub fn policies(config: &Config) -> Policies {
    Policies::new(
        config
            .environments
            .policy
            .iter()
            .map(|(k, p)| {
                (
                    k.clone(),
                    EnvPolicy {
                        approval: p.approval,
                        approvers: p.approvers,
                        // On the command line `--prune` is typed on purpose: it is the
                        // confirmation where the environment needs no approval.
                        prune_without_confirmation: !p.prune_needs_confirm
                            || p.approval == crate::model::ApprovalPolicy::None,
                        approval_request_ttl: p.approval_request_ttl.clone(),
                    },
                )
            })
            .collect(),
    )
}

/// The context every action runs with.
pub fn ops(args: &ConsoleArgs, config: &Config) -> anyhow::Result<Ops> {
    Ok(Ops {
        operator: config
            .operator_name()
            .unwrap_or_else(|| crate::ops::actions::UNKNOWN_OPERATOR.into()),
        read_only: args.read_only || config.read_only,
        policies: policies(config),
        classifier: classifier(config),
        audit: AuditLog::open_default()?
            .with_notifier(crate::ops::notify::Notifier::from_config(config)?),
    })
}

/// Connect every Argo CD instance the flags, env and config name.
pub async fn argo(
    args: &ConsoleArgs,
    config: &Config,
    git: Option<Arc<GitMirrors>>,
) -> anyhow::Result<Vec<Backend>> {
    let opts = ConnectOptions {
        core: args.core,
        contexts: args.context.clone(),
        argocd_server: args.argocd_server.clone(),
        token: None,
        insecure: args.insecure,
        git,
    };
    let backends = Backend::connect_all(&opts, config).await?;
    if backends.is_empty() {
        return Err(SourceError::Config(
            "no Argo CD to talk to: pass --argocd-server, --core or --context, or configure instances".into(),
        )
        .into());
    }
    Ok(backends)
}

/// The operator's name, the same in every front end: config `operator`, else the login
/// name, else who the first backend's credential is: the Argo CD account the token belongs
/// to (`session/userinfo`, API mode) or the Kubernetes user of the kubeconfig's credential
/// (`SelfSubjectReview`, what `kubectl auth whoami` says, core mode); else `unknown`.
pub async fn resolve_operator(ops: &mut Ops, config: &Config, backends: &[Backend]) {
    if let Some(name) = config.operator_name() {
        ops.operator = name;
        return;
    }
    for b in backends {
        let asked = match b {
            Backend::Api(api) => tokio::time::timeout(Duration::from_secs(10), api.account()).await,
            Backend::Core(_) => {
                tokio::time::timeout(Duration::from_secs(10), async {
                    b.identity().await.map(Some)
                })
                .await
            }
        };
        match asked {
            Ok(Ok(Some(name))) => {
                ops.operator = crate::model::text::sanitize(&name).into_owned();
                return;
            }
            Ok(Ok(None)) => {}
            Ok(Err(e)) => tracing::warn!("{}: account not read ({e})", b.instance()),
            Err(_) => tracing::warn!("{}: account not read (no answer)", b.instance()),
        }
    }
    ops.operator = crate::ops::actions::UNKNOWN_OPERATOR.into();
}

/// Read-only if the command line, config or the instance's config says so.
pub fn read_only(ops: &mut Ops, backend: &Backend) {
    if backend.read_only() {
        ops.read_only = true;
    }
}

/// Instance names, for messages and the console's header.
pub fn describe(backends: &[Backend]) -> String {
    backends
        .iter()
        .map(|b| format!("{} ({})", b.instance(), b.mode()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Git mirrors in the cache dir (commits and diffs between revisions, workflow files when
/// the contents API is not served); None when there is no cache dir.
pub fn git(config: &Config) -> Option<Arc<GitMirrors>> {
    let root = GitMirrors::default_root().ok()?;
    let mut m = GitMirrors::new(root);
    m.min_fetch_interval = Duration::from_secs(config.poll.git_fetch_min_seconds);
    Some(Arc::new(m))
}

/// The config file and its warnings (as lines to show), or defaults.
/// A config that does not parse, or holds a wrong-typed or out-of-range value, is an error
/// (exit 2 with file:line, key and what is allowed): shipdeck stops before it connects.
pub fn load_config(
    args: &ConsoleArgs,
) -> Result<(Config, Vec<String>), crate::config::ConfigError> {
    let (config, warnings) = Config::load(args.config.as_deref())?;
    Ok((config, warnings.iter().map(ToString::to_string).collect()))
}

/// Flags, config and the ops context; connects the rest on request.
pub struct Room {
    pub args: ConsoleArgs,
    pub config: Config,
    /// Config problems, one line each (shown once, never fatal here).
    pub warnings: Vec<String>,
    pub ops: Ops,
}

/// Everything the console needs, connected.
pub struct Wired {
    pub config: Config,
    pub warnings: Vec<String>,
    pub backends: Vec<Backend>,
    pub ops: Ops,
    /// Shared: pipelines named by the apps are added once their list arrives.
    pub ci: Arc<Ci>,
    pub git: Option<Arc<GitMirrors>>,
    /// What the console is connected to, for the header.
    pub label: String,
}

impl Room {
    /// Read the config and open the audit log; nothing is contacted yet.
    pub fn open(args: &ConsoleArgs) -> anyhow::Result<Room> {
        let (config, warnings) = load_config(args)?;
        let ops = ops(args, &config)?;
        Ok(Room {
            args: args.clone(),
            config,
            warnings,
            ops,
        })
    }

    /// The Argo CD backends; an instance configured read-only makes every action so.
    pub async fn argo(&mut self) -> anyhow::Result<Vec<Backend>> {
        self.argo_with(git(&self.config)).await
    }

    async fn argo_with(&mut self, git: Option<Arc<GitMirrors>>) -> anyhow::Result<Vec<Backend>> {
        let backends = argo(&self.args, &self.config, git).await?;
        for b in &backends {
            read_only(&mut self.ops, b);
        }
        resolve_operator(&mut self.ops, &self.config, &backends).await;
        Ok(backends)
    }

    /// CI from config, environment and keyring (no network).
    pub fn ci(&self, git: Option<Arc<GitMirrors>>) -> Ci {
        Ci::from_config(&self.config, &CredentialChain::default(), git)
    }

    /// Everything the console needs: backends, ops, CI (the pipelines `[[pipelines]]` rules
    /// and the environment name at once, the apps' annotations soon after) and Git mirrors.
    pub async fn wire(mut self) -> anyhow::Result<Wired> {
        // One set of Git mirrors for the backends and the console alike.
        let git = git(&self.config);
        let backends = self.argo_with(git.clone()).await?;
        let ci = tokio::task::spawn_blocking({
            let config = self.config.clone();
            let git = git.clone();
            move || Ci::from_config(&config, &CredentialChain::default(), git)
        })
        .await
        .context("credential lookup")?;
        let ci = Arc::new(ci);
        // The apps' annotations name more pipelines: the console learns them from the apps
        // its watches deliver (see `Wired::learn_pipelines`), not from a list of its own.
        let warnings = self.warnings;
        let label = describe(&backends);
        Ok(Wired {
            config: self.config,
            warnings,
            backends,
            ops: self.ops,
            ci,
            git,
            label,
        })
    }
}

impl Wired {
    /// Pass the watches' updates on, learning the pipelines the apps' annotations name from
    /// every app they carry (the first list, then each change), so the console reads each
    /// app once: a second list of every app only for its annotations doubled the start-up
    /// load and the peak memory of a large estate.
    pub fn learn_pipelines(
        &self,
        mut updates: tokio::sync::mpsc::Receiver<crate::model::Update>,
    ) -> tokio::sync::mpsc::Receiver<crate::model::Update> {
        use crate::model::Update;
        let (tx, rx) = tokio::sync::mpsc::channel(4096);
        let (ci, config) = (self.ci.clone(), self.config.clone());
        tokio::spawn(async move {
            while let Some(u) = updates.recv().await {
                match &u {
                    // Not Details: the pipeline an app names (its annotations, labels,
                    // source) is in the Summary already; a change comes as an Upsert.
                    Update::Resync { apps, .. } | Update::Summary { apps, .. } => {
                        ci.learn_from_apps(apps.iter().map(|(_, a)| a), &config)
                    }
                    Update::Upsert(_, app) => ci.learn_from_apps([&**app], &config),
                    _ => {}
                }
                if tx.send(u).await.is_err() {
                    return;
                }
            }
        });
        rx
    }

    /// `shipdeck demo`: the in-process sandbox with its admin token, its CI and its own
    /// audit log in the data dir's `demo/` folder (kept after quitting, apart from the
    /// operator's real one); the config's environment rules and policies still apply.
    /// The operator is named as everywhere ([`resolve_operator`], after connecting).
    pub fn sandbox(args: &ConsoleArgs, sb: &crate::sandbox::Sandbox) -> anyhow::Result<Wired> {
        let (config, warnings) = load_config(args)?;
        let api = crate::sources::argocd::ArgoApi::new(crate::sources::argocd::ArgoApiOptions {
            name: Some("sandbox".into()),
            server: sb.url.clone(),
            token: Some(crate::secrets::Secret::new(
                sb.world.users.token(crate::sandbox::auth::Role::Admin),
            )),
            workload_poll: Some(Duration::from_millis(500)),
            ..Default::default()
        })?;
        let git = Some(Arc::new(GitMirrors::new(sb.state_dir.join("mirrors"))));
        if let Some(g) = &git {
            // Rollback diffs render the target from Git in API mode too.
            api.set_git(g.clone());
        }
        let ops = Ops {
            operator: config
                .operator_name()
                .unwrap_or_else(|| crate::ops::actions::UNKNOWN_OPERATOR.into()),
            read_only: args.read_only || config.read_only,
            policies: policies(&config),
            classifier: classifier(&config),
            audit: demo_audit()?,
        };
        Ok(Wired {
            ci: Arc::new(Ci::sandbox(sb, git.clone())),
            label: format!("sandbox {}", sb.url),
            config,
            warnings,
            backends: vec![Backend::Api(api)],
            ops,
            git,
        })
    }
}

/// The demo's audit log: `demo/` under the data dir (`SHIPDECK_DATA_DIR` or the platform's).
pub fn demo_audit() -> anyhow::Result<AuditLog> {
    let dir = crate::ops::audit::data_dir()?.join("demo");
    Ok(AuditLog::in_dir(&dir))
}

fn read_stdin_line(what: &str) -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .with_context(|| format!("reading the {what} from standard input"))?;
    let line = line.trim().to_string();
    if line.is_empty() {
        return Err(SourceError::Config(format!(
            "no {what} on standard input: pipe it in, e.g. `printf %s \"$TOKEN\" | shipdeck login ...`"
        ))
        .into());
    }
    Ok(line)
}

/// Store a credential where the credential chain will find it; say where.
pub async fn login(
    args: &ConsoleArgs,
    system: LoginSystem,
    username: Option<String>,
) -> anyhow::Result<String> {
    use crate::secrets::{self, Secret};
    let (service, account, secret) = match system {
        LoginSystem::Argocd => {
            let server = args.argocd_server.clone().ok_or_else(|| {
                SourceError::Config(
                    "which Argo CD? pass --argocd-server or set ARGOCD_SERVER".into(),
                )
            })?;
            let secret = match username {
                Some(user) => {
                    let password = read_stdin_line("password")?;
                    let api = crate::sources::argocd::ArgoApi::new(
                        crate::sources::argocd::ArgoApiOptions {
                            server: server.clone(),
                            insecure: args.insecure,
                            ..Default::default()
                        },
                    )?;
                    api.login(&user, &password).await?
                }
                None => Secret::new(read_stdin_line("token")?),
            };
            (secrets::ARGOCD_SERVICE, secrets::host_of(&server), secret)
        }
        LoginSystem::Github => {
            let api =
                std::env::var("GITHUB_API_URL").unwrap_or_else(|_| "https://api.github.com".into());
            (
                secrets::GITHUB_SERVICE,
                secrets::github_host(&api),
                Secret::new(read_stdin_line("token")?),
            )
        }
        LoginSystem::Jenkins => {
            let url = std::env::var("JENKINS_URL")
                .map_err(|_| SourceError::Config("which Jenkins? set JENKINS_URL".into()))?;
            let both = read_stdin_line("user:api-token")?;
            if !both.contains(':') {
                return Err(
                    SourceError::Config("Jenkins credentials are user:api-token".into()).into(),
                );
            }
            (
                secrets::JENKINS_SERVICE,
                secrets::host_of(&url),
                Secret::new(both),
            )
        }
    };
    let svc = service.to_string();
    let acc = account.clone();
    let stored = tokio::task::spawn_blocking(move || secrets::store(&svc, &acc, &secret))
        .await
        .context("keyring task")?;
    match stored {
        Ok(w) => Ok(format!("stored the credential for {account} in {w}")),
        Err(e) => Err(SourceError::Config(format!(
            "could not store the credential for {account}: {e}; use the environment instead (ARGOCD_AUTH_TOKEN, GITHUB_TOKEN, JENKINS_USER/JENKINS_TOKEN)"
        ))
        .into()),
    }
}
