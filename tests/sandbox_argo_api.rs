//! Argo CD's REST API as the sandbox serves it, through reqwest over real HTTP: auth and
//! sessions, list/get, the SSE stream, sync and rollback with their refusals, managed
//! resources, the resource tree, can-i.

use futures::StreamExt;
use serde_json::{Value, json};
use shipdeck::sandbox::auth::Role;
use shipdeck::sandbox::store::APPLICATIONS;
use shipdeck::sandbox::{ARGOCD_NAMESPACE, IN_CLUSTER};
use std::time::Duration;

mod common;
use common::{Api, sandbox, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_session_list_get_and_can_i() {
    let sb = sandbox().await;
    let http = reqwest::Client::new();
    // No token: 401 as grpc-gateway shapes it.
    let r = http
        .get(format!("{}/api/v1/applications", sb.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], 16);
    assert!(body["message"].is_string());

    // Session login with the viewer's password gives a working token.
    let password = sb.world.users.password(Role::Viewer);
    let bad = http
        .post(format!("{}/api/v1/session", sb.url))
        .json(&json!({"username": "viewer", "password": "nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);
    let session: Value = http
        .post(format!("{}/api/v1/session", sb.url))
        .json(&json!({"username": "viewer", "password": password}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = session["token"].as_str().expect("token").to_string();
    let viewer = Api {
        url: sb.url.clone(),
        token,
        http: http.clone(),
    };
    let (status, info) = viewer.get("/api/v1/session/userinfo").await;
    assert_eq!(status, 200);
    assert_eq!(info["loggedIn"], true);
    assert_eq!(info["username"], "viewer");

    let (status, list) = viewer.get("/api/v1/applications").await;
    assert_eq!(status, 200);
    let all = list["items"].as_array().unwrap().len();
    assert!(all >= 10, "the default estate has many apps, got {all}");
    let (_, prod) = viewer.get("/api/v1/applications?selector=env%3Dprod").await;
    let prod_items = prod["items"].as_array().unwrap();
    assert!(!prod_items.is_empty() && prod_items.len() < all);
    assert!(
        prod_items
            .iter()
            .all(|a| a["metadata"]["labels"]["env"] == "prod")
    );
    let (status, one) = viewer.get("/api/v1/applications/checkout-prod").await;
    assert_eq!(status, 200);
    assert_eq!(one["metadata"]["name"], "checkout-prod");
    let (status, missing) = viewer.get("/api/v1/applications/no-such-app").await;
    assert_eq!(status, 404);
    assert_eq!(missing["code"], 5);

    // Cookie auth works too.
    let r = http
        .get(format!("{}/api/v1/applications/checkout-prod", sb.url))
        .header("Cookie", format!("argocd.token={}", viewer.token))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // can-i: the viewer may read but not sync; the admin may sync.
    let (_, v) = viewer
        .get("/api/v1/account/can-i/applications/sync/prod/checkout-prod")
        .await;
    assert_eq!(v["value"], "no");
    let (_, v) = viewer
        .get("/api/v1/account/can-i/applications/get/prod/checkout-prod")
        .await;
    assert_eq!(v["value"], "yes");
    let admin = Api::new(&sb, Role::Admin);
    let (_, v) = admin
        .get("/api/v1/account/can-i/applications/sync/prod/checkout-prod")
        .await;
    assert_eq!(v["value"], "yes");
    let deployer = Api::new(&sb, Role::Deployer);
    let (_, v) = deployer
        .get("/api/v1/account/can-i/applications/sync/prod/checkout-prod")
        .await;
    assert_eq!(v["value"], "no");

    // The viewer cannot sync: 403 with code 7.
    let (status, err) = viewer
        .post("/api/v1/applications/checkout-prod/sync", json!({}))
        .await;
    assert_eq!(status, 403);
    assert_eq!(err["code"], 7);

    // Version and settings answer without a token.
    let v: Value = http
        .get(format!("{}/api/version", sb.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(v["Version"].as_str().unwrap().starts_with('v'));

    // After every token expires, the same token answers 401.
    sb.world.users.expire_all();
    let (status, body) = viewer.get("/api/v1/applications").await;
    assert_eq!(status, 401);
    assert_eq!(body["code"], 16);
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_sends_added_for_all_then_modified() {
    let sb = sandbox().await;
    let admin = Api::new(&sb, Role::Admin);
    let (_, list) = admin.get("/api/v1/applications").await;
    let total = list["items"].as_array().unwrap().len();
    let resp = admin
        .http
        .get(format!("{}/api/v1/stream/applications", sb.url))
        .bearer_auth(&admin.token)
        .header("Accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut body = resp.bytes_stream();
    let mut buf = String::new();
    let mut added = 0;
    let mut changed = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    'outer: loop {
        let chunk = tokio::time::timeout_at(deadline, body.next())
            .await
            .expect("stream delivers in time")
            .expect("stream open")
            .expect("chunk");
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let message: String = buf.drain(..end + 2).collect();
            let Some(data) = message.lines().find_map(|l| l.strip_prefix("data: ")) else {
                continue;
            };
            let ev: Value = serde_json::from_str(data).expect("data is JSON");
            let kind = ev["result"]["type"].as_str().unwrap();
            let name = ev["result"]["application"]["metadata"]["name"]
                .as_str()
                .unwrap()
                .to_string();
            if kind == "ADDED" && !changed {
                added += 1;
                if added == total {
                    // Every app arrived: now change one.
                    changed = true;
                    sb.world
                        .store
                        .mutate(
                            IN_CLUSTER,
                            APPLICATIONS,
                            ARGOCD_NAMESPACE,
                            "frontend-dev",
                            false,
                            |a| {
                                a["metadata"]["annotations"]["test/touched"] = json!("yes");
                                Ok(true)
                            },
                        )
                        .unwrap();
                }
            } else if kind == "MODIFIED"
                && name == "frontend-dev"
                && ev["result"]["application"]["metadata"]["annotations"]["test/touched"] == "yes"
            {
                break 'outer;
            }
        }
    }
    assert_eq!(added, total);
    // Close the stream so the server can shut down gracefully.
    drop(body);
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_refusals_and_operation_shape() {
    let sb = sandbox().await;
    let admin = Api::new(&sb, Role::Admin);
    // Auto-sync on: refused with Argo CD's words.
    let (status, err) = admin
        .post(
            "/api/v1/applications/frontend-dev/rollback",
            json!({"id": 0}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        err["message"],
        "rollback cannot be initiated when auto-sync is enabled"
    );
    // Unknown id on a manual app.
    let (status, err) = admin
        .post(
            "/api/v1/applications/frontend-prod/rollback",
            json!({"id": 4242}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        err["message"],
        "application frontend-prod does not have deployment with id 4242"
    );
    // A real history entry: the operation carries its revision, source and apply strategy.
    let (_, app) = admin.get("/api/v1/applications/frontend-prod").await;
    let history = app["status"]["history"].as_array().expect("history");
    assert!(!history.is_empty());
    let entry = history[0].clone();
    let (status, updated) = admin
        .post(
            "/api/v1/applications/frontend-prod/rollback",
            json!({"id": entry["id"], "prune": false}),
        )
        .await;
    assert_eq!(status, 200, "{updated}");
    let op = &updated["operation"];
    assert_eq!(op["sync"]["revision"], entry["revision"]);
    assert_eq!(op["sync"]["source"], entry["source"]);
    assert_eq!(op["sync"]["syncStrategy"], json!({"apply": {}}));
    assert_eq!(op["initiatedBy"]["username"], "admin");
    // While that operation stands, another is refused.
    let raw = sb
        .world
        .store
        .get(IN_CLUSTER, APPLICATIONS, ARGOCD_NAMESPACE, "frontend-prod")
        .unwrap();
    if !raw["operation"].is_null() {
        let (status, err) = admin
            .post("/api/v1/applications/frontend-prod/sync", json!({}))
            .await;
        assert_eq!(status, 400);
        assert_eq!(err["message"], "another operation is already in progress");
    }
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_resources_and_resource_tree() {
    let sb = sandbox().await;
    let admin = Api::new(&sb, Role::Admin);
    let (status, managed) = admin
        .get("/api/v1/applications/checkout-prod/managed-resources")
        .await;
    assert_eq!(status, 200);
    let items = managed["items"].as_array().unwrap();
    let deploy = items
        .iter()
        .find(|i| i["kind"] == "Deployment")
        .expect("a Deployment is managed");
    for field in [
        "targetState",
        "liveState",
        "normalizedLiveState",
        "predictedLiveState",
    ] {
        let s = deploy[field].as_str().expect("states are JSON strings");
        let v: Value = serde_json::from_str(s).expect("string holds JSON");
        assert!(v.is_object(), "{field}");
    }
    // checkout-prod waits for approval: Git moved on, so its Deployment differs.
    assert_eq!(deploy["modified"], true);
    let target: Value = serde_json::from_str(deploy["targetState"].as_str().unwrap()).unwrap();
    let live: Value = serde_json::from_str(deploy["liveState"].as_str().unwrap()).unwrap();
    assert_ne!(
        target["spec"]["template"]["spec"]["containers"][0]["image"],
        live["spec"]["template"]["spec"]["containers"][0]["image"]
    );

    let tree = wait_for("pods in the tree", || async {
        let (_, tree) = admin
            .get("/api/v1/applications/checkout-prod/resource-tree")
            .await;
        tree["nodes"]
            .as_array()
            .is_some_and(|n| n.iter().any(|n| n["kind"] == "Pod"))
            .then_some(tree)
    })
    .await;
    let nodes = tree["nodes"].as_array().unwrap();
    let pod = nodes.iter().find(|n| n["kind"] == "Pod").unwrap();
    assert_eq!(pod["parentRefs"][0]["kind"], "ReplicaSet");
    assert!(pod["health"]["status"].is_string());
    assert!(
        pod["info"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["name"] == "Containers")
    );
    assert!(
        nodes
            .iter()
            .any(|n| n["kind"] == "ReplicaSet" && n["parentRefs"][0]["kind"] == "Deployment")
    );

    // The broken prod app's pods say why.
    let (_, tree) = admin
        .get("/api/v1/applications/payments-prod/resource-tree")
        .await;
    let degraded = tree["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["kind"] == "Pod" && n["health"]["status"] == "Degraded");
    assert!(degraded, "payments-prod pods are failing: {tree}");

    // ImagePullBackOff pods make the app Degraded.
    wait_for("payments-prod Degraded", || async {
        let (_, app) = admin.get("/api/v1/applications/payments-prod").await;
        (app["status"]["health"]["status"] == "Degraded").then_some(())
    })
    .await;

    // Logs of a running pod stream as JSON lines ending with `last`.
    let pod_name = pod["name"].as_str().unwrap();
    let text = admin
        .http
        .get(format!(
            "{}/api/v1/applications/checkout-prod/pods/{pod_name}/logs?namespace={}",
            sb.url,
            pod["namespace"].as_str().unwrap()
        ))
        .bearer_auth(&admin.token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.len() >= 2);
    assert_eq!(lines.last().unwrap()["result"]["last"], true);

    // Revision metadata comes from Git.
    let app = sb
        .world
        .store
        .get(IN_CLUSTER, APPLICATIONS, ARGOCD_NAMESPACE, "checkout-prod")
        .unwrap();
    let rev = app["status"]["sync"]["revision"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, meta) = admin
        .get(&format!(
            "/api/v1/applications/checkout-prod/revisions/{rev}/metadata"
        ))
        .await;
    assert_eq!(status, 200);
    assert!(meta["author"].as_str().unwrap().contains('<'));
    assert!(!meta["message"].as_str().unwrap().is_empty());

    let (status, wins) = admin
        .get("/api/v1/applications/checkout-prod/syncwindows")
        .await;
    assert_eq!(status, 200);
    assert_eq!(wins["canSync"], true);
    sb.stop().await;
}

/// The Argo CD application controller runs the operation the API wrote.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prod_sync_runs_to_succeeded() {
    let sb = sandbox().await;
    let admin = Api::new(&sb, Role::Admin);
    let (_, before) = admin.get("/api/v1/applications/checkout-prod").await;
    let history_before = before["status"]["history"]
        .as_array()
        .map(|h| h.len())
        .unwrap_or(0);
    let (status, app) = admin
        .post(
            "/api/v1/applications/checkout-prod/sync",
            json!({"prune": false, "infos": [{"name": "approved-by", "value": "alice"}]}),
        )
        .await;
    assert_eq!(status, 200, "{app}");
    assert_eq!(app["operation"]["initiatedBy"]["username"], "admin");
    let done = wait_for("sync Succeeded", || async {
        let (_, a) = admin.get("/api/v1/applications/checkout-prod").await;
        (a["status"]["operationState"]["phase"] == "Succeeded" && a["operation"].is_null())
            .then_some(a)
    })
    .await;
    let op = &done["status"]["operationState"]["operation"];
    assert_eq!(op["initiatedBy"]["username"], "admin");
    assert_eq!(op["info"][0]["value"], "alice");
    assert!(
        done["status"]["history"].as_array().unwrap().len() > history_before
            || history_before >= 10
    );
    sb.stop().await;
}

/// API mode can turn auto-sync off before a rollback (`PATCH /api/v1/applications/{name}`,
/// as `argocd app patch` sends it), through shipdeck's real client; a viewer may not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_turns_auto_sync_off_so_a_rollback_is_accepted() {
    use shipdeck::sources::argocd::{ArgoApi, ArgoApiOptions};
    use shipdeck::sources::{ArgoSource, Refresh, RollbackRequest, SourceError};
    let sb = sandbox().await;
    let client = |role| {
        ArgoApi::new(ArgoApiOptions {
            server: sb.url.clone(),
            token: Some(shipdeck::secrets::Secret::new(sb.world.users.token(role))),
            ..Default::default()
        })
        .expect("client")
    };
    let admin = client(Role::Admin);
    let app = admin
        .get_application("cart-dev", Refresh::None)
        .await
        .expect("cart-dev");
    assert!(app.auto_sync(), "cart-dev starts with auto-sync");
    let id = app.status.history.first().map(|h| h.id).expect("history");
    let refused = admin
        .rollback(
            &app,
            RollbackRequest {
                id,
                ..Default::default()
            },
        )
        .await;
    assert!(
        matches!(&refused, Err(SourceError::Refused(m)) if m.contains("auto-sync")),
        "{refused:?}"
    );

    let viewer = client(Role::Viewer).set_auto_sync(&app, false).await;
    assert!(
        matches!(viewer, Err(SourceError::Forbidden(_))),
        "{viewer:?}"
    );

    let off = admin.set_auto_sync(&app, false).await.expect("patch");
    assert!(!off.auto_sync(), "auto-sync is off after the patch");
    let stored: shipdeck::model::Application = serde_json::from_value(
        (*sb.world
            .store
            .get(IN_CLUSTER, APPLICATIONS, ARGOCD_NAMESPACE, "cart-dev")
            .expect("stored"))
        .clone(),
    )
    .expect("typed");
    assert!(!stored.auto_sync());
    admin
        .rollback(
            &off,
            RollbackRequest {
                id,
                ..Default::default()
            },
        )
        .await
        .expect("rollback accepted once auto-sync is off");
}

/// A window's `timeZone` decides when it is open. A deny window that opened a minute ago on
/// the wall clock of UTC+14 (`Etc/GMT-14`, no daylight saving) blocks the app through the
/// API; the same schedule read as UTC starts hours from now and blocks nothing; an unknown
/// zone refuses rather than guess. The oracle is the clock arithmetic here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_windows_open_in_their_time_zone() {
    use chrono::Timelike;
    use shipdeck::sandbox::store::APPPROJECTS;
    let sb = sandbox().await;
    let admin = Api::new(&sb, Role::Admin);
    let (_, app) = admin.get("/api/v1/applications/checkout-prod").await;
    let project = app["spec"]["project"]
        .as_str()
        .expect("project")
        .to_string();
    let start = chrono::Utc::now() + chrono::Duration::hours(14) - chrono::Duration::minutes(1);
    let schedule = format!("{} {} * * *", start.minute(), start.hour());
    let set = |tz: Option<&str>| {
        let mut w = json!({"kind": "deny", "schedule": schedule, "duration": "30m",
            "applications": ["checkout-prod"]});
        if let Some(tz) = tz {
            w["timeZone"] = json!(tz);
        }
        sb.world
            .store
            .mutate(
                IN_CLUSTER,
                APPPROJECTS,
                ARGOCD_NAMESPACE,
                &project,
                false,
                |p| {
                    p["spec"]["syncWindows"] = json!([w]);
                    Ok(true)
                },
            )
            .expect("project updated");
    };
    let windows = || admin.get("/api/v1/applications/checkout-prod/syncwindows");

    set(Some("Etc/GMT-14"));
    let (status, wins) = windows().await;
    assert_eq!(status, 200);
    assert_eq!(wins["canSync"], false, "{wins}");
    assert_eq!(
        wins["activeWindows"].as_array().map(Vec::len),
        Some(1),
        "{wins}"
    );
    let (status, body) = admin
        .post("/api/v1/applications/checkout-prod/sync", json!({}))
        .await;
    assert_eq!(status, 403, "{body}");
    // Argo CD's words exactly (server/application/application.go, Sync).
    assert_eq!(
        body["message"], "cannot sync: blocked by sync window",
        "{body}"
    );

    set(None);
    let (_, wins) = windows().await;
    assert_eq!(
        wins["canSync"], true,
        "read as UTC the window is closed: {wins}"
    );
    assert_eq!(
        wins["activeWindows"].as_array().map(Vec::len),
        Some(0),
        "{wins}"
    );
    assert_eq!(
        wins["assignedWindows"].as_array().map(Vec::len),
        Some(1),
        "{wins}"
    );

    set(Some("Mars/Olympus"));
    let (_, wins) = windows().await;
    assert_eq!(wins["canSync"], false, "an unknown zone refuses: {wins}");
    let (status, body) = admin
        .post("/api/v1/applications/checkout-prod/sync", json!({}))
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(body.to_string().contains("Mars/Olympus"), "{body}");
    sb.stop().await;
}
