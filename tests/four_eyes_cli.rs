//! Four-eyes approvals headless, with the real `shipdeck` binary against a sandbox started
//! in the test, as two people would run it: the admin requests a sync (exit 3, nothing
//! sent) and cannot approve it; `shipdeck approve APP` shows it; the approver approves it in
//! API mode (`SHIPDECK_SANDBOX_APPROVER_TOKEN`, userinfo) and the sync runs with both names;
//! a rollback request by the admin is approved by the approver in core mode (kubeconfig
//! context `approver@in-cluster`, SelfSubjectReview). The oracle is the Application as the sandbox's
//! Kubernetes API returns it, and the audit log's lines.

mod cli_support;

use cli_support::{Mode, World};
use serde_json::Value;

const CONFIG: &str = "[environments.policy.prod]\napproval = \"required\"\napprovers = 2\n";

fn request_of(app: &Value) -> Option<Value> {
    app["metadata"]["annotations"]["shipdeck.io/approval-request"]
        .as_str()
        .map(|s| serde_json::from_str(s).expect("request is JSON"))
}

fn info(app: &Value) -> Vec<(String, String)> {
    app["status"]["operationState"]["operation"]["info"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| {
            (
                i["name"].as_str().unwrap_or("").to_string(),
                i["value"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn has(info: &[(String, String)], k: &str, v: &str) -> bool {
    info.iter().any(|(a, b)| a == k && b == v)
}

async fn request(w: &World, cfg: &str, args: &[&str], app: &str) -> Value {
    let mut all = vec!["--config", cfg];
    all.extend_from_slice(args);
    let out = w.run(Mode::Api, &all).await;
    assert_eq!(out.code, 3, "a request is not a send: {}", out.stderr);
    assert!(
        out.stderr.contains("needs a second approver") && out.stderr.contains("shipdeck approve"),
        "{}",
        out.stderr
    );
    let live = w.application(app).await;
    assert!(live["operation"].is_null(), "nothing sent");
    request_of(&live).expect("the request is on the Application")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_people_headless_sync_and_rollback() {
    let w = cli_support::start().await;
    let cfg = w.config("four-eyes.toml", CONFIG);
    let approver_token = w.var("SHIPDECK_SANDBOX_APPROVER_TOKEN");
    assert!(!approver_token.is_empty(), "the env file exports it");
    assert_eq!(
        w.var("SHIPDECK_SANDBOX_APPROVER_CONTEXT"),
        "approver@in-cluster"
    );

    // --- Sync: the admin requests.
    let app = "cart-prod";
    let req = request(
        &w,
        &cfg,
        &["sync", app, "--approve", app, "--reason", "release 42"],
        app,
    )
    .await;
    assert_eq!(req["requestedBy"], "admin");
    let id = req["id"].as_str().expect("id").to_string();

    // The admin cannot approve it (exit 3, audited); nothing is sent.
    let out = w
        .run(
            Mode::Api,
            &[
                "--config",
                &cfg,
                "approve",
                app,
                "--request",
                &id,
                "--approve",
                app,
                "--reason",
                "mine",
            ],
        )
        .await;
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("cannot approve it"), "{}", out.stderr);
    assert!(w.application(app).await["operation"].is_null());

    // Anyone can see it.
    let out = w.run(Mode::Api, &["--config", &cfg, "approve", app]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("requested by admin")
            && out.stdout.contains("release 42")
            && out.stdout.contains("waiting for a second approver"),
        "{}",
        out.stdout
    );

    // The approver in API mode, with the approver's Argo CD token.
    let out = w
        .run_with(
            Mode::Api,
            &[
                "--config",
                &cfg,
                "approve",
                app,
                "--request",
                &id,
                "--approve",
                app,
                "--reason",
                "diff reviewed",
                "--wait",
                "--timeout",
                "120",
            ],
            &[("ARGOCD_AUTH_TOKEN", approver_token.clone())],
        )
        .await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let live = w.application(app).await;
    assert!(request_of(&live).is_none(), "consumed");
    let i = info(&live);
    assert!(has(&i, "requested-by", "admin"), "{i:?}");
    assert!(has(&i, "approved-by", "approver"), "{i:?}");
    assert!(has(&i, "approval-id", &id), "{i:?}");
    assert_eq!(live["status"]["operationState"]["phase"], "Succeeded");

    // --- Rollback: the admin requests a rollback to the previous deployment.
    let app = "notifications-prod";
    let before = w.application(app).await;
    let history = before["status"]["history"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(history.len() >= 2, "{app} has a previous deployment");
    let prev = &history[history.len() - 2];
    let req = request(
        &w,
        &cfg,
        &["rollback", app, "--approve", app, "--reason", "bad release"],
        app,
    )
    .await;
    assert_eq!(req["action"], "rollback");
    assert_eq!(req["historyId"], prev["id"]);
    assert_eq!(req["targetRevision"], prev["revision"]);
    let id = req["id"].as_str().expect("id").to_string();
    // The approver in core mode, through their own kubeconfig context (SelfSubjectReview).
    // (Core mode, because Argo CD's rollback API carries no info entries: over the API the
    // names are in the audit log only.)
    let out = w
        .run(
            Mode::Core,
            &[
                "--config",
                &cfg,
                "--context",
                "approver@in-cluster",
                "approve",
                app,
                "--request",
                &id,
                "--approve",
                app,
                "--reason",
                "agreed",
                "--wait",
                "--timeout",
                "120",
            ],
        )
        .await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let live = w.application(app).await;
    let after = live["status"]["history"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    // Exactly one deployment: the newest id one up (Argo CD keeps the last ten entries, so
    // the length stops growing).
    let last_id = |h: &[Value]| h.last().and_then(|e| e["id"].as_u64()).unwrap_or(0);
    assert_eq!(
        last_id(&after),
        last_id(&history) + 1,
        "exactly one deployment"
    );
    assert_eq!(
        after.last().map(|h| h["revision"].clone()),
        Some(prev["revision"].clone()),
        "rolled back to the requested revision"
    );
    let i = info(&live);
    assert!(
        has(&i, "requested-by", "admin") && has(&i, "approved-by", "approver"),
        "{i:?}"
    );

    // The audit log tells the story.
    let audit = w.audit();
    let line = |action: &str, outcome: &str, who: &str| {
        audit
            .iter()
            .any(|l| l["action"] == action && l["outcome"] == outcome && l["who"] == who)
    };
    assert!(line("request", "requested", "admin"), "{audit:?}");
    assert!(line("approve", "approved", "approver"), "{audit:?}");
    assert!(
        audit
            .iter()
            .any(|l| l["action"] == "approve" && l["outcome"] == "refused"),
        "{audit:?}"
    );
    w.sandbox.stop().await;
}
