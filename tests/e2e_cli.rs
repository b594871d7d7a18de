//! The headless command line end to end: the real `shipdeck` binary against a sandbox
//! started in-process, with only the environment a user would have (a kubeconfig for core
//! mode, an Argo CD server and token for API mode). Exit codes are the contract scripts
//! rely on, so every test asserts them. Every wait has a deadline; no fixed sleeps.

use serde_json::Value;
use shipdeck::sandbox::Sandbox;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use tempfile::TempDir;

mod common;
use common::DEADLINE;

struct World {
    sandbox: Sandbox,
    vars: BTreeMap<String, String>,
    data: TempDir,
    home: TempDir,
}

/// `export K='v'` lines of the sandbox's env file.
fn parse_env(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            let v = v.trim();
            let v = v
                .strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .unwrap_or(v);
            (k.to_string(), v.replace(r"'\''", "'"))
        })
        .collect()
}

async fn start() -> World {
    let sandbox = common::sandbox().await;
    let text = std::fs::read_to_string(sandbox.env_path()).expect("env file");
    World {
        vars: parse_env(&text),
        sandbox,
        data: tempfile::tempdir().expect("tmp"),
        home: tempfile::tempdir().expect("tmp"),
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Core,
    Api,
    /// Core mode as the read-only viewer user.
    Viewer,
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl World {
    fn var(&self, k: &str) -> String {
        self.vars.get(k).cloned().unwrap_or_default()
    }

    fn audit(&self) -> Vec<Value> {
        std::fs::read_to_string(self.data.path().join("audit.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("audit line is JSON"))
            .collect()
    }

    async fn run(&self, mode: Mode, args: &[&str]) -> Out {
        self.run_with(mode, args, &[]).await
    }

    async fn run_with(&self, mode: Mode, args: &[&str], extra: &[(&str, String)]) -> Out {
        // SHIPDECK_E2E_BIN: a binary copied aside, for machines where several checkouts
        // share one target dir and the uplifted binary may be another checkout's.
        let bin = std::env::var_os("SHIPDECK_E2E_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_shipdeck")));
        let mut cmd = tokio::process::Command::new(bin);
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.home.path())
            .env("XDG_CONFIG_HOME", self.home.path().join("config"))
            .env("XDG_CACHE_HOME", self.home.path().join("cache"))
            .env("SHIPDECK_DATA_DIR", self.data.path())
            .env("USER", "e2e-operator")
            .kill_on_drop(true);
        let mut all: Vec<&str> = args.to_vec();
        match mode {
            Mode::Core | Mode::Viewer => {
                cmd.env("KUBECONFIG", self.var("KUBECONFIG"));
                all.push("--core");
                if mode == Mode::Viewer {
                    all.extend(["--context", "viewer@in-cluster"]);
                }
            }
            Mode::Api => {
                cmd.env("ARGOCD_SERVER", self.var("ARGOCD_SERVER"))
                    .env("ARGOCD_AUTH_TOKEN", self.var("ARGOCD_AUTH_TOKEN"));
            }
        }
        for (k, v) in extra {
            cmd.env(k, v);
        }
        cmd.args(&all);
        let out = tokio::time::timeout(Duration::from_secs(90), cmd.output())
            .await
            .unwrap_or_else(|_| panic!("shipdeck {all:?} hung"))
            .expect("shipdeck runs");
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    async fn status(&self, mode: Mode) -> Vec<Value> {
        let out = self.run(mode, &["status", "--output", "json"]).await;
        assert_eq!(out.code, 0, "status ({mode:?}) failed: {}", out.stderr);
        serde_json::from_str::<Vec<Value>>(&out.stdout).expect("status JSON is an array")
    }

    async fn app(&self, mode: Mode, name: &str) -> Value {
        self.status(mode)
            .await
            .into_iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("{name} not listed"))
    }

    async fn fault(&self, body: Value) {
        let r = reqwest::Client::new()
            .post(format!("{}/_sandbox/faults", self.sandbox.url))
            .json(&body)
            .send()
            .await
            .expect("fault request");
        assert!(
            r.status().is_success(),
            "fault {body} refused: {}",
            r.status()
        );
    }
}

/// Fields both modes must agree on (the instance differs by design: a context name in core
/// mode, the server's host in API mode).
fn comparable(rows: &[Value]) -> Vec<Value> {
    let mut out: Vec<Value> = rows
        .iter()
        .map(|r| {
            let mut r = r.clone();
            if let Some(m) = r.as_object_mut() {
                m.remove("instance");
            }
            r
        })
        .collect();
    out.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    out
}

/// Poll until `f` holds or the deadline passes.
async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    common::wait_for(what, || {
        let fut = f();
        async move { fut.await.then_some(()) }
    })
    .await
}

