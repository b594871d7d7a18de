//! The board and lists (issue 8): what they say at 80x24 and 120 columns, the `/` filter
//! on the board and in `:apps`, `:refresh`, palette commands that replace the screen, the
//! breadcrumb, `«` and the rollback cause, and a refused token. Drawn into a `TestBackend`
//! from a fixture estate whose deploy times are set so that the truth is known by
//! construction (staging got cart's sha-be2164f after prod's last deploy; prod got a
//! hotfix of search that staging never had).

use chrono::{TimeZone, Utc};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use shipdeck::model::*;
use shipdeck::ops::estate::Estate;
use shipdeck::tui::console::{Console, Settings};
use shipdeck::tui::request::{Payload, Request, Response};
use shipdeck::tui::views;

struct Deploy<'a> {
    name: &'a str,
    env: &'a str,
    sync: SyncStatus,
    health: HealthStatus,
    image: &'a str,
    /// (revision, deployed at), oldest first.
    history: &'a [(&'a str, &'a str)],
    target: &'a str,
}

fn app(d: &Deploy) -> Application {
    let mut a = Application::default();
    a.metadata.name = d.name.into();
    a.metadata.namespace = "argocd".into();
    a.metadata.labels.insert("env".into(), d.env.into());
    a.spec.destination.namespace = Some(format!("shop-{}", d.env));
    a.status.sync.status = d.sync;
    a.status.sync.revision = Some(d.target.into());
    a.status.health.status = d.health;
    a.status.history = d
        .history
        .iter()
        .enumerate()
        .map(|(i, (rev, at))| HistoryEntry {
            id: i as i64 + 1,
            revision: Some(rev.to_string()),
            deployed_at: Some(at.to_string()),
            ..Default::default()
        })
        .collect();
    a.status.summary = Some(Summary {
        images: vec![format!("registry.example.com/shop/{}", d.image)],
        ..Default::default()
    });
    a
}

fn estate() -> Estate {
    use HealthStatus::*;
    use SyncStatus::*;
    let apps = [
        Deploy {
            name: "cart-staging",
            env: "staging",
            sync: Synced,
            health: Healthy,
            image: "cart:sha-be2164f",
            history: &[
                ("c1", "2024-06-01T10:00:00Z"),
                ("c2", "2024-06-10T10:00:00Z"),
            ],
            target: "c2",
        },
        // Prod runs the older image since June 2 and Git holds the new one: it lags
        // staging, and waits for approval (prod requires one by default).
        Deploy {
            name: "cart-prod",
            env: "prod",
            sync: OutOfSync,
            health: Healthy,
            image: "cart:sha-0aa11bb",
            history: &[("p1", "2024-06-02T10:00:00Z")],
            target: "p2",
        },
        Deploy {
            name: "search-staging",
            env: "staging",
            sync: Synced,
            health: Degraded,
            image: "search:sha-1111111",
            history: &[("s1", "2024-06-01T10:00:00Z")],
            target: "s1",
        },
        // A hotfix went straight to prod on June 5: prod is ahead, not behind.
        Deploy {
            name: "search-prod",
            env: "prod",
            sync: Synced,
            health: Healthy,
            image: "search:sha-2222222",
            history: &[
                ("q1", "2024-05-20T10:00:00Z"),
                ("q2", "2024-06-05T10:00:00Z"),
            ],
            target: "q2",
        },
        // Rolled back to q1 after q2: Git's head is not deployed on purpose.
        Deploy {
            name: "billing-prod",
            env: "prod",
            sync: OutOfSync,
            health: Healthy,
            image: "billing:sha-3333333",
            history: &[
                ("b1", "2024-06-01T10:00:00Z"),
                ("b2", "2024-06-03T10:00:00Z"),
                ("b1", "2024-06-04T10:00:00Z"),
            ],
            target: "b2",
        },
        Deploy {
            name: "billing-staging",
            env: "staging",
            sync: Synced,
            health: Healthy,
            image: "billing:sha-4444444",
            history: &[("t1", "2024-06-03T09:00:00Z")],
            target: "t1",
        },
    ];
    let mut e = Estate::new();
    for d in &apps {
        let a = app(d);
        e.apply(Update::Upsert(
            AppId::new("argocd", "argocd", d.name),
            Box::new(a),
        ));
    }
    e.apply(Update::Connection {
        source: "argocd".into(),
        state: Connection::Connected,
    });
    e
}

