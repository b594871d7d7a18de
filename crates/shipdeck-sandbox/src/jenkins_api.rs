//! A Jenkins subset under `/jenkins`, as python-jenkins and scripts call it: the dashboard
//! (with `X-Jenkins` on every answer), whoami, the crumb issuer (CSRF), jobs with their
//! parameter definitions, `buildWithParameters` answering 201 with a queue item, the queue
//! (items wait Jenkins' quiet period, and can be cancelled), the built-in node's executors
//! with the builds they run, build status and pages, stop (redirecting to the build page),
//! console text, and the Pipeline Stage View's `wfapi/describe`. Builds run in `ci.rs`; this
//! file speaks Jenkins' JSON and basic auth (user + API token).

use super::World;
use super::ci::{NewRun, Origin, Run, Status};
use super::estate::JenkinsJobDef;
use axum::Json;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

const CRUMB_FIELD: &str = "Jenkins-Crumb";
const RUN_CLASS: &str = "org.jenkinsci.plugins.workflow.job.WorkflowRun";
/// The Jenkins release the sandbox answers as (an LTS line).
pub const VERSION: &str = "2.479.3";
/// Executors of the built-in node.
const EXECUTORS: usize = 2;

type Shared = State<Arc<World>>;

pub fn router(world: Arc<World>) -> axum::Router {
    axum::Router::new()
        .route("/jenkins", get(dashboard))
        .route("/jenkins/", get(dashboard))
        .route("/jenkins/api/json", get(root))
        .route("/jenkins/me/api/json", get(whoami))
        .route("/jenkins/computer/api/json", get(computers))
        .route("/jenkins/computer/{node}/api/json", get(computer))
        .route("/jenkins/queue/api/json", get(queue))
        .route("/jenkins/queue/cancelItem", post(cancel_item))
        .route("/jenkins/job/{job}/", get(job_page))
        .route("/jenkins/job/{job}", get(job_page))
        .route("/jenkins/job/{job}/{number}/", get(build_page))
        .route("/jenkins/job/{job}/{number}", get(build_page))
        .route("/jenkins/job/{job}/{number}/wfapi/describe", get(describe))
        .route("/jenkins/job/{job}/{number}/wfapi/describe/", get(describe))
        .route("/jenkins/{*rest}", axum::routing::any(not_found))
        .route("/jenkins/crumbIssuer/api/json", get(crumb))
        .route("/jenkins/job/{job}/api/json", get(job))
        .route(
            "/jenkins/job/{job}/buildWithParameters",
            post(build_with_parameters),
        )
        .route("/jenkins/job/{job}/build", post(build_with_parameters))
        .route("/jenkins/queue/item/{id}/api/json", get(queue_item))
        .route("/jenkins/job/{job}/{number}/api/json", get(build))
        .route("/jenkins/job/{job}/{number}/stop", post(stop))
        .route("/jenkins/job/{job}/{number}/consoleText", get(console))
        .route_layer(axum::middleware::from_fn_with_state(
            world.clone(),
            jenkins_layer,
        ))
        .with_state(world)
}

fn text(status: StatusCode, body: impl Into<String>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain;charset=utf-8")],
        body.into(),
    )
        .into_response()
}

/// Basic auth with the Jenkins user and API token; POSTs also need a crumb.
async fn jenkins_layer(State(world): Shared, req: Request, next: Next) -> Response {
    let creds = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|b| String::from_utf8(b).ok());
    let mut resp = match creds {
        None => {
            let mut r = text(
                StatusCode::FORBIDDEN,
                "Authentication required: anonymous is missing the Overall/Read permission",
            );
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"Jenkins\""),
            );
            r
        }
        Some(c) => {
            let (user, token) = c.split_once(':').unwrap_or((c.as_str(), ""));
            if user != world.users.jenkins_user() || token != world.users.jenkins_token() {
                text(
                    StatusCode::UNAUTHORIZED,
                    format!("Invalid password/token for user: {user}"),
                )
            } else if req.method() == axum::http::Method::POST && !crumb_ok(&world, req.headers()) {
                text(
                    StatusCode::FORBIDDEN,
                    "No valid crumb was included in the request",
                )
            } else {
                next.run(req).await
            }
        }
    };
    // Jenkins names itself on every answer, errors included (clients read the version here).
    let h = resp.headers_mut();
    h.insert("x-jenkins", HeaderValue::from_static(VERSION));
    h.insert("x-hudson", HeaderValue::from_static("1.395"));
    h.insert("x-jenkins-session", HeaderValue::from_static("5a1d2c3b"));
    resp
}

