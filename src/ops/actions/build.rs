//! Builds: a GitHub workflow with inputs or a Jenkins job with parameters, started
//! through [`CiSource`] (one adapter over the GitHub and Jenkins clients, `connect::Ci`,
//! serves both front ends), refused in read-only mode, audited, and followed to the end on
//! request. Rerun and cancel of a run are mutations too and pass the same guard and audit.
//! [`Pipeline`] and [`PipelineInput`] are the one shape of a triggerable pipeline and its
//! inputs, whichever CI system declares them.

use super::{ActionError, Ops};
use crate::model::{BuildRun, BuildSystem};
use crate::ops::audit::AuditRecord;
use crate::ops::policy::Refusal;
use crate::sources::SourceError;
use std::future::Future;
use std::time::Duration;

/// A triggerable pipeline: a GitHub workflow with `workflow_dispatch` inputs, or a
/// Jenkins job with parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pipeline {
    pub system: BuildSystem,
    /// Workflow file or Jenkins job name.
    pub name: String,
    pub title: String,
    pub git_ref: Option<String>,
    /// `owner/repo` of a GitHub workflow; None for Jenkins (or the only repository).
    pub repo: Option<String>,
    pub inputs: Vec<PipelineInput>,
}

/// One input of a pipeline, as the build form asks for it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PipelineInput {
    pub name: String,
    pub description: String,
    /// string | choice | boolean | environment | number
    pub kind: String,
    pub options: Vec<String>,
    pub default: Option<String>,
    pub required: bool,
}

impl From<crate::sources::github::WorkflowInput> for PipelineInput {
    fn from(i: crate::sources::github::WorkflowInput) -> Self {
        PipelineInput {
            name: i.name,
            description: i.description,
            kind: i.kind,
            options: i.options,
            default: i.default,
            required: i.required,
        }
    }
}

impl From<crate::sources::jenkins::JobParameter> for PipelineInput {
    fn from(p: crate::sources::jenkins::JobParameter) -> Self {
        PipelineInput {
            name: p.name,
            description: p.description,
            kind: match p.kind.as_str() {
                "text" | "password" => "string".into(),
                k => k.to_string(),
            },
            options: p.choices,
            default: p.default,
            required: false,
        }
    }
}

/// A build to start: a GitHub workflow with inputs or a Jenkins job with parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildRequest {
    pub system: BuildSystem,
    /// Workflow file (`build.yml`) or Jenkins job name.
    pub pipeline: String,
    /// `owner/repo` of a workflow; None: the CI's only configured repository.
    pub repo: Option<String>,
    /// Branch or tag to run on (GitHub); None: the repository's configured branch.
    pub git_ref: Option<String>,
    pub inputs: Vec<(String, String)>,
    /// The application the build is for, when started from one (audit only).
    pub app: Option<String>,
}

/// A run to act on (rerun, cancel): the system, its workflow or job, and its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRef {
    pub system: BuildSystem,
    pub pipeline: String,
    pub id: u64,
}

/// What the build actions need of a CI system.
pub trait CiSource: Send + Sync {
    fn dispatch(
        &self,
        req: &BuildRequest,
    ) -> impl Future<Output = Result<BuildRun, SourceError>> + Send;
    fn run(
        &self,
        system: BuildSystem,
        pipeline: &str,
        id: u64,
    ) -> impl Future<Output = Result<BuildRun, SourceError>> + Send;
    /// Run a finished run again.
    fn rerun(&self, run: &RunRef) -> impl Future<Output = Result<(), SourceError>> + Send {
        let what = format!("rerun of {} run {}", run.pipeline, run.id);
        async move { Err(SourceError::Refused(format!("{what} is not offered here"))) }
    }
    /// Stop a run in progress.
    fn cancel(&self, run: &RunRef) -> impl Future<Output = Result<(), SourceError>> + Send {
        let what = format!("cancel of {} run {}", run.pipeline, run.id);
        async move { Err(SourceError::Refused(format!("{what} is not offered here"))) }
    }
}

