//! Following an operation to its end (issue 9): a sync that Argo CD ends `Failed` (an
//! object the API server refuses on apply) ends with ✗ and Argo CD's own message, in the
//! headless command (exit 6, audit `failed`) and on the console's approval screen, and the
//! earlier operation's `Succeeded` never stands beside it. The refusal is the sandbox's
//! `deny-apply` fault (an admission webhook denying the controller's apply); the oracle is
//! the Application's `status.operationState` read with kube-rs (headless) or from the
//! sandbox's own store (console).

mod cli_support;

use cli_support::{Mode, World, eventually, start};
use serde_json::{Value, json};

const DENIAL: &str = "image registry ghcr.io/acme is not allowed in prod";

/// The name of the app's Deployment, as Argo CD's managed-resources says.
async fn deployment(w: &World, app: &str) -> String {
    let v: Value = reqwest::Client::new()
        .get(format!(
            "{}/api/v1/applications/{app}/managed-resources",
            w.var("ARGOCD_SERVER")
        ))
        .bearer_auth(w.var("ARGOCD_AUTH_TOKEN"))
        .send()
        .await
        .expect("managed-resources")
        .json()
        .await
        .expect("json");
    v["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|i| i["kind"] == "Deployment")
        .and_then(|d| d["name"].as_str())
        .expect("a Deployment")
        .to_string()
}

fn sync_args<'a>(app: &'a str, reason: &'a str) -> Vec<&'a str> {
    vec![
        "sync",
        app,
        "--approve",
        app,
        "--reason",
        reason,
        "--wait",
        "--timeout",
        "600",
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_argo_cd_ends_failed_exits_6_with_its_message_and_is_audited() {
    let w = start().await;
    let app = "checkout-prod";
    // An earlier operation that Succeeded.
    let out = w.run(Mode::Api, &sync_args(app, "first")).await;
    assert_eq!(out.code, 0, "the first sync succeeds: {}", out.stderr);
    let first = w.application(app).await["status"]["operationState"].clone();
    assert_eq!(first["phase"], "Succeeded", "{first}");

    // No wait for the clock: the follower knows its operation by its `shipdeck-op` id.
    let name = deployment(&w, app).await;
    w.fault(json!({"fault": "deny-apply", "kind": "Deployment", "name": name, "message": DENIAL}))
        .await;
    let out = w.run(Mode::Api, &sync_args(app, "second")).await;
    assert_eq!(out.code, 6, "exit 6 (failed); stderr: {}", out.stderr);

    // The oracle: the Application's operationState as the Kubernetes API holds it.
    let op = w.application(app).await["status"]["operationState"].clone();
    assert_eq!(op["phase"], "Failed", "{op}");
    assert_ne!(
        op["operation"]["info"], first["operation"]["info"],
        "a new operation"
    );
    let message = op["message"].as_str().expect("a message").to_string();
    assert!(
        message.starts_with("one or more objects failed to apply, reason: admission webhook")
            && message.contains(DENIAL),
        "Argo CD's wording: {message}"
    );
    assert!(
        out.stderr.contains("✗ sync of checkout-prod failed")
            && out.stderr.contains("operation Failed")
            && out.stderr.contains(&message),
        "one ✗ line with Argo CD's message {message:?}: {}",
        out.stderr
    );
    assert!(!out.stderr.contains("Succeeded"), "{}", out.stderr);

    let audit = w.audit();
    let last = audit
        .iter()
        .rev()
        .find(|r| r["app"] == app && r["action"] == "sync")
        .expect("a sync record");
    assert_eq!(last["outcome"], "failed", "{last}");
    assert!(
        last["detail"].as_str().unwrap_or_default().contains(DENIAL),
        "{last}"
    );

    // The fault lifts: the next sync succeeds again (the denial was the only cause).
    w.clear_faults().await;
    let out = w.run(Mode::Api, &sync_args(app, "third")).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    eventually("operationState Succeeded", || async {
        w.application(app).await["status"]["operationState"]["phase"] == "Succeeded"
    })
    .await;
    w.sandbox.stop().await;
}

/// The console half: after an earlier sync Succeeded, the approval screen's follow of a
/// sync Argo CD ends `Failed` shows ✗ with Argo CD's message, and no "operation
/// Succeeded" line from the earlier operation beside it.
mod console {
    use super::DENIAL;
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    use serde_json::{Value, json};
    use shipdeck::ops::actions::Ops;
    use shipdeck::ops::audit::AuditLog;
    use shipdeck::ops::estate::Estate;
    use shipdeck::ops::policy::Policies;
    use shipdeck::sandbox::auth::Role;
    use shipdeck::secrets::Secret;
    use shipdeck::sources::argocd::{ArgoApi, ArgoApiOptions};
    use shipdeck::sources::{ArgoSource, Refresh};
    use shipdeck::tui::adapt::ArgoProvider;
    use shipdeck::tui::app::Headless;
    use shipdeck::tui::console::{Console, Settings};
    use shipdeck::tui::request::Provider;
    use std::sync::Arc;
    use std::time::Duration;

    fn press(h: &mut Headless, code: KeyCode) {
        h.key(KeyEvent::new(code, KeyModifiers::NONE));
    }

    /// The Application's operationState as the sandbox's store holds it (the oracle).
    fn op_state(sb: &shipdeck::sandbox::Sandbox, name: &str) -> Value {
        sb.world
            .store
            .get(
                shipdeck::sandbox::IN_CLUSTER,
                shipdeck::sandbox::store::APPLICATIONS,
                shipdeck::sandbox::ARGOCD_NAMESPACE,
                name,
            )
            .map(|a| a["status"]["operationState"].clone())
            .unwrap_or(Value::Null)
    }

    async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
        let end = tokio::time::Instant::now() + Duration::from_secs(120);
        while !f() {
            assert!(tokio::time::Instant::now() < end, "timed out: {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_approval_screen_ends_with_argo_cds_message_and_no_stale_success() {
        let sb = shipdeck::sandbox::Sandbox::start(shipdeck::sandbox::SandboxOptions {
            time_scale: 0.02,
            ..Default::default()
        })
        .await
        .expect("sandbox");
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let token = sb.world.users.token(Role::Admin);
        let api = ArgoApi::new(ArgoApiOptions {
            name: Some("sandbox".into()),
            server: sb.url.clone(),
            token: Some(Secret::new(token.clone())),
            workload_poll: Some(Duration::from_millis(100)),
            ..Default::default()
        })
        .unwrap();
        let name = "checkout-prod";
        // An earlier operation that Succeeded, sent over Argo CD's API.
        let r = reqwest::Client::new()
            .post(format!("{}/api/v1/applications/{name}/sync", sb.url))
            .bearer_auth(&token)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.status());
        wait_until("the first operation Succeeded", || {
            let op = op_state(&sb, name);
            op["phase"] == "Succeeded" && op["finishedAt"].is_string()
        })
        .await;
        // No wait for the clock: the console's sync carries its `shipdeck-op` id.
        let first_info = op_state(&sb, name)["operation"]["info"].clone();
        let app = api.get_application(name, Refresh::None).await.unwrap();
        let deployment = api
            .managed_resources(&app)
            .await
            .unwrap()
            .into_iter()
            .find(|r| r.kind == "Deployment")
            .map(|r| r.name)
            .expect("a Deployment");
        let r = reqwest::Client::new()
            .post(format!("{}/_sandbox/faults", sb.url))
            .json(&json!({"fault": "deny-apply", "kind": "Deployment",
                          "name": deployment, "message": DENIAL}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());

        let (tx, rx) = tokio::sync::mpsc::channel(4096);
        let _watch = api.watch_applications(tx);
        let audit = AuditLog::in_dir(&dir.path().join("audit"));
        let ops = Ops {
            operator: "admin".into(),
            read_only: false,
            policies: Policies::default(),
            classifier: Default::default(),
            audit: audit.clone(),
        };
        let provider: Arc<dyn Provider> = Arc::new(
            ArgoProvider::new(vec![api.clone()], ops, None, "sandbox".into())
                .with_follow_deadline(Duration::from_secs(600)),
        );
        let console = Console::new(
            Estate::new(),
            Settings {
                operator: "admin".into(),
                source_label: "sandbox".into(),
                ..Settings::default()
            },
        );
        let mut h = Headless::new(console, provider, rx);
        assert!(
            h.until(Duration::from_secs(30), |c| c
                .estate
                .find_by_name(name)
                .first()
                .is_some_and(|e| e.app().status.operation_state.is_some()))
                .await
        );
        press(&mut h, KeyCode::Char(':'));
        h.type_str("env prod");
        press(&mut h, KeyCode::Enter);
        press(&mut h, KeyCode::Char('/'));
        h.type_str(name);
        press(&mut h, KeyCode::Enter);
        press(&mut h, KeyCode::Char('s'));
        for _ in 0..600 {
            let s = h.screen(160, 48);
            if s.contains("Type ") && !s.contains("checking permission") {
                break;
            }
            h.step(Duration::from_millis(50)).await;
        }
        h.type_str(name);
        press(&mut h, KeyCode::Tab);
        h.type_str("ship it");
        press(&mut h, KeyCode::Enter);
        let mut screen = String::new();
        let mut ended = false;
        for _ in 0..2400 {
            screen = h.screen(160, 48);
            // Never the earlier operation's success beside this follow.
            assert!(!screen.contains("operation Succeeded"), "{screen}");
            if screen.contains("✗ failed") {
                ended = true;
                break;
            }
            assert!(!screen.contains("✓ done"), "{screen}");
            h.step(Duration::from_millis(50)).await;
        }
        assert!(ended, "the follow ended:\n{screen}");

        // The oracle: a new operation, Failed, with Argo CD's message.
        let op = op_state(&sb, name);
        assert_eq!(op["phase"], "Failed", "{op}");
        assert_ne!(op["operation"]["info"], first_info, "a new operation");
        let message = op["message"].as_str().unwrap_or_default().to_string();
        assert!(message.contains(DENIAL), "{message}");
        let first = screen.lines().nth(2).unwrap_or_default();
        assert!(
            first.contains(
                "✗ failed: checkout-prod: operation Failed: one or more objects failed to apply"
            ),
            "{screen}"
        );
        // Wrapped or cut to the box, the denial itself is on the screen.
        let flat: String = screen.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(flat.contains("admission webhook"), "{screen}");
        assert!(!flat.contains("Succeeded"), "{screen}");
        let rec = audit
            .read_all()
            .unwrap()
            .into_iter()
            .rev()
            .find(|r| r.action == "sync" && r.app == name)
            .expect("a sync record");
        assert_eq!(rec.outcome, "failed");
        assert!(
            rec.detail.as_deref().unwrap_or_default().contains(DENIAL),
            "{:?}",
            rec.detail
        );
        sb.stop().await;
    }
}
