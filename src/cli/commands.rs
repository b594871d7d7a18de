//! The headless commands over Argo CD: `status`, `diff`, `history`, `rollout`, `sync`,
//! `rollback` (and `build`, `login` by delegation). Each one connects, asks `ops` to
//! decide and act, prints through `output`, and returns an exit code from `exit`. Refusals
//! and errors go to stderr, sanitized; results go to stdout.

use super::exit::{self, UsageError};
use super::output::{self, clean};
use super::{Command, ConsoleArgs, LoginSystem, OutputArgs, OutputFormat};
use crate::model::{RolloutVerdict, SyncResourceRef};
use crate::ops::actions::{self, ActionError, ActionOutcome, Ops, RollbackOptions, SyncOptions};
use crate::ops::approval::Approval;
use crate::ops::estate::{Estate, Update};
use crate::sources::{ArgoSource, Refresh};
use clap::Args;
use std::time::Duration;

mod approve;
pub use approve::ApproveArgs;

/// `--wait` and how long.
#[derive(Debug, Clone, Args, Default)]
pub struct WaitArgs {
    /// Wait until the operation finishes (Synced and Healthy, or failed) / the run completes.
    #[arg(long)]
    pub wait: bool,
    /// Give up waiting after this many seconds (exit 7); default: the config's
    /// `[poll] follow_deadline_seconds` (300), the console's deadline too.
    #[arg(long)]
    pub timeout: Option<u64>,
}

impl WaitArgs {
    /// The deadline in seconds: `--timeout`, else the config's.
    pub fn seconds(&self, config: &crate::config::Config) -> u64 {
        self.timeout.unwrap_or(config.poll.follow_deadline_seconds)
    }
}

#[derive(Debug, Clone, Args)]
pub struct SyncArgs {
    pub app: String,
    /// Revision to sync to (default: the app's target revision).
    #[arg(long)]
    pub revision: Option<String>,
    /// Delete resources that are no longer in Git.
    #[arg(long)]
    pub prune: bool,
    /// Ask Argo CD what would happen without changing anything.
    #[arg(long)]
    pub dry_run: bool,
    /// Sync only these resources: GROUP:KIND:NAME or GROUP:KIND:NAMESPACE/NAME (repeatable).
    #[arg(long = "resource")]
    pub resources: Vec<String>,
    /// Approve the change to a gated environment: name the app again.
    #[arg(long, value_name = "APP")]
    pub approve: Option<String>,
    /// Why (recorded with the approval; required where the policy is `required`).
    #[arg(long, requires = "approve")]
    pub reason: Option<String>,
    #[command(flatten)]
    pub wait: WaitArgs,
    #[command(flatten)]
    pub out: OutputArgs,
}

#[derive(Debug, Clone, Args)]
pub struct RollbackArgs {
    pub app: String,
    /// History id to return to (default: the previous deployment); see `shipdeck history`.
    #[arg(long)]
    pub id: Option<i64>,
    /// Turn auto-sync off first if it is on; it stays off until you enable it again.
    #[arg(long)]
    pub disable_auto_sync: bool,
    #[arg(long)]
    pub prune: bool,
    #[arg(long)]
    pub dry_run: bool,
    #[arg(long, value_name = "APP")]
    pub approve: Option<String>,
    #[arg(long, requires = "approve")]
    pub reason: Option<String>,
    #[command(flatten)]
    pub wait: WaitArgs,
    #[command(flatten)]
    pub out: OutputArgs,
}

/// `on` or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

#[derive(Debug, Clone, Args)]
pub struct AutoSyncArgs {
    pub app: String,
    #[arg(value_enum)]
    pub state: OnOff,
    /// Approve turning it on in a gated environment: name the app again.
    #[arg(long, value_name = "APP")]
    pub approve: Option<String>,
    /// Why (recorded with the approval; required where the policy is `required`).
    #[arg(long, requires = "approve")]
    pub reason: Option<String>,
    #[command(flatten)]
    pub out: OutputArgs,
}

