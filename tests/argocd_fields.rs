//! Asking for less: Argo CD's `fields` query parameter on the application list and stream.
//! The sandbox projects as Argo CD's API server does, which is two different things:
//! - the **stream** filters by path like any JSON (argoproj/pkg `grpc/http` forwarders:
//!   named paths kept through arrays, unknown paths dropped, a leading `-` excludes);
//! - the **list** picks each item's fields from a fixed table
//!   (`pkg/apiclient/application/forwarder_overwrite.go`): any other path, history
//!   included, is dropped without a word, and an unset map is written `null`.
//!
//! API mode draws the board from the projected list, then reads the whole list for the
//! rest. The oracle for "the board's data is true" is the sandbox's own unprojected list,
//! read raw over HTTP.

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
async fn the_sandbox_list_picks_fields_from_argo_cds_table_and_drops_the_rest() {
    let sb = sandbox().await;
    let api = Api::new(&sb, Role::Admin);
    let (code, whole) = api.get("/api/v1/applications").await;
    assert_eq!(code, 200, "{whole}");
    assert!(
        whole["items"]
            .as_array()
            .is_some_and(|i| i.iter().any(|a| a["status"]["history"].is_array())),
        "the sandbox's apps have a history: {whole}"
    );
    // History, the uid and the items' resourceVersion are paths outside the table.
    let (code, body) = api
        .get("/api/v1/applications?fields=metadata.resourceVersion,items.metadata.name,items.metadata.uid,items.metadata.resourceVersion,items.status.sync.status,items.status.history,items.no.such.field")
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
    // An unset map is written null, as Go writes a nil map boxed in an interface.
    let (_, body) = api
        .get("/api/v1/applications?fields=items.metadata.name,items.metadata.annotations")
        .await;
    let items = body["items"].as_array().expect("items");
    assert!(
        items.iter().all(|i| i["metadata"]
            .as_object()
            .is_some_and(|m| m.contains_key("annotations"))),
        "{body}"
    );
    // Excluding: every table field but the named ones; still no history.
    let (code, body) = api
        .get("/api/v1/applications?fields=-items.status.health,items.metadata.labels")
        .await;
    assert_eq!(code, 200, "{body}");
    let items = body["items"].as_array().expect("items");
    assert!(items.iter().all(|i| i["status"].get("health").is_none()
        && i["status"].get("history").is_none()
        && i["metadata"].get("labels").is_none()
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

/// Each app of a raw list by name, as `f` reads it.
fn by_name(list: &Value, f: impl Fn(&Value) -> Value) -> BTreeMap<String, Value> {
    let items = list["items"].as_array();
    assert!(items.is_some(), "a list: {list}");
    items
        .into_iter()
        .flatten()
        .map(|a| {
            (
                a["metadata"]["name"].as_str().unwrap_or("").to_string(),
                f(a),
            )
        })
        .collect()
}

/// Each app's resourceVersion in a raw list.
fn versions(list: &Value) -> BTreeMap<String, Value> {
    by_name(list, |a| a["metadata"]["resourceVersion"].clone())
}

/// What the board shows of each app in a raw list.
fn board_views(list: &Value) -> BTreeMap<String, Value> {
    by_name(list, board_view)
}

/// One watch from its start: the projected list (Summary), then the Details of every app.
async fn watch_once(
    product: &ArgoApi,
) -> (
    Vec<(shipdeck::model::AppId, shipdeck::model::Application)>,
    BTreeMap<String, Value>,
) {
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let task = product.watch_applications(tx);
    let got = tokio::time::timeout(DEADLINE, async {
        let mut summary = None;
        let mut parts = Vec::new();
        let mut details: BTreeMap<String, Value> = BTreeMap::new();
        loop {
            match rx.recv().await {
                Some(Update::Summary {
                    apps,
                    packed,
                    first,
                    last,
                    ..
                }) => {
                    // Packed as the list was read, from the bytes each app was decoded
                    // from: each unpacks to exactly the app beside it.
                    assert_eq!(packed.len(), apps.len(), "one packed form per app");
                    for ((id, a), p) in apps.iter().zip(&packed) {
                        assert_eq!(p.unpack().as_ref(), Ok(a), "{}", id.name);
                    }
                    // A large list comes in parts; the summary is whole at the last.
                    if first {
                        parts.clear();
                    }
                    parts.extend(apps);
                    if last {
                        summary = Some(std::mem::take(&mut parts));
                    }
                }
                Some(Update::Details { apps }) => {
                    for (id, a) in apps {
                        details.insert(id.name.clone(), board_view(&as_json(&a)));
                    }
                }
                Some(_) => {}
                None => panic!("the watch ended"),
            }
            if let Some(s) = &summary
                && details.len() >= s.len()
            {
                return (summary.unwrap_or_default(), details);
            }
        }
    })
    .await
    .expect("a summary and the details of every app");
    task.abort();
    got
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
    let truth: BTreeMap<String, Value> = board_views(&truth);
    // The CLI's list is the whole list: everything the board and `status` show, history too.
    assert!(truth.len() > 3);
    let got: BTreeMap<String, Value> = listed
        .iter()
        .map(|a| (a.metadata.name.clone(), board_view(&as_json(a))))
        .collect();
    assert_eq!(got, truth);

    // The watch: first the projected list (no history: the table has none), then the
    // whole apps as Details. The estate may move while the watch reads (the controller
    // reconciles on its own clock), so the truth is a raw list read before and after the
    // watch's reads with every app at one resourceVersion: a moved estate is read again.
    // (The items' own versions: the list's counts every pod and event write as well.)
    let (truth, summary, details) =
        common::wait_for("one estate across the watch's reads", || async {
            let (_, before) = raw.get("/api/v1/applications").await;
            let (summary, details) = watch_once(&product).await;
            let (_, after) = raw.get("/api/v1/applications").await;
            (settled(&after) && versions(&before) == versions(&after))
                .then_some((after, summary, details))
        })
        .await;
    let truth: BTreeMap<String, Value> = board_views(&truth);
    assert_eq!(summary.len(), truth.len());
    assert!(
        summary
            .iter()
            .all(|(_, a)| a.status.history.is_empty() && a.status.sync.compared_to.is_none()),
        "the projected list carries no history"
    );
    // What the table carries is true already; history and the sync result are not in it.
    let less = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.as_object_mut() {
            m.remove("history");
            m.remove("synced");
        }
        v
    };
    let got: BTreeMap<String, Value> = summary
        .iter()
        .map(|(id, a)| (id.name.clone(), less(&board_view(&as_json(a)))))
        .collect();
    assert_eq!(
        got,
        truth.iter().map(|(k, v)| (k.clone(), less(v))).collect()
    );
    assert_eq!(details, truth, "the details are the whole apps");
}
