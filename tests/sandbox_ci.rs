//! Simulated CI through the GitHub Actions and Jenkins APIs, with reqwest over real HTTP:
//! dispatch answering per API version, a build that runs its jobs and steps and commits the
//! new image tag into Git (so the prod app has a pending change), a failing build, cancel,
//! and Jenkins' crumb + buildWithParameters + queue item + build.

use serde_json::{Value, json};
use shipdeck::sandbox::store::APPLICATIONS;
use shipdeck::sandbox::{ARGOCD_NAMESPACE, IN_CLUSTER, Sandbox};

mod common;
use common::wait_for;

async fn sandbox() -> Sandbox {
    common::sandbox_scaled(0.01).await
}

struct Gh {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Gh {
    fn new(sb: &Sandbox) -> Gh {
        let gh = &sb.world.estate.github;
        Gh {
            base: format!("{}/github/repos/{}/{}/actions", sb.url, gh.owner, gh.repo),
            token: sb.world.users.github_token(),
            http: reqwest::Client::new(),
        }
    }
    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header("Accept", "application/vnd.github+json")
    }
    async fn get(&self, path: &str) -> Value {
        let r = self.req(reqwest::Method::GET, path).send().await.unwrap();
        assert_eq!(r.status(), 200, "GET {path}");
        r.json().await.unwrap()
    }
}

async fn dispatch(gh: &Gh, file: &str, body: Value) -> reqwest::Response {
    gh.req(
        reqwest::Method::POST,
        &format!("/workflows/{file}/dispatches"),
    )
    .header("X-GitHub-Api-Version", "2026-03-10")
    .json(&body)
    .send()
    .await
    .unwrap()
}

