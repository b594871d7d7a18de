//! API mode against the in-process sandbox's Argo CD API with the real reqwest client: list
//! and the SSE watch (Resync, Upsert, recovery from a dropped stream), 401 with the login
//! hint, 403 for the viewer, request shapes checked against the reference swagger, sync,
//! rollback refused with auto-sync on, managed resources, workloads, windows, can-i.

use serde_json::{Value, json};
use shipdeck::model::{Application, Connection, InfoEntry, Update};
use shipdeck::sandbox::Sandbox;
use shipdeck::sandbox::auth::Role;
use shipdeck::secrets::Secret;
use shipdeck::sources::argocd::{ArgoApi, ArgoApiOptions, LOGIN_HINT, sync_body};
use shipdeck::sources::{ArgoSource, RollbackRequest, SourceError, SyncRequest};
use std::time::Duration;
use tokio::sync::mpsc;

mod common;
use common::{fault, fixture_json, kube_default, next_matching, sandbox as start, wait_for};

fn api(sb: &Sandbox, token: &str) -> ArgoApi {
    ArgoApi::new(ArgoApiOptions {
        server: sb.url.clone(),
        token: Some(Secret::new(token)),
        workload_poll: Some(Duration::from_millis(100)),
        ..Default::default()
    })
    .expect("client")
}

/// The product's API client as the sandbox's admin.
fn admin(sb: &Sandbox) -> ArgoApi {
    api(sb, &sb.world.users.token(Role::Admin))
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

fn has_mark(u: &Update, name: &str, value: &str) -> bool {
    matches!(u, Update::Upsert(id, app) if id.name == name
        && app.metadata.annotations.get("test.shipdeck.io/mark").map(String::as_str) == Some(value))
}

#[tokio::test]
async fn list_and_sse_watch_recover_after_a_dropped_stream() {
    let sb = start().await;
    let src = admin(&sb);
    let apps = src.list_applications().await.expect("list");
    assert!(apps.len() >= 5);
    let name = apps[0].metadata.name.clone();

    let (tx, mut rx) = mpsc::channel(4096);
    let task = src.watch_applications(tx);
    // API mode lists Argo CD's projected list first (a Summary), then fills in.
    let Update::Summary { apps: listed, .. } =
        next_matching(&mut rx, "Summary", |u| matches!(u, Update::Summary { .. })).await
    else {
        unreachable!()
    };
    assert_eq!(listed.len(), apps.len());
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
    next_matching(&mut rx, "Upsert over SSE", |u| has_mark(u, &name, "one")).await;

    // The stream drops and the next attempt fails once: Reconnecting, then a relist.
    fault(
        &sb,
        json!({"fault": "fail", "path": "/api/v1/applications", "status": 503, "count": 1}),
    )
    .await;
    fault(&sb, json!({"fault": "drop-watches"})).await;
    next_matching(&mut rx, "Reconnecting", |u| {
        matches!(
            u,
            Update::Connection {
                state: Connection::Reconnecting { .. },
                ..
            }
        )
    })
    .await;
    next_matching(&mut rx, "Summary after reconnect", |u| {
        matches!(u, Update::Summary { .. })
    })
    .await;
    annotate(&sb, &name, "two").await;
    next_matching(&mut rx, "Upsert after reconnect", |u| {
        has_mark(u, &name, "two")
    })
    .await;

    drop(rx);
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("watch ends when the receiver drops")
        .unwrap();
}

#[tokio::test]
async fn bad_token_is_unauthorized_with_hint_and_viewer_is_forbidden() {
    let sb = start().await;
    let bad = api(&sb, "not-a-token");
    let err = bad.list_applications().await.unwrap_err();
    match &err {
        SourceError::Unauthorized { hint, .. } => assert_eq!(hint, LOGIN_HINT),
        other => panic!("expected Unauthorized, got {other}"),
    }
    assert!(err.to_string().contains("shipdeck login argocd"));

    let admin = admin(&sb);
    let viewer = api(&sb, &sb.world.users.token(Role::Viewer));
    let apps = viewer.list_applications().await.expect("viewer may read");
    let prod = apps
        .iter()
        .find(|a| !a.auto_sync() && a.metadata.name.ends_with("-prod"))
        .expect("manual prod app");
    assert!(!viewer.can_i("sync", prod).await.unwrap());
    let err = viewer
        .sync(
            prod,
            SyncRequest {
                initiated_by: "v".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, SourceError::Forbidden(_)), "{err}");

    assert!(admin.can_i("sync", prod).await.unwrap());
    // Expired tokens: every call is Unauthorized with the hint.
    fault(&sb, json!({"fault": "expire-tokens"})).await;
    assert!(matches!(
        admin.list_applications().await,
        Err(SourceError::Unauthorized { .. })
    ));
}

/// Every key of `v` is a property of the swagger definition (following `$ref`s).
fn assert_swagger_shape(v: &Value, def: &Value, defs: &Value, path: &str) {
    let def = match def.get("$ref").and_then(Value::as_str) {
        Some(r) => &defs[r.trim_start_matches("#/definitions/")],
        None => def,
    };
    match v {
        Value::Object(m) => {
            let props = def
                .get("properties")
                .unwrap_or_else(|| panic!("{path}: no properties in swagger"));
            for (k, child) in m {
                let p = props
                    .get(k)
                    .unwrap_or_else(|| panic!("{path}.{k} is not in the swagger definition"));
                assert_swagger_shape(child, p, defs, &format!("{path}.{k}"));
            }
        }
        Value::Array(items) => {
            if let Some(it) = def.get("items") {
                for (i, x) in items.iter().enumerate() {
                    assert_swagger_shape(x, it, defs, &format!("{path}[{i}]"));
                }
            }
        }
        _ => {}
    }
}

#[test]
fn sync_and_rollback_bodies_use_only_swagger_properties() {
    let mut prod = Application::default();
    prod.metadata.name = "shop-prod".into();
    let req = SyncRequest {
        prune: true,
        dry_run: true,
        apply_strategy: true,
        revision: Some("main".into()),
        initiated_by: "ann".into(),
        info: vec![InfoEntry {
            name: "approved-by".into(),
            value: "ann".into(),
        }],
        resources: vec![shipdeck::model::SyncResourceRef {
            group: "apps".into(),
            kind: "Deployment".into(),
            name: "x".into(),
            namespace: "shop".into(),
        }],
    };
    let body = sync_body(&prod, "argocd", &req);
    assert_eq!(
        body["infos"].as_array().unwrap().len(),
        2,
        "approval info plus the operator"
    );
    let s = fixture_json("argocd/swagger-subset.json");
    let defs = &s["definitions"];
    assert_swagger_shape(
        &body,
        &defs["applicationApplicationSyncRequest"],
        defs,
        "sync",
    );
    let rb = shipdeck::sources::argocd::rollback_body(
        &prod,
        "argocd",
        &RollbackRequest {
            id: 1,
            ..Default::default()
        },
    );
    assert_swagger_shape(
        &rb,
        &defs["applicationApplicationRollbackRequest"],
        defs,
        "rollback",
    );
}

#[tokio::test]
async fn sync_and_rollback_work_over_the_api() {
    let sb = start().await;
    let src = admin(&sb);
    let apps = src.list_applications().await.unwrap();
    let prod: Application = apps
        .iter()
        .find(|a| !a.auto_sync() && a.metadata.name.ends_with("-prod"))
        .cloned()
        .expect("manual prod app");
    let req = SyncRequest {
        prune: true,
        revision: prod.target_revision().map(str::to_string),
        initiated_by: "ann".into(),
        info: vec![InfoEntry {
            name: "approved-by".into(),
            value: "ann".into(),
        }],
        resources: vec![shipdeck::model::SyncResourceRef {
            group: "apps".into(),
            kind: "Deployment".into(),
            name: "x".into(),
            namespace: "shop".into(),
        }],
        ..Default::default()
    };
    let synced = src
        .sync(
            &prod,
            SyncRequest {
                resources: Vec::new(),
                ..req
            },
        )
        .await
        .expect("sync accepted");
    assert_eq!(synced.metadata.name, prod.metadata.name);

    let auto = apps.iter().find(|a| a.auto_sync()).expect("auto-sync app");
    let err = src
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
        matches!(&err, SourceError::Refused(m) if m.contains("auto-sync")),
        "{err}"
    );

    let windows = src.sync_windows(&prod).await.expect("sync windows");
    assert!(windows.can_sync);
    assert!(
        !windows.assigned.is_empty(),
        "the prod project has a window"
    );
}

