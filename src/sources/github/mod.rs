//! GitHub Actions (reqwest): an app's workflows with their `workflow_dispatch` inputs read
//! from the workflow files, dispatch with the run id linked, runs/jobs/steps as
//! [`BuildRun`]s, rerun and cancel. Rate-limit headers are respected: with none left, a
//! request waits for the reset when it is near, else is refused with the reset time. The
//! newest API version is tried first; older servers get the older one, and a server that
//! answers a dispatch with 204 has its run found by listing. No policy here.

use crate::model::{BuildJob, BuildRun, BuildState, BuildStep, BuildSystem};
use crate::secrets::Secret;
use crate::sources::git::GitMirrors;
use base64::Engine;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

mod workflow;

pub use workflow::{Workflow, WorkflowInput, parse_dispatch_inputs};

pub const NEW_API_VERSION: &str = "2026-03-10";
pub const OLD_API_VERSION: &str = "2022-11-28";
pub const DEFAULT_API_URL: &str = "https://api.github.com";
const LOGIN_HINT: &str = "set GH_TOKEN or run `shipdeck login github`";
/// Wait for a rate-limit reset at most this long; beyond it, refuse with the time.
const MAX_RATE_WAIT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, thiserror::Error)]
pub enum GithubError {
    #[error("GitHub {server}: not authenticated ({detail}); {LOGIN_HINT}")]
    Unauthorized { server: String, detail: String },
    #[error("GitHub: permission denied: {0}")]
    Forbidden(String),
    #[error("GitHub: not found: {0}")]
    NotFound(String),
    #[error(
        "GitHub rate limit exhausted until {reset} UTC; try again then (or use a token with a higher limit)"
    )]
    RateLimited { reset: String },
    #[error("GitHub: {0}")]
    Refused(String),
    /// The request is wrong (an input the workflow does not declare, a ref that does not
    /// exist): fix the command line.
    #[error("GitHub: {0}")]
    Invalid(String),
    #[error("GitHub {server} unreachable: {detail}")]
    Unreachable { server: String, detail: String },
    #[error("GitHub: timed out: {0}")]
    Timeout(String),
    #[error("GitHub {server}: unexpected answer: {detail}")]
    Protocol { server: String, detail: String },
    #[error("workflow {path}: {detail}")]
    Workflow { path: String, detail: String },
}

type Result<T, E = GithubError> = std::result::Result<T, E>;

/// What a dispatch started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dispatched {
    pub run_id: u64,
    pub html_url: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct GithubOptions {
    /// None = `GITHUB_API_URL`, else the public API.
    pub api_url: Option<String>,
    pub token: Option<Secret>,
    pub timeout: Option<Duration>,
    /// For reading workflow files when the contents API is not served.
    pub git: Option<Arc<GitMirrors>>,
}

#[derive(Debug, Clone, Copy, Default)]
struct RateLimit {
    remaining: Option<u64>,
    reset: Option<i64>,
}

pub struct GithubClient {
    base: String,
    client: reqwest::Client,
    token: Option<Secret>,
    old_api: AtomicBool,
    rate: Mutex<RateLimit>,
    git: Option<Arc<GitMirrors>>,
}

impl std::fmt::Debug for GithubClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GithubClient")
            .field("base", &self.base)
            .field("token", &self.token)
            .finish()
    }
}

#[derive(Deserialize)]
struct RunJson {
    id: u64,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    display_title: Option<String>,
    #[serde(default)]
    head_branch: Option<String>,
    #[serde(default)]
    head_sha: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    conclusion: Option<String>,
    #[serde(default)]
    html_url: Option<String>,
    #[serde(default)]
    created_at: Option<String>,
    #[serde(default)]
    path: Option<String>,
}

#[derive(Deserialize)]
struct StepJson {
    #[serde(default)]
    number: u32,
    #[serde(default)]
    name: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    conclusion: Option<String>,
}

#[derive(Deserialize)]
struct JobJson {
    id: u64,
    #[serde(default)]
    name: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    conclusion: Option<String>,
    #[serde(default)]
    steps: Option<Vec<StepJson>>,
}

