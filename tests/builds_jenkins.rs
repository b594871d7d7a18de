//! Jenkins builds in the console, driven by keys against the in-process sandbox through
//! the real Jenkins client (`connect::Ci`), checked against the sandbox's own Jenkins API
//! read over raw HTTP:
//! - a build started from the form appears in "recent runs" beside the GitHub runs, with
//!   its parameters;
//! - its run screen shows the parameters, the stages `wfapi/describe` reports and the tail
//!   of `consoleText`;
//! - cancel asks once (`y/N`), then the sandbox holds the build ABORTED and the screen
//!   reports the result; rerun of a GitHub run asks once too and the API shows attempt 2.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use serde_json::Value;
use shipdeck::sandbox::Sandbox;
use shipdeck::tui::app::Headless;
use std::time::Duration;

mod common;

const JOB: &str = "GitOps-Pipeline";

use common::console::Rig;

async fn rig(time_scale: f64) -> Rig {
    common::console::rig(common::console::Options {
        time_scale,
        ci: true,
        ..Default::default()
    })
    .await
}

fn press(h: &mut Headless, code: KeyCode) {
    h.key(KeyEvent::new(code, KeyModifiers::NONE));
}

fn command(h: &mut Headless, cmd: &str) {
    press(h, KeyCode::Char(':'));
    h.type_str(cmd);
    press(h, KeyCode::Enter);
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

/// The sandbox's Jenkins, read over raw HTTP with its own credentials.
async fn jenkins(sb: &Sandbox, path: &str) -> reqwest::Response {
    common::http()
        .get(format!("{}/jenkins{path}", sb.url))
        .basic_auth(
            sb.world.users.jenkins_user(),
            Some(sb.world.users.jenkins_token()),
        )
        .send()
        .await
        .unwrap()
}

async fn jenkins_json(sb: &Sandbox, path: &str) -> Value {
    let r = jenkins(sb, path).await;
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.json().await.unwrap()
}

/// The newest build number of the job, if any.
async fn last_build(sb: &Sandbox) -> Option<u64> {
    let j = jenkins_json(sb, &format!("/job/{JOB}/api/json")).await;
    j["builds"]
        .as_array()?
        .iter()
        .filter_map(|b| b["number"].as_u64())
        .max()
}

/// `:builds`, then the Jenkins job's form with the first field (a tag) set to `tag`,
/// submitted; returns once the run screen follows a build.
async fn trigger_jenkins(h: &mut Headless, tag: &str) {
    command(h, ":builds".trim_start_matches(':'));
    let s = wait_screen(h, "the pipelines", |s| s.contains(JOB)).await;
    let rows: Vec<&str> = s
        .lines()
        .filter(|l| l.contains("│GitHub ") || l.contains("│Jenkins "))
        .collect();
    let at = rows
        .iter()
        .position(|l| l.contains(JOB))
        .expect("the Jenkins job is listed");
    for _ in 0..at {
        press(h, KeyCode::Char('j'));
    }
    press(h, KeyCode::Enter);
    wait_screen(h, "the Jenkins form", |s| {
        s.contains(&format!("trigger {JOB}"))
    })
    .await;
    h.type_str(tag);
    press(h, KeyCode::Enter);
    wait_screen(h, "the run screen", |s| s.contains(&format!("{JOB} #"))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jenkins_builds_show_parameters_stages_and_console_and_are_listed() {
    let mut r = rig(0.02).await;
    assert!(
        r.h.until(Duration::from_secs(30), |c| c.estate.len() > 10)
            .await
    );
    trigger_jenkins(&mut r.h, "sha-1234abc").await;
    let n = common::wait_for("the sandbox holds the build", || async {
        last_build(&r.sb).await
    })
    .await;
    let done = common::wait_for("the build finishes", || async {
        let b = jenkins_json(&r.sb, &format!("/job/{JOB}/{n}/api/json")).await;
        (b["building"] == false).then_some(b)
    })
    .await;
    assert_eq!(done["result"], "SUCCESS", "{done}");
    // What Jenkins says it was started with, its stages and its console's last line.
    let params: Vec<(String, String)> = done["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["parameters"].as_array())
        .flatten()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["value"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert!(params.iter().any(|(_, v)| v == "sha-1234abc"), "{params:?}");
    let describe = jenkins_json(&r.sb, &format!("/job/{JOB}/{n}/wfapi/describe")).await;
    let stages: Vec<String> = describe["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    assert!(!stages.is_empty(), "{describe}");
    let console = jenkins(&r.sb, &format!("/job/{JOB}/{n}/consoleText"))
        .await
        .text()
        .await
        .unwrap();
    let last_line = console.lines().last().unwrap().to_string();
    assert!(last_line.starts_with("Finished: SUCCESS"), "{console}");

    let s = wait_screen(&mut r.h, "the finished run with its console", |s| {
        s.contains("✓ success") && s.contains(&last_line)
    })
    .await;
    let (tag_name, _) = params.iter().find(|(_, v)| v == "sha-1234abc").unwrap();
    assert!(s.contains("started with"), "{s}");
    assert!(s.contains(&format!("{tag_name}=sha-1234abc")), "{s}");
    for st in &stages {
        assert!(s.contains(st.as_str()), "stage {st} is shown:\n{s}");
    }
    assert!(s.contains("console (last"), "{s}");

    // Back to the list: the build is among the recent runs, with its parameters.
    press(&mut r.h, KeyCode::Esc);
    let s = wait_screen(&mut r.h, "recent runs", |s| {
        s.contains("recent runs") && !s.contains("loading runs")
    })
    .await;
    let row = s
        .lines()
        .find(|l| l.contains(&format!("{JOB} #{n} ")))
        .unwrap_or_else(|| panic!("{JOB} #{n} is not among the recent runs:\n{s}"));
    assert!(row.contains("✓ success"), "{row}");
    assert!(row.contains(&format!("{tag_name}=sha-1234abc")), "{row}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_asks_once_and_the_sandbox_aborts_the_build() {
    // Slow time: the build is still running when `c` comes.
    let mut r = rig(1.0).await;
    trigger_jenkins(&mut r.h, "sha-5678def").await;
    let n = common::wait_for("the sandbox holds the build", || async {
        last_build(&r.sb).await
    })
    .await;
    wait_screen(&mut r.h, "the running build", |s| s.contains("c cancel")).await;
    press(&mut r.h, KeyCode::Char('c'));
    let s = r.h.screen(180, 60);
    assert!(s.contains(&format!("cancel {JOB} #{n}? y/N")), "{s}");
    // Anything but y: nothing sent, the build goes on.
    press(&mut r.h, KeyCode::Char('n'));
    let b = jenkins_json(&r.sb, &format!("/job/{JOB}/{n}/api/json")).await;
    assert_eq!(b["building"], true, "{b}");
    press(&mut r.h, KeyCode::Char('c'));
    press(&mut r.h, KeyCode::Char('y'));
    let b = common::wait_for("Jenkins aborts the build", || async {
        let b = jenkins_json(&r.sb, &format!("/job/{JOB}/{n}/api/json")).await;
        (b["building"] == false).then_some(b)
    })
    .await;
    assert_eq!(b["result"], "ABORTED", "{b}");
    let s = wait_screen(&mut r.h, "the reported result", |s| {
        s.contains(&format!("✓ cancel of run {n} requested")) && s.contains("⊘ cancelled")
    })
    .await;
    assert!(!s.contains("✗ cancel failed"), "{s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rerun_asks_once_and_github_holds_a_second_attempt() {
    let mut r = rig(0.02).await;
    command(&mut r.h, "builds");
    wait_screen(&mut r.h, "the pipelines", |s| {
        // The pipeline rows ("· N inputs"), not only the runs CI already has.
        s.contains("build.yml") && s.contains(" inputs")
    })
    .await;
    // The first pipeline is the build workflow; its defaults are enough.
    press(&mut r.h, KeyCode::Enter);
    wait_screen(&mut r.h, "the form", |s| s.contains("trigger build.yml")).await;
    press(&mut r.h, KeyCode::Enter);
    let s = wait_screen(&mut r.h, "the finished run", |s| {
        s.contains("build.yml #") && s.contains("r rerun")
    })
    .await;
    let id: u64 = s
        .lines()
        .find_map(|l| {
            let rest = &l[l.find("build.yml #")? + "build.yml #".len()..];
            rest.split_whitespace().next()?.parse().ok()
        })
        .unwrap_or_else(|| panic!("no run id:\n{s}"));
    let gh = &r.sb.world.estate.github;
    let path = format!(
        "{}/github/repos/{}/{}/actions/runs/{id}",
        r.sb.url, gh.owner, gh.repo
    );
    let attempt = || async {
        let v: Value = common::http()
            .get(&path)
            .bearer_auth(r.sb.world.users.github_token())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["run_attempt"].as_u64()
    };
    assert_eq!(attempt().await, Some(1));
    press(&mut r.h, KeyCode::Char('r'));
    let s = r.h.screen(180, 60);
    assert!(s.contains(&format!("rerun build.yml #{id}? y/N")), "{s}");
    press(&mut r.h, KeyCode::Esc);
    let s = r.h.screen(180, 60);
    assert!(s.contains("rerun not sent"), "{s}");
    press(&mut r.h, KeyCode::Char('r'));
    press(&mut r.h, KeyCode::Char('y'));
    common::wait_for("GitHub holds the second attempt", || async {
        (attempt().await == Some(2)).then_some(())
    })
    .await;
    wait_screen(&mut r.h, "the reported result", |s| {
        s.contains(&format!("✓ rerun of run {id} requested"))
    })
    .await;
    // Asked once, sent once: no third attempt.
    assert_eq!(attempt().await, Some(2));
}
