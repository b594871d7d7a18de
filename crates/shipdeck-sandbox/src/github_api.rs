//! A GitHub REST subset under `/github` (per `reference/github/actions-subset.json`, plus what
//! clients such as PyGithub call in everyday use): the repository, `/user`, `/rate_limit`,
//! branches, commits and contents read from the estate's real Git repository; workflows read
//! from its `.github/workflows/*.yml` files, dispatch with input validation (answering per
//! `X-GitHub-Api-Version`), runs, jobs in run order with steps, a job by id, run timing,
//! rerun and cancel; and log downloads as GitHub serves them: a 302 to a signed, expiring
//! link on a blob host (`/github-blobs`, no token), the run's logs as a zip. Runs themselves
//! unfold in `ci.rs`; this file only speaks HTTP, with GitHub's auth errors and rate-limit
//! headers.

use super::World;
use super::ci::{self, CiError, NewRun, Origin, Run};
use axum::Json;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

const DOCS: &str = "https://docs.github.com/rest/actions";
const WORKFLOW_DIR: &str = ".github/workflows";
const RATE_LIMIT: u64 = 5000;

type Shared = State<Arc<World>>;

pub fn router(world: Arc<World>) -> axum::Router {
    let base = "/github/repos/{owner}/{repo}/actions";
    let repo = "/github/repos/{owner}/{repo}";
    let api = axum::Router::new()
        .route("/github/rate_limit", get(rate_limit))
        .route("/github/user", get(authenticated_user))
        .route("/github/users/{login}", get(named_user))
        .route(repo, get(get_repo))
        .route(&format!("{repo}/branches"), get(list_branches))
        .route(&format!("{repo}/commits"), get(list_commits))
        .route(&format!("{repo}/commits/{{*rev}}"), get(get_commit))
        .route(&format!("{repo}/contents"), get(get_root_contents))
        .route(&format!("{repo}/contents/"), get(get_root_contents))
        .route(&format!("{repo}/contents/{{*path}}"), get(get_contents))
        .route(
            &format!("{base}/runs/{{run}}/artifacts"),
            get(run_artifacts),
        )
        .route(&format!("{repo}/branches/{{*branch}}"), get(get_branch))
        .route(&format!("{base}/jobs/{{job}}"), get(get_job))
        .route(&format!("{base}/jobs/{{job}}/logs"), get(job_logs))
        .route(&format!("{base}/runs/{{run}}/timing"), get(run_timing))
        .route(&format!("{base}/runs/{{run}}/logs"), get(run_logs))
        .route(&format!("{base}/workflows"), get(list_workflows))
        .route(&format!("{base}/workflows/{{workflow}}"), get(get_workflow))
        .route(
            &format!("{base}/workflows/{{workflow}}/dispatches"),
            post(dispatch),
        )
        .route(
            &format!("{base}/workflows/{{workflow}}/runs"),
            get(list_workflow_runs),
        )
        .route(&format!("{base}/runs"), get(list_runs))
        .route(&format!("{base}/runs/{{run}}"), get(get_run))
        .route(
            &format!("{base}/runs/{{run}}/attempts/{{attempt}}"),
            get(get_run_attempt),
        )
        .route(&format!("{base}/runs/{{run}}/jobs"), get(list_jobs))
        .route(&format!("{base}/runs/{{run}}/rerun"), post(rerun))
        .route(
            &format!("{base}/runs/{{run}}/rerun-failed-jobs"),
            post(rerun_failed),
        )
        .route(&format!("{base}/runs/{{run}}/cancel"), post(cancel))
        .route(&format!("{base}/runs/{{run}}/force-cancel"), post(cancel))
        .route_layer(axum::middleware::from_fn_with_state(
            world.clone(),
            github_layer,
        ))
        .with_state(world.clone());
    // Where log downloads redirect to: GitHub's blob storage, which takes no token but a
    // signed, expiring URL.
    let blobs = axum::Router::new()
        .route(
            "/github-blobs/runs/{run}/{attempt}/logs.zip",
            get(download_run_logs),
        )
        .route("/github-blobs/jobs/{job}/logs.txt", get(download_job_logs))
        .with_state(world);
    api.merge(blobs)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let body = json!({"message": message.into(), "documentation_url": DOCS,
        "status": status.as_u16().to_string()});
    (status, Json(body)).into_response()
}

/// Token auth and rate-limit headers on every answer, as api.github.com does.
async fn github_layer(State(world): Shared, req: Request, next: Next) -> Response {
    // Asking for the rate limit does not count against it.
    let used = if req.uri().path().ends_with("/rate_limit") {
        world
            .ci
            .api_calls
            .load(std::sync::atomic::Ordering::Relaxed)
    } else {
        ci::count_api_call(&world)
    };
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("token "))
                .unwrap_or("")
                .trim()
                .to_string()
        });
    let mut resp = match token {
        None => error(StatusCode::UNAUTHORIZED, "Requires authentication"),
        Some(t) if t != world.users.github_token() => {
            error(StatusCode::UNAUTHORIZED, "Bad credentials")
        }
        Some(_) => next.run(req).await,
    };
    let reset = (chrono::Utc::now().timestamp() / 3600 + 1) * 3600;
    let h = resp.headers_mut();
    for (k, v) in [
        ("x-ratelimit-limit", RATE_LIMIT.to_string()),
        (
            "x-ratelimit-remaining",
            RATE_LIMIT.saturating_sub(used % RATE_LIMIT).to_string(),
        ),
        ("x-ratelimit-reset", reset.to_string()),
        ("x-ratelimit-used", (used % RATE_LIMIT).to_string()),
        ("x-ratelimit-resource", "core".to_string()),
        ("x-github-api-version-selected", "2022-11-28".to_string()),
        ("x-oauth-scopes", "repo, workflow".to_string()),
        ("x-accepted-oauth-scopes", String::new()),
    ] {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    }
    resp
}

// The error is the ready answer to send; boxing it would only add noise.
#[allow(clippy::result_large_err)]
fn repo_check(world: &World, owner: &str, repo: &str) -> Result<(), Response> {
    let gh = &world.estate.github;
    if owner.eq_ignore_ascii_case(&gh.owner) && repo.eq_ignore_ascii_case(&gh.repo) {
        Ok(())
    } else {
        Err(error(StatusCode::NOT_FOUND, "Not Found"))
    }
}

fn api_base(world: &World) -> String {
    format!(
        "{}/github/repos/{}/{}",
        world.base_url, world.estate.github.owner, world.estate.github.repo
    )
}

fn html_base(world: &World) -> String {
    format!(
        "{}/github/{}/{}",
        world.base_url, world.estate.github.owner, world.estate.github.repo
    )
}

/// Stable id of a workflow file.
pub(crate) fn workflow_id(file: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in file.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    100_000_000 + h % 900_000_000
}

/// A workflow file as read from the repository.
struct Workflow {
    file: String,
    path: String,
    name: String,
    doc: Value,
    /// Job ids in the order the file writes them (`doc` holds them sorted).
    job_order: Vec<String>,
}

fn default_branch() -> &'static str {
    "main"
}

fn read_workflows(world: &World, rev: &str) -> Vec<Workflow> {
    let files = world.repo.list_files(rev, WORKFLOW_DIR).unwrap_or_default();
    files
        .into_iter()
        .filter(|p| p.ends_with(".yml") || p.ends_with(".yaml"))
        .filter_map(|path| {
            let text = world.repo.read_file(rev, &path).ok().flatten()?;
            let doc = parse_workflow(&text);
            let file = path.rsplit('/').next().unwrap_or(&path).to_string();
            let name = doc["name"].as_str().unwrap_or(&path).to_string();
            let job_order = job_order(&text);
            Some(Workflow {
                file,
                path,
                name,
                doc,
                job_order,
            })
        })
        .collect()
}

/// Parse a workflow file. A file whose `jobs` do not parse (GitHub would flag it) still
/// yields its name and triggers, read from the part before `permissions:`/`jobs:`.
fn parse_workflow(text: &str) -> Value {
    if let Ok(v) = serde_saphyr::from_str::<Value>(text) {
        return v;
    }
    let head_end = ["\npermissions:", "\njobs:"]
        .iter()
        .filter_map(|m| text.find(m))
        .min()
        .unwrap_or(text.len());
    serde_saphyr::from_str::<Value>(&text[..head_end]).unwrap_or(Value::Null)
}

