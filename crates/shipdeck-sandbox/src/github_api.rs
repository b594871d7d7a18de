//! A GitHub Actions REST subset under `/github` (per `reference/github/actions-subset.json`):
//! workflows read from the real `.github/workflows/*.yml` files of the estate's repository,
//! dispatch with input validation (answering per `X-GitHub-Api-Version`), runs, jobs with
//! steps, rerun and cancel. Runs themselves unfold in `ci.rs`; this file only speaks HTTP,
//! with GitHub's auth errors and rate-limit headers.

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
    axum::Router::new()
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
        .with_state(world)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let body = json!({"message": message.into(), "documentation_url": DOCS,
        "status": status.as_u16().to_string()});
    (status, Json(body)).into_response()
}

/// Token auth and rate-limit headers on every answer, as api.github.com does.
async fn github_layer(State(world): Shared, req: Request, next: Next) -> Response {
    let used = ci::count_api_call(&world);
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
fn workflow_id(file: &str) -> u64 {
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
            Some(Workflow {
                file,
                path,
                name,
                doc,
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

/// The jobs and step names of a workflow file, as GitHub would show them.
fn jobs_of(doc: &Value) -> Vec<(String, Vec<String>)> {
    doc["jobs"]
        .as_object()
        .map(|jobs| {
            jobs.iter()
                .map(|(id, job)| {
                    let name = job["name"].as_str().unwrap_or(id).to_string();
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
                    (name, steps)
                })
                .collect()
        })
        .unwrap_or_default()
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
            jobs: jobs_of(&wf.doc),
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

fn user(login: &str) -> Value {
    json!({"login": login, "id": 1000 + login.len(), "type": "User",
        "avatar_url": "", "url": format!("https://api.github.com/users/{login}")})
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
        "owner": user(&gh.owner), "private": true, "html_url": html_base(world)});
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
        "actor": user(&run.actor), "triggering_actor": user(&run.actor),
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
    json!({
        "id": job.id, "run_id": run.id, "run_url": format!("{api}/actions/runs/{}", run.id),
        "run_attempt": run.attempt, "node_id": format!("CR_kwDO{:x}", job.id),
        "head_sha": run.head_sha, "url": format!("{api}/actions/jobs/{}", job.id),
        "html_url": format!("{}/actions/runs/{}/job/{}", html_base(world), run.id, job.id),
        "status": job.status.github(), "conclusion": job.conclusion,
        "created_at": ts(run.created_at), "started_at": ts(job.started_at.unwrap_or(run.created_at)),
        "completed_at": job.completed_at.map(ts), "name": job.name, "steps": steps,
        "check_run_url": format!("{api}/check-runs/{}", job.id),
        "labels": ["ubuntu-latest"], "runner_id": if job.started_at.is_some() { json!(7) } else { Value::Null },
        "runner_name": if job.started_at.is_some() { json!("GitHub Actions 7") } else { Value::Null },
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