fn run_of(r: RunJson) -> BuildRun {
    let file = r
        .path
        .as_deref()
        .map(|p| p.split('@').next().unwrap_or(p))
        .and_then(|p| p.rsplit('/').next())
        .map(str::to_string);
    BuildRun {
        system: BuildSystem::GithubActions,
        id: r.id,
        pipeline: file.or(r.name.clone()).unwrap_or_default(),
        title: r.display_title.or(r.name).unwrap_or_default(),
        branch: r.head_branch,
        head_sha: r.head_sha,
        state: BuildState::from_github(r.status.as_deref().unwrap_or(""), r.conclusion.as_deref()),
        url: r.html_url,
        created_at: r.created_at,
        jobs: Vec::new(),
        inputs: Vec::new(),
        log_tail: Vec::new(),
    }
}

fn job_of(j: JobJson) -> BuildJob {
    BuildJob {
        id: j.id,
        name: j.name,
        state: BuildState::from_github(&j.status, j.conclusion.as_deref()),
        steps: j
            .steps
            .unwrap_or_default()
            .into_iter()
            .map(|s| BuildStep {
                number: s.number,
                name: s.name,
                state: BuildState::from_github(&s.status, s.conclusion.as_deref()),
            })
            .collect(),
    }
}

impl GithubClient {
    pub fn new(opts: GithubOptions) -> Result<GithubClient> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let base = opts
            .api_url
            .or_else(|| {
                std::env::var("GITHUB_API_URL")
                    .ok()
                    .filter(|s| !s.is_empty())
            })
            .unwrap_or_else(|| DEFAULT_API_URL.into())
            .trim_end_matches('/')
            .to_string();
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(opts.timeout.unwrap_or(Duration::from_secs(30)))
            .user_agent(concat!("shipdeck/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| GithubError::Protocol {
                server: base.clone(),
                detail: e.to_string(),
            })?;
        Ok(GithubClient {
            base,
            client,
            token: opts.token.filter(|t| !t.is_empty()),
            old_api: AtomicBool::new(false),
            rate: Mutex::new(RateLimit::default()),
            git: opts.git,
        })
    }

    pub fn api_url(&self) -> &str {
        &self.base
    }

    fn version(&self) -> &'static str {
        if self.old_api.load(Ordering::Relaxed) {
            OLD_API_VERSION
        } else {
            NEW_API_VERSION
        }
    }

    async fn respect_rate_limit(&self) -> Result<()> {
        let rl = *self.rate.lock().unwrap_or_else(|e| e.into_inner());
        if rl.remaining != Some(0) {
            return Ok(());
        }
        let Some(reset) = rl.reset else { return Ok(()) };
        let now = chrono::Utc::now().timestamp();
        if reset <= now {
            return Ok(());
        }
        let wait = Duration::from_secs((reset - now) as u64 + 1);
        if wait > MAX_RATE_WAIT {
            let at = chrono::DateTime::from_timestamp(reset, 0)
                .map(|t| t.format("%H:%M:%S").to_string())
                .unwrap_or_else(|| reset.to_string());
            return Err(GithubError::RateLimited { reset: at });
        }
        tokio::time::sleep(wait).await;
        Ok(())
    }

    fn note_rate(&self, headers: &reqwest::header::HeaderMap) {
        let num = |k: &str| {
            headers
                .get(k)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<i64>().ok())
        };
        let mut rl = self.rate.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = num("x-ratelimit-remaining") {
            rl.remaining = Some(r.max(0) as u64);
        }
        if let Some(r) = num("x-ratelimit-reset") {
            rl.reset = Some(r);
        }
    }

    /// Send a request; returns status and body. Downgrades the API version once when the
    /// server does not know the new one.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, bytes::Bytes)> {
        for _ in 0..2 {
            self.respect_rate_limit().await?;
            let mut rb = self
                .client
                .request(method.clone(), format!("{}{}", self.base, path))
                .header("Accept", "application/vnd.github+json")
                .header("X-GitHub-Api-Version", self.version());
            if let Some(t) = &self.token {
                rb = rb.bearer_auth(t.expose());
            }
            if let Some(b) = body {
                rb = rb.json(b);
            }
            let resp = rb.send().await.map_err(|e| self.transport(path, e))?;
            self.note_rate(resp.headers());
            let status = resp.status();
            let bytes = resp.bytes().await.map_err(|e| self.transport(path, e))?;
            if status == StatusCode::BAD_REQUEST
                && !self.old_api.load(Ordering::Relaxed)
                && String::from_utf8_lossy(&bytes)
                    .to_ascii_lowercase()
                    .contains("version")
            {
                self.old_api.store(true, Ordering::Relaxed);
                continue;
            }
            return Ok((status, bytes));
        }
        Err(GithubError::Protocol {
            server: self.base.clone(),
            detail: format!(
                "{path}: neither API version {NEW_API_VERSION} nor {OLD_API_VERSION} is accepted"
            ),
        })
    }

    fn transport(&self, what: &str, e: reqwest::Error) -> GithubError {
        if e.is_timeout() {
            GithubError::Timeout(format!("{}{what}", self.base))
        } else if e.is_connect() || e.is_request() {
            GithubError::Unreachable {
                server: self.base.clone(),
                detail: e.to_string(),
            }
        } else {
            GithubError::Protocol {
                server: self.base.clone(),
                detail: format!("{what}: {e}"),
            }
        }
    }

    fn status_error(&self, what: &str, status: StatusCode, body: &[u8]) -> GithubError {
        let msg = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(200)]).to_string());
        let msg = crate::model::text::sanitize(&msg).into_owned();
        let limited = self
            .rate
            .lock()
            .map(|r| r.remaining == Some(0))
            .unwrap_or(false);
        match status.as_u16() {
            401 => GithubError::Unauthorized {
                server: self.base.clone(),
                detail: msg,
            },
            403 | 429 if limited || msg.to_ascii_lowercase().contains("rate limit") => {
                let reset = self.rate.lock().ok().and_then(|r| r.reset).unwrap_or(0);
                GithubError::RateLimited {
                    reset: chrono::DateTime::from_timestamp(reset, 0)
                        .map(|t| t.format("%H:%M:%S").to_string())
                        .unwrap_or_default(),
                }
            }
            403 => GithubError::Forbidden(format!("{what}: {msg}")),
            404 => GithubError::NotFound(format!("{what}: {msg}")),
            409 => GithubError::Refused(format!("{what}: {msg}")),
            400 | 422 => GithubError::Invalid(format!("{what}: {msg}")),
            502..=504 => GithubError::Unreachable {
                server: self.base.clone(),
                detail: format!("{what}: HTTP {}: {msg}", status.as_u16()),
            },
            s => GithubError::Protocol {
                server: self.base.clone(),
                detail: format!("{what}: HTTP {s}: {msg}"),
            },
        }
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str, what: &str) -> Result<T> {
        let (status, body) = self.call(Method::GET, path, None).await?;
        if !status.is_success() {
            return Err(self.status_error(what, status, &body));
        }
        serde_json::from_slice(&body).map_err(|e| GithubError::Protocol {
            server: self.base.clone(),
            detail: format!("{what}: {e}"),
        })
    }

    /// A workflow file's text at `git_ref`: the contents API, else the repo's Git mirror.
    pub async fn workflow_file(
        &self,
        owner: &str,
        repo: &str,
        path: &str,
        git_ref: &str,
        repo_url: Option<&str>,
    ) -> Result<String> {
        #[derive(Deserialize)]
        struct Contents {
            #[serde(default)]
            content: String,
            #[serde(default)]
            encoding: String,
        }
        let api = format!("/repos/{owner}/{repo}/contents/{path}?ref={git_ref}");
        let first = match self.get_json::<Contents>(&api, path).await {
            Ok(c) if c.encoding == "base64" => {
                let clean: String = c.content.chars().filter(|c| !c.is_whitespace()).collect();
                match base64::engine::general_purpose::STANDARD.decode(clean) {
                    Ok(b) => return Ok(String::from_utf8_lossy(&b).into_owned()),
                    Err(e) => format!("contents API: {e}"),
                }
            }
            Ok(c) => format!("contents API: unexpected encoding {:?}", c.encoding),
            Err(e @ (GithubError::Unauthorized { .. } | GithubError::RateLimited { .. })) => {
                return Err(e);
            }
            Err(e) => e.to_string(),
        };
        let (Some(git), Some(url)) = (&self.git, repo_url) else {
            return Err(GithubError::Workflow {
                path: path.into(),
                detail: first,
            });
        };
        let wf = |detail: String| GithubError::Workflow {
            path: path.into(),
            detail: format!("{first}; from Git: {detail}"),
        };
        let mirror = git
            .mirror(url, false)
            .await
            .map_err(|e| wf(e.to_string()))?;
        match mirror.read_file(git_ref, path).await {
            Ok(Some(t)) => Ok(t),
            Ok(None) => Err(wf(format!("not in {url} at {git_ref}"))),
            Err(e) => Err(wf(e.to_string())),
        }
    }

    /// The repo's workflows, each with its dispatch inputs read from the file at `git_ref`.
    /// `repo_url` is the Git URL to read files from when the contents API is not served.
    pub async fn workflows(
        &self,
        owner: &str,
        repo: &str,
        git_ref: &str,
        repo_url: Option<&str>,
    ) -> Result<Vec<Workflow>> {
        #[derive(Deserialize)]
        struct W {
            id: u64,
            #[serde(default)]
            name: String,
            #[serde(default)]
            path: String,
            #[serde(default)]
            state: String,
        }
        #[derive(Deserialize)]
        struct List {
            #[serde(default)]
            workflows: Vec<W>,
        }
        let list: List = self
            .get_json(
                &format!("/repos/{owner}/{repo}/actions/workflows?per_page=100"),
                "workflows",
            )
            .await?;
        let mut out = Vec::new();
        for w in list.workflows {
            let inputs = match self
                .workflow_file(owner, repo, &w.path, git_ref, repo_url)
                .await
            {
                Ok(text) => {
                    parse_dispatch_inputs(&text).map_err(|detail| GithubError::Workflow {
                        path: w.path.clone(),
                        detail,
                    })?
                }
                Err(e) => {
                    tracing::warn!("{e}");
                    None
                }
            };
            out.push(Workflow {
                id: w.id,
                name: w.name,
                path: w.path,
                state: w.state,
                inputs,
            });
        }
        Ok(out)
    }

    async fn run_ids(&self, owner: &str, repo: &str, workflow: &str) -> Result<BTreeSet<u64>> {
        Ok(self
            .runs(owner, repo, Some(workflow), None)
            .await?
            .into_iter()
            .map(|r| r.id)
            .collect())
    }

    /// Dispatch a workflow and return the run it started.
    pub async fn dispatch(
        &self,
        owner: &str,
        repo: &str,
        workflow: &str,
        git_ref: &str,
        inputs: &BTreeMap<String, String>,
    ) -> Result<Dispatched> {
        if inputs.len() > 25 {
            return Err(GithubError::Invalid(format!(
                "{} inputs given; GitHub accepts at most 25",
                inputs.len()
            )));
        }
        // Runs before the dispatch, to recognise the new one if the server answers 204.
        let before = self
            .run_ids(owner, repo, workflow)
            .await
            .unwrap_or_default();
        let path = format!("/repos/{owner}/{repo}/actions/workflows/{workflow}/dispatches");
        let mut body = json!({"ref": git_ref, "inputs": inputs});
        if self.old_api.load(Ordering::Relaxed) {
            body["return_run_details"] = json!(true);
        }
        let (mut status, mut bytes) = self.call(Method::POST, &path, Some(&body)).await?;
        if status == StatusCode::UNPROCESSABLE_ENTITY
            && body.get("return_run_details").is_some()
            && String::from_utf8_lossy(&bytes).contains("return_run_details")
        {
            // An older server that does not know the field.
            body.as_object_mut().map(|m| m.remove("return_run_details"));
            (status, bytes) = self.call(Method::POST, &path, Some(&body)).await?;
        }
        if status == StatusCode::OK {
            #[derive(Deserialize)]
            struct Details {
                workflow_run_id: u64,
                #[serde(default)]
                html_url: Option<String>,
            }
            if let Ok(d) = serde_json::from_slice::<Details>(&bytes) {
                return Ok(Dispatched {
                    run_id: d.workflow_run_id,
                    html_url: d.html_url,
                });
            }
        }
        if !status.is_success() {
            return Err(self.status_error(&format!("dispatch {workflow}"), status, &bytes));
        }
        // 204: find the run the dispatch created.
        for _ in 0..60 {
            let runs = self.runs(owner, repo, Some(workflow), None).await?;
            if let Some(r) = runs.into_iter().find(|r| !before.contains(&r.id)) {
                return Ok(Dispatched {
                    run_id: r.id,
                    html_url: r.url,
                });
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Err(GithubError::Timeout(format!(
            "{workflow} was dispatched but its run did not appear within 30 s; look at the Actions tab"
        )))
    }

    /// Recent runs, newest first (one page of 30), optionally of one workflow and branch.
    pub async fn runs(
        &self,
        owner: &str,
        repo: &str,
        workflow: Option<&str>,
        branch: Option<&str>,
    ) -> Result<Vec<BuildRun>> {
        #[derive(Deserialize)]
        struct List {
            #[serde(default)]
            workflow_runs: Vec<RunJson>,
        }
        let mut path = match workflow {
            Some(w) => format!("/repos/{owner}/{repo}/actions/workflows/{w}/runs?per_page=30"),
            None => format!("/repos/{owner}/{repo}/actions/runs?per_page=30"),
        };
        if let Some(b) = branch {
            path.push_str(&format!("&branch={b}"));
        }
        let l: List = self.get_json(&path, "workflow runs").await?;
        Ok(l.workflow_runs.into_iter().map(run_of).collect())
    }

    /// One run with its jobs and steps.
    pub async fn run(&self, owner: &str, repo: &str, id: u64) -> Result<BuildRun> {
        let r: RunJson = self
            .get_json(
                &format!("/repos/{owner}/{repo}/actions/runs/{id}"),
                &format!("run {id}"),
            )
            .await?;
        let mut run = run_of(r);
        run.jobs = self.jobs(owner, repo, id).await?;
        Ok(run)
    }

    pub async fn jobs(&self, owner: &str, repo: &str, id: u64) -> Result<Vec<BuildJob>> {
        #[derive(Deserialize)]
        struct List {
            #[serde(default)]
            jobs: Vec<JobJson>,
        }
        let l: List = self
            .get_json(
                &format!("/repos/{owner}/{repo}/actions/runs/{id}/jobs?per_page=100"),
                "jobs",
            )
            .await?;
        Ok(l.jobs.into_iter().map(job_of).collect())
    }

    /// Re-run a whole run, or only its failed jobs.
    pub async fn rerun(&self, owner: &str, repo: &str, id: u64, failed_only: bool) -> Result<()> {
        let tail = if failed_only {
            "rerun-failed-jobs"
        } else {
            "rerun"
        };
        let path = format!("/repos/{owner}/{repo}/actions/runs/{id}/{tail}");
        let (status, body) = self.call(Method::POST, &path, Some(&json!({}))).await?;
        if status.is_success() {
            Ok(())
        } else {
            Err(self.status_error(&format!("re-run {id}"), status, &body))
        }
    }

    /// Cancel a run; a run that already finished answers 409 and is refused plainly.
    pub async fn cancel(&self, owner: &str, repo: &str, id: u64) -> Result<()> {
        let path = format!("/repos/{owner}/{repo}/actions/runs/{id}/cancel");
        let (status, body) = self.call(Method::POST, &path, None).await?;
        match status.as_u16() {
            200..=299 => Ok(()),
            409 => Err(GithubError::Refused(format!(
                "run {id} cannot be cancelled: it has already finished"
            ))),
            _ => Err(self.status_error(&format!("cancel {id}"), status, &body)),
        }
    }

    /// Poll a run until it completes, calling `on_update` whenever it changes.
    pub async fn wait_run(
        &self,
        owner: &str,
        repo: &str,
        id: u64,
        poll: Duration,
        mut on_update: impl FnMut(&BuildRun),
    ) -> Result<BuildRun> {
        let mut last: Option<BuildRun> = None;
        loop {
            let run = self.run(owner, repo, id).await?;
            if last.as_ref() != Some(&run) {
                on_update(&run);
            }
            if run.state.is_done() {
                return Ok(run);
            }
            last = Some(run);
            tokio::time::sleep(poll).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_maps_to_build_run() {
        let r: RunJson = serde_json::from_value(json!({
            "id": 7, "name": "build", "display_title": "bump api", "path": ".github/workflows/build.yml@main",
            "status": "completed", "conclusion": "failure", "head_branch": "main"
        }))
        .unwrap();
        let b = run_of(r);
        assert_eq!(b.pipeline, "build.yml");
        assert_eq!(b.state, BuildState::Failed);
        assert_eq!(b.title, "bump api");
    }
}
