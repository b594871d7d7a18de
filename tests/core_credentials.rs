//! Core mode with a kubeconfig credential the API server refuses (issue 8): the application
//! watch reports `failed` with what to do (the credential of context X was refused (401) /
//! lacks permission (403); refresh it), not `reconnecting since …` forever; the console's
//! header and the app screen's flash line say it; headless `status --core` exits 4 with
//! the same words. The oracle that the credential really is refused is the sandbox's
//! Kubernetes API answering 401/403 to the same credential over plain HTTP.

mod common;

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use serde_json::json;
use shipdeck::model::{AppId, Connection, Update};
use shipdeck::ops::estate::Estate;
use shipdeck::sandbox::Sandbox;
use shipdeck::sources::ArgoSource;
use shipdeck::sources::git::GitMirrors;
use shipdeck::sources::kube::{CoreArgo, CoreOptions};
use shipdeck::tui::console::{Console, Settings};
use shipdeck::tui::views;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

const REFUSED: &str = "the kubeconfig credential of context `in-cluster` was refused (401";
const LACKS: &str = "the kubeconfig credential of context `in-cluster` lacks permission to";

/// The sandbox's kubeconfig with every token replaced by one it never issued.
fn revoked_kubeconfig(sb: &Sandbox, dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(sb.kubeconfig_path()).expect("kubeconfig");
    let out: String = text
        .lines()
        .map(|l| {
            if l.starts_with("    token: ") {
                "    token: \"revoked-0000\"".to_string()
            } else if l.starts_with("      token: ") {
                "      token: [\"revoked-0000\"]".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let p = dir.join("revoked-kubeconfig");
    std::fs::write(&p, out).expect("write kubeconfig");
    p
}

/// The sandbox's kubeconfig whose admin impersonates a user the cluster does not grant.
fn forbidden_kubeconfig(sb: &Sandbox, dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(sb.kubeconfig_path()).expect("kubeconfig");
    let p = dir.join("forbidden-kubeconfig");
    std::fs::write(&p, text.replace("as: \"admin\"", "as: \"nobody\"")).expect("write");
    p
}

/// The oracle: what the sandbox's Kubernetes API answers the credential of `kubeconfig`'s
/// current context (its token and impersonation), over plain HTTP.
async fn api_answers(sb: &Sandbox, kubeconfig: &Path) -> u16 {
    // The admin user's block as the sandbox writes it: token, `as`, `as-user-extra.token`.
    let text = std::fs::read_to_string(kubeconfig).expect("kubeconfig");
    let block: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("- name: \"admin\""))
        .take_while(|l| !l.starts_with("- name: \"viewer\""))
        .collect();
    let value = |prefix: &str| -> Option<String> {
        block.iter().find_map(|l| {
            l.strip_prefix(prefix).map(|v| {
                v.trim_matches(|c| c == '"' || c == '[' || c == ']')
                    .to_string()
            })
        })
    };
    let mut rb = common::http()
        .get(format!(
            "{}/apis/argoproj.io/v1alpha1/namespaces/argocd/applications",
            sb.url
        ))
        .bearer_auth(value("    token: ").expect("a token"));
    if let Some(who) = value("    as: ") {
        rb = rb.header("Impersonate-User", who);
    }
    if let Some(t) = value("      token: ") {
        rb = rb.header("Impersonate-Extra-Token", t);
    }
    rb.send().await.expect("the API answers").status().as_u16()
}

async fn core(kubeconfig: &Path, cache: &Path) -> CoreArgo {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).expect("kubeconfig");
    CoreArgo::connect(CoreOptions {
        kubeconfig: Some(kc),
        git: Some(Arc::new(GitMirrors::new(cache))),
        ..Default::default()
    })
    .await
    .expect("the client builds (nothing is asked yet)")
}

/// Updates until a connection state satisfies `done`, within `within`; all seen updates.
async fn until_state(
    rx: &mut mpsc::Receiver<Update>,
    within: Duration,
    what: &str,
    done: impl Fn(&Connection) -> bool,
) -> Vec<Update> {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "{what}: saw {seen:?}");
        if let Ok(Some(u)) = tokio::time::timeout(left, rx.recv()).await {
            let hit = matches!(&u, Update::Connection { state, .. } if done(state));
            seen.push(u);
            if hit {
                return seen;
            }
        }
    }
}