fn session_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| {
            let (k, v) = c.trim().split_once('=')?;
            k.starts_with("JSESSIONID").then(|| v.to_string())
        })
}

fn crumb_ok(world: &World, headers: &HeaderMap) -> bool {
    let Some(given) = headers.get(CRUMB_FIELD).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let session = session_of(headers);
    world
        .ci
        .crumbs()
        .iter()
        .any(|(s, c)| c == given && session.as_ref().is_none_or(|x| x == s))
}

fn base(world: &World) -> String {
    format!("{}/jenkins", world.base_url)
}

async fn root(State(world): Shared) -> Json<Value> {
    let jobs: Vec<Value> = world
        .estate
        .jenkins
        .iter()
        .map(|j| {
            json!({"_class": "org.jenkinsci.plugins.workflow.job.WorkflowJob", "name": j.name,
                "url": format!("{}/job/{}/", base(&world), j.name), "color": "blue"})
        })
        .collect();
    Json(
        json!({"_class": "hudson.model.Hudson", "mode": "NORMAL", "nodeName": "",
        "numExecutors": EXECUTORS, "useCrumbs": true, "useSecurity": true, "jobs": jobs,
        "url": format!("{}/", base(&world))}),
    )
}

async fn crumb(State(world): Shared, headers: HeaderMap) -> Response {
    let session = session_of(&headers).unwrap_or_else(|| world.ci.new_token("session"));
    let crumb = world.ci.issue_crumb(&session);
    let mut resp = Json(json!({
        "_class": "hudson.security.csrf.DefaultCrumbIssuer",
        "crumb": crumb,
        "crumbRequestField": CRUMB_FIELD,
    }))
    .into_response();
    if let Ok(v) = HeaderValue::from_str(&format!(
        "JSESSIONID.sandbox={session}; Path=/jenkins; HttpOnly"
    )) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

fn find_job<'a>(world: &'a World, name: &str) -> Option<&'a JenkinsJobDef> {
    world.estate.jenkins.iter().find(|j| j.name == name)
}

fn parameter_definition(p: &super::estate::CiInput) -> Value {
    let (class, kind) = match p.kind.as_str() {
        "choice" => (
            "hudson.model.ChoiceParameterDefinition",
            "ChoiceParameterDefinition",
        ),
        "boolean" => (
            "hudson.model.BooleanParameterDefinition",
            "BooleanParameterDefinition",
        ),
        _ => (
            "hudson.model.StringParameterDefinition",
            "StringParameterDefinition",
        ),
    };
    let default = match p.kind.as_str() {
        "choice" => json!(
            p.default
                .clone()
                .or_else(|| p.options.first().cloned())
                .unwrap_or_default()
        ),
        "boolean" => json!(p.default.as_deref() == Some("true")),
        _ => json!(p.default.clone().unwrap_or_default()),
    };
    let value_class = class.replace("Definition", "Value");
    let mut d = json!({
        "_class": class, "name": p.name, "description": p.description, "type": kind,
        "defaultParameterValue": {"_class": value_class, "name": p.name, "value": default},
    });
    if p.kind == "choice" {
        d["choices"] = json!(p.options);
    }
    d
}

