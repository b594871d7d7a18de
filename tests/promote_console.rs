//! `p` on a board cell, driven by keys in the headless console over the in-process sandbox
//! (real Argo CD client, Git mirrors, ops): the promote screen shows the commit's diff;
//! `n` drops it (nothing reaches the sandbox's repository); `y` pushes it, the prod app
//! turns OutOfSync at it, and the approval screen (`s`) names the promotion as evidence.
//! Oracles: `git` in the sandbox's repository, the sandbox's Argo CD REST API (raw HTTP),
//! the audit file.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use shipdeck::tui::app::Headless;
use std::time::Duration;

mod common;

fn press(h: &mut Headless, code: KeyCode) {
    h.key(KeyEvent::new(code, KeyModifiers::NONE));
}

fn git(repo: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Pump the console until its screen shows `what`, within `deadline`; returns the screen.
async fn screen_until(h: &mut Headless, w: u16, ht: u16, what: &str, deadline: Duration) -> String {
    let end = tokio::time::Instant::now() + deadline;
    loop {
        let s = h.screen(w, ht);
        if s.contains(what) {
            return s;
        }
        assert!(
            tokio::time::Instant::now() < end,
            "the screen never showed {what:?}:\n{s}"
        );
        h.step(Duration::from_millis(30)).await;
    }
}

async fn images(api: &common::Api, name: &str) -> Vec<String> {
    let (_, app) = api.get(&format!("/api/v1/applications/{name}")).await;
    app["status"]["summary"]["images"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|i| i.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p_on_the_board_shows_the_commit_n_drops_it_y_pushes_it() {
    let mut r = common::console::rig(common::console::Options::default()).await;
    let repo = r.sb.world.repo.path().to_path_buf();
    let head = git(&repo, &["rev-parse", "main"]);
    assert!(
        r.h.until(Duration::from_secs(30), |c| {
            c.estate.cell("frontend", "prod").next().is_some()
                && c.estate.cell("frontend", "staging").next().is_some()
        })
        .await,
        "frontend on the board:\n{}",
        r.h.screen(160, 40)
    );
    let staging = images(&r.api, "frontend-staging").await;
    assert_eq!(staging.len(), 1, "{staging:?}");
    let (row, col) = {
        let e = &r.h.console.estate;
        (
            e.services().position(|s| s == "frontend").expect("row"),
            e.environments()
                .position(|e| e.name == "prod")
                .expect("col"),
        )
    };
    for _ in 0..row {
        press(&mut r.h, KeyCode::Down);
    }
    for _ in 0..col {
        press(&mut r.h, KeyCode::Right);
    }
    let open = |h: &mut Headless| press(h, KeyCode::Char('p'));
    open(&mut r.h);
    screen_until(&mut r.h, 200, 50, "y push to main", Duration::from_secs(60)).await;
    let s = r.h.screen(200, 50);
    assert!(
        s.contains(&format!(
            "Promote {} from staging (frontend-staging",
            staging[0]
        )),
        "{s}"
    );
    assert!(
        s.contains(&format!("+        image: {}", staging[0])),
        "{s}"
    );
    assert!(s.contains("Shipdeck-Promoted-From: staging"), "{s}");

    // `n`: dropped, nothing pushed.
    press(&mut r.h, KeyCode::Char('n'));
    let audit = r.audit.clone();
    assert!(
        r.h.until(Duration::from_secs(30), |_| {
            audit.read_all().unwrap_or_default().iter().any(|a| {
                a.action == "promote"
                    && a.outcome == "refused"
                    && a.detail.as_deref() == Some("declined in the console")
            })
        })
        .await,
        "the drop is audited"
    );
    assert_eq!(
        git(&repo, &["rev-parse", "main"]),
        head,
        "nothing was pushed"
    );

    // `p` again, `y`: pushed.
    open(&mut r.h);
    screen_until(&mut r.h, 200, 50, "y push to main", Duration::from_secs(60)).await;
    press(&mut r.h, KeyCode::Char('y'));
    screen_until(&mut r.h, 200, 50, "✓ pushed", Duration::from_secs(60)).await;
    let sha = git(&repo, &["rev-parse", "main"]);
    assert_eq!(git(&repo, &["rev-parse", "main~1"]), head);
    let tag = staging[0].rsplit_once(':').expect("tag").1;
    assert_eq!(
        git(&repo, &["log", "-1", "--format=%s%n%an", "main"]),
        format!("promote frontend {tag} from staging to prod\nadmin")
    );
    common::wait_ok(
        "frontend-prod OutOfSync at the promotion",
        Duration::from_secs(60),
        || {
            let api = &r.api;
            let sha = sha.clone();
            async move {
                let (_, a) = api.get("/api/v1/applications/frontend-prod").await;
                if a["status"]["sync"]["status"] == "OutOfSync"
                    && a["status"]["sync"]["revision"] == sha.as_str()
                {
                    Ok(())
                } else {
                    Err(a["status"]["sync"].to_string())
                }
            }
        },
    )
    .await;

    // Back on the board, `s`: the approval screen names the promotion.
    press(&mut r.h, KeyCode::Esc);
    assert!(
        r.h.until(Duration::from_secs(30), |c| c
            .estate
            .cell("frontend", "prod")
            .next()
            .is_some_and(
                |e| e.app().status.sync.revision.as_deref() == Some(sha.as_str())
            ))
        .await,
        "the console sees the new revision"
    );
    press(&mut r.h, KeyCode::Char('s'));
    screen_until(
        &mut r.h,
        220,
        60,
        "promoted from staging by admin",
        Duration::from_secs(60),
    )
    .await;
}
