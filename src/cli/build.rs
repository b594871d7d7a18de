//! `shipdeck build`: which pipeline (an app's, from its annotations or config; or the
//! workflow / Jenkins job named on the command line), the CI clients behind
//! `ops::actions::CiSource`, and following the run with `--wait`.

use super::exit::UsageError;
use super::output::clean;
use super::{BuildArgs, ConsoleArgs, OutputFormat};
use crate::config::{self, Config, Pipeline};
use crate::model::{BuildRun, BuildSystem};
use crate::ops::actions::{self, BuildRequest, CiSource, Ops};
use crate::secrets::CredentialChain;
use crate::sources::github::{GithubClient, GithubError, GithubOptions};
use crate::sources::jenkins::{JenkinsClient, JenkinsError, JenkinsOptions};
use crate::sources::{ArgoSource, Refresh, SourceError};
use std::collections::BTreeMap;
use std::time::Duration;

fn from_github(e: GithubError) -> SourceError {
    e.into()
}

fn from_jenkins(e: JenkinsError) -> SourceError {
    e.into()
}

/// GitHub Actions for one repository, or Jenkins.
pub enum Ci {
    Github {
        client: GithubClient,
        owner: String,
        repo: String,
    },
    Jenkins(JenkinsClient),
}

impl CiSource for Ci {
    async fn dispatch(&self, req: &BuildRequest) -> Result<BuildRun, SourceError> {
        let inputs: BTreeMap<String, String> = req.inputs.iter().cloned().collect();
        match self {
            Ci::Github {
                client,
                owner,
                repo,
            } => {
                let git_ref = req.git_ref.clone().unwrap_or_else(|| "main".into());
                let d = client
                    .dispatch(owner, repo, &req.pipeline, &git_ref, &inputs)
                    .await
                    .map_err(from_github)?;
                client.run(owner, repo, d.run_id).await.map_err(from_github)
            }
            Ci::Jenkins(j) => {
                let item = j
                    .trigger(&req.pipeline, &inputs)
                    .await
                    .map_err(from_jenkins)?;
                let number = j
                    .wait_queue(item, Duration::from_millis(250), Duration::from_secs(120))
                    .await
                    .map_err(from_jenkins)?;
                j.build(&req.pipeline, number).await.map_err(from_jenkins)
            }
        }
    }

    async fn run(
        &self,
        _system: BuildSystem,
        pipeline: &str,
        id: u64,
    ) -> Result<BuildRun, SourceError> {
        match self {
            Ci::Github {
                client,
                owner,
                repo,
            } => client.run(owner, repo, id).await.map_err(from_github),
            Ci::Jenkins(j) => j.build(pipeline, id).await.map_err(from_jenkins),
        }
    }
}

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
async fn pipeline(args: &ConsoleArgs, config: &Config, b: &BuildArgs) -> anyhow::Result<Pipeline> {
    if let Some(job) = &b.jenkins_job {
        return Ok(Pipeline::Jenkins { job: job.clone() });
    }
    let from_app = match &b.app {
        Some(name) => {
            let backends = super::connect::argo(args, config).await?;
            let mut found = None;
            for be in &backends {
                if let Ok(app) = be.get_application(name, Refresh::None).await {
                    found = Some(app);
                    break;
                }
            }
            let app = found.ok_or_else(|| SourceError::NotFound(format!("application {name}")))?;
            config::pipeline_for(&app, &config.pipelines)
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

pub async fn build(
    args: &ConsoleArgs,
    config: &Config,
    ops: &Ops,
    b: BuildArgs,
) -> anyhow::Result<i32> {
    let target = b
        .app
        .clone()
        .or(b.workflow.clone())
        .or(b.jenkins_job.clone())
        .unwrap_or_else(|| "a pipeline".into());
    if ops.read_only {
        return Err(crate::ops::policy::Refusal::ReadOnly {
            action: "build",
            app: target,
        }
        .into());
    }
    let chain = CredentialChain::default();
    let (ci, req) = match pipeline(args, config, &b).await? {
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
            let api = config
                .github
                .api_url
                .clone()
                .or_else(|| std::env::var("GITHUB_API_URL").ok())
                .unwrap_or_else(|| crate::sources::github::DEFAULT_API_URL.into());
            let token = chain.github_token(&api, None).map(|(t, _)| t);
            let client = GithubClient::new(GithubOptions {
                api_url: Some(api),
                token,
                ..Default::default()
            })
            .map_err(from_github)?;
            let req = BuildRequest {
                system: BuildSystem::GithubActions,
                pipeline: workflow,
                git_ref,
                inputs: pairs(&b.inputs, "--input")?,
                app: b.app.clone(),
            };
            (
                Ci::Github {
                    client,
                    owner,
                    repo,
                },
                req,
            )
        }
        Pipeline::Jenkins { job } => {
            let url = config
                .jenkins
                .url
                .clone()
                .or_else(|| std::env::var("JENKINS_URL").ok())
                .ok_or_else(|| UsageError("which Jenkins? set JENKINS_URL".into()))?;
            let (user, token, _) = chain
                .jenkins(&url, config.jenkins.user.as_deref(), None)
                .ok_or_else(|| {
                    UsageError("no Jenkins credentials: set JENKINS_USER and JENKINS_TOKEN, or run `shipdeck login jenkins`".into())
                })?;
            let client = JenkinsClient::new(JenkinsOptions {
                url: Some(url),
                user,
                token,
                timeout: None,
            })
            .map_err(from_jenkins)?;
            let req = BuildRequest {
                system: BuildSystem::Jenkins,
                pipeline: job,
                git_ref: None,
                inputs: pairs(&b.params, "--param")?,
                app: b.app.clone(),
            };
            (Ci::Jenkins(client), req)
        }
    };
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
        match actions::wait_for_build(
            &ci,
            &run,
            Duration::from_secs(b.wait.timeout),
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
    match b.out.output {
        OutputFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "run": run, "waited": b.wait.wait, "error": error,
            }))?
        ),
        OutputFormat::Table => {
            if let Some(e) = &error {
                eprintln!("shipdeck: {e}");
            } else {
                println!("{} run {}: {:?}", clean(&run.pipeline), run.id, run.state);
            }
        }
    }
    Ok(code)
}
