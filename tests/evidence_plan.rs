//! `shipdeck plan` and `shipdeck history` end to end: the real binary against a sandbox
//! started in-process, in API and core mode. The oracle is the sandbox's own state: its
//! GitHub Actions API (reqwest), its Git repository (`git`), and Kubernetes (kube-rs).

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use tempfile::TempDir;

mod common;

struct World {
    _sandbox: shipdeck::sandbox::Sandbox,
    vars: BTreeMap<String, String>,
    kube: kube::Client,
    home: TempDir,
}

fn parse_env(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            let v = v.trim();
            let v = v
                .strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .unwrap_or(v);
            (k.to_string(), v.replace(r"'\''", "'"))
        })
        .collect()
}

async fn start() -> World {
    let sandbox = common::sandbox().await;
    let text = std::fs::read_to_string(sandbox.env_path()).expect("env file");
    let kube = common::kube_default(&sandbox).await;
    World {
        vars: parse_env(&text),
        _sandbox: sandbox,
        kube,
        home: tempfile::tempdir().expect("tmp"),
    }
}

impl World {
    fn var(&self, k: &str) -> String {
        self.vars.get(k).cloned().unwrap_or_default()
    }

    async fn run(&self, core: bool, args: &[&str]) -> (i32, String, String) {
        let bin = std::env::var_os("SHIPDECK_E2E_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_shipdeck")));
        let mut cmd = tokio::process::Command::new(bin);
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.home.path())
            .env("XDG_CONFIG_HOME", self.home.path().join("config"))
            .env("XDG_CACHE_HOME", self.home.path().join("cache"))
            .env("SHIPDECK_DATA_DIR", self.home.path().join("data"))
            .env("USER", "e2e-operator")
            .env("GITHUB_API_URL", self.var("GITHUB_API_URL"))
            .env("GITHUB_TOKEN", self.var("GITHUB_TOKEN"))
            .env("GITHUB_REPOSITORY", "acme/shop-gitops")
            .kill_on_drop(true);
        let mut all: Vec<&str> = args.to_vec();
        if core {
            cmd.env("KUBECONFIG", self.var("KUBECONFIG"));
            all.push("--core");
        } else {
            cmd.env("ARGOCD_SERVER", self.var("ARGOCD_SERVER"))
                .env("ARGOCD_AUTH_TOKEN", self.var("ARGOCD_AUTH_TOKEN"));
        }
        cmd.args(&all);
        let out = tokio::time::timeout(Duration::from_secs(90), cmd.output())
            .await
            .unwrap_or_else(|_| panic!("shipdeck {all:?} hung"))
            .expect("shipdeck runs");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `git show REV:PATH` in the sandbox's repository.
    fn git_show(&self, spec: &str) -> String {
        let out = std::process::Command::new("git")
            .args(["-C", &self.var("SHIPDECK_SANDBOX_REPO"), "show", spec])
            .output()
            .expect("git runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Container images in the Deployment file at `rev` (the oracle's own reading).
    fn images_in_git(&self, rev: &str, path: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .git_show(&format!("{rev}:{path}"))
            .lines()
            .filter_map(|l| l.trim().strip_prefix("image: "))
            .map(|s| s.trim().trim_matches('"').to_string())
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// Every workflow run the sandbox's GitHub API lists.
    async fn runs(&self) -> Vec<Value> {
        let mut out = Vec::new();
        for page in 1..=10 {
            let url = format!(
                "{}/repos/acme/shop-gitops/actions/runs?per_page=100&page={page}",
                self.var("GITHUB_API_URL")
            );
            let v: Value = common::http()
                .get(url)
                .bearer_auth(self.var("GITHUB_TOKEN"))
                .header("User-Agent", "evidence-test")
                .send()
                .await
                .expect("GitHub API answers")
                .json()
                .await
                .expect("JSON");
            let runs = v["workflow_runs"].as_array().cloned().unwrap_or_default();
            if runs.is_empty() {
                break;
            }
            out.extend(runs);
        }
        out
    }

    async fn deployment_image(&self, ns: &str, name: &str) -> String {
        let api: kube::Api<k8s_openapi::api::apps::v1::Deployment> =
            kube::Api::namespaced(self.kube.clone(), ns);
        let d = api.get(name).await.expect("deployment");
        d.spec
            .template
            .spec
            .and_then(|s| s.containers.first().and_then(|c| c.image.clone()))
            .unwrap_or_default()
    }

    async fn application(&self, name: &str) -> Value {
        let ar = kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
            "argoproj.io",
            "v1alpha1",
            "Application",
        ));
        let api: kube::Api<kube::api::DynamicObject> =
            kube::Api::namespaced_with(self.kube.clone(), "argocd", &ar);
        serde_json::to_value(api.get(name).await.expect("application")).expect("json")
    }
}

