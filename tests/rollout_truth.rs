//! What the rollout screen says is what Kubernetes says. The oracle is the real `kubectl
//! rollout status` on the same object, read while the Deployment's resourceVersion stays the
//! same, at every point of a rollout the test can catch; desired is spec.replicas as kube-rs
//! reads it; a crash-looping pod is `Running` + `CrashLoopBackOff` in API and core mode;
//! and the sandbox's controller keeps the status counts inside maxSurge/maxUnavailable at
//! every status a kube-rs watch sees.

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use serde_json::json;
use shipdeck::model::{Application, WorkloadRollout};
use shipdeck::sandbox::Sandbox;
use shipdeck::sources::ArgoSource;
use shipdeck::sources::argocd::ArgoApi;
use shipdeck::sources::kube::CoreArgo;
use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

mod common;
use common::{http, kube_default, sandbox_scaled, wait_ok};

fn kubectl_available() -> bool {
    Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn api(sb: &Sandbox) -> ArgoApi {
    common::argo_admin(sb)
}

async fn core(sb: &Sandbox, cache: &std::path::Path) -> CoreArgo {
    common::core_admin(sb, cache).await
}

/// `kubectl rollout status --watch=false`: its one line (stdout, or stderr on failure).
fn kubectl_status(sb: &Sandbox, ns: &str, name: &str) -> String {
    let out = Command::new("kubectl")
        .env("KUBECONFIG", sb.kubeconfig_path())
        .args(["rollout", "status", &format!("deployment/{name}"), "-n", ns])
        .arg("--watch=false")
        .output()
        .expect("kubectl runs");
    let text = if out.status.success() {
        String::from_utf8_lossy(&out.stdout).to_string()
    } else {
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    text.trim_end().to_string()
}

async fn app(src: &impl ArgoSource, name: &str) -> Application {
    src.get_application(name, shipdeck::sources::Refresh::None)
        .await
        .expect("app")
}

fn workload<'a>(ws: &'a [WorkloadRollout], name: &str) -> &'a WorkloadRollout {
    ws.iter()
        .find(|w| w.name == name)
        .unwrap_or_else(|| panic!("no workload {name} in {ws:?}"))
}

async fn set_image(sb: &Sandbox, ns: &str, name: &str, image: &str) {
    let deps: kube::Api<Deployment> = kube::Api::namespaced(kube_default(sb).await, ns);
    let patch =
        json!({"spec": {"template": {"spec": {"containers": [{"name": name, "image": image}]}}}});
    deps.patch(
        name,
        &Default::default(),
        &kube::api::Patch::Strategic(&patch),
    )
    .await
    .expect("set image");
}

async fn image_fault(sb: &Sandbox, image: &str, mode: &str) {
    let r = http()
        .post(format!("{}/_sandbox/image-fault", sb.url))
        .json(&json!({"image": image, "mode": mode}))
        .send()
        .await
        .expect("fault endpoint");
    assert!(r.status().is_success());
}

