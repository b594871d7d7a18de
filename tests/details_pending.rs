//! Argo CD's projected list (what API mode draws the board from first: a `Summary`) holds no
//! history, no operation message, no conditions: its table of fields has none. Until the
//! whole apps arrive (`Details`), the console says the history is not read yet, never "no
//! deployments", offers nothing to roll back to, and an approval waits for its evidence.
//! Drawn into a `TestBackend`; the oracle is the screen's text.

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use shipdeck::model::*;
use shipdeck::ops::estate::Estate;
use shipdeck::tui::console::{Console, Settings};
use shipdeck::tui::views::{
    application::ApplicationView, approve::ApproveView, history::HistoryView,
};

fn app(env: &str, history: bool) -> (AppId, Application) {
    let name = format!("cart-{env}");
    let mut a = Application::default();
    a.metadata.name = name.clone();
    a.metadata.namespace = "argocd".into();
    a.metadata.labels.insert("env".into(), env.into());
    a.status.sync.status = SyncStatus::OutOfSync;
    a.status.sync.revision = Some("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb".into());
    a.status.health.status = HealthStatus::Healthy;
    if history {
        a.status.history = vec![HistoryEntry {
            id: 7,
            revision: Some("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".into()),
            deployed_at: Some("2026-11-30T10:00:00Z".into()),
            ..Default::default()
        }];
    }
    (AppId::new("argocd", "argocd", name), a)
}

fn apps(history: bool) -> Vec<(AppId, Application)> {
    ["dev", "staging", "prod"]
        .into_iter()
        .map(|e| app(e, history))
        .collect()
}

fn screen(c: &Console) -> String {
    let (w, h) = (140, 30);
    let mut t = Terminal::new(TestBackend::new(w, h)).expect("test terminal");
    t.draw(|f| c.render(f)).expect("draw");
    let buf = t.backend().buffer().clone();
    (0..h)
        .map(|y| {
            let mut l: String = (0..w).map(|x| buf[(x, y)].symbol().to_string()).collect();
            l.push('\n');
            l
        })
        .collect()
}

#[test]
fn until_the_whole_apps_arrive_history_is_unread_and_nothing_is_approved() {
    let mut c = Console::new(Estate::new(), Settings::default());
    c.apply([Update::Summary {
        instance: "argocd".into(),
        apps: apps(false),
        packed: Vec::new(),
        first: true,
        last: true,
    }]);
    let board = screen(&c);
    assert!(board.contains("3 apps"), "{board}");
    assert!(board.contains("reading the history of 3"), "{board}");

    let (prod, _) = app("prod", false);
    c.push(Box::new(ApplicationView::new(prod.clone())));
    let s = screen(&c);
    assert!(s.contains("not read yet"), "{s}");
    assert!(!s.contains("never deployed"), "{s}");
    c.push(Box::new(HistoryView::new(prod.clone())));
    let s = screen(&c);
    assert!(s.contains("history not read yet"), "{s}");
    assert!(!s.contains("no deployments recorded"), "{s}");

    c.push(Box::new(ApproveView::sync(prod.clone())));
    let s = screen(&c);
    assert!(s.contains("wait: history not read yet"), "{s}");
    // The evidence is not computed from what is missing: asked for once it is in.
    assert!(!s.contains("no deployed revision"), "{s}");
    let asked = |c: &mut Console| {
        c.take_requests()
            .into_iter()
            .filter(|o| matches!(o.request, shipdeck::tui::request::Request::Diff { .. }))
            .count()
    };
    assert_eq!(
        asked(&mut c),
        0,
        "no diff asked for before the history is in"
    );

    // The whole apps: the history is there, the header no longer says it is being read.
    c.apply([Update::Details { apps: apps(true) }]);
    assert_eq!(
        asked(&mut c),
        1,
        "the diff is asked for once the history is in"
    );
    let s = screen(&c);
    assert!(!s.contains("history not read yet"), "{s}");
    assert!(!s.contains("reading the history"), "{s}");
    let titles = c.screen_titles();
    assert_eq!(titles.len(), 4, "{titles:?}");
}

#[test]
fn the_history_screen_lists_the_deployments_once_the_details_are_in() {
    let mut c = Console::new(Estate::new(), Settings::default());
    c.apply([Update::Summary {
        instance: "argocd".into(),
        apps: apps(false),
        packed: Vec::new(),
        first: true,
        last: true,
    }]);
    let (prod, _) = app("prod", false);
    c.push(Box::new(HistoryView::new(prod)));
    c.apply([Update::Details { apps: apps(true) }]);
    let s = screen(&c);
    assert!(s.contains("aaaaaaa"), "the deployment's revision: {s}");
}

#[test]
fn details_never_overwrite_a_change_the_stream_brought() {
    let mut e = Estate::new();
    e.apply(Update::Summary {
        instance: "argocd".into(),
        apps: apps(false),
        packed: Vec::new(),
        first: true,
        last: true,
    });
    assert_eq!(e.incomplete(), 3);
    // A change of prod arrives first (whole, from the stream), then the list's older copy.
    let (prod, mut newer) = app("prod", true);
    newer.status.sync.status = SyncStatus::Synced;
    e.apply(Update::Upsert(prod.clone(), Box::new(newer)));
    assert_eq!(e.incomplete(), 2);
    // An app deleted meanwhile does not come back with the details.
    let (dev, _) = app("dev", false);
    e.apply(Update::Delete(dev.clone()));
    assert_eq!(e.incomplete(), 1);
    e.apply(Update::Details { apps: apps(true) });
    assert_eq!(e.incomplete(), 0);
    assert_eq!(e.len(), 2);
    assert!(e.get(&dev).is_none(), "a deleted app stays deleted");
    let p = e.get(&prod).expect("prod");
    assert_eq!(
        p.board.sync,
        SyncStatus::Synced,
        "the stream's change stands"
    );
    assert!(p.board.complete && p.board.history_len == 1);
    // A new list marks every entry incomplete again.
    e.apply(Update::Summary {
        instance: "argocd".into(),
        apps: apps(false),
        packed: Vec::new(),
        first: true,
        last: true,
    });
    assert_eq!(e.incomplete(), 3);
    assert_eq!(
        e.get(&prod).map(|p| p.cause),
        Some(Some(shipdeck::ops::estate::OutOfSyncCause::Unknown)),
        "without history the cause is unknown, not a guess"
    );
}

#[test]
fn metrics_wait_for_the_history_and_do_not_call_it_a_failure() {
    let mut c = Console::new(Estate::new(), Settings::default());
    c.apply([Update::Summary {
        instance: "argocd".into(),
        apps: apps(false),
        packed: Vec::new(),
        first: true,
        last: true,
    }]);
    let view = shipdeck::tui::views::metrics::MetricsView::new(None).expect("30d");
    c.push(Box::new(view));
    let s = screen(&c);
    assert!(s.contains("waiting for the history of 3 apps"), "{s}");
    assert!(!s.contains("cannot be read"), "{s}");
    c.apply([Update::Details { apps: apps(true) }]);
    let s = screen(&c);
    assert!(!s.contains("waiting for the history"), "{s}");
}
