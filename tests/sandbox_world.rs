//! The sandbox's world end to end: estates, the Git repository, the Argo CD application
//! controller. The sandbox runs in-process on port 0 with a fast time scale; state is read
//! over HTTP (`/_sandbox/truth`) and from the store.

use serde_json::{Value, json};
use shipdeck::sandbox::estate::{ImageBump, apply_bump};
use shipdeck::sandbox::store::{APPLICATIONS, APPPROJECTS, DEPLOYMENTS, EVENTS};
use shipdeck::sandbox::{ARGOCD_NAMESPACE, IN_CLUSTER, Sandbox, SandboxOptions};

mod common;
use common::wait_for;

async fn start(estate: &str, apps: Option<usize>) -> Sandbox {
    common::sandbox_with(SandboxOptions {
        estate: estate.into(),
        apps,
        time_scale: 0.02,
        ..Default::default()
    })
    .await
}

async fn truth(sb: &Sandbox) -> Vec<Value> {
    reqwest::get(format!("{}/_sandbox/truth", sb.url))
        .await
        .expect("truth answers")
        .json::<Vec<Value>>()
        .await
        .expect("truth is a JSON list")
}

async fn truth_of(sb: &Sandbox, name: &str) -> Value {
    truth(sb)
        .await
        .into_iter()
        .find(|a| a["name"] == name)
        .unwrap_or_else(|| panic!("{name} in truth"))
}

fn app(sb: &Sandbox, name: &str) -> Value {
    (*sb.world
        .store
        .get(IN_CLUSTER, APPLICATIONS, ARGOCD_NAMESPACE, name)
        .unwrap_or_else(|| panic!("application {name}")))
    .clone()
}