/// Catalog in prod (`shop/catalog`, 2 replicas) rolls to a new image; at every point where
/// the Deployment did not change between kubectl's look and the product's, the product's
/// line is kubectl's line and its desired is spec.replicas.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_mode_rollout_says_what_kubectl_rollout_status_says() {
    if !kubectl_available() {
        println!("SKIP rollout_truth: kubectl is not on PATH");
        return;
    }
    // Slow enough that a mid-rollout point is seen between polls even on a loaded machine
    // (each poll reads the app's workloads, StatefulSet and Job included, and runs kubectl).
    let sb = sandbox_scaled(0.3).await;
    let src = api(&sb);
    let a = app(&src, "catalog-prod").await;
    let deps: kube::Api<Deployment> = kube::Api::namespaced(kube_default(&sb).await, "shop");
    let d = deps.get("catalog").await.expect("catalog deployment");
    let spec_replicas = d.spec.replicas.expect("replicas") as u32;
    let image = "ghcr.io/acme/catalog:sha-0ddba11";
    set_image(&sb, "shop", "catalog", image).await;

    let mut seen: BTreeSet<String> = BTreeSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "rollout did not finish; lines seen: {seen:?}"
        );
        let rv1 = deps
            .get("catalog")
            .await
            .expect("get")
            .metadata
            .resource_version;
        let oracle = kubectl_status(&sb, "shop", "catalog");
        let ws = src.workloads(&a).await.expect("workloads");
        let rv2 = deps
            .get("catalog")
            .await
            .expect("get")
            .metadata
            .resource_version;
        if rv1 != rv2 {
            continue; // moved while we looked: no fair comparison
        }
        let w = workload(&ws, "catalog");
        assert_eq!(w.desired, spec_replicas, "desired is spec.replicas");
        assert_eq!(w.status_line(), oracle, "product vs kubectl at rv {rv1:?}");
        seen.insert(oracle.clone());
        if oracle.contains("successfully rolled out") && seen.len() > 1 {
            break;
        }
    }
    assert!(
        seen.iter().any(|l| l.contains("out of 2 new replicas")
            || l.contains("old replicas are pending termination")
            || l.contains("updated replicas are available")),
        "at least one mid-rollout point was compared: {seen:?}"
    );

    // A stuck rollout: the new image cannot be pulled, kubectl says it exceeded its deadline
    // eventually; until then "1 out of 2"; the product agrees at each stable point.
    let bad = "ghcr.io/acme/catalog:sha-badbad1";
    image_fault(&sb, bad, "ImagePullBackOff").await;
    set_image(&sb, "shop", "catalog", bad).await;
    wait_ok(
        "stuck rollout compared",
        Duration::from_secs(120),
        || async {
            let rv1 = deps
                .get("catalog")
                .await
                .map_err(|e| e.to_string())?
                .metadata
                .resource_version;
            let oracle = kubectl_status(&sb, "shop", "catalog");
            let ws = src.workloads(&a).await.map_err(|e| e.to_string())?;
            let rv2 = deps
                .get("catalog")
                .await
                .map_err(|e| e.to_string())?
                .metadata
                .resource_version;
            if rv1 != rv2 {
                return Err("moved".into());
            }
            let w = workload(&ws, "catalog");
            assert_eq!(w.desired, spec_replicas);
            assert_eq!(w.status_line(), oracle);
            if oracle.contains("1 out of 2 new replicas") {
                Ok(())
            } else {
                Err(format!("not stuck yet: {oracle}"))
            }
        },
    )
    .await;
    // Two available old pods stay while the new one cannot start: not an outage.
    let ws = src.workloads(&a).await.expect("workloads");
    let w = workload(&ws, "catalog");
    assert_eq!(w.available, 2, "the old pods are still available: {w:?}");
    sb.stop().await;
}

