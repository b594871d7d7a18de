//! The sandbox's Deployment controller end to end: rolling updates that respect maxSurge and
//! maxUnavailable at every step a watcher can see, failures on demand that stall a rollout
//! into ProgressDeadlineExceeded, scaling, and replacement of deleted pods.

use serde_json::{Value, json};
use shipdeck::sandbox::store::{DEPLOYMENTS, EVENTS, PODS, REPLICASETS};
use shipdeck::sandbox::{IN_CLUSTER, Sandbox, World};
use std::time::Duration;

const NS: &str = "rollout-test";

mod common;
use common::wait_until;

async fn sandbox() -> Sandbox {
    common::sandbox_scaled(0.01).await
}

fn deployment(name: &str, replicas: i64, image: &str, extra_spec: Value) -> Value {
    let mut d = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": image}]}
            }
        }
    });
    if let (Some(spec), Some(extra)) = (d["spec"].as_object_mut(), extra_spec.as_object()) {
        for (k, v) in extra {
            spec.insert(k.clone(), v.clone());
        }
    }
    d
}

fn get_deploy(world: &World, name: &str) -> Value {
    (*world
        .store
        .get(IN_CLUSTER, DEPLOYMENTS, NS, name)
        .expect("deployment exists"))
    .clone()
}

fn rolled_out(world: &World, name: &str, image: &str) -> Option<Value> {
    let d = get_deploy(world, name);
    let st = &d["status"];
    let want = d["spec"]["replicas"].as_i64().unwrap_or(1);
    let done = st["observedGeneration"] == d["metadata"]["generation"]
        && st["updatedReplicas"].as_i64().unwrap_or(0) == want
        && st["replicas"].as_i64().unwrap_or(0) == want
        && st["availableReplicas"].as_i64().unwrap_or(0) == want
        && d["spec"]["template"]["spec"]["containers"][0]["image"] == image
        && progressing_reason(&d).as_deref() == Some("NewReplicaSetAvailable");
    done.then_some(d)
}

fn progressing_reason(d: &Value) -> Option<String> {
    d["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Progressing")
        .and_then(|c| c["reason"].as_str())
        .map(str::to_string)
}

fn set_image(world: &World, name: &str, image: &str) {
    world
        .store
        .mutate(IN_CLUSTER, DEPLOYMENTS, NS, name, false, |d| {
            d["spec"]["template"]["spec"]["containers"][0]["image"] = json!(image);
            Ok(true)
        })
        .expect("image updated");
}

/// Live (not terminating) pods of a Deployment, from the store.
fn live_pods(world: &World, name: &str) -> Vec<Value> {
    world
        .store
        .list(IN_CLUSTER, PODS, Some(NS))
        .0
        .iter()
        .filter(|p| p["metadata"]["labels"]["app"] == name)
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .map(|p| (**p).clone())
        .collect()
}

