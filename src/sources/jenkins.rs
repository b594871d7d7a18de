//! Jenkins (reqwest, basic auth with a user and an API token): a job's parameter
//! definitions, `buildWithParameters` with the CSRF crumb and the session cookie it belongs
//! to, the queue item until it becomes a build, and build status as a [`BuildRun`].

use crate::model::{BuildJob, BuildRun, BuildState, BuildSystem};
use crate::secrets::Secret;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

#[derive(Debug, Clone, thiserror::Error)]
pub enum JenkinsError {
    #[error(
        "Jenkins {server}: not authenticated ({detail}); set JENKINS_USER and JENKINS_API_TOKEN or run `shipdeck login jenkins`"
    )]
    Unauthorized { server: String, detail: String },
    #[error("Jenkins: permission denied: {0}")]
    Forbidden(String),
    #[error("Jenkins: not found: {0}")]
    NotFound(String),
    #[error("Jenkins: {0}")]
    Refused(String),
    /// The request is wrong (an illegal parameter value): fix the command line.
    #[error("Jenkins: {0}")]
    Invalid(String),
    #[error("Jenkins {server} unreachable: {detail}")]
    Unreachable { server: String, detail: String },
    #[error("Jenkins: timed out: {0}")]
    Timeout(String),
    #[error("Jenkins {server}: unexpected answer: {detail}")]
    Protocol { server: String, detail: String },
}

type Result<T, E = JenkinsError> = std::result::Result<T, E>;

/// One build parameter of a job.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct JobParameter {
    pub name: String,
    /// `string`, `choice`, `boolean`, `text` or `password`.
    pub kind: String,
    pub description: String,
    pub default: Option<String>,
    pub choices: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct JenkinsOptions {
    /// None = `JENKINS_URL`.
    pub url: Option<String>,
    pub user: String,
    pub token: Secret,
    pub timeout: Option<Duration>,
}

pub struct JenkinsClient {
    base: String,
    client: reqwest::Client,
    user: String,
    token: Secret,
    /// Jenkins ties a crumb to the session cookie it was issued with.
    cookies: Mutex<BTreeMap<String, String>>,
    crumb: Mutex<Option<(String, String)>>,
}

impl std::fmt::Debug for JenkinsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JenkinsClient")
            .field("base", &self.base)
            .field("user", &self.user)
            .field("token", &self.token)
            .finish()
    }
}

/// How many lines of a build's console the run screen shows.
pub const CONSOLE_TAIL: usize = 12;

/// A `wfapi` stage status as a build state.
fn stage_state(status: &str) -> BuildState {
    match status {
        "SUCCESS" => BuildState::Succeeded,
        "IN_PROGRESS" | "PAUSED_PENDING_INPUT" => BuildState::InProgress,
        "ABORTED" => BuildState::Cancelled,
        "NOT_EXECUTED" | "QUEUED" => BuildState::Queued,
        _ => BuildState::Failed,
    }
}

/// `a/b` -> `/job/a/job/b` (jobs in folders).
pub fn job_path(job: &str) -> String {
    job.split('/')
        .filter(|s| !s.is_empty())
        .map(|s| format!("/job/{}", encode(s)))
        .collect()
}

fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn form(params: &BTreeMap<String, String>) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The queue item number from a `Location: .../queue/item/N/` header.
pub fn queue_id(location: &str) -> Option<u64> {
    let mut parts = location.trim_end_matches('/').rsplit('/');
    let n = parts.next()?.parse().ok()?;
    (parts.next()? == "item").then_some(n)
}

