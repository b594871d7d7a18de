//! The real console in a real setup, not `demo`: `shipdeck sandbox --state-dir D` runs as
//! its own process, and `shipdeck` (API mode, then `--core`) starts in tmux with
//! `source D/env` and a config file, exactly as an operator would. Checked against the
//! sandbox's own GitHub API, kubectl, and the audit file on disk:
//! - a config `[[environments.rules]]` rule changes the board (and its absence does not);
//! - `B` lists the runs the GitHub API reports; `b` starts a build that the API then holds;
//! - every console mutation (build, sync) gets a final outcome in the audit log, and an
//!   attempt refused by Argo CD RBAC is audited as `refused` with the reason.
//!
//! Skips (and says so) only when tmux or kubectl is not installed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Sandbox {
    child: Child,
    dir: PathBuf,
    env: BTreeMap<String, String>,
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `shipdeck sandbox --state-dir D`, waited for until D/env exists.
fn sandbox(root: &Path) -> Sandbox {
    sandbox_with(root, &[])
}

/// The same with `extra` arguments (`--apps N`).
fn sandbox_with(root: &Path, extra: &[&str]) -> Sandbox {
    let dir = root.join("sandbox");
    let child = Command::new(env!("CARGO_BIN_EXE_shipdeck"))
        .args(["sandbox", "--time-scale", "0.05"])
        .args(extra)
        .arg("--state-dir")
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sandbox starts");
    let env_file = dir.join("env");
    let end = Instant::now() + Duration::from_secs(60);
    let mut sb = Sandbox {
        child,
        dir,
        env: BTreeMap::new(),
    };
    while Instant::now() < end {
        if let Ok(text) = std::fs::read_to_string(&env_file)
            && text.contains("JENKINS_TOKEN")
        {
            for line in text.lines() {
                if let Some((k, v)) = line.strip_prefix("export ").and_then(|l| l.split_once('=')) {
                    sb.env
                        .insert(k.to_string(), v.trim_matches('\'').to_string());
                }
            }
            return sb;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the sandbox wrote no env file in {}", sb.dir.display());
}

struct Session(String);

impl Drop for Session {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.0])
            .status();
    }
}