fn find_workflow(world: &World, rev: &str, id_or_file: &str) -> Option<Workflow> {
    read_workflows(world, rev)
        .into_iter()
        .find(|w| w.file == id_or_file || workflow_id(&w.file).to_string() == id_or_file)
}

fn workflow_json(world: &World, w: &Workflow) -> Value {
    let id = workflow_id(&w.file);
    let created = "2024-01-15T09:00:00Z";
    json!({
        "id": id, "node_id": format!("W_kwDO{id:x}"), "name": w.name, "path": w.path,
        "state": "active", "created_at": created, "updated_at": created,
        "url": format!("{}/actions/workflows/{id}", api_base(world)),
        "html_url": format!("{}/blob/{}/{}", html_base(world), default_branch(), w.path),
        "badge_url": format!("{}/workflows/{}/badge.svg", html_base(world), w.name),
    })
}

async fn list_workflows(
    State(world): Shared,
    Path((owner, repo)): Path<(String, String)>,
) -> Response {
    if let Err(r) = repo_check(&world, &owner, &repo) {
        return r;
    }
    let items: Vec<Value> = read_workflows(&world, default_branch())
        .iter()
        .map(|w| workflow_json(&world, w))
        .collect();
    Json(json!({"total_count": items.len(), "workflows": items})).into_response()
}

async fn get_workflow(
    State(world): Shared,
    Path((owner, repo, workflow)): Path<(String, String, String)>,
) -> Response {
    if let Err(r) = repo_check(&world, &owner, &repo) {
        return r;
    }
    match find_workflow(&world, default_branch(), &workflow) {
        Some(w) => Json(workflow_json(&world, &w)).into_response(),
        None => error(StatusCode::NOT_FOUND, "Not Found"),
    }
}

fn input_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// Validate dispatch inputs against the workflow's `on.workflow_dispatch.inputs`, with
/// defaults filled in, as GitHub does (422 with its wording otherwise).
fn validate_inputs(doc: &Value, given: &Value) -> Result<BTreeMap<String, String>, String> {
    let on = if doc["on"].is_null() {
        &doc["true"]
    } else {
        &doc["on"]
    };
    let dispatch = match on {
        Value::String(s) if s == "workflow_dispatch" => &Value::Null,
        Value::Array(a) if a.iter().any(|v| v == "workflow_dispatch") => &Value::Null,
        Value::Object(m) if m.contains_key("workflow_dispatch") => &m["workflow_dispatch"],
        _ => return Err("Workflow does not have 'workflow_dispatch' trigger".into()),
    };
    let declared = dispatch["inputs"].as_object().cloned().unwrap_or_default();
    let given = match given {
        Value::Null => serde_json::Map::new(),
        Value::Object(m) => m.clone(),
        _ => return Err("inputs must be an object".into()),
    };
    if given.len() > 25 {
        return Err("you may only define up to 25 `inputs` for a `workflow_dispatch` event".into());
    }
    let unexpected: Vec<&String> = given
        .keys()
        .filter(|k| !declared.contains_key(*k))
        .collect();
    if !unexpected.is_empty() {
        return Err(format!(
            "Unexpected inputs provided: {}",
            serde_json::to_string(&unexpected).unwrap_or_default()
        ));
    }
    let mut out = BTreeMap::new();
    for (name, spec) in &declared {
        let value = given
            .get(name)
            .and_then(input_string)
            .or_else(|| spec.get("default").and_then(input_string));
        let required = spec["required"].as_bool().unwrap_or(false);
        let Some(value) = value.filter(|v| !v.is_empty() || !required) else {
            if required {
                return Err(format!("Required input '{name}' not provided"));
            }
            continue;
        };
        match spec["type"].as_str().unwrap_or("string") {
            "choice" => {
                let options: Vec<String> = spec["options"]
                    .as_array()
                    .map(|o| o.iter().filter_map(input_string).collect())
                    .unwrap_or_default();
                if !options.contains(&value) {
                    return Err(format!(
                        "Provided value '{value}' for input '{name}' not in the list of allowed values"
                    ));
                }
            }
            "boolean" if !matches!(value.as_str(), "true" | "false") => {
                return Err(format!(
                    "Provided value '{value}' for input '{name}' is not a valid boolean"
                ));
            }
            "number" if value.parse::<f64>().is_err() => {
                return Err(format!(
                    "Provided value '{value}' for input '{name}' is not a valid number"
                ));
            }
            _ => {}
        }
        out.insert(name.clone(), value);
    }
    Ok(out)
}

/// The ids of a workflow's jobs in the order the file writes them (serde_json's maps are
/// sorted, so the order is read by a visitor of its own). Empty when the file does not parse.
fn job_order(text: &str) -> Vec<String> {
    struct Keys(Vec<String>);
    impl<'de> serde::Deserialize<'de> for Keys {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Keys, D::Error> {
            struct V;
            impl<'de> serde::de::Visitor<'de> for V {
                type Value = Keys;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("a map of jobs")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut m: A,
                ) -> Result<Keys, A::Error> {
                    let mut keys = Vec::new();
                    while let Some((k, _)) = m.next_entry::<String, serde::de::IgnoredAny>()? {
                        keys.push(k);
                    }
                    Ok(Keys(keys))
                }
            }
            d.deserialize_map(V)
        }
    }
    #[derive(serde::Deserialize)]
    struct Doc {
        jobs: Keys,
    }
    serde_saphyr::from_str::<Doc>(text)
        .map(|d| d.jobs.0)
        .unwrap_or_default()
}

/// A job's `needs`: one id or a list of them.
fn needs_of(job: &Value) -> Vec<String> {
    match &job["needs"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect(),
        _ => Vec::new(),
    }
}

