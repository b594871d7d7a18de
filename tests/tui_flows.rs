//! The console driven by keys against the in-process sandbox, through the real Argo CD API
//! client and the ops actions: approve a prod change, roll back a staging app. Each test
//! asserts what the sandbox holds afterwards, read back through its API.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use shipdeck::model::SyncStatus;
use shipdeck::ops::policy::Policies;
use shipdeck::sources::ArgoSource;
use shipdeck::tui::app::Headless;
use shipdeck::tui::console::Console;
use std::time::Duration;

mod common;

use common::console::Rig;

async fn rig() -> Rig {
    common::console::rig(common::console::Options::default()).await
}

fn press(h: &mut Headless, code: KeyCode) {
    h.key(KeyEvent::new(code, KeyModifiers::NONE));
}

fn command(h: &mut Headless, cmd: &str) {
    press(h, KeyCode::Char(':'));
    h.type_str(cmd);
    press(h, KeyCode::Enter);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approve_a_prod_change_by_keys() {
    let mut r = rig().await;
    let policies = Policies::default();
    assert!(
        r.h.until(Duration::from_secs(30), |c| c
            .estate
            .apps()
            .any(|e| c.estate.waits_for_approval(e, &policies)))
            .await,
        "no app waits for approval:\n{}",
        r.h.screen(160, 48)
    );
    let name = {
        let c = &r.h.console;
        let mut waiting: Vec<String> = c
            .estate
            .apps()
            .filter(|e| c.estate.waits_for_approval(e, &policies))
            .map(|e| e.id.name.clone())
            .collect();
        waiting.sort();
        waiting[0].clone()
    };
    command(&mut r.h, "pending");
    let screen = r.h.screen(160, 48);
    assert!(screen.contains(&name), "{screen}");
    press(&mut r.h, KeyCode::Char('s'));
    let title = format!("sync {name} in prod");
    assert!(
        r.h.until(Duration::from_secs(30), |c| c
            .screen_titles()
            .last()
            .is_some_and(|t| t.starts_with("approve sync")))
            .await
    );
    // Wait for the review to load (diff, commits, permission) before approving.
    let mut reviewed = false;
    for _ in 0..300 {
        let s = r.h.screen(160, 48);
        if s.contains(&title) && !s.contains("computing diff") && !s.contains("checking permission")
        {
            reviewed = true;
            break;
        }
        r.h.step(Duration::from_millis(50)).await;
    }
    assert!(reviewed, "{}", r.h.screen(160, 48));
    r.h.type_str(&name);
    press(&mut r.h, KeyCode::Tab);
    r.h.type_str("tested in staging");
    press(&mut r.h, KeyCode::Enter);
    let mut done = false;
    for _ in 0..1200 {
        let s = r.h.screen(160, 48);
        if s.contains("done: operation Succeeded, Healthy") {
            done = true;
            break;
        }
        assert!(!s.contains("✗ failed"), "{s}");
        r.h.step(Duration::from_millis(50)).await;
    }
    assert!(done, "{}", r.h.screen(160, 48));
    // What the sandbox holds now, through its API.
    let app = r
        .argo
        .get_application(&name, Default::default())
        .await
        .unwrap();
    assert_eq!(app.status.sync.status, SyncStatus::Synced);
    let last = app.status.history.last().expect("a deployment recorded");
    assert_eq!(
        last.initiated_by
            .as_ref()
            .and_then(|i| i.username.as_deref()),
        Some("admin")
    );
    let info = &app
        .status
        .operation_state
        .as_ref()
        .expect("operation state")
        .operation
        .info;
    assert!(
        info.iter()
            .any(|i| i.name == "approved-by" && i.value == "admin"),
        "{info:?}"
    );
    let records = r.audit.read_all().unwrap();
    assert!(!records.is_empty(), "an approval is in the audit log");
}

/// Roll back an app without auto-sync (the sandbox's API does not take sync-policy patches,
/// so a staging app with auto-sync cannot be rolled back over it): prod, which goes
/// through the approval screen like a sync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roll_back_by_keys_through_approval() {
    let mut r = rig().await;
    let candidate = |c: &Console| {
        let mut apps: Vec<_> = c
            .estate
            .apps()
            .filter(|e| {
                !e.app().auto_sync()
                    && e.app().status.history.len() >= 2
                    && !e.app().operation_in_progress()
            })
            .map(|e| (e.id.name.clone(), e.environment.name.clone()))
            .collect();
        apps.sort();
        apps.into_iter().next()
    };
    assert!(
        r.h.until(Duration::from_secs(30), |c| candidate(c).is_some())
            .await,
        "no app without auto-sync and with two deployments:\n{}",
        r.h.screen(160, 48)
    );
    let (name, env) = candidate(&r.h.console).unwrap();
    command(&mut r.h, &format!("env {env}"));
    press(&mut r.h, KeyCode::Char('/'));
    r.h.type_str(&name);
    press(&mut r.h, KeyCode::Enter);
    press(&mut r.h, KeyCode::Char('R'));
    let s = r.h.screen(160, 48);
    assert!(s.contains(&format!("history {name}")), "{s}");
    let target = {
        let e = r.h.console.estate.find_by_name(&name)[0];
        let h = &e.app().status.history;
        h[h.len() - 2].clone()
    };
    press(&mut r.h, KeyCode::Char('j'));
    press(&mut r.h, KeyCode::Char('R'));
    assert!(
        r.h.console
            .screen_titles()
            .last()
            .is_some_and(|t| t.starts_with("approve rollback")),
        "{}",
        r.h.screen(160, 48)
    );
    let mut ready = false;
    for _ in 0..600 {
        let s = r.h.screen(160, 48);
        if !s.contains("computing diff") && !s.contains("checking permission") {
            ready = true;
            break;
        }
        r.h.step(Duration::from_millis(50)).await;
    }
    assert!(ready, "{}", r.h.screen(160, 48));
    r.h.type_str(&name);
    press(&mut r.h, KeyCode::Tab);
    r.h.type_str("bad release, back to the last good one");
    press(&mut r.h, KeyCode::Enter);
    let want = target.revision.clone();
    let mut rolled = false;
    for _ in 0..1200 {
        let app = r
            .argo
            .get_application(&name, Default::default())
            .await
            .unwrap();
        let last = app.status.history.last().cloned();
        if last
            .as_ref()
            .is_some_and(|l| l.id > target.id + 1 && l.revision == want)
            && !app.operation_in_progress()
        {
            rolled = true;
            break;
        }
        r.h.step(Duration::from_millis(50)).await;
    }
    let app = r
        .argo
        .get_application(&name, Default::default())
        .await
        .unwrap();
    assert!(
        rolled,
        "flash: {:?}\nhistory: {:?}\nwant {want:?}\n{}",
        r.h.console.flash(),
        app.status
            .history
            .iter()
            .map(|h| (h.id, h.revision.clone()))
            .collect::<Vec<_>>(),
        r.h.screen(160, 48)
    );
    assert!(
        !r.audit.read_all().unwrap().is_empty(),
        "the approval is audited"
    );
}
