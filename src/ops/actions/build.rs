//! Builds: a GitHub workflow with inputs or a Jenkins job with parameters, started
//! through [`CiSource`] (the CLI and console adapt the GitHub and Jenkins clients to it),
//! refused in read-only mode, audited, and followed to the end on request.

use super::{ActionError, Ops};
use crate::model::{BuildRun, BuildSystem};
use crate::ops::audit::AuditRecord;
use crate::ops::policy::{Mutation, Refusal};
use crate::sources::SourceError;
use std::future::Future;
use std::time::Duration;

/// A build to start: a GitHub workflow with inputs or a Jenkins job with parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildRequest {
    pub system: BuildSystem,
    /// Workflow file (`build.yml`) or Jenkins job name.
    pub pipeline: String,
    /// Branch or tag to run on (GitHub); None: the repository's default branch.
    pub git_ref: Option<String>,
    pub inputs: Vec<(String, String)>,
    /// The application the build is for, when started from one (audit only).
    pub app: Option<String>,
}

/// What `build` needs of a CI system; H4's GitHub and Jenkins clients are adapted to it.
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
}

/// Start a build: read-only refuses; the dispatch is audited.
pub async fn build<C: CiSource>(
    ci: &C,
    ops: &Ops,
    req: &BuildRequest,
) -> Result<BuildRun, ActionError> {
    let target = req.app.clone().unwrap_or_else(|| req.pipeline.clone());
    if ops.read_only {
        return Err(Refusal::ReadOnly {
            action: Mutation::Build.as_str(),
            app: target,
        }
        .into());
    }
    let result = ci.dispatch(req).await;
    let rec = AuditRecord {
        at: chrono::Utc::now(),
        who: ops.operator.clone(),
        action: "build".into(),
        instance: match req.system {
            BuildSystem::GithubActions => "github".into(),
            BuildSystem::Jenkins => "jenkins".into(),
        },
        app: target,
        environment: String::new(),
        from_revision: None,
        to_revision: None,
        diff_digest: None,
        approval_id: None,
        reason: None,
        outcome: if result.is_ok() { "started" } else { "failed" }.into(),
        detail: Some(match &result {
            Ok(run) => format!("{} run {}", req.pipeline, run.id),
            Err(e) => e.to_string(),
        }),
        dry_run: false,
    };
    // A build does not deploy to a gated environment by itself, so a lost line is a note
    // in the result, not a refusal.
    let _ = ops.audit.append(&rec);
    Ok(result?)
}

/// Follow a run until it completes; a failed or cancelled run is an error.
pub async fn wait_for_build<C: CiSource>(
    ci: &C,
    run: &BuildRun,
    timeout: Duration,
    poll: Duration,
) -> Result<BuildRun, ActionError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = run.clone();
    loop {
        match ci.run(run.system, &run.pipeline, run.id).await {
            Ok(r) if r.state.is_done() => {
                return if r.state == crate::model::BuildState::Succeeded {
                    Ok(r)
                } else {
                    Err(ActionError::Failed(format!(
                        "{} run {} ended {:?}",
                        r.pipeline, r.id, r.state
                    )))
                };
            }
            Ok(r) => last = r,
            Err(e @ (SourceError::Unauthorized { .. } | SourceError::Forbidden(_))) => {
                return Err(e.into());
            }
            Err(_) => {}
        }
        if tokio::time::Instant::now() + poll > deadline {
            return Err(ActionError::Timeout {
                what: format!(
                    "{} run {} is still {:?}",
                    last.pipeline, last.id, last.state
                ),
                seconds: timeout.as_secs(),
            });
        }
        tokio::time::sleep(poll).await;
    }
}