fn instance_of(system: BuildSystem) -> String {
    match system {
        BuildSystem::GithubActions => "github".into(),
        BuildSystem::Jenkins => "jenkins".into(),
    }
}

fn ci_record(
    ops: &Ops,
    action: &str,
    system: BuildSystem,
    target: &str,
    outcome: &str,
    detail: Option<String>,
) -> AuditRecord {
    AuditRecord {
        at: chrono::Utc::now(),
        who: ops.operator.clone(),
        action: action.into(),
        instance: instance_of(system),
        app: target.to_string(),
        environment: String::new(),
        from_revision: None,
        to_revision: None,
        diff_digest: None,
        approval_id: None,
        reason: None,
        outcome: outcome.into(),
        detail,
        dry_run: false,
    }
}

/// Refuse in read-only mode, and record the refused attempt (what every CI mutation does
/// first; a front end may call it before looking anything up).
pub fn refuse_read_only(
    ops: &Ops,
    action: &'static str,
    system: BuildSystem,
    target: &str,
) -> Result<(), ActionError> {
    if !ops.read_only {
        return Ok(());
    }
    let refusal = Refusal::ReadOnly {
        action,
        app: target.to_string(),
    };
    let _ = ops.audit.append(&ci_record(
        ops,
        action,
        system,
        target,
        "refused",
        Some(refusal.to_string()),
    ));
    Err(refusal.into())
}

/// The outcome word of how a followed operation or run ended.
pub fn final_outcome<T>(result: &Result<T, ActionError>) -> &'static str {
    match result {
        Ok(_) => "succeeded",
        Err(ActionError::Timeout { .. }) => "timed-out",
        Err(_) => "failed",
    }
}

/// Start a build: read-only refuses (audited); the dispatch is audited.
pub async fn build<C: CiSource>(
    ci: &C,
    ops: &Ops,
    req: &BuildRequest,
) -> Result<BuildRun, ActionError> {
    let target = req.app.clone().unwrap_or_else(|| req.pipeline.clone());
    refuse_read_only(ops, "build", req.system, &target)?;
    let result = ci.dispatch(req).await;
    let (outcome, detail) = match &result {
        Ok(run) => ("started", format!("{} run {}", req.pipeline, run.id)),
        Err(e) => ("failed", e.to_string()),
    };
    // A build does not deploy to a gated environment by itself, so a lost line is not a
    // refusal.
    let _ = ops.audit.append(&ci_record(
        ops,
        "build",
        req.system,
        &target,
        outcome,
        Some(detail),
    ));
    Ok(result?)
}

/// Rerun a CI run: read-only refuses (audited); the request and its answer are audited.
pub async fn rerun<C: CiSource>(ci: &C, ops: &Ops, run: &RunRef) -> Result<(), ActionError> {
    run_action(ci, ops, run, "rerun").await
}

/// Cancel a CI run: read-only refuses (audited); the request and its answer are audited.
pub async fn cancel<C: CiSource>(ci: &C, ops: &Ops, run: &RunRef) -> Result<(), ActionError> {
    run_action(ci, ops, run, "cancel").await
}

async fn run_action<C: CiSource>(
    ci: &C,
    ops: &Ops,
    run: &RunRef,
    action: &'static str,
) -> Result<(), ActionError> {
    let target = format!("{} run {}", run.pipeline, run.id);
    refuse_read_only(ops, action, run.system, &target)?;
    let result = match action {
        "rerun" => ci.rerun(run).await,
        _ => ci.cancel(run).await,
    };
    let (outcome, detail) = match &result {
        Ok(()) => ("started", None),
        Err(e) => ("failed", Some(e.to_string())),
    };
    let _ = ops.audit.append(&ci_record(
        ops, action, run.system, &target, outcome, detail,
    ));
    Ok(result?)
}