fn build_ref(world: &World, job: &str, r: &Run) -> Value {
    json!({"_class": RUN_CLASS, "number": r.number,
        "url": format!("{}/job/{job}/{}/", base(world), r.number)})
}

fn jenkins_result(r: &Run) -> Value {
    match (r.status, r.conclusion) {
        (Status::Completed, Some("success")) => json!("SUCCESS"),
        (Status::Completed, Some("cancelled")) => json!("ABORTED"),
        (Status::Completed, _) => json!("FAILURE"),
        _ => Value::Null,
    }
}

fn builds_of(world: &World, job: &str) -> Vec<Run> {
    world
        .ci
        .runs()
        .into_iter()
        .filter(|r| matches!(&r.origin, Origin::Jenkins { job: j } if j == job))
        .filter(|r| r.status != Status::Queued)
        .collect()
}

async fn job(State(world): Shared, Path(name): Path<String>) -> Response {
    let Some(def) = find_job(&world, &name) else {
        return text(StatusCode::NOT_FOUND, "Not Found");
    };
    let builds = builds_of(&world, &name);
    let pick = |f: &dyn Fn(&Run) -> bool| {
        builds
            .iter()
            .find(|r| f(r))
            .map(|r| build_ref(&world, &name, r))
            .unwrap_or(Value::Null)
    };
    let last_result = builds.first().map(jenkins_result);
    let color = match last_result.as_ref().and_then(Value::as_str) {
        Some("FAILURE") => "red",
        Some("ABORTED") => "aborted",
        _ if builds
            .first()
            .is_some_and(|r| r.status == Status::InProgress) =>
        {
            "blue_anime"
        }
        Some(_) => "blue",
        None => "notbuilt",
    };
    let next = world.ci.next_number(&format!("jenkins:{name}"));
    Json(json!({
        "_class": "org.jenkinsci.plugins.workflow.job.WorkflowJob",
        "name": name, "fullName": name, "displayName": name,
        "description": "Rewrites the environment's manifests with the given image tags and pushes",
        "url": format!("{}/job/{name}/", base(&world)),
        "buildable": true, "color": color, "inQueue": false, "concurrentBuild": true,
        "nextBuildNumber": next,
        "builds": builds.iter().map(|r| build_ref(&world, &name, r)).collect::<Vec<_>>(),
        "lastBuild": pick(&|_| true),
        "lastCompletedBuild": pick(&|r| r.status == Status::Completed),
        "lastSuccessfulBuild": pick(&|r| r.conclusion == Some("success")),
        "lastFailedBuild": pick(&|r| r.conclusion == Some("failure")),
        "property": [{
            "_class": "hudson.model.ParametersDefinitionProperty",
            "parameterDefinitions": def.parameters.iter().map(parameter_definition).collect::<Vec<_>>(),
        }],
    }))
    .into_response()
}

async fn build_with_parameters(
    State(world): Shared,
    Path(name): Path<String>,
    Query(query): Query<BTreeMap<String, String>>,
    body: axum::body::Bytes,
) -> Response {
    let Some(def) = find_job(&world, &name) else {
        return text(StatusCode::NOT_FOUND, "Not Found");
    };
    // Parameters come from the query string or a form body.
    let mut given = query;
    if let Ok(form) = serde_urlencoded_pairs(&body) {
        given.extend(form);
    }
    let mut params = BTreeMap::new();
    for p in &def.parameters {
        let value = given
            .get(&p.name)
            .cloned()
            .or_else(|| p.default.clone())
            .or_else(|| {
                (p.kind == "choice")
                    .then(|| p.options.first().cloned())
                    .flatten()
            })
            .unwrap_or_default();
        if p.kind == "choice" && !p.options.contains(&value) {
            return text(
                StatusCode::BAD_REQUEST,
                format!("Illegal choice for parameter {}: {value}", p.name),
            );
        }
        params.insert(p.name.clone(), value);
    }
    let branch = "main".to_string();
    let head_sha = world.repo.resolve(&branch).unwrap_or_default();
    let item = world.ci.enqueue_jenkins(
        &world,
        NewRun {
            origin: Origin::Jenkins { job: name.clone() },
            name: name.clone(),
            action: Some(def.action),
            inputs: params,
            branch,
            head_sha,
            head_message: String::new(),
            actor: world.users.jenkins_user(),
            jobs: vec![super::ci::JobSpec::new(
                &name,
                &["Checkout SCM", "Update manifests", "Commit and push"],
                &[],
            )],
        },
    );
    let mut resp = StatusCode::CREATED.into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("{}/queue/item/{}/", base(&world), item.id)) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

