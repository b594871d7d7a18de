//! The sandbox's world end to end: estates, the Git repository, the Argo CD application
//! controller. The sandbox runs in-process on port 0 with a fast time scale; state is read
//! over HTTP (`/_sandbox/truth`) and from the store.

use serde_json::{Value, json};
use shipdeck::sandbox::store::{APPLICATIONS, APPPROJECTS, DEPLOYMENTS};
use shipdeck::sandbox::{ARGOCD_NAMESPACE, IN_CLUSTER, Sandbox, SandboxOptions};
use std::time::{Duration, Instant};

async fn start(estate: &str, apps: Option<usize>) -> Sandbox {
    Sandbox::start(SandboxOptions {
        estate: estate.into(),
        apps,
        time_scale: 0.02,
        ..Default::default()
    })
    .await
    .expect("sandbox starts")
}

async fn truth(sb: &Sandbox) -> Vec<Value> {
    reqwest::get(format!("{}/_sandbox/truth", sb.url))
        .await
        .expect("truth answers")
        .json::<Vec<Value>>()
        .await
        .expect("truth is a JSON list")
}

async fn truth_of(sb: &Sandbox, name: &str) -> Value {
    truth(sb)
        .await
        .into_iter()
        .find(|a| a["name"] == name)
        .unwrap_or_else(|| panic!("{name} in truth"))
}

/// Poll until `f` gives Some, or fail after a generous deadline.
async fn wait_for<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
}

fn app(sb: &Sandbox, name: &str) -> Value {
    (*sb.world
        .store
        .get(IN_CLUSTER, APPLICATIONS, ARGOCD_NAMESPACE, name)
        .unwrap_or_else(|| panic!("application {name}")))
    .clone()
}

fn git(sb: &Sandbox, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(sb.world.repo.path())
        .args(args)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_estate_starts_as_the_demo_needs() {
    let sb = start("default", None).await;
    let apps = sb
        .world
        .store
        .list(IN_CLUSTER, APPLICATIONS, Some(ARGOCD_NAMESPACE))
        .0;
    assert!(apps.len() >= 18, "apps: {}", apps.len());
    for a in &apps {
        let name = a["metadata"]["name"].as_str().unwrap();
        assert!(
            a["metadata"]["labels"]["env"].is_string(),
            "{name} has env label"
        );
        let history = a["status"]["history"].as_array().unwrap();
        assert!(
            (2..=4).contains(&history.len()),
            "{name}: {} history entries",
            history.len()
        );
        assert_eq!(
            a["status"]["operationState"]["phase"], "Succeeded",
            "{name}"
        );
        assert!(a["status"]["reconciledAt"].is_string());
    }
    let prod = app(&sb, "checkout-prod");
    assert_eq!(prod["status"]["sync"]["status"], "OutOfSync");
    assert!(prod["spec"]["syncPolicy"].get("automated").is_none());
    let payments = app(&sb, "payments-prod");
    assert_eq!(payments["status"]["health"]["status"], "Degraded");
    let kafka = app(&sb, "kafka-prod");
    assert_eq!(kafka["spec"]["syncPolicy"]["automated"]["prune"], false);
    assert_eq!(kafka["status"]["sync"]["status"], "Synced");

    // The repository: branches, workflows, a history that git log can read.
    let branches = git(&sb, &["branch", "--format=%(refname:short)"]);
    assert!(
        branches.contains("main") && branches.contains("develop"),
        "{branches}"
    );
    let wf = git(&sb, &["show", "main:.github/workflows/deploy-service.yml"]);
    assert!(
        wf.contains("workflow_dispatch:") && wf.contains("environment:"),
        "{wf}"
    );
    let deployed = prod["status"]["history"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()["revision"]
        .as_str()
        .unwrap()
        .to_string();
    let target = prod["status"]["sync"]["revision"]
        .as_str()
        .unwrap()
        .to_string();
    let log = git(
        &sb,
        &["log", "--format=%an %s", &format!("{deployed}..{target}")],
    );
    assert!(log.contains("ci: bump checkout to sha-"), "{log}");
    assert!(log.contains("ci-bot"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_apps_are_generated_and_seeded() {
    let sb = start("default", Some(10_000)).await;
    let apps = sb
        .world
        .store
        .list(IN_CLUSTER, APPLICATIONS, Some(ARGOCD_NAMESPACE))
        .0;
    assert_eq!(apps.len(), 10_000);
    assert!(
        sb.world
            .store
            .get(IN_CLUSTER, APPLICATIONS, ARGOCD_NAMESPACE, "svc-0001-dev")
            .is_some()
    );
    let deployments = sb.world.store.list(IN_CLUSTER, DEPLOYMENTS, None).0;
    assert_eq!(deployments.len(), 10_000);
    let projects = sb.world.store.list(IN_CLUSTER, APPPROJECTS, None).0;
    assert!(projects.len() >= 2);
    let _ = json!(null);
}
