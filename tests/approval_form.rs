//! The approval form (issue 9), driven by keys against the in-process sandbox through the
//! real Argo CD API client and the ops actions: the reason says "required" before Enter
//! where the policy needs one, an empty required reason keeps the form open with an inline
//! message and no CLI wording, a wrong name keeps what was typed and says what is
//! expected, and a rollback of an auto-sync app names turning auto-sync off as a step the
//! operator confirms. What the sandbox holds afterwards is read through its own API and
//! Kubernetes API.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use shipdeck::sources::ArgoSource;
use shipdeck::tui::app::Headless;
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

async fn review_loaded(r: &mut Rig) -> String {
    for _ in 0..600 {
        let s = r.h.screen(160, 48);
        if s.contains("Type ")
            && !s.contains("computing diff")
            && !s.contains("checking permission")
        {
            return s;
        }
        r.h.step(Duration::from_millis(50)).await;
    }
    panic!("the review did not load:\n{}", r.h.screen(160, 48));
}

/// Open the approval of a sync of `name` (a prod app waiting for one).
async fn open_sync(r: &mut Rig, name: &str) {
    assert!(
        r.h.until(Duration::from_secs(30), |c| !c
            .estate
            .find_by_name(name)
            .is_empty())
            .await
    );
    command(&mut r.h, "env prod");
    press(&mut r.h, KeyCode::Char('/'));
    r.h.type_str(name);
    press(&mut r.h, KeyCode::Enter);
    press(&mut r.h, KeyCode::Char('s'));
    assert!(
        r.h.until(Duration::from_secs(30), |c| c
            .screen_titles()
            .last()
            .is_some_and(|t| t.starts_with("approve sync")))
            .await,
        "{}",
        r.h.screen(160, 48)
    );
}

async fn started_at(r: &Rig, name: &str) -> Option<String> {
    r.argo
        .get_application(name, Default::default())
        .await
        .unwrap()
        .status
        .operation_state
        .and_then(|o| o.started_at)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_required_reason_says_so_and_an_empty_one_keeps_the_form_open() {
    let mut r = rig().await;
    let name = "checkout-prod";
    open_sync(&mut r, name).await;
    let s = review_loaded(&mut r).await;
    assert!(s.contains("reason (required)"), "before Enter:\n{s}");
    assert!(!s.contains("optional"), "{s}");
    let before = started_at(&r, name).await;

    r.h.type_str(name);
    press(&mut r.h, KeyCode::Enter);
    r.h.step(Duration::from_millis(200)).await;
    let s = r.h.screen(160, 48);
    assert!(
        r.h.console
            .screen_titles()
            .last()
            .is_some_and(|t| t.starts_with("approve sync")),
        "the form stays open:\n{s}"
    );
    assert!(s.contains("a reason is required"), "inline message:\n{s}");
    assert!(
        !s.contains("--reason") && !s.contains("--approve"),
        "no CLI wording:\n{s}"
    );
    assert!(!s.contains("✗ failed"), "{s}");
    assert!(s.contains(name), "the name typed stays:\n{s}");
    // Nothing reached Argo CD, nothing was approved.
    assert_eq!(started_at(&r, name).await, before);
    assert!(
        r.audit
            .read_all()
            .unwrap_or_default()
            .iter()
            .all(|a| a.action != "approve"),
        "no approval recorded"
    );
    r.sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_name_keeps_the_text_and_says_what_is_expected() {
    let mut r = rig().await;
    let name = "cart-prod";
    open_sync(&mut r, name).await;
    review_loaded(&mut r).await;
    let before = started_at(&r, name).await;
    r.h.type_str("cart-pord");
    press(&mut r.h, KeyCode::Enter);
    r.h.step(Duration::from_millis(200)).await;
    let s = r.h.screen(160, 48);
    assert!(s.contains("cart-pord"), "what was typed stays:\n{s}");
    assert!(
        s.contains(&format!("type {name} exactly")),
        "says what is expected:\n{s}"
    );
    assert_eq!(started_at(&r, name).await, before, "nothing sent");
    r.sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_back_an_auto_sync_app_names_auto_sync_off_as_a_step() {
    let mut r = rig().await;
    let name = "kafka-prod";
    assert!(
        r.h.until(Duration::from_secs(30), |c| c
            .estate
            .find_by_name(name)
            .first()
            .is_some_and(
                |e| e.app().status.history.len() >= 2 && e.app().auto_sync()
            ))
        .await,
        "kafka-prod with two deployments and auto-sync:\n{}",
        r.h.screen(160, 48)
    );
    command(&mut r.h, "env prod");
    press(&mut r.h, KeyCode::Char('/'));
    r.h.type_str(name);
    press(&mut r.h, KeyCode::Enter);
    press(&mut r.h, KeyCode::Char('R'));
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
    let s = review_loaded(&mut r).await;
    assert!(
        s.contains("auto-sync is on: rolling back turns it off, and it stays")
            && s.contains("until you turn it on again"),
        "the step is on the screen:\n{s}"
    );
    assert!(s.contains("and turn auto-sync off"), "{s}");
    r.h.type_str(name);
    press(&mut r.h, KeyCode::Tab);
    r.h.type_str("broker config regression");
    press(&mut r.h, KeyCode::Enter);
    // The sandbox: auto-sync off, and since when, on the Application.
    let mut off = None;
    for _ in 0..600 {
        let app = r
            .argo
            .get_application(name, Default::default())
            .await
            .unwrap();
        // Off, and marked since when (with Argo CD's `toggle-auto-sync` action the mark is
        // a second write right after it).
        if !app.auto_sync()
            && app
                .metadata
                .annotations
                .contains_key("shipdeck.io/auto-sync-off-since")
        {
            off = Some(app);
            break;
        }
        r.h.step(Duration::from_millis(50)).await;
    }
    let app = off.unwrap_or_else(|| panic!("auto-sync still on:\n{}", r.h.screen(160, 48)));
    assert!(
        app.metadata
            .annotations
            .contains_key("shipdeck.io/auto-sync-off-since"),
        "{:?}",
        app.metadata.annotations
    );
    // The audit line is written once the change is read back, which can be a step after
    // the sandbox shows it: wait for it with a deadline.
    let mut records = Vec::new();
    for _ in 0..600 {
        records = r.audit.read_all().unwrap();
        if records
            .iter()
            .any(|a| a.action == "disable-auto-sync" && a.app == name)
        {
            break;
        }
        r.h.step(Duration::from_millis(50)).await;
    }
    let approve = records
        .iter()
        .find(|a| a.action == "approve" && a.app == name)
        .expect("approved");
    let off = records
        .iter()
        .find(|a| a.action == "disable-auto-sync" && a.app == name)
        .expect("auto-sync off recorded");
    assert_eq!(off.approval_id, approve.approval_id);
    r.sb.stop().await;
}