fn console() -> Console {
    let mut c = Console::new(
        estate(),
        Settings {
            operator: "alice".into(),
            source_label: "argocd".into(),
            ..Settings::default()
        },
    );
    c.set_now(Utc.with_ymd_and_hms(2024, 6, 12, 15, 0, 0).unwrap());
    c
}

fn id(name: &str) -> AppId {
    AppId::new("argocd", "argocd", name)
}

fn screen(c: &Console, w: u16, h: u16) -> Vec<String> {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| c.render(f)).unwrap();
    let buf = t.backend().buffer().clone();
    (0..h)
        .map(|y| {
            let mut line = String::new();
            let mut skip = 0;
            for x in 0..w {
                if skip > 0 {
                    skip -= 1;
                    continue;
                }
                let sym = buf[(x, y)].symbol();
                line.push_str(sym);
                skip = unicode_width::UnicodeWidthStr::width(sym).saturating_sub(1);
            }
            line.trim_end().to_string()
        })
        .collect()
}

fn line_with<'a>(lines: &'a [String], needle: &str) -> &'a str {
    lines
        .iter()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("`{needle}` not on screen:\n{}", lines.join("\n")))
}

fn key(c: &mut Console, code: KeyCode) {
    c.key(KeyEvent::new(code, KeyModifiers::NONE));
}

fn ctrl(c: &mut Console, ch: char) {
    c.key(KeyEvent::new(KeyCode::Char(ch), KeyModifiers::CONTROL));
}

fn chars(c: &mut Console, s: &str) {
    for ch in s.chars() {
        key(c, KeyCode::Char(ch));
    }
}

/// The prod cell of a board row: what follows the staging cell.
fn cells(line: &str) -> Vec<String> {
    // Cells are separated by at least one space; the status of a cell starts with a
    // sync glyph.
    let mut out = Vec::new();
    let mut cur = String::new();
    for ch in line.chars() {
        if matches!(ch, '✓' | '≠' | '?' | '·') && !cur.trim().is_empty() {
            out.push(cur.trim().to_string());
            cur.clear();
        }
        cur.push(ch);
    }
    out.push(cur.trim().to_string());
    out
}

#[test]
fn lag_mark_only_where_the_environment_before_runs_something_newer() {
    let mut c = console();
    // The images each prod history entry deployed (as Git would give them): `«` is told
    // from these; cart prod never ran staging's image, search prod ran it before its
    // hotfix, billing prod ran staging's image (b2) and rolled back from it.
    let img = |i: &str| vec![format!("registry.example.com/shop/{i}")];
    c.estate
        .set_history_images(&id("cart-prod"), vec![img("cart:sha-0aa11bb")]);
    c.estate.set_history_images(
        &id("search-prod"),
        vec![img("search:sha-1111111"), img("search:sha-2222222")],
    );
    c.estate.set_history_images(
        &id("billing-prod"),
        vec![
            img("billing:sha-3333333"),
            img("billing:sha-4444444"),
            img("billing:sha-3333333"),
        ],
    );
    let lines = screen(&c, 160, 30);
    let cart = cells(line_with(&lines, "cart"));
    let search = cells(line_with(&lines, "search"));
    let billing = cells(line_with(&lines, "billing"));
    // [service, staging, prod] (environments in promotion order).
    assert!(cart[2].contains('«'), "cart prod lags staging: {cart:?}");
    assert!(
        !search[2].contains('«'),
        "search prod runs a newer hotfix: {search:?}"
    );
    assert!(
        !billing[2].contains('«'),
        "billing prod ran staging's image before rolling back: {billing:?}"
    );
    assert!(!cart[1].contains('«') && !search[1].contains('«'));
}

#[test]
fn a_rollback_reads_as_a_rollback_on_the_application_screen() {
    let mut c = console();
    c.push(Box::new(views::application::ApplicationView::new(id(
        "billing-prod",
    ))));
    let text = screen(&c, 120, 40).join("\n");
    assert!(
        text.contains("rolled back to an older revision b1; auto-sync off"),
        "{text}"
    );
    assert!(!text.contains("Git moved past"), "{text}");
    // And a plain pending change still says so.
    let mut c = console();
    c.push(Box::new(views::application::ApplicationView::new(id(
        "cart-prod",
    ))));
    let text = screen(&c, 120, 40).join("\n");
    assert!(text.contains("Git moved past what is deployed"), "{text}");
}

