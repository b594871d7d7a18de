//! The board's `«` ("lags the environment before it") against the sandbox (core mode, real
//! kube-rs client, Git mirrors): a prod cell carries it exactly when staging runs an image
//! that none of prod's history entries ever deployed. Oracles: `kubectl` (the image staging's
//! Deployment runs, the revisions in prod's Application history) and the sandbox's Git
//! repository (`git show REV:apps/SERVICE/prod/deployment.yaml`, the images each deployed).

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
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

fn run(cmd: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd} runs: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn kubectl(sb: &Sandbox, args: &[&str]) -> String {
    let kc = sb.kubeconfig_path().display().to_string();
    let mut all = vec!["--kubeconfig", kc.as_str()];
    all.extend_from_slice(args);
    run("kubectl", &all)
}

fn image_lines(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("image: ").map(str::to_string))
        .collect()
}

/// Whether staging runs an image prod never deployed, from kubectl and Git alone.
fn oracle_lags(sb: &Sandbox, service: &str) -> bool {
    let staging = kubectl(
        sb,
        &[
            "-n",
            "shop-staging",
            "get",
            "deployment",
            service,
            "-o",
            "jsonpath={.spec.template.spec.containers[*].image}",
        ],
    );
    let revisions = kubectl(
        sb,
        &[
            "-n",
            "argocd",
            "get",
            "applications.argoproj.io",
            &format!("{service}-prod"),
            "-o",
            "jsonpath={.status.history[*].revision}",
        ],
    );
    let repo = sb.world.repo.path().display().to_string();
    let mut ran = BTreeSet::new();
    for rev in revisions.split_whitespace() {
        let file = run(
            "git",
            &[
                "-C",
                &repo,
                "show",
                &format!("{rev}:apps/{service}/prod/deployment.yaml"),
            ],
        );
        ran.extend(image_lines(&file));
    }
    staging.split_whitespace().any(|i| !ran.contains(i))
}

