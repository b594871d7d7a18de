//! The two estates modelled on ESTATES.md's Jenkins web app (`wanderlust`) and social
//! platform (`social-platform`): each starts in-process and has its apps, branches and CI
//! as the sandbox's own APIs, kube-rs and its Git repository show them; the Jenkins "CI" job
//! hands its tags to `GitOps-Pipeline`, which rewrites the manifests; and the controller
//! applies sync waves in order, each wave healthy before the next (watched with kube-rs).

mod common;

use common::{Api, sandbox_with, wait_for, wait_for_within};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api as KubeApi, DeleteParams, ListParams, WatchEvent, WatchParams};
use serde_json::{Value, json};
use shipdeck::sandbox::SandboxOptions;
use shipdeck::sandbox::auth::Role;
use std::collections::BTreeMap;
use std::time::Duration;

async fn start(estate: &str) -> shipdeck::sandbox::Sandbox {
    sandbox_with(SandboxOptions {
        estate: estate.into(),
        time_scale: 0.01,
        ..Default::default()
    })
    .await
}

fn names(list: &Value) -> Vec<String> {
    let mut out: Vec<String> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["metadata"]["name"].as_str().map(str::to_string))
        .collect();
    out.sort();
    out
}

async fn jenkins_json(sb: &shipdeck::sandbox::Sandbox, path: &str) -> Value {
    let r = common::http()
        .get(format!("{}/jenkins{path}", sb.url))
        .basic_auth(
            sb.world.users.jenkins_user(),
            Some(sb.world.users.jenkins_token()),
        )
        .send()
        .await
        .expect("jenkins answers");
    assert_eq!(r.status(), 200, "{path}");
    r.json().await.expect("jenkins json")
}

