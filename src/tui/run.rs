//! The console's entry points: `shipdeck` (against the operator's Argo CD) and `shipdeck
//! demo` (against an in-process sandbox). They set up logging to a file, the terminal (and
//! its restoration on quit, panic, SIGTERM and SIGHUP), the theme and keymap, then hand
//! over to the loop. Nothing here draws or decides.

use super::adapt::ArgoProvider;
use super::app::{Exit, run_loop};
use super::ci::{Ci, GithubRepo, JenkinsJobs};
use super::console::{Console, Settings};
use super::keymap::Keymap;
use super::request::Provider;
use super::theme::{ColorDepth, Theme};
use crate::cli::ConsoleArgs;
use crate::model::Update;
use crate::ops::actions::Ops;
use crate::ops::audit::AuditLog;
use crate::ops::estate::Estate;
use crate::sources::ArgoSource;
use crate::sources::argocd::{ArgoApi, ArgoApiOptions};
use crate::sources::git::GitMirrors;
use crate::sources::github::{GithubClient, GithubOptions};
use crate::sources::jenkins::{JenkinsClient, JenkinsOptions};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Where shipdeck keeps its data (logs, audit log).
pub fn data_dir() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "shipdeck").map(|d| d.data_dir().to_path_buf())
}

fn config_dir() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "shipdeck").map(|d| d.config_dir().to_path_buf())
}

/// Log to `<data dir>/logs/shipdeck.log`, never to the terminal the console owns. The
/// guard must live as long as the console so buffered lines are written.
pub fn init_logging() -> Option<tracing_appender::non_blocking::WorkerGuard> {
    let dir = data_dir()?.join("logs");
    std::fs::create_dir_all(&dir).ok()?;
    let appender = tracing_appender::rolling::never(&dir, "shipdeck.log");
    let (writer, guard) = tracing_appender::non_blocking(appender);
    let filter = tracing_subscriber::EnvFilter::try_from_env("SHIPDECK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ok = tracing_subscriber::fmt()
        .with_writer(writer)
        .with_ansi(false)
        .with_env_filter(filter)
        .try_init()
        .is_ok();
    ok.then_some(guard)
}

/// Theme, keymap, read-only and operator from flags and the environment.
pub fn settings(args: &ConsoleArgs, source_label: String) -> Settings {
    let depth = ColorDepth::detect();
    let themes_dir = config_dir().map(|d| d.join("themes"));
    let mut warnings = Vec::new();
    let name = args.theme.clone().unwrap_or_else(|| "default".into());
    let theme = match Theme::load(&name, themes_dir.as_deref(), depth) {
        Ok(t) => t,
        Err(e) => {
            warnings.push(e.to_string());
            Theme::load("default", None, depth).unwrap_or_else(|_| Theme::built_in("mono"))
        }
    };
    warnings.extend(theme.warnings.iter().cloned());
    let operator = std::env::var("SHIPDECK_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "operator".into());
    Settings {
        theme,
        keymap: Keymap::default(),
        read_only: args.read_only,
        operator: crate::model::text::sanitize(&operator).into_owned(),
        source_label,
        depth,
        themes_dir,
        warnings,
        policies: Default::default(),
    }
}

/// GitHub Actions and Jenkins of the sandbox, with its own credentials.
/// GitHub and Jenkins clients for the sandbox's CI, as `shipdeck demo` connects them.
pub fn sandbox_ci(sb: &crate::sandbox::Sandbox, git: Option<Arc<GitMirrors>>) -> Ci {
    let users = &sb.world.users;
    let github = GithubClient::new(GithubOptions {
        api_url: Some(format!("{}/github", sb.url)),
        token: Some(crate::secrets::Secret::new(users.github_token())),
        timeout: None,
        git,
    })
    .ok()
    .map(|client| GithubRepo {
        client,
        owner: sb.world.estate.github.owner.clone(),
        repo: sb.world.estate.github.repo.clone(),
        git_ref: "main".into(),
        repo_url: Some(sb.world.repo.url()),
    });
    let jenkins = JenkinsClient::new(JenkinsOptions {
        url: Some(format!("{}/jenkins", sb.url)),
        user: users.jenkins_user(),
        token: crate::secrets::Secret::new(users.jenkins_token()),
        timeout: None,
    })
    .ok()
    .map(|client| JenkinsJobs {
        client,
        jobs: sb
            .world
            .estate
            .jenkins
            .iter()
            .map(|j| j.name.clone())
            .collect(),
    });
    Ci { github, jenkins }
}

fn ops_for(settings: &Settings, audit: AuditLog) -> Ops {
    Ops {
        operator: settings.operator.clone(),
        read_only: settings.read_only,
        policies: settings.policies.clone(),
        classifier: Default::default(),
        audit,
    }
}

/// Take over the terminal, run the console, give the terminal back whatever happens.
pub async fn open(
    settings: Settings,
    provider: Arc<dyn Provider>,
    updates: mpsc::Receiver<Update>,
) -> anyhow::Result<Exit> {
    let mut console = Console::new(Estate::new(), settings);
    let mut terminal = ratatui::try_init()?;
    let result = run_loop(&mut terminal, &mut console, provider, updates).await;
    ratatui::restore();
    Ok(result?)
}

/// `shipdeck`: the console against the operator's Argo CD (API mode).
pub async fn run(mut args: ConsoleArgs) -> anyhow::Result<()> {
    let _log = init_logging();
    let (config, warnings) = crate::config::Config::load(args.config.as_deref());
    if args.theme.is_none() && !config.theme.is_empty() {
        args.theme = Some(config.theme.clone());
    }
    // Every Argo CD the flags, env and config name: API servers and core-mode contexts alike.
    let backends = crate::cli::connect::argo(&args, &config).await?;
    let mut ops = crate::cli::connect::ops(&args, &config)?;
    for b in &backends {
        crate::cli::connect::read_only(&mut ops, b);
    }
    let git = GitMirrors::default_root()
        .ok()
        .map(|r| Arc::new(GitMirrors::new(r)));
    let label = crate::cli::connect::describe(&backends);
    let (tx, rx) = mpsc::channel(4096);
    let watches: Vec<_> = backends
        .iter()
        .map(|b| b.watch_applications(tx.clone()))
        .collect();
    drop(tx);
    let mut settings = settings(&args, label.clone());
    settings
        .warnings
        .extend(warnings.iter().map(|w| format!("config: {w}")));
    // Config `[keys]` entries: an action name -> one key or several, comma-separated.
    let overrides: std::collections::BTreeMap<String, Vec<String>> = config
        .keys
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.split(',').map(|x| x.trim().to_string()).collect(),
            )
        })
        .collect();
    let (keymap, key_warnings) = Keymap::with_overrides(&overrides);
    settings.keymap = keymap;
    settings.warnings.extend(key_warnings);
    settings.read_only = ops.read_only;
    settings.operator = ops.operator.clone();
    settings.policies = ops.policies.clone();
    let provider: Arc<dyn Provider> = Arc::new(ArgoProvider::new(backends, ops, git, label));
    let result = open(settings, provider, rx).await;
    for w in watches {
        w.abort();
    }
    result.map(|_| ())
}

