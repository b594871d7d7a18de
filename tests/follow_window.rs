//! A sync that a sync window blocks (issue 9): Argo CD accepted it while the window was
//! open, then a deny window closed before its controller ran it. Argo CD's controller keeps
//! such an operation `Running` with the message "Sync operation blocked by sync window"
//! (`controller/sync.go`) and runs it when a window allows; it never ends on its own. The
//! follower (headless `--wait` and the console's approval screen) must end ✗ with that
//! message, say the operation stays queued, and write `failed` to the audit log, instead of
//! spinning to its deadline. The controller is held (`hold-operations` fault, a busy
//! controller) while the window is added, so the order is deterministic. Oracle: the
//! sandbox's own state (the Application's operationState and `.operation`).

mod cli_support;
mod common;

use cli_support::{Mode, start};
use serde_json::{Value, json};
use shipdeck::sandbox::store::{APPLICATIONS, APPPROJECTS};
use shipdeck::sandbox::{ARGOCD_NAMESPACE, IN_CLUSTER, Sandbox};
use std::time::Duration;

const BLOCKED: &str = "Sync operation blocked by sync window";

fn app(sb: &Sandbox, name: &str) -> Value {
    sb.world
        .store
        .get(IN_CLUSTER, APPLICATIONS, ARGOCD_NAMESPACE, name)
        .map(|a| (*a).clone())
        .unwrap_or(Value::Null)
}

/// A deny window over `name` in its project, open now (or taken away again).
fn deny_window(sb: &Sandbox, name: &str, on: bool) {
    let project = app(sb, name)["spec"]["project"]
        .as_str()
        .unwrap_or("default")
        .to_string();
    sb.world
        .store
        .mutate(
            IN_CLUSTER,
            APPPROJECTS,
            ARGOCD_NAMESPACE,
            &project,
            false,
            |p| {
                if !p["spec"]["syncWindows"].is_array() {
                    p["spec"]["syncWindows"] = json!([]);
                }
                let w = p["spec"]["syncWindows"].as_array_mut().expect("an array");
                w.retain(|x| x["applications"] != json!([name]));
                if on {
                    w.push(
                        json!({"kind": "deny", "schedule": "* * * * *", "duration": "1h",
                                  "applications": [name]}),
                    );
                }
                Ok(true)
            },
        )
        .expect("project updated");
}

/// Once the sync is queued (`.operation` set) while the controller is held, close a
/// window over it and let the controller go.
async fn close_window_once_queued(sb: &Sandbox, name: &str) {
    common::wait_for_within(
        "the sync queued in .operation",
        Duration::from_secs(120),
        || async { app(sb, name)["operation"].is_object().then_some(()) },
    )
    .await;
    deny_window(sb, name, true);
    let r = reqwest::Client::new()
        .delete(format!("{}/_sandbox/faults", sb.url))
        .send()
        .await
        .expect("clear faults");
    assert!(r.status().is_success());
}

