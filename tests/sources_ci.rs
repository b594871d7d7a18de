//! Git, GitHub Actions and Jenkins against the in-process sandbox: commits between two
//! revisions of the sandbox repository through a bare mirror, workflow inputs read from the
//! workflow files, a GitHub dispatch returning its run id watched to completion, and a
//! Jenkins build through the queue to SUCCESS.

use shipdeck::model::BuildState;
use shipdeck::secrets::Secret;
use shipdeck::sources::git::GitMirrors;
use shipdeck::sources::github::{GithubClient, GithubOptions, parse_dispatch_inputs};
use shipdeck::sources::jenkins::{JenkinsClient, JenkinsOptions};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

mod common;
use common::sandbox as start;

#[tokio::test]
async fn git_commits_between_revisions_and_workflow_files() {
    let sb = start().await;
    let cache = tempfile::tempdir().unwrap();
    let mirrors = GitMirrors::new(cache.path());
    let url = sb.world.repo.url();
    let m = mirrors
        .mirror(&url, true)
        .await
        .expect("mirror the sandbox repo");
    let head = m.resolve("main").await.unwrap();
    assert_eq!(head, sb.world.repo.resolve("main").unwrap());
    let commits = m.commits_between("main~1", "main", None).await.unwrap();
    assert_eq!(commits.len(), 1);
    assert_eq!(commits[0].sha, head);
    assert!(!commits[0].author.is_empty() && !commits[0].subject.is_empty());

    let text = m
        .read_file("main", ".github/workflows/build.yml")
        .await
        .unwrap()
        .expect("build.yml on main");
    let inputs = parse_dispatch_inputs(&text)
        .unwrap()
        .expect("build.yml is dispatchable");
    let service = inputs
        .iter()
        .find(|i| i.name == "service")
        .expect("service input");
    assert!(!service.options.is_empty() || service.kind == "string");
    assert!(
        inputs
            .iter()
            .any(|i| i.name == "skip_tests" && i.kind == "boolean")
    );
}

#[tokio::test]
async fn github_dispatch_returns_the_run_and_it_completes() {
    let sb = start().await;
    let cache = tempfile::tempdir().unwrap();
    let gh = GithubClient::new(GithubOptions {
        api_url: Some(format!("{}/github", sb.url)),
        token: Some(Secret::new(sb.world.users.github_token())),
        timeout: None,
        git: Some(Arc::new(GitMirrors::new(cache.path()))),
    })
    .unwrap();
    let (owner, repo) = (
        sb.world.estate.github.owner.clone(),
        sb.world.estate.github.repo.clone(),
    );
    let url = sb.world.repo.url();
    let workflows = gh
        .workflows(&owner, &repo, "main", Some(&url))
        .await
        .expect("the sandbox serves the GitHub workflows API");
    let build = workflows
        .iter()
        .find(|w| w.file() == "build.yml")
        .expect("build.yml");
    let inputs = build
        .inputs
        .as_ref()
        .expect("build.yml has workflow_dispatch inputs");
    assert!(inputs.iter().any(|i| i.name == "service"));

    let service = sb
        .world
        .estate
        .services()
        .into_iter()
        .find(|s| !sb.world.estate.fails_builds(s))
        .expect("a service whose builds pass");
    let mut values = BTreeMap::new();
    values.insert("service".to_string(), service);
    let d = gh
        .dispatch(&owner, &repo, "build.yml", "main", &values)
        .await
        .expect("dispatch");
    let mut seen = Vec::new();
    let run = tokio::time::timeout(
        Duration::from_secs(60),
        gh.wait_run(&owner, &repo, d.run_id, Duration::from_millis(50), |r| {
            seen.push(r.state)
        }),
    )
    .await
    .expect("run completes in time")
    .expect("run");
    assert_eq!(run.id, d.run_id);
    assert_eq!(run.state, BuildState::Succeeded, "{run:?}");
    assert!(!run.jobs.is_empty() && run.jobs.iter().all(|j| !j.steps.is_empty()));
    assert!(seen.len() >= 2, "saw the run change state: {seen:?}");
}

#[tokio::test]
async fn jenkins_build_goes_through_the_queue_to_success() {
    let sb = start().await;
    let j = JenkinsClient::new(JenkinsOptions {
        url: Some(format!("{}/jenkins", sb.url)),
        user: sb.world.users.jenkins_user(),
        token: Secret::new(sb.world.users.jenkins_token()),
        timeout: None,
    })
    .unwrap();
    let job = "GitOps-Pipeline";
    let params = j
        .parameters(job)
        .await
        .expect("the sandbox serves the Jenkins job parameters");
    let env = params
        .iter()
        .find(|p| p.name == "ENVIRONMENT")
        .expect("ENVIRONMENT parameter");
    assert_eq!(env.kind, "choice");
    let mut values = BTreeMap::new();
    values.insert(
        "ENVIRONMENT".to_string(),
        env.choices.first().cloned().unwrap_or_else(|| "dev".into()),
    );
    let item = j.trigger(job, &values).await.expect("buildWithParameters");
    let number = j
        .wait_queue(item, Duration::from_millis(50), Duration::from_secs(60))
        .await
        .expect("queue item becomes a build");
    let build = tokio::time::timeout(
        Duration::from_secs(60),
        j.wait_build(job, number, Duration::from_millis(50), |_| {}),
    )
    .await
    .expect("build finishes in time")
    .expect("build");
    assert_eq!(build.id, number);
    assert_eq!(build.state, BuildState::Succeeded, "{build:?}");
}