fn screen(c: &Console, w: u16, h: u16) -> String {
    let mut t = Terminal::new(TestBackend::new(w, h)).expect("terminal");
    t.draw(|f| c.render(f)).expect("draw");
    let buf = t.backend().buffer().clone();
    (0..buf.area.height)
        .map(|y| {
            (0..buf.area.width)
                .map(|x| buf[(x, y)].symbol())
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Stays failed (never `reconnecting`, never `connected`) for a few retries.
async fn stays_failed(rx: &mut mpsc::Receiver<Update>, needle: &str) {
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        if let Ok(Some(Update::Connection { state, .. })) =
            tokio::time::timeout(Duration::from_millis(300), rx.recv()).await
        {
            assert!(
                matches!(&state, Connection::Failed { reason } if reason.contains(needle)),
                "stays failed with what to do, saw {state:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_kubeconfig_credential_says_what_to_do() {
    let sb = common::sandbox().await;
    let dir = tempfile::tempdir().expect("tempdir");

    // 401 from the start: a token the cluster never issued.
    let revoked = revoked_kubeconfig(&sb, dir.path());
    assert_eq!(api_answers(&sb, &revoked).await, 401, "oracle: refused");
    let src = core(&revoked, &dir.path().join("git")).await;
    let (tx, mut rx) = mpsc::channel(4096);
    let task = src.watch_applications(tx);
    until_state(&mut rx, Duration::from_secs(20), "failed (401)", |s| {
        matches!(s, Connection::Failed { reason } if reason.contains(REFUSED) && reason.contains("refresh it"))
    })
    .await;
    stays_failed(&mut rx, REFUSED).await;
    task.abort();

    // 403: the credential is known but may not list Applications.
    let forbidden = forbidden_kubeconfig(&sb, dir.path());
    assert_eq!(api_answers(&sb, &forbidden).await, 403, "oracle: forbidden");
    let src = core(&forbidden, &dir.path().join("git")).await;
    let (tx, mut rx) = mpsc::channel(4096);
    let task = src.watch_applications(tx);
    until_state(&mut rx, Duration::from_secs(20), "failed (403)", |s| {
        matches!(s, Connection::Failed { reason } if reason.contains(LACKS) && reason.contains("Applications"))
    })
    .await;
    task.abort();

    // Headless: `status --core` exits 4 (permission / not authenticated) with the words.
    for (kubeconfig, needle) in [(&revoked, REFUSED), (&forbidden, LACKS)] {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_shipdeck"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", dir.path())
            .env("XDG_CONFIG_HOME", dir.path().join("config"))
            .env("XDG_CACHE_HOME", dir.path().join("cache"))
            .env("XDG_DATA_HOME", dir.path().join("data"))
            .env("KUBECONFIG", kubeconfig)
            .args(["--core", "status"])
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(Duration::from_secs(120), out)
            .await
            .expect("status ends")
            .expect("status runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(4), "{stderr}");
        assert!(stderr.contains(needle), "{stderr}");
    }

    // Revoked mid-session: the watch is connected and the app screen open, then the
    // cluster stops accepting the token; header and app screen say so.
    let before = dir.path().join("kubeconfig-before");
    std::fs::copy(sb.kubeconfig_path(), &before).expect("copy kubeconfig");
    let good = core(&before, &dir.path().join("git")).await;
    let (tx, mut rx) = mpsc::channel(4096);
    let task = good.watch_applications(tx);
    let seen = until_state(&mut rx, Duration::from_secs(30), "connected", |s| {
        *s == Connection::Connected
    })
    .await;
    let mut c = Console::new(Estate::new(), Settings::default());
    c.apply(seen);
    let id = AppId::new(good.context(), "argocd", "cart-dev");
    c.push(Box::new(views::application::ApplicationView::new(id)));
    common::fault(&sb, json!({"fault": "expire-tokens"})).await;
    common::fault(&sb, json!({"fault": "drop-watches"})).await;
    assert_eq!(api_answers(&sb, &before).await, 401, "oracle: now refused");
    let seen = until_state(
        &mut rx,
        Duration::from_secs(30),
        "failed after revoke",
        |s| matches!(s, Connection::Failed { reason } if reason.contains(REFUSED)),
    )
    .await;
    c.apply(seen);
    let text = screen(&c, 200, 40);
    assert!(
        c.screen_titles()
            .last()
            .is_some_and(|t| t.contains("cart-dev")),
        "{:?}",
        c.screen_titles()
    );
    let header = text.lines().next().unwrap_or_default();
    assert!(
        header.contains("✗ in-cluster failed: the kubeconfig credential"),
        "{text}"
    );
    assert!(
        text.contains(&format!("in-cluster: {REFUSED}")) && !text.contains("reconnecting"),
        "the app screen says it whole:\n{text}"
    );
    task.abort();
}
