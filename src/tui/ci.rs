//! CI for the console: one GitHub repository's workflows and a set of Jenkins jobs, behind
//! the `ops::actions::CiSource` seam so a trigger is audited like every other change. It
//! answers the Builds screen's requests (pipelines, runs, trigger, follow, rerun, cancel);
//! it never draws and never decides.

use super::request::{Payload, Pipeline, PipelineInput};
use crate::model::{BuildRun, BuildSystem};
use crate::ops::actions::{BuildRequest, CiSource, Ops};
use crate::sources::SourceError;
use crate::sources::github::GithubClient;
use crate::sources::jenkins::JenkinsClient;
use std::collections::BTreeMap;
use std::time::Duration;

pub struct Ci {
    pub github: Option<GithubRepo>,
    pub jenkins: Option<JenkinsJobs>,
}

pub struct GithubRepo {
    pub client: GithubClient,
    pub owner: String,
    pub repo: String,
    /// Branch workflows are read from and dispatched on.
    pub git_ref: String,
    /// Git URL to read workflow files from when the contents API is not served.
    pub repo_url: Option<String>,
}

pub struct JenkinsJobs {
    pub client: JenkinsClient,
    pub jobs: Vec<String>,
}

fn err(system: &str, e: impl std::fmt::Display) -> SourceError {
    SourceError::Refused(format!("{system}: {e}"))
}

impl CiSource for Ci {
    async fn dispatch(&self, req: &BuildRequest) -> Result<BuildRun, SourceError> {
        let inputs: BTreeMap<String, String> = req.inputs.iter().cloned().collect();
        match req.system {
            BuildSystem::GithubActions => {
                let g = self
                    .github
                    .as_ref()
                    .ok_or_else(|| err("GitHub", "not configured"))?;
                let git_ref = req.git_ref.clone().unwrap_or_else(|| g.git_ref.clone());
                let d = g
                    .client
                    .dispatch(&g.owner, &g.repo, &req.pipeline, &git_ref, &inputs)
                    .await
                    .map_err(|e| err("GitHub", e))?;
                g.client
                    .run(&g.owner, &g.repo, d.run_id)
                    .await
                    .map_err(|e| err("GitHub", e))
            }
            BuildSystem::Jenkins => {
                let j = self
                    .jenkins
                    .as_ref()
                    .ok_or_else(|| err("Jenkins", "not configured"))?;
                let item = j
                    .client
                    .trigger(&req.pipeline, &inputs)
                    .await
                    .map_err(|e| err("Jenkins", e))?;
                let number = j
                    .client
                    .wait_queue(item, Duration::from_millis(300), Duration::from_secs(120))
                    .await
                    .map_err(|e| err("Jenkins", e))?;
                j.client
                    .build(&req.pipeline, number)
                    .await
                    .map_err(|e| err("Jenkins", e))
            }
        }
    }

    async fn run(
        &self,
        system: BuildSystem,
        pipeline: &str,
        id: u64,
    ) -> Result<BuildRun, SourceError> {
        match system {
            BuildSystem::GithubActions => {
                let g = self
                    .github
                    .as_ref()
                    .ok_or_else(|| err("GitHub", "not configured"))?;
                let mut run = g
                    .client
                    .run(&g.owner, &g.repo, id)
                    .await
                    .map_err(|e| err("GitHub", e))?;
                if let Ok(jobs) = g.client.jobs(&g.owner, &g.repo, id).await {
                    run.jobs = jobs;
                }
                Ok(run)
            }
            BuildSystem::Jenkins => {
                let j = self
                    .jenkins
                    .as_ref()
                    .ok_or_else(|| err("Jenkins", "not configured"))?;
                j.client
                    .build(pipeline, id)
                    .await
                    .map_err(|e| err("Jenkins", e))
            }
        }
    }
}

impl Ci {
    pub async fn pipelines(&self) -> Result<Payload, String> {
        let mut out = Vec::new();
        if let Some(g) = &self.github {
            let wfs = g
                .client
                .workflows(&g.owner, &g.repo, &g.git_ref, g.repo_url.as_deref())
                .await
                .map_err(|e| format!("GitHub: {e}"))?;
            for w in wfs {
                let Some(inputs) = w.inputs.clone() else {
                    continue;
                };
                out.push(Pipeline {
                    system: BuildSystem::GithubActions,
                    name: w.file().to_string(),
                    title: w.name.clone(),
                    git_ref: Some(g.git_ref.clone()),
                    inputs: inputs
                        .into_iter()
                        .map(|i| PipelineInput {
                            name: i.name,
                            description: i.description,
                            kind: i.kind,
                            options: i.options,
                            default: i.default,
                            required: i.required,
                        })
                        .collect(),
                });
            }
        }
        if let Some(j) = &self.jenkins {
            for job in &j.jobs {
                let params = j
                    .client
                    .parameters(job)
                    .await
                    .map_err(|e| format!("Jenkins: {e}"))?;
                out.push(Pipeline {
                    system: BuildSystem::Jenkins,
                    name: job.clone(),
                    title: "Jenkins job".into(),
                    git_ref: None,
                    inputs: params
                        .into_iter()
                        .map(|p| PipelineInput {
                            name: p.name,
                            description: p.description,
                            kind: match p.kind.as_str() {
                                "text" | "password" => "string".into(),
                                k => k.to_string(),
                            },
                            options: p.choices,
                            default: p.default,
                            required: false,
                        })
                        .collect(),
                });
            }
        }
        Ok(Payload::Pipelines(out))
    }

    pub async fn runs(&self) -> Result<Payload, String> {
        let mut runs = Vec::new();
        if let Some(g) = &self.github {
            runs = g
                .client
                .runs(&g.owner, &g.repo, None, None)
                .await
                .map_err(|e| format!("GitHub: {e}"))?;
        }
        Ok(Payload::Runs(runs))
    }

    pub async fn trigger(
        &self,
        ops: &Ops,
        pipeline: &Pipeline,
        inputs: BTreeMap<String, String>,
    ) -> Result<Payload, String> {
        let req = BuildRequest {
            system: pipeline.system,
            pipeline: pipeline.name.clone(),
            git_ref: pipeline.git_ref.clone(),
            inputs: inputs.into_iter().collect(),
            app: None,
        };
        crate::ops::actions::build(self, ops, &req)
            .await
            .map(Payload::Run)
            .map_err(|e| e.to_string())
    }

    pub async fn rerun(&self, system: BuildSystem, id: u64) -> Result<Payload, String> {
        match (system, &self.github) {
            (BuildSystem::GithubActions, Some(g)) => g
                .client
                .rerun(&g.owner, &g.repo, id, false)
                .await
                .map(|()| Payload::Accepted(format!("rerun of run {id} requested")))
                .map_err(|e| format!("GitHub: {e}")),
            _ => Err("rerun is offered for GitHub runs only".into()),
        }
    }

    pub async fn cancel(&self, system: BuildSystem, id: u64) -> Result<Payload, String> {
        match (system, &self.github) {
            (BuildSystem::GithubActions, Some(g)) => g
                .client
                .cancel(&g.owner, &g.repo, id)
                .await
                .map(|()| Payload::Accepted(format!("cancel of run {id} requested")))
                .map_err(|e| format!("GitHub: {e}")),
            _ => Err("cancel is offered for GitHub runs only".into()),
        }
    }
}