fn serde_urlencoded_pairs(body: &[u8]) -> Result<Vec<(String, String)>, ()> {
    if body.is_empty() {
        return Ok(Vec::new());
    }
    let text = std::str::from_utf8(body).map_err(|_| ())?;
    Ok(text
        .split('&')
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((percent_decode(k), percent_decode(v)))
        })
        .collect())
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn queue_item(State(world): Shared, Path(id): Path<u64>) -> Response {
    let Some((item, run)) = world.ci.queue_item(id) else {
        return text(StatusCode::NOT_FOUND, "Not Found");
    };
    let task = json!({"_class": "org.jenkinsci.plugins.workflow.job.WorkflowJob",
        "name": item.job, "url": format!("{}/job/{}/", base(&world), item.job), "color": "blue"});
    let params: String = run
        .inputs
        .iter()
        .map(|(k, v)| format!("\n{k}={v}"))
        .collect();
    let since = item.in_queue_since.timestamp_millis();
    let body = if item.cancelled && run.started_at.is_none() {
        json!({"_class": "hudson.model.Queue$LeftItem", "id": id, "blocked": false,
            "buildable": false, "cancelled": true, "why": null, "executable": null,
            "inQueueSince": since, "params": params, "stuck": false, "task": task,
            "url": format!("queue/item/{id}/")})
    } else if run.status == Status::Queued {
        json!({"_class": "hudson.model.Queue$WaitingItem", "id": id, "blocked": false,
            "buildable": false, "cancelled": false,
            "why": quiet_period(&world, &run), "inQueueSince": since,
            "params": params, "stuck": false, "task": task, "url": format!("queue/item/{id}/")})
    } else {
        json!({"_class": "hudson.model.Queue$LeftItem", "id": id, "blocked": false,
            "buildable": false, "cancelled": false, "why": null,
            "executable": build_ref(&world, &item.job, &run),
            "inQueueSince": since, "params": params, "stuck": false, "task": task,
            "url": format!("queue/item/{id}/")})
    };
    Json(body).into_response()
}

fn find_build(world: &World, job: &str, number: &str) -> Option<Run> {
    let builds = builds_of(world, job);
    match number {
        "lastBuild" => builds.into_iter().next(),
        "lastSuccessfulBuild" => builds.into_iter().find(|r| r.conclusion == Some("success")),
        "lastCompletedBuild" => builds.into_iter().find(|r| r.status == Status::Completed),
        n => {
            let n: u64 = n.parse().ok()?;
            builds.into_iter().find(|r| r.number == n)
        }
    }
}

