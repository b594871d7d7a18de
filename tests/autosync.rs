//! `shipdeck autosync APP on|off` (issue 9): an action of its own, in API mode and core mode.
//! Turning auto-sync on in a gated environment needs an approval like a sync; read-only
//! refuses; a user without `update` is told which permission is missing; every attempt is
//! audited; turning it off records since when on the Application itself. The oracle is the
//! Application as the sandbox's Kubernetes API holds it (kube-rs), never shipdeck.

mod cli_support;
mod common;

use cli_support::{MODES, Mode, World, start};
use serde_json::Value;

const SINCE: &str = "shipdeck.io/auto-sync-off-since";

async fn automated(w: &World, app: &str) -> bool {
    let a = w.application(app).await;
    let auto = &a["spec"]["syncPolicy"]["automated"];
    !auto.is_null() && auto["enabled"] != false
}

async fn since(w: &World, app: &str) -> Option<String> {
    w.application(app).await["metadata"]["annotations"][SINCE]
        .as_str()
        .map(str::to_owned)
}

fn last(w: &World, app: &str, action: &str) -> Value {
    w.audit()
        .into_iter()
        .rev()
        .find(|r| r["app"] == app && r["action"] == action)
        .unwrap_or_else(|| panic!("no {action} record for {app}: {:?}", w.audit()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autosync_off_and_on_in_both_modes() {
    let w = start().await;
    for mode in MODES {
        let app = "cart-dev";
        assert!(automated(&w, app).await, "{app} starts with auto-sync on");
        let before = chrono::Utc::now() - chrono::Duration::seconds(2);
        let out = w.run(mode, &["autosync", app, "off"]).await;
        assert_eq!(out.code, 0, "{mode:?} off: {}", out.stderr);
        assert!(out.stdout.contains("auto-sync off"), "{}", out.stdout);
        assert!(
            !automated(&w, app).await,
            "{mode:?}: auto-sync is off in Kubernetes"
        );
        let at = since(&w, app)
            .await
            .expect("since when is on the Application");
        let at = chrono::DateTime::parse_from_rfc3339(&at).expect("RFC 3339");
        assert!(at >= before, "{at} is now, not earlier");
        let rec = last(&w, app, "disable-auto-sync");
        assert_eq!(rec["outcome"], "succeeded");
        assert_eq!(rec["who"], "fail-closed");

        let out = w.run(mode, &["autosync", app, "on"]).await;
        assert_eq!(out.code, 0, "{mode:?} on: {}", out.stderr);
        assert!(automated(&w, app).await, "{mode:?}: auto-sync is on again");
        assert_eq!(since(&w, app).await, None, "the mark goes with it");
        assert_eq!(last(&w, app, "enable-auto-sync")["outcome"], "succeeded");
    }
    w.sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turning_it_on_in_prod_needs_an_approval_and_read_only_refuses() {
    let w = start().await;
    let app = "kafka-prod";
    assert!(automated(&w, app).await, "kafka-prod auto-syncs in prod");

    // Read-only refuses before anything is sent, and says so in the audit log.
    let out = w
        .run(Mode::Api, &["--read-only", "autosync", app, "off"])
        .await;
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(automated(&w, app).await, "read-only changed nothing");
    assert_eq!(last(&w, app, "disable-auto-sync")["outcome"], "refused");

    let out = w.run(Mode::Api, &["autosync", app, "off"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!automated(&w, app).await);

    for mode in MODES {
        // On in prod lets Argo CD deploy Git on its own: approval first.
        let out = w.run(mode, &["autosync", app, "on"]).await;
        assert_eq!(out.code, 3, "{mode:?}: {}", out.stderr);
        assert!(out.stderr.contains("approv"), "{}", out.stderr);
        assert!(!automated(&w, app).await, "{mode:?}: still off");
        assert_eq!(last(&w, app, "enable-auto-sync")["outcome"], "refused");
    }
    let out = w
        .run(
            Mode::Core,
            &[
                "autosync",
                app,
                "on",
                "--approve",
                app,
                "--reason",
                "rollback is over",
            ],
        )
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(automated(&w, app).await, "approved: on");
    let approve = last(&w, app, "approve");
    assert_eq!(approve["reason"], "rollback is over");
    let on = last(&w, app, "enable-auto-sync");
    assert_eq!(on["outcome"], "succeeded");
    assert_eq!(on["approval_id"], approve["approval_id"]);
    w.sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_without_update_is_told_which_permission_is_missing() {
    let w = start().await;
    let app = "cart-dev";
    let out = w
        .run(
            Mode::Core,
            &["autosync", app, "off", "--context", "viewer@in-cluster"],
        )
        .await;
    assert_ne!(out.code, 0, "{}", out.stdout);
    assert!(
        out.stderr.contains("update"),
        "names the permission: {}",
        out.stderr
    );
    assert!(automated(&w, app).await, "nothing changed");
    w.sandbox.stop().await;
}

/// The console's key, driven as an operator does against the in-process sandbox: `A` on an
/// app turns auto-sync off at once (no approval needed to stop deploying), the app screen
/// says since when, and `A` again in prod goes through the approval form.
mod console {
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    use shipdeck::ops::actions::Ops;
    use shipdeck::ops::audit::AuditLog;
    use shipdeck::ops::estate::Estate;
    use shipdeck::ops::policy::Policies;
    use shipdeck::sandbox::auth::Role;
    use shipdeck::secrets::Secret;
    use shipdeck::sources::ArgoSource;
    use shipdeck::sources::argocd::{ArgoApi, ArgoApiOptions};
    use shipdeck::tui::adapt::ArgoProvider;
    use shipdeck::tui::app::Headless;
    use shipdeck::tui::console::{Console, Settings};
    use shipdeck::tui::request::Provider;
    use std::sync::Arc;
    use std::time::Duration;

    use super::common;

    fn press(h: &mut Headless, code: KeyCode) {
        h.key(KeyEvent::new(code, KeyModifiers::NONE));
    }

    async fn auto(api: &ArgoApi, name: &str) -> shipdeck::model::Application {
        api.get_application(name, Default::default()).await.unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_console_key_turns_it_off_and_on_through_approval() {
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
        let audit = AuditLog::in_dir(&dir.path().join("audit"));
        let ops = Ops {
            operator: "admin".into(),
            read_only: false,
            policies: Policies::default(),
            classifier: Default::default(),
            audit: audit.clone(),
        };
        let provider: Arc<dyn Provider> = Arc::new(ArgoProvider::new(
            vec![api.clone()],
            ops,
            None,
            "sandbox".into(),
        ));
        let console = Console::new(
            Estate::new(),
            Settings {
                operator: "admin".into(),
                source_label: "sandbox".into(),
                ..Settings::default()
            },
        );
        let mut h = Headless::new(console, provider, rx);
        let name = "kafka-prod";
        assert!(
            h.until(Duration::from_secs(30), |c| c
                .estate
                .find_by_name(name)
                .first()
                .is_some_and(|e| e.app().auto_sync()))
                .await
        );
        press(&mut h, KeyCode::Char(':'));
        h.type_str("env prod");
        press(&mut h, KeyCode::Enter);
        press(&mut h, KeyCode::Char('/'));
        h.type_str(name);
        press(&mut h, KeyCode::Enter);
        press(&mut h, KeyCode::Enter);
        assert!(
            h.console
                .screen_titles()
                .last()
                .is_some_and(|t| t.contains(name)),
            "{}",
            h.screen(160, 48)
        );
        press(&mut h, KeyCode::Char('A'));
        let mut off = false;
        for _ in 0..600 {
            // Off, and marked since when: with Argo CD's `toggle-auto-sync` action the mark
            // is a second write (a merge patch) right after the action.
            let a = auto(&api, name).await;
            if !a.auto_sync()
                && a.metadata
                    .annotations
                    .contains_key("shipdeck.io/auto-sync-off-since")
            {
                off = true;
                break;
            }
            h.step(Duration::from_millis(50)).await;
        }
        assert!(off, "auto-sync still on:\n{}", h.screen(160, 48));
        let app = auto(&api, name).await;
        let since = app
            .metadata
            .annotations
            .get("shipdeck.io/auto-sync-off-since")
            .cloned()
            .expect("since when");
        assert!(
            h.until(Duration::from_secs(30), |c| c
                .estate
                .find_by_name(name)
                .first()
                .is_some_and(|e| !e.app().auto_sync()
                    && e.app()
                        .metadata
                        .annotations
                        .contains_key("shipdeck.io/auto-sync-off-since")))
                .await
        );
        let s = h.screen(160, 48);
        assert!(s.contains(&format!("off since {since}")), "{s}");
        // The board marks it too, for every operator.
        press(&mut h, KeyCode::Esc);
        press(&mut h, KeyCode::Esc);
        press(&mut h, KeyCode::Esc);
        let board = h.screen(200, 48);
        let kafka_row = board
            .lines()
            .find(|l| l.contains("kafka"))
            .unwrap_or_else(|| panic!("kafka on the board:\n{board}"));
        assert!(kafka_row.contains('⏸'), "{board}");
        press(&mut h, KeyCode::Char(':'));
        h.type_str("env prod");
        press(&mut h, KeyCode::Enter);
        press(&mut h, KeyCode::Char('/'));
        h.type_str(name);
        press(&mut h, KeyCode::Enter);
        press(&mut h, KeyCode::Enter);

        // On again in prod: the approval form, then the sandbox has it on.
        press(&mut h, KeyCode::Char('A'));
        assert!(
            h.console
                .screen_titles()
                .last()
                .is_some_and(|t| t.starts_with("approve auto-sync on")),
            "{}",
            h.screen(160, 48)
        );
        for _ in 0..600 {
            let s = h.screen(160, 48);
            if s.contains("Type ") && !s.contains("checking permission") {
                break;
            }
            h.step(Duration::from_millis(50)).await;
        }
        h.type_str(name);
        press(&mut h, KeyCode::Tab);
        h.type_str("rollback over, Git has the fix");
        press(&mut h, KeyCode::Enter);
        let mut on = false;
        for _ in 0..600 {
            if auto(&api, name).await.auto_sync() {
                on = true;
                break;
            }
            h.step(Duration::from_millis(50)).await;
        }
        assert!(on, "auto-sync still off:\n{}", h.screen(160, 48));
        // The audit line is written once the change is read back, a step after the sandbox
        // shows it: wait for it with a deadline.
        let mut records = Vec::new();
        for _ in 0..600 {
            records = audit.read_all().unwrap();
            if records
                .iter()
                .any(|a| a.action == "enable-auto-sync" && a.app == name && a.outcome != "started")
            {
                break;
            }
            h.step(Duration::from_millis(50)).await;
        }
        let approve = records
            .iter()
            .find(|a| a.action == "approve" && a.app == name)
            .expect("approved");
        let rec = records
            .iter()
            .find(|a| a.action == "enable-auto-sync" && a.app == name)
            .expect("recorded");
        assert_eq!(rec.outcome, "succeeded");
        assert_eq!(rec.approval_id, approve.approval_id);
        sb.stop().await;
    }
}