/// The jobs of a workflow file in run order, as GitHub lists them: a job after the jobs it
/// `needs`, and otherwise in the order of the file.
fn jobs_of(w: &Workflow) -> Vec<ci::JobSpec> {
    let Some(jobs) = w.doc["jobs"].as_object() else {
        return Vec::new();
    };
    let mut ids: Vec<&String> = w
        .job_order
        .iter()
        .filter_map(|id| jobs.get_key_value(id).map(|(k, _)| k))
        .collect();
    for id in jobs.keys() {
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    let mut placed: Vec<&String> = Vec::new();
    while placed.len() < ids.len() {
        let ready = ids.iter().find(|id| {
            !placed.contains(id)
                && needs_of(&jobs[id.as_str()])
                    .iter()
                    .all(|n| placed.contains(&n) || !jobs.contains_key(n))
        });
        match ready {
            Some(id) => placed.push(id),
            // A cycle (GitHub refuses the file): the rest in file order.
            None => {
                let rest: Vec<&String> = ids
                    .iter()
                    .filter(|id| !placed.contains(id))
                    .copied()
                    .collect();
                placed.extend(rest);
            }
        }
    }
    let name_of = |id: &str| jobs[id]["name"].as_str().unwrap_or(id).to_string();
    placed
        .into_iter()
        .map(|id| {
            let job = &jobs[id.as_str()];
            let steps = job["steps"]
                .as_array()
                .map(|s| {
                    s.iter()
                        .map(|st| match (st["name"].as_str(), st["uses"].as_str()) {
                            (Some(n), _) => n.to_string(),
                            (None, Some(u)) => format!("Run {u}"),
                            _ => "Run script".to_string(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            ci::JobSpec {
                name: name_of(id),
                steps,
                needs: needs_of(job)
                    .iter()
                    .filter(|n| jobs.contains_key(n.as_str()))
                    .map(|n| name_of(n))
                    .collect(),
            }
        })
        .collect()
}

async fn dispatch(
    State(world): Shared,
    headers: HeaderMap,
    Path((owner, repo, workflow)): Path<(String, String, String)>,
    body: axum::body::Bytes,
) -> Response {
    if let Err(r) = repo_check(&world, &owner, &repo) {
        return r;
    }
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "Problems parsing JSON");
    };
    let Some(git_ref) = req["ref"].as_str().filter(|r| !r.is_empty()) else {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid request.\n\n\"ref\" wasn't supplied.",
        );
    };
    let branch = git_ref
        .strip_prefix("refs/heads/")
        .or_else(|| git_ref.strip_prefix("refs/tags/"))
        .unwrap_or(git_ref)
        .to_string();
    let Ok(head_sha) = world.repo.resolve(&branch) else {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("No ref found for: {git_ref}"),
        );
    };
    // The workflow as it is at the dispatched ref.
    let Some(wf) = find_workflow(&world, &branch, &workflow)
        .or_else(|| find_workflow(&world, default_branch(), &workflow))
    else {
        return error(StatusCode::NOT_FOUND, "Not Found");
    };
    let inputs = match validate_inputs(&wf.doc, &req["inputs"]) {
        Ok(i) => i,
        Err(m) => return error(StatusCode::UNPROCESSABLE_ENTITY, m),
    };
    let action = world
        .estate
        .github
        .workflows
        .iter()
        .find(|w| w.file == wf.file)
        .map(|w| w.action);
    let head_message = super::argo_api::seams::commit_info(&world, &head_sha)
        .map(|(_, _, m)| m)
        .unwrap_or_default();
    let run = world.ci.start(
        &world,
        NewRun {
            origin: Origin::Github {
                workflow_id: workflow_id(&wf.file),
                file: wf.path.clone(),
            },
            name: wf.name.clone(),
            action,
            inputs,
            branch,
            head_sha,
            head_message,
            actor: world.estate.github.owner.clone(),
            jobs: jobs_of(&wf),
        },
    );
    let details = json!({
        "workflow_run_id": run.id,
        "run_url": format!("{}/actions/runs/{}", api_base(&world), run.id),
        "html_url": format!("{}/actions/runs/{}", html_base(&world), run.id),
    });
    let version = headers
        .get("x-github-api-version")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let wants_details = version >= "2026-03-10" || req["return_run_details"] == true;
    if wants_details {
        (StatusCode::OK, Json(details)).into_response()
    } else {
        StatusCode::NO_CONTENT.into_response()
    }
}

fn user_id(login: &str) -> u64 {
    1000 + workflow_id(login) % 1_000_000
}

/// A `simple-user`, with its links on this server (clients follow them).
fn user(world: &World, login: &str) -> Value {
    let api = format!("{}/github/users/{login}", world.base_url);
    let id = user_id(login);
    json!({"login": login, "id": id, "node_id": format!("U_kgDO{id:x}"), "type": "User",
        "avatar_url": format!("{}/github/avatars/{login}", world.base_url), "gravatar_id": "",
        "url": api, "html_url": format!("{}/github/{login}", world.base_url),
        "followers_url": format!("{api}/followers"),
        "following_url": format!("{api}/following{{/other_user}}"),
        "gists_url": format!("{api}/gists{{/gist_id}}"),
        "starred_url": format!("{api}/starred{{/owner}}{{/repo}}"),
        "subscriptions_url": format!("{api}/subscriptions"),
        "organizations_url": format!("{api}/orgs"), "repos_url": format!("{api}/repos"),
        "events_url": format!("{api}/events{{/privacy}}"),
        "received_events_url": format!("{api}/received_events"),
        "site_admin": false, "user_view_type": "public"})
}

fn ts(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn run_json(world: &World, run: &Run) -> Value {
    let (workflow_id, path) = match &run.origin {
        Origin::Github { workflow_id, file } => (*workflow_id, file.clone()),
        Origin::Jenkins { job } => (0, job.clone()),
    };
    let api = api_base(world);
    let gh = &world.estate.github;
    let repository = json!({"id": 4242, "name": gh.repo, "full_name": format!("{}/{}", gh.owner, gh.repo),
        "owner": user(world, &gh.owner), "private": true, "html_url": html_base(world)});
    let title = match run.inputs.get("service") {
        Some(s) => format!("{} ({s})", run.name),
        None => run.name.clone(),
    };
    json!({
        "id": run.id, "name": run.name, "node_id": format!("WFR_kwLO{:x}", run.id),
        "check_suite_id": run.id + 1, "check_suite_node_id": format!("CS_kwDO{:x}", run.id + 1),
        "head_branch": run.branch, "head_sha": run.head_sha, "path": path,
        "display_title": title, "run_number": run.number, "run_attempt": run.attempt,
        "event": run.event, "status": run.status.github(), "conclusion": run.conclusion,
        "workflow_id": workflow_id, "referenced_workflows": [],
        "url": format!("{api}/actions/runs/{}", run.id),
        "html_url": format!("{}/actions/runs/{}", html_base(world), run.id),
        "pull_requests": [], "created_at": ts(run.created_at), "updated_at": ts(run.updated_at),
        "run_started_at": ts(run.started_at.unwrap_or(run.created_at)),
        "actor": user(world, &run.actor), "triggering_actor": user(world, &run.actor),
        "jobs_url": format!("{api}/actions/runs/{}/jobs", run.id),
        "logs_url": format!("{api}/actions/runs/{}/logs", run.id),
        "check_suite_url": format!("{api}/check-suites/{}", run.id + 1),
        "artifacts_url": format!("{api}/actions/runs/{}/artifacts", run.id),
        "cancel_url": format!("{api}/actions/runs/{}/cancel", run.id),
        "rerun_url": format!("{api}/actions/runs/{}/rerun", run.id),
        "previous_attempt_url": if run.attempt > 1 { json!(format!("{api}/actions/runs/{}/attempts/{}", run.id, run.attempt - 1)) } else { Value::Null },
        "workflow_url": format!("{api}/actions/workflows/{workflow_id}"),
        "head_commit": {"id": run.head_sha, "tree_id": run.head_sha, "message": run.head_message,
            "timestamp": ts(run.created_at),
            "author": {"name": run.actor, "email": format!("{}@users.noreply.github.com", run.actor)},
            "committer": {"name": "GitHub", "email": "noreply@github.com"}},
        "repository": repository, "head_repository": repository, "head_repository_id": 4242,
    })
}

fn job_json(world: &World, run: &Run, job: &ci::Job) -> Value {
    let api = api_base(world);
    let steps: Vec<Value> = job
        .steps
        .iter()
        .map(|s| {
            json!({"name": s.name, "status": s.status.github(), "conclusion": s.conclusion,
                "number": s.number, "started_at": s.started_at.map(ts),
                "completed_at": s.completed_at.map(ts)})
        })
        .collect();
    // A skipped job never gets a runner.
    let ran = job.started_at.is_some() && job.conclusion != Some("skipped");
    json!({
        "id": job.id, "run_id": run.id, "run_url": format!("{api}/actions/runs/{}", run.id),
        "run_attempt": run.attempt, "node_id": format!("CR_kwDO{:x}", job.id),
        "head_sha": run.head_sha, "url": format!("{api}/actions/jobs/{}", job.id),
        "html_url": format!("{}/actions/runs/{}/job/{}", html_base(world), run.id, job.id),
        "status": job.status.github(), "conclusion": job.conclusion,
        "created_at": ts(run.created_at), "started_at": ts(job.started_at.unwrap_or(run.created_at)),
        "completed_at": job.completed_at.map(ts), "name": job.name, "steps": steps,
        "check_run_url": format!("{api}/check-runs/{}", job.id),
        "labels": ["ubuntu-latest"], "runner_id": if ran { json!(7) } else { Value::Null },
        "runner_name": if ran { json!("GitHub Actions 7") } else { Value::Null },
        "runner_group_id": 2, "runner_group_name": "GitHub Actions",
        "workflow_name": run.name, "head_branch": run.branch,
    })
}

/// Query filters of the runs lists.
fn filter_runs(runs: Vec<Run>, q: &BTreeMap<String, String>) -> Vec<Run> {
    runs.into_iter()
        .filter(|r| matches!(r.origin, Origin::Github { .. }))
        .filter(|r| q.get("branch").is_none_or(|b| &r.branch == b))
        .filter(|r| q.get("event").is_none_or(|e| &r.event == e))
        .filter(|r| q.get("actor").is_none_or(|a| &r.actor == a))
        .filter(|r| q.get("head_sha").is_none_or(|s| &r.head_sha == s))
        .filter(|r| {
            q.get("status")
                .is_none_or(|s| s == r.status.github() || r.conclusion.is_some_and(|c| c == s))
        })
        .filter(|r| {
            q.get("created")
                .is_none_or(|c| created_matches(c, r.created_at))
        })
        .collect()
}

/// `created` filter: `>=T`, `>T`, `<=T`, `<T`, `T1..T2`, or a date.
fn created_matches(filter: &str, at: chrono::DateTime<chrono::Utc>) -> bool {
    let parse = |s: &str| -> Option<chrono::DateTime<chrono::Utc>> {
        let s = s.trim();
        chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&chrono::Utc))
            .ok()
            .or_else(|| {
                chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
                    .ok()
                    .and_then(|d| d.and_hms_opt(0, 0, 0))
                    .map(|d| d.and_utc())
            })
    };
    if let Some((a, b)) = filter.split_once("..") {
        return parse(a).is_none_or(|a| at >= a) && parse(b).is_none_or(|b| at <= b);
    }
    if let Some(rest) = filter.strip_prefix(">=") {
        return parse(rest).is_none_or(|t| at >= t);
    }
    if let Some(rest) = filter.strip_prefix("<=") {
        return parse(rest).is_none_or(|t| at <= t);
    }
    if let Some(rest) = filter.strip_prefix('>') {
        return parse(rest).is_none_or(|t| at > t);
    }
    if let Some(rest) = filter.strip_prefix('<') {
        return parse(rest).is_none_or(|t| at < t);
    }
    parse(filter).is_none_or(|t| at.date_naive() == t.date_naive())
}

fn paginate(
    world: &World,
    path: &str,
    q: &BTreeMap<String, String>,
    total: usize,
) -> (usize, usize, Option<String>) {
    let per_page = q
        .get("per_page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(30)
        .clamp(1, 100);
    let page = q
        .get("page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let last = total.div_ceil(per_page).max(1);
    let mut links = Vec::new();
    let url = |p: usize| {
        let mut params: Vec<String> = q
            .iter()
            .filter(|(k, _)| k.as_str() != "page")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        params.push(format!("page={p}"));
        format!("{}{path}?{}", world.base_url, params.join("&"))
    };
    if page < last {
        links.push(format!("<{}>; rel=\"next\"", url(page + 1)));
        links.push(format!("<{}>; rel=\"last\"", url(last)));
    }
    if page > 1 {
        links.push(format!("<{}>; rel=\"first\"", url(1)));
        links.push(format!("<{}>; rel=\"prev\"", url(page - 1)));
    }
    (
        (page - 1) * per_page,
        per_page,
        (!links.is_empty()).then(|| links.join(", ")),
    )
}

fn runs_page(world: &World, path: &str, runs: Vec<Run>, q: &BTreeMap<String, String>) -> Response {
    let total = runs.len();
    let (skip, take, link) = paginate(world, path, q, total);
    let items: Vec<Value> = runs
        .iter()
        .skip(skip)
        .take(take)
        .map(|r| run_json(world, r))
        .collect();
    let mut resp = Json(json!({"total_count": total, "workflow_runs": items})).into_response();
    if let Some(l) = link.and_then(|l| HeaderValue::from_str(&l).ok()) {
        resp.headers_mut().insert(header::LINK, l);
    }
    resp
}

async fn list_runs(
    State(world): Shared,
    Path((owner, repo)): Path<(String, String)>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    if let Err(r) = repo_check(&world, &owner, &repo) {
        return r;
    }
    let runs = filter_runs(world.ci.runs(), &q);
    let path = format!("/github/repos/{owner}/{repo}/actions/runs");
    runs_page(&world, &path, runs, &q)
}

async fn list_workflow_runs(
    State(world): Shared,
    Path((owner, repo, workflow)): Path<(String, String, String)>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    if let Err(r) = repo_check(&world, &owner, &repo) {
        return r;
    }
    let Some(wf) = find_workflow(&world, default_branch(), &workflow) else {
        return error(StatusCode::NOT_FOUND, "Not Found");
    };
    let id = workflow_id(&wf.file);
    let runs: Vec<Run> = filter_runs(world.ci.runs(), &q)
        .into_iter()
        .filter(|r| matches!(r.origin, Origin::Github { workflow_id, .. } if workflow_id == id))
        .collect();
    let path = format!("/github/repos/{owner}/{repo}/actions/workflows/{workflow}/runs");
    runs_page(&world, &path, runs, &q)
}

// The error is the ready answer to send; boxing it would only add noise.
#[allow(clippy::result_large_err)]
fn github_run(world: &World, owner: &str, repo: &str, run: &str) -> Result<Run, Response> {
    repo_check(world, owner, repo)?;
    run.parse::<u64>()
        .ok()
        .and_then(|id| world.ci.run(id))
        .filter(|r| matches!(r.origin, Origin::Github { .. }))
        .ok_or_else(|| error(StatusCode::NOT_FOUND, "Not Found"))
}

async fn get_run(
    State(world): Shared,
    Path((owner, repo, run)): Path<(String, String, String)>,
) -> Response {
    match github_run(&world, &owner, &repo, &run) {
        Ok(r) => Json(run_json(&world, &r)).into_response(),
        Err(e) => e,
    }
}

async fn get_run_attempt(
    State(world): Shared,
    Path((owner, repo, run, attempt)): Path<(String, String, String, u32)>,
) -> Response {
    match github_run(&world, &owner, &repo, &run) {
        Ok(r) if attempt >= 1 && attempt <= r.attempt => Json(run_json(&world, &r)).into_response(),
        Ok(_) => error(StatusCode::NOT_FOUND, "Not Found"),
        Err(e) => e,
    }
}

async fn list_jobs(
    State(world): Shared,
    Path((owner, repo, run)): Path<(String, String, String)>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let r = match github_run(&world, &owner, &repo, &run) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let total = r.jobs.len();
    let path = format!("/github/repos/{owner}/{repo}/actions/runs/{run}/jobs");
    let (skip, take, link) = paginate(&world, &path, &q, total);
    let jobs: Vec<Value> = r
        .jobs
        .iter()
        .skip(skip)
        .take(take)
        .map(|j| job_json(&world, &r, j))
        .collect();
    let mut resp = Json(json!({"total_count": total, "jobs": jobs})).into_response();
    if let Some(l) = link.and_then(|l| HeaderValue::from_str(&l).ok()) {
        resp.headers_mut().insert(header::LINK, l);
    }
    resp
}

fn ci_error(e: CiError) -> Response {
    match e {
        CiError::NotFound(_) => error(StatusCode::NOT_FOUND, "Not Found"),
        CiError::AlreadyCompleted => error(StatusCode::CONFLICT, e.to_string()),
        CiError::NotCompleted => error(StatusCode::FORBIDDEN, e.to_string()),
    }
}

async fn rerun(
    State(world): Shared,
    Path((owner, repo, run)): Path<(String, String, String)>,
) -> Response {
    rerun_with(&world, &owner, &repo, &run, false)
}

async fn rerun_failed(
    State(world): Shared,
    Path((owner, repo, run)): Path<(String, String, String)>,
) -> Response {
    rerun_with(&world, &owner, &repo, &run, true)
}

fn rerun_with(world: &World, owner: &str, repo: &str, run: &str, failed_only: bool) -> Response {
    let r = match github_run(world, owner, repo, run) {
        Ok(r) => r,
        Err(e) => return e,
    };
    match world.ci.rerun(world, r.id, failed_only) {
        Ok(_) => (StatusCode::CREATED, Json(json!({}))).into_response(),
        Err(e) => ci_error(e),
    }
}

async fn cancel(
    State(world): Shared,
    Path((owner, repo, run)): Path<(String, String, String)>,
) -> Response {
    let r = match github_run(&world, &owner, &repo, &run) {
        Ok(r) => r,
        Err(e) => return e,
    };
    match world.ci.cancel(r.id) {
        Ok(_) => (StatusCode::ACCEPTED, Json(json!({}))).into_response(),
        Err(e) => ci_error(e),
    }
}

// --- Repository, users, rate limit, branches ---------------------------------------------

/// Rate-limit status of each resource, as `GET /rate_limit` reports it.
async fn rate_limit(State(world): Shared) -> Response {
    let used = world
        .ci
        .api_calls
        .load(std::sync::atomic::Ordering::Relaxed)
        % RATE_LIMIT;
    let reset = (chrono::Utc::now().timestamp() / 3600 + 1) * 3600;
    let minute = (chrono::Utc::now().timestamp() / 60 + 1) * 60;
    let core = json!({"limit": RATE_LIMIT, "used": used,
        "remaining": RATE_LIMIT.saturating_sub(used), "reset": reset, "resource": "core"});
    let other = |name: &str, limit: u64, reset: i64| json!({"limit": limit, "used": 0, "remaining": limit, "reset": reset, "resource": name});
    Json(json!({
        "resources": {
            "core": core,
            "search": other("search", 30, minute),
            "code_search": other("code_search", 10, minute),
            "graphql": other("graphql", 5000, reset),
            "integration_manifest": other("integration_manifest", 5000, reset),
            "source_import": other("source_import", 100, minute),
            "code_scanning_upload": other("code_scanning_upload", 1000, reset),
            "actions_runner_registration": other("actions_runner_registration", 10000, reset),
            "scim": other("scim", 15000, reset),
            "dependency_snapshots": other("dependency_snapshots", 100, minute),
        },
        "rate": core,
    }))
    .into_response()
}

fn account_created() -> &'static str {
    "2019-03-04T10:00:00Z"
}

/// The token's owner: the repository owner (the token is their personal access token).
async fn authenticated_user(State(world): Shared) -> Response {
    let login = world.estate.github.owner.clone();
    let mut u = user(&world, &login);
    if let Some(m) = u.as_object_mut() {
        for (k, v) in [
            ("name", json!(login)),
            ("company", Value::Null),
            ("blog", json!("")),
            ("location", Value::Null),
            ("email", Value::Null),
            ("hireable", Value::Null),
            ("bio", Value::Null),
            ("twitter_username", Value::Null),
            ("public_repos", json!(0)),
            ("public_gists", json!(0)),
            ("followers", json!(0)),
            ("following", json!(0)),
            ("created_at", json!(account_created())),
            ("updated_at", json!(account_created())),
            ("private_gists", json!(0)),
            ("total_private_repos", json!(1)),
            ("owned_private_repos", json!(1)),
            ("disk_usage", json!(1024)),
            ("collaborators", json!(0)),
            ("two_factor_authentication", json!(true)),
            (
                "plan",
                json!({"name": "pro", "space": 976_562_499, "collaborators": 0, "private_repos": 9999}),
            ),
        ] {
            m.insert(k.to_string(), v);
        }
    }
    Json(u).into_response()
}

/// `GET /users/{login}`: only the accounts the sandbox knows (the owner, run actors).
async fn named_user(State(world): Shared, Path(login): Path<String>) -> Response {
    let known = login.eq_ignore_ascii_case(&world.estate.github.owner)
        || world.ci.runs().iter().any(|r| r.actor == login);
    if !known {
        return error(StatusCode::NOT_FOUND, "Not Found");
    }
    let mut u = user(&world, &login);
    if let Some(m) = u.as_object_mut() {
        for (k, v) in [
            ("name", json!(login)),
            ("public_repos", json!(0)),
            ("followers", json!(0)),
            ("following", json!(0)),
            ("created_at", json!(account_created())),
            ("updated_at", json!(account_created())),
        ] {
            m.insert(k.to_string(), v);
        }
    }
    Json(u).into_response()
}

const REPO_ID: u64 = 4242;

/// `GET /repos/{owner}/{repo}`: a full repository, private, default branch `main`.
async fn get_repo(State(world): Shared, Path((owner, repo)): Path<(String, String)>) -> Response {
    if let Err(r) = repo_check(&world, &owner, &repo) {
        return r;
    }
    let gh = &world.estate.github;
    let api = api_base(&world);
    let html = html_base(&world);
    let pushed = world
        .repo
        .commit_time(default_branch())
        .ok()
        .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
        .map(ts)
        .unwrap_or_else(|| account_created().to_string());
    let mut body = json!({
        "id": REPO_ID, "node_id": format!("R_kgDO{REPO_ID:x}"), "name": gh.repo,
        "full_name": format!("{}/{}", gh.owner, gh.repo), "private": true,
        "owner": user(&world, &gh.owner), "html_url": html,
        "description": "GitOps manifests and CI workflows of the estate", "fork": false,
        "url": api, "homepage": Value::Null, "language": "Shell",
        "created_at": account_created(), "updated_at": pushed, "pushed_at": pushed,
        "git_url": world.repo.url(), "ssh_url": world.repo.url(), "clone_url": world.repo.url(),
        "svn_url": html, "mirror_url": Value::Null,
        "size": 1024, "stargazers_count": 0, "watchers_count": 0, "watchers": 0,
        "forks_count": 0, "forks": 0, "open_issues_count": 0, "open_issues": 0,
        "subscribers_count": 1, "network_count": 0,
    });
    let settings = json!({
        "has_issues": true, "has_projects": false, "has_wiki": false, "has_pages": false,
        "has_downloads": true, "has_discussions": false, "archived": false, "disabled": false,
        "is_template": false, "allow_forking": false, "web_commit_signoff_required": false,
        "visibility": "private", "default_branch": default_branch(), "topics": ["gitops"],
        "license": Value::Null,
        "permissions": {"admin": true, "maintain": true, "push": true, "triage": true, "pull": true},
        "allow_squash_merge": true, "allow_merge_commit": true, "allow_rebase_merge": true,
        "allow_auto_merge": false, "delete_branch_on_merge": true, "allow_update_branch": false,
        "squash_merge_commit_title": "PR_TITLE", "squash_merge_commit_message": "PR_BODY",
        "merge_commit_title": "PR_TITLE", "merge_commit_message": "PR_BODY",
        "security_and_analysis": Value::Null, "custom_properties": {},
    });
    if let (Some(m), Value::Object(more)) = (body.as_object_mut(), settings) {
        m.extend(more);
    }
    // The `*_url` templates clients expand.
    if let Some(m) = body.as_object_mut() {
        for (k, suffix) in [
            ("forks_url", "/forks"),
            ("keys_url", "/keys{/key_id}"),
            ("collaborators_url", "/collaborators{/collaborator}"),
            ("teams_url", "/teams"),
            ("hooks_url", "/hooks"),
            ("issue_events_url", "/issues/events{/number}"),
            ("events_url", "/events"),
            ("assignees_url", "/assignees{/user}"),
            ("branches_url", "/branches{/branch}"),
            ("tags_url", "/tags"),
            ("blobs_url", "/git/blobs{/sha}"),
            ("git_tags_url", "/git/tags{/sha}"),
            ("git_refs_url", "/git/refs{/sha}"),
            ("trees_url", "/git/trees{/sha}"),
            ("statuses_url", "/statuses/{sha}"),
            ("languages_url", "/languages"),
            ("stargazers_url", "/stargazers"),
            ("contributors_url", "/contributors"),
            ("subscribers_url", "/subscribers"),
            ("subscription_url", "/subscription"),
            ("commits_url", "/commits{/sha}"),
            ("git_commits_url", "/git/commits{/sha}"),
            ("comments_url", "/comments{/number}"),
            ("issue_comment_url", "/issues/comments{/number}"),
            ("contents_url", "/contents/{+path}"),
            ("compare_url", "/compare/{base}...{head}"),
            ("merges_url", "/merges"),
            ("archive_url", "/{archive_format}{/ref}"),
            ("downloads_url", "/downloads"),
            ("issues_url", "/issues{/number}"),
            ("pulls_url", "/pulls{/number}"),
            ("milestones_url", "/milestones{/number}"),
            (
                "notifications_url",
                "/notifications{?since,all,participating}",
            ),
            ("labels_url", "/labels{/name}"),
            ("releases_url", "/releases{/id}"),
            ("deployments_url", "/deployments"),
        ] {
            m.insert(k.to_string(), json!(format!("{api}{suffix}")));
        }
    }
    Json(body).into_response()
}

/// The branches of the repository and their head commits, by name.
fn branches(world: &World) -> Vec<(String, String)> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(world.repo.path())
        .args([
            "for-each-ref",
            "--format=%(refname:short)%00%(objectname)",
            "refs/heads",
        ])
        .output();
    let Ok(out) = out else {
        return Vec::new();
    };
    if !out.status.success() {
        return Vec::new();
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (name, sha) = l.split_once('\0')?;
            Some((name.to_string(), sha.to_string()))
        })
        .collect()
}