async fn build(State(world): Shared, Path((job, number)): Path<(String, String)>) -> Response {
    let Some(r) = find_build(&world, &job, &number) else {
        return text(StatusCode::NOT_FOUND, "Not Found");
    };
    let start = r.started_at.unwrap_or(r.created_at);
    let building = r.status != Status::Completed;
    let duration = if building {
        0
    } else {
        (r.updated_at - start).num_milliseconds().max(1)
    };
    let parameters: Vec<Value> = r
        .inputs
        .iter()
        .map(|(k, v)| json!({"_class": "hudson.model.StringParameterValue", "name": k, "value": v}))
        .collect();
    let user = world.users.jenkins_user();
    Json(json!({
        "_class": RUN_CLASS, "number": r.number, "id": r.number.to_string(),
        "url": format!("{}/job/{job}/{}/", base(&world), r.number),
        "displayName": format!("#{}", r.number), "fullDisplayName": format!("{job} #{}", r.number),
        "building": building, "inProgress": building, "result": jenkins_result(&r),
        "timestamp": start.timestamp_millis(), "duration": duration, "estimatedDuration": 12_000,
        "queueId": r.id % 1_000_000,
        "description": r.tag.as_ref().map(|t| format!("image {t}")),
        "actions": [
            {"_class": "hudson.model.ParametersAction", "parameters": parameters},
            {"_class": "hudson.model.CauseAction", "causes": [{"_class": "hudson.model.Cause$UserIdCause",
                "shortDescription": format!("Started by user {user}"), "userId": user, "userName": user}]},
        ],
        "changeSets": [],
    }))
    .into_response()
}

async fn stop(State(world): Shared, Path((job, number)): Path<(String, String)>) -> Response {
    let Some(r) = find_build(&world, &job, &number) else {
        return text(StatusCode::NOT_FOUND, "Not Found");
    };
    let _ = world.ci.cancel(r.id);
    let mut resp = StatusCode::FOUND.into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("{}/job/{job}/{}/", base(&world), r.number)) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

async fn console(State(world): Shared, Path((job, number)): Path<(String, String)>) -> Response {
    let Some(r) = find_build(&world, &job, &number) else {
        return text(StatusCode::NOT_FOUND, "Not Found");
    };
    let mut out = format!("Started by user {}\n", world.users.jenkins_user());
    for (k, v) in &r.inputs {
        out.push_str(&format!("  {k}={v}\n"));
    }
    for line in &r.log {
        out.push_str(line);
        out.push('\n');
    }
    if let Value::String(res) = jenkins_result(&r) {
        out.push_str(&format!("Finished: {res}\n"));
    }
    text(StatusCode::OK, out)
}

/// Jenkins' 404 page (after auth, as Jenkins checks Overall/Read first).
async fn not_found() -> Response {
    html(
        StatusCode::NOT_FOUND,
        "Error 404 Not Found",
        "<h2>HTTP ERROR 404 Not Found</h2>",
    )
}

/// A minimal Jenkins page; escapes nothing itself, callers pass escaped text.
fn html(status: StatusCode, title: &str, body: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html;charset=utf-8")],
        format!(
            "<!DOCTYPE html><html><head><title>{title}</title></head><body>{body}</body></html>\n"
        ),
    )
        .into_response()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `GET /`: the dashboard (clients read the `X-Jenkins` header of this answer).
async fn dashboard(State(world): Shared) -> Response {
    let jobs: String = world
        .estate
        .jenkins
        .iter()
        .map(|j| format!("<li><a href=\"job/{0}/\">{0}</a></li>", escape(&j.name)))
        .collect();
    html(
        StatusCode::OK,
        "Dashboard [Jenkins]",
        &format!("<h1>Dashboard</h1><ul id=\"projectstatus\">{jobs}</ul>"),
    )
}

/// `GET /me/api/json`: who the credentials belong to.
async fn whoami(State(world): Shared) -> Json<Value> {
    let user = world.users.jenkins_user();
    Json(json!({
        "_class": "hudson.model.User",
        "absoluteUrl": format!("{}/user/{user}", base(&world)),
        "description": null, "fullName": user, "id": user,
        "property": [
            {"_class": "jenkins.security.ApiTokenProperty"},
            {"_class": "hudson.model.MyViewsProperty"},
            {"_class": "hudson.model.PaneStatusProperties"},
            {"_class": "jenkins.security.seed.UserSeedProperty"},
            {"_class": "hudson.search.UserSearchProperty", "insensitiveSearch": true},
            {"_class": "hudson.model.TimeZoneProperty", "timeZoneName": ""},
            {"_class": "hudson.tasks.Mailer$UserProperty", "address": format!("{user}@acme.dev")},
        ],
    }))
}

