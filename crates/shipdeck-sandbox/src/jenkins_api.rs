//! A Jenkins subset under `/jenkins`: the crumb issuer (CSRF), jobs with their parameter
//! definitions, `buildWithParameters` answering 201 with a queue item, queue items that turn
//! into builds, build status, stop and console text. Builds run in `ci.rs`; this file speaks
//! Jenkins' JSON and basic auth (user + API token).

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

type Shared = State<Arc<World>>;

pub fn router(world: Arc<World>) -> axum::Router {
    axum::Router::new()
        .route("/jenkins/api/json", get(root))
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
            return r;
        }
        Some(c) => {
            let (user, token) = c.split_once(':').unwrap_or((c.as_str(), ""));
            if user != world.users.jenkins_user() || token != world.users.jenkins_token() {
                return text(
                    StatusCode::UNAUTHORIZED,
                    format!("Invalid password/token for user: {user}"),
                );
            }
            if req.method() == axum::http::Method::POST && !crumb_ok(&world, req.headers()) {
                return text(
                    StatusCode::FORBIDDEN,
                    "No valid crumb was included in the request",
                );
            }
            next.run(req).await
        }
    };
    resp.headers_mut()
        .insert("x-jenkins", HeaderValue::from_static("2.479.3"));
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
        "numExecutors": 2, "useCrumbs": true, "useSecurity": true, "jobs": jobs,
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
            "why": "In the quiet period. Expires in 0.5 sec", "inQueueSince": since,
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