/// A commit as the branches API shows it, read from Git.
fn commit_json(world: &World, sha: &str) -> Value {
    let api = api_base(world);
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(world.repo.path())
        .args([
            "log",
            "-1",
            "--format=%T%x00%P%x00%an%x00%ae%x00%aI%x00%cn%x00%ce%x00%cI%x00%B",
            sha,
            "--",
        ])
        .output();
    let text = out
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let f: Vec<&str> = text.splitn(9, '\0').collect();
    let field = |i: usize| f.get(i).copied().unwrap_or("").trim_end().to_string();
    let date = |s: String| {
        chrono::DateTime::parse_from_rfc3339(&s)
            .map(|t| ts(t.with_timezone(&chrono::Utc)))
            .unwrap_or(s)
    };
    let parents: Vec<Value> = field(1)
        .split_whitespace()
        .map(|p| {
            json!({"sha": p, "url": format!("{api}/commits/{p}"),
            "html_url": format!("{}/commit/{p}", html_base(world))})
        })
        .collect();
    json!({
        "sha": sha, "node_id": format!("C_kwDO{}", &sha[..sha.len().min(12)]),
        "url": format!("{api}/commits/{sha}"),
        "html_url": format!("{}/commit/{sha}", html_base(world)),
        "comments_url": format!("{api}/commits/{sha}/comments"),
        "commit": {
            "author": {"name": field(2), "email": field(3), "date": date(field(4))},
            "committer": {"name": field(5), "email": field(6), "date": date(field(7))},
            "message": field(8), "comment_count": 0,
            "tree": {"sha": field(0), "url": format!("{api}/git/trees/{}", field(0))},
            "url": format!("{api}/git/commits/{sha}"),
            "verification": {"verified": false, "reason": "unsigned", "signature": null,
                "payload": null, "verified_at": null},
        },
        "author": Value::Null, "committer": Value::Null, "parents": parents,
    })
}

