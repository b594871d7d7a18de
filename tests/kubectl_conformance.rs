//! The real kubectl against the sandbox: discovery, printer columns, JSON output, a
//! streaming `get -w`, merge and JSON patches, and `auth can-i` for the viewer. Skipped
//! (with a SKIP line) when kubectl is not on PATH. Each run uses a fresh discovery cache.

use serde_json::{Value, json};
use shipdeck::sandbox::Sandbox;
use shipdeck::sandbox::auth::Role;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

mod common;

fn kubectl_available() -> bool {
    Command::new("kubectl")
        .args(["version", "--client"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

struct Kubectl {
    kubeconfig: std::path::PathBuf,
    cache: tempfile::TempDir,
}

impl Kubectl {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("kubectl");
        c.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.cache.path())
            .args(args)
            .env_remove("KUBECONFIG");
        c
    }

    /// Run to completion off the async runtime; (success, stdout, stderr).
    async fn run(&self, args: &[&str]) -> (bool, String, String) {
        let mut c = self.cmd(args);
        let out = tokio::task::spawn_blocking(move || c.output())
            .await
            .unwrap()
            .expect("kubectl runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    async fn ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.run(args).await;
        assert!(ok, "kubectl {args:?} failed: {err}");
        out
    }
}

async fn post(sb: &Sandbox, path: &str, body: Value) {
    let r = reqwest::Client::new()
        .post(format!("{}{path}", sb.url))
        .bearer_auth(sb.world.users.token(Role::Admin))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "seeding {path}: {}", r.status());
}

fn app(name: &str, env: &str, sync: &str) -> Value {
    json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": name, "namespace": "conformance", "labels": {"env": env}},
        "spec": {"project": "default", "destination": {"server": "https://kubernetes.default.svc", "namespace": "web"}},
        "status": {"sync": {"status": sync}, "health": {"status": "Healthy"}}})
}

fn pod(name: &str) -> Value {
    json!({"metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": "web:1"}]},
        "status": {"phase": "Running", "containerStatuses": [{"name": "web", "ready": true, "restartCount": 0, "state": {"running": {}}}]}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_works_against_the_sandbox() {
    if !kubectl_available() {
        println!("SKIP kubectl_conformance: kubectl is not on PATH");
        return;
    }
    let sb = common::sandbox().await;
    let k = Kubectl {
        kubeconfig: sb.kubeconfig_path(),
        cache: tempfile::tempdir().unwrap(),
    };
    let apps = "/apis/argoproj.io/v1alpha1/namespaces/conformance/applications";
    post(&sb, apps, app("web-dev", "dev", "Synced")).await;
    post(&sb, apps, app("web-prod", "prod", "OutOfSync")).await;
    post(&sb, "/api/v1/namespaces/conformance/pods", pod("web-1")).await;

    let out = k.ok(&["get", "applications", "-A"]).await;
    let header = out.lines().next().unwrap_or("");
    assert!(
        header.contains("SYNC STATUS") && header.contains("HEALTH STATUS"),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.contains("web-prod") && l.contains("OutOfSync")),
        "{out}"
    );

    let out = k.ok(&["get", "pods", "-A"]).await;
    assert!(out.lines().next().unwrap_or("").contains("READY"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.contains("web-1") && l.contains("1/1") && l.contains("Running")),
        "{out}"
    );

    let out = k.ok(&["get", "deploy", "-A", "-o", "json"]).await;
    let v: Value = serde_json::from_str(&out).expect("kubectl -o json parses");
    assert!(v["items"].is_array());

    // `get -w` streams a change made after it started.
    let mut child = k
        .cmd(&["get", "pods", "-n", "conformance", "-w"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut next_line = async || {
        tokio::time::timeout_at(deadline, rx.recv())
            .await
            .expect("kubectl -w line in time")
            .expect("kubectl -w still running")
    };
    // The initial list shows web-1; then a pod created now must appear.
    while !next_line().await.contains("web-1") {}
    post(&sb, "/api/v1/namespaces/conformance/pods", pod("web-2")).await;
    while !next_line().await.contains("web-2") {}
    let _ = child.kill();
    let _ = child.wait();

    k.ok(&[
        "patch",
        "application",
        "web-dev",
        "-n",
        "conformance",
        "--type",
        "merge",
        "-p",
        r#"{"metadata":{"annotations":{"merged":"yes"}}}"#,
    ])
    .await;
    k.ok(&[
        "patch",
        "application",
        "web-dev",
        "-n",
        "conformance",
        "--type",
        "json",
        "-p",
        r#"[{"op":"add","path":"/metadata/annotations/jsonpatched","value":"yes"}]"#,
    ])
    .await;
    let out = k
        .ok(&[
            "get",
            "application",
            "web-dev",
            "-n",
            "conformance",
            "-o",
            "json",
        ])
        .await;
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["metadata"]["annotations"]["merged"], "yes");
    assert_eq!(v["metadata"]["annotations"]["jsonpatched"], "yes");

    // RBAC as kubectl sees it.
    let (ok, out, _) = k
        .run(&[
            "--context",
            "viewer@in-cluster",
            "auth",
            "can-i",
            "patch",
            "applications",
            "-n",
            "conformance",
        ])
        .await;
    assert!(!ok && out.trim_start().starts_with("no"), "{out}");
    let (ok, out, _) = k
        .run(&[
            "--context",
            "viewer@in-cluster",
            "auth",
            "can-i",
            "list",
            "applications",
            "-n",
            "conformance",
        ])
        .await;
    assert!(ok && out.trim_start().starts_with("yes"), "{out}");
    let (ok, _, err) = k
        .run(&[
            "--context",
            "viewer@in-cluster",
            "patch",
            "application",
            "web-dev",
            "-n",
            "conformance",
            "--type",
            "merge",
            "-p",
            "{}",
        ])
        .await;
    assert!(!ok && err.contains("forbidden"), "{err}");
    let (ok, _, err) = k
        .run(&[
            "--context",
            "deployer@in-cluster",
            "patch",
            "application",
            "web-prod",
            "-n",
            "conformance",
            "--type",
            "merge",
            "-p",
            r#"{"metadata":{"annotations":{"x":"y"}}}"#,
        ])
        .await;
    assert!(!ok && err.contains("forbidden"), "{err}");
    k.ok(&[
        "--context",
        "deployer@in-cluster",
        "patch",
        "application",
        "web-dev",
        "-n",
        "conformance",
        "--type",
        "merge",
        "-p",
        r#"{"metadata":{"annotations":{"x":"y"}}}"#,
    ])
    .await;

    assert!(Path::new(&sb.kubeconfig_path()).exists());
    sb.stop().await;
}