async fn github_json(sb: &shipdeck::sandbox::Sandbox, path: &str) -> Value {
    let r = common::http()
        .get(format!("{}/github{path}", sb.url))
        .bearer_auth(sb.world.users.github_token())
        .header("User-Agent", "estates-test")
        .send()
        .await
        .expect("github answers");
    assert_eq!(r.status(), 200, "{path}");
    r.json().await.expect("github json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wanderlust_ci_job_triggers_gitops_pipeline_which_rewrites_the_manifests() {
    let sb = start("wanderlust").await;
    let api = Api::new(&sb, Role::Admin);
    let (status, apps) = api.get("/api/v1/applications").await;
    assert_eq!(status, 200);
    assert_eq!(names(&apps), ["wanderlust"]);
    let app = &apps["items"][0];
    assert_eq!(app["spec"]["source"]["path"], "kubernetes");
    assert_eq!(app["spec"]["source"]["targetRevision"], "main");
    assert_eq!(
        app["spec"]["syncPolicy"]["automated"],
        json!({"prune": true, "selfHeal": true})
    );
    assert!(
        app["spec"]["syncPolicy"]["syncOptions"]
            .as_array()
            .is_some_and(|o| o.contains(&json!("CreateNamespace=true")))
    );
    // kube-rs: the two Deployments run in namespace wanderlust.
    let kube = common::kube_default(&sb).await;
    let deps: KubeApi<Deployment> = KubeApi::namespaced(kube.clone(), "wanderlust");
    let mut live: Vec<String> = deps
        .list(&ListParams::default())
        .await
        .expect("list deployments")
        .items
        .into_iter()
        .filter_map(|d| d.metadata.name)
        .collect();
    live.sort();
    assert_eq!(live, ["wanderlust-backend", "wanderlust-frontend"]);
    // Git holds the files the pipeline rewrites.
    for f in ["kubernetes/backend.yaml", "kubernetes/frontend.yaml"] {
        let text = sb.world.repo.read_file("main", f).expect("git reads");
        assert!(text.is_some_and(|t| t.contains("-beta:v1.")), "{f}");
    }

    // Jenkins: the CI job and the parameterized GitOps-Pipeline job.
    let root = jenkins_json(&sb, "/api/json").await;
    let mut jobs: Vec<String> = root["jobs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|j| j["name"].as_str().map(str::to_string))
        .collect();
    jobs.sort();
    assert_eq!(jobs, ["CI", "GitOps-Pipeline"]);
    let pipeline = jenkins_json(&sb, "/job/GitOps-Pipeline/api/json").await;
    let params: Vec<&str> = pipeline["property"][0]["parameterDefinitions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(params, ["FRONTEND_DOCKER_TAG", "BACKEND_DOCKER_TAG"]);

    // Trigger CI with a crumb, as Jenkins clients do.
    let http = common::http();
    let (user, token) = (
        sb.world.users.jenkins_user(),
        sb.world.users.jenkins_token(),
    );
    let crumb_resp = http
        .get(format!("{}/jenkins/crumbIssuer/api/json", sb.url))
        .basic_auth(&user, Some(&token))
        .send()
        .await
        .expect("crumb");
    let cookie = crumb_resp.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .split(';')
        .next()
        .unwrap_or_default()
        .to_string();
    let crumb: Value = crumb_resp.json().await.expect("crumb json");
    let r = http
        .post(format!("{}/jenkins/job/CI/buildWithParameters", sb.url))
        .basic_auth(&user, Some(&token))
        .header("Jenkins-Crumb", crumb["crumb"].as_str().unwrap_or_default())
        .header("Cookie", cookie)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("BRANCH=main")
        .send()
        .await
        .expect("trigger CI");
    assert_eq!(r.status(), 201);

    let ci = wait_for("CI #1 finishes", || async {
        let b = jenkins_json(&sb, "/job/CI/api/json").await;
        let last = b["lastCompletedBuild"]["number"].as_u64()?;
        (last >= 1).then_some(())?;
        let build = jenkins_json(&sb, "/job/CI/1/api/json").await;
        (build["building"] == false).then_some(build)
    })
    .await;
    assert_eq!(ci["result"], "SUCCESS", "{ci}");
    let downstream = wait_for("GitOps-Pipeline #1 finishes", || async {
        let b = jenkins_json(&sb, "/job/GitOps-Pipeline/api/json").await;
        b["lastCompletedBuild"]["number"].as_u64()?;
        let build = jenkins_json(&sb, "/job/GitOps-Pipeline/1/api/json").await;
        (build["building"] == false).then_some(build)
    })
    .await;
    assert_eq!(downstream["result"], "SUCCESS", "{downstream}");
    let given: BTreeMap<String, String> = downstream["actions"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|a| a["parameters"].as_array().cloned().unwrap_or_default())
        .filter_map(|p| Some((p["name"].as_str()?.into(), p["value"].as_str()?.into())))
        .collect();
    let front = given
        .get("FRONTEND_DOCKER_TAG")
        .filter(|t| !t.is_empty())
        .cloned()
        .unwrap_or_else(|| panic!("no FRONTEND_DOCKER_TAG in {downstream}"));
    let back = given
        .get("BACKEND_DOCKER_TAG")
        .filter(|t| !t.is_empty())
        .cloned()
        .unwrap_or_else(|| panic!("no BACKEND_DOCKER_TAG in {downstream}"));
    // Git on main now names those tags, and the self-healing app rolls them out.
    let frontend = sb
        .world
        .repo
        .read_file("main", "kubernetes/frontend.yaml")
        .expect("git")
        .unwrap_or_default();
    assert!(
        frontend.contains(&format!("wanderlust-frontend-beta:{front}")),
        "{frontend}"
    );
    let backend = sb
        .world
        .repo
        .read_file("main", "kubernetes/backend.yaml")
        .expect("git")
        .unwrap_or_default();
    assert!(
        backend.contains(&format!("wanderlust-backend-beta:{back}")),
        "{backend}"
    );
    wait_for_within(
        "the new backend image is live",
        Duration::from_secs(60),
        || {
            let deps = deps.clone();
            let back = back.clone();
            async move {
                let d = deps.get("wanderlust-backend").await.ok()?;
                let image = d.spec.template.spec?.containers.first()?.image.clone()?;
                image.ends_with(&format!(":{back}")).then_some(())
            }
        },
    )
    .await;
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn social_platform_has_its_waves_branches_and_manual_workflows() {
    let sb = start("social-platform").await;
    let api = Api::new(&sb, Role::Admin);
    let (status, apps) = api.get("/api/v1/applications").await;
    assert_eq!(status, 200);
    let all = names(&apps);
    let wave = |name: &str| -> Option<i64> {
        apps["items"]
            .as_array()?
            .iter()
            .find(|a| a["metadata"]["name"] == name)?["metadata"]["annotations"]
            ["argocd.argoproj.io/sync-wave"]
            .as_str()?
            .parse()
            .ok()
    };
    for (name, w) in [
        ("namespaces-rbac", -2),
        ("external-secrets", -2),
        ("cert-manager", -2),
        ("ingress-nginx", -2),
        ("postgres", -1),
        ("redis", 0),
        ("qdrant", 0),
        ("linkerd", 0),
        ("prometheus", 1),
        ("loki", 1),
        ("jaeger", 1),
        ("user-svc-dev", 2),
        ("chat-svc-staging", 2),
        ("search-svc-production", 2),
        ("link-app-dev", 3),
        ("link-app-staging", 3),
        ("link-frontend", 3),
        ("link-app-production", 3),
        ("api-gateway-production", 4),
    ] {
        assert!(all.contains(&name.to_string()), "{name} in {all:?}");
        assert_eq!(wave(name), Some(w), "{name}");
    }
    assert!(all.contains(&"link-platform".to_string()));
    let app = |name: &str| {
        apps["items"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["metadata"]["name"] == name))
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(
        app("link-app-dev")["spec"]["source"]["targetRevision"],
        "develop"
    );
    assert_eq!(
        app("link-app-staging")["spec"]["source"]["targetRevision"],
        "develop"
    );
    let prod = app("link-app-production");
    assert_eq!(prod["spec"]["source"]["targetRevision"], "main");
    assert!(
        prod["spec"]["syncPolicy"]["automated"].is_null(),
        "production waits for approval: {prod}"
    );
    // kube-rs: the infrastructure runs.
    let kube = common::kube_default(&sb).await;
    for (ns, name) in [
        ("databases", "pgbouncer"),
        ("qdrant", "qdrant-backup"),
        ("monitoring", "jaeger"),
        ("link-production", "api-gateway"),
    ] {
        let deps: KubeApi<Deployment> = KubeApi::namespaced(kube.clone(), ns);
        deps.get(name)
            .await
            .unwrap_or_else(|e| panic!("{ns}/{name}: {e}"));
    }
    // GitHub: branches and the manual workflows with their inputs (read from Git).
    let owner = sb.world.estate.github.owner.clone();
    let repo = sb.world.estate.github.repo.clone();
    let branches = github_json(&sb, &format!("/repos/{owner}/{repo}/branches")).await;
    let mut bnames: Vec<&str> = branches
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|b| b["name"].as_str())
        .collect();
    bnames.sort();
    assert_eq!(bnames, ["develop", "main"]);
    let workflows = github_json(&sb, &format!("/repos/{owner}/{repo}/actions/workflows")).await;
    let paths: Vec<&str> = workflows["workflows"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|w| w["path"].as_str())
        .collect();
    for (file, inputs) in [
        ("gitops-sync.yml", ["sync_target", "force_sync"]),
        ("deployment-verification.yml", ["environment", "test_type"]),
    ] {
        let path = format!(".github/workflows/{file}");
        assert!(paths.contains(&path.as_str()), "{path} in {paths:?}");
        let text = sb
            .world
            .repo
            .read_file("main", &path)
            .expect("git")
            .unwrap_or_default();
        let parsed: Value = serde_saphyr::from_str(&text).expect("workflow yaml");
        for i in inputs {
            assert!(
                parsed["on"]["workflow_dispatch"]["inputs"][i].is_object(),
                "{file}: {i}\n{text}"
            );
        }
    }
    assert!(paths.contains(&".github/workflows/ci-cd-pipeline.yml"));
    sb.stop().await;
}

/// Whether a Deployment as a watch shows it is healthy, judged from its status alone (an
/// oracle independent of the sandbox's health code).
fn healthy(d: &Deployment) -> bool {
    let want = d.spec.replicas.unwrap_or(1);
    let generation = d.metadata.generation.unwrap_or(0);
    d.status.as_ref().is_some_and(|s| {
        s.observed_generation.unwrap_or(0) >= generation
            && s.updated_replicas.unwrap_or(0) == want
            && s.available_replicas.unwrap_or(0) == want
            && s.replicas.unwrap_or(0) == want
    })
}

fn wave_of(d: &Deployment) -> i64 {
    d.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("argocd.argoproj.io/sync-wave"))
        .and_then(|w| w.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_creates_no_wave_before_the_earlier_waves_are_healthy() {
    let sb = start("social-platform").await;
    let kube = common::kube_default(&sb).await;
    let deps: KubeApi<Deployment> = KubeApi::namespaced(kube.clone(), "databases");
    let list = deps.list(&ListParams::default()).await.expect("list");
    let rv = list.metadata.resource_version.clone().unwrap_or_default();
    let mut expected: Vec<(String, i64)> = list
        .items
        .iter()
        .filter_map(|d| Some((d.metadata.name.clone()?, wave_of(d))))
        .collect();
    expected.sort();
    assert_eq!(
        expected,
        [
            ("pgbouncer".to_string(), 2),
            ("postgres-cluster".to_string(), 1),
            ("postgres-operator".to_string(), 0)
        ]
    );
    // Watch from before the deletions, so every event of the re-creation is seen.
    let mut stream = deps
        .watch(&WatchParams::default().timeout(290), &rv)
        .await
        .expect("watch")
        .boxed();
    for (name, _) in &expected {
        deps.delete(name, &DeleteParams::default())
            .await
            .expect("delete");
    }
    let api = Api::new(&sb, Role::Admin);
    // The app may already be syncing on its own (it is automated); either way a sync runs.
    wait_for("a sync of postgres starts", || async {
        let (status, body) = api
            .post("/api/v1/applications/postgres/sync", json!({}))
            .await;
        let (_, app) = api.get("/api/v1/applications/postgres").await;
        (status == 200 || app["status"]["operationState"]["phase"] == "Running")
            .then_some(())
            .or_else(|| {
                let _ = body;
                None
            })
    })
    .await;

    // Follow the watch: at each creation, every earlier wave must be healthy already.
    let mut state: BTreeMap<String, (i64, bool)> = BTreeMap::new();
    let mut created: Vec<String> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while created.len() < 3 || !state.values().all(|(_, h)| *h) {
        let ev = tokio::time::timeout_at(deadline, stream.next())
            .await
            .unwrap_or_else(|_| panic!("timed out; created {created:?}, state {state:?}"))
            .expect("watch continues")
            .expect("watch event");
        match ev {
            WatchEvent::Added(d) => {
                let name = d.metadata.name.clone().unwrap_or_default();
                let wave = wave_of(&d);
                for (other, (w, h)) in &state {
                    assert!(
                        *w >= wave || *h,
                        "{name} (wave {wave}) created while {other} (wave {w}) was not healthy"
                    );
                }
                for (other, w) in &expected {
                    if *w < wave {
                        assert!(
                            state.get(other).is_some_and(|(_, h)| *h),
                            "{name} (wave {wave}) created before {other} (wave {w}) was healthy"
                        );
                    }
                }
                created.push(name.clone());
                state.insert(name, (wave, healthy(&d)));
            }
            WatchEvent::Modified(d) => {
                let name = d.metadata.name.clone().unwrap_or_default();
                if created.contains(&name) {
                    state.insert(name, (wave_of(&d), healthy(&d)));
                }
            }
            WatchEvent::Deleted(d) => {
                let name = d.metadata.name.clone().unwrap_or_default();
                state.remove(&name);
            }
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(e) => panic!("watch error: {e:?}"),
        }
    }
    assert_eq!(
        created,
        ["postgres-operator", "postgres-cluster", "pgbouncer"],
        "created in wave order"
    );
    let app = wait_for("the sync succeeds", || async {
        let (_, app) = api.get("/api/v1/applications/postgres").await;
        (app["status"]["operationState"]["phase"] == "Succeeded").then_some(app)
    })
    .await;
    let waves: Vec<(String, i64)> = app["status"]["operationState"]["syncResult"]["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["kind"] == "Deployment")
        .map(|r| {
            (
                r["name"].as_str().unwrap_or("").to_string(),
                r["syncWave"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        waves,
        [
            ("postgres-operator".to_string(), 0),
            ("postgres-cluster".to_string(), 1),
            ("pgbouncer".to_string(), 2)
        ]
    );
    sb.stop().await;
}