/// Whether a branch is protected: the production branch is (changes go through review).
fn protected(name: &str) -> bool {
    name == default_branch()
}

async fn list_branches(
    State(world): Shared,
    Path((owner, repo)): Path<(String, String)>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    if let Err(r) = repo_check(&world, &owner, &repo) {
        return r;
    }
    let api = api_base(&world);
    let all: Vec<(String, String)> = branches(&world)
        .into_iter()
        .filter(|(name, _)| match q.get("protected").map(String::as_str) {
            Some("true") => protected(name),
            Some("false") => !protected(name),
            _ => true,
        })
        .collect();
    let path = format!("/github/repos/{owner}/{repo}/branches");
    let (skip, take, link) = paginate(&world, &path, &q, all.len());
    let items: Vec<Value> = all
        .iter()
        .skip(skip)
        .take(take)
        .map(|(name, sha)| {
            json!({"name": name, "commit": {"sha": sha, "url": format!("{api}/commits/{sha}")},
                "protected": protected(name),
                "protection_url": format!("{api}/branches/{name}/protection")})
        })
        .collect();
    let mut resp = Json(Value::Array(items)).into_response();
    if let Some(l) = link.and_then(|l| HeaderValue::from_str(&l).ok()) {
        resp.headers_mut().insert(header::LINK, l);
    }
    resp
}