fn depth(q: &BTreeMap<String, String>) -> u32 {
    q.get("depth").and_then(|d| d.parse().ok()).unwrap_or(0)
}

/// Builds running now, oldest first: each holds one executor of the built-in node.
fn running(world: &World) -> Vec<Run> {
    let mut v: Vec<Run> = world
        .ci
        .runs()
        .into_iter()
        .filter(|r| matches!(r.origin, Origin::Jenkins { .. }) && r.status == Status::InProgress)
        .collect();
    v.reverse();
    v
}

fn job_of(r: &Run) -> &str {
    match &r.origin {
        Origin::Jenkins { job } => job,
        Origin::Github { file, .. } => file,
    }
}

/// The built-in node with its executors; deeper levels show what each executor runs.
fn built_in_node(world: &World, depth: u32) -> Value {
    let runs = running(world);
    let count = EXECUTORS.max(runs.len());
    let executors: Vec<Value> = (0..count)
        .map(|i| {
            if depth == 0 {
                return json!({});
            }
            match runs.get(i) {
                Some(r) => {
                    let job = job_of(r);
                    let start = r.started_at.unwrap_or(r.created_at);
                    let elapsed = (chrono::Utc::now() - start).num_milliseconds().max(0);
                    json!({"_class": "hudson.model.Executor", "idle": false, "likelyStuck": false,
                        "number": i, "progress": (elapsed * 100 / 12_000).min(99),
                        "currentExecutable": {"_class": RUN_CLASS, "number": r.number,
                            "url": format!("{}/job/{job}/{}/", base(world), r.number),
                            "displayName": format!("#{}", r.number),
                            "fullDisplayName": format!("{job} #{}", r.number),
                            "building": true, "timestamp": start.timestamp_millis()}})
                }
                None => json!({"_class": "hudson.model.Executor", "currentExecutable": null,
                    "idle": true, "likelyStuck": false, "number": i, "progress": -1}),
            }
        })
        .collect();
    json!({
        "_class": "hudson.model.Hudson$MasterComputer",
        "actions": [], "assignedLabels": [{"name": "built-in"}],
        "description": "the Jenkins controller's built-in node",
        "displayName": "Built-In Node", "executors": executors,
        "icon": "symbol-computer", "iconClassName": "symbol-computer",
        "idle": runs.is_empty(), "jnlpAgent": false, "launchSupported": true,
        "loadStatistics": {"_class": "hudson.model.Label$1"},
        "manualLaunchAllowed": true, "monitorData": {}, "numExecutors": EXECUTORS,
        "offline": false, "offlineCause": null, "offlineCauseReason": "",
        "oneOffExecutors": [], "temporarilyOffline": false,
    })
}

/// `GET /computer/api/json`: the nodes (only the built-in one).
async fn computers(State(world): Shared, Query(q): Query<BTreeMap<String, String>>) -> Response {
    let node = built_in_node(&world, depth(&q));
    let busy = running(&world).len();
    Json(json!({
        "_class": "hudson.model.ComputerSet", "busyExecutors": busy,
        "computer": [node], "displayName": "Nodes",
        "totalExecutors": EXECUTORS.max(busy),
    }))
    .into_response()
}

/// `GET /computer/NAME/api/json`: `(built-in)`, or `(master)` as older clients call it.
async fn computer(
    State(world): Shared,
    Path(node): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    if !matches!(node.as_str(), "(built-in)" | "(master)") {
        return not_found().await;
    }
    // `?depth=N` counts from the node here, one level deeper than from the list.
    Json(built_in_node(&world, depth(&q) + 1)).into_response()
}

