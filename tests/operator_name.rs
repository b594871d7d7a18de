//! The operator's name is the same in every front end (issue 9): config `operator`, else
//! the login name, else the Argo CD account the token belongs to (in core mode the
//! kubeconfig credential's user, as `kubectl auth whoami` says); the console's header
//! shows it; the demo keeps its audit log under the data dir (`demo/`) and says where on
//! quit. Headless runs use the real binary against a sandbox started here, with an
//! environment cleared of everything but what each case gives; the account is read from
//! the sandbox's own `session/userinfo`.

mod cli_support;

use cli_support::{World, start};
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

async fn run(w: &World, env: &[(&str, &str)], args: &[&str]) -> (i32, String) {
    let mut cmd = tokio::process::Command::new(PathBuf::from(env!("CARGO_BIN_EXE_shipdeck")));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", w.home.path())
        .env("XDG_CONFIG_HOME", w.home.path().join("config"))
        .env("XDG_CACHE_HOME", w.home.path().join("cache"))
        .env("SHIPDECK_DATA_DIR", w.data.path())
        .env("ARGOCD_SERVER", w.var("ARGOCD_SERVER"))
        .env("ARGOCD_AUTH_TOKEN", w.var("ARGOCD_AUTH_TOKEN"))
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.args(args);
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("shipdeck ends")
        .expect("shipdeck runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn last_who(w: &World, app: &str) -> String {
    w.audit()
        .into_iter()
        .rev()
        .find(|r| r["app"] == app && r["action"] == "sync")
        .and_then(|r| r["who"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headless_names_the_operator_config_then_login_then_the_credentials_account() {
    let w = start().await;
    let app = "cart-dev";
    // The account the token is, as the sandbox's Argo CD says.
    let info: Value = reqwest::Client::new()
        .get(format!(
            "{}/api/v1/session/userinfo",
            w.var("ARGOCD_SERVER")
        ))
        .bearer_auth(w.var("ARGOCD_AUTH_TOKEN"))
        .send()
        .await
        .expect("userinfo")
        .json()
        .await
        .expect("json");
    let account = info["username"].as_str().expect("username").to_string();

    // No config, no login name: the Argo CD account.
    // Each sync waits for its operation: the next one would otherwise find it running
    // (Argo CD refuses a second operation) on a busy machine.
    let (code, err) = run(&w, &[], &["sync", app, "--wait"]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(last_who(&w, app), account);

    // A login name wins over the account.
    let (code, err) = run(&w, &[("LOGNAME", "lena")], &["sync", app, "--wait"]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(last_who(&w, app), "lena");

    // Config `operator` wins over both.
    let cfg = w.config("config.toml", "operator = \"ops-lead\"\n");
    let (code, err) = run(
        &w,
        &[("USER", "lena")],
        &["--config", &cfg, "sync", app, "--wait"],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(last_who(&w, app), "ops-lead");

    // Core mode, no config, no login name: the user of the kubeconfig's credential as the
    // API server says, which kubectl reads independently (`kubectl auth whoami`).
    let kubeconfig = w.var("KUBECONFIG");
    let whoami = Command::new("kubectl")
        .env("KUBECONFIG", &kubeconfig)
        .args([
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ])
        .output()
        .expect("kubectl runs");
    let user = String::from_utf8_lossy(&whoami.stdout).trim().to_string();
    assert!(
        !user.is_empty() && user != "unknown",
        "kubectl auth whoami: {}",
        String::from_utf8_lossy(&whoami.stderr)
    );
    let (code, err) = run(
        &w,
        &[("KUBECONFIG", &kubeconfig)],
        &["--core", "sync", app, "--wait"],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(last_who(&w, app), user);
    w.sandbox.stop().await;
}

struct Session(String);

impl Drop for Session {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.0])
            .status();
    }
}

fn capture(s: &Session) -> String {
    let out = Command::new("tmux")
        .args(["capture-pane", "-p", "-t", &s.0])
        .output()
        .expect("tmux");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_demo_shows_the_operator_and_keeps_its_audit_under_the_data_dir() {
    if Command::new("tmux").arg("-V").output().is_err() {
        println!("SKIP: tmux is not installed");
        return;
    }
    let name = format!("shipdeck-operator-{}", std::process::id());
    let bin = env!("CARGO_BIN_EXE_shipdeck");
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    let stderr = tmp.path().join("stderr");
    let cmd = format!(
        "env -i PATH=/usr/bin:/bin TERM=xterm-256color HOME={home} USER=demo-op SHIPDECK_DATA_DIR={data} {bin} demo --time-scale 0.05 --state-dir {dir} 2>{stderr}",
        home = tmp.path().display(),
        data = data.display(),
        dir = tmp.path().join("sandbox").display(),
        stderr = stderr.display(),
    );
    let ok = Command::new("tmux")
        .args([
            "new-session",
            "-d",
            "-s",
            &name,
            "-x",
            "160",
            "-y",
            "48",
            "sh",
            "-c",
            &cmd,
        ])
        .status()
        .expect("tmux starts");
    assert!(ok.success());
    let s = Session(name);
    let end = Instant::now() + Duration::from_secs(60);
    let mut screen = String::new();
    while Instant::now() < end {
        screen = capture(&s);
        if screen.contains("SERVICE") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let header = screen
        .lines()
        .find(|l| l.contains("shipdeck"))
        .unwrap_or("");
    assert!(
        header.contains("as demo-op"),
        "header names the operator:\n{screen}"
    );
    let _ = Command::new("tmux")
        .args(["send-keys", "-t", &s.0, "q"])
        .status();
    let expected = data.join("demo").join("audit.jsonl");
    let end = Instant::now() + Duration::from_secs(30);
    let mut said = String::new();
    while Instant::now() < end {
        said = std::fs::read_to_string(&stderr).unwrap_or_default();
        if said.contains("audit log") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        said.contains(&expected.display().to_string()),
        "on quit the demo says where its audit log is ({}): {said}",
        expected.display()
    );
}