async fn get_branch(
    State(world): Shared,
    Path((owner, repo, branch)): Path<(String, String, String)>,
) -> Response {
    if let Err(r) = repo_check(&world, &owner, &repo) {
        return r;
    }
    let Some((name, sha)) = branches(&world).into_iter().find(|(n, _)| *n == branch) else {
        return error(StatusCode::NOT_FOUND, "Branch not found");
    };
    let api = api_base(&world);
    let prot = protected(&name);
    Json(json!({
        "name": name, "commit": commit_json(&world, &sha),
        "_links": {"self": format!("{api}/branches/{name}"),
            "html": format!("{}/tree/{name}", html_base(&world))},
        "protected": prot,
        "protection": {"enabled": prot, "required_status_checks": {
            "enforcement_level": if prot { "non_admins" } else { "off" },
            "contexts": [], "checks": []}},
        "protection_url": format!("{api}/branches/{name}/protection"),
    }))
    .into_response()
}

// --- Commits, contents, artifacts ---------------------------------------------------------

/// `git -C repo ARGS` stdout, or None when git fails (unknown revision, path).
fn git_out(world: &World, args: &[&str]) -> Option<Vec<u8>> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(world.repo.path())
        .args(args)
        .output()
        .ok()?;
    out.status.success().then_some(out.stdout)
}

/// A revision GitHub would accept (branch, tag or sha), resolved to a commit sha.
fn resolve_commit(world: &World, rev: &str) -> Option<String> {
    if rev.starts_with('-') || rev.is_empty() {
        return None;
    }
    let spec = format!("{rev}^{{commit}}");
    let out = git_out(world, &["rev-parse", "--verify", "--quiet", &spec])?;
    Some(String::from_utf8_lossy(&out).trim().to_string()).filter(|s| !s.is_empty())
}

/// `GET /commits?sha=&path=&per_page=&page=`: history, newest first.
async fn list_commits(
    State(world): Shared,
    Path((owner, repo)): Path<(String, String)>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    if let Err(r) = repo_check(&world, &owner, &repo) {
        return r;
    }
    let rev = q
        .get("sha")
        .cloned()
        .unwrap_or_else(|| default_branch().to_string());
    let Some(head) = resolve_commit(&world, &rev) else {
        return error(StatusCode::NOT_FOUND, "Not Found");
    };
    let mut args = vec!["log", "--format=%H", head.as_str()];
    let path_filter = q.get("path").cloned();
    if let Some(p) = &path_filter {
        args.push("--");
        args.push(p.as_str());
    }
    let shas: Vec<String> = git_out(&world, &args)
        .map(|o| {
            String::from_utf8_lossy(&o)
                .lines()
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    let path = format!("/github/repos/{owner}/{repo}/commits");
    let (skip, take, link) = paginate(&world, &path, &q, shas.len());
    let items: Vec<Value> = shas
        .iter()
        .skip(skip)
        .take(take)
        .map(|s| commit_json(&world, s))
        .collect();
    let mut resp = Json(Value::Array(items)).into_response();
    if let Some(l) = link.and_then(|l| HeaderValue::from_str(&l).ok()) {
        resp.headers_mut().insert(header::LINK, l);
    }
    resp
}

/// `GET /commits/{ref}`: one commit with its stats and changed files.
async fn get_commit(
    State(world): Shared,
    Path((owner, repo, rev)): Path<(String, String, String)>,
) -> Response {
    if let Err(r) = repo_check(&world, &owner, &repo) {
        return r;
    }
    let Some(sha) = resolve_commit(&world, &rev) else {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("No commit found for SHA: {rev}"),
        );
    };
    let mut body = commit_json(&world, &sha);
    let numstat = git_out(
        &world,
        &["show", "--numstat", "--format=", "--no-renames", &sha],
    )
    .unwrap_or_default();
    let status = git_out(
        &world,
        &["show", "--name-status", "--format=", "--no-renames", &sha],
    )
    .unwrap_or_default();
    let statuses: BTreeMap<String, String> = String::from_utf8_lossy(&status)
        .lines()
        .filter_map(|l| {
            let (s, f) = l.split_once('\t')?;
            let word = match s {
                "A" => "added",
                "D" => "removed",
                _ => "modified",
            };
            Some((f.to_string(), word.to_string()))
        })
        .collect();
    let (mut adds, mut dels) = (0u64, 0u64);
    let files: Vec<Value> = String::from_utf8_lossy(&numstat)
        .lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, '\t');
            let a: u64 = parts.next()?.parse().unwrap_or(0);
            let d: u64 = parts.next()?.parse().unwrap_or(0);
            let f = parts.next()?.to_string();
            adds += a;
            dels += d;
            let api = api_base(&world);
            Some(json!({"sha": sha, "filename": f,
                "status": statuses.get(&f).cloned().unwrap_or_else(|| "modified".into()),
                "additions": a, "deletions": d, "changes": a + d,
                "blob_url": format!("{}/blob/{sha}/{f}", html_base(&world)),
                "raw_url": format!("{}/raw/{sha}/{f}", html_base(&world)),
                "contents_url": format!("{api}/contents/{f}?ref={sha}")}))
        })
        .collect();
    if let Some(m) = body.as_object_mut() {
        m.insert(
            "stats".into(),
            json!({"total": adds + dels, "additions": adds, "deletions": dels}),
        );
        m.insert("files".into(), Value::Array(files));
    }
    Json(body).into_response()
}

