//! Asking for less: Argo CD's `fields` query parameter on the application list and stream.
//! The sandbox projects as Argo CD's API server does (argoproj/pkg `grpc/http` forwarders:
//! named paths kept through arrays, unknown paths dropped, a leading `-` excludes), and API
//! mode lists and streams with the fields the board reads. The oracle for "the board's data
//! is true" is the sandbox's own unprojected list, read raw over HTTP.

mod common;

use common::{Api, DEADLINE, sandbox};
use futures::StreamExt;
use serde_json::Value;
use shipdeck::model::Update;
use shipdeck::sandbox::auth::Role;
use shipdeck::secrets::Secret;
use shipdeck::sources::ArgoSource;
use shipdeck::sources::argocd::{ArgoApi, ArgoApiOptions};
use std::collections::BTreeMap;

#[tokio::test]
async fn the_sandbox_projects_the_list_and_drops_unknown_paths() {
    let sb = sandbox().await;
    let api = Api::new(&sb, Role::Admin);
    let (code, body) = api
        .get("/api/v1/applications?fields=metadata.resourceVersion,items.metadata.name,items.status.sync.status,items.no.such.field")
        .await;
    assert_eq!(code, 200, "{body}");
    assert!(body["metadata"]["resourceVersion"].is_string(), "{body}");
    let items = body["items"].as_array().expect("items");
    assert!(!items.is_empty());
    for it in items {
        let keys: Vec<&String> = it.as_object().expect("object").keys().collect();
        assert_eq!(keys, ["metadata", "status"], "{it}");
        assert_eq!(it["metadata"].as_object().map(|m| m.len()), Some(1), "{it}");
        assert!(it["metadata"]["name"].is_string());
        assert_eq!(it["status"].as_object().map(|m| m.len()), Some(1), "{it}");
        assert!(it["status"]["sync"]["status"].is_string(), "{it}");
    }
    // Excluding: everything but the named paths.
    let (code, body) = api
        .get("/api/v1/applications?fields=-items.status,items.metadata.managedFields")
        .await;
    assert_eq!(code, 200, "{body}");
    let items = body["items"].as_array().expect("items");
    assert!(items.iter().all(|i| i.get("status").is_none()
        && i["metadata"]["name"].is_string()
        && i["spec"]["destination"].is_object()));
    assert!(body["metadata"]["resourceVersion"].is_string());
}

#[tokio::test]
async fn the_sandbox_projects_the_stream_under_result() {
    let sb = sandbox().await;
    let api = Api::new(&sb, Role::Admin);
    let resp = api
        .http
        .get(format!(
            "{}/api/v1/stream/applications?fields=result.type,result.application.metadata.name,result.application.status.health.status",
            api.url
        ))
        .bearer_auth(&api.token)
        .header("accept", "text/event-stream")
        .send()
        .await
        .expect("stream");
    assert_eq!(resp.status(), 200);
    let mut stream = resp.bytes_stream();
    let mut buf = String::new();
    let first = tokio::time::timeout(DEADLINE, async {
        loop {
            let chunk = stream.next().await.expect("data").expect("chunk");
            buf.push_str(&String::from_utf8_lossy(&chunk));
            if let Some(line) = buf.lines().find(|l| l.starts_with("data:")) {
                return serde_json::from_str::<Value>(line.trim_start_matches("data:").trim())
                    .expect("json");
            }
        }
    })
    .await
    .expect("a first event");
    assert_eq!(first["result"]["type"], "ADDED", "{first}");
    let app = &first["result"]["application"];
    assert_eq!(app.as_object().map(|o| o.len()), Some(2), "{first}");
    assert!(app["metadata"]["name"].is_string(), "{first}");
    assert_eq!(app["metadata"].as_object().map(|o| o.len()), Some(1));
    assert!(app["status"]["health"]["status"].is_string(), "{first}");
    assert_eq!(app["status"].as_object().map(|o| o.len()), Some(1));
}

