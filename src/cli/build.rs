//! `shipdeck build`: which pipeline (an app's, from its annotations or config; or the
//! workflow / Jenkins job named on the command line), started through the composition
//! room's CI (`connect::Ci`, the same adapter the console uses) and `ops::actions::build`,
//! and followed with `--wait` to an audited final outcome.

use super::exit::UsageError;
use super::output::clean;
use super::{BuildArgs, OutputFormat};
use crate::config::{self, Config, Pipeline};
use crate::connect::Room;
use crate::model::BuildSystem;
use crate::ops::actions::{self, BuildRequest};
use crate::sources::{ArgoSource, Refresh, SourceError};
use std::time::Duration;

fn pairs(list: &[String], flag: &str) -> Result<Vec<(String, String)>, UsageError> {
    list.iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| UsageError(format!("{flag} {kv:?}: expected KEY=VALUE")))
        })
        .collect()
}

/// The pipeline to run: flags first, else the app's (annotations, then config rules).
async fn pipeline(room: &mut Room, b: &BuildArgs) -> anyhow::Result<Pipeline> {
    if let Some(job) = &b.jenkins_job {
        return Ok(Pipeline::Jenkins { job: job.clone() });
    }
    let from_app = match &b.app {
        Some(name) => {
            let backends = room.argo().await?;
            let mut found = None;
            for be in &backends {
                if let Ok(app) = be.get_application(name, Refresh::None).await {
                    found = Some(app);
                    break;
                }
            }
            let app = found.ok_or_else(|| SourceError::NotFound(format!("application {name}")))?;
            config::pipeline_for(&app, &room.config.pipelines)
        }
        None => None,
    };
    let repo_flag = b
        .repo
        .clone()
        .or_else(|| std::env::var("GITHUB_REPOSITORY").ok());
    match (from_app, &b.workflow) {
        (Some(Pipeline::Github { owner, repo, workflow, git_ref }), w) => Ok(Pipeline::Github {
            owner,
            repo,
            workflow: w.clone().or(workflow),
            git_ref: b.git_ref.clone().or(git_ref),
        }),
        (Some(p @ Pipeline::Jenkins { .. }), None) => Ok(p),
        (_, Some(w)) => {
            let repo = repo_flag.ok_or_else(|| {
                UsageError(format!(
                    "which repository runs {w}? pass --repo OWNER/REPO (or set GITHUB_REPOSITORY)"
                ))
            })?;
            let (owner, repo) = repo
                .split_once('/')
                .ok_or_else(|| UsageError(format!("--repo {repo:?}: expected OWNER/REPO")))?;
            Ok(Pipeline::Github {
                owner: owner.into(),
                repo: repo.into(),
                workflow: Some(w.clone()),
                git_ref: b.git_ref.clone(),
            })
        }
        // An app without a pipeline: nothing found to build (5); no app at all: usage (2).
        (None, None) if b.app.is_some() => Err(SourceError::NotFound(format!(
            "no pipeline for {}: configure one (config `pipelines` or its shipdeck.io/* annotations), or pass --workflow / --jenkins-job",
            b.app.as_deref().unwrap_or_default()
        ))
        .into()),
        (None, None) => Err(UsageError(
            "no pipeline: name an app with a pipeline (config `pipelines` or its shipdeck.io/* annotations), or pass --workflow / --jenkins-job".into(),
        )
        .into()),
    }
}

