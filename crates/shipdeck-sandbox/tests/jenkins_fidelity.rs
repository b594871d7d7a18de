//! The sandbox's Jenkins API as python-jenkins calls it: whoami, the version header, the
//! queue, `build_job` with parameters, running builds (executors of the built-in node),
//! `stop_build` (whose redirect must land on a page that exists), build info and the
//! Pipeline Stage View's `wfapi/describe`; then the same describe over raw HTTP. What the
//! client saw is checked against Git and the sandbox's own record of the builds.

mod support;

use serde_json::Value;
use shipdeck_sandbox::ci::Status;
use shipdeck_sandbox::{Sandbox, SandboxOptions};

const JOB: &str = "GitOps-Pipeline";

async fn sandbox(time_scale: f64) -> Sandbox {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Sandbox::start(SandboxOptions {
        time_scale,
        ..Default::default()
    })
    .await
    .expect("sandbox starts")
}

/// The stages a build's steps make (the runner's own first and last steps are not stages).
fn stage_names(sb: &Sandbox, number: u64) -> Vec<String> {
    let run = sb
        .world
        .ci
        .build(JOB, number)
        .expect("build in the sandbox");
    run.jobs
        .iter()
        .flat_map(|j| j.steps.iter())
        .map(|s| s.name.clone())
        .filter(|n| n != "Set up job" && n != "Complete job")
        .collect()
}

