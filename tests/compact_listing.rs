//! Issue 11: both modes hold the board's compact app, and `status` streams its rows.
//! Core mode decodes each Application from the API server's bytes straight into the
//! compact app (no `DynamicObject`, no `managedFields`, no `status.sync.comparedTo`, no
//! per-resource sync results), the same projection API mode asks Argo CD for with
//! `fields`; `for_each_application` hands over every app once, across the Kubernetes
//! API's pages (500 a page) in core mode. Oracle: `kubectl get applications -A -o json`
//! against the same sandbox (the whole objects).

mod common;

use serde_json::Value;
use shipdeck::model::{Application, Update};
use shipdeck::sandbox::auth::Role;
use shipdeck::sandbox::{Sandbox, SandboxOptions};
use shipdeck::secrets::Secret;
use shipdeck::sources::ArgoSource;
use shipdeck::sources::argocd::{ArgoApi, ArgoApiOptions};
use shipdeck::sources::kube::{CoreArgo, CoreOptions};
use std::collections::BTreeMap;
use std::process::Command;

/// More than two of kubectl's (and core mode's) 500-item pages.
const APPS: usize = 1_200;

/// Run off the runtime's threads: the sandbox serves kubectl from this process.
async fn kubectl_apps(kubeconfig: std::path::PathBuf) -> Option<Vec<Value>> {
    let out = tokio::task::spawn_blocking(move || {
        Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["get", "applications", "-A", "-o", "json"])
            .output()
    })
    .await
    .expect("kubectl task");
    let out = match out {
        Ok(o) => o,
        Err(_) => {
            println!("SKIP: kubectl not installed");
            return None;
        }
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("kubectl prints JSON");
    Some(v["items"].as_array().cloned().unwrap_or_default())
}

/// The fields that do not move while the estate idles: what the board groups by.
fn stable(a: &Application) -> (String, String, String, String) {
    (
        a.spec.project.clone(),
        a.spec.destination.namespace.clone().unwrap_or_default(),
        a.spec
            .source
            .as_ref()
            .map(|s| s.repo_url.clone())
            .unwrap_or_default(),
        a.metadata.labels.get("env").cloned().unwrap_or_default(),
    )
}

fn stable_raw(v: &Value) -> (String, String, String, String) {
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    (
        s(&v["spec"]["project"]),
        s(&v["spec"]["destination"]["namespace"]),
        s(&v["spec"]["source"]["repoURL"]),
        s(&v["metadata"]["labels"]["env"]),
    )
}

async fn collect(src: &impl ArgoSource) -> Vec<Application> {
    let mut out = Vec::new();
    src.for_each_application(&mut |a| out.push(a))
        .await
        .expect("the list decodes");
    out
}

/// A sandbox of [`APPS`] apps and kubectl's list of them (None: kubectl is not installed).
async fn listed_sandbox() -> Option<(Sandbox, Vec<Value>)> {
    let sb = common::sandbox_with(SandboxOptions {
        apps: Some(APPS),
        time_scale: 0.02,
        ..Default::default()
    })
    .await;
    let raw = kubectl_apps(sb.kubeconfig_path()).await?;
    Some((sb, raw))
}