/// `shipdeck demo`: start the sandbox in-process and open the console against it.
pub async fn demo(
    args: ConsoleArgs,
    mut sandbox: crate::sandbox::SandboxOptions,
) -> anyhow::Result<()> {
    let _log = init_logging();
    // A demo shows rollouts in seconds, not minutes; keep a scale the operator chose.
    if (sandbox.time_scale - 1.0).abs() < f64::EPSILON {
        sandbox.time_scale = 0.2;
    }
    let sb = crate::sandbox::Sandbox::start(sandbox).await?;
    let token = sb.world.users.token(crate::sandbox::auth::Role::Admin);
    let api = ArgoApi::new(ArgoApiOptions {
        name: Some("sandbox".into()),
        server: sb.url.clone(),
        token: Some(crate::secrets::Secret::new(token)),
        workload_poll: Some(std::time::Duration::from_millis(500)),
        ..Default::default()
    })?;
    let git = Some(Arc::new(GitMirrors::new(sb.state_dir.join("mirrors"))));
    if let Some(g) = &git {
        api.set_git(g.clone());
    }
    let (tx, rx) = mpsc::channel(4096);
    let watch = api.watch_applications(tx);
    let label = format!("sandbox {}", sb.url);
    let mut settings = settings(&args, label.clone());
    settings.operator = "admin".into();
    // The demo's approvals go to an audit log beside the sandbox, not the operator's own.
    let ops = ops_for(&settings, AuditLog::in_dir(&sb.state_dir.join("audit")));
    let ci = sandbox_ci(&sb, git.clone());
    let provider: Arc<dyn Provider> =
        Arc::new(ArgoProvider::new(vec![api], ops, git, label).with_ci(ci));
    let result = open(settings, provider, rx).await;
    watch.abort();
    sb.stop().await;
    result.map(|_| ())
}
