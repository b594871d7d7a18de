//! Core mode against the in-process sandbox, with the real kube-rs client: list and watch
//! Applications (Resync, Upsert, recovery from dropped watches and 410), the `.operation`
//! a sync writes (checked against the Application CRD in the reference specs), rollback
//! refused with auto-sync on, conflicts retried, access reviews, workloads and the
//! core-mode live diff input.

use serde_json::{Value, json};
use shipdeck::model::{Application, Connection, InfoEntry, Update};
use shipdeck::sandbox::Sandbox;
use shipdeck::sources::git::GitMirrors;
use shipdeck::sources::kube::{CoreArgo, CoreOptions, ROLLBACK_AUTO_SYNC};
use shipdeck::sources::{ArgoSource, RollbackRequest, SourceError, SyncRequest};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

mod common;
use common::{fault, fixture, kube_default, next_matching, sandbox as start, wait_for};

async fn core(sb: &Sandbox, context: Option<&str>, cache: &std::path::Path) -> CoreArgo {
    let kc = kube::config::Kubeconfig::read_from(sb.kubeconfig_path()).expect("kubeconfig");
    CoreArgo::connect(CoreOptions {
        context: context.map(str::to_string),
        kubeconfig: Some(kc),
        git: Some(Arc::new(GitMirrors::new(cache))),
        ..Default::default()
    })
    .await
    .expect("core mode connects")
}

async fn annotate(sb: &Sandbox, name: &str, value: &str) {
    let client = kube_default(sb).await;
    let ar = kube::core::ApiResource::from_gvk_with_plural(
        &kube::core::GroupVersionKind::gvk("argoproj.io", "v1alpha1", "Application"),
        "applications",
    );
    let api: kube::Api<kube::core::DynamicObject> =
        kube::Api::namespaced_with(client, "argocd", &ar);
    let patch = json!({"metadata": {"annotations": {"test.shipdeck.io/mark": value}}});
    api.patch(name, &Default::default(), &kube::api::Patch::Merge(&patch))
        .await
        .expect("annotate application");
}

/// A write that moves the store's resourceVersion without touching Applications.
async fn bump_other_resource(sb: &Sandbox, n: u32) {
    let client = kube_default(sb).await;
    let api: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(client);
    let ns: k8s_openapi::api::core::v1::Namespace =
        serde_json::from_value(json!({"metadata": {"name": format!("bump-{n}")}})).unwrap();
    api.create(&Default::default(), &ns)
        .await
        .expect("create a namespace");
}

fn has_mark(u: &Update, name: &str, value: &str) -> bool {
    matches!(u, Update::Upsert(id, app) if id.name == name
        && app.metadata.annotations.get("test.shipdeck.io/mark").map(String::as_str) == Some(value))
}