/// What the board and `status` show of one app, read from raw JSON.
fn board_view(a: &Value) -> Value {
    let hist: Vec<Value> = a["status"]["history"]
        .as_array()
        .map(|h| {
            h.iter()
                .map(|e| {
                    let row = [
                        e["id"].clone(),
                        e["revision"].clone(),
                        e["deployedAt"].clone(),
                    ];
                    serde_json::json!(row.map(n))
                })
                .collect()
        })
        .unwrap_or_default();
    let auto = &a["spec"]["syncPolicy"]["automated"];
    let d = &a["spec"]["destination"];
    let dest = [
        d["server"].clone(),
        d["name"].clone(),
        d["namespace"].clone(),
    ]
    .map(n);
    let v = serde_json::json!({
        "project": a["spec"]["project"],
        "destination": dest,
        "automated": (!auto.is_null()).then(|| [auto["prune"] == true, auto["selfHeal"] == true]),
        "labels": a["metadata"]["labels"],
        "sync": a["status"]["sync"]["status"],
        "revision": a["status"]["sync"]["revision"],
        "health": a["status"]["health"]["status"],
        "phase": a["status"]["operationState"]["phase"],
        "synced": a["status"]["operationState"]["syncResult"]["revision"],
        "resources": a["status"]["resources"].as_array().map(|r| r.len()),
        "images": a["status"]["summary"]["images"],
        "history": hist,
    });
    match v {
        Value::Object(m) => Value::Object(m.into_iter().map(|(k, v)| (k, n(v))).collect()),
        v => v,
    }
}

/// Absent, null and empty read the same on the board.
fn n(v: Value) -> Value {
    match &v {
        Value::Object(m) if m.is_empty() => Value::Null,
        Value::Array(a) if a.is_empty() => Value::Null,
        Value::String(s) if s.is_empty() => Value::Null,
        _ => v,
    }
}

fn as_json(a: &shipdeck::model::Application) -> Value {
    serde_json::to_value(a).expect("serializes")
}

#[tokio::test]
async fn api_mode_asks_for_the_board_fields_and_shows_the_truth() {
    let sb = sandbox().await;
    let raw = Api::new(&sb, Role::Admin);
    let product = ArgoApi::new(ArgoApiOptions {
        server: sb.url.clone(),
        token: Some(Secret::new(sb.world.users.token(Role::Admin))),
        ..Default::default()
    })
    .expect("client");
    // Let the controller settle so the two reads see one state.
    let settled = |v: &Value| {
        v["items"].as_array().is_some_and(|i| {
            !i.is_empty()
                && i.iter()
                    .all(|a| a["status"]["reconciledAt"].is_string() && a["operation"].is_null())
        })
    };
    let truth = common::wait_for("a settled estate", || async {
        let (_, a) = raw.get("/api/v1/applications").await;
        let listed = product.list_applications().await.ok()?;
        let (_, b) = raw.get("/api/v1/applications").await;
        (settled(&a) && a["metadata"]["resourceVersion"] == b["metadata"]["resourceVersion"])
            .then_some((b, listed))
    })
    .await;
    let (truth, listed) = truth;
    let truth: BTreeMap<String, Value> = truth["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|a| {
            (
                a["metadata"]["name"].as_str().unwrap_or("").to_string(),
                board_view(a),
            )
        })
        .collect();
    // Asked for less: the full objects carry the comparison's source, the projection not.
    assert!(truth.len() > 3);
    assert!(listed.iter().all(|a| a.status.sync.compared_to.is_none()));
    let got: BTreeMap<String, Value> = listed
        .iter()
        .map(|a| (a.metadata.name.clone(), board_view(&as_json(a))))
        .collect();
    assert_eq!(got, truth);

    // The watch's first full estate (list + stream, both projected) says the same.
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let task = product.watch_applications(tx);
    let apps = tokio::time::timeout(DEADLINE, async {
        loop {
            if let Some(Update::Resync { apps, .. }) = rx.recv().await {
                return apps;
            }
        }
    })
    .await
    .expect("a resync");
    task.abort();
    assert!(
        apps.iter()
            .all(|(_, a)| a.status.sync.compared_to.is_none())
    );
    assert_eq!(apps.len(), truth.len());
}
