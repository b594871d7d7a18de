//! Incident freeze end to end: the real `shipdeck` binary freezes an environment (API mode
//! through the projects API, core mode on the AppProject), and kubectl, as an independent
//! client and oracle, sees the window, has its own `.operation` patch held by the sandbox's
//! window check as Argo CD's controller holds it, and sees the window gone (other windows
//! intact) after `unfreeze`. Auto-sync is held meanwhile; `shipdeck sync` is refused with
//! the window named; unfreezing production needs the approval a sync needs.

mod cli_support;

use cli_support::{Mode, World, start};
use serde_json::{Value, json};
use shipdeck::sandbox::estate::{ImageBump, apply_bump};
use std::process::Command;
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(60);

fn kubectl_available() -> bool {
    Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn kubectl(w: &World, args: &[&str]) -> String {
    let out = Command::new("kubectl")
        .env("KUBECONFIG", w.var("KUBECONFIG"))
        .args(args)
        .output()
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn kjson(w: &World, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    serde_json::from_str(&kubectl(w, &all)).expect("kubectl json")
}

fn windows(w: &World, project: &str) -> Vec<Value> {
    kjson(w, &["get", "appproject", "-n", "argocd", project])["spec"]["syncWindows"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn freeze_windows(w: &World, project: &str, env: &str) -> Vec<Value> {
    let mark = format!("shipdeck-freeze env={env} ");
    windows(w, project)
        .into_iter()
        .filter(|x| {
            x["description"]
                .as_str()
                .is_some_and(|d| d.starts_with(&mark))
        })
        .collect()
}

fn app(w: &World, name: &str) -> Value {
    kjson(w, &["get", "application", "-n", "argocd", name])
}

async fn until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let end = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < end,
            "gave up waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn freeze_holds_every_client_and_unfreeze_removes_exactly_its_window() {
    if !kubectl_available() {
        eprintln!("SKIP: kubectl is not installed");
        return;
    }
    let w = start().await;
    let others_before = windows(&w, "prod");
    assert!(
        !others_before.is_empty(),
        "the estate's prod project has a window of its own"
    );

    // Read-only refuses, and nothing is written.
    let out = w
        .run(
            Mode::Api,
            &["--read-only", "freeze", "prod", "--reason", "x"],
        )
        .await;
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("read-only"), "{}", out.stderr);
    assert!(freeze_windows(&w, "prod", "prod").is_empty());

    // API mode: freeze prod until further notice.
    let out = w
        .run(
            Mode::Api,
            &["freeze", "prod", "--reason", "incident 42: db failover"],
        )
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let mine = freeze_windows(&w, "prod", "prod");
    assert_eq!(mine.len(), 1, "{mine:?}");
    assert_eq!(mine[0]["kind"], "deny");
    assert_eq!(mine[0]["schedule"], "* * * * *");
    assert!(
        mine[0]["applications"]
            .as_array()
            .unwrap()
            .contains(&json!("cart-prod"))
    );
    assert!(
        mine[0]["description"]
            .as_str()
            .unwrap()
            .ends_with(": incident 42: db failover")
    );
    // The estate's own windows are untouched.
    for o in &others_before {
        assert!(windows(&w, "prod").contains(o), "lost {o}");
    }
    // `freeze --list` shows who, why and until when.
    let who = w
        .audit()
        .iter()
        .find(|r| r["action"] == "freeze" && r["outcome"] == "succeeded")
        .and_then(|r| r["who"].as_str().map(String::from))
        .expect("the freeze is audited");
    let out = w.run(Mode::Api, &["freeze", "--list"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains(&format!(
            "FROZEN prod by {who} until further notice: incident 42: db failover"
        )),
        "{}",
        out.stdout
    );

    // shipdeck's own sync is refused, naming the deny window.
    let out = w
        .run(
            Mode::Api,
            &[
                "sync",
                "checkout-prod",
                "--approve",
                "checkout-prod",
                "--reason",
                "r",
            ],
        )
        .await;
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(
        out.stderr.contains("blocked by sync window") && out.stderr.contains("deny * * * * *"),
        "{}",
        out.stderr
    );

    // A plain kubectl patch of .operation: the controller holds it as Argo CD's does.
    let history_before = deployments(&app(&w, "cart-prod"));
    kubectl(
        &w,
        &[
            "patch",
            "application",
            "-n",
            "argocd",
            "cart-prod",
            "--type",
            "merge",
            "-p",
            r#"{"operation":{"initiatedBy":{"username":"kubectl-user"},"sync":{"revision":"HEAD"}}}"#,
        ],
    );
    let held = until("the kubectl operation held by the window", || {
        let a = app(&w, "cart-prod");
        (a["status"]["operationState"]["message"] == "Sync operation blocked by sync window")
            .then_some(a)
    })
    .await;
    assert_eq!(held["status"]["operationState"]["phase"], "Running");
    assert_eq!(deployments(&held), history_before);

    // Unfreezing production needs the approval a sync needs.
    let out = w.run(Mode::Api, &["unfreeze", "prod"]).await;
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("--approve prod"), "{}", out.stderr);
    let out = w
        .run(
            Mode::Api,
            &["unfreeze", "prod", "--approve", "staging", "--reason", "r"],
        )
        .await;
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert_eq!(freeze_windows(&w, "prod", "prod").len(), 1);
    let out = w
        .run(
            Mode::Api,
            &[
                "unfreeze",
                "prod",
                "--approve",
                "prod",
                "--reason",
                "incident over",
            ],
        )
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(freeze_windows(&w, "prod", "prod").is_empty());
    assert_eq!(windows(&w, "prod"), others_before, "other windows intact");
    // The held operation goes ahead once the window is gone.
    let done = until("the held operation to finish", || {
        let a = app(&w, "cart-prod");
        (a["status"]["operationState"]["phase"] == "Succeeded").then_some(a)
    })
    .await;
    assert_eq!(deployments(&done), history_before + 1);

    // The audit log has both, under the names notifications fan out.
    let audit = w.audit();
    let ok = |action: &str| {
        audit.iter().any(|r| {
            r["action"] == action && r["outcome"] == "succeeded" && r["environment"] == "prod"
        })
    };
    assert!(ok("freeze") && ok("unfreeze"), "{audit:?}");
    assert!(
        audit
            .iter()
            .any(|r| r["action"] == "unfreeze" && r["outcome"] == "refused")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn core_mode_freeze_holds_auto_sync_until_unfrozen() {
    if !kubectl_available() {
        eprintln!("SKIP: kubectl is not installed");
        return;
    }
    let w = start().await;
    let out = w
        .run(
            Mode::Core,
            &["freeze", "dev", "--reason", "hold dev", "--until", "2h"],
        )
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let mine = freeze_windows(&w, "default", "dev");
    assert_eq!(mine.len(), 1, "{mine:?}");
    // A one-off window: the minute before the freeze, for about two hours.
    let minutes: i64 = mine[0]["duration"]
        .as_str()
        .and_then(|d| d.strip_suffix('m'))
        .and_then(|m| m.parse().ok())
        .expect("duration in minutes");
    assert!((120..=123).contains(&minutes), "{minutes}");
    assert!(mine[0]["schedule"].as_str().unwrap().ends_with(" *"));

    // CI bumps dev: Argo CD sees the new revision but does not auto-sync it.
    let before = app(&w, "checkout-dev");
    let started_before = before["status"]["operationState"]["startedAt"].clone();
    let sha = apply_bump(
        &w.sandbox.world,
        &ImageBump {
            service: "checkout".into(),
            environment: "dev".into(),
            tag: "sha-freeze1".into(),
        },
        "ci",
    )
    .expect("bump");
    let seen = until("the controller to compare the bump", || {
        let a = app(&w, "checkout-dev");
        (a["status"]["sync"]["revision"] == json!(sha)).then_some(a)
    })
    .await;
    assert_eq!(seen["status"]["sync"]["status"], "OutOfSync");
    assert!(seen.get("operation").is_none_or(Value::is_null), "{seen}");
    assert_eq!(
        seen["status"]["operationState"]["startedAt"],
        started_before
    );

    // Unfreeze (dev is not gated): exactly the window goes, and auto-sync catches up.
    let out = w.run(Mode::Core, &["unfreeze", "dev"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(freeze_windows(&w, "default", "dev").is_empty());
    until("checkout-dev to auto-sync the bump", || {
        let a = app(&w, "checkout-dev");
        (a["status"]["sync"]["status"] == "Synced"
            && a["status"]["operationState"]["syncResult"]["revision"] == json!(sha))
        .then_some(())
    })
    .await;
    // Nothing left to unfreeze: not found.
    let out = w.run(Mode::Core, &["unfreeze", "dev"]).await;
    assert_eq!(out.code, 5, "{}", out.stderr);
}

/// The projects API as Argo CD serves it: a write with a stale resourceVersion is 409 and
/// changes nothing; an invalid window is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projects_api_refuses_stale_and_invalid_writes() {
    let w = start().await;
    let base = w.var("ARGOCD_SERVER");
    let token = w.var("ARGOCD_AUTH_TOKEN");
    let http = reqwest::Client::new();
    let get = || async {
        http.get(format!("{base}/api/v1/projects/prod"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    let put = |p: Value| {
        let http = http.clone();
        let url = format!("{base}/api/v1/projects/prod");
        let token = token.clone();
        async move {
            let r = http
                .put(url)
                .bearer_auth(token)
                .json(&json!({"project": p}))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let p = get().await;
    assert_eq!(p["metadata"]["name"], "prod");
    let mut a = p.clone();
    a["spec"]["description"] = json!("first");
    let (code, _) = put(a).await;
    assert_eq!(code, 200);
    let mut stale = p.clone();
    stale["spec"]["description"] = json!("second");
    let (code, body) = put(stale).await;
    assert_eq!(code, 409, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("the object has been modified")
    );
    assert_eq!(get().await["spec"]["description"], "first");
    let mut bad = get().await;
    bad["spec"]["syncWindows"] =
        json!([{"kind": "deny", "schedule": "every day", "duration": "1h"}]);
    let (code, body) = put(bad).await;
    assert_eq!(code, 400, "{body}");
    // The viewer may read projects but not change them.
    let viewer = w.var("SHIPDECK_SANDBOX_VIEWER_TOKEN");
    let r = http
        .put(format!("{base}/api/v1/projects/prod"))
        .bearer_auth(viewer)
        .json(&json!({"project": get().await}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
}

/// Deployments recorded: the newest history entry's id (Argo CD numbers entries one up per
/// deployment and keeps the last ten, so the length stops growing; the id does not).
fn deployments(app: &serde_json::Value) -> u64 {
    app["status"]["history"]
        .as_array()
        .and_then(|h| h.last())
        .and_then(|e| e["id"].as_u64())
        .unwrap_or(0)
}