#[tokio::test]
async fn managed_resources_workloads_events_over_the_api() {
    let sb = start().await;
    let src = admin(&sb);
    let apps = src.list_applications().await.unwrap();
    let app = apps
        .iter()
        .find(|a| a.metadata.name.starts_with("checkout-"))
        .cloned()
        .expect("checkout app");
    let full = src
        .get_application(&app.metadata.name, shipdeck::sources::Refresh::Normal)
        .await
        .expect("get with refresh");
    assert_eq!(full.metadata.name, app.metadata.name);

    let managed = src
        .managed_resources(&app)
        .await
        .expect("managed resources");
    let dep = managed
        .iter()
        .find(|m| m.kind == "Deployment")
        .expect("a Deployment");
    assert!(dep.target.is_some() && dep.live.is_some());
    assert_eq!(dep.version, "v1");

    let rollouts = wait_for("pods", || async {
        let r = src.workloads(&app).await.expect("workloads");
        r.iter().any(|w| !w.pods.is_empty()).then_some(r)
    })
    .await;
    let pod = rollouts[0].pods[0].clone();
    assert!(rollouts[0].new_replicaset.is_some());

    let (tx, mut rx) = mpsc::channel(4);
    let task = src.watch_workloads(&app, tx);
    let first = tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(!first.unwrap().is_empty());
    drop(rx);
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("watch_workloads ends")
        .unwrap();

    let lines = src
        .pod_logs(&app, &pod.namespace, &pod.name, 10)
        .await
        .expect("pod logs");
    assert!(!lines.is_empty());
    src.events(&app).await.expect("events");
}