fn tag_sha(image: &str) -> String {
    image.rsplit('-').next().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_shows_one_proven_and_one_unproven_prod_change() {
    let w = start().await;
    for core in [false, true] {
        // checkout-prod: its pending image was built by a successful run and runs Healthy
        // in staging.
        let (code, out, err) = w.run(core, &["plan", "checkout-prod", "-o", "json"]).await;
        let p: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out} {err}"));
        let target = w.images_in_git("main", "apps/checkout/prod/deployment.yaml");
        assert_eq!(target.len(), 1, "{target:?}");
        let image = &target[0];
        assert_eq!(p["images"], serde_json::json!([image]), "{p:#}");
        let runs = w.runs().await;
        let built: Vec<&Value> = runs
            .iter()
            .filter(|r| {
                r["head_sha"]
                    .as_str()
                    .is_some_and(|s| s.starts_with(&tag_sha(image)))
                    && r["conclusion"] == "success"
            })
            .collect();
        assert_eq!(built.len(), 1, "the oracle's run of {image}");
        assert_eq!(p["build"]["run"]["id"], built[0]["id"], "{p:#}");
        assert_eq!(p["build"]["run"]["state"], "succeeded");
        assert_eq!(p["build"]["run"]["linked_by"], "image-tag");
        assert_eq!(
            w.deployment_image("shop-staging", "checkout").await,
            *image,
            "staging runs the image (kube)"
        );
        let staging = w.application("checkout-staging").await;
        assert_eq!(staging["status"]["health"]["status"], "Healthy");
        assert_eq!(p["before"]["state"], "runs", "{p:#}");
        assert_eq!(p["before"]["environment"], "staging");
        assert_eq!(p["before"]["health"], "Healthy");
        assert_eq!(p["proven"], true);
        assert_eq!(code, 0, "{err}");
        // The bump commit is listed among the commits (not taken for the build).
        assert!(
            p["commits"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c["subject"]
                    .as_str()
                    .is_some_and(|s| s.contains(&tag_sha(image))))),
            "{p:#}"
        );

        // cart-prod: built, but staging never ran its image.
        let (code, out, err) = w.run(core, &["plan", "cart-prod", "-o", "json"]).await;
        let p: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out} {err}"));
        let target = w.images_in_git("main", "apps/cart/prod/deployment.yaml");
        let image = &target[0];
        assert_ne!(w.deployment_image("shop-staging", "cart").await, *image);
        let staging = w.application("cart-staging").await;
        for h in staging["status"]["history"].as_array().expect("history") {
            let rev = h["revision"].as_str().expect("revision");
            let imgs = w.images_in_git(rev, "apps/cart/staging/deployment.yaml");
            assert!(!imgs.is_empty(), "manifests at {rev}");
            assert!(!imgs.contains(image), "staging ran {image} at {rev}");
        }
        assert_eq!(p["before"]["state"], "never-ran", "{p:#}");
        assert_eq!(p["proven"], false);
        assert_eq!(code, 1, "not proven exits 1: {err}");

        // The table says the same in words.
        let (_, text, _) = w.run(core, &["plan", "checkout-prod"]).await;
        assert!(text.contains("built by build.yml run #"), "{text}");
        assert!(text.contains("staging runs sha-"), "{text}");
        let (_, text, _) = w.run(core, &["plan", "cart-prod"]).await;
        assert!(text.contains("staging never ran this image"), "{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_lists_the_images_each_deployment_ran() {
    let w = start().await;
    for core in [false, true] {
        let (code, out, err) = w.run(core, &["history", "cart-prod", "-o", "json"]).await;
        assert_eq!(code, 0, "{err}");
        let rows: Vec<Value> = serde_json::from_str(&out).expect("json");
        assert!(rows.len() >= 2, "{rows:?}");
        for r in &rows {
            let rev = r["revision"].as_str().expect("revision");
            let oracle = w.images_in_git(rev, "apps/cart/prod/deployment.yaml");
            assert!(!oracle.is_empty());
            assert_eq!(r["images"], serde_json::json!(oracle), "row {r}");
        }
        // The newest entry's images are what runs (kube).
        assert_eq!(
            rows[0]["images"],
            serde_json::json!([w.deployment_image("shop", "cart").await])
        );
        let (_, table, _) = w.run(core, &["history", "cart-prod"]).await;
        assert!(table.lines().next().is_some_and(|h| h.contains("IMAGES")));
        let first_image = rows[1]["images"][0].as_str().expect("image");
        assert!(table.contains(first_image), "{table}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_build_is_linked_through_its_bump_commit() {
    let w = start().await;
    let api = format!("{}/repos/acme/shop-gitops/actions", w.var("GITHUB_API_URL"));
    let r: Value = common::http()
        .post(format!("{api}/workflows/build.yml/dispatches"))
        .bearer_auth(w.var("GITHUB_TOKEN"))
        .header("User-Agent", "evidence-test")
        .header("X-GitHub-Api-Version", "2026-03-10")
        .json(&serde_json::json!({"ref": "develop", "inputs": {"service": "catalog"}}))
        .send()
        .await
        .expect("dispatch")
        .json()
        .await
        .expect("json");
    let id = r["workflow_run_id"].as_u64().expect("run id");
    let run = common::wait_for("the build completes", || async {
        let v: Value = common::http()
            .get(format!("{api}/runs/{id}"))
            .bearer_auth(w.var("GITHUB_TOKEN"))
            .header("User-Agent", "evidence-test")
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (v["status"] == "completed").then_some(v)
    })
    .await;
    assert_eq!(run["conclusion"], "success", "{run}");
    // Oracle: the bump commit on main names the run and the commit it built.
    let out = std::process::Command::new("git")
        .args([
            "-C",
            &w.var("SHIPDECK_SANDBOX_REPO"),
            "log",
            "-1",
            "--format=%B",
            "main",
        ])
        .output()
        .expect("git");
    let msg = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(msg.contains(&format!("({id})")), "{msg}");
    assert!(
        msg.contains(&format!(
            "Source-Commit: {}",
            run["head_sha"].as_str().unwrap_or("?")
        )),
        "{msg}"
    );
    let p: Value = common::wait_for("catalog-prod has the new change", || async {
        let (_, out, _) = w.run(false, &["plan", "catalog-prod", "-o", "json"]).await;
        let p: Value = serde_json::from_str(&out).ok()?;
        (!p["images"].as_array()?.is_empty()).then_some(p)
    })
    .await;
    assert_eq!(p["build"]["run"]["id"].as_u64(), Some(id), "{p:#}");
}