#[derive(Debug, Clone, Args)]
pub struct BuildArgs {
    /// The application whose pipeline to run (from config or its annotations).
    pub app: Option<String>,
    /// GitHub workflow file (e.g. build.yml).
    #[arg(long)]
    pub workflow: Option<String>,
    /// Workflow input KEY=VALUE (repeatable).
    #[arg(long = "input", value_name = "KEY=VALUE")]
    pub inputs: Vec<String>,
    /// Git ref to run the workflow on (default: main).
    #[arg(long = "ref")]
    pub git_ref: Option<String>,
    /// GitHub repository OWNER/REPO of --workflow (default: GITHUB_REPOSITORY).
    #[arg(long)]
    pub repo: Option<String>,
    /// Jenkins job to build.
    #[arg(long, conflicts_with = "workflow")]
    pub jenkins_job: Option<String>,
    /// Jenkins parameter KEY=VALUE (repeatable).
    #[arg(long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,
    #[command(flatten)]
    pub wait: WaitArgs,
    #[command(flatten)]
    pub out: OutputArgs,
}

/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(250);

/// The longest a headless command waits for one answer (sources retry on their own; a
/// script must not hang behind a server that keeps failing).
const ANSWER_DEADLINE: Duration = Duration::from_secs(30);

async fn bounded<T>(
    what: &str,
    fut: impl std::future::Future<Output = Result<T, crate::sources::SourceError>>,
) -> anyhow::Result<T> {
    match tokio::time::timeout(ANSWER_DEADLINE, fut).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(ActionError::Timeout {
            what: format!("{what} (the server keeps failing or is too slow)"),
            seconds: ANSWER_DEADLINE.as_secs(),
        }
        .into()),
    }
}

/// Run one headless command; prints and returns the exit code. Every command starts from
/// the composition room: config, ops, then Argo CD or CI as the command needs.
pub async fn run_headless(args: &ConsoleArgs, cmd: Command) -> i32 {
    let result = async {
        let mut room = crate::connect::Room::open(args)?;
        for w in &room.warnings {
            eprintln!("shipdeck: warning: {}", clean(w));
        }
        match cmd {
            Command::Build(b) => super::build::build(&mut room, b).await,
            Command::Promote(p) => super::promote::promote(&mut room, p).await,
            Command::Plan { app, out } => plan(&mut room, &app, &out).await,
            other => {
                let backends = match tokio::time::timeout(ANSWER_DEADLINE, room.argo()).await {
                    Ok(b) => b?,
                    Err(_) => {
                        return Err(ActionError::Timeout {
                            what: "connecting to Argo CD".into(),
                            seconds: ANSWER_DEADLINE.as_secs(),
                        }
                        .into());
                    }
                };
                match other {
                    Command::Freeze(a) => {
                        return super::freeze::freeze_cmd(&backends, &room.ops, a).await;
                    }
                    Command::Unfreeze(a) => {
                        return super::freeze::unfreeze_cmd(&backends, &room.ops, a).await;
                    }
                    Command::ConfirmPrune(a) => {
                        let src = find(&backends, &a.app).await?;
                        return super::prune::confirm_prune(src, &room.ops, a).await;
                    }
                    _ => {}
                }
                if let Command::History { app, out } = &other {
                    let git = crate::connect::git(&room.config);
                    return history(find(&backends, app).await?, app, out, git.as_deref()).await;
                }
                argo_command(&backends, &room.ops, &room.config, other).await
            }
        }
    }
    .await;
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("shipdeck: {}", clean(&format!("{e:#}")));
            exit::for_error(&e)
        }
    }
}

fn print_json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    // Written as it serializes (no whole string first): `status` prints every app.
    use std::io::Write;
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    serde_json::to_writer_pretty(&mut out, v)?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(())
}