impl RunRef {
    pub fn of(run: &BuildRun) -> RunRef {
        RunRef {
            system: run.system,
            pipeline: run.pipeline.clone(),
            id: run.id,
        }
    }
}

/// Look at a run until it is done (in whatever state), or `timeout` passes. A lost session
/// or a refusal ends the wait at once; other errors are retried until the deadline.
async fn wait_done<C: CiSource>(
    ci: &C,
    run: &RunRef,
    timeout: Duration,
    poll: Duration,
) -> Result<BuildRun, ActionError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last: Option<BuildRun> = None;
    loop {
        match ci.run(run.system, &run.pipeline, run.id).await {
            Ok(r) if r.state.is_done() => return Ok(r),
            Ok(r) => last = Some(r),
            Err(e @ (SourceError::Unauthorized { .. } | SourceError::Forbidden(_))) => {
                return Err(e.into());
            }
            Err(_) => {}
        }
        if tokio::time::Instant::now() + poll > deadline {
            let state =
                last.map_or_else(|| "not answering".to_string(), |l| format!("{:?}", l.state));
            return Err(ActionError::Timeout {
                what: format!("{} run {} is still {state}", run.pipeline, run.id),
                seconds: timeout.as_secs(),
            });
        }
        tokio::time::sleep(poll).await;
    }
}

/// Follow a run until it completes; a failed or cancelled run is an error.
pub async fn wait_for_build<C: CiSource>(
    ci: &C,
    run: &BuildRun,
    timeout: Duration,
    poll: Duration,
) -> Result<BuildRun, ActionError> {
    let r = wait_done(ci, &RunRef::of(run), timeout, poll).await?;
    if r.state == crate::model::BuildState::Succeeded {
        Ok(r)
    } else {
        Err(ActionError::Failed(format!(
            "{} run {} ended {:?}",
            r.pipeline, r.id, r.state
        )))
    }
}

/// Follow a run after a `build` or `rerun` (done when it succeeds) or a `cancel` (done
/// when it ends cancelled), and record the final outcome (`succeeded`, `failed`,
/// `timed-out`) so the audit log never stops at `started`. `target` is what the starting
/// record named (the app, else the pipeline).
pub async fn follow_run<C: CiSource>(
    ci: &C,
    ops: &Ops,
    action: &str,
    target: Option<&str>,
    run: &RunRef,
    timeout: Duration,
    poll: Duration,
) -> Result<BuildRun, ActionError> {
    let wanted = if action == "cancel" {
        crate::model::BuildState::Cancelled
    } else {
        crate::model::BuildState::Succeeded
    };
    let result = match wait_done(ci, run, timeout, poll).await {
        Ok(r) if r.state == wanted => Ok(r),
        Ok(r) => Err(ActionError::Failed(format!(
            "{} run {} ended {:?}",
            r.pipeline, r.id, r.state
        ))),
        Err(e) => Err(e),
    };
    let default_target = if action == "build" {
        run.pipeline.clone()
    } else {
        format!("{} run {}", run.pipeline, run.id)
    };
    let detail = match &result {
        Ok(r) => format!("{} run {}: {:?}", r.pipeline, r.id, r.state),
        Err(e) => format!("{} run {}: {e}", run.pipeline, run.id),
    };
    let rec = ci_record(
        ops,
        action,
        run.system,
        target.unwrap_or(&default_target),
        final_outcome(&result),
        Some(detail),
    );
    if let Err(e) = ops.audit.append(&rec) {
        tracing::warn!("audit log not written: {e}");
    }
    result
}

/// [`follow_run`] of a build just started.
pub async fn follow_build<C: CiSource>(
    ci: &C,
    ops: &Ops,
    req_app: Option<&str>,
    run: &BuildRun,
    timeout: Duration,
    poll: Duration,
) -> Result<BuildRun, ActionError> {
    follow_run(ci, ops, "build", req_app, &RunRef::of(run), timeout, poll).await
}