/// The prod cell of `service`'s board row: the text after prod's image tag.
fn prod_cell_marks(screen: &str, service: &str, prod_tag: &str) -> Option<String> {
    let line = screen
        .lines()
        .find(|l| l.split_whitespace().any(|w| w.trim_matches('│') == service))?;
    let at = line.rfind(prod_tag)?;
    Some(line[at + prod_tag.len()..].to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lag_mark_means_staging_runs_an_image_prod_never_ran() {
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
        read_only: true,
        policies: Policies::default(),
        classifier: Classifier::default(),
        audit: AuditLog::in_dir(&dir.path().join("audit")),
    };
    let (tx, rx) = tokio::sync::mpsc::channel(4096);
    let _watch = src.watch_applications(tx);
    let provider: Arc<dyn Provider> = Arc::new(ArgoProvider::new(
        vec![src],
        ops,
        Some(mirrors),
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
        h.until(Duration::from_secs(30), |c| c.estate.len() >= 20)
            .await,
        "the estate never arrived"
    );

    let services = [
        "cart",
        "catalog",
        "checkout",
        "frontend",
        "notifications",
        "payments",
    ];
    let image = |ns: &str, service: &str| {
        kubectl(
            &sb,
            &[
                "-n",
                ns,
                "get",
                "deployment",
                service,
                "-o",
                "jsonpath={.spec.template.spec.containers[0].image}",
            ],
        )
        .trim()
        .to_string()
    };
    // (service, prod's tag, staging differs from prod, staging runs an image prod never ran)
    let oracle = || -> Vec<(&str, String, bool, bool)> {
        services
            .iter()
            .map(|s| {
                let (prod, staging) = (image("shop", s), image("shop-staging", s));
                let tag = prod.rsplit(':').next().unwrap_or_default().to_string();
                (*s, tag, prod != staging, oracle_lags(&sb, s))
            })
            .collect()
    };

    // The sandbox moves on its own (promotions): compare the board with the oracle taken
    // just before and just after the same screen, until both agree, within a deadline.
    // History images load lazily from Git, so the first screens may not have them yet.
    let mut last = (Vec::new(), String::new());
    for _ in 0..600 {
        let before = oracle();
        let screen = h.screen(200, 40);
        let after = oracle();
        let agrees = before == after
            && before.iter().all(|(s, tag, _, lags)| {
                prod_cell_marks(&screen, s, tag).is_some_and(|m| m.contains('«') == *lags)
            });
        if agrees {
            // Both cases were on the screen: a prod that differs from staging without
            // lagging (it ran staging's image before), and one that lags.
            assert!(
                before
                    .iter()
                    .any(|(_, _, differs, lags)| *differs && !*lags),
                "no prod differs from staging without lagging: {before:?}"
            );
            assert!(
                before.iter().any(|(_, _, _, lags)| *lags),
                "no prod lags staging: {before:?}"
            );
            return;
        }
        last = (before, screen);
        h.step(Duration::from_millis(50)).await;
    }
    panic!(
        "the board's « never matched the oracle {:?}:\n{}",
        last.0, last.1
    );
}

/// Prod ran staging's image, then moved on to a hotfix; staging re-deployed its image later
/// (a config-only commit). Deploy times say prod is older; prod's history says it ran that
/// image: no lag. Until prod's history images are known, no lag is claimed.
#[test]
fn a_later_redeploy_of_an_image_prod_already_ran_is_not_a_lag() {
    use shipdeck::model::{AppId, Application, HistoryEntry, SyncStatus, Update};
    fn app(name: &str, image: &str, history: &[(&str, &str)]) -> Application {
        let mut a = Application::default();
        a.metadata.name = name.into();
        a.status.sync.status = SyncStatus::Synced;
        a.status.sync.revision = history.last().map(|(r, _)| r.to_string());
        a.status.history = history
            .iter()
            .enumerate()
            .map(|(i, (rev, at))| HistoryEntry {
                id: i as i64 + 1,
                revision: Some(rev.to_string()),
                deployed_at: Some(at.to_string()),
                ..Default::default()
            })
            .collect();
        a.status.summary = Some(shipdeck::model::Summary {
            images: vec![image.into()],
            ..Default::default()
        });
        a
    }
    let mut e = Estate::new();
    let s = AppId::new("i", "argocd", "catalog-staging");
    let p = AppId::new("i", "argocd", "catalog-prod");
    let staging = app(
        "catalog-staging",
        "catalog:sha-7f7c",
        &[
            ("s1", "2024-06-01T10:00:00Z"),
            ("s2", "2024-06-09T10:00:00Z"),
        ],
    );
    let prod = app(
        "catalog-prod",
        "catalog:sha-9c9d",
        &[
            ("p1", "2024-06-02T10:00:00Z"),
            ("p2", "2024-06-05T10:00:00Z"),
        ],
    );
    e.apply(Update::Upsert(s, Box::new(staging)));
    e.apply(Update::Upsert(p.clone(), Box::new(prod)));
    let entry = e.get(&p).cloned().expect("prod entry");
    assert_eq!(
        e.lag(&entry),
        None,
        "history images unknown: no lag claimed"
    );
    e.set_history_images(
        &p,
        vec![
            vec!["catalog:sha-7f7c".into()],
            vec!["catalog:sha-9c9d".into()],
        ],
    );
    assert_eq!(e.lag(&entry), None, "prod ran staging's image before");
    e.set_history_images(
        &p,
        vec![
            vec!["catalog:sha-0000".into()],
            vec!["catalog:sha-9c9d".into()],
        ],
    );
    let lag = e.lag(&entry).expect("staging runs an image prod never ran");
    assert_eq!(lag.previous_environment, "staging");
    assert_eq!(lag.there, vec!["catalog:sha-7f7c".to_string()]);
}