#[test]
fn at_80x24_the_board_keeps_tags_and_the_approval_mark() {
    let c = console();
    let lines = screen(&c, 80, 24);
    let cart = cells(line_with(&lines, "cart"));
    assert!(cart[1].contains("be2164f"), "staging tag: {cart:?}");
    assert!(cart[2].contains("0aa11bb"), "prod tag: {cart:?}");
    assert!(cart[2].contains('⚑'), "approval mark: {cart:?}");
    for l in &lines[2..5] {
        for cell in cells(l).iter().skip(1) {
            // Every cell shows at least the last 7 characters of its tag.
            let tag = cell
                .split_whitespace()
                .find(|w| w.contains("sha-") || w.starts_with('…'));
            let tag = tag.unwrap_or_else(|| panic!("no tag in `{cell}` of `{l}`"));
            assert!(
                tag.trim_start_matches('…').trim_start_matches("sha-").len() >= 7,
                "tag cut too short: `{tag}` in `{l}`"
            );
        }
    }
}

#[test]
fn at_80x24_the_apps_list_keeps_version_and_needs_approval() {
    let mut c = console();
    c.command("apps");
    let lines = screen(&c, 80, 24);
    let header = line_with(&lines, "NAME");
    assert!(
        header.contains("VERSION") && header.contains("STATE"),
        "{header}"
    );
    let row = line_with(&lines, "cart-prod");
    assert!(row.contains("needs approval"), "{row}");
    assert!(row.contains("0aa11bb"), "{row}");
    let row = line_with(&lines, "billing-prod");
    assert!(row.contains("rolled-back"), "{row}");
}

#[test]
fn board_slash_filters_services_and_help_lists_it() {
    let mut c = console();
    key(&mut c, KeyCode::Char('/'));
    chars(&mut c, "degr");
    key(&mut c, KeyCode::Enter);
    let lines = screen(&c, 120, 30);
    let text = lines.join("\n");
    assert!(text.contains("search"), "{text}");
    assert!(
        !text.contains("cart") && !text.contains("billing"),
        "{text}"
    );
    assert!(text.contains("filter: degr · 1 of 3 services"), "{text}");
    // The cursor acts on what is shown.
    key(&mut c, KeyCode::Enter);
    assert_eq!(
        c.screen_titles().last().map(String::as_str),
        Some("app search-staging")
    );
    key(&mut c, KeyCode::Esc);
    // Esc clears the filter.
    key(&mut c, KeyCode::Esc);
    let text = screen(&c, 120, 30).join("\n");
    assert!(text.contains("cart") && text.contains("billing"), "{text}");
    key(&mut c, KeyCode::Char('?'));
    let help = screen(&c, 120, 40).join("\n");
    assert!(help.contains("filter services"), "{help}");
}

#[test]
fn apps_filter_is_a_case_insensitive_substring_of_name_env_sync_health() {
    let mut c = console();
    c.command("apps");
    let filter = |c: &mut Console, f: &str| {
        key(c, KeyCode::Char('/'));
        chars(c, f);
        key(c, KeyCode::Enter);
        let text = screen(c, 120, 30).join("\n");
        key(c, KeyCode::Esc);
        text
    };
    let t = filter(&mut c, "degr");
    assert!(
        t.contains("search-staging") && !t.contains("cart-prod"),
        "{t}"
    );
    let t = filter(&mut c, "PRO");
    assert!(
        t.contains("cart-prod") && !t.contains("cart-staging"),
        "{t}"
    );
    let t = filter(&mut c, "outof");
    assert!(
        t.contains("cart-prod") && t.contains("billing-prod") && !t.contains("search-prod"),
        "{t}"
    );
    let t = filter(&mut c, "Staging");
    assert!(
        t.contains("billing-staging") && !t.contains("billing-prod"),
        "{t}"
    );
}

