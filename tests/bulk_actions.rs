//! Bulk sync from `:apps`, driven by keys against the in-process sandbox through the real
//! Argo CD client and the ops actions. What each app went through is read back from the
//! sandbox's own Argo CD API (raw HTTP, not the product's client) and the audit file:
//! - a bulk sync acts only on marked apps the filter shows, lists them and asks once;
//! - `n` sends nothing; `y` sends one sync per listed app and reports each app's result;
//! - marking a gated app says why it cannot join a bulk sync.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use shipdeck::ops::policy::Policies;
use shipdeck::tui::app::Headless;
use shipdeck::tui::console::Console;
use std::time::Duration;

mod common;

use common::console::Rig;

async fn rig() -> Rig {
    common::console::rig(common::console::Options {
        git: false,
        ..Default::default()
    })
    .await
}

fn press(h: &mut Headless, code: KeyCode) {
    h.key(KeyEvent::new(code, KeyModifiers::NONE));
}

fn command(h: &mut Headless, cmd: &str) {
    press(h, KeyCode::Char(':'));
    h.type_str(cmd);
    press(h, KeyCode::Enter);
}

/// Filter `:apps` down to `name` (typed after `/`).
fn filter(h: &mut Headless, name: &str) {
    press(h, KeyCode::Char('/'));
    h.type_str(name);
    press(h, KeyCode::Enter);
}

/// When the sandbox says the app's last operation started (None: never synced).
async fn started(api: &common::Api, name: &str) -> Option<String> {
    let (code, app) = api.get(&format!("/api/v1/applications/{name}")).await;
    assert_eq!(code, 200, "{app}");
    app["status"]["operationState"]["startedAt"]
        .as_str()
        .map(str::to_string)
}

/// The sandbox's operation on `name` started after `before` and was asked for by admin.
async fn synced_since(api: &common::Api, name: &str, before: &Option<String>) -> bool {
    let (_, app) = api.get(&format!("/api/v1/applications/{name}")).await;
    let op = &app["status"]["operationState"];
    let now = op["startedAt"].as_str().map(str::to_string);
    now.is_some()
        && now != *before
        && op["operation"]["initiatedBy"]["username"].as_str() == Some("admin")
        && op["operation"]["sync"].is_object()
}

