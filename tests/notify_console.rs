//! Notifications in the console (issue 12): a sync approved by keys with a webhook that
//! cannot be reached still succeeds (the sandbox's Argo CD says Synced), and the console
//! shows the undelivered notification on its flash line and in `:warnings`, naming the
//! webhook by its label, never its URL.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use shipdeck::config::NotifyConfig;
use shipdeck::model::SyncStatus;
use shipdeck::ops::notify::{Notifier, Retry, Target};
use shipdeck::ops::policy::Policies;
use shipdeck::sources::ArgoSource;
use shipdeck::tui::app::Headless;
use std::time::Duration;

mod common;

fn press(h: &mut Headless, code: KeyCode) {
    h.key(KeyEvent::new(code, KeyModifiers::NONE));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undelivered_notification_is_shown_and_the_sync_still_succeeds() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let target = Target::from_config(
        &NotifyConfig {
            name: Some("ops-channel".into()),
            url: Some(format!("http://127.0.0.1:{port}/hook/XSECRETX")),
            url_env: None,
            kind: "slack".into(),
            events: vec!["synced".into(), "approved".into()],
        },
        "notify[0]",
        None,
        |_| None,
    )
    .expect("target");
    let notifier = Notifier::start(
        vec![target],
        Retry {
            attempts: 2,
            backoff: Duration::from_millis(20),
            timeout: Duration::from_secs(2),
        },
    );
    let mut r = common::console::rig(common::console::Options {
        notifier,
        ..Default::default()
    })
    .await;
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
    press(&mut r.h, KeyCode::Char(':'));
    r.h.type_str("pending");
    press(&mut r.h, KeyCode::Enter);
    press(&mut r.h, KeyCode::Char('s'));
    let title = format!("sync {name} in prod");
    let mut reviewed = false;
    for _ in 0..600 {
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
    let want = format!("notification synced for {name} to ops-channel not delivered");
    let mut seen = String::new();
    for _ in 0..1200 {
        let s = r.h.screen(200, 48);
        if s.contains("done: operation Succeeded, Healthy") && s.contains(&want) {
            seen = s;
            break;
        }
        r.h.step(Duration::from_millis(50)).await;
    }
    assert!(!seen.is_empty(), "{}", r.h.screen(200, 48));
    assert!(!seen.contains("XSECRETX"), "{seen}");
    // The sync itself went through: the sandbox's Argo CD says so.
    let app = r
        .argo
        .get_application(&name, Default::default())
        .await
        .expect("app");
    assert_eq!(app.status.sync.status, SyncStatus::Synced);
    // `:warnings` keeps it (and the approval's) after the flash line is gone.
    press(&mut r.h, KeyCode::Esc);
    press(&mut r.h, KeyCode::Char(':'));
    r.h.type_str("warnings");
    press(&mut r.h, KeyCode::Enter);
    let s = r.h.screen(200, 48);
    assert!(s.contains(&want), "{s}");
    assert!(
        s.contains(&format!(
            "notification approved for {name} to ops-channel not delivered"
        )),
        "{s}"
    );
    assert!(s.contains("after 2 attempts"), "{s}");
    assert!(!s.contains("XSECRETX"), "{s}");
}
