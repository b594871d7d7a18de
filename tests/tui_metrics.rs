//! `:metrics` (issue 13) in the console over the in-process sandbox: the screen shows a row
//! per service and environment whose deployment count is what the sandbox's own Argo CD
//! history and Git say (rollbacks apart), an unknown figure with its reason, and `?` says how
//! each figure is computed. A bad span is refused with the usage.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
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

fn secs(t: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(t).unwrap().timestamp()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_screen_counts_what_argo_cd_and_git_hold() {
    let mut r = common::console::rig(common::console::Options::default()).await;
    assert!(
        r.h.until(Duration::from_secs(30), |c| c.estate.len() >= 18)
            .await,
        "the estate did not load"
    );
    command(&mut r.h, "metrics 30d");
    let mut screen = String::new();
    for _ in 0..1200 {
        screen = r.h.screen(170, 60);
        if screen.contains("failure window") {
            break;
        }
        r.h.step(Duration::from_millis(50)).await;
    }
    assert!(screen.contains("failure window"), "{screen}");
    // Oracle: cart-prod's history as the sandbox's API holds it, commit times from its repo.
    let (_, app) = r.api.get("/api/v1/applications/cart-prod").await;
    let history = app["status"]["history"].as_array().unwrap();
    let until = chrono::Utc::now().timestamp();
    let since = until - 30 * 86_400;
    let mut seen: Vec<String> = Vec::new();
    let mut count = 0;
    for h in history {
        let rev = h["revision"].as_str().unwrap().to_string();
        let t = |x: &str| r.sb.world.repo.commit_time(x).unwrap();
        let rollback = match seen.last() {
            Some(p) if *p != rev => seen.contains(&rev) || t(&rev) < t(p),
            _ => false,
        };
        let at = secs(h["deployedAt"].as_str().unwrap());
        if !rollback && at >= since {
            count += 1;
        }
        seen.push(rev);
    }
    assert!(count >= 5, "weeks of history: {count}");
    let row = screen
        .lines()
        .find(|l| {
            let w: Vec<&str> = l.split(['│', ' ']).filter(|x| !x.is_empty()).collect();
            w.iter()
                .position(|x| *x == "cart")
                .is_some_and(|i| w.get(i + 1) == Some(&"prod"))
        })
        .unwrap_or_else(|| panic!("no cart prod row:\n{screen}"));
    let words: Vec<&str> = row.split(['│', ' ']).filter(|x| !x.is_empty()).collect();
    let i = words.iter().position(|x| *x == "prod").unwrap();
    assert_eq!(words[i + 1], count.to_string(), "{row}");
    // The row under the cursor says where its deployments came from and why a figure is unknown.
    assert!(screen.contains("from Argo CD history"), "{screen}");
    // `?`: how each figure is computed.
    press(&mut r.h, KeyCode::Char('?'));
    let help = r.h.screen(170, 80);
    assert!(
        help.contains("How this screen's figures are computed"),
        "{help}"
    );
    assert!(help.contains("revisionHistoryLimit"), "{help}");
    press(&mut r.h, KeyCode::Esc);
    press(&mut r.h, KeyCode::Esc);
    command(&mut r.h, "metrics soon");
    r.h.step(Duration::from_millis(50)).await;
    let s = r.h.screen(170, 60);
    assert!(s.contains("usage: :metrics"), "{s}");
}