/// The issue's proof with the real kubectl on the default estate: printer columns on the
/// estate's Applications, then `.operation` patched by hand (as Argo CD's docs show) runs to
/// `Succeeded`, and `kubectl rollout status` follows the resulting rollout to the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_patches_an_operation_and_follows_the_rollout() {
    if !kubectl_available() {
        println!("SKIP kubectl_conformance: kubectl is not on PATH");
        return;
    }
    let sb = common::sandbox_scaled(0.05).await;
    let k = Kubectl {
        kubeconfig: sb.kubeconfig_path(),
        cache: tempfile::tempdir().unwrap(),
    };
    let table = k.ok(&["get", "applications", "-A"]).await;
    let header = table.lines().next().unwrap_or_default();
    assert!(
        header.contains("SYNC STATUS") && header.contains("HEALTH STATUS"),
        "{table}"
    );
    let pending = table
        .lines()
        .find(|l| l.contains("cart-prod"))
        .unwrap_or_else(|| panic!("cart-prod listed: {table}"));
    assert!(pending.contains("OutOfSync"), "cart-prod waits: {pending}");

    let before = k
        .ok(&[
            "get",
            "deployment",
            "cart",
            "-n",
            "shop",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}",
        ])
        .await;
    k.ok(&[
        "patch",
        "application",
        "cart-prod",
        "-n",
        "argocd",
        "--type",
        "merge",
        "-p",
        r#"{"operation":{"initiatedBy":{"username":"kubectl-user"},"sync":{"syncStrategy":{"hook":{}}}}}"#,
    ])
    .await;
    // Wait until the sync has applied the new template, so rollout status has a real
    // rollout to follow (not the finished one from before).
    {
        let (k, before) = (&k, &before);
        common::wait_ok(
            &format!("the sync to change the Deployment from {before}"),
            Duration::from_secs(60),
            move || async move {
                let now = k
                    .ok(&[
                        "get",
                        "deployment",
                        "cart",
                        "-n",
                        "shop",
                        "-o",
                        "jsonpath={.spec.template.spec.containers[0].image}",
                    ])
                    .await;
                if now != *before {
                    Ok(())
                } else {
                    Err(format!("image still {now}"))
                }
            },
        )
        .await;
    }
    // rollout status waits for the new ReplicaSet to become available, re-watching as
    // kubectl does; it must end by itself with success.
    let rollout = k
        .ok(&[
            "rollout",
            "status",
            "deployment/cart",
            "-n",
            "shop",
            "--timeout=120s",
        ])
        .await;
    println!("kubectl rollout status:\n{rollout}");
    assert!(rollout.contains("successfully rolled out"), "{rollout}");

    {
        let k = &k;
        common::wait_ok(
            "the operation to finish as Succeeded Synced kubectl-user",
            Duration::from_secs(60),
            move || async move {
                let phase = k
                    .ok(&[
                        "get",
                        "application",
                        "cart-prod",
                        "-n",
                        "argocd",
                        "-o",
                        "jsonpath={.status.operationState.phase} {.status.sync.status} {.status.history[-1:].initiatedBy.username}",
                    ])
                    .await;
                if phase.trim() == "Succeeded Synced kubectl-user" {
                    Ok(())
                } else {
                    Err(format!("operation: {phase}"))
                }
            },
        )
        .await;
    }
    let images = k
        .ok(&[
            "get",
            "deployment",
            "cart",
            "-n",
            "shop",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}",
        ])
        .await;
    let target = sb
        .world
        .store
        .get(
            shipdeck::sandbox::IN_CLUSTER,
            shipdeck::sandbox::store::APPLICATIONS,
            "argocd",
            "cart-prod",
        )
        .unwrap();
    assert!(
        target["status"]["summary"]["images"]
            .as_array()
            .is_some_and(|i| i.iter().any(|x| x.as_str() == Some(images.trim()))),
        "live image {images} is the synced one: {}",
        target["status"]["summary"]
    );
    sb.stop().await;
}