fn tmux(args: &[&str]) -> String {
    let out = Command::new("tmux").args(args).output().expect("tmux runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn capture(s: &Session) -> String {
    tmux(&["capture-pane", "-p", "-t", &s.0])
}

fn keys(s: &Session, k: &[&str]) {
    let mut args = vec!["send-keys", "-t", s.0.as_str()];
    args.extend_from_slice(k);
    tmux(&args);
}

fn wait_for(s: &Session, what: &str, secs: u64, pred: impl Fn(&str) -> bool) -> String {
    let end = Instant::now() + Duration::from_secs(secs);
    let mut last = String::new();
    while Instant::now() < end {
        last = capture(s);
        if pred(&last) {
            return last;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for {what}; screen:\n{last}");
}

fn on_board(screen: &str) -> bool {
    let top = screen.lines().next().unwrap_or_default();
    top.contains("› board") && !top.contains("› board ›") && screen.contains("SERVICE")
}

/// Esc until the board is the only screen (a followed run goes back to the list first).
fn back_to_board(s: &Session) {
    let end = Instant::now() + Duration::from_secs(30);
    while Instant::now() < end {
        if on_board(&capture(s)) {
            return;
        }
        keys(s, &["Escape"]);
        let step = Instant::now() + Duration::from_secs(3);
        while Instant::now() < step && !on_board(&capture(s)) {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    panic!("never got back to the board:\n{}", capture(s));
}

fn wait_until<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        if let Some(t) = f() {
            return t;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("timed out waiting for {what}");
}

fn missing(program: &str) -> bool {
    Command::new(program).arg("--help").output().is_err()
}

/// The console in tmux: `source D/env`, then the shell lines `then` (an operator's own
/// changes to the environment), then shipdeck with `extra` flags and `config`.
fn console(
    name: &str,
    sb: &Sandbox,
    root: &Path,
    config: &Path,
    extra: &str,
    then: &str,
) -> Session {
    let home = root.join("home");
    std::fs::create_dir_all(&home).expect("home");
    let script = format!(
        "source {env}; {then} exec env -u XDG_CONFIG_HOME -u XDG_DATA_HOME -u XDG_CACHE_HOME TERM=xterm-256color HOME={home} USER=tester SHIPDECK_NO_KEYRING=1 SHIPDECK_DATA_DIR={data} {bin} {extra} --config {config}",
        env = sb.dir.join("env").display(),
        home = home.display(),
        data = root.join("data").display(),
        bin = env!("CARGO_BIN_EXE_shipdeck"),
        config = config.display(),
    );
    let status = Command::new("tmux")
        .args([
            "new-session",
            "-d",
            "-s",
            name,
            "-x",
            "160",
            "-y",
            "48",
            "bash",
            "-c",
            &script,
        ])
        .status()
        .expect("tmux starts");
    assert!(status.success());
    Session(name.to_string())
}

const PIPELINES: &str = r#"
[[pipelines]]
apps = "*"
github = "acme/shop-gitops"

[[pipelines]]
apps = "kafka*"
jenkins = "GitOps-Pipeline"
"#;

const RULE: &str = r#"
[[environments.rules]]
match = "name-glob"
glob = "checkout-*"
environment = "payments"
"#;

struct Github {
    rt: tokio::runtime::Runtime,
    client: reqwest::Client,
    api: String,
    token: String,
}

impl Github {
    fn new(sb: &Sandbox) -> Github {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Github {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime"),
            client: reqwest::Client::new(),
            api: format!(
                "{}/repos/acme/shop-gitops/actions",
                sb.env["GITHUB_API_URL"]
            ),
            token: sb.env["GITHUB_TOKEN"].clone(),
        }
    }

    fn get(&self, path: &str) -> serde_json::Value {
        self.rt.block_on(async {
            self.client
                .get(format!("{}{path}", self.api))
                .bearer_auth(&self.token)
                .send()
                .await
                .expect("GitHub API answers")
                .json()
                .await
                .expect("JSON")
        })
    }

    /// Run ids the API reports, newest first.
    /// Every run's id (the sandbox seeds weeks of history: one page of 100, as GitHub pages).
    fn run_ids(&self) -> Vec<u64> {
        let page = self.get("/runs?per_page=100");
        assert!(
            page["total_count"].as_u64().is_some_and(|n| n <= 100),
            "more runs than one page: {}",
            page["total_count"]
        );
        page["workflow_runs"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter_map(|r| r["id"].as_u64())
            .collect()
    }

    fn dispatch(&self, service: &str) {
        let status = self.rt.block_on(async {
            self.client
                .post(format!("{}/workflows/build.yml/dispatches", self.api))
                .bearer_auth(&self.token)
                .json(&serde_json::json!({"ref": "main", "inputs": {"service": service}}))
                .send()
                .await
                .expect("dispatch answers")
                .status()
        });
        assert!(status.is_success(), "dispatch: {status}");
    }
}

fn kubectl_json(sb: &Sandbox, args: &[&str]) -> serde_json::Value {
    let out = Command::new("kubectl")
        .env("KUBECONFIG", &sb.env["KUBECONFIG"])
        .args(args)
        .args(["-o", "json"])
        .output()
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("kubectl JSON")
}

fn audit(root: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(root.join("data/audit.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The board's cell of `service` in column `env`, by the header's character positions.
fn cell(board: &str, service: &str, env: &str) -> String {
    let lines: Vec<Vec<char>> = board.lines().map(|l| l.chars().collect()).collect();
    let header = lines
        .iter()
        .find(|l| l.iter().collect::<String>().starts_with("SERVICE"))
        .unwrap_or_else(|| panic!("no header:\n{board}"));
    // Column starts: where each header begins after a gap of two spaces or more (a head
    // reads `PROD · required`: one column).
    let mut starts = Vec::new();
    for (i, c) in header.iter().enumerate() {
        if !c.is_whitespace()
            && (i == 0
                || (i >= 2 && header[i - 1].is_whitespace() && header[i - 2].is_whitespace()))
        {
            let word: String = header[i..]
                .iter()
                .take_while(|c| !c.is_whitespace())
                .collect();
            starts.push((word, i));
        }
    }
    let k = starts
        .iter()
        .position(|(w, _)| w == env)
        .unwrap_or_else(|| panic!("no {env} column:\n{board}"));
    let start = starts[k].1;
    let end = starts.get(k + 1).map_or(usize::MAX, |(_, i)| *i);
    let row = lines
        .iter()
        .find(|l| l.iter().collect::<String>().split_whitespace().next() == Some(service))
        .unwrap_or_else(|| panic!("no {service} row:\n{board}"));
    row.iter()
        .skip(start)
        .take(end - start.min(end))
        .collect::<String>()
        .trim()
        .to_string()
}

/// `B` shows the runs the API has; `b` on the board starts build.yml, which the API then
/// holds; the audit log records it started and then how it ended, as the API says.
fn builds_from_the_console(s: &Session, gh: &Github, root: &Path) {
    let before = gh.run_ids();
    assert!(!before.is_empty(), "a run was dispatched first");
    keys(s, &["B"]);
    let list = wait_for(s, "the builds screen with pipelines and runs", 60, |t| {
        t.contains("recent runs") && t.contains("build.yml #") && t.contains("GitOps-Pipeline")
    });
    // The sandbox seeds weeks of CI history: the screen lists the newest runs, so the
    // newest three the API reports must be there (run ids grow with time).
    let mut newest = before.clone();
    newest.sort_unstable_by(|a, b| b.cmp(a));
    newest.truncate(3);
    for id in &newest {
        assert!(
            list.contains(&format!("#{id}")),
            "run {id} not listed:\n{list}"
        );
    }
    assert!(list.contains("GitOps-Pipeline"), "{list}");
    back_to_board(s);
    keys(s, &["b"]);
    let pipelines = wait_for(s, "the pipelines", 60, |t| {
        t.contains("trigger") && t.contains("build.yml") && !t.contains("loading pipelines")
    });
    let first = pipelines
        .lines()
        .find(|l| l.contains("GitHub") || l.contains("Jenkins"))
        .unwrap_or_default();
    assert!(first.contains("build.yml"), "first pipeline:\n{pipelines}");
    keys(s, &["Enter"]);
    wait_for(s, "the build form", 20, |t| t.contains("trigger build.yml"));
    keys(s, &["Enter"]);
    let run = wait_for(s, "the new run followed", 60, |t| {
        t.lines().any(|l| {
            l.contains("build.yml #") && !before.iter().any(|id| l.contains(&format!("#{id}")))
        })
    });
    let id: u64 = run
        .lines()
        .find_map(|l| {
            let rest = &l[l.find("build.yml #")? + "build.yml #".len()..];
            rest.split_whitespace().next()?.parse().ok()
        })
        .unwrap_or_else(|| panic!("no run id on screen:\n{run}"));
    let after = gh.run_ids();
    assert!(after.contains(&id), "run {id} not in the API: {after:?}");
    assert_eq!(after.len(), before.len() + 1, "one new run");
    // The audit log: started, then the final outcome the API's conclusion says.
    let conclusion = wait_until("the run to complete in the API", 120, || {
        let r = gh.get(&format!("/runs/{id}"));
        (r["status"] == "completed").then(|| r["conclusion"].as_str().unwrap_or("").to_string())
    });
    let expected = if conclusion == "success" {
        "succeeded"
    } else {
        "failed"
    };
    let needle = format!("build.yml run {id}");
    let outcomes = wait_until("the build's final outcome in the audit log", 60, || {
        let o: Vec<String> = audit(root)
            .iter()
            .filter(|r| {
                r["action"] == "build" && r["detail"].as_str().unwrap_or("").starts_with(&needle)
            })
            .map(|r| r["outcome"].as_str().unwrap_or("").to_string())
            .collect();
        (o.len() >= 2).then_some(o)
    });
    assert_eq!(outcomes, ["started", expected]);
}

#[test]
fn console_api_mode_builds_syncs_and_honours_environment_rules() {
    if missing("tmux") || missing("kubectl") {
        println!("SKIP: tmux or kubectl is not installed");
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let sb = sandbox(root.path());
    let gh = Github::new(&sb);
    gh.dispatch("cart");
    let config = root.path().join("config.toml");
    std::fs::write(&config, format!("{PIPELINES}{RULE}")).unwrap();
    // The oracle: the apps the rule names, from kubectl.
    let apps = kubectl_json(&sb, &["get", "applications", "-n", "argocd"]);
    let names: Vec<String> = apps["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["metadata"]["name"].as_str().map(str::to_string))
        .collect();
    assert!(
        names.iter().any(|n| n.starts_with("checkout-")),
        "{names:?}"
    );
    let s = console(
        &format!("shipdeck-real-api-{}", std::process::id()),
        &sb,
        root.path(),
        &config,
        "",
        "",
    );
    let board = wait_for(&s, "the board", 60, |t| {
        // The footer is the last row drawn: with it the frame is whole, not mid-draw.
        t.contains("SERVICE")
            && t.contains("connected")
            && t.contains("cart")
            && t.contains("q quit")
    });
    // The rule moves every checkout-* app (and only those) to `payments`.
    assert!(board.contains("PAYMENTS"), "{board}");
    for env in ["DEV", "STAGING", "PROD"] {
        assert_eq!(cell(&board, "checkout", env), "·", "{env}:\n{board}");
    }
    assert!(
        cell(&board, "checkout", "PAYMENTS").contains("Synced"),
        "{board}"
    );
    assert_eq!(cell(&board, "cart", "PAYMENTS"), "·", "{board}");
    assert!(cell(&board, "cart", "DEV").contains("Synced"), "{board}");

    builds_from_the_console(&s, &gh, root.path());

    // A sync from the board (cart-dev: no approval needed) ends with a final outcome that
    // matches what Argo CD's Application says.
    back_to_board(&s);
    keys(&s, &["s"]);
    let outcomes = wait_until("the sync's final outcome in the audit log", 120, || {
        let o: Vec<String> = audit(root.path())
            .iter()
            .filter(|r| r["action"] == "sync" && r["app"] == "cart-dev")
            .map(|r| r["outcome"].as_str().unwrap_or("").to_string())
            .collect();
        (o.len() >= 2).then_some(o)
    });
    let app = kubectl_json(&sb, &["get", "application", "cart-dev", "-n", "argocd"]);
    let phase = app["status"]["operationState"]["phase"]
        .as_str()
        .unwrap_or("");
    assert_eq!(
        outcomes,
        [
            "started",
            if phase == "Succeeded" {
                "succeeded"
            } else {
                "failed"
            }
        ],
        "phase {phase}"
    );
    keys(&s, &["q"]);
}

#[test]
fn console_core_mode_builds_and_audits_a_refusal() {
    if missing("tmux") || missing("kubectl") {
        println!("SKIP: tmux or kubectl is not installed");
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let sb = sandbox(root.path());
    let gh = Github::new(&sb);
    gh.dispatch("frontend");
    // No environment rule this time: the board keeps checkout in its own environments.
    let config = root.path().join("config.toml");
    std::fs::write(&config, PIPELINES).unwrap();
    let s = console(
        &format!("shipdeck-real-core-{}", std::process::id()),
        &sb,
        root.path(),
        &config,
        "--core",
        "",
    );
    let board = wait_for(&s, "the board", 60, |t| {
        t.contains("SERVICE")
            && t.contains("in-cluster connected")
            && t.contains("cart")
            && t.contains("q quit")
    });
    assert!(!board.contains("PAYMENTS"), "{board}");
    assert!(
        cell(&board, "checkout", "DEV").contains("Synced"),
        "{board}"
    );
    builds_from_the_console(&s, &gh, root.path());
    back_to_board(&s);
    keys(&s, &["q"]);
    drop(s);

    // API mode as the sandbox's viewer: Argo CD RBAC refuses the sync, the screen says
    // so, and the audit log records the refused attempt with the reason; nothing is sent.
    let before = kubectl_json(&sb, &["get", "application", "cart-dev", "-n", "argocd"]);
    let s = console(
        &format!("shipdeck-real-viewer-{}", std::process::id()),
        &sb,
        root.path(),
        &config,
        "",
        "export ARGOCD_AUTH_TOKEN=\"$SHIPDECK_SANDBOX_VIEWER_TOKEN\";",
    );
    wait_for(&s, "the board", 60, |t| {
        // The footer is the last row drawn: with it the frame is whole, not mid-draw.
        t.contains("SERVICE")
            && t.contains("connected")
            && t.contains("cart")
            && t.contains("q quit")
    });
    keys(&s, &["s"]);
    wait_for(&s, "the refusal on screen", 30, |t| {
        t.contains("permission denied") && t.contains("cart-dev")
    });
    let refused = wait_until("the refusal in the audit log", 30, || {
        audit(root.path())
            .into_iter()
            .find(|r| r["action"] == "sync" && r["app"] == "cart-dev")
    });
    assert_eq!(refused["outcome"], "refused", "{refused}");
    assert_eq!(refused["who"], "tester", "{refused}");
    assert!(
        refused["detail"]
            .as_str()
            .unwrap_or("")
            .contains("permission denied"),
        "{refused}"
    );
    let after = kubectl_json(&sb, &["get", "application", "cart-dev", "-n", "argocd"]);
    assert_eq!(
        before["status"]["operationState"], after["status"]["operationState"],
        "no operation was sent"
    );
    keys(&s, &["q"]);
}

#[test]
fn ci_errors_reach_the_screen_typed_with_what_to_do() {
    if missing("tmux") {
        println!("SKIP: tmux is not installed");
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let sb = sandbox(root.path());
    let config = root.path().join("config.toml");
    std::fs::write(&config, PIPELINES).unwrap();
    // An expired GitHub token and no Jenkins credentials.
    let s = console(
        &format!("shipdeck-real-errors-{}", std::process::id()),
        &sb,
        root.path(),
        &config,
        "",
        "export GITHUB_TOKEN=expired; unset GH_TOKEN JENKINS_USER JENKINS_TOKEN;",
    );
    wait_for(&s, "the board", 60, |t| {
        t.contains("SERVICE") && t.contains("connected")
    });
    keys(&s, &["B"]);
    let screen = wait_for(&s, "the GitHub error", 60, |t| {
        t.contains("not authenticated") && !t.contains("loading")
    });
    assert!(screen.contains("shipdeck login github"), "{screen}");
    // The oracle: the sandbox's GitHub API does refuse that token.
    let gh = Github {
        token: "expired".into(),
        ..Github::new(&sb)
    };
    let status = gh.rt.block_on(async {
        gh.client
            .get(format!("{}/runs", gh.api))
            .bearer_auth(&gh.token)
            .send()
            .await
            .expect("GitHub API answers")
            .status()
    });
    assert_eq!(status.as_u16(), 401);
    keys(&s, &["q"]);
}

/// A list too large to pack before the first frame (core mode, 1,500 apps): the console
/// shows it at once and packs it after that frame. Once packed (the debug log says so), an
/// app's screen still says what kubectl says of it: the entries read their apps from the
/// packed blobs swapped in for the decoded list.
#[test]
fn core_mode_packs_a_large_list_after_the_first_frame_and_reads_it_true() {
    if missing("tmux") || missing("kubectl") {
        println!("SKIP: tmux or kubectl is not installed");
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let sb = sandbox_with(root.path(), &["--apps", "1500"]);
    let config = root.path().join("config.toml");
    std::fs::write(&config, "").unwrap();
    let s = console(
        &format!("shipdeck-large-core-{}", std::process::id()),
        &sb,
        root.path(),
        &config,
        "--core",
        "export SHIPDECK_LOG=debug;",
    );
    wait_for(&s, "the board of 1,500 apps", 60, |t| {
        on_board(t) && t.contains("1500 apps") && t.contains("svc-0001") && t.contains("q quit")
    });
    let log = root.path().join("data").join("logs").join("shipdeck.log");
    wait_until("the list packed", 60, || {
        std::fs::read_to_string(&log)
            .ok()
            .filter(|t| t.contains("a whole list packed"))
    });
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let drawn = text
        .find("frame drawn after a whole list")
        .expect("the frame is logged");
    let packed = text
        .find("a whole list packed")
        .expect("the packing is logged");
    assert!(drawn < packed, "packed after the frame:\n{text}");
    keys(&s, &["Enter"]);
    let screen = wait_for(&s, "the app screen", 30, |t| {
        t.contains("app svc-0001-dev") && t.contains("target") && t.contains("live")
    });
    let truth = kubectl_json(&sb, &["get", "application", "svc-0001-dev", "-n", "argocd"]);
    let src = &truth["spec"]["source"];
    let field = |name: &str| {
        screen
            .lines()
            .find(|l| l.trim_start_matches('│').starts_with(name))
            .unwrap_or_else(|| panic!("no {name} line:\n{screen}"))
            .to_string()
    };
    let source = field("source");
    for want in [&src["repoURL"], &src["path"]] {
        let want = want.as_str().expect("kubectl has it");
        assert!(source.contains(want), "{want} missing in `{source}`");
    }
    let target = field("target");
    let resolved = truth["status"]["sync"]["revision"].as_str().unwrap_or("-");
    assert!(
        target.contains(src["targetRevision"].as_str().unwrap_or("?"))
            && target.contains(&resolved[..7]),
        "{target} against {resolved}"
    );
    let history = truth["status"]["history"].as_array().expect("history");
    let deployed = history
        .last()
        .and_then(|h| h["revision"].as_str())
        .expect("deployed revision");
    let live = field("live");
    assert!(live.contains(&deployed[..7]), "{live} against {deployed}");
    keys(&s, &["q"]);
}