/// `GET /contents/{path}?ref=`: a file (base64, as GitHub sends it) or a directory listing.
async fn get_contents(
    State(world): Shared,
    Path((owner, repo, path)): Path<(String, String, String)>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    use base64::Engine;
    if let Err(r) = repo_check(&world, &owner, &repo) {
        return r;
    }
    let rev = q
        .get("ref")
        .cloned()
        .unwrap_or_else(|| default_branch().to_string());
    let Some(commit) = resolve_commit(&world, &rev) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("No commit found for the ref {rev}"),
        );
    };
    let path = path.trim_matches('/').to_string();
    let api = api_base(&world);
    let entry = |kind: &str, name: &str, full: &str, sha: &str, size: u64| {
        let url = format!("{api}/contents/{full}?ref={rev}");
        let html = format!(
            "{}/{kind}/{rev}/{full}",
            html_base(&world),
            kind = if kind == "dir" { "tree" } else { "blob" }
        );
        let git = format!(
            "{api}/git/{}/{sha}",
            if kind == "dir" { "trees" } else { "blobs" }
        );
        json!({"type": kind, "name": name, "path": full, "sha": sha, "size": size,
            "url": url, "html_url": html, "git_url": git,
            "download_url": if kind == "file" { json!(format!("{}/raw/{rev}/{full}", html_base(&world))) } else { Value::Null },
            "_links": {"self": url, "git": git, "html": html}})
    };
    // What the path is at that commit: `git ls-tree -l` of its parent, filtered.
    let target = if path.is_empty() {
        None
    } else {
        let listing = git_out(&world, &["ls-tree", "-l", &commit, "--", &path]).unwrap_or_default();
        let text = String::from_utf8_lossy(&listing).into_owned();
        let found = text.lines().find_map(|l| {
            let (meta, name) = l.split_once('\t')?;
            let f: Vec<&str> = meta.split_whitespace().collect();
            (name == path).then(|| {
                (
                    f.get(1).copied().unwrap_or("").to_string(),
                    f.get(2).copied().unwrap_or("").to_string(),
                    f.get(3).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0),
                )
            })
        });
        match found {
            Some(t) => Some(t),
            None => return error(StatusCode::NOT_FOUND, "Not Found"),
        }
    };
    match target {
        Some((kind, sha, size)) if kind == "blob" => {
            let Some(bytes) = git_out(&world, &["cat-file", "blob", &sha]) else {
                return error(StatusCode::NOT_FOUND, "Not Found");
            };
            let b64 = base64::engine::general_purpose::STANDARD.encode(&bytes);
            // GitHub wraps the base64 at 60 columns.
            let wrapped: String = b64
                .as_bytes()
                .chunks(60)
                .map(|c| format!("{}\n", String::from_utf8_lossy(c)))
                .collect();
            let name = path.rsplit('/').next().unwrap_or(&path).to_string();
            let mut e = entry("file", &name, &path, &sha, size);
            if let Some(m) = e.as_object_mut() {
                m.insert("encoding".into(), json!("base64"));
                m.insert("content".into(), json!(wrapped));
            }
            Json(e).into_response()
        }
        _ => {
            let tree = if path.is_empty() {
                commit.clone()
            } else {
                format!("{commit}:{path}")
            };
            let listing = git_out(&world, &["ls-tree", "-l", &tree]).unwrap_or_default();
            let items: Vec<Value> = String::from_utf8_lossy(&listing)
                .lines()
                .filter_map(|l| {
                    let (meta, name) = l.split_once('\t')?;
                    let f: Vec<&str> = meta.split_whitespace().collect();
                    let kind = if f.get(1) == Some(&"tree") {
                        "dir"
                    } else {
                        "file"
                    };
                    let full = if path.is_empty() {
                        name.to_string()
                    } else {
                        format!("{path}/{name}")
                    };
                    let size = f.get(3).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
                    Some(entry(
                        kind,
                        name,
                        &full,
                        f.get(2).copied().unwrap_or(""),
                        size,
                    ))
                })
                .collect();
            Json(Value::Array(items)).into_response()
        }
    }
}

/// `GET /contents`: the repository's root directory.
async fn get_root_contents(
    world: Shared,
    Path((owner, repo)): Path<(String, String)>,
    q: Query<BTreeMap<String, String>>,
) -> Response {
    get_contents(world, Path((owner, repo, String::new())), q).await
}

/// `GET /runs/{id}/artifacts`: the sandbox's builds upload none.
async fn run_artifacts(
    State(world): Shared,
    Path((owner, repo, run)): Path<(String, String, String)>,
) -> Response {
    match github_run(&world, &owner, &repo, &run) {
        Ok(_) => Json(json!({"total_count": 0, "artifacts": []})).into_response(),
        Err(e) => e,
    }
}

// --- Jobs, timing, logs ---------------------------------------------------------------------

/// A job of a GitHub run by its id, with its run.
// The error is the ready answer to send; boxing it would only add noise.
#[allow(clippy::result_large_err)]
fn github_job(world: &World, owner: &str, repo: &str, job: &str) -> Result<(Run, usize), Response> {
    repo_check(world, owner, repo)?;
    let not_found = || error(StatusCode::NOT_FOUND, "Not Found");
    let id: u64 = job.parse().map_err(|_| not_found())?;
    world
        .ci
        .runs()
        .into_iter()
        .filter(|r| matches!(r.origin, Origin::Github { .. }))
        .find_map(|r| {
            let i = r.jobs.iter().position(|j| j.id == id)?;
            Some((r, i))
        })
        .ok_or_else(not_found)
}

async fn get_job(
    State(world): Shared,
    Path((owner, repo, job)): Path<(String, String, String)>,
) -> Response {
    match github_job(&world, &owner, &repo, &job) {
        Ok((r, i)) => Json(job_json(&world, &r, &r.jobs[i])).into_response(),
        Err(e) => e,
    }
}

fn millis(
    a: Option<chrono::DateTime<chrono::Utc>>,
    b: Option<chrono::DateTime<chrono::Utc>>,
) -> i64 {
    match (a, b) {
        (Some(a), Some(b)) => (b - a).num_milliseconds().max(0),
        (Some(a), None) => (chrono::Utc::now() - a).num_milliseconds().max(0),
        _ => 0,
    }
}

/// `GET /runs/{id}/timing`: billable time per runner OS (each job rounded up to a minute, as
/// GitHub bills) and the run's wall duration.
async fn run_timing(
    State(world): Shared,
    Path((owner, repo, run)): Path<(String, String, String)>,
) -> Response {
    let r = match github_run(&world, &owner, &repo, &run) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let ran: Vec<&ci::Job> = r
        .jobs
        .iter()
        .filter(|j| j.conclusion != Some("skipped") && j.started_at.is_some())
        .collect();
    let job_runs: Vec<Value> = ran
        .iter()
        .map(|j| json!({"job_id": j.id, "duration_ms": millis(j.started_at, j.completed_at)}))
        .collect();
    let total: i64 = ran
        .iter()
        .map(|j| {
            let ms = millis(j.started_at, j.completed_at);
            (ms + 59_999) / 60_000 * 60_000
        })
        .sum();
    let end = (r.status == ci::Status::Completed).then_some(r.updated_at);
    Json(json!({
        "billable": {"UBUNTU": {"total_ms": total, "jobs": ran.len(), "job_runs": job_runs}},
        "run_duration_ms": millis(r.started_at, end),
    }))
    .into_response()
}

/// How long a signed log link stays valid (GitHub: one minute).
const LINK_SECONDS: i64 = 60;

/// A signed, expiring link on the blob host (here: this server, under `/github-blobs`).
fn signed_link(world: &World, path: &str) -> String {
    let expires = chrono::Utc::now().timestamp() + LINK_SECONDS;
    let sig = world.users.sign(&format!("{path}?{expires}"));
    format!("{}{path}?se={expires}&sig={sig}", world.base_url)
}

