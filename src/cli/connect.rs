//! From flags and config to the things a headless command works with: the `Ops` context
//! (operator, read-only, policies, classification, audit log), the Argo CD backends, the
//! CI systems, and the keyring for `login`. Which server or context to use is decided by
//! `sources::Backend::connect_all`; this file only translates the command line.

use super::exit::UsageError;
use super::{ConsoleArgs, LoginSystem};
use crate::config::{self, Config};
use crate::ops::actions::Ops;
use crate::ops::audit::AuditLog;
use crate::ops::classify::{Classifier, EnvRule};
use crate::ops::policy::{EnvPolicy, Policies};
use crate::sources::ArgoSource;
use crate::sources::{Backend, ConnectOptions};
use anyhow::Context;

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
                    },
                )
            })
            .collect(),
    )
}

/// The context every action runs with.
pub fn ops(args: &ConsoleArgs, config: &Config) -> anyhow::Result<Ops> {
    Ok(Ops {
        operator: config.operator_name(),
        read_only: args.read_only || config.read_only,
        policies: policies(config),
        classifier: classifier(config),
        audit: AuditLog::open_default()?,
    })
}

/// Connect every Argo CD instance the flags, env and config name.
pub async fn argo(args: &ConsoleArgs, config: &Config) -> anyhow::Result<Vec<Backend>> {
    let opts = ConnectOptions {
        core: args.core,
        contexts: args.context.clone(),
        argocd_server: args.argocd_server.clone(),
        token: None,
        insecure: args.insecure,
    };
    let backends = Backend::connect_all(&opts, config).await?;
    if backends.is_empty() {
        return Err(UsageError(
            "no Argo CD to talk to: pass --argocd-server, --core or --context, or configure instances".into(),
        )
        .into());
    }
    Ok(backends)
}

/// Read-only if the command line, config or the instance's config says so.
pub fn read_only(ops: &mut Ops, backend: &Backend) {
    if backend.read_only() {
        ops.read_only = true;
    }
}

fn read_stdin_line(what: &str) -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .with_context(|| format!("reading the {what} from standard input"))?;
    let line = line.trim().to_string();
    if line.is_empty() {
        return Err(UsageError(format!(
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
                UsageError("which Argo CD? pass --argocd-server or set ARGOCD_SERVER".into())
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
                .map_err(|_| UsageError("which Jenkins? set JENKINS_URL".into()))?;
            let both = read_stdin_line("user:api-token")?;
            if !both.contains(':') {
                return Err(UsageError("Jenkins credentials are user:api-token".into()).into());
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
        Err(e) => Err(UsageError(format!(
            "could not store the credential for {account}: {e}; use the environment instead (ARGOCD_AUTH_TOKEN, GITHUB_TOKEN, JENKINS_USER/JENKINS_TOKEN)"
        ))
        .into()),
    }
}

/// Instance names, for messages.
pub fn describe(backends: &[Backend]) -> String {
    backends
        .iter()
        .map(|b| format!("{} ({})", b.instance(), b.mode()))
        .collect::<Vec<_>>()
        .join(", ")
}