fn names_statuses(describe: &Value) -> Vec<(String, String)> {
    describe["stages"]
        .as_array()
        .expect("stages")
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap_or("").to_string(),
                s["status"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_jenkins_sees_jenkins() {
    let Some(python) = support::python() else {
        return;
    };
    // Slow enough that a build is seen running and stopped before it commits.
    let sb = sandbox(1.0).await;
    let tag_keep = "sha-ke3p001";
    let tag_stop = "sha-st0p001";
    let out = support::run_client(
        &python,
        "jenkins_client.py",
        &[
            ("JENKINS_URL", format!("{}/jenkins", sb.url)),
            ("JENKINS_USER", sb.world.users.jenkins_user()),
            ("JENKINS_TOKEN", sb.world.users.jenkins_token()),
            ("JOB", JOB.to_string()),
            ("TAG_KEEP", tag_keep.to_string()),
            ("TAG_STOP", tag_stop.to_string()),
        ],
    )
    .await;

    assert_eq!(
        out["whoami"]["id"],
        Value::from(sb.world.users.jenkins_user())
    );
    assert_eq!(out["version"], shipdeck_sandbox::jenkins_api::VERSION);

    // The queue held both items, for the job, waiting.
    let queued: Vec<u64> = serde_json::from_value(out["queued"].clone()).unwrap();
    let in_queue: Vec<u64> = out["queue"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_u64().unwrap())
        .collect();
    assert!(!in_queue.is_empty() && in_queue.iter().all(|i| queued.contains(i)));
    assert!(
        out["queue"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["task"] == JOB && i["why"].is_string())
    );
    assert_eq!(out["queue_after"], serde_json::json!([]));

    // Running builds: both, on the built-in node, on different executors.
    let numbers: Vec<u64> = serde_json::from_value(out["numbers"].clone()).unwrap();
    let (stop_n, keep_n) = (numbers[0], numbers[1]);
    let running = out["running"].as_array().unwrap();
    let mut executors: Vec<u64> = running
        .iter()
        .filter(|b| b["name"] == JOB)
        .map(|b| b["executor"].as_u64().unwrap())
        .collect();
    executors.dedup();
    assert_eq!(executors.len(), 2, "{running:?}");
    assert!(running.iter().all(|b| b["node"] == "(master)"));
    assert_eq!(out["running_after"], serde_json::json!([]));

    // The stopped build: aborted, by the sandbox's own record too, and it never committed.
    assert_eq!(out["stopped"]["result"], "ABORTED");
    let stopped = sb.world.ci.build(JOB, stop_n).expect("stopped build");
    assert_eq!(stopped.status, Status::Completed);
    assert_eq!(stopped.conclusion, Some("cancelled"));
    assert!(stopped.commits.is_empty());
    let repo = sb.world.repo.path().to_path_buf();
    let grep = |tag: &str| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(&repo)
            .args(["grep", "-q", tag, "develop"])
            .status()
            .expect("git grep")
            .success()
    };
    assert!(!grep(tag_stop), "the stopped build's tag is not in Git");
    // The other build: success, and its tag is in the dev manifests on develop.
    assert_eq!(out["kept"]["result"], "SUCCESS");
    assert!(grep(tag_keep), "the build's tag is in Git");

    // Stages while running: only those reached, the last in progress.
    let during = names_statuses(&out["stages_running"]);
    assert_eq!(out["stages_running"]["status"], "IN_PROGRESS");
    assert!(!during.is_empty());
    assert!(
        during[..during.len() - 1]
            .iter()
            .all(|(_, s)| s == "SUCCESS")
    );
    assert_eq!(during.last().unwrap().1, "IN_PROGRESS");
    // After: every stage, by the build's steps.
    let kept = names_statuses(&out["stages_kept"]);
    assert_eq!(out["stages_kept"]["status"], "SUCCESS");
    assert_eq!(
        kept.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
        stage_names(&sb, keep_n)
    );
    assert!(kept.iter().all(|(_, s)| s == "SUCCESS"));
    let aborted = names_statuses(&out["stages_stopped"]);
    assert_eq!(out["stages_stopped"]["status"], "ABORTED");
    assert_eq!(
        aborted.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
        stage_names(&sb, stop_n)
    );
    assert!(aborted.iter().any(|(_, s)| s == "ABORTED"), "{aborted:?}");
    assert_eq!(aborted.last().unwrap().1, "NOT_EXECUTED");
    assert_eq!(out["missing_build"], "JenkinsException");

    // Everyday reads: the jobs, a job, a build's console.
    let defined: Vec<&str> = sb
        .world
        .estate
        .jenkins
        .iter()
        .map(|j| j.name.as_str())
        .collect();
    assert_eq!(out["jobs"], serde_json::json!(defined));
    assert_eq!(out["job_info"]["name"], JOB);
    assert_eq!(out["job_info"]["buildable"], true);
    let console = out["console"].as_str().unwrap();
    assert!(console.contains("Finished: SUCCESS"), "{console}");
    assert!(console.contains(tag_keep), "{console}");

    // The build cancelled in the queue: a cancelled item that never became a build.
    let item = &out["cancelled_item"];
    assert_eq!(item["cancelled"], true, "{item}");
    assert!(item["executable"].is_null());
    let cancelled = sb
        .world
        .ci
        .queue_item(item["id"].as_u64().unwrap())
        .expect("queue item in the sandbox")
        .1;
    assert_eq!(cancelled.conclusion, Some("cancelled"));
    assert!(cancelled.started_at.is_none());
}

/// `wfapi/describe` over raw HTTP: the Stage View's fields and durations, as the sandbox
/// recorded the build; and Jenkins' headers on every answer, errors included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wfapi_describe_over_http() {
    let sb = sandbox(0.01).await;
    let http = reqwest::Client::new();
    let base = format!("{}/jenkins", sb.url);
    let (user, token) = (
        sb.world.users.jenkins_user(),
        sb.world.users.jenkins_token(),
    );

    // Unauthenticated and unknown paths still name Jenkins.
    let r = http.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.headers()["x-jenkins"],
        shipdeck_sandbox::jenkins_api::VERSION
    );
    let r = http
        .get(format!("{base}/no/such/page"))
        .basic_auth(&user, Some(&token))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.headers().contains_key("x-jenkins"));

    // A build, through the crumb and buildWithParameters.
    let crumb: Value = http
        .get(format!("{base}/crumbIssuer/api/json"))
        .basic_auth(&user, Some(&token))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r = http
        .post(format!(
            "{base}/job/{JOB}/buildWithParameters?ENVIRONMENT=staging&CART_DOCKER_TAG=sha-wfapi01"
        ))
        .basic_auth(&user, Some(&token))
        .header("Jenkins-Crumb", crumb["crumb"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let number = support::wait_for("the build completes", || async {
        sb.world
            .ci
            .runs()
            .into_iter()
            .find(|r| r.inputs.get("CART_DOCKER_TAG").map(String::as_str) == Some("sha-wfapi01"))
            .filter(|r| r.status == Status::Completed)
            .map(|r| r.number)
    })
    .await;
    for path in ["wfapi/describe", "wfapi/describe/"] {
        let r = http
            .get(format!("{base}/job/{JOB}/{number}/{path}"))
            .basic_auth(&user, Some(&token))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let d: Value = r.json().await.unwrap();
        assert_eq!(d["id"], number.to_string());
        assert_eq!(d["name"], format!("#{number}"));
        assert_eq!(d["status"], "SUCCESS");
        let run = sb.world.ci.build(JOB, number).unwrap();
        let start = run.started_at.unwrap().timestamp_millis();
        assert_eq!(d["startTimeMillis"], start);
        assert_eq!(
            d["durationMillis"].as_i64().unwrap(),
            run.updated_at.timestamp_millis() - start
        );
        let steps: Vec<_> = run.jobs[0]
            .steps
            .iter()
            .filter(|s| s.name != "Set up job" && s.name != "Complete job")
            .collect();
        let stages = d["stages"].as_array().unwrap();
        assert_eq!(stages.len(), steps.len());
        for (stage, step) in stages.iter().zip(steps) {
            assert_eq!(stage["name"], step.name.as_str());
            assert_eq!(stage["status"], "SUCCESS");
            let (a, b) = (step.started_at.unwrap(), step.completed_at.unwrap());
            assert_eq!(stage["startTimeMillis"], a.timestamp_millis());
            assert_eq!(
                stage["durationMillis"],
                b.timestamp_millis() - a.timestamp_millis()
            );
            assert!(stage["id"].is_string() && stage["_links"]["self"]["href"].is_string());
        }
    }
    let r = http
        .get(format!("{base}/job/{JOB}/999/wfapi/describe"))
        .basic_auth(&user, Some(&token))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}
