//! Following an operation to its end (issue 9): a sync whose rollout fails ends with ✗ and
//! the failing pods with their waiting reasons, as soon as the pods say so (not at the
//! deadline), and the audit log's last word on it is `failed` with the same reason. The
//! real binary against a sandbox started here; the failing pods are read with kube-rs
//! from the sandbox's Kubernetes API (the oracle), the image fault is the sandbox's own.

mod cli_support;

use cli_support::{Mode, World, start};
use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};

/// The image Git wants for the app's Deployment, as Argo CD's managed-resources says.
async fn target_image(w: &World, app: &str) -> String {
    let r = reqwest::Client::new()
        .get(format!(
            "{}/api/v1/applications/{app}/managed-resources",
            w.var("ARGOCD_SERVER")
        ))
        .bearer_auth(w.var("ARGOCD_AUTH_TOKEN"))
        .send()
        .await
        .expect("managed-resources");
    let v: Value = r.json().await.expect("json");
    let items = v["items"].as_array().expect("items");
    let d = items
        .iter()
        .find(|i| i["kind"] == "Deployment")
        .expect("a Deployment");
    let target: Value =
        serde_json::from_str(d["targetState"].as_str().expect("targetState")).expect("json");
    target["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .expect("image")
        .to_string()
}

/// Pods in `ns` whose container waits with a failing reason, as Kubernetes says.
async fn failing_pods(w: &World, ns: &str) -> Vec<(String, String)> {
    let pods: kube::Api<Pod> = kube::Api::namespaced(w.kube().await, ns);
    let list = pods.list(&Default::default()).await.expect("pods");
    list.items
        .into_iter()
        .filter_map(|p| {
            let name = p.metadata.name.clone()?;
            let reason = p
                .status?
                .container_statuses?
                .first()?
                .state
                .clone()?
                .waiting?
                .reason?;
            matches!(reason.as_str(), "ImagePullBackOff" | "ErrImagePull").then_some((name, reason))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_whose_rollout_fails_ends_with_the_failing_pods_and_is_audited() {
    let w = start().await;
    let app = "checkout-prod";
    let image = target_image(&w, app).await;
    let r = reqwest::Client::new()
        .post(format!("{}/_sandbox/image-fault", w.sandbox.url))
        .json(&json!({"image": image, "mode": "ImagePullBackOff"}))
        .send()
        .await
        .expect("image-fault");
    assert!(r.status().is_success());

    // A deadline far beyond what the failure needs: the follower must end on the pods.
    let out = w
        .run(
            Mode::Api,
            &[
                "sync",
                app,
                "--approve",
                app,
                "--reason",
                "ship the fix",
                "--wait",
                "--timeout",
                "600",
            ],
        )
        .await;
    assert_eq!(out.code, 6, "exit 6 (failed); stderr: {}", out.stderr);
    assert!(
        out.stderr.contains("✗ sync of checkout-prod failed"),
        "one ✗ line: {}",
        out.stderr
    );

    // The pods named are the pods Kubernetes has failing.
    let failing = failing_pods(&w, "shop").await;
    assert!(!failing.is_empty(), "the sandbox has a failing pod");
    assert!(
        failing.iter().any(|(pod, _)| out.stderr.contains(pod)),
        "the ✗ line names a failing pod {failing:?}: {}",
        out.stderr
    );
    assert!(out.stderr.contains("ImagePullBackOff") || out.stderr.contains("ErrImagePull"));
    assert!(
        out.stderr.contains(&image),
        "the failing image: {}",
        out.stderr
    );

    // The audit log's last word on the sync is `failed`, with the same reason.
    let audit = w.audit();
    let last = audit
        .iter()
        .rev()
        .find(|r| r["app"] == app && r["action"] == "sync")
        .expect("a sync record");
    assert_eq!(last["outcome"], "failed", "{last}");
    let detail = last["detail"].as_str().unwrap_or_default();
    assert!(
        failing.iter().any(|(pod, _)| detail.contains(pod)),
        "the record names the failing pod: {detail}"
    );
    w.sandbox.stop().await;
}

/// The console half: the approval screen's follow ends with ✗ and the failing pods (no
/// spinner until a deadline), from the same follower, and the audit log says `failed`.
mod console {
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    use serde_json::json;
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_approval_screen_ends_with_the_failing_pods() {
        let sb = shipdeck::sandbox::Sandbox::start(shipdeck::sandbox::SandboxOptions {
            time_scale: 0.02,
            ..Default::default()
        })
        .await
        .expect("sandbox");
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let api = ArgoApi::new(ArgoApiOptions {
            name: Some("sandbox".into()),
            server: sb.url.clone(),
            token: Some(Secret::new(sb.world.users.token(Role::Admin))),
            workload_poll: Some(Duration::from_millis(100)),
            ..Default::default()
        })
        .unwrap();
        let name = "checkout-prod";
        let app = api.get_application(name, Refresh::None).await.unwrap();
        let image = api
            .managed_resources(&app)
            .await
            .unwrap()
            .into_iter()
            .find(|r| r.kind == "Deployment")
            .and_then(|r| r.target)
            .and_then(|t| {
                t["spec"]["template"]["spec"]["containers"][0]["image"]
                    .as_str()
                    .map(str::to_owned)
            })
            .expect("target image");
        let r = reqwest::Client::new()
            .post(format!("{}/_sandbox/image-fault", sb.url))
            .json(&json!({"image": image, "mode": "ImagePullBackOff"}))
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
            h.until(Duration::from_secs(30), |c| !c
                .estate
                .find_by_name(name)
                .is_empty())
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
        for _ in 0..1200 {
            screen = h.screen(160, 48);
            if screen.contains("✗ failed") {
                ended = true;
                break;
            }
            assert!(!screen.contains("✓ done"), "{screen}");
            h.step(Duration::from_millis(50)).await;
        }
        assert!(ended, "the follow ended:\n{screen}");
        assert!(
            screen.contains("ImagePullBackOff") || screen.contains("ErrImagePull"),
            "{screen}"
        );
        assert!(screen.contains("pod checkout-"), "{screen}");
        // The ✗ line is the screen's status, first in the box.
        let first = screen.lines().nth(2).unwrap_or_default();
        assert!(
            first.contains("✗ failed: checkout-prod: the rollout fails"),
            "{screen}"
        );
        let rec = audit
            .read_all()
            .unwrap()
            .into_iter()
            .rev()
            .find(|r| r.action == "sync" && r.app == name)
            .expect("a sync record");
        assert_eq!(rec.outcome, "failed");
        sb.stop().await;
    }
}