/// `GET /queue/api/json`: items waiting for an executor.
async fn queue(State(world): Shared) -> Response {
    let items: Vec<Value> = world
        .ci
        .queue_items()
        .into_iter()
        .filter(|(item, run)| !item.cancelled && run.status == Status::Queued)
        .map(|(item, run)| {
            let params: String = run
                .inputs
                .iter()
                .map(|(k, v)| format!("\n{k}={v}"))
                .collect();
            json!({"_class": "hudson.model.Queue$WaitingItem",
                "actions": [{"_class": "hudson.model.CauseAction", "causes": [{
                    "_class": "hudson.model.Cause$UserIdCause",
                    "shortDescription": format!("Started by user {}", world.users.jenkins_user()),
                    "userId": world.users.jenkins_user(), "userName": world.users.jenkins_user()}]}],
                "blocked": false, "buildable": false, "id": item.id,
                "inQueueSince": item.in_queue_since.timestamp_millis(), "params": params,
                "stuck": false,
                "task": {"_class": "org.jenkinsci.plugins.workflow.job.WorkflowJob",
                    "name": item.job, "url": format!("{}/job/{}/", base(&world), item.job),
                    "color": "blue"},
                "url": format!("queue/item/{}/", item.id),
                "why": quiet_period(&world, &run),
                "timestamp": item.in_queue_since.timestamp_millis()
                    + world.clock.wall(super::ci::queue_time(&run.origin)).as_millis() as i64})
        })
        .collect();
    Json(json!({"_class": "hudson.model.Queue", "discoverableItems": [], "items": items}))
        .into_response()
}

/// `GET /job/NAME/`: the job's page.
async fn job_page(State(world): Shared, Path(name): Path<String>) -> Response {
    if find_job(&world, &name).is_none() {
        return not_found().await;
    }
    let builds: String = builds_of(&world, &name)
        .iter()
        .map(|r| format!("<li><a href=\"{0}/\">#{0}</a></li>", r.number))
        .collect();
    let n = escape(&name);
    html(
        StatusCode::OK,
        &format!("{n} [Jenkins]"),
        &format!("<h1>{n}</h1><ul id=\"buildHistory\">{builds}</ul>"),
    )
}

/// `GET /job/NAME/N/`: the build's page (where `stop` redirects).
async fn build_page(State(world): Shared, Path((job, number)): Path<(String, String)>) -> Response {
    let Some(r) = find_build(&world, &job, &number) else {
        return not_found().await;
    };
    let result = match jenkins_result(&r) {
        Value::String(s) => s,
        _ => "IN PROGRESS".to_string(),
    };
    let j = escape(&job);
    html(
        StatusCode::OK,
        &format!("{j} #{} [Jenkins]", r.number),
        &format!(
            "<h1>Build #{} ({result})</h1><a href=\"consoleText\">Console Output</a>",
            r.number
        ),
    )
}

/// Pipeline Stage View status of a stage (a step of the build's job).
fn stage_status(step: &super::ci::Step) -> &'static str {
    match (step.status, step.conclusion) {
        (Status::InProgress, _) => "IN_PROGRESS",
        (Status::Completed, Some("success")) => "SUCCESS",
        (Status::Completed, Some("failure")) => "FAILED",
        (Status::Completed, Some("cancelled")) => "ABORTED",
        _ => "NOT_EXECUTED",
    }
}

fn run_stage_status(r: &Run) -> &'static str {
    match (r.status, r.conclusion) {
        (Status::Queued, _) => "NOT_EXECUTED",
        (Status::InProgress, _) => "IN_PROGRESS",
        (Status::Completed, Some("success")) => "SUCCESS",
        (Status::Completed, Some("cancelled")) => "ABORTED",
        (Status::Completed, _) => "FAILED",
    }
}

fn span_millis(
    start: Option<chrono::DateTime<chrono::Utc>>,
    end: Option<chrono::DateTime<chrono::Utc>>,
) -> i64 {
    // From whole milliseconds, so that start + duration is the end to the millisecond.
    let ms = |t: chrono::DateTime<chrono::Utc>| t.timestamp_millis();
    match (start, end) {
        (Some(a), Some(b)) => (ms(b) - ms(a)).max(0),
        (Some(a), None) => (ms(chrono::Utc::now()) - ms(a)).max(0),
        _ => 0,
    }
}