fn is_ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_update_respects_surge_and_unavailable_at_every_step() {
    let sb = sandbox().await;
    let w = sb.world.clone();
    let strategy = json!({"strategy": {"type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}}});
    w.store
        .create(
            IN_CLUSTER,
            DEPLOYMENTS,
            deployment("web", 4, "web:1", strategy),
        )
        .unwrap();
    wait_until("first rollout", || rolled_out(&w, "web", "web:1")).await;

    let (_, mut rx) = w.store.watch(IN_CLUSTER, PODS, 0).unwrap();
    set_image(&w, "web", "web:2");
    let mut steps = 0;
    let mut max_total = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let ev = match tokio::time::timeout_at(deadline, rx.recv())
            .await
            .expect("rollout finishes in time")
        {
            Ok(ev) => ev,
            // Fell behind the store's other traffic: the check below reads the store anyway.
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(e) => panic!("watch closed: {e}"),
        };
        let relevant = ev.resource == PODS || ev.resource == DEPLOYMENTS;
        if !relevant || ev.object["metadata"]["namespace"] != NS {
            continue;
        }
        steps += 1;
        let pods = live_pods(&w, "web");
        let ready = pods.iter().filter(|p| is_ready(p)).count();
        max_total = max_total.max(pods.len());
        assert!(pods.len() <= 5, "surge exceeded: {} pods", pods.len());
        assert!(ready >= 3, "too many unavailable: {ready} ready");
        if rolled_out(&w, "web", "web:2").is_some()
            && pods.len() == 4
            && pods
                .iter()
                .all(|p| p["spec"]["containers"][0]["image"] == "web:2" && is_ready(p))
        {
            break;
        }
    }
    assert!(steps > 8, "a rollout takes several observable steps");
    assert_eq!(max_total, 5, "the rollout used its surge");

    // Two ReplicaSets with revisions, the old one scaled to zero, owned by the Deployment.
    let d = get_deploy(&w, "web");
    let uid = d["metadata"]["uid"].clone();
    let sets: Vec<_> = w
        .store
        .list(IN_CLUSTER, REPLICASETS, Some(NS))
        .0
        .into_iter()
        .filter(|r| r["metadata"]["ownerReferences"][0]["uid"] == uid)
        .collect();
    assert_eq!(sets.len(), 2);
    let mut revs: Vec<(String, i64)> = sets
        .iter()
        .map(|r| {
            (
                r["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                r["spec"]["replicas"].as_i64().unwrap(),
            )
        })
        .collect();
    revs.sort();
    assert_eq!(revs, vec![("1".to_string(), 0), ("2".to_string(), 4)]);
    for r in &sets {
        let hash = r["metadata"]["labels"]["pod-template-hash"]
            .as_str()
            .unwrap();
        assert!(r["metadata"]["name"].as_str().unwrap().ends_with(hash));
    }
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "2"
    );
    // Events tell the story.
    let events = w.store.list(IN_CLUSTER, EVENTS, Some(NS)).0;
    assert!(events.iter().any(|e| {
        e["reason"] == "ScalingReplicaSet"
            && e["message"]
                .as_str()
                .unwrap()
                .starts_with("Scaled up replica set web-")
    }));
    assert!(events.iter().any(|e| e["reason"] == "Started"));
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_pull_failure_stalls_until_progress_deadline() {
    let sb = sandbox().await;
    let w = sb.world.clone();
    let extra = json!({"progressDeadlineSeconds": 20,
        "strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}});
    w.store
        .create(
            IN_CLUSTER,
            DEPLOYMENTS,
            deployment("api", 2, "api:1", extra),
        )
        .unwrap();
    wait_until("first rollout", || rolled_out(&w, "api", "api:1")).await;

    // The admin endpoint marks the image as failing.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    let bad = http
        .post(format!("{}/_sandbox/image-fault", sb.url))
        .json(&json!({"image": "api:2", "mode": "Sideways"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let ok = http
        .post(format!("{}/_sandbox/image-fault", sb.url))
        .json(&json!({"image": "api:2", "mode": "ImagePullBackOff"}))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);

    set_image(&w, "api", "api:2");
    let d = wait_until("ProgressDeadlineExceeded", || {
        let d = get_deploy(&w, "api");
        (progressing_reason(&d).as_deref() == Some("ProgressDeadlineExceeded")).then_some(d)
    })
    .await;
    let cond = d["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Progressing")
        .unwrap()
        .clone();
    assert_eq!(cond["status"], "False");
    // maxUnavailable 0: the old pods keep serving.
    assert_eq!(d["status"]["availableReplicas"], 2);
    assert_eq!(d["status"]["updatedReplicas"], 1);
    let waiting: Vec<String> = live_pods(&w, "api")
        .iter()
        .filter_map(|p| {
            p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert_eq!(waiting.len(), 1, "one new pod waits: {waiting:?}");
    assert!(waiting[0] == "ImagePullBackOff" || waiting[0] == "ErrImagePull");
    let events = w.store.list(IN_CLUSTER, EVENTS, Some(NS)).0;
    assert!(
        events
            .iter()
            .any(|e| e["message"] == "Error: ImagePullBackOff")
    );

    // Clearing the fault lets the retry pull the image and the rollout finish.
    let cleared = http
        .post(format!("{}/_sandbox/image-fault", sb.url))
        .json(&json!({"image": "api:2", "mode": null}))
        .send()
        .await
        .unwrap();
    assert_eq!(cleared.status(), 200);
    wait_until("recovery after clearing the fault", || {
        rolled_out(&w, "api", "api:2")
    })
    .await;
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_loop_restarts_grow_and_scaling_works() {
    let sb = sandbox().await;
    let w = sb.world.clone();
    let mut d = deployment("worker", 2, "worker:1", json!({}));
    d["spec"]["template"]["metadata"]["annotations"] =
        json!({"sandbox.shipdeck.io/fail": "CrashLoopBackOff"});
    w.store.create(IN_CLUSTER, DEPLOYMENTS, d).unwrap();
    let pod = wait_until("restarts grow", || {
        live_pods(&w, "worker")
            .into_iter()
            .find(|p| p["status"]["containerStatuses"][0]["restartCount"].as_u64() >= Some(2))
    })
    .await;
    let cs = &pod["status"]["containerStatuses"][0];
    assert_eq!(cs["ready"], false);
    assert_eq!(cs["lastState"]["terminated"]["exitCode"], 1);
    assert_eq!(pod["status"]["phase"], "Running");
    let lines = shipdeck::sandbox::controller::deploy::pod_log_lines(
        &w,
        IN_CLUSTER,
        NS,
        pod["metadata"]["name"].as_str().unwrap(),
    );
    assert!(lines.iter().any(|l| l.contains("FATAL")), "{lines:?}");

    // Scaling a healthy Deployment up and down.
    w.store
        .create(
            IN_CLUSTER,
            DEPLOYMENTS,
            deployment("cache", 1, "cache:1", json!({})),
        )
        .unwrap();
    wait_until("cache up", || rolled_out(&w, "cache", "cache:1")).await;
    for n in [4, 2] {
        w.store
            .mutate(IN_CLUSTER, DEPLOYMENTS, NS, "cache", false, |d| {
                d["spec"]["replicas"] = json!(n);
                Ok(true)
            })
            .unwrap();
        wait_until("scaled", || {
            (rolled_out(&w, "cache", "cache:1").is_some() && live_pods(&w, "cache").len() == n)
                .then_some(())
        })
        .await;
    }

    // A deleted pod is replaced; a deleted Deployment takes its ReplicaSets and pods along.
    let victim = live_pods(&w, "cache")[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    w.store.delete(IN_CLUSTER, PODS, NS, &victim).unwrap();
    wait_until("replacement pod", || {
        let pods = live_pods(&w, "cache");
        (pods.len() == 2
            && pods
                .iter()
                .all(|p| p["metadata"]["name"] != victim.as_str()))
        .then_some(())
    })
    .await;
    w.store
        .delete(IN_CLUSTER, DEPLOYMENTS, NS, "cache")
        .unwrap();
    wait_until("garbage collection", || {
        let sets = w.store.list(IN_CLUSTER, REPLICASETS, Some(NS)).0;
        (live_pods(&w, "cache").is_empty()
            && !sets
                .iter()
                .any(|r| r["metadata"]["labels"]["app"] == "cache"))
        .then_some(())
    })
    .await;
    sb.stop().await;
}
