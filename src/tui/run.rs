//! The console's entry points: `shipdeck` (against the operator's Argo CD) and `shipdeck
//! demo` (against an in-process sandbox). They set up logging to a file, the terminal (and
//! its restoration on quit, panic, SIGTERM and SIGHUP), the theme and keymap, then hand
//! over to the loop. Nothing here draws or decides.

use super::app::{Exit, run_loop};
use super::console::{Console, Settings};
use super::keymap::Keymap;
use super::request::Provider;
use super::theme::{ColorDepth, Theme};
use crate::cli::ConsoleArgs;
use crate::model::Update;
use crate::ops::estate::Estate;
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

pub async fn run(_args: ConsoleArgs) -> anyhow::Result<()> {
    anyhow::bail!(
        "connecting the console to Argo CD needs the sources (sources::Backend), not merged into this build yet"
    )
}

/// `shipdeck demo`: start the sandbox in-process and open the console against it.
pub async fn demo(
    _args: ConsoleArgs,
    _sandbox: crate::sandbox::SandboxOptions,
) -> anyhow::Result<()> {
    anyhow::bail!(
        "shipdeck demo needs the Argo CD API client (sources::argocd), not merged into this build yet"
    )
}