async fn completed(gh: &Gh, id: u64) -> Value {
    wait_for("run completes", || async {
        let run = gh.get(&format!("/runs/{id}")).await;
        (run["status"] == "completed").then_some(run)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn build_dispatch_runs_and_commits_the_new_tag() {
    let sb = sandbox().await;
    let gh = Gh::new(&sb);

    // Auth and rate-limit headers.
    let r = gh
        .http
        .get(format!("{}/workflows", gh.base))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("x-ratelimit-remaining"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["message"], "Bad credentials");

    // Workflows come from the repository's files.
    let wfs = gh.get("/workflows").await;
    let files: Vec<&str> = wfs["workflows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["path"].as_str().unwrap())
        .collect();
    assert!(files.contains(&".github/workflows/build.yml"), "{files:?}");

    // Invalid inputs answer 422.
    let bad = dispatch(
        &gh,
        "build.yml",
        json!({"ref": "develop", "inputs": {"service": "nope"}}),
    )
    .await;
    assert_eq!(bad.status(), 422);
    let bad = dispatch(&gh, "build.yml", json!({"ref": "no-such-branch"})).await;
    assert_eq!(bad.status(), 422);
    // The old API version answers 204 without details.
    let old = gh
        .req(
            reqwest::Method::POST,
            "/workflows/verify-environment.yml/dispatches",
        )
        .header("X-GitHub-Api-Version", "2022-11-28")
        .json(&json!({"ref": "main", "inputs": {"environment": "dev"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), 204);

    let prod_before = sb
        .world
        .store
        .get(IN_CLUSTER, APPLICATIONS, ARGOCD_NAMESPACE, "catalog-prod")
        .unwrap();
    let main_before = sb.world.repo.resolve("main").unwrap();
    let r = dispatch(
        &gh,
        "build.yml",
        json!({"ref": "develop", "inputs": {"service": "catalog"}}),
    )
    .await;
    let status = r.status();
    let details: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{details}");
    let id = details["workflow_run_id"].as_u64().expect("run id");
    assert!(
        details["html_url"]
            .as_str()
            .unwrap()
            .contains(&id.to_string())
    );

    let run = gh.get(&format!("/runs/{id}")).await;
    assert_eq!(run["event"], "workflow_dispatch");
    assert_eq!(run["head_branch"], "develop");
    assert_eq!(run["head_sha"].as_str().unwrap().len(), 40);
    // It is seen in progress at some point, with a job running.
    wait_for("in progress", || async {
        let jobs = gh.get(&format!("/runs/{id}/jobs")).await;
        jobs["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|j| j["status"] == "in_progress")
            .then_some(())
    })
    .await;
    let run = completed(&gh, id).await;
    assert_eq!(run["conclusion"], "success", "{run}");
    let jobs = gh.get(&format!("/runs/{id}/jobs")).await;
    let jobs = jobs["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 3);
    for j in jobs {
        assert_eq!(j["conclusion"], "success");
        let steps = j["steps"].as_array().unwrap();
        assert!(steps.len() >= 3);
        assert_eq!(steps[0]["name"], "Set up job");
        assert!(steps.iter().all(|s| s["conclusion"] == "success"));
    }
    // The bump landed in Git on main (prod) and develop (dev, staging).
    let main_after = sb.world.repo.resolve("main").unwrap();
    assert_ne!(main_before, main_after);
    let log = sb.world.repo.log(&main_before, &main_after).unwrap();
    assert!(
        log.iter().any(|(_, author, _, _)| author == "ci-bot"),
        "{log:?}"
    );

    // The listing shows it, filtered and paginated.
    let list = gh.get("/runs?event=workflow_dispatch&per_page=1").await;
    assert!(list["total_count"].as_u64().unwrap() >= 2);
    assert_eq!(list["workflow_runs"].as_array().unwrap().len(), 1);
    let r = gh
        .req(reqwest::Method::GET, "/runs?per_page=1")
        .send()
        .await
        .unwrap();
    assert!(
        r.headers()["link"]
            .to_str()
            .unwrap()
            .contains("rel=\"next\"")
    );

    // The prod app notices the new commit and waits for an operator: OutOfSync, not synced.
    assert_eq!(prod_before["spec"]["syncPolicy"]["automated"], Value::Null);
    wait_for("catalog-prod OutOfSync", || async {
        let app = sb
            .world
            .store
            .get(IN_CLUSTER, APPLICATIONS, ARGOCD_NAMESPACE, "catalog-prod")
            .unwrap();
        (app["status"]["sync"]["status"] == "OutOfSync").then_some(())
    })
    .await;
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_and_cancelled_runs() {
    let sb = sandbox().await;
    let gh = Gh::new(&sb);
    // notifications builds fail in the default estate.
    let r = dispatch(
        &gh,
        "build.yml",
        json!({"ref": "develop", "inputs": {"service": "notifications"}}),
    )
    .await;
    let id = r.json::<Value>().await.unwrap()["workflow_run_id"]
        .as_u64()
        .unwrap();
    let run = completed(&gh, id).await;
    assert_eq!(run["conclusion"], "failure");
    let jobs = gh.get(&format!("/runs/{id}/jobs")).await;
    let jobs = jobs["jobs"].as_array().unwrap();
    assert_eq!(jobs[0]["conclusion"], "failure");
    assert!(jobs[1..].iter().all(|j| j["conclusion"] == "skipped"));
    // Cancel of a completed run: 409.
    let r = gh
        .req(reqwest::Method::POST, &format!("/runs/{id}/cancel"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    // Re-run: 201, a second attempt.
    let r = gh
        .req(reqwest::Method::POST, &format!("/runs/{id}/rerun"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let run = gh.get(&format!("/runs/{id}")).await;
    assert_eq!(run["run_attempt"], 2);

    // A running deploy cancelled: 202, then cancelled.
    let r = dispatch(
        &gh,
        "deploy-service.yml",
        json!({"ref": "main", "inputs": {"service": "cart", "version": "sha-0000001", "environment": "dev"}}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let id = r.json::<Value>().await.unwrap()["workflow_run_id"]
        .as_u64()
        .unwrap();
    let r = gh
        .req(reqwest::Method::POST, &format!("/runs/{id}/cancel"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let run = completed(&gh, id).await;
    assert_eq!(run["conclusion"], "cancelled");
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jenkins_crumb_trigger_queue_and_build() {
    let sb = sandbox().await;
    let base = format!("{}/jenkins", sb.url);
    let user = sb.world.users.jenkins_user();
    let token = sb.world.users.jenkins_token();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let job = sb.world.estate.jenkins[0].name.clone();

    let r = http
        .get(format!("{base}/job/{job}/api/json"))
        .basic_auth(&user, Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let def: Value = http
        .get(format!("{base}/job/{job}/api/json"))
        .basic_auth(&user, Some(&token))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let params = def["property"][0]["parameterDefinitions"]
        .as_array()
        .unwrap();
    assert!(
        params
            .iter()
            .any(|p| p["type"] == "ChoiceParameterDefinition"
                && p["_class"] == "hudson.model.ChoiceParameterDefinition"
                && p["choices"].is_array())
    );
    assert!(
        params
            .iter()
            .all(|p| p["defaultParameterValue"]["name"] == p["name"])
    );

    // Without a crumb: 403.
    let r = http
        .post(format!(
            "{base}/job/{job}/buildWithParameters?ENVIRONMENT=dev"
        ))
        .basic_auth(&user, Some(&token))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let crumb_resp = http
        .get(format!("{base}/crumbIssuer/api/json"))
        .basic_auth(&user, Some(&token))
        .send()
        .await
        .unwrap();
    let cookie = crumb_resp.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let crumb: Value = crumb_resp.json().await.unwrap();
    assert_eq!(crumb["crumbRequestField"], "Jenkins-Crumb");
    let tag_param = params
        .iter()
        .find(|p| p["name"].as_str().unwrap().ends_with("_DOCKER_TAG"))
        .unwrap()["name"]
        .as_str()
        .unwrap()
        .to_string();
    let r = http
        .post(format!("{base}/job/{job}/buildWithParameters"))
        .basic_auth(&user, Some(&token))
        .header("Jenkins-Crumb", crumb["crumb"].as_str().unwrap())
        .header("Cookie", cookie)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!("ENVIRONMENT=dev&{tag_param}=sha-1234abc"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with(&format!("{base}/queue/item/")) && location.ends_with('/'));

    let executable = wait_for("queue item leaves the queue", || async {
        let item: Value = http
            .get(format!("{location}api/json"))
            .basic_auth(&user, Some(&token))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(item["cancelled"], false);
        item["executable"]
            .is_object()
            .then(|| item["executable"].clone())
    })
    .await;
    let url = executable["url"].as_str().unwrap().to_string();
    let build = wait_for("build finishes", || async {
        let b: Value = http
            .get(format!("{url}api/json"))
            .basic_auth(&user, Some(&token))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (b["building"] == false).then_some(b)
    })
    .await;
    assert_eq!(build["result"], "SUCCESS", "{build}");
    assert_eq!(build["number"], executable["number"]);
    assert!(build["timestamp"].as_i64().unwrap() > 0);
    sb.stop().await;
}