impl JenkinsClient {
    pub fn new(opts: JenkinsOptions) -> Result<JenkinsClient> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let base = opts
            .url
            .or_else(|| std::env::var("JENKINS_URL").ok().filter(|s| !s.is_empty()))
            .ok_or_else(|| {
                JenkinsError::Refused(
                    "no Jenkins URL: set JENKINS_URL or [jenkins] url in the config".into(),
                )
            })?
            .trim_end_matches('/')
            .to_string();
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(opts.timeout.unwrap_or(Duration::from_secs(30)))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| JenkinsError::Protocol {
                server: base.clone(),
                detail: e.to_string(),
            })?;
        Ok(JenkinsClient {
            base,
            client,
            user: opts.user,
            token: opts.token,
            cookies: Mutex::new(BTreeMap::new()),
            crumb: Mutex::new(None),
        })
    }

    fn cookie_header(&self) -> Option<String> {
        let jar = self.cookies.lock().unwrap_or_else(|e| e.into_inner());
        (!jar.is_empty()).then(|| {
            jar.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    fn keep_cookies(&self, headers: &reqwest::header::HeaderMap) {
        let mut jar = self.cookies.lock().unwrap_or_else(|e| e.into_inner());
        for v in headers.get_all(reqwest::header::SET_COOKIE) {
            if let Some((k, rest)) = v.to_str().ok().and_then(|s| s.split_once('=')) {
                let value = rest.split(';').next().unwrap_or("");
                jar.insert(k.trim().to_string(), value.to_string());
            }
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
        crumb: Option<&(String, String)>,
    ) -> Result<(StatusCode, reqwest::header::HeaderMap, bytes::Bytes)> {
        let mut rb = self
            .client
            .request(method, format!("{}{}", self.base, path))
            .basic_auth(&self.user, Some(self.token.expose()));
        if let Some(c) = self.cookie_header() {
            rb = rb.header(reqwest::header::COOKIE, c);
        }
        if let Some((field, value)) = crumb {
            rb = rb.header(field.as_str(), value.as_str());
        }
        if let Some(b) = body {
            rb = rb
                .header(
                    reqwest::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .body(b);
        }
        let resp = rb.send().await.map_err(|e| {
            if e.is_timeout() {
                JenkinsError::Timeout(format!("{}{path}", self.base))
            } else {
                JenkinsError::Unreachable {
                    server: self.base.clone(),
                    detail: e.to_string(),
                }
            }
        })?;
        self.keep_cookies(resp.headers());
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.map_err(|e| JenkinsError::Unreachable {
            server: self.base.clone(),
            detail: e.to_string(),
        })?;
        Ok((status, headers, bytes))
    }

    fn status_error(&self, what: &str, status: StatusCode, body: &[u8]) -> JenkinsError {
        let text = crate::model::text::sanitize(
            String::from_utf8_lossy(&body[..body.len().min(200)]).trim(),
        )
        .into_owned();
        match status.as_u16() {
            401 => JenkinsError::Unauthorized {
                server: self.base.clone(),
                detail: text,
            },
            403 => JenkinsError::Forbidden(format!("{what}: {text}")),
            404 => JenkinsError::NotFound(what.to_string()),
            400 => JenkinsError::Invalid(format!("{what}: {text}")),
            409 => JenkinsError::Refused(format!("{what}: {text}")),
            502..=504 => JenkinsError::Unreachable {
                server: self.base.clone(),
                detail: format!("{what}: HTTP {}: {text}", status.as_u16()),
            },
            s => JenkinsError::Protocol {
                server: self.base.clone(),
                detail: format!("{what}: HTTP {s}: {text}"),
            },
        }
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str, what: &str) -> Result<T> {
        let (status, _, body) = self.call(Method::GET, path, None, None).await?;
        if !status.is_success() {
            return Err(self.status_error(what, status, &body));
        }
        serde_json::from_slice(&body).map_err(|e| JenkinsError::Protocol {
            server: self.base.clone(),
            detail: format!("{what}: {e}"),
        })
    }

    /// The CSRF crumb (header name, value); None when CSRF protection is off.
    async fn crumb(&self, fresh: bool) -> Result<Option<(String, String)>> {
        if !fresh && let Some(c) = self.crumb.lock().unwrap_or_else(|e| e.into_inner()).clone() {
            return Ok(Some(c));
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Crumb {
            crumb: String,
            crumb_request_field: String,
        }
        let (status, _, body) = self
            .call(Method::GET, "/crumbIssuer/api/json", None, None)
            .await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(self.status_error("crumb", status, &body));
        }
        let c: Crumb = serde_json::from_slice(&body).map_err(|e| JenkinsError::Protocol {
            server: self.base.clone(),
            detail: format!("crumb: {e}"),
        })?;
        let pair = (c.crumb_request_field, c.crumb);
        *self.crumb.lock().unwrap_or_else(|e| e.into_inner()) = Some(pair.clone());
        Ok(Some(pair))
    }

    /// The job's build parameters.
    pub async fn parameters(&self, job: &str) -> Result<Vec<JobParameter>> {
        let path = format!(
            "{}/api/json?tree=property[parameterDefinitions[name,type,description,choices,defaultParameterValue[value]]]",
            job_path(job)
        );
        let v: Value = self.get_json(&path, &format!("job {job}")).await?;
        let text = |v: Option<&Value>| -> Option<String> {
            match v? {
                Value::String(s) => Some(s.clone()),
                Value::Bool(b) => Some(b.to_string()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            }
        };
        let mut out = Vec::new();
        for prop in v
            .get("property")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            for d in prop
                .get("parameterDefinitions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let kind = d.get("type").and_then(Value::as_str).unwrap_or("");
                let kind = match kind {
                    "ChoiceParameterDefinition" => "choice",
                    "BooleanParameterDefinition" => "boolean",
                    "TextParameterDefinition" => "text",
                    "PasswordParameterDefinition" => "password",
                    _ => "string",
                };
                out.push(JobParameter {
                    name: text(d.get("name")).unwrap_or_default(),
                    kind: kind.into(),
                    description: text(d.get("description")).unwrap_or_default(),
                    default: text(d.pointer("/defaultParameterValue/value")),
                    choices: d
                        .get("choices")
                        .and_then(Value::as_array)
                        .map(|a| a.iter().filter_map(|c| text(Some(c))).collect())
                        .unwrap_or_default(),
                });
            }
        }
        Ok(out)
    }

    /// Trigger a build; returns the queue item number.
    pub async fn trigger(&self, job: &str, params: &BTreeMap<String, String>) -> Result<u64> {
        let path = format!("{}/buildWithParameters", job_path(job));
        let mut fresh = false;
        loop {
            let crumb = self.crumb(fresh).await?;
            let (status, headers, body) = self
                .call(Method::POST, &path, Some(form(params)), crumb.as_ref())
                .await?;
            // A stale crumb (session expired) answers 403: fetch a new one once.
            if status == StatusCode::FORBIDDEN && !fresh && crumb.is_some() {
                fresh = true;
                continue;
            }
            if !(status == StatusCode::CREATED || status.is_success() || status.is_redirection()) {
                return Err(self.status_error(&format!("build {job}"), status, &body));
            }
            let location = headers
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            return queue_id(location).ok_or_else(|| JenkinsError::Protocol {
                server: self.base.clone(),
                detail: format!("build {job} answered {status} without a queue item Location"),
            });
        }
    }

    /// Stop a running build (`POST .../stop`, as the Jenkins UI's ✗ does).
    pub async fn stop(&self, job: &str, number: u64) -> Result<()> {
        let path = format!("{}/{number}/stop", job_path(job));
        let mut fresh = false;
        loop {
            let crumb = self.crumb(fresh).await?;
            let (status, _, body) = self
                .call(Method::POST, &path, Some(String::new()), crumb.as_ref())
                .await?;
            if status == StatusCode::FORBIDDEN && !fresh && crumb.is_some() {
                fresh = true;
                continue;
            }
            if status.is_success() || status.is_redirection() {
                return Ok(());
            }
            return Err(self.status_error(&format!("stop {job} #{number}"), status, &body));
        }
    }

    /// Wait until a queue item becomes a build; returns the build number.
    pub async fn wait_queue(&self, item: u64, poll: Duration, deadline: Duration) -> Result<u64> {
        let until = tokio::time::Instant::now() + deadline;
        loop {
            let v: Value = self
                .get_json(
                    &format!("/queue/item/{item}/api/json"),
                    &format!("queue item {item}"),
                )
                .await?;
            if let Some(n) = v.pointer("/executable/number").and_then(Value::as_u64) {
                return Ok(n);
            }
            if v.get("cancelled").and_then(Value::as_bool) == Some(true) {
                return Err(JenkinsError::Refused(format!(
                    "queue item {item} was cancelled"
                )));
            }
            if tokio::time::Instant::now() >= until {
                let why = v
                    .get("why")
                    .and_then(Value::as_str)
                    .unwrap_or("still queued");
                return Err(JenkinsError::Timeout(format!(
                    "queue item {item} did not start: {}",
                    crate::model::text::sanitize(why)
                )));
            }
            tokio::time::sleep(poll).await;
        }
    }

    /// One build's status and the parameters it was started with (`api/json`).
    pub async fn build(&self, job: &str, number: u64) -> Result<BuildRun> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct B {
            #[serde(default)]
            number: u64,
            #[serde(default)]
            building: bool,
            #[serde(default)]
            result: Option<String>,
            #[serde(default)]
            url: Option<String>,
            #[serde(default)]
            full_display_name: Option<String>,
            #[serde(default)]
            timestamp: Option<i64>,
            #[serde(default)]
            actions: Vec<Value>,
        }
        let b: B = self
            .get_json(
                &format!("{}/{number}/api/json", job_path(job)),
                &format!("build {job} #{number}"),
            )
            .await?;
        // `ParametersAction`: the values the build was started with.
        let inputs = b
            .actions
            .iter()
            .filter_map(|a| a.get("parameters").and_then(Value::as_array))
            .flatten()
            .filter_map(|p| {
                let name = p.get("name")?.as_str()?.to_string();
                let value = match p.get("value") {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Null) | None => String::new(),
                    Some(v) => v.to_string(),
                };
                Some((name, value))
            })
            .collect();
        Ok(BuildRun {
            system: BuildSystem::Jenkins,
            id: b.number,
            pipeline: job.to_string(),
            title: b
                .full_display_name
                .unwrap_or_else(|| format!("{job} #{number}")),
            branch: None,
            head_sha: None,
            state: BuildState::from_jenkins(b.building, b.result.as_deref()),
            url: b.url,
            created_at: b
                .timestamp
                .and_then(chrono::DateTime::from_timestamp_millis)
                .map(|t| t.to_rfc3339()),
            jobs: Vec::new(),
            inputs,
            log_tail: Vec::new(),
        })
    }

    /// The numbers of a job's builds, newest first (at most `limit`).
    pub async fn build_numbers(&self, job: &str, limit: usize) -> Result<Vec<u64>> {
        #[derive(Deserialize)]
        struct N {
            #[serde(default)]
            number: u64,
        }
        #[derive(Deserialize)]
        struct J {
            #[serde(default)]
            builds: Vec<N>,
        }
        let j: J = self
            .get_json(
                &format!(
                    "{}/api/json?tree=builds[number]{{0,{limit}}}",
                    job_path(job)
                ),
                &format!("job {job}"),
            )
            .await?;
        let mut v: Vec<u64> = j.builds.into_iter().map(|n| n.number).collect();
        v.sort_unstable_by(|a, b| b.cmp(a));
        v.truncate(limit);
        Ok(v)
    }

    /// A Pipeline build's stages (`wfapi/describe`, the Pipeline Stage View API), as jobs
    /// of one step each; an empty list for jobs that are no Pipeline (no such endpoint).
    pub async fn stages(&self, job: &str, number: u64) -> Result<Vec<BuildJob>> {
        #[derive(Deserialize)]
        struct Stage {
            #[serde(default)]
            id: String,
            #[serde(default)]
            name: String,
            #[serde(default)]
            status: String,
        }
        #[derive(Deserialize)]
        struct D {
            #[serde(default)]
            stages: Vec<Stage>,
        }
        let d: D = match self
            .get_json(
                &format!("{}/{number}/wfapi/describe", job_path(job)),
                &format!("stages of {job} #{number}"),
            )
            .await
        {
            Ok(d) => d,
            Err(JenkinsError::NotFound(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        Ok(d.stages
            .into_iter()
            .enumerate()
            .map(|(i, st)| BuildJob {
                id: st.id.parse().unwrap_or(i as u64),
                name: st.name,
                state: stage_state(&st.status),
                steps: Vec::new(),
            })
            .collect())
    }

    /// The last `lines` lines of a build's console log (`consoleText`).
    pub async fn console_tail(&self, job: &str, number: u64, lines: usize) -> Result<Vec<String>> {
        let what = format!("console of {job} #{number}");
        let (status, _, body) = self
            .call(
                Method::GET,
                &format!("{}/{number}/consoleText", job_path(job)),
                None,
                None,
            )
            .await?;
        if !status.is_success() {
            return Err(self.status_error(&what, status, &body));
        }
        let text = String::from_utf8_lossy(&body);
        let all: Vec<&str> = text.lines().collect();
        Ok(all[all.len().saturating_sub(lines)..]
            .iter()
            .map(|l| crate::model::text::sanitize(l).into_owned())
            .collect())
    }

    /// One build with its stages and the tail of its console log (the run screen).
    pub async fn build_detail(&self, job: &str, number: u64) -> Result<BuildRun> {
        let mut run = self.build(job, number).await?;
        run.jobs = self.stages(job, number).await?;
        run.log_tail = self.console_tail(job, number, CONSOLE_TAIL).await?;
        Ok(run)
    }

    /// Poll a build until it finishes, calling `on_update` when it changes.
    pub async fn wait_build(
        &self,
        job: &str,
        number: u64,
        poll: Duration,
        mut on_update: impl FnMut(&BuildRun),
    ) -> Result<BuildRun> {
        let mut last: Option<BuildRun> = None;
        loop {
            let b = self.build(job, number).await?;
            if last.as_ref() != Some(&b) {
                on_update(&b);
            }
            if b.state.is_done() {
                return Ok(b);
            }
            last = Some(b);
            tokio::time::sleep(poll).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_locations() {
        assert_eq!(job_path("GitOps-Pipeline"), "/job/GitOps-Pipeline");
        assert_eq!(job_path("team/build app"), "/job/team/job/build%20app");
        assert_eq!(queue_id("http://j/queue/item/42/"), Some(42));
        assert_eq!(queue_id("http://j/job/x/"), None);
        let mut p = BTreeMap::new();
        p.insert("TAG".to_string(), "v1 & 2".to_string());
        assert_eq!(form(&p), "TAG=v1%20%26%202");
    }
}