#[tokio::test]
async fn list_and_watch_recover_from_dropped_watches_and_410() {
    let sb = start().await;
    let cache = tempfile::tempdir().unwrap();
    let src = core(&sb, None, cache.path()).await;
    let apps = src.list_applications().await.expect("list");
    assert!(
        apps.len() >= 5,
        "the default estate has apps, got {}",
        apps.len()
    );
    assert!(apps.iter().all(|a| a.metadata.labels.contains_key("env")));
    let name = apps[0].metadata.name.clone();

    let (tx, mut rx) = mpsc::channel(1024);
    let task = src.watch_applications(tx);
    let first = next_matching(&mut rx, "first Resync", |u| {
        matches!(u, Update::Resync { .. })
    })
    .await;
    let Update::Resync {
        instance,
        apps: listed,
    } = first
    else {
        unreachable!()
    };
    assert_eq!(instance, "in-cluster");
    assert_eq!(listed.len(), apps.len());
    assert!(
        listed
            .iter()
            .all(|(id, _)| id.namespace == "argocd" && id.instance == "in-cluster")
    );
    next_matching(&mut rx, "Connected", |u| {
        matches!(
            u,
            Update::Connection {
                state: Connection::Connected,
                ..
            }
        )
    })
    .await;

    annotate(&sb, &name, "one").await;
    next_matching(&mut rx, "Upsert after a change", |u| {
        has_mark(u, &name, "one")
    })
    .await;

    // A dropped watch: kube-rs re-watches from its last version; the change still arrives.
    fault(&sb, json!({"fault": "drop-watches"})).await;
    annotate(&sb, &name, "two").await;
    next_matching(&mut rx, "Upsert after a dropped watch", |u| {
        has_mark(u, &name, "two")
    })
    .await;

    // Expired versions then a drop: the re-watch from an old version gets 410 and the
    // watcher relists. A bookmark landing between the write and the drop would make the
    // old version current again, so try a few times.
    let mut relisted = false;
    for attempt in 0..5 {
        bump_other_resource(&sb, attempt).await;
        fault(&sb, json!({"fault": "expire-watch-versions"})).await;
        fault(&sb, json!({"fault": "drop-watches"})).await;
        let deadline = Instant::now() + Duration::from_secs(8);
        while let Ok(Some(u)) = tokio::time::timeout(
            deadline.saturating_duration_since(Instant::now()),
            rx.recv(),
        )
        .await
        {
            if matches!(u, Update::Resync { .. }) {
                relisted = true;
                break;
            }
        }
        if relisted {
            break;
        }
    }
    assert!(relisted, "no Resync after 410 Gone");
    annotate(&sb, &name, "three").await;
    next_matching(&mut rx, "Upsert after the relist", |u| {
        has_mark(u, &name, "three")
    })
    .await;

    drop(rx);
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("watch ends when the receiver drops")
        .unwrap();
}

/// Every key of `v` must be a property the CRD schema `schema` allows (recursively).
fn assert_shape(v: &Value, schema: &Value, path: &str) {
    match v {
        Value::Object(m) => {
            if schema.get("x-kubernetes-preserve-unknown-fields") == Some(&json!(true))
                && schema.get("properties").is_none()
            {
                return;
            }
            let props = schema
                .get("properties")
                .unwrap_or_else(|| panic!("{path}: schema has no properties"));
            for (k, child) in m {
                let s = props
                    .get(k)
                    .unwrap_or_else(|| panic!("{path}.{k} is not in the Application CRD"));
                assert_shape(child, s, &format!("{path}.{k}"));
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                for (i, it) in items.iter().enumerate() {
                    assert_shape(it, s, &format!("{path}[{i}]"));
                }
            }
        }
        _ => {}
    }
}

/// The `.operation` schema of the Application CRD (tests/fixtures, from Argo CD).
fn operation_schema() -> Value {
    let crd: Value =
        serde_saphyr::from_str(&fixture("argocd/application-crd.yaml")).expect("CRD parses");
    let schema =
        crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["operation"].clone();
    assert!(schema.is_object(), "the CRD has an operation schema");
    schema
}

#[tokio::test]
async fn sync_writes_operation_like_argocd_core_and_retries_conflicts() {
    let sb = start().await;
    let cache = tempfile::tempdir().unwrap();
    let src = core(&sb, None, cache.path()).await;
    let apps = src.list_applications().await.unwrap();
    let manual: Application = apps
        .iter()
        .find(|a| !a.auto_sync() && a.metadata.name.ends_with("-prod") && a.operation.is_none())
        .cloned()
        .expect("a manual prod app");

    // Two forced conflicts: the write is retried with a fresh GET each time.
    fault(&sb, json!({"fault": "conflict", "count": 2})).await;
    let req = SyncRequest {
        prune: true,
        initiated_by: "ann".into(),
        info: vec![InfoEntry {
            name: "approved-by".into(),
            value: "ann".into(),
        }],
        ..Default::default()
    };
    let written = src
        .sync(&manual, req)
        .await
        .expect("sync writes .operation");
    let op = written
        .operation
        .clone()
        .expect(".operation set in the answer");
    assert_eq!(
        op.initiated_by.as_ref().and_then(|i| i.username.as_deref()),
        Some("ann")
    );
    assert_eq!(op.info[0].name, "approved-by");
    let sync = op.sync.as_ref().unwrap();
    assert!(sync.prune);
    assert_eq!(sync.sync_strategy, Some(json!({"hook": {}})));
    assert_eq!(sync.revision.as_deref(), manual.target_revision());
    assert!(
        written.status.operation_state.is_none(),
        "operationState cleared as SetAppOperation does"
    );

    assert_shape(
        &serde_json::to_value(&op).unwrap(),
        &operation_schema(),
        "operation",
    );
}