#[test]
fn refresh_refreshes_the_app_under_the_cursor_and_says_how_it_went() {
    let mut c = console();
    // The board's cursor starts on the first service (billing) in the first environment.
    c.command("refresh");
    let reqs = c.take_requests();
    let asked: Vec<_> = reqs
        .iter()
        .filter_map(|o| match &o.request {
            Request::Refresh { app, hard } => Some((app.clone(), *hard)),
            _ => None,
        })
        .collect();
    assert_eq!(asked, vec![(Some(id("billing-staging")), false)]);
    let flash = c.flash().map(|f| f.1.clone()).unwrap_or_default();
    assert!(
        flash.contains("refresh of billing-staging requested"),
        "{flash}"
    );
    c.respond(Response {
        ticket: reqs[0].ticket,
        result: Ok(Payload::Accepted("refresh requested".into())),
    });
    let flash = c.flash().map(|f| f.1.clone()).unwrap_or_default();
    assert!(flash.contains("refresh done"), "{flash}");
    assert!(screen(&c, 120, 30).join("\n").contains("refresh done"));

    // Hard, on another app, failing.
    key(&mut c, KeyCode::Char('j'));
    c.command("refresh!");
    let reqs = c.take_requests();
    assert!(matches!(
        &reqs[0].request,
        Request::Refresh { app: Some(a), hard: true } if *a == id("cart-staging")
    ));
    c.respond(Response {
        ticket: reqs[0].ticket,
        result: Err("permission denied".into()),
    });
    let flash = c.flash().map(|f| f.1.clone()).unwrap_or_default();
    assert!(
        flash.contains("hard refresh of cart-staging failed: permission denied"),
        "{flash}"
    );

    // Every app.
    c.command("refresh all");
    let reqs = c.take_requests();
    assert_eq!(reqs.len(), 6);
    for (i, r) in reqs.iter().enumerate() {
        c.respond(Response {
            ticket: r.ticket,
            result: if i == 2 {
                Err("timed out".into())
            } else {
                Ok(Payload::Accepted("refresh requested".into()))
            },
        });
    }
    let flash = c.flash().map(|f| f.1.clone()).unwrap_or_default();
    assert!(flash.contains("5 of 6 apps refreshed; failed:"), "{flash}");
}

#[test]
fn ctrl_r_on_the_board_and_app_screen_refreshes_and_says_so() {
    let mut c = console();
    ctrl(&mut c, 'r');
    let reqs = c.take_requests();
    assert!(
        reqs.iter().any(|o| matches!(&o.request, Request::Refresh { app: Some(a), .. } if *a == id("billing-staging"))),
        "board Ctrl-r refreshes the cell under the cursor"
    );
    assert!(
        c.flash()
            .is_some_and(|f| f.1.contains("refresh of billing-staging")),
        "{:?}",
        c.flash()
    );
    c.push(Box::new(views::application::ApplicationView::new(id(
        "cart-prod",
    ))));
    let _ = c.take_requests();
    ctrl(&mut c, 'r');
    let reqs = c.take_requests();
    assert!(reqs.iter().any(
        |o| matches!(&o.request, Request::Refresh { app: Some(a), .. } if *a == id("cart-prod"))
    ));
    assert!(
        c.flash()
            .is_some_and(|f| f.1.contains("refresh of cart-prod")),
        "{:?}",
        c.flash()
    );
}

#[test]
fn palette_commands_replace_the_screen() {
    let mut c = console();
    c.command("env prod");
    c.command("apps");
    c.command("env nosuch");
    assert_eq!(c.screen_titles(), vec!["board", "apps nosuch"]);
    c.command("pending");
    assert_eq!(c.screen_titles(), vec!["board", "waiting for approval"]);
}

#[test]
fn breadcrumb_keeps_the_current_screen_whole_at_80_columns() {
    let mut c = console();
    c.command("env prod");
    c.push(Box::new(views::application::ApplicationView::new(id(
        "billing-prod",
    ))));
    c.push(Box::new(views::rollout::RolloutView::new(id(
        "billing-prod",
    ))));
    let lines = screen(&c, 80, 24);
    let title = c.screen_titles().last().cloned().unwrap_or_default();
    assert!(
        lines[0].contains(&title),
        "`{title}` whole in `{}`",
        lines[0]
    );
    assert!(
        lines[0].contains("… › "),
        "shortened from the left: `{}`",
        lines[0]
    );
}

