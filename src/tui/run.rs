//! The console's entry points: `shipdeck` (against the operator's Argo CD) and `shipdeck
//! demo` (against an in-process sandbox). Both start from the composition room
//! (`crate::connect`): backends, ops (with the config's environment rules and policies), CI
//! and Git mirrors come from there, as for the CLI. This file sets up logging to a file,
//! the terminal (see `terminal`: refused without one, given back on quit, panic and
//! signals), the theme and keymap, then hands over to the loop. Nothing here draws or decides.

use super::adapt::ArgoProvider;
use super::app::{Exit, Signals, run_loop};
use super::console::{Console, Settings};
use super::keymap::Keymap;
use super::request::Provider;
use super::terminal;
use super::theme::{ColorDepth, Theme};
use crate::connect::{Ci, ConsoleArgs};
use crate::model::Update;
use crate::ops::classify::Classifier;
use crate::ops::estate::Estate;
use crate::sources::ArgoSource;
use crate::sources::git::GitMirrors;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::mpsc;

fn config_dir() -> Option<PathBuf> {
    crate::paths::config_dir()
}

/// Log to `<data dir>/logs/shipdeck.log` (0600, credentials hidden), never to the terminal
/// the console owns. The guard must live as long as the console so buffered lines are
/// written.
pub fn init_logging() -> Option<tracing_appender::non_blocking::WorkerGuard> {
    crate::logging::init()
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
        classifier: Default::default(),
    }
}

/// Config `[keys]` entries (an action name -> one key or several, comma-separated) over
/// the default keymap, in `shipdeck` and `shipdeck demo` alike; conflicts become warnings.
fn apply_keys(settings: &mut Settings, config: &crate::config::Config) {
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
}

/// GitHub Actions and Jenkins of the sandbox, with its own credentials, as `shipdeck demo`
/// connects them (the room's [`Ci::sandbox`]).
pub fn sandbox_ci(sb: &crate::sandbox::Sandbox, git: Option<Arc<GitMirrors>>) -> Ci {
    Ci::sandbox(sb, git)
}

/// Take over the terminal, run the console, give the terminal back whatever happens. The
/// estate classifies apps with `classifier` (the config's environment rules).
pub async fn open(
    settings: Settings,
    classifier: Classifier,
    provider: Arc<dyn Provider>,
    updates: mpsc::Receiver<Update>,
) -> anyhow::Result<Exit> {
    let mut console = Console::new(Estate::with_classifier(classifier), settings);
    let signals = Signals::new();
    let mut tui = terminal::enter()?;
    let result = run_loop(&mut tui, &mut console, provider, updates, signals).await;
    terminal::leave();
    terminal::default_signals();
    if let Ok(Exit::Signal(n)) = result {
        terminal::ended_by(n);
    }
    Ok(result?)
}

/// `shipdeck`: the console against the operator's Argo CD (API or core mode, one or several
/// instances), with CI, all wired by the composition room.
pub async fn run(mut args: ConsoleArgs) -> anyhow::Result<()> {
    // A config that cannot be trusted stops everything first; then a terminal is needed.
    let room = crate::connect::Room::open(&args)?;
    let _log = init_logging();
    terminal::require("`shipdeck` (the console)")?;
    if args.theme.is_none() && !room.config.theme.is_empty() {
        args.theme = Some(room.config.theme.clone());
    }
    let wired = room.wire().await?;
    console(&args, wired).await
}

/// `shipdeck demo`: start the sandbox in-process and open the console against it.
pub async fn demo(
    mut args: ConsoleArgs,
    mut sandbox: crate::sandbox::SandboxOptions,
) -> anyhow::Result<()> {
    // `--config` counts here too: a bad file stops the demo before the sandbox starts.
    let (config, _) = crate::config::Config::load(args.config.as_deref())?;
    let _log = init_logging();
    terminal::require("`shipdeck demo`")?;
    if args.theme.is_none() && !config.theme.is_empty() {
        args.theme = Some(config.theme.clone());
    }
    // A demo shows rollouts in seconds, not minutes; keep a scale the operator chose.
    if (sandbox.time_scale - 1.0).abs() < f64::EPSILON {
        sandbox.time_scale = 0.2;
    }
    let sb = crate::sandbox::Sandbox::start(sandbox).await?;
    let mut wired = match crate::connect::Wired::sandbox(&args, &sb) {
        Ok(w) => w,
        Err(e) => {
            sb.stop().await;
            return Err(e);
        }
    };
    crate::connect::resolve_operator(&mut wired.ops, &wired.config, &wired.backends).await;
    let audit_path = wired.ops.audit.path().to_path_buf();
    let result = console(&args, wired).await;
    sb.stop().await;
    // The demo's audit log stays; say where (after the terminal is restored).
    eprintln!(
        "shipdeck demo: the audit log of this demo is {}",
        crate::model::text::sanitize(&audit_path.display().to_string())
    );
    result
}

/// The console on what the composition room wired, for `shipdeck` and `demo` alike: watch
/// every backend, settings from flags and config (warnings, `[keys]`, read-only, operator,
/// policies, classifier, the follower's deadline), then the loop; the watches end with it.
async fn console(args: &ConsoleArgs, wired: crate::connect::Wired) -> anyhow::Result<()> {
    let (tx, rx) = mpsc::channel(4096);
    let watches: Vec<_> = wired
        .backends
        .iter()
        .map(|b| b.watch_applications(tx.clone()))
        .collect();
    drop(tx);
    let rx = wired.learn_pipelines(rx);
    let mut settings = settings(args, wired.label.clone());
    settings
        .warnings
        .extend(wired.warnings.iter().map(|w| format!("config: {w}")));
    apply_keys(&mut settings, &wired.config);
    let ops = wired.ops;
    settings.read_only = ops.read_only;
    settings.operator = ops.operator.clone();
    settings.policies = ops.policies.clone();
    let classifier = ops.classifier.clone();
    settings.classifier = classifier.clone();
    let deadline = std::time::Duration::from_secs(wired.config.poll.follow_deadline_seconds);
    let mut provider = ArgoProvider::new(wired.backends, ops, wired.git, wired.label)
        .with_follow_deadline(deadline);
    provider.ci = Some(wired.ci);
    let provider: Arc<dyn Provider> = Arc::new(provider);
    let result = open(settings, classifier, provider, rx).await;
    for w in watches {
        w.abort();
    }
    result.map(|_| ())
}