pub async fn build(room: &mut Room, b: BuildArgs) -> anyhow::Result<i32> {
    let target = b
        .app
        .clone()
        .or(b.workflow.clone())
        .or(b.jenkins_job.clone())
        .unwrap_or_else(|| "a pipeline".into());
    // Refused (and audited) by ops before anything is looked up.
    actions::refuse_read_only(&room.ops, "build", BuildSystem::GithubActions, &target)?;
    let req = match pipeline(room, &b).await? {
        Pipeline::Github {
            owner,
            repo,
            workflow,
            git_ref,
        } => {
            let workflow = workflow.ok_or_else(|| {
                UsageError(format!(
                    "{owner}/{repo}: which workflow? pass --workflow FILE"
                ))
            })?;
            BuildRequest {
                system: BuildSystem::GithubActions,
                pipeline: workflow,
                repo: Some(format!("{owner}/{repo}")),
                git_ref,
                inputs: pairs(&b.inputs, "--input")?,
                app: b.app.clone(),
            }
        }
        Pipeline::Jenkins { job } => BuildRequest {
            system: BuildSystem::Jenkins,
            pipeline: job,
            repo: None,
            git_ref: None,
            inputs: pairs(&b.params, "--param")?,
            app: b.app.clone(),
        },
    };
    let ci = {
        let config: Config = room.config.clone();
        tokio::task::spawn_blocking(move || {
            crate::connect::Ci::from_config(
                &config,
                &crate::secrets::CredentialChain::default(),
                None,
            )
        })
        .await
        .map_err(|e| SourceError::Config(format!("credential lookup failed: {e}")))?
    };
    let ops = &room.ops;
    let run = actions::build(&ci, ops, &req).await?;
    if b.out.output == OutputFormat::Table {
        eprintln!(
            "started {} run {}{}",
            clean(&run.pipeline),
            run.id,
            run.url
                .as_deref()
                .map(|u| format!(" ({})", clean(u)))
                .unwrap_or_default()
        );
    }
    let (run, code, error) = if b.wait.wait {
        match actions::follow_build(
            &ci,
            ops,
            req.app.as_deref(),
            &run,
            Duration::from_secs(b.wait.seconds(&room.config)),
            Duration::from_millis(250),
        )
        .await
        {
            Ok(r) => (r, super::exit::OK, None),
            Err(e) => (
                run,
                super::exit::for_action(&e),
                Some(clean(&e.to_string())),
            ),
        }
    } else {
        (run, super::exit::OK, None)
    };
    // A GitHub run reports no image: once it succeeded, its bump commit in the GitOps repo
    // says which image it wrote and where it goes next.
    let (produced, next) = if b.wait.wait
        && error.is_none()
        && run.system == BuildSystem::GithubActions
        && run.state == crate::model::BuildState::Succeeded
    {
        what_it_produced(room, run.id).await
    } else {
        (Ok(Vec::new()), Vec::new())
    };
    match b.out.output {
        OutputFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "run": run, "waited": b.wait.wait, "error": error,
                "produced": produced.as_ref().ok(),
                "produced_error": produced.as_ref().err(),
                "goes_next": next,
            }))?
        ),
        OutputFormat::Table => {
            if let Some(e) = &error {
                eprintln!("shipdeck: {e}");
            } else {
                println!("{} run {}: {:?}", clean(&run.pipeline), run.id, run.state);
                print_produced(&produced, &next, b.wait.wait && run.state.is_done());
            }
        }
    }
    Ok(code)
}

/// The run's bump commits and where their image goes next; an error says why not known.
async fn what_it_produced(
    room: &mut Room,
    run_id: u64,
) -> (
    Result<Vec<actions::produced::Produced>, String>,
    Vec<actions::produced::NextStop>,
) {
    let Some(git) = crate::connect::git(&room.config) else {
        return (Err("no cache dir for Git mirrors".into()), Vec::new());
    };
    let mut apps = Vec::new();
    match room.argo().await {
        Ok(backends) => {
            for be in &backends {
                match be.list_applications().await {
                    Ok(a) => apps.extend(a),
                    Err(e) => return (Err(e.to_string()), Vec::new()),
                }
            }
        }
        Err(e) => return (Err(e.to_string()), Vec::new()),
    }
    match actions::produced::produced_by(&git, &apps, run_id).await {
        Ok(p) => {
            let next = actions::produced::next_stops(&room.ops, &p, &apps);
            (Ok(p), next)
        }
        Err(e) => (Err(e.to_string()), Vec::new()),
    }
}

fn print_produced(
    produced: &Result<Vec<actions::produced::Produced>, String>,
    next: &[actions::produced::NextStop],
    asked: bool,
) {
    match produced {
        Ok(p) if !p.is_empty() => {
            let mut images: Vec<String> = Vec::new();
            for i in p.iter().flat_map(|p| p.images.iter()) {
                if !images.contains(i) {
                    images.push(i.clone());
                }
            }
            let commits: Vec<String> = p
                .iter()
                .map(|p| clean(p.commit.get(..7).unwrap_or(&p.commit)))
                .collect();
            println!(
                "  image      {} (bump {} in the GitOps repo)",
                clean(&images.join(", ")),
                commits.join(", ")
            );
            for n in next {
                println!(
                    "  goes next  {} ({}) {}",
                    clean(&n.app),
                    clean(&n.environment),
                    n.how
                );
            }
        }
        Ok(_) if asked => {
            println!("  image      not known: no commit in the GitOps repo names this run")
        }
        Ok(_) => {}
        Err(e) => println!("  image      not known: {}", clean(e)),
    }
}