#[test]
fn below_the_size_it_can_draw_the_console_says_the_size_it_needs() {
    let c = console();
    let text = screen(&c, 59, 19).join("\n");
    assert!(text.contains("terminal too small"), "{text}");
    assert!(
        text.contains("59x19: shipdeck needs at least 60x20"),
        "{text}"
    );
    let text = screen(&c, 60, 20).join("\n");
    assert!(
        !text.contains("too small") && text.contains("cart"),
        "{text}"
    );
}

#[test]
fn a_refused_token_says_to_log_in_again() {
    let mut c = console();
    c.apply([Update::Connection {
        source: "argocd".into(),
        state: Connection::Failed {
            reason: shipdeck::sources::argocd::TOKEN_REJECTED.into(),
        },
    }]);
    let text = screen(&c, 80, 24).join("\n");
    assert!(
        text.contains("token expired or revoked: run `shipdeck login argocd`"),
        "{text}"
    );
    assert!(!text.contains("reconnecting"), "{text}");
}

#[test]
fn app_screen_panes_have_a_cursor_and_enter_opens_the_resource() {
    let mut c = console();
    let mut a = app(&Deploy {
        name: "cart-prod",
        env: "prod",
        sync: SyncStatus::OutOfSync,
        health: HealthStatus::Healthy,
        image: "cart:sha-0aa11bb",
        history: &[("p1", "2024-06-02T10:00:00Z")],
        target: "p2",
    });
    a.status.resources = ["Service/cart", "Deployment/cart"]
        .iter()
        .map(|kn| {
            let (kind, name) = kn.split_once('/').unwrap();
            ResourceStatus {
                kind: kind.into(),
                group: if kind == "Deployment" { "apps" } else { "" }.into(),
                name: name.into(),
                namespace: "shop-prod".into(),
                status: SyncStatus::Synced,
                ..Default::default()
            }
        })
        .collect();
    c.apply([Update::Upsert(id("cart-prod"), Box::new(a))]);
    c.push(Box::new(views::application::ApplicationView::new(id(
        "cart-prod",
    ))));
    // The cursor is on the first resource and highlighted; `j` past the end stays on the
    // last row instead of scrolling rows out of a half-empty pane.
    for _ in 0..5 {
        key(&mut c, KeyCode::Char('j'));
    }
    let lines = screen(&c, 120, 40);
    assert!(line_with(&lines, "Service/cart").contains("Service/cart"));
    assert!(line_with(&lines, "Deployment/cart").contains("Deployment/cart"));
    key(&mut c, KeyCode::Enter);
    assert_eq!(
        c.screen_titles().last().map(|t| t.starts_with("rollout")),
        Some(true),
        "{:?}",
        c.screen_titles()
    );
    key(&mut c, KeyCode::Esc);
    key(&mut c, KeyCode::Char('k'));
    key(&mut c, KeyCode::Enter);
    assert_eq!(
        c.screen_titles().last().map(|t| t.starts_with("diff")),
        Some(true),
        "{:?}",
        c.screen_titles()
    );
}

#[test]
fn at_120_columns_the_diff_summary_keeps_the_target_image() {
    use shipdeck::ops::diff::{AppDiff, Change, ResourceDiff, ResourceKey};
    let target = "ghcr.io/acme/cart:sha-d1e8378";
    let diff = AppDiff {
        resources: vec![ResourceDiff {
            key: ResourceKey {
                group: "apps".into(),
                kind: "Deployment".into(),
                namespace: "shop-prod".into(),
                name: "cart".into(),
            },
            change: Change::Modify,
            summary: vec![format!(
                "image cart ghcr.io/acme/cart:sha-3fdd1ba -> {target}"
            )],
            lines: vec![],
            images: vec![target.into()],
        }],
    };
    let mut c = console();
    c.push(Box::new(views::diff::DiffView::ready(
        id("cart-prod"),
        diff,
    )));
    for w in [120, 80] {
        let lines = screen(&c, w, 30);
        let row = line_with(&lines, "~ Deployment/cart");
        // Whole, or without its registry path when the pane is narrow: never cut.
        assert!(
            row.contains(&format!("-> {target}")) || row.contains("-> cart:sha-d1e8378"),
            "at {w}: `{row}`"
        );
    }
}
