//! The app screen's resource list is the tree Argo CD draws (Application -> Deployment ->
//! ReplicaSet -> Pod): each Pod under the ReplicaSet that owns it and each ReplicaSet under
//! its Deployment, in API mode (the resource tree's parentRefs) and core mode (owner
//! references). The oracle is `kubectl get rs,pods -o json` on the same cluster. The tree
//! is live: with the app screen open, a rollout started under it (an image whose pods
//! cannot pull, so the rollout stays in the middle) shows its new ReplicaSet and pods
//! beside the old ones, as kubectl has them, without a key pressed.

mod common;

use common::sandbox_scaled;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use serde_json::Value;
use shipdeck::model::*;
use shipdeck::ops::estate::Estate;
use shipdeck::sandbox::Sandbox;
use shipdeck::sources::ArgoSource;
use shipdeck::tui::console::{Console, Settings};
use shipdeck::tui::request::{Payload, Request, Response};
use shipdeck::tui::views;
use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

fn kubectl_available() -> bool {
    Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// (child kind, child name, parent kind, parent name) edges.
type Edges = BTreeSet<(String, String, String, String)>;

/// kubectl's ownership edges in `ns` for the Deployments named in `deps`: ReplicaSets that
/// still run or own a pod, and every pod of those ReplicaSets.
fn kubectl_edges(sb: &Sandbox, ns: &str, deps: &BTreeSet<String>) -> Edges {
    let out = Command::new("kubectl")
        .env("KUBECONFIG", sb.kubeconfig_path())
        .args(["get", "rs,pods", "-n", ns, "-o", "json"])
        .output()
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("kubectl json");
    let items = v["items"].as_array().cloned().unwrap_or_default();
    let owner = |i: &Value, kind: &str| -> Option<String> {
        i["metadata"]["ownerReferences"]
            .as_array()?
            .iter()
            .find(|o| o["kind"] == kind)
            .and_then(|o| o["name"].as_str().map(String::from))
    };
    let mut rs_of_app: BTreeSet<String> = BTreeSet::new();
    let mut edges = Edges::new();
    for i in items.iter().filter(|i| i["kind"] == "ReplicaSet") {
        if let Some(d) = owner(i, "Deployment").filter(|d| deps.contains(d)) {
            let name = i["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            rs_of_app.insert(name.clone());
            let running = i["spec"]["replicas"].as_i64().unwrap_or(0) > 0
                || i["status"]["readyReplicas"].as_i64().unwrap_or(0) > 0;
            let owns_pod = items.iter().any(|p| {
                p["kind"] == "Pod" && owner(p, "ReplicaSet").as_deref() == Some(name.as_str())
            });
            if running || owns_pod {
                edges.insert(("ReplicaSet".into(), name, "Deployment".into(), d));
            }
        }
    }
    for p in items.iter().filter(|i| i["kind"] == "Pod") {
        if let Some(rs) = owner(p, "ReplicaSet").filter(|r| rs_of_app.contains(r)) {
            let name = p["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            edges.insert(("Pod".into(), name, "ReplicaSet".into(), rs));
        }
    }
    edges
}

fn screen(c: &Console, w: u16, h: u16) -> Vec<String> {
    let mut t = Terminal::new(TestBackend::new(w, h)).expect("terminal");
    t.draw(|f| c.render(f)).expect("draw");
    let buf = t.backend().buffer().clone();
    (0..buf.area.height)
        .map(|y| (0..buf.area.width).map(|x| buf[(x, y)].symbol()).collect())
        .collect()
}

/// The edges the screen draws: a ReplicaSet row's parent is the last Deployment row above
/// it, indented less; a Pod row's is the last ReplicaSet row above it, indented less.
fn screen_edges(lines: &[String]) -> Edges {
    let mut edges = Edges::new();
    let mut dep: Option<(usize, String)> = None;
    let mut rs: Option<(usize, String)> = None;
    let name_after = |line: &str, at: usize, kind: &str| -> String {
        line[at + kind.len() + 1..]
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string()
    };
    for line in lines {
        // The resources pane is the left one at this width: stop at its right border.
        let line: String = line.chars().take(110).collect();
        let col = |at: usize| line[..at].chars().count();
        if let Some(at) = line.find("Deployment/") {
            dep = Some((col(at), name_after(&line, at, "Deployment")));
            rs = None;
        } else if let Some(at) = line.find("ReplicaSet/") {
            let (dc, d) = dep
                .clone()
                .expect("a ReplicaSet row under a Deployment row");
            assert!(
                col(at) > dc,
                "ReplicaSet not indented under its Deployment: {line}"
            );
            let name = name_after(&line, at, "ReplicaSet");
            edges.insert(("ReplicaSet".into(), name.clone(), "Deployment".into(), d));
            rs = Some((col(at), name));
        } else if let Some(at) = line.find("Pod/") {
            let (rc, r) = rs.clone().expect("a Pod row under a ReplicaSet row");
            assert!(
                col(at) > rc,
                "Pod not indented under its ReplicaSet: {line}"
            );
            edges.insert((
                "Pod".into(),
                name_after(&line, at, "Pod"),
                "ReplicaSet".into(),
                r,
            ));
        } else if line.contains("Service/") || line.contains("ConfigMap/") {
            dep = None;
            rs = None;
        }
    }
    edges
}

/// Opens `name`'s app screen on a console fed by `src`, answers its workload request with
/// the source's answer, and compares the drawn tree with kubectl's owner references,
/// retrying while the cluster changes under the comparison.
async fn tree_matches_kubectl(sb: &Sandbox, src: &impl ArgoSource, name: &str, mode: &str) {
    let app = src
        .get_application(name, shipdeck::sources::Refresh::None)
        .await
        .expect("app");
    let ns = app.spec.destination.namespace.clone().unwrap_or_default();
    let deps: BTreeSet<String> = app
        .status
        .resources
        .iter()
        .filter(|r| r.kind == "Deployment")
        .map(|r| r.name.clone())
        .collect();
    assert!(!deps.is_empty(), "{name} manages no Deployment");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let before = kubectl_edges(sb, &ns, &deps);
        let mut estate = Estate::new();
        let id = AppId::new("argocd", "argocd", name);
        estate.apply(Update::Upsert(id.clone(), Box::new(app.clone())));
        let mut c = Console::new(estate, Settings::default());
        c.push(Box::new(views::application::ApplicationView::new(id)));
        for o in c.take_requests() {
            if let Request::WatchWorkloads { .. } | Request::Workloads { .. } = o.request {
                let ws = src.workloads(&app).await.expect("workloads");
                c.respond(Response {
                    ticket: o.ticket,
                    result: Ok(Payload::Workloads(ws)),
                });
            }
        }
        let lines = screen(&c, 200, 80);
        let after = kubectl_edges(sb, &ns, &deps);
        if before == after && !before.is_empty() {
            let shown = screen_edges(&lines);
            assert_eq!(
                shown,
                before,
                "{mode}: the tree on screen is not kubectl's ownership\n{}",
                lines.join("\n")
            );
            assert!(
                shown.iter().any(|e| e.0 == "Pod"),
                "{mode}: no pods on screen\n{}",
                lines.join("\n")
            );
            // Enter on a pod row opens the rollout, as on its Deployment.
            let rows: Vec<&String> = lines
                .iter()
                .filter(|l| {
                    let l: String = l.chars().take(110).collect();
                    l.contains("Deployment/")
                        || l.contains("ReplicaSet/")
                        || l.contains("Pod/")
                        || l.contains("Service/")
                })
                .collect();
            let pod_row = rows
                .iter()
                .position(|l| l.chars().take(110).collect::<String>().contains("Pod/"))
                .expect("a pod row");
            for _ in 0..pod_row {
                c.key(KeyEvent::new(KeyCode::Char('j'), KeyModifiers::NONE));
            }
            c.key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE));
            assert_eq!(
                c.screen_titles().last().map(|t| t.starts_with("rollout")),
                Some(true),
                "{mode}: Enter on a pod row: {:?}",
                c.screen_titles()
            );
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{mode}: the cluster never held still long enough to compare"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Each pod's first container waiting reason in `ns`, as kubectl has it.
fn kubectl_reasons(sb: &Sandbox, ns: &str) -> std::collections::BTreeMap<String, String> {
    let out = Command::new("kubectl")
        .env("KUBECONFIG", sb.kubeconfig_path())
        .args(["get", "pods", "-n", ns, "-o", "json"])
        .output()
        .expect("kubectl runs");
    let v: Value = serde_json::from_slice(&out.stdout).expect("kubectl json");
    v["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|p| {
            let reason = p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"]
                .as_str()?
                .to_string();
            Some((p["metadata"]["name"].as_str()?.to_string(), reason))
        })
        .collect()
}

/// Names of the ReplicaSets of Deployment `dep` in `ns`, as kubectl lists them.
fn kubectl_replicasets(sb: &Sandbox, ns: &str, dep: &str) -> BTreeSet<String> {
    let deps = BTreeSet::from([dep.to_string()]);
    kubectl_edges(sb, ns, &deps)
        .into_iter()
        .filter(|e| e.0 == "ReplicaSet")
        .map(|e| e.1)
        .collect()
}

/// Start a rollout of `dep` to `image` under the open screen: replace the Deployment with
/// its pod template's first container image changed (kube-rs, as any client would).
async fn set_image(sb: &Sandbox, ns: &str, dep: &str, image: &str) {
    use k8s_openapi::api::apps::v1::Deployment;
    let client = common::kube_default(sb).await;
    let api: kube::Api<Deployment> = kube::Api::namespaced(client, ns);
    let mut d = api.get(dep).await.expect("deployment");
    let c = d
        .spec
        .template
        .spec
        .as_mut()
        .and_then(|p| p.containers.first_mut())
        .expect("a container");
    c.image = Some(image.into());
    api.replace(dep, &Default::default(), &d)
        .await
        .expect("replace deployment");
}

/// With `name`'s app screen open on a console fed by `provider`, a rollout started under it
/// shows up on the screen as kubectl has it: the new ReplicaSet (one that did not exist
/// when the screen opened) with its pods, under the Deployment, beside the old one.
async fn tree_follows_a_rollout(
    sb: &Sandbox,
    src: &(impl shipdeck::ops::freeze::Projects + shipdeck::ops::prune::Annotate + Clone + 'static),
    name: &str,
    mode: &str,
    image: &str,
) {
    let (mut h, watch, _dir) = common::console::headless_over(src);
    let app = src
        .get_application(name, shipdeck::sources::Refresh::None)
        .await
        .expect("app");
    let ns = app.spec.destination.namespace.clone().unwrap_or_default();
    let dep = app
        .status
        .resources
        .iter()
        .find(|r| r.kind == "Deployment")
        .map(|r| r.name.clone())
        .expect("a Deployment");
    let id = AppId::new(src.instance(), "argocd", name);
    // As an operator would: the app is opened once the estate has it (its requests name an
    // app the console knows).
    assert!(
        h.until(Duration::from_secs(30), |c| !c
            .estate
            .find_by_name(name)
            .is_empty())
            .await,
        "{mode}: {name} in the console's estate"
    );
    h.console
        .push(Box::new(views::application::ApplicationView::new(id)));
    let before = kubectl_replicasets(sb, &ns, &dep);
    // The screen shows the tree as it is before the rollout.
    let lines = |h: &shipdeck::tui::app::Headless| -> Vec<String> {
        h.screen(200, 80).lines().map(str::to_string).collect()
    };
    let drawn = h
        .until(Duration::from_secs(30), |c| {
            let text = screen(c, 200, 80);
            screen_edges(&text)
                .iter()
                .any(|e| e.0 == "ReplicaSet" && before.contains(&e.1))
        })
        .await;
    assert!(
        drawn,
        "{mode}: the tree before the rollout\n{}",
        lines(&h).join("\n")
    );

    common::http()
        .post(format!("{}/_sandbox/image-fault", sb.url))
        .json(&serde_json::json!({"image": image, "mode": "ImagePullBackOff"}))
        .send()
        .await
        .expect("image fault")
        .error_for_status()
        .expect("image fault set");
    set_image(sb, &ns, &dep, image).await;

    // No key is pressed: the screen follows the cluster until it draws kubectl's tree,
    // with a ReplicaSet that did not exist before (the new one) and an old one beside it.
    let deps = BTreeSet::from([dep.clone()]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        h.step(Duration::from_millis(50)).await;
        let k1 = kubectl_edges(sb, &ns, &deps);
        let shown = screen_edges(&lines(&h));
        let k2 = kubectl_edges(sb, &ns, &deps);
        let new_rs: Vec<&String> = k1
            .iter()
            .filter(|e| e.0 == "ReplicaSet" && !before.contains(&e.1))
            .map(|e| &e.1)
            .collect();
        let new_has_pod = k1.iter().any(|e| e.0 == "Pod" && new_rs.contains(&&e.3));
        let old_still = k1
            .iter()
            .any(|e| e.0 == "ReplicaSet" && before.contains(&e.1));
        // The new pods' status follows too: each new pod's row shows the waiting reason
        // kubectl reports for it (ContainerCreating, ErrImagePull, ImagePullBackOff).
        let reasons = kubectl_reasons(sb, &ns);
        // Wider than the tree comparison, so a pod row's note is not cut at the pane.
        let screen_now: Vec<String> = h.screen(260, 80).lines().map(str::to_string).collect();
        let reason = k1
            .iter()
            .filter(|e| e.0 == "Pod" && new_rs.contains(&&e.3))
            .all(|e| match reasons.get(&e.1) {
                Some(r) => screen_now
                    .iter()
                    .any(|l| l.contains(&format!("Pod/{}", e.1)) && l.contains(r.as_str())),
                None => true,
            })
            && reasons == kubectl_reasons(sb, &ns);
        let last_rows = screen_now
            .iter()
            .filter(|l| l.contains("Pod/"))
            .cloned()
            .collect::<Vec<_>>()
            .join("\n");
        let last_reasons = format!("{reasons:?}");
        if k1 == k2 && shown == k1 && new_has_pod && old_still && reason {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{mode}: the screen never drew the rollout's new ReplicaSet as kubectl has it\n\
             kubectl: {k1:?}\nscreen: {shown:?}\nkubectl's waiting reasons: {last_reasons}\nwide rows:\n{last_rows}\n{}",
            lines(&h).join("\n")
        );
    }
    watch.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_screen_tree_is_kubectls_ownership_in_api_and_core_mode() {
    if !kubectl_available() {
        println!("SKIP app_tree: kubectl is not on PATH");
        return;
    }
    let sb = sandbox_scaled(0.1).await;
    let api = common::argo_admin(&sb);
    tree_matches_kubectl(&sb, &api, "cart-dev", "API mode").await;
    let cache = tempfile::tempdir().expect("tempdir");
    let core = common::core_admin(&sb, cache.path()).await;
    tree_matches_kubectl(&sb, &core, "cart-dev", "core mode").await;

    // Live: a rollout under the open screen, in each mode on an app without auto-sync
    // (self-heal would undo the change).
    tree_follows_a_rollout(
        &sb,
        &api,
        "cart-prod",
        "API mode",
        "ghcr.io/acme/cart:no-such-1",
    )
    .await;
    tree_follows_a_rollout(
        &sb,
        &core,
        "checkout-prod",
        "core mode",
        "ghcr.io/acme/checkout:no-such-2",
    )
    .await;
}
