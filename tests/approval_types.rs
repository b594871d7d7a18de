//! Rollback approvals carry the diff digest like sync approvals: the digest recorded (in the
//! approval record and in the audit log's rollback line) is the digest of the diff between
//! live and the rollback target, which is the diff the approval screen shows. Core mode
//! against the in-process sandbox, with the real kube-rs client and Git mirrors; what the
//! diff says is checked against the sandbox's own Git repository.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use shipdeck::model::{AppId, Application};
use shipdeck::ops::actions::{self, Ops, RollbackOptions};
use shipdeck::ops::approval::Approval;
use shipdeck::ops::audit::AuditLog;
use shipdeck::ops::classify::Classifier;
use shipdeck::ops::estate::Estate;
use shipdeck::ops::policy::Policies;
use shipdeck::sandbox::{Sandbox, SandboxOptions, auth::Role};
use shipdeck::secrets::Secret;
use shipdeck::sources::ArgoSource;
use shipdeck::sources::argocd::{ArgoApi, ArgoApiOptions};
use shipdeck::sources::git::GitMirrors;
use shipdeck::sources::kube::{CoreArgo, CoreOptions};
use shipdeck::tui::adapt::ArgoProvider;
use shipdeck::tui::app::Headless;
use shipdeck::tui::console::{Console, Settings};
use shipdeck::tui::request::Provider;
use shipdeck::tui::views::approve::ApproveView;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

async fn start() -> (Sandbox, tempfile::TempDir) {
    let sb = Sandbox::start(SandboxOptions {
        time_scale: 0.02,
        ..Default::default()
    })
    .await
    .expect("sandbox starts");
    (sb, tempfile::tempdir().expect("temp dir"))
}

async fn core(sb: &Sandbox, dir: &std::path::Path) -> CoreArgo {
    let kc = kube::config::Kubeconfig::read_from(sb.kubeconfig_path()).expect("kubeconfig");
    CoreArgo::connect(CoreOptions {
        kubeconfig: Some(kc),
        git: Some(Arc::new(GitMirrors::new(dir.join("mirrors")))),
        ..Default::default()
    })
    .await
    .expect("core mode connects")
}

fn ops(dir: &std::path::Path) -> (Ops, AuditLog) {
    let audit = AuditLog::in_dir(&dir.join("audit"));
    (
        Ops {
            operator: "ana".into(),
            read_only: false,
            policies: Policies::default(),
            classifier: Classifier::default(),
            audit: audit.clone(),
        },
        audit,
    )
}

/// Container images in the sandbox's Git at `rev` under the app's path: the oracle.
fn git_images(sb: &Sandbox, app: &Application, rev: &str) -> BTreeSet<String> {
    let path = app
        .spec
        .primary_source()
        .and_then(|s| s.path.clone())
        .unwrap_or_default();
    let repo = &sb.world.repo;
    let mut out = BTreeSet::new();
    for f in repo.list_files(rev, &path).expect("files at revision") {
        let text = repo.read_file(rev, &f).expect("file").unwrap_or_default();
        for line in text.lines() {
            let l = line.trim().trim_start_matches("- ").trim();
            if let Some(image) = l.strip_prefix("image:") {
                out.insert(image.trim().trim_matches('"').to_string());
            }
        }
    }
    out
}