/// The backend that holds `name`: the only one, or the one whose list has it.
async fn find<'a, S: ArgoSource>(backends: &'a [S], name: &str) -> anyhow::Result<&'a S> {
    if let [only] = backends {
        return Ok(only);
    }
    let mut found = Vec::new();
    for b in backends {
        if bounded("list applications", b.list_applications())
            .await?
            .iter()
            .any(|a| a.metadata.name == name)
        {
            found.push(b);
        }
    }
    match found.as_slice() {
        [one] => Ok(one),
        [] => Err(ActionError::NotFound(format!("application {name} not found")).into()),
        _ => Err(UsageError(format!(
            "{name} exists in several Argo CD instances: choose one with --context or --argocd-server"
        ))
        .into()),
    }
}

async fn argo_command<S: ArgoSource>(
    backends: &[S],
    ops: &Ops,
    config: &crate::config::Config,
    cmd: Command,
) -> anyhow::Result<i32> {
    match cmd {
        Command::Status(out) => status(backends, ops, &out).await,
        Command::Diff { app, out } => diff(find(backends, &app).await?, &app, &out).await,
        Command::Rollout { app, wait, out } => {
            let seconds = wait.seconds(config);
            rollout(find(backends, &app).await?, &app, &wait, seconds, &out).await
        }
        Command::Sync(a) => {
            let seconds = a.wait.seconds(config);
            sync(find(backends, &a.app).await?, ops, a, seconds).await
        }
        Command::Rollback(a) => {
            let seconds = a.wait.seconds(config);
            rollback(find(backends, &a.app).await?, ops, a, seconds).await
        }
        Command::Autosync(a) => autosync(find(backends, &a.app).await?, ops, a).await,
        Command::Approve(a) => {
            let seconds = a.wait.seconds(config);
            approve::approve(find(backends, &a.app).await?, ops, a, seconds).await
        }
        _ => Err(UsageError("not a headless Argo CD command".into()).into()),
    }
}

async fn status<S: ArgoSource>(backends: &[S], ops: &Ops, out: &OutputArgs) -> anyhow::Result<i32> {
    // Rows stream out of each list as it decodes; no store of whole apps is built.
    let mut rows = output::StatusRows::new(&ops.classifier, &ops.policies);
    for b in backends {
        let instance = b.instance();
        let each = &mut |a| rows.push(instance, a);
        bounded("list applications", b.for_each_application(each)).await?;
    }
    let rows = rows.finish();
    match out.output {
        OutputFormat::Json => print_json(&rows)?,
        OutputFormat::Table => {
            use std::io::Write;
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(output::status_table(&rows).as_bytes())?;
            stdout.flush()?;
        }
    }
    Ok(exit::OK)
}

async fn diff<S: ArgoSource>(src: &S, name: &str, out: &OutputArgs) -> anyhow::Result<i32> {
    let app = bounded(name, src.get_application(name, Refresh::Normal)).await?;
    let d = bounded(name, actions::diff_of(src, &app)).await?;
    match out.output {
        OutputFormat::Json => print_json(&serde_json::json!({
            "app": clean(name),
            "differences": d.has_differences(),
            "digest": d.digest(),
            "resources": d.changed().map(|r| serde_json::json!({
                "resource": clean(&r.key.to_string()),
                "change": r.change,
                "summary": r.summary.iter().map(|s| clean(s)).collect::<Vec<_>>(),
                "diff": crate::model::text::sanitize_multiline(&r.unified()),
            })).collect::<Vec<_>>(),
        }))?,
        OutputFormat::Table => {
            if !d.has_differences() {
                println!("{}: no differences", clean(name));
            }
            for line in d.summary_lines() {
                println!("{}", clean(&line));
            }
            if d.has_differences() {
                println!();
                print!("{}", crate::model::text::sanitize_multiline(&d.render()));
            }
        }
    }
    Ok(if d.has_differences() {
        exit::DIFFERENCES
    } else {
        exit::OK
    })
}