fn crash_looping(ws: &[WorkloadRollout], image: &str) -> Result<(), String> {
    let pods: Vec<_> = ws
        .iter()
        .flat_map(|w| &w.pods)
        .filter(|p| p.images.iter().any(|i| i == image))
        .collect();
    let p = pods
        .iter()
        .find(|p| p.waiting_reason.as_deref() == Some("CrashLoopBackOff"))
        .ok_or_else(|| format!("no crash-looping pod yet: {pods:?}"))?;
    if p.phase == "Running" {
        Ok(())
    } else {
        Err(format!("crash-looping pod has phase {}", p.phase))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_looping_pod_is_running_and_waiting_in_both_modes() {
    let sb = sandbox_scaled(0.02).await;
    let src = api(&sb);
    let cache = tempfile::tempdir().expect("tmp");
    let core_src = core(&sb, cache.path()).await;
    let image = "ghcr.io/acme/cart:sha-c0ffee1";
    image_fault(&sb, image, "CrashLoopBackOff").await;
    set_image(&sb, "shop", "cart", image).await;
    // Kubernetes' own answer first: the pod object says Running + CrashLoopBackOff.
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
        kube::Api::namespaced(kube_default(&sb).await, "shop");
    wait_ok(
        "pod object crash-loops",
        Duration::from_secs(60),
        || async {
            let l = pods
                .list(&Default::default())
                .await
                .map_err(|e| e.to_string())?;
            l.items
                .iter()
                .find(|p| {
                    let st = p.status.as_ref();
                    st.and_then(|s| s.phase.as_deref()) == Some("Running")
                        && st
                            .and_then(|s| s.container_statuses.as_ref())
                            .into_iter()
                            .flatten()
                            .any(|c| {
                                c.state
                                    .as_ref()
                                    .and_then(|s| s.waiting.as_ref())
                                    .and_then(|w| w.reason.as_deref())
                                    == Some("CrashLoopBackOff")
                            })
                })
                .map(|_| ())
                .ok_or_else(|| "no pod Running+CrashLoopBackOff yet".to_string())
        },
    )
    .await;
    let a = app(&src, "cart-prod").await;
    wait_ok(
        "API mode shows Running + CrashLoopBackOff",
        Duration::from_secs(60),
        || async { crash_looping(&src.workloads(&a).await.map_err(|e| e.to_string())?, image) },
    )
    .await;
    let a = app(&core_src, "cart-prod").await;
    wait_ok(
        "core mode shows Running + CrashLoopBackOff",
        Duration::from_secs(60),
        || async {
            crash_looping(
                &core_src.workloads(&a).await.map_err(|e| e.to_string())?,
                image,
            )
        },
    )
    .await;
    sb.stop().await;
}

/// Watch the Deployment with kube-rs through a rolling update and check, at every status the
/// watch delivers, what the real controller guarantees: replicas <= spec + maxSurge,
/// available >= spec - maxUnavailable, updated/ready <= replicas, available <= ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_status_stays_within_surge_and_unavailable() {
    let sb = sandbox_scaled(0.02).await;
    let client = kube_default(&sb).await;
    let deps: kube::Api<Deployment> = kube::Api::namespaced(client, "shop");
    // 4 replicas, maxSurge 1, maxUnavailable 1.
    let patch = json!({"spec": {"replicas": 4, "strategy": {"type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}}}});
    deps.patch(
        "frontend",
        &Default::default(),
        &kube::api::Patch::Merge(&patch),
    )
    .await
    .expect("scale");
    wait_ok("scaled to 4", Duration::from_secs(60), || async {
        let d = deps.get("frontend").await.map_err(|e| e.to_string())?;
        let st = d.status.unwrap_or_default();
        (st.available_replicas == Some(4)
            && st.updated_replicas == Some(4)
            && st.replicas == Some(4))
        .then_some(())
        .ok_or_else(|| format!("{st:?}"))
    })
    .await;
    let watcher = kube::runtime::watcher(
        deps.clone(),
        kube::runtime::watcher::Config::default().fields("metadata.name=frontend"),
    );
    let mut stream = Box::pin(kube::runtime::WatchStreamExt::applied_objects(watcher));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    // A watcher does nothing until polled: take its first object (the list) before the
    // change, so the watch is open while the rollout runs and sees its steps.
    tokio::time::timeout_at(deadline, stream.next())
        .await
        .expect("the watch lists in time")
        .expect("watch open")
        .expect("watch event");
    set_image(&sb, "shop", "frontend", "ghcr.io/acme/frontend:sha-5eed5ed").await;
    let mut observed = 0;
    loop {
        let d = tokio::time::timeout_at(deadline, stream.next())
            .await
            .expect("rollout finishes in time")
            .expect("watch open")
            .expect("watch event");
        let gen_seen =
            d.status.as_ref().and_then(|s| s.observed_generation) == d.metadata.generation;
        let st = d.status.clone().unwrap_or_default();
        let (r, u, rd, a) = (
            st.replicas.unwrap_or(0),
            st.updated_replicas.unwrap_or(0),
            st.ready_replicas.unwrap_or(0),
            st.available_replicas.unwrap_or(0),
        );
        observed += 1;
        assert!(r <= 5, "replicas {r} > 4 + maxSurge 1: {st:?}");
        assert!(a >= 3, "available {a} < 4 - maxUnavailable 1: {st:?}");
        assert!(u <= r && rd <= r && a <= rd, "counts inconsistent: {st:?}");
        let image = d
            .spec
            .template
            .spec
            .as_ref()
            .and_then(|s| s.containers.first())
            .and_then(|c| c.image.clone());
        if gen_seen
            && image.as_deref() == Some("ghcr.io/acme/frontend:sha-5eed5ed")
            && (r, u, a) == (4, 4, 4)
        {
            break;
        }
    }
    assert!(
        observed > 3,
        "the watch saw the rollout's steps ({observed})"
    );
    sb.stop().await;
}
