//! Events and logs in API mode through Argo CD's own routes, served by the sandbox as Argo
//! CD serves them: degraded `payments-prod` shows the same pull failures `kubectl get
//! events` shows; resource events and resources are only given for nodes of the app's tree;
//! logs follow over `/logs?follow=true`, and a pod with nothing written says so at once.

use serde_json::Value;
use shipdeck::sandbox::Sandbox;
use shipdeck::sandbox::auth::Role;
use shipdeck::secrets::Secret;
use shipdeck::sources::argocd::{ArgoApi, ArgoApiOptions};
use shipdeck::sources::{ArgoSource, Refresh};
use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;
use tokio::sync::mpsc;

mod common;
use common::{Api, sandbox, wait_ok};

fn kubectl_available() -> bool {
    Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn api(sb: &Sandbox) -> ArgoApi {
    ArgoApi::new(ArgoApiOptions {
        server: sb.url.clone(),
        token: Some(Secret::new(sb.world.users.token(Role::Admin))),
        ..Default::default()
    })
    .expect("client")
}

type Ev = (String, String, String, String); // type, reason, Kind/name, message

/// `kubectl get events -n shop -o json`, about the payments objects.
fn kubectl_events(sb: &Sandbox) -> BTreeSet<Ev> {
    let out = Command::new("kubectl")
        .env("KUBECONFIG", sb.kubeconfig_path())
        .args(["get", "events", "-n", "shop", "-o", "json"])
        .output()
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    v["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| {
            let n = e["involvedObject"]["name"].as_str().unwrap_or("");
            n == "payments" || n.starts_with("payments-")
        })
        .map(|e| {
            let s = |p: &Value| p.as_str().unwrap_or("").to_string();
            (
                s(&e["type"]),
                s(&e["reason"]),
                format!(
                    "{}/{}",
                    s(&e["involvedObject"]["kind"]),
                    s(&e["involvedObject"]["name"])
                ),
                s(&e["message"]),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn degraded_payments_prod_shows_the_events_kubectl_shows() {
    if !kubectl_available() {
        println!("SKIP events_logs_api: kubectl is not on PATH");
        return;
    }
    let sb = sandbox().await;
    let src = api(&sb);
    let app = src
        .get_application("payments-prod", Refresh::None)
        .await
        .expect("payments-prod");
    // The pull failures happen (kubectl's word), then the product must say the same.
    wait_ok(
        "kubectl shows the pull failures",
        Duration::from_secs(60),
        || async {
            let k = kubectl_events(&sb);
            let failed = k.iter().any(|e| e.3.starts_with("Failed to pull image"));
            let backoff = k.iter().any(|e| e.3 == "Error: ImagePullBackOff");
            (failed && backoff)
                .then_some(())
                .ok_or_else(|| format!("{k:?}"))
        },
    )
    .await;
    wait_ok(
        "product events equal kubectl's",
        Duration::from_secs(60),
        || async {
            let before = kubectl_events(&sb);
            let mine: BTreeSet<Ev> = src
                .events(&app)
                .await
                .map_err(|e| e.to_string())?
                .into_iter()
                .filter(|e| !e.object.starts_with("Application/"))
                .map(|e| (e.event_type, e.reason, e.object, e.message))
                .collect();
            let after = kubectl_events(&sb);
            if before != after {
                return Err("events moved while looking".into());
            }
            assert_eq!(mine, before, "API-mode events vs kubectl get events");
            Ok(())
        },
    )
    .await;
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_routes_answer_only_for_the_apps_own_tree() {
    let sb = sandbox().await;
    let admin = Api::new(&sb, Role::Admin);
    let (s, tree) = admin
        .get("/api/v1/applications/payments-prod/resource-tree")
        .await;
    assert_eq!(s, 200);
    let pod = tree["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .find(|n| n["kind"] == "Pod")
        .expect("a pod in the tree")
        .clone();
    let (name, ns, uid) = (
        pod["name"].as_str().unwrap(),
        pod["namespace"].as_str().unwrap(),
        pod["uid"].as_str().unwrap(),
    );
    // Its own pod: events and the manifest.
    let (s, body) = admin
        .get(&format!(
            "/api/v1/applications/payments-prod/events?resourceName={name}&resourceNamespace={ns}&resourceUID={uid}"
        ))
        .await;
    assert_eq!(s, 200, "{body}");
    assert!(body["items"].is_array());
    let (s, body) = admin
        .get(&format!(
            "/api/v1/applications/payments-prod/resource?namespace={ns}&resourceName={name}&version=v1&group=&kind=Pod"
        ))
        .await;
    assert_eq!(s, 200, "{body}");
    let m: Value = serde_json::from_str(body["manifest"].as_str().expect("manifest")).unwrap();
    assert_eq!(m["metadata"]["name"], name);
    // The same pod through another app: refused as Argo CD refuses it.
    let (s, body) = admin
        .get(&format!(
            "/api/v1/applications/cart-prod/events?resourceName={name}&resourceNamespace={ns}&resourceUID={uid}"
        ))
        .await;
    assert_eq!(s, 400, "{body}");
    assert_eq!(
        body["message"],
        format!("{name} not found as part of application cart-prod")
    );
    let (s, body) = admin
        .get(&format!(
            "/api/v1/applications/cart-prod/resource?namespace={ns}&resourceName={name}&version=v1&group=&kind=Pod"
        ))
        .await;
    assert_eq!(s, 400, "{body}");
    assert_eq!(
        body["message"],
        format!("Pod  {name} not found as part of application cart-prod")
    );
    sb.stop().await;
}

async fn pod_of(src: &ArgoApi, app: &shipdeck::model::Application) -> (String, String) {
    let ws = src.workloads(app).await.expect("workloads");
    let p = ws
        .iter()
        .flat_map(|w| &w.pods)
        .next()
        .expect("a pod")
        .clone();
    (p.namespace, p.name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_follow_as_a_stream_and_an_empty_pod_says_so() {
    let sb = sandbox().await;
    let src = api(&sb);
    // A pod whose container never started: the first answer is an empty batch, at once.
    let app = src
        .get_application("payments-prod", Refresh::None)
        .await
        .expect("app");
    let (ns, pod) = pod_of(&src, &app).await;
    let (tx, mut rx) = mpsc::channel(16);
    let follower = {
        let src = src.clone();
        let app = app.clone();
        tokio::spawn(async move { src.follow_pod_logs(&app, &ns, &pod, 100, tx).await })
    };
    let first = tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .expect("an answer")
        .expect("stream open");
    assert_eq!(first.expect("no error"), Vec::<String>::new());
    drop(rx);
    tokio::time::timeout(Duration::from_secs(30), follower)
        .await
        .expect("the follower ends when its reader goes")
        .expect("no panic");

    // A running pod: its lines come over the followed stream, and the stream stays open
    // (no `last` entry) while the pod runs.
    let app = src
        .get_application("cart-prod", Refresh::None)
        .await
        .expect("app");
    let (ns, pod) = pod_of(&src, &app).await;
    let (tx, mut rx) = mpsc::channel(16);
    let src2 = src.clone();
    let task = tokio::spawn(async move { src2.follow_pod_logs(&app, &ns, &pod, 100, tx).await });
    let mut lines = Vec::new();
    while !lines
        .iter()
        .any(|l: &String| l.contains("listening on 0.0.0.0:8080"))
    {
        let batch = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .expect("lines in time")
            .expect("stream open");
        lines.extend(batch.expect("no error"));
    }
    assert!(
        lines.iter().any(|l| l.contains("INFO  starting cart")),
        "{lines:?}"
    );
    assert!(!task.is_finished(), "a followed stream stays open");
    task.abort();
    sb.stop().await;
}