/// Each app's sync and health status, by name.
fn statuses(items: &[Value]) -> BTreeMap<String, (Value, Value)> {
    items
        .iter()
        .map(|v| {
            let name = v["metadata"]["name"].as_str().unwrap_or("").to_string();
            let sync = v["status"]["sync"]["status"].clone();
            let health = v["status"]["health"]["status"].clone();
            (name, (sync, health))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_modes_hold_the_compact_app_and_stream_every_app_once() {
    let Some((sb, raw)) = listed_sandbox().await else {
        return;
    };
    assert_eq!(raw.len(), APPS);
    let truth: BTreeMap<String, &Value> = raw
        .iter()
        .map(|v| (v["metadata"]["name"].as_str().unwrap_or("").to_string(), v))
        .collect();
    // The whole objects carry what the board drops.
    assert!(
        raw.iter()
            .all(|v| v["status"]["sync"]["comparedTo"].is_object()),
        "kubectl shows comparedTo on every app"
    );

    let kc = kube::config::Kubeconfig::read_from(sb.kubeconfig_path()).expect("kubeconfig");
    let core = CoreArgo::connect(CoreOptions {
        kubeconfig: Some(kc),
        ..Default::default()
    })
    .await
    .expect("core mode connects");
    let api = ArgoApi::new(ArgoApiOptions {
        server: sb.url.clone(),
        token: Some(Secret::new(sb.world.users.token(Role::Admin))),
        ..Default::default()
    })
    .expect("api client");

    // Core mode's watcher: the first full estate holds compact apps.
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let task = core.watch_applications(tx);
    let watched = loop {
        match rx.recv().await.expect("the watch reports") {
            Update::Resync { apps, .. } => break apps,
            _ => continue,
        }
    };
    task.abort();
    assert_eq!(watched.len(), APPS);
    for (id, a) in &watched {
        let t = truth
            .get(&id.name)
            .unwrap_or_else(|| panic!("{} not in kubectl", id.name));
        assert_eq!(stable(a), stable_raw(t), "{}", id.name);
        assert_eq!(
            a.status.sync.compared_to, None,
            "{} keeps comparedTo",
            id.name
        );
        let results = a
            .status
            .operation_state
            .as_ref()
            .and_then(|o| o.sync_result.as_ref())
            .map(|r| r.resources.len());
        assert!(
            matches!(results, None | Some(0)),
            "{} keeps sync results",
            id.name
        );
    }

    // Streamed lists, both modes: every app exactly once, the same apps kubectl lists.
    for (mode, apps) in [("core", collect(&core).await), ("api", collect(&api).await)] {
        assert_eq!(apps.len(), APPS, "{mode}: every app once");
        let mut seen = BTreeMap::new();
        for a in &apps {
            assert!(
                seen.insert(a.metadata.name.clone(), ()).is_none(),
                "{mode}: {} twice",
                a.metadata.name
            );
            let t = truth
                .get(&a.metadata.name)
                .unwrap_or_else(|| panic!("{mode}: {} not in kubectl", a.metadata.name));
            assert_eq!(stable(a), stable_raw(t), "{mode}: {}", a.metadata.name);
            // Core mode decodes the compact app; API mode's streamed list (`status`) is
            // Argo CD's whole list, since its projected one has no history.
            if mode == "core" {
                assert_eq!(
                    a.status.sync.compared_to, None,
                    "{mode}: {}",
                    a.metadata.name
                );
            }
        }
    }
}

/// The sandbox writes the application list while it sends it (no length up front, as a
/// large answer from Argo CD's Go server), and a client that leaves midway (the details
/// pass aborted by a reconnect) neither stops it serving nor leaves it a shorter list.
/// Oracle: kubectl's list of the same apps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_streams_the_list_and_survives_a_client_that_leaves() {
    let Some((sb, raw)) = listed_sandbox().await else {
        return;
    };
    let truth = statuses(&raw);
    assert_eq!(truth.len(), APPS);
    let http = common::http();
    let token = sb.world.users.token(Role::Admin);
    let get = |path: &str| {
        http.get(format!("{}{path}", sb.url))
            .bearer_auth(&token)
            .send()
    };
    // Leave after the first chunk of the whole list (some 4 MB at this size).
    let mut left = get("/api/v1/applications").await.expect("the list answers");
    assert_eq!(left.status(), 200);
    assert_eq!(left.content_length(), None, "written as it is sent");
    let first = left.chunk().await.expect("a first chunk").expect("bytes");
    assert!(!first.is_empty());
    drop(left);
    // Then the projected list, whole, agrees with kubectl on every app.
    let body = get("/api/v1/applications?fields=items.metadata.name,items.status.sync.status,items.status.health")
        .await
        .expect("the list answers")
        .bytes()
        .await
        .expect("the whole body");
    let list: Value = serde_json::from_slice(&body).expect("a whole JSON document");
    let got = statuses(list["items"].as_array().expect("items"));
    // Nothing churns this estate: every app's sync and health as kubectl read them.
    assert_eq!(got, truth);
}