#[tokio::test]
async fn rollback_refused_with_auto_sync_and_access_reviews_answer() {
    let sb = start().await;
    let cache = tempfile::tempdir().unwrap();
    let admin = core(&sb, None, cache.path()).await;
    let apps = admin.list_applications().await.unwrap();
    let auto = apps
        .iter()
        .find(|a| a.auto_sync())
        .expect("an auto-sync app");
    let err = admin
        .rollback(
            auto,
            RollbackRequest {
                id: 0,
                initiated_by: "ann".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SourceError::Refused(m) if m == ROLLBACK_AUTO_SYNC),
        "{err}"
    );

    assert!(admin.can_i("sync", auto).await.unwrap());
    let viewer = core(&sb, Some("viewer@in-cluster"), cache.path()).await;
    assert!(viewer.can_i("get", auto).await.unwrap());
    assert!(!viewer.can_i("sync", auto).await.unwrap());
    // The viewer's write is refused by the API server.
    let err = viewer.set_auto_sync(auto, false).await.unwrap_err();
    assert!(matches!(err, SourceError::Forbidden(_)), "{err}");

    let windows = admin.sync_windows(auto).await.expect("sync windows");
    assert!(windows.can_sync);
}

#[tokio::test]
async fn workloads_and_managed_resources_of_an_app() {
    let sb = start().await;
    let cache = tempfile::tempdir().unwrap();
    let src = core(&sb, None, cache.path()).await;
    let apps = src.list_applications().await.unwrap();
    let app = apps
        .iter()
        .find(|a| a.metadata.name.starts_with("checkout-"))
        .cloned()
        .expect("checkout app");

    let rollouts = wait_for(&format!("pods for {}", app.metadata.name), || async {
        let r = src.workloads(&app).await.expect("workloads");
        r.iter().any(|w| !w.pods.is_empty()).then_some(r)
    })
    .await;
    assert!(
        rollouts
            .iter()
            .all(|w| w.namespace == app.spec.destination.namespace.clone().unwrap_or_default())
    );
    let w = &rollouts[0];
    assert!(w.new_replicaset.is_some());
    let pod = &w.pods[0];

    // Watching sends the current state and ends when the receiver drops.
    let (tx, mut rx) = mpsc::channel(8);
    let task = src.watch_workloads(&app, tx);
    let first = tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(!first.unwrap().is_empty());
    drop(rx);
    tokio::time::timeout(Duration::from_secs(40), task)
        .await
        .expect("watch_workloads ends")
        .unwrap();

    let lines = src
        .pod_logs(&app, &pod.namespace, &pod.name, 20)
        .await
        .expect("the sandbox serves pods/log");
    assert!(!lines.is_empty(), "pod logs are empty");
    src.events(&app).await.expect("events");

    let managed = src
        .managed_resources(&app)
        .await
        .expect("managed resources from Git");
    let dep = managed
        .iter()
        .find(|m| m.kind == "Deployment")
        .expect("a Deployment in the manifests");
    assert!(dep.target.is_some());
    assert!(dep.live.is_some(), "live Deployment {} found", dep.name);
    assert_eq!(
        dep.namespace,
        app.spec.destination.namespace.clone().unwrap_or_default()
    );
}

#[test]
fn malformed_kubeconfig_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken-kubeconfig");
    std::fs::write(&path, "clusters: [this is not: valid").unwrap();
    let err = shipdeck::sources::kube::kubeconfig::load_from(&[path]).unwrap_err();
    assert!(
        matches!(&err, SourceError::Config(m) if m.contains("broken-kubeconfig")),
        "{err}"
    );
}
