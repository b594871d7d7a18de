//! The console without a terminal (`Headless`) over a sandbox started in-process, driven by
//! keys as an operator drives it: the API-mode client watching the sandbox's Argo CD, ops
//! with an audit log in a temporary directory, optionally Git mirrors and the sandbox's CI.

use super::Api;
use shipdeck::ops::actions::Ops;
use shipdeck::ops::audit::AuditLog;
use shipdeck::ops::estate::Estate;
use shipdeck::ops::policy::Policies;
use shipdeck::sandbox::{Sandbox, auth::Role};
use shipdeck::secrets::Secret;
use shipdeck::sources::ArgoSource;
use shipdeck::sources::argocd::{ArgoApi, ArgoApiOptions};
use shipdeck::sources::git::GitMirrors;
use shipdeck::tui::adapt::ArgoProvider;
use shipdeck::tui::app::Headless;
use shipdeck::tui::console::{Console, Settings};
use shipdeck::tui::request::Provider;
use std::sync::Arc;
use std::time::Duration;

/// What a flow needs besides the defaults.
pub struct Options {
    pub time_scale: f64,
    /// Git mirrors for commits, diffs and history images (None: screens say Git is absent).
    pub git: bool,
    /// The sandbox's GitHub Actions and Jenkins, as `shipdeck demo` wires them.
    pub ci: bool,
    /// Webhooks the audit log fans out to (`[[notify]]`).
    pub notifier: Option<shipdeck::ops::notify::Notifier>,
    /// The built-in estate (default: `default`).
    pub estate: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            time_scale: 0.02,
            git: true,
            ci: false,
            notifier: None,
            estate: "default".into(),
        }
    }
}

pub struct Rig {
    pub h: Headless,
    /// The console's own Argo CD client.
    pub argo: ArgoApi,
    /// The sandbox's Argo CD REST API as the admin, for checking what the console did.
    pub api: Api,
    pub audit: AuditLog,
    pub sb: Sandbox,
    _dir: tempfile::TempDir,
    _watch: tokio::task::JoinHandle<()>,
}

pub async fn rig(o: Options) -> Rig {
    let sb = super::sandbox_with(shipdeck::sandbox::SandboxOptions {
        time_scale: o.time_scale,
        estate: o.estate.clone(),
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().expect("temp dir");
    let argo = ArgoApi::new(ArgoApiOptions {
        name: Some("sandbox".into()),
        server: sb.url.clone(),
        token: Some(Secret::new(sb.world.users.token(Role::Admin))),
        workload_poll: Some(Duration::from_millis(100)),
        ..Default::default()
    })
    .expect("API client");
    let (tx, rx) = tokio::sync::mpsc::channel(4096);
    let watch = argo.watch_applications(tx);
    let audit = AuditLog::in_dir(&dir.path().join("audit")).with_notifier(o.notifier.clone());
    let ops = Ops {
        operator: "admin".into(),
        read_only: false,
        policies: Policies::default(),
        classifier: Default::default(),
        audit: audit.clone(),
    };
    let git = o
        .git
        .then(|| Arc::new(GitMirrors::new(dir.path().join("mirrors"))));
    let mut provider = ArgoProvider::new(vec![argo.clone()], ops, git.clone(), "sandbox".into());
    if o.ci {
        provider = provider.with_ci(shipdeck::tui::run::sandbox_ci(&sb, git));
    }
    let provider: Arc<dyn Provider> = Arc::new(provider);
    let console = Console::new(
        Estate::new(),
        Settings {
            operator: "admin".into(),
            source_label: "sandbox".into(),
            ..Settings::default()
        },
    );
    Rig {
        h: Headless::new(console, provider, rx),
        api: Api::new(&sb, Role::Admin),
        argo,
        audit,
        sb,
        _dir: dir,
        _watch: watch,
    }
}

/// A headless console over any source (API or core mode) as `shipdeck` wires one: the
/// source's estate watch, its provider, ops with an audit log in a temporary directory.
/// Keep the watch and the directory as long as the console.
pub fn headless_over<S>(src: &S) -> (Headless, tokio::task::JoinHandle<()>, tempfile::TempDir)
where
    S: shipdeck::ops::freeze::Projects + shipdeck::ops::prune::Annotate + Clone + 'static,
{
    let dir = tempfile::tempdir().expect("tempdir");
    let ops = Ops {
        operator: "admin".into(),
        read_only: false,
        policies: Default::default(),
        classifier: Default::default(),
        audit: AuditLog::in_dir(dir.path()),
    };
    let (tx, rx) = tokio::sync::mpsc::channel(4096);
    let watch = src.watch_applications(tx);
    let provider: Arc<dyn Provider> = Arc::new(ArgoProvider::new(
        vec![src.clone()],
        ops,
        None,
        "sandbox".into(),
    ));
    let h = Headless::new(
        Console::new(Estate::new(), Settings::default()),
        provider,
        rx,
    );
    (h, watch, dir)
}
