//! The sandbox's GitHub REST API as PyGithub (the usual Python client, non-lazy) calls it:
//! `get_repo`, `get_user`, `get_rate_limit`, branches, dispatch with run details, runs
//! followed to completion, jobs in run order with GitHub's `skipped` steps and jobs, a job by
//! id, run timing, and job and run log downloads (a 302 to a signed link; the run's a zip).
//! What the client saw is checked against Git and the sandbox's own state, not against the
//! API's answers.

mod support;

use serde_json::{Value, json};
use shipdeck_sandbox::{Sandbox, SandboxOptions};
use std::collections::BTreeMap;

async fn sandbox() -> Sandbox {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Sandbox::start(SandboxOptions {
        time_scale: 0.01,
        ..Default::default()
    })
    .await
    .expect("sandbox starts")
}

fn steps(job: &Value) -> Vec<(String, String, String)> {
    job["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| {
            (
                s[1].as_str().unwrap_or("").to_string(),
                s[2].as_str().unwrap_or("").to_string(),
                s[3].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn names(run: &Value) -> Vec<&str> {
    run["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(|j| j["name"].as_str().unwrap_or(""))
        .collect()
}

fn conclusions(run: &Value) -> Vec<&str> {
    run["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(|j| j["conclusion"].as_str().unwrap_or(""))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pygithub_sees_github() {
    let Some(python) = support::python() else {
        return;
    };
    let sb = sandbox().await;
    let gh = sb.world.estate.github.clone();
    let full_name = format!("{}/{}", gh.owner, gh.repo);
    let out = support::run_client(
        &python,
        "github_client.py",
        &[
            ("GH_API", format!("{}/github", sb.url)),
            ("GH_TOKEN", sb.world.users.github_token()),
            ("GH_REPO", full_name.clone()),
        ],
    )
    .await;
    let repo_dir = sb.world.repo.path().to_path_buf();

    // The repository, non-lazily.
    assert_eq!(out["repo"]["full_name"], json!(full_name));
    assert_eq!(out["repo"]["owner"], json!(gh.owner));
    assert_eq!(out["repo"]["default_branch"], "main");
    assert_eq!(out["repo"]["private"], true);
    assert_eq!(out["repo"]["admin"], true);
    // The token is the owner's.
    assert_eq!(out["user"]["login"], json!(gh.owner));
    assert_eq!(out["user"]["type"], "User");

    // Rate limit: consistent, and asking for it does not count against it.
    let rl = &out["rate_limit"];
    assert_eq!(rl["limit"], 5000);
    assert_eq!(
        rl["remaining"].as_u64().unwrap() + rl["used"].as_u64().unwrap(),
        5000
    );
    assert_eq!(rl["used"], 2, "get_repo and get_user count: {rl}");
    assert_eq!(rl["remaining_again"], rl["remaining"]);
    assert_eq!(rl["rate_remaining"], rl["remaining"]);
    assert_eq!(rl["search_limit"], 30);

    // Branches, against Git.
    let refs = support::git(
        &repo_dir,
        &[
            "for-each-ref",
            "--format=%(refname:short) %(objectname)",
            "refs/heads",
        ],
    );
    let git_branches: BTreeMap<String, String> = refs
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(n, s)| (n.to_string(), s.to_string()))
        .collect();
    let seen: BTreeMap<String, String> =
        serde_json::from_value(out["branches"].clone()).expect("branches map");
    // The builds below commit afterwards: the names are Git's, and each head the client saw
    // is a commit of that branch (the head, when nothing committed since).
    assert_eq!(
        seen.keys().collect::<Vec<_>>(),
        git_branches.keys().collect::<Vec<_>>()
    );
    for (name, sha) in &seen {
        let history = support::git(&repo_dir, &["log", "--format=%H", name]);
        assert!(history.lines().any(|h| h == sha), "{name} {sha}");
    }
    let main_sha = out["main"]["sha"].as_str().unwrap().to_string();
    assert_eq!(main_sha, seen["main"]);
    assert_eq!(
        out["main"]["message"],
        json!(support::git(
            &repo_dir,
            &["log", "-1", "--format=%B", &main_sha]
        ))
    );
    assert_eq!(
        out["main"]["author"],
        json!(support::git(
            &repo_dir,
            &["log", "-1", "--format=%an", &main_sha]
        ))
    );
    assert_eq!(out["main"]["protected"], true);
    assert_eq!(out["missing_branch"], 404);

    // History, a commit, files and directories, against Git (read before the builds ran:
    // develop's first five are then its five newest before them, so compare from main).
    let seen_commits: Vec<String> = serde_json::from_value(out["commits"].clone()).unwrap();
    assert_eq!(seen_commits.len(), 5);
    assert_eq!(seen_commits[0], seen["develop"]);
    let develop_history = support::git(
        &repo_dir,
        &["log", "--format=%H", "-n", "5", &seen["develop"]],
    );
    assert_eq!(seen_commits, develop_history.lines().collect::<Vec<_>>());
    assert_eq!(out["commit"]["sha"], json!(main_sha));
    let changed = support::git(
        &repo_dir,
        &[
            "show",
            "--name-only",
            "--format=",
            "--no-renames",
            &main_sha,
        ],
    );
    let mut changed: Vec<&str> = changed.lines().filter(|l| !l.is_empty()).collect();
    changed.sort();
    assert_eq!(out["commit"]["files"], json!(changed));
    let readme = support::git(&repo_dir, &["show", &format!("{main_sha}:README.md")]);
    assert_eq!(
        out["readme"]["text"].as_str().unwrap().trim_end(),
        readme.trim_end()
    );
    assert_eq!(
        out["readme"]["sha"],
        json!(support::git(
            &repo_dir,
            &["rev-parse", &format!("{main_sha}:README.md")]
        ))
    );
    let workflows = support::git(
        &repo_dir,
        &[
            "ls-tree",
            "--name-only",
            &format!("{main_sha}:.github/workflows"),
        ],
    );
    assert_eq!(
        out["workflow_dir"],
        json!(workflows.lines().collect::<Vec<_>>())
    );
    let root = support::git(&repo_dir, &["ls-tree", &main_sha]);
    let mut root: Vec<(String, String)> = root
        .lines()
        .filter_map(|l| {
            let (meta, name) = l.split_once('\t')?;
            let kind = if meta.contains(" tree ") {
                "dir"
            } else {
                "file"
            };
            Some((name.to_string(), kind.to_string()))
        })
        .collect();
    root.sort();
    assert_eq!(out["root_dir"], json!(root));
    assert_eq!(out["missing_file"], 404);
    assert_eq!(out["artifacts"], 0);

    // A successful build: jobs in run order (test, then build which needs it, then bump).
    let ok = &out["runs"]["ok"];
    assert_eq!(ok["conclusion"], "success");
    assert_eq!(names(ok), ["test", "build", "bump"]);
    assert_eq!(conclusions(ok), ["success", "success", "success"]);
    for job in ok["jobs"].as_array().unwrap() {
        let numbers: Vec<u64> = job["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s[0].as_u64().unwrap())
            .collect();
        assert_eq!(numbers, (1..=numbers.len() as u64).collect::<Vec<_>>());
        assert!(
            steps(job)
                .iter()
                .all(|(_, st, c)| st == "completed" && c == "success"),
            "{job}"
        );
    }

    // A failed job: the ones that need it are skipped; in the failed job, the runner's
    // "Complete job" still runs.
    let fj = &out["runs"]["failed_job"];
    assert_eq!(fj["conclusion"], "failure");
    assert_eq!(names(fj), ["test", "build", "bump"]);
    assert_eq!(conclusions(fj), ["failure", "skipped", "skipped"]);
    let test_steps = steps(&fj["jobs"][0]);
    let s = |n: &str, c: &str| (n.to_string(), "completed".to_string(), c.to_string());
    assert_eq!(
        test_steps,
        [
            s("Set up job", "success"),
            s("Run actions/checkout@v4", "success"),
            s("Run unit tests", "failure"),
            s("Complete job", "success"),
        ]
    );
    assert!(fj["jobs"][0]["runner"].is_string());
    for skipped in &fj["jobs"].as_array().unwrap()[1..] {
        assert!(
            skipped["runner"].is_null(),
            "a skipped job had no runner: {skipped}"
        );
        assert!(
            steps(skipped)
                .iter()
                .all(|(_, st, c)| st == "completed" && c == "skipped"),
            "{skipped}"
        );
    }

    // A failed step: the steps after it are skipped, not success.
    let fs = &out["runs"]["failed_step"];
    assert_eq!(fs["conclusion"], "failure");
    assert_eq!(
        steps(&fs["jobs"][0]),
        [
            s("Set up job", "success"),
            s("Run actions/checkout@v4", "success"),
            s("Health checks", "failure"),
            s("Smoke tests", "skipped"),
            s("Complete job", "success"),
        ]
    );
    // The sandbox's own view of why: prod has an app that is not Healthy.
    let truth = sb
        .world
        .ci
        .run(fs["id"].as_u64().unwrap())
        .expect("run in the sandbox");
    assert!(
        truth.log.iter().any(|l| l.contains("ImagePullBackOff")
            || l.contains("Degraded")
            || l.contains("Progressing")),
        "{:?}",
        truth.log
    );

    // Timing: every job that ran is billed (rounded up to the minute); skipped ones are not.
    let t = &ok["timing"];
    assert!(t["run_duration_ms"].as_i64().unwrap() > 0, "{t}");
    let ubuntu = &t["billable"]["UBUNTU"];
    assert_eq!(ubuntu["jobs"], 3);
    let billed: Vec<u64> = ubuntu["job_runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["job_id"].as_u64().unwrap())
        .collect();
    let ids: Vec<u64> = ok["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_u64().unwrap())
        .collect();
    assert_eq!(billed, ids);
    assert_eq!(ubuntu["total_ms"].as_i64().unwrap() % 60_000, 0);
    assert!(ubuntu["total_ms"].as_i64().unwrap() >= 3 * 60_000);
    assert_eq!(fj["timing"]["billable"]["UBUNTU"]["jobs"], 1);

    // A job by id.
    assert_eq!(out["job"]["id"], ok["jobs"][0]["id"]);
    assert_eq!(out["job"]["name"], "test");
    assert_eq!(out["job"]["run_id"], ok["id"]);
    assert_eq!(out["job"]["conclusion"], "success");

    // The job's log through its redirect.
    assert_eq!(out["job_log"]["status"], 200);
    let job_log = out["job_log"]["text"].as_str().unwrap();
    assert!(job_log.contains("##[group]Run unit tests"), "{job_log}");
    assert!(
        job_log.lines().all(|l| l.len() > 28
            && chrono::DateTime::parse_from_rfc3339(&l[..l.find(' ').unwrap_or(0)]).is_ok()),
        "every line starts with its timestamp: {job_log}"
    );

    // The run's logs: a zip with one file per job and per step.
    assert_eq!(out["run_logs"]["status"], 200);
    assert_eq!(out["run_logs"]["type"], "application/zip");
    let files = out["run_logs"]["files"].as_object().unwrap();
    for f in [
        "0_test.txt",
        "1_build.txt",
        "2_bump.txt",
        "test/1_Set up job.txt",
    ] {
        assert!(files.contains_key(f), "{f} in {:?}", files.keys());
    }
    let commit_step = files
        .iter()
        .find(|(k, _)| k.starts_with("bump/") && k.ends_with("_Commit and push.txt"))
        .map(|(_, v)| v.as_str().unwrap())
        .expect("bump/N_Commit and push.txt");
    // The commit the log names is on develop in Git.
    let line = commit_step
        .lines()
        .find(|l| l.contains("bumped frontend"))
        .unwrap_or_else(|| panic!("no bump line in {commit_step}"));
    let short = line
        .rsplit('(')
        .next()
        .and_then(|s| s.strip_suffix(')'))
        .expect("(sha) at the end");
    let develop_log = support::git(&repo_dir, &["log", "--format=%h", "-n", "50", "develop"]);
    assert!(
        develop_log
            .lines()
            .any(|h| h.starts_with(short) || short.starts_with(h)),
        "{short} not on develop"
    );
    assert_eq!(out["tampered"], 403);
}

/// Raw HTTP: the error answers GitHub gives, with its shapes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_errors_are_githubs() {
    let sb = sandbox().await;
    let http = reqwest::Client::new();
    let gh = sb.world.estate.github.clone();
    let token = sb.world.users.github_token();

    let r = http
        .get(format!("{}/github/rate_limit", sb.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["message"], "Requires authentication");

    for path in [
        "/github/repos/someone/else".to_string(),
        format!("/github/repos/{}/{}/actions/jobs/1", gh.owner, gh.repo),
        format!(
            "/github/repos/{}/{}/actions/runs/1/timing",
            gh.owner, gh.repo
        ),
        format!("/github/repos/{}/{}/actions/runs/1/logs", gh.owner, gh.repo),
    ] {
        let r = http
            .get(format!("{}{path}", sb.url))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{path}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["message"], "Not Found", "{path}");
        assert!(body["documentation_url"].is_string());
    }

    // A download link without a signature, or signed for another run, is refused.
    let r = http
        .get(format!("{}/github-blobs/runs/1/1/logs.zip", sb.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}