/// Three dev apps (one group, so the screen lists them in name order; no approval) with no operation running, sorted.
fn dev_apps(c: &Console) -> Vec<String> {
    let p = Policies::default();
    let mut v: Vec<String> = c
        .estate
        .apps()
        .filter(|e| {
            e.environment.name == "dev"
                && p.for_env(&e.environment).approval == shipdeck::model::ApprovalPolicy::None
                && !e.app().operation_in_progress()
        })
        .map(|e| e.id.name.clone())
        .collect();
    v.sort();
    // Names that are no substring of one another, so a filter by one shows only it.
    let mut picked: Vec<String> = Vec::new();
    for n in v {
        if c.estate.apps().filter(|e| e.id.name.contains(&n)).count() == 1 && picked.len() < 3 {
            picked.push(n);
        }
    }
    picked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_sync_acts_only_on_visible_marks_after_one_confirmation() {
    let mut r = rig().await;
    assert!(
        r.h.until(Duration::from_secs(30), |c| dev_apps(c).len() == 3)
            .await,
        "three idle dev apps:\n{}",
        r.h.screen(160, 48)
    );
    let names = dev_apps(&r.h.console);
    let (a, b, c) = (names[0].clone(), names[1].clone(), names[2].clone());
    let mut before = Vec::new();
    for n in &names {
        before.push(started(&r.api, n).await);
    }
    command(&mut r.h, "apps");
    for n in &names {
        filter(&mut r.h, n);
        press(&mut r.h, KeyCode::Char(' '));
        press(&mut r.h, KeyCode::Esc); // clears the filter
    }
    let s = r.h.screen(160, 48);
    assert!(s.contains("3 marked"), "{s}");

    // Filtered to `a`: only `a` is listed, the two hidden marks are named as left alone.
    filter(&mut r.h, &a);
    press(&mut r.h, KeyCode::Char('s'));
    let s = r.h.screen(200, 48);
    assert!(
        s.contains(&format!("sync 1 app: {a}? y/N")),
        "the prompt lists the one visible marked app:\n{s}"
    );
    assert!(s.contains("2 marked but hidden by the filter"), "{s}");
    press(&mut r.h, KeyCode::Char('y'));
    common::wait_for("the sandbox syncs the visible marked app", || {
        let api = &r.api;
        let (a, b0) = (a.clone(), before[0].clone());
        async move { synced_since(api, &a, &b0).await.then_some(()) }
    })
    .await;
    // Let the console take the answer, then check the hidden ones were left alone.
    let want = format!("✓ {a}: sync of {a} sent");
    let mut shown = false;
    for _ in 0..600 {
        if r.h.screen(200, 48).contains(&want) {
            shown = true;
            break;
        }
        r.h.step(Duration::from_millis(50)).await;
    }
    assert!(shown, "{}", r.h.screen(200, 48));
    assert_eq!(
        started(&r.api, &b).await,
        before[1],
        "{b} was hidden: not synced"
    );
    assert_eq!(
        started(&r.api, &c).await,
        before[2],
        "{c} was hidden: not synced"
    );
    let audited: Vec<String> = r
        .audit
        .read_all()
        .unwrap()
        .into_iter()
        .map(|rec| rec.app)
        .collect();
    assert!(audited.contains(&a), "{audited:?}");
    assert!(
        !audited.contains(&b) && !audited.contains(&c),
        "{audited:?}"
    );

    // Filter cleared: the two left are listed; `n` sends nothing.
    press(&mut r.h, KeyCode::Esc);
    press(&mut r.h, KeyCode::Char('s'));
    let s = r.h.screen(200, 48);
    assert!(s.contains(&format!("sync 2 apps: {b}, {c}? y/N")), "{s}");
    press(&mut r.h, KeyCode::Char('n'));
    let s = r.h.screen(200, 48);
    assert!(s.contains("bulk sync cancelled"), "{s}");

    // `y` this time: both synced, each app's result on the screen.
    press(&mut r.h, KeyCode::Char('s'));
    press(&mut r.h, KeyCode::Char('y'));
    for (n, b0) in [(&b, &before[1]), (&c, &before[2])] {
        common::wait_for("the sandbox syncs each listed app", || {
            let api = &r.api;
            let (n, b0) = (n.clone(), b0.clone());
            async move { synced_since(api, &n, &b0).await.then_some(()) }
        })
        .await;
    }
    let mut both = false;
    for _ in 0..600 {
        let s = r.h.screen(200, 48);
        if s.contains(&format!("✓ {b}: sync of {b} sent"))
            && s.contains(&format!("✓ {c}: sync of {c} sent"))
        {
            both = true;
            break;
        }
        r.h.step(Duration::from_millis(50)).await;
    }
    assert!(
        both,
        "each app's result is reported:\n{}",
        r.h.screen(200, 48)
    );
    // One sync each: the prompt answered `n` sent nothing.
    let records = r.audit.read_all().unwrap();
    for n in [&a, &b, &c] {
        let starts = records
            .iter()
            .filter(|rec| {
                &rec.app == n
                    && rec.action == "sync"
                    && rec.outcome != "succeeded"
                    && rec.outcome != "failed"
                    && rec.outcome != "timed-out"
            })
            .count();
        assert_eq!(starts, 1, "{n}: {records:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn marking_a_gated_app_says_why_it_cannot_join() {
    let mut r = rig().await;
    let p = Policies::default();
    let gated = |c: &Console| {
        let mut v: Vec<String> = c
            .estate
            .apps()
            .filter(|e| p.for_env(&e.environment).approval != shipdeck::model::ApprovalPolicy::None)
            .map(|e| e.id.name.clone())
            .collect();
        v.sort();
        v.into_iter().next()
    };
    assert!(
        r.h.until(Duration::from_secs(30), |c| gated(c).is_some())
            .await
    );
    let name = gated(&r.h.console).unwrap();
    command(&mut r.h, "apps");
    filter(&mut r.h, &name);
    press(&mut r.h, KeyCode::Char(' '));
    let s = r.h.screen(200, 48);
    assert!(
        s.contains(&format!("{name} cannot join a bulk sync")) && s.contains("approved one by one"),
        "{s}"
    );
    assert!(!s.contains("marked"), "a gated app is not marked:\n{s}");
    // `s` on it is the single-app approval, not a bulk sync; nothing reached the sandbox.
    press(&mut r.h, KeyCode::Char('s'));
    assert!(
        r.h.console
            .screen_titles()
            .last()
            .is_some_and(|t| t.starts_with("approve sync")),
        "{:?}",
        r.h.console.screen_titles()
    );
    assert!(r.audit.read_all().unwrap().is_empty());
}