fn assert_held(sb: &Sandbox, name: &str) {
    let a = app(sb, name);
    let op = &a["status"]["operationState"];
    assert_eq!(op["phase"], "Running", "{op}");
    assert_eq!(op["message"], BLOCKED, "Argo CD's wording: {op}");
    assert!(a["operation"].is_object(), "Argo CD keeps it queued");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headless_wait_ends_with_argo_cds_window_message_and_audits_it() {
    let w = start().await;
    let name = "checkout-prod";
    common::fault(
        &w.sandbox,
        json!({"fault": "hold-operations", "seconds": 600}),
    )
    .await;
    let args = [
        "sync",
        name,
        "--approve",
        name,
        "--reason",
        "window test",
        "--wait",
        "--timeout",
        "600",
    ];
    let (out, ()) = tokio::join!(
        w.run(Mode::Api, &args),
        close_window_once_queued(&w.sandbox, name)
    );
    assert_eq!(out.code, 6, "exit 6 (failed); stderr: {}", out.stderr);
    assert_held(&w.sandbox, name);
    assert!(
        out.stderr.contains(&format!("✗ sync of {name} failed"))
            && out.stderr.contains(BLOCKED)
            && out.stderr.contains("queued"),
        "one ✗ line with Argo CD's message: {}",
        out.stderr
    );
    let rec = w
        .audit()
        .into_iter()
        .rev()
        .find(|r| r["app"] == name && r["action"] == "sync")
        .expect("a sync record");
    assert_eq!(rec["outcome"], "failed", "{rec}");
    assert!(
        rec["detail"].as_str().unwrap_or_default().contains(BLOCKED),
        "{rec}"
    );

    // The window goes: Argo CD runs the queued operation.
    deny_window(&w.sandbox, name, false);
    common::wait_for_within("the queued sync ran", Duration::from_secs(120), || async {
        let a = app(&w.sandbox, name);
        (a["operation"].is_null() && a["status"]["operationState"]["phase"] == "Succeeded")
            .then_some(())
    })
    .await;
    w.sandbox.stop().await;
}

mod console {
    use super::{BLOCKED, assert_held, close_window_once_queued};
    use crate::common::{self, console};
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    use serde_json::json;
    use shipdeck::tui::app::Headless;
    use std::time::Duration;

    fn press(h: &mut Headless, code: KeyCode) {
        h.key(KeyEvent::new(code, KeyModifiers::NONE));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_approval_screen_ends_with_argo_cds_window_message() {
        let mut r = console::rig(console::Options::default()).await;
        let name = "checkout-prod";
        assert!(
            r.h.until(Duration::from_secs(30), |c| !c
                .estate
                .find_by_name(name)
                .is_empty())
                .await
        );
        common::fault(&r.sb, json!({"fault": "hold-operations", "seconds": 600})).await;
        press(&mut r.h, KeyCode::Char(':'));
        r.h.type_str("env prod");
        press(&mut r.h, KeyCode::Enter);
        press(&mut r.h, KeyCode::Char('/'));
        r.h.type_str(name);
        press(&mut r.h, KeyCode::Enter);
        press(&mut r.h, KeyCode::Char('s'));
        for _ in 0..600 {
            let s = r.h.screen(160, 48);
            if s.contains("Type ") && !s.contains("checking permission") {
                break;
            }
            r.h.step(Duration::from_millis(50)).await;
        }
        r.h.type_str(name);
        press(&mut r.h, KeyCode::Tab);
        r.h.type_str("window test");
        press(&mut r.h, KeyCode::Enter);

        let sb = &r.sb;
        let h = &mut r.h;
        let drive = async {
            let mut screen = String::new();
            for _ in 0..2400 {
                screen = h.screen(160, 48);
                if screen.contains("✗ failed") {
                    return (true, screen);
                }
                assert!(!screen.contains("✓ done"), "{screen}");
                h.step(Duration::from_millis(50)).await;
            }
            (false, screen)
        };
        let ((ended, screen), ()) = tokio::join!(drive, close_window_once_queued(sb, name));
        assert!(ended, "the follow ended:\n{screen}");
        assert_held(&r.sb, name);
        let flat: String = screen.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            flat.contains(BLOCKED),
            "Argo CD's message on screen:\n{screen}"
        );
        let rec = r
            .audit
            .read_all()
            .unwrap()
            .into_iter()
            .rev()
            .find(|x| x.action == "sync" && x.app == name)
            .expect("a sync record");
        assert_eq!(rec.outcome, "failed");
        assert!(
            rec.detail.as_deref().unwrap_or_default().contains(BLOCKED),
            "{:?}",
            rec.detail
        );
        r.sb.stop().await;
    }
}

/// Argo CD refuses a sync request while a deny window is open with gRPC PermissionDenied
/// (HTTP 403) "cannot sync: blocked by sync window". That is the project's policy, not a
/// missing permission: the client says Refused (exit 3), never Forbidden (exit 4, "ask for
/// RBAC"). A window that closes between shipdeck's own check and the request lands here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_the_api_refuses_for_a_window_is_refused_not_forbidden() {
    use shipdeck::sources::argocd::{ArgoApi, ArgoApiOptions};
    use shipdeck::sources::{ArgoSource, SourceError, SyncRequest};
    let sb = common::sandbox().await;
    let name = "checkout-prod";
    deny_window(&sb, name, true);
    let src = ArgoApi::new(ArgoApiOptions {
        server: sb.url.clone(),
        token: Some(shipdeck::secrets::Secret::new(
            sb.world.users.token(shipdeck::sandbox::auth::Role::Admin),
        )),
        ..Default::default()
    })
    .expect("client");
    let apps = src.list_applications().await.expect("list");
    let a = apps
        .iter()
        .find(|a| a.metadata.name == name)
        .expect("the app");
    // The oracle: the sandbox's Argo CD answers 403 with Argo CD's words.
    let raw = reqwest::Client::new()
        .post(format!("{}/api/v1/applications/{name}/sync", sb.url))
        .bearer_auth(sb.world.users.token(shipdeck::sandbox::auth::Role::Admin))
        .json(&json!({}))
        .send()
        .await
        .expect("sync request");
    assert_eq!(raw.status().as_u16(), 403);
    assert!(
        raw.text()
            .await
            .unwrap_or_default()
            .contains("cannot sync: blocked by sync window")
    );
    let err = src
        .sync(
            a,
            SyncRequest {
                initiated_by: "admin".into(),
                ..Default::default()
            },
        )
        .await
        .expect_err("the window refuses it");
    assert!(
        matches!(&err, SourceError::Refused(m) if m.contains("blocked by sync window")),
        "{err:?}"
    );
    assert!(app(&sb, name)["operation"].is_null(), "nothing was queued");
}
