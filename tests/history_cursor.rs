//! The history cursor after a rollback, driven by keys against the in-process sandbox
//! through the real Argo CD client and the ops actions. The sandbox's own Argo CD API (raw
//! HTTP) says what was deployed: after rolling back to deployment X, a new entry is on top
//! and the cursor is still on X (followed by id, not row number), X is marked as what runs
//! now, and `R` again does not offer the deployment just rolled back from.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use shipdeck::model::ApprovalPolicy;
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

/// Filter the apps list down to `name` (typed after `/`).
fn filter(h: &mut Headless, name: &str) {
    press(h, KeyCode::Char('/'));
    h.type_str(name);
    press(h, KeyCode::Enter);
}

/// The sandbox's history of `name`: (id, revision), oldest first.
async fn history(api: &common::Api, name: &str) -> Vec<(i64, Option<String>)> {
    let (code, app) = api.get(&format!("/api/v1/applications/{name}")).await;
    assert_eq!(code, 200, "{app}");
    app["status"]["history"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|h| {
                    (
                        h["id"].as_i64().unwrap_or(-1),
                        h["revision"].as_str().map(str::to_string),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

async fn wait_screen(h: &mut Headless, what: &str, f: impl Fn(&str) -> bool) -> String {
    for _ in 0..1200 {
        let s = h.screen(160, 48);
        if f(&s) {
            return s;
        }
        h.step(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}:\n{}", h.screen(160, 48));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_rollback_the_cursor_follows_the_entry_by_id() {
    let mut r = rig().await;
    // An app without auto-sync whose last two deployments differ in revision.
    let candidate = |c: &Console| {
        let mut apps: Vec<_> = c
            .estate
            .apps()
            .filter(|e| {
                let h = &e.app().status.history;
                !e.app().auto_sync()
                    && h.len() >= 2
                    && h[h.len() - 1].revision != h[h.len() - 2].revision
                    && !e.app().operation_in_progress()
            })
            .map(|e| (e.id.name.clone(), e.environment.clone()))
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
    let gated = Policies::default().for_env(&env).approval != ApprovalPolicy::None;
    let before = history(&r.api, &name).await;
    let (target, target_rev) = before[before.len() - 2].clone();
    let (from, _) = before[before.len() - 1].clone();
    command(&mut r.h, "apps");
    filter(&mut r.h, &name);
    press(&mut r.h, KeyCode::Char('R'));
    wait_screen(&mut r.h, "the history screen", |s| {
        s.contains(&format!("history {name}"))
    })
    .await;
    press(&mut r.h, KeyCode::Char('j'));
    press(&mut r.h, KeyCode::Char('R'));
    if gated {
        wait_screen(&mut r.h, "the review to load", |s| {
            s.contains("approve rollback")
                && !s.contains("computing diff")
                && !s.contains("checking permission")
        })
        .await;
        r.h.type_str(&name);
        press(&mut r.h, KeyCode::Tab);
        r.h.type_str("bad release, back to the last good one");
        press(&mut r.h, KeyCode::Enter);
    } else {
        let s = r.h.screen(160, 48);
        assert!(
            s.contains(&format!("Roll back {name} to deployment #{target}?")),
            "{s}"
        );
        press(&mut r.h, KeyCode::Char('y'));
    }
    // The sandbox records the rollback as a new deployment of the target's revision.
    let mut rolled = None;
    for _ in 0..1200 {
        let h = history(&r.api, &name).await;
        if let Some(last) = h.last()
            && last.0 > from
            && last.1 == target_rev
        {
            rolled = Some(last.0);
            break;
        }
        r.h.step(Duration::from_millis(50)).await;
    }
    let Some(new_top) = rolled else {
        panic!(
            "the sandbox never recorded the rollback: {:?}\n{}",
            history(&r.api, &name).await,
            r.h.screen(160, 48)
        );
    };
    // Back to the history screen (the rollout view was pushed on top of it).
    for _ in 0..5 {
        if r.h
            .console
            .screen_titles()
            .last()
            .is_some_and(|t| t.starts_with("history"))
        {
            break;
        }
        press(&mut r.h, KeyCode::Esc);
    }
    let s = wait_screen(&mut r.h, "the new deployment on top", |s| {
        s.contains(&format!("#{new_top}"))
    })
    .await;
    let row = |id: i64| {
        s.lines()
            .find(|l| l.contains(&format!("#{id} ")))
            .unwrap_or_default()
            .to_string()
    };
    assert!(row(new_top).contains("← running"), "{s}");
    assert!(
        row(target).contains("= running now"),
        "the entry rolled back to is marked as what runs now:\n{s}"
    );
    // The cursor is still on the target: `R` says it runs now instead of offering `from`.
    press(&mut r.h, KeyCode::Char('R'));
    let s = r.h.screen(160, 48);
    assert!(
        !s.contains(&format!("deployment #{from}?"))
            && !r
                .h
                .console
                .screen_titles()
                .last()
                .is_some_and(|t| t.starts_with("approve")),
        "R right after the rollback offers the deployment just rolled back from:\n{s}"
    );
    assert!(
        s.contains(&format!(
            "deployment #{target} is what runs now (as #{new_top})"
        )),
        "{s}"
    );
    // Nothing more reached the sandbox.
    assert_eq!(
        history(&r.api, &name).await.last().map(|l| l.0),
        Some(new_top)
    );
    let rollbacks = r
        .audit
        .read_all()
        .unwrap()
        .into_iter()
        .filter(|rec| rec.app == name && rec.action == "rollback")
        .count();
    assert!(rollbacks >= 1, "the rollback is audited");
}
