//! Command-line surface: clap definitions and the headless commands (`status`, `diff`,
//! `history`, `rollout`, `sync`, `rollback`, `autosync`, `build`, `login`), plus `sandbox`,
//! `completions` and `man`. With no subcommand (and with `demo`) `main` opens the console
//! instead; this front end never imports the other. The headless commands live in `cli/`:
//! they start from the composition room (`crate::connect`), call `ops`, and print
//! (`output`); every failure ends in a documented exit code (`exit`).

mod build;
mod commands;
pub mod exit;
mod freeze;
mod metrics;
mod output;
mod promote;
mod prune;

pub use crate::connect::{ConsoleArgs, LoginSystem};
use clap::{Args, Parser, Subcommand, ValueEnum};
pub use commands::{ApproveArgs, AutoSyncArgs, BuildArgs, RollbackArgs, SyncArgs, WaitArgs};
pub use freeze::{FreezeArgs, UnfreezeArgs};
pub use prune::ConfirmPruneArgs;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "shipdeck",
    version,
    about = "A terminal operations console for GitOps (Argo CD, Kubernetes, GitHub Actions, Jenkins)",
    after_help = exit::EXIT_CODES_HELP
)]
pub struct Cli {
    #[command(flatten)]
    pub console: ConsoleArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// `plan --help`: the stable JSON fields.
const PLAN_HELP: &str = "JSON fields (--output json; stable): app, environment, change (\"sync\"), \
from_revision, to_revision, diff_digest, changes (\"Kind/ns/name: meaning\" lines), commits \
([{sha, author, email, time, subject, body}], newest first), images (images the change starts \
running), build ({run: {pipeline, id, state, head_sha, url, linked_by: image-tag | \
source-commit-trailer | built-by-trailer} or null, unknown: why no run is known or null}), \
before ({state: first-environment | no-app | no-new-image | runs | ran-earlier | never-ran | \
not-now, environment, images, since, health}), proven (built by a successful run and Healthy \
in the environment before), blockers (the guard's words), promotion ({commit, by, from, \
source_app, images, source_revision, healthy_since}: the `shipdeck promote` commit among the \
commits, from its trailers; or null).\n\nExit codes: 0 proven and nothing \
in the way, 1 not proven or something in the way; others as every command (see shipdeck --help).";

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    #[default]
    Table,
    Json,
}

