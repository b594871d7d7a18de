//! `b` on an app's board cell opens the build form with that app's service and
//! environment preselected (matched by the pipeline's inputs), driven by keys against the
//! in-process sandbox; the run the sandbox then holds (its own CI state) was started with
//! exactly those inputs; the run screen shows them, the image and where it goes next,
//! and the sandbox's run log says the image went exactly there.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use shipdeck::ops::policy::Policies;
use shipdeck::sandbox::auth::Role;
use shipdeck::tui::app::Headless;
use std::time::Duration;

mod common;

use common::console::Rig;

async fn rig(time_scale: f64) -> Rig {
    common::console::rig(common::console::Options {
        time_scale,
        ci: true,
        ..Default::default()
    })
    .await
}

fn press(h: &mut Headless, code: KeyCode) {
    h.key(KeyEvent::new(code, KeyModifiers::NONE));
}

async fn wait_screen(h: &mut Headless, what: &str, f: impl Fn(&str) -> bool) -> String {
    for _ in 0..1200 {
        let s = h.screen(180, 60);
        if f(&s) {
            return s;
        }
        h.step(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}:\n{}", h.screen(180, 60));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b_on_a_cell_preselects_its_service_and_environment() {
    let mut r = rig(0.02).await;
    assert!(
        r.h.until(Duration::from_secs(30), |c| c.estate.len() > 10)
            .await
    );
    // A cell off the first row and column: neither the first service nor environment.
    press(&mut r.h, KeyCode::Char('j'));
    press(&mut r.h, KeyCode::Right);
    press(&mut r.h, KeyCode::Char('b'));
    let title =
        r.h.console
            .screen_titles()
            .last()
            .cloned()
            .unwrap_or_default();
    let name = title
        .strip_prefix("builds for ")
        .unwrap_or_else(|| panic!("b opens the builds of the cell's app: {title:?}"))
        .to_string();
    let (service, env) = {
        let e = r.h.console.estate.find_by_name(&name)[0];
        (e.service.clone(), e.environment.name.clone())
    };
    let deploy =
        r.sb.world
            .estate
            .github
            .workflows
            .iter()
            .find(|w| w.file == "deploy-service.yml")
            .expect("the sandbox's deploy workflow")
            .inputs
            .clone();
    let default_of = |n: &str| {
        deploy
            .iter()
            .find(|i| i.name == n)
            .and_then(|i| i.default.clone())
            .unwrap_or_default()
    };
    assert_ne!(service, default_of("service"), "pick another cell");
    assert_ne!(env, default_of("environment"), "pick another cell");
    let s = wait_screen(&mut r.h, "the pipelines", |s| {
        s.contains("deploy-service.yml")
    })
    .await;
    let rows: Vec<&str> = s
        .lines()
        .filter(|l| l.contains("│GitHub ") || l.contains("│Jenkins "))
        .collect();
    let at = rows
        .iter()
        .position(|l| l.contains("deploy-service.yml"))
        .expect("listed");
    for _ in 0..at {
        press(&mut r.h, KeyCode::Char('j'));
    }
    press(&mut r.h, KeyCode::Enter);
    let s = wait_screen(&mut r.h, "the form", |s| {
        s.contains("trigger deploy-service.yml")
    })
    .await;
    assert!(
        s.contains(&format!("‹{service}›")),
        "service preselected:\n{s}"
    );
    assert!(
        s.contains(&format!("‹{env}›")),
        "environment preselected:\n{s}"
    );
    let note = s
        .lines()
        .find(|l| l.contains(&format!("for {name}: ")))
        .unwrap_or_else(|| panic!("the form says what it preselected for {name}:\n{s}"));
    assert!(
        note.contains(&format!("service={service}"))
            && note.contains(&format!("environment={env}")),
        "{note}"
    );
    // The cursor is on the required field left empty (the version): type it and go.
    r.h.type_str("sha-7777777");
    let before: Vec<u64> = r.sb.world.ci.runs().iter().map(|x| x.id).collect();
    press(&mut r.h, KeyCode::Enter);
    let run = common::wait_until("the sandbox holds the new run", || {
        r.sb.world
            .ci
            .runs()
            .into_iter()
            .find(|x| !before.contains(&x.id))
    })
    .await;
    assert_eq!(
        run.inputs.get("service"),
        Some(&service),
        "{:?}",
        run.inputs
    );
    assert_eq!(
        run.inputs.get("environment"),
        Some(&env),
        "{:?}",
        run.inputs
    );
    assert_eq!(
        run.inputs.get("version").map(String::as_str),
        Some("sha-7777777"),
        "{:?}",
        run.inputs
    );
    // The run screen: what it was started with, the image, and where it goes next.
    let (_, argo) = common::Api::new(&r.sb, Role::Admin)
        .get(&format!("/api/v1/applications/{name}"))
        .await;
    let auto = argo["spec"]["syncPolicy"]["automated"].is_object();
    let gated =
        Policies::default().for_env_name(&env).approval != shipdeck::model::ApprovalPolicy::None;
    let what = if gated {
        "waits for approval"
    } else if auto {
        "picks it up (auto-sync)"
    } else {
        "needs a sync (auto-sync off)"
    };
    let s = wait_screen(&mut r.h, "the run screen with its inputs", |s| {
        s.contains("started with")
    })
    .await;
    assert!(
        s.contains(&format!(
            "environment={env}, service={service}, version=sha-7777777"
        )),
        "{s}"
    );
    assert!(
        s.contains(&format!("image         {service}:sha-7777777")),
        "{s}"
    );
    assert!(s.contains(&format!("goes next     {name} {what}")), "{s}");
    // The sandbox bumped that environment, and only that one.
    let log = common::wait_until("the run's effect", || {
        let l = r.sb.world.ci.run(run.id)?.log;
        l.iter().any(|x| x.starts_with("bumped ")).then_some(l)
    })
    .await;
    let bumped: Vec<&String> = log.iter().filter(|x| x.starts_with("bumped ")).collect();
    assert_eq!(bumped.len(), 1, "{log:?}");
    assert!(
        bumped[0].starts_with(&format!("bumped {service} in {env} to sha-7777777")),
        "{log:?}"
    );
}
