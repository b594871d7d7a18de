//! The console shows the sync wave of each app (a WAVE column in the apps list, on estates
//! whose apps carry waves) and of each resource (the app screen's resource list), true to
//! what the sandbox's Argo CD API reports for the social-platform estate.

mod common;

use common::{Api, sandbox_with, wait_for};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use serde_json::Value;
use shipdeck::model::*;
use shipdeck::ops::estate::Estate;
use shipdeck::sandbox::SandboxOptions;
use shipdeck::sandbox::auth::Role;
use shipdeck::tui::console::{Console, Settings};
use shipdeck::tui::views;

fn text(c: &Console, w: u16, h: u16) -> String {
    let mut t = Terminal::new(TestBackend::new(w, h)).expect("terminal");
    t.draw(|f| c.render(f)).expect("draw");
    let buf = t.backend().buffer().clone();
    let mut out = String::new();
    for y in 0..buf.area.height {
        let line: String = (0..buf.area.width).map(|x| buf[(x, y)].symbol()).collect();
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waves_of_apps_and_resources_are_on_screen() {
    let sb = sandbox_with(SandboxOptions {
        estate: "social-platform".into(),
        time_scale: 0.01,
        ..Default::default()
    })
    .await;
    let api = Api::new(&sb, Role::Admin);
    // The sandbox reports resource waves once postgres has been compared.
    let postgres: Value = wait_for("postgres reports its resource waves", || async {
        let (_, app) = api.get("/api/v1/applications/postgres").await;
        app["status"]["resources"]
            .as_array()?
            .iter()
            .any(|r| r["syncWave"] == 2)
            .then_some(app)
    })
    .await;
    let (_, list) = api.get("/api/v1/applications").await;
    let mut estate = Estate::new();
    let mut expected: Vec<(String, String)> = Vec::new();
    for item in list["items"].as_array().into_iter().flatten() {
        let app: Application = serde_json::from_value(item.clone()).expect("wire application");
        let wave = item["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]
            .as_str()
            .unwrap_or("-")
            .to_string();
        expected.push((app.metadata.name.clone(), wave));
        let id = AppId::new("argocd", "argocd", app.metadata.name.clone());
        estate.apply(Update::Upsert(id, Box::new(app)));
    }
    estate.apply(Update::Connection {
        source: "argocd".into(),
        state: Connection::Connected,
    });
    let mut c = Console::new(
        estate,
        Settings {
            operator: "alice".into(),
            source_label: "argocd".into(),
            ..Settings::default()
        },
    );
    c.command("apps");
    let screen = text(&c, 200, 80);
    assert!(screen.contains("WAVE"), "{screen}");
    let mut checked = 0;
    for (name, wave) in &expected {
        let Some(line) = screen
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name.as_str()))
        else {
            continue;
        };
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert!(
            cells.contains(&wave.as_str()),
            "{name}: wave {wave} not in {line:?}"
        );
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} apps on screen:\n{screen}");

    // The app screen lists postgres' resources with their waves.
    let app: Application = serde_json::from_value(postgres.clone()).expect("wire application");
    let id = AppId::new("argocd", "argocd", "postgres");
    let mut estate = Estate::new();
    estate.apply(Update::Upsert(id.clone(), Box::new(app)));
    let mut c = Console::new(estate, Settings::default());
    c.push(Box::new(views::application::ApplicationView::new(id)));
    let screen = text(&c, 160, 48);
    for r in postgres["status"]["resources"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let name = format!(
            "{}/{}",
            r["kind"].as_str().unwrap_or(""),
            r["name"].as_str().unwrap_or("")
        );
        let line = screen
            .lines()
            .find(|l| l.contains(&name))
            .unwrap_or_else(|| panic!("{name} not on screen:\n{screen}"));
        match r["syncWave"].as_i64() {
            Some(w) => assert!(line.contains(&format!("wave {w}")), "{line}"),
            None => assert!(!line.contains("wave"), "{line}"),
        }
    }
    sb.stop().await;
}