/// A prod app (approval required) not busy, whose previous deployment runs other images
/// than the current one, by the sandbox's Git: (app, history id of the previous one).
async fn prod_app_with_other_previous_images<S: ArgoSource>(
    sb: &Sandbox,
    src: &S,
) -> (Application, i64) {
    let classifier = Classifier::default();
    let mut apps = src.list_applications().await.expect("list");
    apps.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    for app in apps {
        if classifier.classify(&app).environment.name != "prod" || app.operation_in_progress() {
            continue;
        }
        let h = &app.status.history;
        if h.len() < 2 {
            continue;
        }
        let (prev, last) = (&h[h.len() - 2], &h[h.len() - 1]);
        let (Some(p), Some(l)) = (prev.revision.clone(), last.revision.clone()) else {
            continue;
        };
        if git_images(sb, &app, &p) != git_images(sb, &app, &l) {
            let id = prev.id;
            return (app, id);
        }
    }
    panic!("no prod app whose previous deployment runs other images");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_approval_records_the_digest_of_the_rollback_diff_in_core_mode() {
    let (sb, dir) = start().await;
    let src = core(&sb, dir.path()).await;
    rollback_records_the_digest(&sb, &src, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_approval_records_the_digest_of_the_rollback_diff_in_api_mode() {
    let (sb, dir) = start().await;
    let api = ArgoApi::new(ArgoApiOptions {
        name: Some("sandbox".into()),
        server: sb.url.clone(),
        token: Some(Secret::new(sb.world.users.token(Role::Admin))),
        ..Default::default()
    })
    .expect("API client");
    // Without Git the client cannot render the rollback target, and says so rather than
    // answering with the server's comparison against its own target.
    let (app, id) = prod_app_with_other_previous_images(&sb, &api).await;
    let refused = actions::rollback_diff_of(&api, &app, Some(id)).await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.to_string().contains("no Git mirror")),
        "{:?}",
        refused.map(|d| d.render())
    );
    api.set_git(Arc::new(GitMirrors::new(dir.path().join("mirrors"))));
    rollback_records_the_digest(&sb, &api, dir.path()).await;
}

/// Rollback a prod app with an approval through `src`; the approval record and the audit
/// lines carry the digest of the rollback diff, whose content Git confirms.
async fn rollback_records_the_digest<S: ArgoSource>(sb: &Sandbox, src: &S, dir: &std::path::Path) {
    let (sb, src) = (sb, src);
    let (ops, audit) = ops(dir);
    let (app, id) = prod_app_with_other_previous_images(sb, src).await;
    let name = app.metadata.name.clone();
    let entry = app.status.history.iter().find(|h| h.id == id).cloned();
    let target_rev = entry.and_then(|e| e.revision).expect("target revision");
    let live_rev = app.status.history.last().and_then(|h| h.revision.clone());
    let live_rev = live_rev.expect("deployed revision");

    // The diff an operator is shown for this rollback.
    let shown = actions::rollback_diff_of(src, &app, Some(id))
        .await
        .expect("rollback diff");
    assert!(shown.has_differences(), "{}", shown.render());
    // It says what Git holds: the images it starts are those at the target revision and
    // not those running now.
    let at_target = git_images(sb, &app, &target_rev);
    let now = git_images(sb, &app, &live_rev);
    let started: BTreeSet<String> = shown
        .changed()
        .flat_map(|r| r.images.iter().cloned())
        .collect();
    assert!(!started.is_empty(), "{}", shown.render());
    assert!(
        started.is_subset(&at_target),
        "{started:?} vs {at_target:?}"
    );
    assert!(started.is_disjoint(&now), "{started:?} vs {now:?}");

    let outcome = actions::rollback(
        src,
        &ops,
        &name,
        RollbackOptions {
            id: Some(id),
            disable_auto_sync: true,
            approval: Some(Approval {
                named_app: name.clone(),
                reason: Some("bad release".into()),
                operator: "ana".into(),
            }),
            ..Default::default()
        },
    )
    .await
    .expect("rollback accepted");

    let digest = shown.digest();
    assert_eq!(digest.len(), 64);
    let record = outcome.approval.expect("an approval record");
    assert_eq!(record.diff_digest.as_deref(), Some(digest.as_str()));
    assert_eq!(outcome.diff_digest.as_deref(), Some(digest.as_str()));
    // The audit log, read back from disk, carries it on the approval and the rollback.
    let lines = audit.read_all().expect("audit log");
    let approval_line = lines
        .iter()
        .find(|r| r.approval_id.as_deref() == Some(record.id.as_str()) && r.action == "approve")
        .expect("approval in the audit log");
    assert_eq!(approval_line.diff_digest.as_deref(), Some(digest.as_str()));
    let rollback_line = lines
        .iter()
        .find(|r| r.action == "rollback")
        .expect("rollback in the audit log");
    assert_eq!(rollback_line.diff_digest.as_deref(), Some(digest.as_str()));
    assert_eq!(
        rollback_line.to_revision.as_ref().map(|r| r.as_str()),
        Some(target_rev.as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_screen_shows_the_rollback_diff_whose_digest_is_recorded() {
    let (sb, dir) = start().await;
    let src = core(&sb, dir.path()).await;
    let (ops, audit) = ops(dir.path());
    let (app, id) = prod_app_with_other_previous_images(&sb, &src).await;
    let name = app.metadata.name.clone();

    let (tx, rx) = tokio::sync::mpsc::channel(4096);
    let _watch = src.watch_applications(tx);
    // One set of mirrors per directory: two would fetch into the same repositories at once.
    let git = Some(src.git().clone());
    let provider: Arc<dyn Provider> = Arc::new(ArgoProvider::new(
        vec![src.clone()],
        ops,
        git,
        "sandbox".into(),
    ));
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
        h.until(Duration::from_secs(30), |c| !c
            .estate
            .find_by_name(&name)
            .is_empty())
            .await,
        "{name} never reached the estate"
    );
    let app_id: AppId = h.console.estate.find_by_name(&name)[0].id.clone();
    h.console.push(Box::new(ApproveView::rollback(app_id, id)));
    let mut shown_digest = None;
    for _ in 0..600 {
        let s = h.screen(160, 48);
        if let Some(d) = s
            .split("  diff ")
            .nth(1)
            .map(|rest| rest.chars().take(12).collect::<String>())
            .filter(|d| d.len() == 12 && d.chars().all(|c| c.is_ascii_hexdigit()))
            && !s.contains("checking permission")
        {
            shown_digest = Some(d);
            break;
        }
        assert!(
            !s.lines().any(|l| l.contains("│  diff: ")),
            "the diff failed:\n{s}"
        );
        h.step(Duration::from_millis(50)).await;
    }
    let shown_digest = shown_digest.unwrap_or_else(|| panic!("{}", h.screen(160, 48)));
    let s = h.screen(160, 48);
    assert!(s.contains("nothing: no window"), "{s}");

    h.type_str(&name);
    h.key(KeyEvent::new(KeyCode::Tab, KeyModifiers::NONE));
    h.type_str("bad release");
    h.key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE));
    let mut recorded = None;
    for _ in 0..600 {
        recorded = audit
            .read_all()
            .unwrap_or_default()
            .into_iter()
            .find(|r| r.action == "rollback");
        if recorded.is_some() {
            break;
        }
        h.step(Duration::from_millis(50)).await;
    }
    let recorded = recorded.unwrap_or_else(|| {
        panic!(
            "no rollback audited; flash {:?}\n{}",
            h.console.flash(),
            h.screen(160, 48)
        )
    });
    let digest = recorded.diff_digest.expect("the rollback carries a digest");
    assert_eq!(digest.len(), 64);
    assert!(
        digest.starts_with(&shown_digest),
        "shown {shown_digest}, recorded {digest}"
    );
}

#[test]
fn rollback_spec_points_at_the_deployments_source_and_revision() {
    use shipdeck::model::{ApplicationSource, HistoryEntry};
    let src = |path: &str, rev: &str| ApplicationSource {
        repo_url: "https://git.example.com/deploy.git".into(),
        path: Some(path.into()),
        target_revision: Some(rev.into()),
        ..Default::default()
    };
    let mut app = Application::default();
    app.metadata.name = "shop-prod".into();
    app.spec.source = Some(src("apps/shop/prod", "main"));
    app.status.history = vec![
        HistoryEntry {
            id: 1,
            revision: Some("aaaa".into()),
            source: Some(src("apps/shop/prod-old", "main")),
            ..Default::default()
        },
        HistoryEntry {
            id: 2,
            revision: Some("bbbb".into()),
            ..Default::default()
        },
    ];
    let at = actions::rollback_spec(&app, None).expect("previous deployment");
    let s = at.spec.source.expect("source");
    assert_eq!(s.path.as_deref(), Some("apps/shop/prod-old"));
    assert_eq!(s.target_revision.as_deref(), Some("aaaa"));
    let at = actions::rollback_spec(&app, Some(2)).expect("deployment 2");
    let s = at.spec.source.expect("source");
    assert_eq!(s.path.as_deref(), Some("apps/shop/prod"));
    assert_eq!(s.target_revision.as_deref(), Some("bbbb"));
    assert!(actions::rollback_spec(&app, Some(9)).is_err());
}
