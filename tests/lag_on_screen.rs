//! `«` reads each cell's history images from Git, one load per app. On a large estate the
//! console must read Git for the cells it draws, not for every app (issue 11: 50,000 apps
//! would mean tens of thousands of Git reads and a console busy long after its first
//! frame). Drawn into a `TestBackend`; the oracle is the set of cells the screen shows.

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use shipdeck::model::*;
use shipdeck::ops::estate::Estate;
use shipdeck::tui::console::{Console, Settings};
use shipdeck::tui::request::Request;
use std::collections::BTreeSet;

const SERVICES: usize = 400;

fn app(service: usize, env: &str) -> (AppId, Application) {
    let name = format!("svc-{service:04}-{env}");
    let mut a = Application::default();
    a.metadata.name = name.clone();
    a.metadata.namespace = "argocd".into();
    a.metadata.labels.insert("env".into(), env.into());
    a.status.sync.status = SyncStatus::Synced;
    a.status.health.status = HealthStatus::Healthy;
    a.status.history = vec![HistoryEntry {
        id: 1,
        revision: Some(format!("{env}-{service}")),
        ..Default::default()
    }];
    // Every environment runs its own build: each staging and prod cell needs its history.
    a.status.summary = Some(Summary {
        images: vec![format!("registry.example.com/svc-{service}:{env}")],
        ..Default::default()
    });
    (AppId::new("argocd", "argocd", name), a)
}

fn console() -> Console {
    let mut c = Console::new(Estate::new(), Settings::default());
    let apps = (0..SERVICES)
        .flat_map(|s| ["dev", "staging", "prod"].map(|e| app(s, e)))
        .collect();
    // As a source delivers them: one relist of every app.
    c.apply([Update::Resync {
        instance: "argocd".into(),
        apps,
    }]);
    c
}

/// Draw, then the history loads the console queues afterwards, by app name.
fn loads_after_drawing(c: &mut Console, w: u16, h: u16) -> (String, BTreeSet<String>) {
    let mut t = Terminal::new(TestBackend::new(w, h)).expect("test terminal");
    t.draw(|f| c.render(f)).expect("draw");
    let buf = t.backend().buffer().clone();
    let text: String = (0..h)
        .map(|y| {
            let mut l: String = (0..w).map(|x| buf[(x, y)].symbol().to_string()).collect();
            l.push('\n');
            l
        })
        .collect();
    let loads = c
        .take_background_requests()
        .into_iter()
        .filter_map(|o| match o.request {
            Request::HistoryImages { app } => Some(app.name),
            _ => None,
        })
        .collect();
    (text, loads)
}

/// The apps of the service rows the board shows.
fn drawn_cells(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.starts_with("svc-"))
        .flat_map(|s| ["staging", "prod"].map(|e| format!("{s}-{e}")))
        .collect()
}

#[test]
fn history_is_loaded_for_the_cells_on_screen_and_each_once() {
    let mut c = console();
    let before = c.take_background_requests();
    assert!(
        !before
            .iter()
            .any(|o| matches!(o.request, Request::HistoryImages { .. })),
        "nothing drawn yet, nothing to load"
    );
    let (text, loads) = loads_after_drawing(&mut c, 160, 30);
    let drawn = drawn_cells(&text);
    assert!(drawn.len() >= 20, "the board shows rows:\n{text}");
    assert_eq!(
        loads, drawn,
        "loads are the staging and prod cells drawn:\n{text}"
    );
    // Drawn again, nothing new is asked: each app once per history length.
    let (_, again) = loads_after_drawing(&mut c, 160, 30);
    assert!(again.is_empty(), "asked twice: {again:?}");
    // Scrolling down a page brings other cells into view, and only those are asked.
    for _ in 0..30 {
        c.key(crossterm::event::KeyEvent::new(
            crossterm::event::KeyCode::Char('j'),
            crossterm::event::KeyModifiers::NONE,
        ));
    }
    let (text, loads) = loads_after_drawing(&mut c, 160, 30);
    let drawn_now = drawn_cells(&text);
    let new: BTreeSet<String> = drawn_now.difference(&drawn).cloned().collect();
    assert!(!new.is_empty(), "scrolled:\n{text}");
    assert_eq!(loads, new, "only the cells that came into view:\n{text}");
    assert!(
        loads.len() < SERVICES,
        "{} loads for {SERVICES} services",
        loads.len()
    );
}
