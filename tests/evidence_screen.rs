//! The approval screen's evidence against the sandbox (core mode, real kube-rs client, Git
//! mirrors, the sandbox's GitHub Actions over HTTP): "Proven" names the run that built the
//! target image, "the environment before" compares images, and a rollback lists the commits
//! it undoes. Oracles: the sandbox's CI state, its Git repository (`git log`), and the
//! Deployments it serves.

use shipdeck::model::AppId;
use shipdeck::ops::actions::Ops;
use shipdeck::ops::audit::AuditLog;
use shipdeck::ops::classify::Classifier;
use shipdeck::ops::estate::Estate;
use shipdeck::ops::policy::Policies;
use shipdeck::sandbox::{Sandbox, SandboxOptions};
use shipdeck::sources::ArgoSource;
use shipdeck::sources::git::GitMirrors;
use shipdeck::sources::kube::{CoreArgo, CoreOptions};
use shipdeck::tui::adapt::ArgoProvider;
use shipdeck::tui::app::Headless;
use shipdeck::tui::console::{Console, Settings};
use shipdeck::tui::request::Provider;
use shipdeck::tui::views::approve::ApproveView;
use std::sync::Arc;
use std::time::Duration;

fn git(sb: &Sandbox, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(sb.world.repo.path())
        .args(args)
        .output()
        .expect("git runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn harness() -> (Sandbox, tempfile::TempDir, Headless) {
    let sb = Sandbox::start(SandboxOptions::default())
        .await
        .expect("sandbox starts");
    let dir = tempfile::tempdir().expect("temp dir");
    let kc = kube::config::Kubeconfig::read_from(sb.kubeconfig_path()).expect("kubeconfig");
    let mirrors = Arc::new(GitMirrors::new(dir.path().join("mirrors")));
    let src = CoreArgo::connect(CoreOptions {
        kubeconfig: Some(kc),
        git: Some(mirrors.clone()),
        ..Default::default()
    })
    .await
    .expect("core mode connects");
    let ops = Ops {
        operator: "ana".into(),
        read_only: false,
        policies: Policies::default(),
        classifier: Classifier::default(),
        audit: AuditLog::in_dir(&dir.path().join("audit")),
    };
    let (tx, rx) = tokio::sync::mpsc::channel(4096);
    let _watch = src.watch_applications(tx);
    let ci = shipdeck::connect::Ci::sandbox(&sb, Some(mirrors.clone()));
    let provider: Arc<dyn Provider> =
        Arc::new(ArgoProvider::new(vec![src], ops, Some(mirrors), "sandbox".into()).with_ci(ci));
    let console = Console::new(
        Estate::new(),
        Settings {
            operator: "ana".into(),
            source_label: "sandbox".into(),
            ..Settings::default()
        },
    );
    let mut h = Headless::new(console, provider, rx);
    assert!(
        h.until(Duration::from_secs(30), |c| c.estate.len() >= 20)
            .await,
        "the estate never arrived"
    );
    (sb, dir, h)
}

fn app_id(h: &Headless, name: &str) -> AppId {
    h.console.estate.find_by_name(name)[0].id.clone()
}

async fn screen_until(h: &mut Headless, what: &[&str]) -> String {
    for _ in 0..600 {
        let s = h.screen(160, 48);
        if what.iter().all(|w| s.contains(w)) && !s.contains("looking for the CI run") {
            return s;
        }
        h.step(Duration::from_millis(50)).await;
    }
    panic!("never showed {what:?}:\n{}", h.screen(160, 48));
}

/// The image the app's Deployment file holds on `main` (oracle: Git).
fn target_image(sb: &Sandbox, service: &str) -> String {
    git(
        sb,
        &["show", &format!("main:apps/{service}/prod/deployment.yaml")],
    )
    .lines()
    .find_map(|l| l.trim().strip_prefix("image: ").map(str::to_string))
    .expect("an image line")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_screen_shows_the_build_and_the_environment_before() {
    let (sb, _dir, mut h) = harness().await;

    // checkout-prod: proven.
    let image = target_image(&sb, "checkout");
    let tag = image.rsplit(':').next().expect("tag").to_string();
    let sha = tag.trim_start_matches("sha-").to_string();
    let run = sb
        .world
        .ci
        .runs()
        .into_iter()
        .find(|r| r.head_sha.starts_with(&sha) && r.conclusion == Some("success"))
        .expect("the sandbox's CI has the run that built it");
    let id = app_id(&h, "checkout-prod");
    h.console.push(Box::new(ApproveView::sync(id)));
    let want_run = format!("built by build.yml run #{} (success) from {sha}", run.id);
    let want_before = format!("staging runs {tag} since");
    let want_health = "Healthy";
    let s = screen_until(&mut h, &[&want_run, &want_before]).await;
    assert!(s.contains(want_health), "{s}");
    assert!(!s.contains("not this image"), "{s}");

    // cart-prod: staging never ran its image.
    let image = target_image(&sb, "cart");
    let tag = image.rsplit(':').next().expect("tag").to_string();
    for rev in git(
        &sb,
        &["log", "--format=%H", "develop", "--", "apps/cart/staging"],
    )
    .lines()
    {
        let at = git(
            &sb,
            &["show", &format!("{rev}:apps/cart/staging/deployment.yaml")],
        );
        assert!(!at.contains(&tag), "staging's Git had {tag} at {rev}");
    }
    let id = app_id(&h, "cart-prod");
    h.console.push(Box::new(ApproveView::sync(id)));
    screen_until(
        &mut h,
        &["staging never ran this image", "built by build.yml run #"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_lists_the_commits_it_undoes() {
    let (sb, _dir, mut h) = harness().await;
    let entry = h.console.estate.find_by_name("cart-prod")[0].clone();
    let history = &entry.app().status.history;
    assert!(history.len() >= 2);
    let live = history
        .last()
        .and_then(|e| e.revision.clone())
        .expect("live");
    let target = &history[history.len() - 2];
    let to = target.revision.clone().expect("target revision");
    // Oracle: the commits on the app's path from the target up to live.
    let undone: Vec<String> = git(
        &sb,
        &[
            "log",
            "--format=%h %s",
            &format!("{to}..{live}"),
            "--",
            "apps/cart/prod",
        ],
    )
    .lines()
    .map(str::to_string)
    .collect();
    assert!(!undone.is_empty(), "the oracle finds commits to undo");
    h.console
        .push(Box::new(ApproveView::rollback(entry.id.clone(), target.id)));
    let subjects: Vec<&str> = undone
        .iter()
        .filter_map(|l| l.split_once(' ').map(|(_, s)| s))
        .collect();
    let s = screen_until(&mut h, &subjects).await;
    assert!(!s.contains("no commits between these revisions"), "{s}");
    // What changes: the image, in words.
    let before = git(
        &sb,
        &["show", &format!("{to}:apps/cart/prod/deployment.yaml")],
    );
    let old_tag = before
        .lines()
        .find_map(|l| l.trim().strip_prefix("image: "))
        .and_then(|i| i.rsplit(':').next())
        .expect("old tag")
        .to_string();
    screen_until(&mut h, &[&format!("-> {old_tag}")]).await;
}