fn git(sb: &Sandbox, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(sb.world.repo.path())
        .args(args)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_estate_starts_as_the_demo_needs() {
    let sb = start("default", None).await;
    // The controller's first pass may already be syncing an app with a change waiting
    // (catalog-staging auto-syncs): read the estate once no operation runs.
    let apps = common::wait_until("no operation running", || {
        let apps = sb
            .world
            .store
            .list(IN_CLUSTER, APPLICATIONS, Some(ARGOCD_NAMESPACE))
            .0;
        apps.iter()
            .all(|a| {
                a["operation"].is_null() && a["status"]["operationState"]["phase"] != "Running"
            })
            .then_some(apps)
    })
    .await;
    assert!(apps.len() >= 18, "apps: {}", apps.len());
    for a in &apps {
        let name = a["metadata"]["name"].as_str().unwrap();
        assert!(
            a["metadata"]["labels"]["env"].is_string(),
            "{name} has env label"
        );
        let history = a["status"]["history"].as_array().unwrap();
        // Services carry weeks of past deployments: Argo CD's default 10 entries are full.
        // Infrastructure and the app-of-apps have only their recent builds.
        let service = !name.starts_with("kafka-") && name != "shop-apps";
        assert!(
            if service {
                history.len() == 10
            } else {
                (2..=4).contains(&history.len())
            },
            "{name}: {} history entries",
            history.len()
        );
        assert_eq!(
            a["status"]["operationState"]["phase"], "Succeeded",
            "{name}"
        );
        assert!(a["status"]["reconciledAt"].is_string());
    }
    let prod = app(&sb, "checkout-prod");
    assert_eq!(prod["status"]["sync"]["status"], "OutOfSync");
    assert!(prod["spec"]["syncPolicy"].get("automated").is_none());
    // The broken prod image: Degraded (the Deployment controller takes its pods to
    // ImagePullBackOff; the Argo CD controller reads the workload).
    wait_for("payments-prod to be Degraded", || async {
        (app(&sb, "payments-prod")["status"]["health"]["status"] == "Degraded").then_some(())
    })
    .await;
    let kafka = app(&sb, "kafka-prod");
    assert_eq!(kafka["spec"]["syncPolicy"]["automated"]["prune"], false);
    assert_eq!(kafka["status"]["sync"]["status"], "Synced");

    // The repository: branches, workflows, a history that git log can read.
    let branches = git(&sb, &["branch", "--format=%(refname:short)"]);
    assert!(
        branches.contains("main") && branches.contains("develop"),
        "{branches}"
    );
    let wf = git(&sb, &["show", "main:.github/workflows/deploy-service.yml"]);
    assert!(
        wf.contains("workflow_dispatch:") && wf.contains("environment:"),
        "{wf}"
    );
    let deployed = prod["status"]["history"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()["revision"]
        .as_str()
        .unwrap()
        .to_string();
    let target = prod["status"]["sync"]["revision"]
        .as_str()
        .unwrap()
        .to_string();
    let log = git(
        &sb,
        &["log", "--format=%an %s", &format!("{deployed}..{target}")],
    );
    assert!(log.contains("ci: bump checkout to sha-"), "{log}");
    assert!(log.contains("ci-bot"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_apps_are_generated_and_seeded() {
    let sb = start("default", Some(10_000)).await;
    let apps = sb
        .world
        .store
        .list(IN_CLUSTER, APPLICATIONS, Some(ARGOCD_NAMESPACE))
        .0;
    assert_eq!(apps.len(), 10_000);
    assert!(
        sb.world
            .store
            .get(IN_CLUSTER, APPLICATIONS, ARGOCD_NAMESPACE, "svc-0001-dev")
            .is_some()
    );
    let deployments = sb.world.store.list(IN_CLUSTER, DEPLOYMENTS, None).0;
    assert_eq!(deployments.len(), 10_000);
    let projects = sb.world.store.list(IN_CLUSTER, APPPROJECTS, None).0;
    assert!(projects.len() >= 2);
}

fn history(a: &Value) -> Vec<Value> {
    a["status"]["history"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn set_operation(sb: &Sandbox, name: &str, op: Value) {
    sb.world
        .store
        .mutate(
            IN_CLUSTER,
            APPLICATIONS,
            ARGOCD_NAMESPACE,
            name,
            false,
            |o| {
                o["operation"] = op.clone();
                Ok(true)
            },
        )
        .expect("operation set");
}

/// Wait until the app's operation is done (phase final and `.operation` cleared).
async fn finished_operation(sb: &Sandbox, name: &str) -> Value {
    wait_for(&format!("operation of {name} to finish"), || async {
        let a = app(sb, name);
        let phase = a["status"]["operationState"]["phase"]
            .as_str()
            .unwrap_or("");
        (a.get("operation").is_none() && matches!(phase, "Succeeded" | "Failed" | "Error"))
            .then_some(a)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn argo_controller_syncs_rolls_back_drifts_and_honours_windows() {
    let sb = start("default", None).await;
    let w = &sb.world;

    let t = truth_of(&sb, "checkout-prod").await;
    assert_eq!(
        (t["sync"].as_str(), t["cause"].as_str()),
        (Some("OutOfSync"), Some("pending-change"))
    );
    assert_eq!(t["auto_sync"], false);
    wait_for("payments-prod to be Degraded", || async {
        (truth_of(&sb, "payments-prod").await["health"] == "Degraded").then_some(())
    })
    .await;

    // catalog-staging had a change waiting at start: auto-sync takes it.
    let head = w.repo.resolve("develop").unwrap();
    wait_for("catalog-staging to auto-sync", || async {
        let a = app(&sb, "catalog-staging");
        (a["status"]["sync"]["status"] == "Synced"
            && history(&a).last().map(|h| h["revision"] == head.as_str()) == Some(true))
        .then_some(())
    })
    .await;

    // CI bumps dev: Argo CD notices at once and auto-syncs.
    let before = history(&app(&sb, "checkout-dev")).len();
    let sha = apply_bump(
        w,
        &ImageBump {
            service: "checkout".into(),
            environment: "dev".into(),
            tag: "sha-feedbee".into(),
        },
        "ci-bot",
    )
    .unwrap();
    let a = wait_for("checkout-dev to sync the bump", || async {
        let a = app(&sb, "checkout-dev");
        (a["status"]["sync"]["status"] == "Synced"
            && history(&a).last().map(|h| h["revision"] == sha.as_str()) == Some(true))
        .then_some(a)
    })
    .await;
    // Argo CD keeps revisionHistoryLimit (10) entries: a full history stays full.
    assert_eq!(history(&a).len(), (before + 1).min(10));
    assert_eq!(
        history(&a).last().unwrap()["initiatedBy"]["automated"],
        true
    );
    let live = w
        .store
        .get(IN_CLUSTER, DEPLOYMENTS, "shop-dev", "checkout")
        .unwrap();
    assert!(
        live["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap()
            .ends_with(":sha-feedbee")
    );
    assert_eq!(
        live["metadata"]["labels"]["app.kubernetes.io/instance"],
        "checkout-dev"
    );

    // A manual prod sync written as .operation (what core mode and kubectl patch do).
    let before = history(&app(&sb, "checkout-prod")).len();
    set_operation(
        &sb,
        "checkout-prod",
        json!({
            "initiatedBy": {"username": "alice"},
            "info": [{"name": "reason", "value": "release 42"}],
            "sync": {"revision": "main", "syncStrategy": {"hook": {}}},
        }),
    );
    let a = finished_operation(&sb, "checkout-prod").await;
    let state = &a["status"]["operationState"];
    assert_eq!(state["phase"], "Succeeded", "{state}");
    assert_eq!(state["operation"]["info"][0]["value"], "release 42");
    assert!(state["finishedAt"].is_string() && state["startedAt"].is_string());
    assert!(
        state["syncResult"]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["kind"] == "Deployment" && r["status"] == "Synced")
    );
    let h = history(&a);
    assert_eq!(h.len(), (before + 1).min(10));
    let main = w.repo.resolve("main").unwrap();
    assert_eq!(h.last().unwrap()["revision"], main.as_str());
    assert_eq!(h.last().unwrap()["initiatedBy"]["username"], "alice");
    let t = truth_of(&sb, "checkout-prod").await;
    assert_eq!(
        (t["sync"].as_str(), t["cause"].as_str()),
        (Some("Synced"), Some("none"))
    );
    let events = w.store.list(IN_CLUSTER, EVENTS, Some(ARGOCD_NAMESPACE)).0;
    assert!(
        events
            .iter()
            .any(|e| e["involvedObject"]["name"] == "checkout-prod"
                && e["reason"] == "OperationCompleted"
                && e["message"].as_str().unwrap().contains("succeeded"))
    );

    // Drift: someone scales the live Deployment by hand.
    w.store
        .mutate(IN_CLUSTER, DEPLOYMENTS, "shop", "checkout", false, |d| {
            d["spec"]["replicas"] = json!(7);
            Ok(true)
        })
        .unwrap();
    wait_for("checkout-prod to drift", || async {
        let t = truth_of(&sb, "checkout-prod").await;
        (t["sync"] == "OutOfSync" && t["cause"] == "drift").then_some(())
    })
    .await;

    // Rollback: a sync to the previous history revision with the apply strategy.
    let previous = h[h.len() - 2]["revision"].as_str().unwrap().to_string();
    set_operation(
        &sb,
        "checkout-prod",
        json!({
            "initiatedBy": {"username": "alice"},
            "sync": {"revision": previous, "syncStrategy": {"apply": {}}},
        }),
    );
    let a = finished_operation(&sb, "checkout-prod").await;
    assert_eq!(a["status"]["operationState"]["phase"], "Succeeded");
    assert_eq!(history(&a).last().unwrap()["revision"], previous.as_str());
    let t = truth_of(&sb, "checkout-prod").await;
    assert_eq!(
        (t["sync"].as_str(), t["cause"].as_str()),
        (Some("OutOfSync"), Some("pending-change"))
    );
    let live = w
        .store
        .get(IN_CLUSTER, DEPLOYMENTS, "shop", "checkout")
        .unwrap();
    assert_ne!(
        live["spec"]["replicas"], 7,
        "rollback re-applied the manifest"
    );

    // A deny window blocks syncs, manual ones included.
    w.store.mutate(IN_CLUSTER, APPPROJECTS, ARGOCD_NAMESPACE, "prod", false, |p| {
        p["spec"]["syncWindows"].as_array_mut().unwrap().push(json!({
            "kind": "deny", "schedule": "* * * * *", "duration": "1h", "applications": ["*-prod"]}));
        Ok(true)
    }).unwrap();
    let before = history(&app(&sb, "cart-prod")).len();
    let last_id = history(&app(&sb, "cart-prod"))
        .last()
        .map(|h| h["id"].clone());
    set_operation(
        &sb,
        "cart-prod",
        json!({"initiatedBy": {"username": "alice"}, "sync": {"revision": "main"}}),
    );
    // As Argo CD's controller: the operation stays Running, queued, with its message.
    let a = wait_for("cart-prod's operation to be held by the window", || async {
        let a = app(&sb, "cart-prod");
        (a["status"]["operationState"]["message"] == "Sync operation blocked by sync window")
            .then_some(a)
    })
    .await;
    assert_eq!(a["status"]["operationState"]["phase"], "Running");
    assert!(a["operation"].is_object(), "still queued");
    assert_eq!(history(&a).len(), before);
    assert_eq!(truth_of(&sb, "cart-prod").await["sync"], "OutOfSync");
    // The window goes: the queued operation runs.
    w.store
        .mutate(
            IN_CLUSTER,
            APPPROJECTS,
            ARGOCD_NAMESPACE,
            "prod",
            false,
            |p| {
                p["spec"]["syncWindows"].as_array_mut().unwrap().pop();
                Ok(true)
            },
        )
        .unwrap();
    let a = finished_operation(&sb, "cart-prod").await;
    assert_eq!(a["status"]["operationState"]["phase"], "Succeeded");
    assert_ne!(
        history(&a).last().map(|h| h["id"].clone()),
        last_id,
        "a new history entry"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_heal_reverts_drift() {
    let sb = start("banking", None).await;
    let w = &sb.world;
    wait_for("transaction-service-prod to be Degraded", || async {
        (truth_of(&sb, "transaction-service-prod").await["health"] == "Degraded").then_some(())
    })
    .await;
    w.store
        .mutate(
            IN_CLUSTER,
            DEPLOYMENTS,
            "banking",
            "user-service",
            false,
            |d| {
                d["spec"]["replicas"] = json!(9);
                Ok(true)
            },
        )
        .unwrap();
    wait_for("self-heal to revert the drift", || async {
        let d = w
            .store
            .get(IN_CLUSTER, DEPLOYMENTS, "banking", "user-service")
            .unwrap();
        let a = app(&sb, "user-service-prod");
        (d["spec"]["replicas"] == 2 && a["status"]["sync"]["status"] == "Synced").then_some(())
    })
    .await;
}

/// Seeding and the controller agree on every built-in estate: after the controller has
/// looked (a webhook-style refresh), auto-sync apps are Synced, manual ones are Synced or
/// wait on a pending change, and nothing shows drift that nobody made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_built_in_estate_is_consistent_at_start() {
    for estate in ["default", "three-clusters", "event-ingestion", "banking"] {
        let sb = start(estate, None).await;
        let r = reqwest::Client::new()
            .post(format!("{}/_sandbox/refresh", sb.url))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
        let apps = wait_for(&format!("{estate}: auto-sync apps to settle"), || async {
            let t = truth(&sb).await;
            t.iter()
                .all(|a| a["auto_sync"] == false || a["sync"] == "Synced")
                .then_some(t)
        })
        .await;
        for a in &apps {
            let name = a["name"].as_str().unwrap();
            assert!(
                a["environment"].as_str().is_some_and(|e| !e.is_empty()),
                "{estate}/{name}"
            );
            match a["sync"].as_str().unwrap() {
                "Synced" => assert_eq!(a["cause"], "none", "{estate}/{name}"),
                "OutOfSync" => assert_eq!(a["cause"], "pending-change", "{estate}/{name}: {a}"),
                other => panic!("{estate}/{name}: sync {other}"),
            }
        }
        if apps.iter().any(|a| a["auto_sync"] == false) {
            assert!(
                apps.iter().any(|a| a["cause"] == "pending-change"),
                "{estate} has a change waiting for approval"
            );
        }
        sb.stop().await;
    }
}

/// With kube-rs over the sandbox's Kubernetes API: a prod sync requested by patching
/// `.operation` (what `argocd --core` and `kubectl patch` do) deploys to another cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_patch_of_operation_syncs_to_the_production_cluster() {
    use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
    use kube::config::{KubeConfigOptions, Kubeconfig};
    let sb = start("three-clusters", None).await;
    let kc = Kubeconfig::read_from(sb.kubeconfig_path()).expect("kubeconfig");
    let cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig loads");
    let client = kube::Client::try_from(cfg).expect("client");
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "argoproj.io",
        "v1alpha1",
        "Application",
    ));
    let apps: Api<DynamicObject> = Api::namespaced_with(client, ARGOCD_NAMESPACE, &ar);
    let list = apps
        .list(&Default::default())
        .await
        .expect("list applications");
    assert_eq!(list.items.len(), 3);
    let prod = apps.get("vmshift-production").await.expect("get");
    assert_eq!(prod.data["status"]["sync"]["status"], "OutOfSync");
    assert_eq!(prod.data["spec"]["destination"]["name"], "production");
    let before = history(&prod.data).len();
    let patch = json!({"operation": {
        "initiatedBy": {"username": "admin"},
        "sync": {"revision": "main", "syncStrategy": {"hook": {}}},
    }});
    apps.patch(
        "vmshift-production",
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .expect("patch .operation");
    let a = finished_operation(&sb, "vmshift-production").await;
    assert_eq!(
        a["status"]["operationState"]["phase"], "Succeeded",
        "{}",
        a["status"]["operationState"]
    );
    // Argo CD keeps revisionHistoryLimit (10) entries: a full history stays full.
    assert_eq!(history(&a).len(), (before + 1).min(10));
    assert_eq!(a["status"]["sync"]["status"], "Synced");
    let want = sb
        .world
        .repo
        .read_file("main", "helm/vmshift/rendered/production/api.yaml")
        .unwrap()
        .unwrap();
    let live = sb
        .world
        .store
        .get(
            "production",
            DEPLOYMENTS,
            "vmshift-production",
            "vmshift-api",
        )
        .unwrap();
    let image = live["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap();
    assert!(want.contains(image), "{image} is what main says");
    assert!(image.contains(":main-"), "{image}");
}
