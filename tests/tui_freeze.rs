//! The incident freeze from the console: `:freeze prod REASON` puts shipdeck's deny window on
//! the prod projects (read back from the sandbox's own store, not from the console), the
//! header shows who froze it, why and until when, `:unfreeze prod` without the reason prod's
//! policy requires is refused and changes nothing, and with one removes exactly the window.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use serde_json::Value;
use shipdeck::sandbox::store::APPPROJECTS;
use shipdeck::sandbox::{ARGOCD_NAMESPACE, IN_CLUSTER, Sandbox};
use shipdeck::tui::app::Headless;
use std::time::Duration;

mod common;

fn press(h: &mut Headless, code: KeyCode) {
    h.key(KeyEvent::new(code, KeyModifiers::NONE));
}

fn command(h: &mut Headless, cmd: &str) {
    press(h, KeyCode::Char(':'));
    h.type_str(cmd);
    press(h, KeyCode::Enter);
}

/// The sandbox's prod project windows: (shipdeck freeze windows, all windows).
fn prod_windows(sb: &Sandbox) -> (Vec<Value>, Vec<Value>) {
    let p = sb
        .world
        .store
        .get(IN_CLUSTER, APPPROJECTS, ARGOCD_NAMESPACE, "prod")
        .expect("prod project");
    let all = p["spec"]["syncWindows"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mine = all
        .iter()
        .filter(|w| {
            w["description"]
                .as_str()
                .is_some_and(|d| d.starts_with("shipdeck-freeze env=prod "))
        })
        .cloned()
        .collect();
    (mine, all)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn freeze_and_unfreeze_from_the_console() {
    let mut r = common::console::rig(common::console::Options::default()).await;
    let (_, before) = prod_windows(&r.sb);
    assert!(
        r.h.until(Duration::from_secs(30), |c| c.estate.len() > 10)
            .await,
        "apps load"
    );
    assert!(!r.h.screen(140, 30).contains("FROZEN"));

    command(&mut r.h, "freeze prod incident 42 db failover");
    assert!(
        r.h.until(Duration::from_secs(30), |c| !c.freezes().is_empty())
            .await,
        "the header learns of the freeze; flash: {:?}",
        r.h.console.flash()
    );
    let (mine, _) = prod_windows(&r.sb);
    assert_eq!(mine.len(), 1, "the sandbox holds the window");
    assert_eq!(mine[0]["kind"], "deny");
    let screen = r.h.screen(140, 30);
    let header: Vec<&str> = screen.lines().take(2).collect();
    assert!(
        header[1].contains("FROZEN prod by admin until further notice: incident 42 db failover"),
        "{screen}"
    );

    // prod's policy requires a reason to lift it: refused, nothing changed.
    command(&mut r.h, "unfreeze prod");
    assert!(
        r.h.until(Duration::from_secs(30), |c| c
            .flash()
            .is_some_and(|(_, t)| t.contains("needs a reason")))
            .await,
        "{:?}",
        r.h.console.flash()
    );
    assert_eq!(prod_windows(&r.sb).0.len(), 1);

    command(&mut r.h, "unfreeze prod incident over");
    assert!(
        r.h.until(Duration::from_secs(30), |c| c.freezes().is_empty())
            .await,
        "{:?}",
        r.h.console.flash()
    );
    let (mine, all) = prod_windows(&r.sb);
    assert!(mine.is_empty());
    assert_eq!(all, before, "other windows intact");
    assert!(!r.h.screen(140, 30).contains("FROZEN"));
    let audit = r.audit.read_all().expect("audit");
    assert!(
        audit
            .iter()
            .any(|a| a.action == "freeze" && a.outcome == "succeeded")
    );
    assert!(
        audit
            .iter()
            .any(|a| a.action == "unfreeze" && a.outcome == "refused")
    );
    assert!(
        audit
            .iter()
            .any(|a| a.action == "unfreeze" && a.outcome == "succeeded")
    );
}

/// `:confirm-prune` from the console over the event-ingestion estate: the app screen says
/// what a confirmation deletes; the confirmation without prod's reason is refused; with it
/// the sandbox prunes the ConfigMap (read from its own store) and the operation Succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirm_prune_from_the_console() {
    use shipdeck::sandbox::store::{APPLICATIONS, CONFIGMAPS};
    let mut r = common::console::rig(common::console::Options {
        estate: "event-ingestion".into(),
        ..Default::default()
    })
    .await;
    let app = "event-ingestion-prod";
    let store = r.sb.world.store.clone();
    let live = |store: &shipdeck::sandbox::store::Store| {
        store.get(IN_CLUSTER, APPLICATIONS, ARGOCD_NAMESPACE, app)
    };
    let ns = live(&store).expect("app")["spec"]["destination"]["namespace"]
        .as_str()
        .unwrap()
        .to_string();
    let cm = || {
        store
            .get(IN_CLUSTER, CONFIGMAPS, &ns, "event-ingestion-legacy-flags")
            .is_some()
    };
    assert!(cm());
    // A sync with prune, sent as any Argo CD client would (not by the console).
    store
        .mutate(
            IN_CLUSTER,
            APPLICATIONS,
            ARGOCD_NAMESPACE,
            app,
            false,
            |o| {
                o["operation"] = serde_json::json!({
                    "initiatedBy": {"username": "alice"},
                    "sync": {"revision": "main", "prune": true},
                });
                Ok(true)
            },
        )
        .unwrap();
    assert!(
        r.h.until(Duration::from_secs(30), |c| {
            c.estate
                .find_by_name(app)
                .first()
                .is_some_and(|e| shipdeck::ops::prune::waiting(&e.app()).is_some())
        })
        .await,
        "the console sees the wait"
    );
    let id = r.h.console.estate.find_by_name(app)[0].id.clone();
    r.h.console.push(Box::new(
        shipdeck::tui::views::application::ApplicationView::new(id),
    ));
    let screen = r.h.screen(160, 40);
    assert!(
        screen.contains("waiting for prune confirmation: this 1 resource will be deleted"),
        "{screen}"
    );
    assert!(screen.contains("event-ingestion-legacy-flags"), "{screen}");

    command(&mut r.h, &format!("confirm-prune {app}"));
    assert!(
        r.h.until(Duration::from_secs(30), |c| c
            .flash()
            .is_some_and(|(_, t)| t.contains("needs a reason")))
            .await,
        "{:?}",
        r.h.console.flash()
    );
    assert!(cm());
    command(
        &mut r.h,
        &format!("confirm-prune {app} legacy flags retired"),
    );
    assert!(
        r.h.until(Duration::from_secs(30), |c| c.flash().is_some_and(
            |(_, t)| t.contains("prune of event-ingestion-prod confirmed")
        ))
        .await,
        "{:?}",
        r.h.console.flash()
    );
    common::wait_until("the confirmed sync to succeed", || {
        (live(&store)?["status"]["operationState"]["phase"] == "Succeeded").then_some(())
    })
    .await;
    assert!(!cm(), "the sandbox pruned the ConfigMap");
}