/// Options of every headless command.
#[derive(Debug, Clone, Args, Default)]
pub struct OutputArgs {
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List applications with environment, service, sync, health, revisions and why each
    /// OutOfSync app is so.
    #[command(after_help = exit::EXIT_CODES_HELP)]
    Status(OutputArgs),
    /// Show what a sync of APP would change (exits 1 when there are differences).
    #[command(after_help = exit::EXIT_CODES_HELP)]
    Diff {
        app: String,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// What a sync of APP would change, why (commits), whether it was proven (the CI run
    /// that built the target image; the same image Healthy in the environment before) and
    /// what stands in the way: the approval screen's evidence, headless.
    #[command(after_help = PLAN_HELP)]
    Plan {
        app: String,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Deployment history of APP (the ids `rollback --id` takes).
    #[command(after_help = exit::EXIT_CODES_HELP)]
    History {
        app: String,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Delivery metrics per service and environment: deployments (count, per day/week),
    /// lead time (median, p90), change failure rate and time to restore.
    #[command(after_help = metrics::help())]
    Metrics(metrics::MetricsArgs),
    /// Rollout of APP's Deployments: replicas, ReplicaSets, pods.
    #[command(after_help = exit::EXIT_CODES_HELP)]
    Rollout {
        app: String,
        #[command(flatten)]
        wait: WaitArgs,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Sync APP to its target revision (gated environments need --approve APP --reason).
    #[command(after_help = exit::EXIT_CODES_HELP)]
    Sync(SyncArgs),
    /// Roll APP back to a deployment in its history (default: the previous one).
    #[command(after_help = exit::EXIT_CODES_HELP)]
    Rollback(RollbackArgs),
    /// Four-eyes: show the approval request waiting on APP, or approve it as a different
    /// operator (--request ID --approve APP --reason) and send the sync or rollback it asks for.
    #[command(after_help = exit::EXIT_CODES_HELP)]
    Approve(ApproveArgs),
    /// Turn APP's automated sync on or off (gated environments need --approve APP --reason
    /// to turn it on, as for a sync).
    #[command(after_help = exit::EXIT_CODES_HELP)]
    Autosync(AutoSyncArgs),
    /// Incident freeze: add a deny sync window (marked as shipdeck's) to the AppProjects of
    /// ENV's apps, so Argo CD refuses their syncs from every client until `unfreeze ENV`.
    /// Needs no approval; `--list` shows the freezes open now.
    #[command(after_help = exit::EXIT_CODES_HELP)]
    Freeze(FreezeArgs),
    /// Lift a shipdeck freeze of ENV: remove exactly its window (other windows stay). A gated
    /// environment needs --approve ENV (and --reason where required), as for a sync.
    #[command(after_help = exit::EXIT_CODES_HELP)]
    Unfreeze(UnfreezeArgs),
    /// Confirm the prunes a sync of APP waits for (resources marked Prune=confirm, Argo CD
    /// 3.4+): writes argocd.argoproj.io/deletion-approved. Gated like a sync (--approve APP).
    #[command(name = "confirm-prune", after_help = exit::EXIT_CODES_HELP)]
    ConfirmPrune(ConfirmPruneArgs),
    /// Start a build: APP's pipeline, a GitHub workflow, or a Jenkins job.
    #[command(after_help = exit::EXIT_CODES_HELP)]
    Build(BuildArgs),
    /// Promote SERVICE into --to ENV: the images it runs Healthy in the environment before
    /// (or --from ENV), written into ENV's manifests on its branch as a commit by you (plain
    /// `image:`, kustomize `images`, Helm values), shown, and pushed with your own git
    /// credentials when confirmed (--yes, or `y` on the terminal; with neither it refuses).
    /// The app then waits for its normal sync and approval.
    #[command(after_help = exit::EXIT_CODES_HELP)]
    Promote(promote::PromoteArgs),
    /// Store a credential in the OS keyring. Reads the token (Jenkins: `user:api-token`;
    /// Argo CD with --username: the password) from standard input.
    #[command(after_help = exit::EXIT_CODES_HELP)]
    Login {
        #[arg(value_enum)]
        system: LoginSystem,
        /// Argo CD: log in with this user's password (read from stdin) instead of a token.
        #[arg(long)]
        username: Option<String>,
    },
    /// Serve a simulated GitOps estate on loopback (Kubernetes, Argo CD, GitHub, Jenkins APIs).
    Sandbox(SandboxArgs),
    /// Start the sandbox in-process and open the console against it.
    Demo(SandboxArgs),
    /// Print shell completions.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page.
    Man,
}

#[derive(Debug, Clone, Args)]
pub struct SandboxArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Where to write kubeconfig, env and the Git repository (default: a new temp dir).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Built-in estate name or path to an estate YAML file.
    #[arg(long, default_value = "default")]
    pub estate: String,
    /// Generate N applications instead (scale tests).
    #[arg(long)]
    pub apps: Option<usize>,
    /// Wall seconds per simulated second (0.1 runs ten times faster).
    #[arg(long, default_value_t = 1.0)]
    pub time_scale: f64,
    /// Seed for generated names and timings. Tokens are random on every start unless a seed
    /// is given; with one, they derive from it (for tests).
    #[arg(long)]
    pub seed: Option<u64>,
}

impl SandboxArgs {
    pub fn options(&self) -> crate::sandbox::SandboxOptions {
        crate::sandbox::SandboxOptions {
            listen: self.listen,
            state_dir: self.state_dir.clone(),
            estate: self.estate.clone(),
            apps: self.apps,
            time_scale: self.time_scale,
            seed: self.seed.unwrap_or(1),
            secrets_seed: self.seed,
        }
    }
}

/// Run a parsed subcommand other than the console's (`demo` and no subcommand are
/// `main`'s, which opens the console); returns the process exit code.
pub async fn run(console: &ConsoleArgs, command: Command) -> anyhow::Result<i32> {
    match command {
        Command::Login { system, username } => Ok(commands::login(console, system, username).await),
        cmd @ (Command::Status(_)
        | Command::Diff { .. }
        | Command::History { .. }
        | Command::Plan { .. }
        | Command::Rollout { .. }
        | Command::Sync(_)
        | Command::Rollback(_)
        | Command::Approve(_)
        | Command::Autosync(_)
        | Command::Freeze(_)
        | Command::Unfreeze(_)
        | Command::ConfirmPrune(_)
        | Command::Build(_)
        | Command::Promote(_)) => Ok(commands::run_headless(console, cmd).await),
        Command::Metrics(m) => Ok(metrics::run(console, m).await),
        Command::Sandbox(args) => crate::sandbox::serve::run(args.options()).await.map(|()| 0),
        Command::Demo(_) => Err(anyhow::anyhow!(
            "`demo` opens the console: run it from the shipdeck binary"
        )),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "shipdeck", &mut std::io::stdout());
            Ok(0)
        }
        Command::Man => {
            let cmd = <Cli as clap::CommandFactory>::command();
            clap_mangen::Man::new(cmd).render(&mut std::io::stdout())?;
            Ok(0)
        }
    }
}