/// Whether a blob request carries a valid, unexpired signature; the storage's 403 otherwise.
// The error is the ready answer to send; boxing it would only add noise.
#[allow(clippy::result_large_err)]
fn check_link(world: &World, path: &str, q: &BTreeMap<String, String>) -> Result<(), Response> {
    let refuse = |code: &str, message: &str| {
        (
            StatusCode::FORBIDDEN,
            [(header::CONTENT_TYPE, "application/xml")],
            format!(
                "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>{code}</Code><Message>{message}</Message></Error>"
            ),
        )
            .into_response()
    };
    let expires = q.get("se").and_then(|e| e.parse::<i64>().ok());
    let sig = q.get("sig").map(String::as_str).unwrap_or("");
    let Some(expires) = expires else {
        return Err(refuse(
            "AuthenticationFailed",
            "Signature not valid in the specified time frame",
        ));
    };
    if world.users.sign(&format!("{path}?{expires}")) != sig {
        return Err(refuse(
            "AuthenticationFailed",
            "Server failed to authenticate the request. Make sure the value of Authorization header is formed correctly including the signature.",
        ));
    }
    if chrono::Utc::now().timestamp() > expires {
        return Err(refuse(
            "AuthenticationFailed",
            "Signed expiry time has expired",
        ));
    }
    Ok(())
}

fn redirect(location: &str) -> Response {
    let mut resp = StatusCode::FOUND.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// `GET /actions/jobs/{id}/logs`: a 302 to the job's plain-text log.
async fn job_logs(
    State(world): Shared,
    Path((owner, repo, job)): Path<(String, String, String)>,
) -> Response {
    match github_job(&world, &owner, &repo, &job) {
        Ok((r, i)) => redirect(&signed_link(
            &world,
            &format!("/github-blobs/jobs/{}/logs.txt", r.jobs[i].id),
        )),
        Err(e) => e,
    }
}

/// `GET /actions/runs/{id}/logs`: a 302 to a zip of the jobs' logs.
async fn run_logs(
    State(world): Shared,
    Path((owner, repo, run)): Path<(String, String, String)>,
) -> Response {
    match github_run(&world, &owner, &repo, &run) {
        Ok(r) => redirect(&signed_link(
            &world,
            &format!("/github-blobs/runs/{}/{}/logs.zip", r.id, r.attempt),
        )),
        Err(e) => e,
    }
}

async fn download_job_logs(
    State(world): Shared,
    Path(job): Path<u64>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let path = format!("/github-blobs/jobs/{job}/logs.txt");
    if let Err(e) = check_link(&world, &path, &q) {
        return e;
    }
    let found = world.ci.runs().into_iter().find_map(|r| {
        r.jobs
            .iter()
            .find(|j| j.id == job)
            .map(|j| j.log.join("\n"))
    });
    match found {
        Some(mut text) => {
            text.push('\n');
            ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response()
        }
        None => error(StatusCode::NOT_FOUND, "Not Found"),
    }
}

/// A name usable as a zip entry (GitHub replaces the characters a path cannot hold).
fn entry_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if matches!(c, '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|') {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// The run's log archive as GitHub lays it out: `N_job.txt` with each job's whole log, and
/// `job/N_step.txt` with each step's part.
fn run_log_files(run: &Run) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    for (i, job) in run.jobs.iter().enumerate() {
        let job_name = entry_name(&job.name);
        let mut whole = job.log.join("\n");
        whole.push('\n');
        files.push((format!("{i}_{job_name}.txt"), whole.into_bytes()));
        // Each `##[group]` opens the next step that ran.
        let ran: Vec<&ci::Step> = job
            .steps
            .iter()
            .filter(|s| s.started_at.is_some())
            .collect();
        let mut parts: Vec<String> = Vec::new();
        for line in &job.log {
            if line.contains("##[group]") || parts.is_empty() {
                parts.push(String::new());
            }
            if let Some(p) = parts.last_mut() {
                p.push_str(line);
                p.push('\n');
            }
        }
        for (step, text) in ran.iter().zip(parts) {
            files.push((
                format!("{job_name}/{}_{}.txt", step.number, entry_name(&step.name)),
                text.into_bytes(),
            ));
        }
    }
    files
}

async fn download_run_logs(
    State(world): Shared,
    Path((run, attempt)): Path<(u64, u32)>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let path = format!("/github-blobs/runs/{run}/{attempt}/logs.zip");
    if let Err(e) = check_link(&world, &path, &q) {
        return e;
    }
    let Some(r) = world.ci.run(run) else {
        return error(StatusCode::NOT_FOUND, "Not Found");
    };
    let zip = zip_store(&run_log_files(&r));
    (
        [
            (header::CONTENT_TYPE, "application/zip".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=logs_{run}.zip"),
            ),
        ],
        zip,
    )
        .into_response()
}

/// CRC-32 (IEEE), as zip needs it.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xedb8_8320 & mask);
        }
    }
    !crc
}

/// A zip archive of stored (uncompressed) entries: what any unzip reads.
fn zip_store(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    // 1980-01-01 00:00, the zip epoch: the archive is the same for the same logs.
    let (time, date) = (0u16, (1u16 << 5) | 1);
    for (name, data) in files {
        let offset = out.len() as u32;
        let crc = crc32(data);
        let size = data.len() as u32;
        let n = name.as_bytes();
        let header = |sig: u32, central: bool| {
            let mut h = Vec::new();
            h.extend(sig.to_le_bytes());
            if central {
                h.extend(20u16.to_le_bytes()); // made by
            }
            h.extend(20u16.to_le_bytes()); // needed
            h.extend(0x0800u16.to_le_bytes()); // UTF-8 names
            h.extend(0u16.to_le_bytes()); // stored
            h.extend(time.to_le_bytes());
            h.extend(date.to_le_bytes());
            h.extend(crc.to_le_bytes());
            h.extend(size.to_le_bytes());
            h.extend(size.to_le_bytes());
            h.extend((n.len() as u16).to_le_bytes());
            h.extend(0u16.to_le_bytes()); // extra
            if central {
                h.extend(0u16.to_le_bytes()); // comment
                h.extend(0u16.to_le_bytes()); // disk
                h.extend(0u16.to_le_bytes()); // internal attributes
                h.extend(0u32.to_le_bytes()); // external attributes
                h.extend(offset.to_le_bytes());
            }
            h.extend(n);
            h
        };
        out.extend(header(0x0403_4b50, false));
        out.extend(data);
        central.extend(header(0x0201_4b50, true));
    }
    let cd_offset = out.len() as u32;
    let cd_size = central.len() as u32;
    out.extend(central);
    out.extend(0x0605_4b50u32.to_le_bytes());
    out.extend(0u16.to_le_bytes());
    out.extend(0u16.to_le_bytes());
    out.extend((files.len() as u16).to_le_bytes());
    out.extend((files.len() as u16).to_le_bytes());
    out.extend(cd_size.to_le_bytes());
    out.extend(cd_offset.to_le_bytes());
    out.extend(0u16.to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispatch_inputs_validated_like_github() {
        let doc: Value = serde_saphyr::from_str(
            "on:\n  workflow_dispatch:\n    inputs:\n      service:\n        required: true\n        type: choice\n        options: [web, api]\n      fail:\n        type: boolean\n        default: false\n",
        )
        .unwrap();
        let ok = validate_inputs(&doc, &json!({"service": "web"})).unwrap();
        assert_eq!(ok["fail"], "false");
        assert!(
            validate_inputs(&doc, &json!({}))
                .unwrap_err()
                .contains("Required input 'service'")
        );
        assert!(
            validate_inputs(&doc, &json!({"service": "db"}))
                .unwrap_err()
                .contains("not in the list")
        );
        assert!(
            validate_inputs(&doc, &json!({"service": "web", "x": 1}))
                .unwrap_err()
                .contains("Unexpected inputs")
        );
        assert!(validate_inputs(&doc, &json!({"service": "web", "fail": "maybe"})).is_err());
        assert!(validate_inputs(&doc, &json!({"service": "web", "fail": true})).is_ok());
    }
}
