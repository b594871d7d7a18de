//! Prune confirmation end to end over the event-ingestion estate, whose
//! event-ingestion-prod runs a ConfigMap marked `Prune=confirm` that Git dropped: a sync with
//! prune stays Running with gitops-engine's "waiting for pruning confirmation of ..." (read
//! with kubectl), `shipdeck confirm-prune` is gated like a sync, and once confirmed kubectl
//! shows the ConfigMap gone and the operation Succeeded. API mode and core mode.

mod cli_support;

use cli_support::{Mode, World, start_estate};
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

const APP: &str = "event-ingestion-prod";
const CM: &str = "event-ingestion-legacy-flags";

fn kubectl_available() -> bool {
    Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn kubectl(w: &World, args: &[&str]) -> (bool, String) {
    let out = Command::new("kubectl")
        .env("KUBECONFIG", w.var("KUBECONFIG"))
        .args(args)
        .output()
        .expect("kubectl runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn app(w: &World) -> Value {
    let (ok, out) = kubectl(
        w,
        &["get", "application", "-n", "argocd", APP, "-o", "json"],
    );
    assert!(ok);
    serde_json::from_str(&out).expect("json")
}

fn cm_exists(w: &World, ns: &str) -> bool {
    kubectl(w, &["get", "configmap", "-n", ns, CM]).0
}

async fn until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let end = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < end,
            "gave up waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn confirm_flow(mode: Mode) {
    let w = start_estate("event-ingestion").await;
    let ns = app(&w)["spec"]["destination"]["namespace"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        cm_exists(&w, &ns),
        "the estate runs the ConfigMap Git dropped"
    );

    // Nothing waits yet: nothing to confirm.
    let out = w
        .run(
            mode,
            &["confirm-prune", APP, "--approve", APP, "--reason", "r"],
        )
        .await;
    assert_eq!(out.code, 5, "{}", out.stderr);

    let out = w
        .run(
            mode,
            &[
                "sync",
                APP,
                "--prune",
                "--approve",
                APP,
                "--reason",
                "ship it",
            ],
        )
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let held = until("the sync to wait for a prune confirmation", || {
        let a = app(&w);
        a["status"]["operationState"]["message"]
            .as_str()
            .is_some_and(|m| m == format!("waiting for pruning confirmation of /ConfigMap/{CM}"))
            .then_some(a)
    })
    .await;
    assert_eq!(held["status"]["operationState"]["phase"], "Running");
    assert!(cm_exists(&w, &ns), "nothing pruned before the confirmation");

    // Gated like a sync: prod needs the name typed again and a reason.
    let out = w.run(mode, &["confirm-prune", APP]).await;
    assert_eq!(out.code, 3, "{}", out.stderr);
    let out = w.run(mode, &["confirm-prune", APP, "--approve", APP]).await;
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(app(&w)["metadata"]["annotations"]["argocd.argoproj.io/deletion-approved"].is_null());
    assert!(cm_exists(&w, &ns));

    let out = w
        .run(
            mode,
            &[
                "confirm-prune",
                APP,
                "--approve",
                APP,
                "--reason",
                "legacy flags retired",
                "--output",
                "json",
            ],
        )
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let said: Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(
        said["resources"],
        serde_json::json!([format!("ConfigMap {ns}/{CM}")])
    );
    let done = until("the confirmed sync to finish", || {
        let a = app(&w);
        (a["status"]["operationState"]["phase"] == "Succeeded").then_some(a)
    })
    .await;
    assert!(!cm_exists(&w, &ns), "kubectl: the ConfigMap is gone");
    let pruned = done["status"]["operationState"]["syncResult"]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["name"] == CM && r["status"] == "Pruned");
    assert!(pruned, "{done}");
    let audit = w.audit();
    assert!(
        audit
            .iter()
            .any(|r| r["action"] == "confirm-prune" && r["outcome"] == "succeeded"),
        "{audit:?}"
    );
    assert!(
        audit
            .iter()
            .any(|r| r["action"] == "confirm-prune" && r["outcome"] == "refused")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirm_prune_api_mode() {
    if !kubectl_available() {
        eprintln!("SKIP: kubectl is not installed");
        return;
    }
    confirm_flow(Mode::Api).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirm_prune_core_mode() {
    if !kubectl_available() {
        eprintln!("SKIP: kubectl is not installed");
        return;
    }
    confirm_flow(Mode::Core).await;
}