/// A prod app Git has moved past, as status reports it.
async fn pending_prod(w: &World) -> String {
    let rows = w.status(Mode::Core).await;
    rows.iter()
        .find(|r| r["environment"] == "prod" && r["out_of_sync"] == "pending-change")
        .and_then(|r| r["name"].as_str())
        .map(str::to_owned)
        .expect("the estate has a prod app waiting for a sync")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_is_the_same_in_core_and_api_mode() {
    let w = start().await;
    // Controllers may be mid-change on a loaded machine: the two listings must agree once
    // nothing moves between them.
    let core = common::wait_ok("core and API mode to agree", DEADLINE, || async {
        let core = comparable(&w.status(Mode::Core).await);
        let api = comparable(&w.status(Mode::Api).await);
        if core == api {
            Ok(core)
        } else {
            Err(format!("core {core:#?}\napi {api:#?}"))
        }
    })
    .await;
    assert!(!core.is_empty(), "no apps listed");
    let first = &core[0];
    for k in [
        "name",
        "environment",
        "service",
        "sync",
        "health",
        "revision",
        "deployed_revision",
        "out_of_sync",
        "auto_sync",
    ] {
        assert!(first.get(k).is_some(), "field {k} missing in {first}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_matches_the_sandbox_truth() {
    let w = start().await;
    let truth_url = format!("{}/_sandbox/truth", w.sandbox.url);
    common::wait_ok("status to match the sandbox truth", DEADLINE, || async {
        let truth: Vec<Value> = reqwest::get(&truth_url)
            .await
            .expect("truth")
            .json()
            .await
            .expect("truth is JSON");
        let rows = comparable(&w.status(Mode::Core).await);
        let ours: Vec<Value> = rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "name": r["name"], "environment": r["environment"], "service": r["service"],
                    "sync": r["sync"], "health": r["health"], "revision": r["revision"],
                    "deployed_revision": r["deployed_revision"],
                    "cause": if r["out_of_sync"].is_null() { Value::from("none") } else { r["out_of_sync"].clone() },
                    "auto_sync": r["auto_sync"],
                })
            })
            .collect();
        let theirs: Vec<Value> = truth
            .iter()
            .map(|t| {
                serde_json::json!({
                    "name": t["name"], "environment": t["environment"], "service": t["service"],
                    "sync": t["sync"], "health": t["health"], "revision": t["revision"],
                    "deployed_revision": t["deployed_revision"], "cause": t["cause"],
                    "auto_sync": t["auto_sync"],
                })
            })
            .collect();
        if ours == theirs {
            Ok(())
        } else {
            Err(format!("ours {ours:#?}\ntruth {theirs:#?}"))
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gated_sync_is_refused_then_approved_and_waited_for() {
    let w = start().await;
    let app = pending_prod(&w).await;
    let diff = w.run(Mode::Core, &["diff", &app]).await;
    assert_eq!(
        diff.code, 1,
        "diff of a pending change exits 1: {}",
        diff.stderr
    );
    assert!(diff.stdout.contains("image "), "{}", diff.stdout);

    let refused = w.run(Mode::Core, &["sync", &app]).await;
    assert_eq!(refused.code, 3, "{}", refused.stderr);
    assert!(
        refused
            .stderr
            .contains(&format!("--approve {app} --reason")),
        "{}",
        refused.stderr
    );
    // A refusal sends nothing, and the attempt is recorded with the reason.
    let refusals = w.audit();
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    assert_eq!(
        (
            refusals[0]["action"].as_str(),
            refusals[0]["outcome"].as_str()
        ),
        (Some("sync"), Some("refused"))
    );
    assert!(
        refusals[0]["detail"]
            .as_str()
            .unwrap_or("")
            .contains(&format!("--approve {app} --reason")),
        "{refusals:?}"
    );

    let reason_missing = w.run(Mode::Core, &["sync", &app, "--approve", &app]).await;
    assert_eq!(reason_missing.code, 3, "{}", reason_missing.stderr);

    let ok = w
        .run(
            Mode::Core,
            &[
                "sync",
                &app,
                "--approve",
                &app,
                "--reason",
                "release 42",
                "--wait",
                "--timeout",
                "60",
            ],
        )
        .await;
    assert_eq!(ok.code, 0, "approved sync: {}\n{}", ok.stdout, ok.stderr);
    // After the two refused attempts (no approval, no reason).
    let audit = w.audit().split_off(2);
    let actions: Vec<(&str, &str)> = audit
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap_or(""),
                r["outcome"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("approve", "approved"),
            ("sync", "started"),
            ("sync", "succeeded")
        ]
    );
    assert_eq!(audit[0]["who"], "e2e-operator");
    assert_eq!(audit[0]["reason"], "release 42");
    assert_eq!(audit[2]["approval_id"], audit[0]["approval_id"]);
    assert_eq!(audit[0]["diff_digest"].as_str().map(str::len), Some(64));
    let row = w.app(Mode::Core, &app).await;
    assert_eq!(
        (row["sync"].as_str(), row["health"].as_str()),
        (Some("Synced"), Some("Healthy"))
    );
    // Core mode also leaves a Kubernetes Event on the Application, for other consoles.
    let (events, _) = w.sandbox.world.store.list(
        shipdeck::sandbox::IN_CLUSTER,
        shipdeck::sandbox::store::EVENTS,
        Some("argocd"),
    );
    assert!(
        events.iter().any(|e| e["reason"] == "ShipdeckSync"
            && e["involvedObject"]["name"] == app.as_str()
            && e["message"]
                .as_str()
                .is_some_and(|m| m.contains("e2e-operator"))),
        "no ShipdeckSync event on {app}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_with_auto_sync_is_refused_until_asked_to_disable_it() {
    let w = start().await;
    let rows = w.status(Mode::Core).await;
    let app = rows
        .iter()
        .find(|r| r["environment"] == "dev" && r["auto_sync"] == true && r["sync"] == "Synced")
        .and_then(|r| r["name"].as_str())
        .map(str::to_owned)
        .expect("an auto-synced dev app");
    let history = w.run(Mode::Core, &["history", &app, "-o", "json"]).await;
    assert_eq!(history.code, 0, "{}", history.stderr);
    let entries: Vec<Value> = serde_json::from_str(&history.stdout).expect("history JSON");
    assert!(
        entries.len() >= 2,
        "{app} needs a previous deployment: {entries:?}"
    );

    let refused = w.run(Mode::Core, &["rollback", &app]).await;
    assert_eq!(refused.code, 3, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("--disable-auto-sync"),
        "{}",
        refused.stderr
    );

    let unknown = w
        .run(
            Mode::Core,
            &["rollback", &app, "--id", "9999", "--disable-auto-sync"],
        )
        .await;
    assert_eq!(unknown.code, 5, "{}", unknown.stderr);

    let done = w
        .run(
            Mode::Core,
            &[
                "rollback",
                &app,
                "--disable-auto-sync",
                "--wait",
                "--timeout",
                "60",
            ],
        )
        .await;
    assert!(done.stderr.contains("stays disabled"), "{}", done.stderr);
    assert_eq!(done.code, 0, "{}\n{}", done.stdout, done.stderr);
    // The rollback is the newest deployment, by the operator, at the previous revision,
    // and auto-sync stays off (the sandbox's app-of-apps syncs by hand, so nothing
    // re-applies the child's sync policy from Git).
    let row = w.app(Mode::Core, &app).await;
    assert_eq!(row["auto_sync"], false, "auto-sync stays disabled: {row}");
    assert_eq!(row["deployed_revision"], entries[1]["revision"], "{row}");
    let after = w.run(Mode::Core, &["history", &app, "-o", "json"]).await;
    let after: Vec<Value> = serde_json::from_str(&after.stdout).expect("history JSON");
    let newest_before = entries[0]["id"].as_i64().expect("id");
    assert!(
        after.iter().any(|h| h["initiated_by"] == "e2e-operator"
            && h["revision"] == entries[1]["revision"]
            && h["id"].as_i64().is_some_and(|id| id > newest_before)),
        "no rollback deployment by the operator: {after:?}"
    );
    let actions: Vec<String> = w
        .audit()
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r["action"].as_str().unwrap_or(""),
                r["outcome"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            "rollback refused",
            "disable-auto-sync started",
            "rollback started",
            "rollback succeeded"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_refuses_every_mutation() {
    let w = start().await;
    let app = pending_prod(&w).await;
    for args in [
        vec![
            "sync",
            app.as_str(),
            "--approve",
            app.as_str(),
            "--reason",
            "x",
        ],
        vec!["rollback", app.as_str(), "--disable-auto-sync"],
        vec!["build", "--workflow", "build.yml"],
    ] {
        let mut a = args.clone();
        a.push("--read-only");
        let out = w.run(Mode::Core, &a).await;
        assert_eq!(out.code, 3, "{a:?}: {}", out.stderr);
        assert!(out.stderr.contains("read-only"), "{}", out.stderr);
    }
    // Nothing was sent; each attempt is recorded as refused, with the reason.
    let audit = w.audit();
    let outcomes: Vec<(&str, &str)> = audit
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap_or(""),
                r["outcome"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            ("sync", "refused"),
            ("rollback", "refused"),
            ("build", "refused")
        ]
    );
    assert!(
        audit
            .iter()
            .all(|r| r["detail"].as_str().unwrap_or("").contains("read-only")),
        "{audit:?}"
    );
    // Reading still works.
    assert_eq!(w.run(Mode::Core, &["status", "--read-only"]).await.code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewer_is_denied_and_nothing_is_sent() {
    let w = start().await;
    let rows = w.status(Mode::Viewer).await;
    let app = rows
        .iter()
        .find(|r| r["environment"] == "dev")
        .and_then(|r| r["name"].as_str())
        .map(str::to_owned)
        .expect("a dev app");
    let out = w.run(Mode::Viewer, &["sync", &app]).await;
    assert_eq!(out.code, 4, "{}", out.stderr);
    assert!(out.stderr.contains("permission denied"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_token_says_how_to_log_in() {
    let w = start().await;
    w.fault(serde_json::json!({"fault": "expire-tokens"})).await;
    let out = w.run(Mode::Api, &["status"]).await;
    assert_eq!(out.code, 4, "{}", out.stderr);
    assert!(
        out.stderr.contains("shipdeck login argocd"),
        "{}",
        out.stderr
    );
    let out = w.run(Mode::Core, &["status"]).await;
    assert_eq!(out.code, 4, "core mode too: {}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicts_are_retried_in_core_mode() {
    let w = start().await;
    let rows = w.status(Mode::Core).await;
    let app = rows
        .iter()
        .find(|r| r["environment"] == "dev")
        .and_then(|r| r["name"].as_str())
        .map(str::to_owned)
        .expect("a dev app");
    w.fault(serde_json::json!({"fault": "conflict", "count": 2}))
        .await;
    let out = w.run(Mode::Core, &["sync", &app]).await;
    assert_eq!(out.code, 0, "a conflict is retried: {}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_or_failing_server_ends_in_a_message_not_a_hang() {
    let w = start().await;
    // Slow but within the client's patience: the answer still comes.
    w.fault(
        serde_json::json!({"fault": "delay", "path": "/applications", "ms": 300, "seconds": 20}),
    )
    .await;
    let out = w.run(Mode::Core, &["status", "-o", "json"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    // Failing: a clear message and the unreachable/failed code, never a panic.
    let w2 = start().await;
    w2.fault(serde_json::json!({"fault": "fail", "path": "/applications", "status": 503}))
        .await;
    let out = w2.run(Mode::Core, &["status"]).await;
    assert_ne!(out.code, 0);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    assert!(out.stderr.starts_with("shipdeck: "), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_is_told_from_a_pending_change() {
    let w = start().await;
    let rows = w.status(Mode::Core).await;
    let app = rows
        .iter()
        .find(|r| r["environment"] == "prod" && r["sync"] == "Synced" && r["auto_sync"] == false)
        .cloned()
        .expect("a synced manual prod app");
    let name = app["name"].as_str().unwrap_or_default().to_string();
    // Scale one of its Deployments behind Argo CD's back.
    let client = reqwest::Client::new();
    let token = w.var("SHIPDECK_SANDBOX_ADMIN_TOKEN");
    // Find one of its Deployments in whichever cluster it lives.
    let mut found = None;
    for c in shipdeck::sandbox::files::cluster_names(&w.sandbox.world) {
        let base = shipdeck::sandbox::files::cluster_url(&w.sandbox.world, &c);
        let list: Value = client
            .get(format!(
                "{base}/apis/apps/v1/deployments?labelSelector=app.kubernetes.io%2Finstance%3D{name}"
            ))
            .bearer_auth(&token)
            .send()
            .await
            .expect("list deployments")
            .json()
            .await
            .expect("JSON");
        if let Some(d) = list["items"].get(0) {
            found = Some((
                base,
                d["metadata"]["namespace"]
                    .as_str()
                    .expect("namespace")
                    .to_string(),
                d["metadata"]["name"].as_str().expect("name").to_string(),
            ));
            break;
        }
    }
    let (base, ns, dn) = found.expect("a Deployment of the app");
    let r = client
        .patch(format!(
            "{base}/apis/apps/v1/namespaces/{ns}/deployments/{dn}"
        ))
        .bearer_auth(&token)
        .header("Content-Type", "application/merge-patch+json")
        .body(r#"{"spec":{"replicas":7}}"#)
        .send()
        .await
        .expect("patch");
    assert!(r.status().is_success(), "patch: {}", r.status());
    let _ = reqwest::Client::new()
        .post(format!("{}/_sandbox/refresh", w.sandbox.url))
        .send()
        .await;
    eventually("drift shows", || async {
        w.app(Mode::Core, &name).await["out_of_sync"] == "drift"
    })
    .await;
    let diff = w.run(Mode::Core, &["diff", &name]).await;
    assert_eq!(diff.code, 1, "{}", diff.stderr);
    assert!(diff.stdout.contains("-> "), "{}", diff.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn build_then_prod_waits_then_approved_sync() {
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
    let repo = format!("{}/{}", est.github.owner, est.github.repo);
    // A prod app that is in sync now: after the build it must wait for an operator.
    let rows = w.status(Mode::Core).await;
    let prod = rows
        .iter()
        .find(|r| {
            r["environment"] == "prod"
                && r["sync"] == "Synced"
                && r["auto_sync"] == false
                && !est.fails_builds(r["service"].as_str().unwrap_or(""))
        })
        .cloned()
        .expect("a synced manual prod app");
    let name = prod["name"].as_str().expect("name").to_string();
    let service = prod["service"].as_str().expect("service").to_string();

    let mut cmd_vars = w
        .run(
            Mode::Core,
            &[
                "build",
                "--workflow",
                &wf,
                "--repo",
                &repo,
                "--input",
                &format!("service={service}"),
                "--wait",
                "--timeout",
                "120",
                "--read-only",
            ],
        )
        .await;
    assert_eq!(
        cmd_vars.code, 3,
        "read-only refuses a build: {}",
        cmd_vars.stderr
    );
    cmd_vars = w
        .run_with(
            Mode::Core,
            &[
                "build",
                "--workflow",
                &wf,
                "--repo",
                &repo,
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
    assert_eq!(
        cmd_vars.code, 0,
        "build: {}\n{}",
        cmd_vars.stdout, cmd_vars.stderr
    );

    let _ = reqwest::Client::new()
        .post(format!("{}/_sandbox/refresh", w.sandbox.url))
        .send()
        .await;
    eventually("prod waits for an operator", || async {
        w.app(Mode::Core, &name).await["out_of_sync"] == "pending-change"
    })
    .await;
    let refused = w.run(Mode::Core, &["sync", &name]).await;
    assert_eq!(refused.code, 3, "{}", refused.stderr);
    let ok = w
        .run(
            Mode::Api,
            &[
                "sync",
                &name,
                "--approve",
                &name,
                "--reason",
                "ship it",
                "--wait",
                "--timeout",
                "120",
            ],
        )
        .await;
    assert_eq!(ok.code, 0, "{}\n{}", ok.stdout, ok.stderr);
    let audit = w.audit();
    assert!(
        audit
            .iter()
            .any(|r| r["action"] == "build" && r["outcome"] == "started")
    );
    assert!(audit.iter().any(|r| r["action"] == "sync"
        && r["outcome"] == "succeeded"
        && r["app"] == name.as_str()));
}
