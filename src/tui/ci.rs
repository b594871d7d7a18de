//! The console's CI requests (pipelines, runs, trigger, follow, rerun, cancel) answered
//! over the composition room's [`Ci`], the same adapter the CLI uses. Every mutation goes
//! through `ops::actions` (read-only, audit), and a triggered run is followed to its end in
//! the background so its audit entry gets a final outcome. Errors reach the screen in the
//! words the typed error carries (what went wrong and what to do). Never draws or decides.

use super::request::{Payload, Request, Response, Ticket};
use crate::connect::Ci;
use crate::model::BuildRun;
use crate::ops::actions::{self, BuildRequest, CiSource, Ops, RunRef};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// How often a followed run is looked at again.
const FOLLOW_POLL: Duration = Duration::from_millis(700);
/// How long a triggered run is followed for its audit entry before it counts as timed out.
const FOLLOW_LIMIT: Duration = Duration::from_secs(3 * 3600);

/// Runs that built `sha` (the approval screen's "did it build?").
pub async fn runs_for_sha(ci: Option<Arc<Ci>>, sha: &str) -> Result<Payload, String> {
    let ci = ci.ok_or_else(|| Ci::nothing_configured().to_string())?;
    let runs = ci.runs().await.map_err(|e| e.to_string())?;
    Ok(Payload::CiRuns(
        runs.into_iter()
            .filter(|r| r.head_sha.as_deref() == Some(sha))
            .collect(),
    ))
}

/// Answer one CI request in a task: one answer, or many while following a run.
pub fn task(
    ci: Option<Arc<Ci>>,
    ops: Arc<Ops>,
    ticket: Ticket,
    req: Request,
    tx: mpsc::Sender<Response>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let send = |result: Result<Payload, String>| {
            let tx = tx.clone();
            async move { tx.send(Response { ticket, result }).await.is_ok() }
        };
        let ci = match ci {
            Some(ci) if !ci.is_empty() => ci,
            _ => {
                send(Err(Ci::nothing_configured().to_string())).await;
                return;
            }
        };
        let result = match req {
            Request::Pipelines => ci
                .pipelines()
                .await
                .map(Payload::Pipelines)
                .map_err(|e| e.to_string()),
            Request::Runs => ci
                .runs()
                .await
                .map(Payload::Runs)
                .map_err(|e| e.to_string()),
            Request::Trigger { pipeline, inputs } => {
                let req = BuildRequest {
                    system: pipeline.system,
                    pipeline: pipeline.name.clone(),
                    repo: pipeline.repo.clone(),
                    git_ref: pipeline.git_ref.clone(),
                    inputs: inputs.into_iter().collect(),
                    app: None,
                };
                match actions::build(&*ci, &ops, &req).await {
                    Ok(run) => {
                        follow_in_background(ci.clone(), ops.clone(), "build", RunRef::of(&run));
                        Ok(Payload::Run(run))
                    }
                    Err(e) => Err(e.to_string()),
                }
            }
            Request::Rerun {
                system,
                pipeline,
                id,
            } => {
                let run = RunRef {
                    system,
                    pipeline,
                    id,
                };
                match actions::rerun(&*ci, &ops, &run).await {
                    Ok(()) => {
                        follow_in_background(ci.clone(), ops.clone(), "rerun", run);
                        Ok(Payload::Accepted(format!("rerun of run {id} requested")))
                    }
                    Err(e) => Err(e.to_string()),
                }
            }
            Request::Cancel {
                system,
                pipeline,
                id,
            } => {
                let run = RunRef {
                    system,
                    pipeline,
                    id,
                };
                match actions::cancel(&*ci, &ops, &run).await {
                    Ok(()) => {
                        follow_in_background(ci.clone(), ops.clone(), "cancel", run);
                        Ok(Payload::Accepted(format!("cancel of run {id} requested")))
                    }
                    Err(e) => Err(e.to_string()),
                }
            }
            Request::WatchRun {
                system,
                pipeline,
                id,
            } => {
                let mut last: Option<BuildRun> = None;
                loop {
                    match ci.run(system, &pipeline, id).await {
                        Ok(run) => {
                            let done = run.state.is_done();
                            if last.as_ref() != Some(&run) {
                                last = Some(run.clone());
                                if !send(Ok(Payload::Run(run))).await {
                                    return;
                                }
                            }
                            if done {
                                return;
                            }
                        }
                        Err(e) => {
                            send(Err(e.to_string())).await;
                            return;
                        }
                    }
                    tokio::time::sleep(FOLLOW_POLL).await;
                }
            }
            _ => Err("this request needs an application".into()),
        };
        send(result).await;
    })
}

/// Follow a run after a build, rerun or cancel to its end and record the outcome, whatever
/// the screens do.
fn follow_in_background(ci: Arc<Ci>, ops: Arc<Ops>, action: &'static str, run: RunRef) {
    tokio::spawn(async move {
        let _ =
            actions::follow_run(&*ci, &ops, action, None, &run, FOLLOW_LIMIT, FOLLOW_POLL).await;
    });
}
