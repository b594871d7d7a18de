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