/// `GET /job/NAME/N/wfapi/describe`: the build's stages as the Pipeline Stage View plugin
/// answers. Stages not reached yet are absent while the build runs; after it ends, the
/// ones it never reached are `NOT_EXECUTED`.
async fn describe(State(world): Shared, Path((job, number)): Path<(String, String)>) -> Response {
    let Some(r) = find_build(&world, &job, &number) else {
        return not_found().await;
    };
    let root = format!("/jenkins/job/{job}/{}", r.number);
    let done = r.status == Status::Completed;
    let steps: Vec<&super::ci::Step> = r
        .jobs
        .iter()
        .flat_map(|j| j.steps.iter())
        .filter(|s| !matches!(s.name.as_str(), "Set up job" | "Complete job"))
        .collect();
    let stages: Vec<Value> = steps
        .iter()
        .enumerate()
        .filter(|(_, s)| done || s.started_at.is_some())
        .map(|(i, s)| {
            let id = 6 + 7 * i;
            let end = if s.status == Status::Completed {
                s.completed_at.or(s.started_at)
            } else {
                None
            };
            json!({
                "_links": {"self": {"href": format!("{root}/execution/node/{id}/wfapi/describe")}},
                "id": id.to_string(), "name": s.name, "execNode": "",
                "status": stage_status(s),
                "startTimeMillis": s.started_at.map(|t| t.timestamp_millis()).unwrap_or(0),
                "durationMillis": span_millis(s.started_at, end),
                "pauseDurationMillis": 0,
            })
        })
        .collect();
    let start = r.started_at;
    let end = done.then_some(r.updated_at);
    Json(json!({
        "_links": {"self": {"href": format!("{root}/wfapi/describe")},
            "artifacts": {"href": format!("{root}/wfapi/artifacts")}},
        "id": r.number.to_string(), "name": format!("#{}", r.number),
        "status": run_stage_status(&r),
        "startTimeMillis": start.map(|t| t.timestamp_millis()).unwrap_or(0),
        "endTimeMillis": end.map(|t| t.timestamp_millis()).unwrap_or(0),
        "durationMillis": span_millis(start, end),
        "queueDurationMillis": span_millis(Some(r.created_at), start.or(Some(chrono::Utc::now()))),
        "pauseDurationMillis": 0,
        "stages": stages,
    }))
    .into_response()
}

/// `POST /queue/cancelItem?id=N`: 204 when the item was still waiting and is cancelled, 404
/// when no such item waits (it became a build, or never was), as Jenkins' `doCancelItem`.
async fn cancel_item(State(world): Shared, Query(q): Query<BTreeMap<String, String>>) -> Response {
    let id = q.get("id").and_then(|i| i.parse::<u64>().ok());
    let waiting = id
        .and_then(|id| world.ci.queue_item(id))
        .filter(|(item, run)| !item.cancelled && run.status == Status::Queued);
    let Some((_, run)) = waiting else {
        let shown = q.get("id").map(|s| escape(s)).unwrap_or_default();
        return text(
            StatusCode::NOT_FOUND,
            format!("Provided id ({shown}) not found"),
        );
    };
    match world.ci.cancel(run.id) {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(_) => text(
            StatusCode::CONFLICT,
            format!("Could not cancel run for id {}", id.unwrap_or_default()),
        ),
    }
}

/// Why a queue item waits: the rest of its quiet period, as Jenkins words it.
fn quiet_period(world: &World, run: &Run) -> String {
    let total = world.clock.wall(super::ci::queue_time(&run.origin));
    let waited = (chrono::Utc::now() - run.created_at)
        .to_std()
        .unwrap_or_default();
    let left = total.saturating_sub(waited).as_secs_f64();
    format!("In the quiet period. Expires in {left:.1} sec")
}
