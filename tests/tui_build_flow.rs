//! The console's build flow driven by keys against the in-process sandbox: trigger the
//! build workflow from the board with its generated form, follow the run, and see the
//! service's next prod change wait for approval. Asserts on what the sandbox holds.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use shipdeck::ops::actions::Ops;
use shipdeck::ops::audit::AuditLog;
use shipdeck::ops::estate::Estate;
use shipdeck::ops::policy::Policies;
use shipdeck::sandbox::{Sandbox, auth::Role};
use shipdeck::secrets::Secret;
use shipdeck::sources::ArgoSource;
use shipdeck::sources::argocd::{ArgoApi, ArgoApiOptions};
use shipdeck::sources::git::GitMirrors;
use shipdeck::tui::adapt::ArgoProvider;
use shipdeck::tui::app::Headless;
use shipdeck::tui::console::{Console, Settings};
use shipdeck::tui::request::Provider;
use std::sync::Arc;
use std::time::Duration;

mod common;

fn press(h: &mut Headless, code: KeyCode) {
    h.key(KeyEvent::new(code, KeyModifiers::NONE));
}

async fn truth_of(sb: &Sandbox, name: &str) -> serde_json::Value {
    let all: serde_json::Value = reqwest::get(format!("{}/_sandbox/truth", sb.url))
        .await
        .expect("truth")
        .json()
        .await
        .expect("truth JSON");
    let list = all
        .as_array()
        .cloned()
        .or_else(|| all["apps"].as_array().cloned())
        .unwrap_or_default();
    list.into_iter()
        .find(|a| a["name"] == name)
        .unwrap_or_else(|| panic!("{name} in truth: {all}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_a_build_by_keys_and_see_prod_wait_for_approval() {
    let sb = common::sandbox().await;
    let dir = tempfile::tempdir().unwrap();
    let api = ArgoApi::new(ArgoApiOptions {
        name: Some("sandbox".into()),
        server: sb.url.clone(),
        token: Some(Secret::new(sb.world.users.token(Role::Admin))),
        workload_poll: Some(Duration::from_millis(100)),
        ..Default::default()
    })
    .unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(4096);
    let _watch = api.watch_applications(tx);
    let git = Some(Arc::new(GitMirrors::new(dir.path().join("mirrors"))));
    let ops = Ops {
        operator: "admin".into(),
        read_only: false,
        policies: Policies::default(),
        classifier: Default::default(),
        audit: AuditLog::in_dir(&dir.path().join("audit")),
    };
    let ci = shipdeck::tui::run::sandbox_ci(&sb, git.clone());
    let provider: Arc<dyn Provider> =
        Arc::new(ArgoProvider::new(vec![api], ops, git, "sandbox".into()).with_ci(ci));
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
        h.until(Duration::from_secs(30), |c| c.estate.len() > 10)
            .await,
        "estate never loaded:\n{}",
        h.screen(160, 48)
    );
    let before = truth_of(&sb, "frontend-prod").await;
    assert_eq!(before["sync"], "Synced", "{before}");

    // b: the pipelines of the selected service; the first is the build workflow.
    press(&mut h, KeyCode::Char('b'));
    let mut listed = false;
    for _ in 0..400 {
        // The pipeline rows ("· N inputs"), not only the runs CI already has.
        let s = h.screen(160, 48);
        if s.contains("build.yml") && s.contains(" inputs") {
            listed = true;
            break;
        }
        h.step(Duration::from_millis(50)).await;
    }
    assert!(listed, "no build.yml listed:\n{}", h.screen(160, 48));
    press(&mut h, KeyCode::Enter);
    let mut form = String::new();
    for _ in 0..400 {
        form = h.screen(160, 48);
        if form.contains("trigger build.yml") && form.contains("service") {
            break;
        }
        h.step(Duration::from_millis(50)).await;
    }
    // The form comes from the workflow file's dispatch inputs, with the cell's service
    // preselected; choose frontend with the arrows.
    for _ in 0..10 {
        if form.contains("‹frontend›") {
            break;
        }
        press(&mut h, KeyCode::Left);
        form = h.screen(160, 48);
    }
    assert!(form.contains("‹frontend›"), "{form}");
    assert!(form.contains("skip_tests"), "{form}");
    press(&mut h, KeyCode::Enter);

    // Follow the run to success on the same screen.
    let mut succeeded = false;
    for _ in 0..1200 {
        let s = h.screen(160, 48);
        assert!(!s.contains("✗ failure"), "the build failed:\n{s}");
        if s.contains("✓ success build.yml")
            || (s.contains("build.yml #")
                && s.contains("✓ success")
                && !s.contains("◔")
                && !s.contains("… queued"))
        {
            succeeded = true;
            break;
        }
        h.step(Duration::from_millis(50)).await;
    }
    assert!(succeeded, "the run never finished:\n{}", h.screen(160, 48));

    // The bump reached Git: prod waits for an operator, and the console knows it.
    let policies = Policies::default();
    assert!(
        h.until(Duration::from_secs(60), |c| c.estate.apps().any(|e| e
            .id
            .name
            == "frontend-prod"
            && c.estate.waits_for_approval(e, &policies)))
            .await,
        "frontend-prod does not wait for approval:\n{}",
        h.screen(160, 48)
    );
    let after = truth_of(&sb, "frontend-prod").await;
    assert_eq!(after["sync"], "OutOfSync", "{after}");
    assert_eq!(after["cause"], "pending-change", "{after}");
    assert_ne!(after["revision"], before["revision"], "{after}");
}