/// `shipdeck plan APP`: the approval screen's evidence, computed by `ops::plan`.
async fn plan(
    room: &mut crate::connect::Room,
    name: &str,
    out: &OutputArgs,
) -> anyhow::Result<i32> {
    let backends = match tokio::time::timeout(ANSWER_DEADLINE, room.argo()).await {
        Ok(b) => b?,
        Err(_) => {
            return Err(ActionError::Timeout {
                what: "connecting to Argo CD".into(),
                seconds: ANSWER_DEADLINE.as_secs(),
            }
            .into());
        }
    };
    let src = find(&backends, name).await?;
    let mut estate = Estate::with_classifier(room.ops.classifier.clone());
    let mut all = Vec::new();
    for b in &backends {
        let apps = bounded("list applications", b.list_applications()).await?;
        all.extend(apps.iter().cloned());
        estate.apply(Update::Resync {
            instance: b.instance().to_string(),
            apps: apps
                .into_iter()
                .map(|a| {
                    let id = crate::model::AppId::new(
                        b.instance(),
                        a.metadata.namespace.clone(),
                        a.metadata.name.clone(),
                    );
                    (id, a)
                })
                .collect(),
        });
    }
    let git = crate::connect::git(&room.config);
    let ci = room.ci(git.clone());
    ci.learn_from_apps(&all, &room.config);
    let runs = if ci.is_empty() {
        Err(crate::connect::Ci::nothing_configured().to_string())
    } else {
        match tokio::time::timeout(ANSWER_DEADLINE, ci.runs()).await {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(_) => Err("CI did not answer in time".to_string()),
        }
    };
    let p = tokio::time::timeout(
        ANSWER_DEADLINE * 2,
        crate::ops::plan::compute(src, &room.ops, &estate, name, git.as_deref(), runs),
    )
    .await
    .map_err(|_| ActionError::Timeout {
        what: format!("planning {name}"),
        seconds: ANSWER_DEADLINE.as_secs() * 2,
    })??;
    match out.output {
        OutputFormat::Json => print_json(&output::plan_json(&p))?,
        OutputFormat::Table => print!("{}", output::plan_text(&p)),
    }
    Ok(if p.proven && p.blockers.is_empty() {
        exit::OK
    } else {
        exit::DIFFERENCES
    })
}

async fn history<S: ArgoSource>(
    src: &S,
    name: &str,
    out: &OutputArgs,
    git: Option<&crate::sources::git::GitMirrors>,
) -> anyhow::Result<i32> {
    let app = bounded(name, src.get_application(name, Refresh::None)).await?;
    // Images of each deployment from its manifests in Git (None: Git cannot tell).
    let images = tokio::time::timeout(ANSWER_DEADLINE, crate::ops::plan::history_images(git, &app))
        .await
        .ok()
        .flatten();
    let rows = output::history_rows(&app, images.as_deref());
    match out.output {
        OutputFormat::Json => print_json(&rows)?,
        OutputFormat::Table => print!("{}", output::history_table(&rows)),
    }
    Ok(exit::OK)
}

async fn rollout<S: ArgoSource>(
    src: &S,
    name: &str,
    wait: &WaitArgs,
    seconds: u64,
    out: &OutputArgs,
) -> anyhow::Result<i32> {
    let app = bounded(name, src.get_application(name, Refresh::None)).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
    let workloads = loop {
        let w = bounded(name, src.workloads(&app)).await?;
        let failed = w
            .iter()
            .any(|x| matches!(x.verdict(), RolloutVerdict::Failed(_)));
        let done = w.iter().all(|x| x.verdict() == RolloutVerdict::Complete);
        if !wait.wait || failed || done {
            break w;
        }
        if tokio::time::Instant::now() + POLL > deadline {
            print_rollout(&w, out)?;
            return Err(ActionError::Timeout {
                what: format!("rollout of {name} still in progress"),
                seconds,
            }
            .into());
        }
        tokio::time::sleep(POLL).await;
    };
    print_rollout(&workloads, out)?;
    let failed = workloads
        .iter()
        .any(|x| matches!(x.verdict(), RolloutVerdict::Failed(_)));
    Ok(if failed { exit::FAILED } else { exit::OK })
}

