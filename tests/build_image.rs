//! GitHub runs report no image (issue 9): `shipdeck build ... --wait` says, once the run
//! succeeded, the image it produced (from the bump commit it pushed to the GitOps repo,
//! named by its `Built-by: ... (RUN-ID)` trailer) and where that image goes next (an app
//! that auto-syncs picks it up, prod waits for an approval, others need a sync). Oracles:
//! the sandbox's GitHub API (the run's id), the system `git` on the sandbox's repository
//! (the commits and what they wrote) and the Applications as kube-rs reads them.

mod cli_support;
mod common;

use cli_support::{Mode, World, start};
use serde_json::Value;

fn git(w: &World, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(w.sandbox.world.repo.path())
        .args(args)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The newest run of the repository, as the sandbox's GitHub API lists it.
async fn newest_run(w: &World, owner: &str, repo: &str) -> Value {
    let v: Value = reqwest::Client::new()
        .get(format!(
            "{}/repos/{owner}/{repo}/actions/runs?per_page=100",
            w.var("GITHUB_API_URL")
        ))
        .bearer_auth(w.var("GITHUB_TOKEN"))
        .header("User-Agent", "shipdeck-test")
        .send()
        .await
        .expect("runs")
        .json()
        .await
        .expect("json");
    v["workflow_runs"]
        .as_array()
        .expect("workflow_runs")
        .iter()
        .max_by_key(|r| r["id"].as_u64().unwrap_or(0))
        .cloned()
        .expect("a run")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_github_build_says_the_image_it_produced_and_where_it_goes_next() {
    let w = start().await;
    let est = &w.sandbox.world.estate;
    let wf = est
        .github
        .workflows
        .iter()
        .find(|x| matches!(x.action, shipdeck::sandbox::estate::CiAction::Build))
        .expect("a build workflow")
        .file
        .clone();
    let (owner, repo) = (est.github.owner.clone(), est.github.repo.clone());
    let rows = w.status(Mode::Api).await;
    let service = rows
        .iter()
        .find(|r| {
            r["environment"] == "prod" && !est.fails_builds(r["service"].as_str().unwrap_or(""))
        })
        .and_then(|r| r["service"].as_str())
        .expect("a service deployed to prod")
        .to_string();

    let out = w
        .run_with(
            Mode::Api,
            &[
                "build",
                "--workflow",
                &wf,
                "--repo",
                &format!("{owner}/{repo}"),
                "--input",
                &format!("service={service}"),
                "--wait",
                "--timeout",
                "120",
            ],
            &[
                ("GITHUB_API_URL", w.var("GITHUB_API_URL")),
                ("GITHUB_TOKEN", w.var("GITHUB_TOKEN")),
            ],
        )
        .await;
    assert_eq!(out.code, 0, "build: {}\n{}", out.stdout, out.stderr);

    // The run, by the sandbox's GitHub API; its bump commits, by git.
    let run = newest_run(&w, &owner, &repo).await;
    assert_eq!(run["conclusion"], "success", "{run}");
    let id = run["id"].as_u64().expect("run id");
    let log = git(&w, &["log", "--all", "--format=%H%x00%B%x1e"]);
    let bumps: Vec<String> = log
        .split('\x1e')
        .filter_map(|e| {
            let (sha, body) = e.trim().split_once('\0')?;
            body.lines()
                .any(|l| l.starts_with("Built-by:") && l.trim_end().ends_with(&format!("({id})")))
                .then(|| sha.to_string())
        })
        .collect();
    assert!(!bumps.is_empty(), "the run pushed a bump commit:\n{log}");
    let mut images = Vec::new();
    let mut files = Vec::new();
    for sha in &bumps {
        assert!(
            out.stdout.contains(&sha[..7]),
            "names bump {sha}: {}",
            out.stdout
        );
        let show = git(&w, &["show", "--format=", sha]);
        for l in show.lines() {
            if let Some(i) = l
                .strip_prefix('+')
                .and_then(|l| l.trim().strip_prefix("image:"))
            {
                images.push(i.trim().trim_matches('"').to_string());
            }
            if let Some(f) = l.strip_prefix("+++ b/") {
                files.push(f.to_string());
            }
        }
    }
    assert!(!images.is_empty(), "the bumps wrote an image");
    let image_line = out
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("image "))
        .unwrap_or_else(|| panic!("an image line: {}", out.stdout));
    for i in &images {
        assert!(image_line.contains(i.as_str()), "{i} in {image_line}");
    }

    // Where it goes next: every app whose source path holds a bumped file, by what its
    // Application says (kube-rs) and its environment (prod waits for an approval).
    let mut expected = 0;
    for r in &rows {
        let name = r["name"].as_str().expect("name");
        let app = w.application(name).await;
        let path = app["spec"]["source"]["path"].as_str().unwrap_or("");
        if !files.iter().any(|f| f.starts_with(&format!("{path}/"))) {
            continue;
        }
        expected += 1;
        let auto = app["spec"]["syncPolicy"]["automated"].is_object()
            && app["spec"]["syncPolicy"]["automated"]["enabled"] != false;
        let how = if r["environment"] == "prod" {
            "waits for approval"
        } else if auto {
            "picks it up (auto-sync)"
        } else {
            "needs a sync (auto-sync off)"
        };
        let line = out
            .stdout
            .lines()
            .find(|l| l.contains("goes next") && l.contains(&format!(" {name} (")))
            .unwrap_or_else(|| panic!("{name} goes next: {}", out.stdout));
        assert!(line.contains(how), "{name}: {how} in {line}");
    }
    assert!(expected >= 2, "the service runs in several environments");
    assert!(
        out.stdout.matches("goes next").count() == expected,
        "only those: {}",
        out.stdout
    );
    w.sandbox.stop().await;
}

/// The console's run screen: after `b`uilding with the build workflow, the run screen
/// shows the image from the run's bump commit and where it goes next.
mod console {
    use crate::common;
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    use shipdeck::tui::app::Headless;
    use std::time::Duration;

    fn press(h: &mut Headless, code: KeyCode) {
        h.key(KeyEvent::new(code, KeyModifiers::NONE));
    }

    async fn wait_screen(h: &mut Headless, what: &str, f: impl Fn(&str) -> bool) -> String {
        for _ in 0..1200 {
            let s = h.screen(180, 60);
            if f(&s) {
                return s;
            }
            h.step(Duration::from_millis(50)).await;
        }
        panic!("timed out waiting for {what}:\n{}", h.screen(180, 60));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_run_screen_shows_the_image_and_where_it_goes_next() {
        let mut r = common::console::rig(common::console::Options {
            ci: true,
            ..Default::default()
        })
        .await;
        assert!(
            r.h.until(Duration::from_secs(30), |c| c.estate.len() > 10)
                .await
        );
        press(&mut r.h, KeyCode::Char(':'));
        r.h.type_str("builds");
        press(&mut r.h, KeyCode::Enter);
        wait_screen(&mut r.h, "the pipelines", |s| {
            s.contains("build.yml") && s.contains(" inputs")
        })
        .await;
        press(&mut r.h, KeyCode::Enter);
        wait_screen(&mut r.h, "the form", |s| s.contains("trigger build.yml")).await;
        press(&mut r.h, KeyCode::Enter);
        let s = wait_screen(&mut r.h, "the image of the finished run", |s| {
            s.contains("(bump ") && s.contains("goes next")
        })
        .await;
        let id: u64 = s
            .lines()
            .find_map(|l| {
                let rest = &l[l.find("build.yml #")? + "build.yml #".len()..];
                rest.split_whitespace().next()?.parse().ok()
            })
            .unwrap_or_else(|| panic!("no run id:\n{s}"));
        // The oracle: the system git on the sandbox's repository.
        let repo = r.sb.world.repo.path().to_path_buf();
        let git = |args: &[&str]| {
            let o = std::process::Command::new("git")
                .arg("-C")
                .arg(&repo)
                .args(args)
                .output()
                .expect("git runs");
            String::from_utf8_lossy(&o.stdout).into_owned()
        };
        let log = git(&["log", "--all", "--format=%H%x00%B%x1e"]);
        let bumps: Vec<String> = log
            .split('\x1e')
            .filter_map(|e| {
                let (sha, body) = e.trim().split_once('\0')?;
                body.contains(&format!("({id})")).then(|| sha.to_string())
            })
            .collect();
        assert!(!bumps.is_empty(), "run {id} pushed a bump:\n{log}");
        let image_line = s
            .lines()
            .find(|l| l.contains("(bump "))
            .expect("the image line");
        for sha in &bumps {
            assert!(image_line.contains(&sha[..7]), "{sha} in {image_line}");
            let show = git(&["show", "--format=", sha]);
            for l in show.lines() {
                if let Some(i) = l
                    .strip_prefix('+')
                    .and_then(|l| l.trim().strip_prefix("image:"))
                {
                    assert!(image_line.contains(i.trim()), "{i} in {image_line}");
                }
            }
        }
        let next = s
            .lines()
            .find(|l| l.contains("goes next"))
            .expect("goes next");
        assert!(next.contains("waits for approval"), "prod waits: {next}");
        r.sb.stop().await;
    }
}