fn print_rollout(w: &[crate::model::WorkloadRollout], out: &OutputArgs) -> anyhow::Result<()> {
    match out.output {
        OutputFormat::Json => print_json(&w),
        OutputFormat::Table => {
            print!("{}", output::rollout_text(w));
            Ok(())
        }
    }
}

fn parse_resource(s: &str) -> Result<SyncResourceRef, UsageError> {
    let parts: Vec<&str> = s.splitn(3, ':').collect();
    let [group, kind, rest] = parts.as_slice() else {
        return Err(UsageError(format!(
            "--resource {s:?}: expected GROUP:KIND:NAME or GROUP:KIND:NAMESPACE/NAME"
        )));
    };
    let (namespace, name) = rest.split_once('/').unwrap_or(("", rest));
    if kind.is_empty() || name.is_empty() {
        return Err(UsageError(format!(
            "--resource {s:?}: kind and name are required"
        )));
    }
    Ok(SyncResourceRef {
        group: group.to_string(),
        kind: kind.to_string(),
        name: name.to_string(),
        namespace: namespace.to_string(),
    })
}

fn approval(ops: &Ops, approve: Option<String>, reason: Option<String>) -> Option<Approval> {
    approve.map(|named_app| Approval {
        named_app,
        reason,
        operator: ops.operator.clone(),
    })
}

async fn sync<S: ArgoSource>(src: &S, ops: &Ops, a: SyncArgs, seconds: u64) -> anyhow::Result<i32> {
    let resources = a
        .resources
        .iter()
        .map(|r| parse_resource(r))
        .collect::<Result<Vec<_>, _>>()?;
    let outcome = bounded_action(actions::sync(
        src,
        ops,
        &a.app,
        SyncOptions {
            revision: a.revision.clone(),
            prune: a.prune,
            dry_run: a.dry_run,
            resources,
            approval: approval(ops, a.approve.clone(), a.reason.clone()),
            four_eyes: None,
        },
    ))
    .await?;
    finish(src, ops, outcome, &a.wait, seconds, &a.out).await
}

async fn rollback<S: ArgoSource>(
    src: &S,
    ops: &Ops,
    a: RollbackArgs,
    seconds: u64,
) -> anyhow::Result<i32> {
    let outcome = bounded_action(actions::rollback(
        src,
        ops,
        &a.app,
        RollbackOptions {
            id: a.id,
            prune: a.prune,
            dry_run: a.dry_run,
            disable_auto_sync: a.disable_auto_sync,
            approval: approval(ops, a.approve.clone(), a.reason.clone()),
            four_eyes: None,
        },
    ))
    .await?;
    finish(src, ops, outcome, &a.wait, seconds, &a.out).await
}

/// `shipdeck autosync APP on|off`: says what the Application holds after the change.
async fn autosync<S: ArgoSource>(src: &S, ops: &Ops, a: AutoSyncArgs) -> anyhow::Result<i32> {
    let on = a.state == OnOff::On;
    let app = bounded_action(actions::auto_sync(
        src,
        ops,
        &a.app,
        on,
        approval(ops, a.approve.clone(), a.reason.clone()),
    ))
    .await?;
    let now = app.auto_sync();
    match a.out.output {
        OutputFormat::Json => print_json(&serde_json::json!({
            "app": clean(&a.app),
            "auto_sync": now,
        }))?,
        OutputFormat::Table => println!(
            "{}: auto-sync {}",
            clean(&a.app),
            if now { "on" } else { "off" }
        ),
    }
    if now != on {
        return Err(ActionError::Failed(format!(
            "{}: Argo CD accepted the change but auto-sync is still {}",
            a.app,
            if now { "on" } else { "off" }
        ))
        .into());
    }
    Ok(exit::OK)
}

/// An action's requests, bounded like [`bounded`] (a few requests, so twice the time).
async fn bounded_action<T>(
    fut: impl std::future::Future<Output = Result<T, ActionError>>,
) -> anyhow::Result<T> {
    match tokio::time::timeout(ANSWER_DEADLINE * 2, fut).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(ActionError::Timeout {
            what: "the server did not answer the action's requests".into(),
            seconds: (ANSWER_DEADLINE * 2).as_secs(),
        }
        .into()),
    }
}

/// Report what was sent, then (with --wait) how it ended.
async fn finish<S: ArgoSource>(
    src: &S,
    ops: &Ops,
    outcome: ActionOutcome,
    wait: &WaitArgs,
    seconds: u64,
    out: &OutputArgs,
) -> anyhow::Result<i32> {
    for n in &outcome.notes {
        eprintln!("shipdeck: note: {}", clean(n));
    }
    let name = outcome.id.name.clone();
    let short = |r: &Option<crate::model::Revision>| {
        r.as_ref()
            .map(|r| clean(r.short()))
            .unwrap_or_else(|| "-".into())
    };
    if out.output == OutputFormat::Table {
        eprintln!(
            "{} of {} ({}) started: {} -> {}{}",
            outcome.action,
            clean(&name),
            clean(&outcome.environment),
            short(&outcome.from_revision),
            short(&outcome.to_revision),
            outcome
                .approval
                .as_ref()
                .map(|a| format!(", approval {}", clean(&a.id)))
                .unwrap_or_default()
        );
    }
    let (app, code, error) = if wait.wait {
        // The console's follower: one deadline, the audit's final outcome written.
        let r =
            actions::follow_operation(src, ops, &outcome, Duration::from_secs(seconds), POLL).await;
        if out.output == OutputFormat::Table {
            let line = actions::follow::outcome_line(&name, outcome.action, &r);
            if r.is_ok() {
                println!("{}", clean(&line));
            } else {
                eprintln!("{}", clean(&line));
            }
        }
        match r {
            Ok(app) => (app, exit::OK, None),
            Err(e) => (
                outcome.app.clone(),
                exit::for_action(&e),
                Some(clean(&e.to_string())),
            ),
        }
    } else {
        (outcome.app.clone(), exit::OK, None)
    };
    match out.output {
        OutputFormat::Json => print_json(&serde_json::json!({
            "action": outcome.action,
            "app": clean(&name),
            "instance": clean(&outcome.id.instance),
            "environment": clean(&outcome.environment),
            "from_revision": outcome.from_revision.as_ref().map(|r| clean(r.as_str())),
            "to_revision": outcome.to_revision.as_ref().map(|r| clean(r.as_str())),
            "approval_id": outcome.approval.as_ref().map(|a| a.id.clone()),
            "diff_digest": outcome.diff_digest,
            "dry_run": outcome.dry_run,
            "waited": wait.wait,
            "sync": app.status.sync.status.to_string(),
            "health": app.status.health.status.to_string(),
            "error": error,
            "notes": outcome.notes.iter().map(|n| clean(n)).collect::<Vec<_>>(),
        }))?,
        OutputFormat::Table => {
            // With --wait the follower's ✓/✗ line was printed above.
            if let (Some(e), false) = (&error, wait.wait) {
                eprintln!("shipdeck: {e}");
            }
        }
    }
    Ok(code)
}

/// `shipdeck login argocd|github|jenkins`.
pub async fn login(args: &ConsoleArgs, system: LoginSystem, username: Option<String>) -> i32 {
    match crate::connect::login(args, system, username).await {
        Ok(msg) => {
            println!("{}", clean(&msg));
            exit::OK
        }
        Err(e) => {
            eprintln!("shipdeck: {}", clean(&format!("{e:#}")));
            exit::for_error(&e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_parse_as_argocd_writes_them() {
        let r = parse_resource("apps:Deployment:shop/api").unwrap_or_default();
        assert_eq!(
            (
                r.group.as_str(),
                r.kind.as_str(),
                r.namespace.as_str(),
                r.name.as_str()
            ),
            ("apps", "Deployment", "shop", "api")
        );
        let r = parse_resource(":ConfigMap:cfg").unwrap_or_default();
        assert_eq!((r.group.as_str(), r.name.as_str()), ("", "cfg"));
        assert!(parse_resource("Deployment/api").is_err());
    }
}
