//! `shipdeck promote` end to end: the real binary against a sandbox started in-process
//! (demo estate), API mode. Oracles: `git` in the sandbox's repository (the commit, its
//! exact change, that nothing landed when it should not), the Applications as the
//! Kubernetes API serves them (kube-rs), and the audit log file. A rejected push is tested
//! both ways: refused by the remote (a pre-receive hook, as a protected branch) through the
//! binary, and "someone pushed first" through `ops::promote` between prepare and push.

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use tempfile::TempDir;

mod common;

struct World {
    sandbox: shipdeck::sandbox::Sandbox,
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

impl World {
    async fn start() -> World {
        let sandbox = common::sandbox().await;
        let text = std::fs::read_to_string(sandbox.env_path()).expect("env file");
        let kube = common::kube_default(&sandbox).await;
        World {
            vars: parse_env(&text),
            sandbox,
            kube,
            home: tempfile::tempdir().expect("tmp"),
        }
    }

    fn var(&self, k: &str) -> String {
        self.vars.get(k).cloned().unwrap_or_default()
    }

    fn repo(&self) -> PathBuf {
        PathBuf::from(self.var("SHIPDECK_SANDBOX_REPO"))
    }

    async fn run(&self, args: &[&str]) -> (i32, String, String) {
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
            .env("ARGOCD_SERVER", self.var("ARGOCD_SERVER"))
            .env("ARGOCD_AUTH_TOKEN", self.var("ARGOCD_AUTH_TOKEN"))
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .args(args);
        let out = tokio::time::timeout(Duration::from_secs(90), cmd.output())
            .await
            .unwrap_or_else(|_| panic!("shipdeck {args:?} hung"))
            .expect("shipdeck runs");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn git(&self, args: &[&str]) -> String {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(self.repo())
            .args(args)
            .output()
            .expect("git runs");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
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

    async fn images(&self, name: &str) -> Vec<String> {
        let a = self.application(name).await;
        let mut v: Vec<String> = a["status"]["summary"]["images"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|i| i.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    fn audit(&self) -> Vec<Value> {
        std::fs::read_to_string(self.home.path().join("data").join("audit.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .filter(|v: &Value| v["action"] == "promote")
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promote_staging_to_prod_commits_pushes_and_the_plan_shows_it() {
    let w = World::start().await;
    let head = w.git(&["rev-parse", "main"]);

    // Not Healthy in the environment before: payments-prod is Degraded (ImagePullBackOff).
    let (code, _, err) = w
        .run(&[
            "promote", "payments", "--from", "prod", "--to", "staging", "--yes",
        ])
        .await;
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("is Degraded, not Healthy"), "{err}");
    assert_eq!(
        w.application("payments-prod").await["status"]["health"]["status"],
        "Degraded"
    );
    // Already running: cart-prod runs what cart-staging runs.
    let cart = w.images("cart-staging").await;
    assert_eq!(cart, w.images("cart-prod").await, "the oracle agrees");
    let (code, _, err) = w.run(&["promote", "cart", "--to", "prod", "--yes"]).await;
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("already runs"), "{err}");

    // No terminal and no --yes: the diff is shown, nothing is pushed.
    let staging = w.images("frontend-staging").await;
    let prod = w.images("frontend-prod").await;
    assert_eq!(staging.len(), 1);
    assert_ne!(
        staging, prod,
        "the demo's frontend differs between staging and prod"
    );
    let (code, _, err) = w.run(&["promote", "frontend", "--to", "prod"]).await;
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("needs confirmation"), "{err}");
    assert!(
        err.contains(&format!("+        image: {}", staging[0])),
        "{err}"
    );
    assert_eq!(w.git(&["rev-parse", "main"]), head, "nothing was pushed");

    // The remote refuses (a protected branch): exit 4, nothing lands, and a rerun is clean.
    let hook = w.repo().join(".git/hooks/pre-receive");
    std::fs::write(
        &hook,
        "#!/bin/sh\necho 'permission denied: main is a protected branch' >&2\nexit 1\n",
    )
    .expect("hook");
    let mut perm = std::fs::metadata(&hook).expect("meta").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
    std::fs::set_permissions(&hook, perm).expect("chmod");
    let (code, _, err) = w
        .run(&["promote", "frontend", "--to", "prod", "--yes"])
        .await;
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("no permission to push"), "{err}");
    assert!(err.contains("nothing was pushed"), "{err}");
    assert_eq!(
        w.git(&["rev-parse", "main"]),
        head,
        "the remote did not move"
    );
    std::fs::remove_file(&hook).expect("unhook");

    // Confirmed: one commit on main, by the operator, changing exactly the image line.
    let (code, out, err) = w
        .run(&["promote", "frontend", "--to", "prod", "--yes", "-o", "json"])
        .await;
    assert_eq!(code, 0, "{out}\n{err}");
    let result: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let sha = w.git(&["rev-parse", "main"]);
    assert_eq!(result["commit"], sha.as_str());
    assert_eq!(w.git(&["rev-parse", "main~1"]), head, "one commit on top");
    assert_eq!(
        w.git(&["log", "-1", "--format=%s", "main"]),
        format!(
            "promote frontend {} from staging to prod",
            staging[0].rsplit_once(':').expect("tag").1
        )
    );
    let body = w.git(&["log", "-1", "--format=%b", "main"]);
    assert!(body.contains("Shipdeck-Promoted-From: staging"), "{body}");
    assert!(
        body.contains(&format!("Shipdeck-Image: {}", staging[0])),
        "{body}"
    );
    let staging_rev = w.application("frontend-staging").await["status"]["history"]
        .as_array()
        .and_then(|h| h.last().cloned())
        .map(|h| h["revision"].as_str().unwrap_or_default().to_string())
        .unwrap_or_default();
    assert!(
        body.contains(&format!("Shipdeck-Source-Revision: {staging_rev}")),
        "{body}"
    );
    assert_eq!(
        w.git(&["diff", "--name-only", "main~1", "main"]),
        "apps/frontend/prod/deployment.yaml"
    );
    let diff = w.git(&["diff", "-U0", "main~1", "main"]);
    let changed: Vec<&str> = diff
        .lines()
        .filter(|l| {
            (l.starts_with('+') || l.starts_with('-'))
                && !l.starts_with("+++")
                && !l.starts_with("---")
        })
        .collect();
    assert_eq!(
        changed,
        vec![
            format!("-        image: {}", prod[0]).as_str(),
            format!("+        image: {}", staging[0]).as_str()
        ],
        "{diff}"
    );
    // Argo CD notices: frontend-prod is OutOfSync at the promotion commit.
    common::wait_ok(
        "frontend-prod OutOfSync at the promotion",
        Duration::from_secs(60),
        || {
            let w = &w;
            let sha = sha.clone();
            async move {
                let a = w.application("frontend-prod").await;
                if a["status"]["sync"]["status"] == "OutOfSync"
                    && a["status"]["sync"]["revision"] == sha.as_str()
                {
                    Ok(())
                } else {
                    Err(format!("{}", a["status"]["sync"]))
                }
            }
        },
    )
    .await;
    // The plan (what the approval screen shows) carries the promotion as evidence.
    let (_, out, err) = w.run(&["plan", "frontend-prod", "-o", "json"]).await;
    let p: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out} {err}"));
    assert_eq!(p["images"], serde_json::json!([staging[0]]), "{p:#}");
    assert_eq!(p["promotion"]["from"], "staging", "{p:#}");
    assert_eq!(p["promotion"]["commit"], sha.as_str());
    assert_eq!(p["promotion"]["images"], serde_json::json!([staging[0]]));
    let since = p["promotion"]["healthy_since"].as_str().unwrap_or_default();
    assert!(!since.is_empty(), "{p:#}");
    let (_, text, _) = w.run(&["plan", "frontend-prod"]).await;
    assert!(
        text.contains("promoted from staging by ")
            && text.contains(&format!("where it has run Healthy since {since}")),
        "{text}"
    );
    // Audited: refused, refused, refused, failed (the hook), started, succeeded.
    let audit = w.audit();
    let outcomes: Vec<&str> = audit.iter().filter_map(|r| r["outcome"].as_str()).collect();
    assert_eq!(
        outcomes,
        vec![
            "refused",
            "refused",
            "refused",
            "started",
            "failed",
            "started",
            "succeeded"
        ],
        "{audit:#?}"
    );
    let author = w.git(&["log", "-1", "--format=%an", "main"]);
    assert_eq!(
        audit.last().map(|r| r["who"].clone()),
        Some(Value::from(author))
    );

    // Someone pushes first, between the commit and its push: rejected, nothing left behind.
    someone_pushed_first(&w).await;
}

async fn someone_pushed_first(w: &World) {
    use shipdeck::ops::promote;
    let staging = w.images("notifications-staging").await;
    let sel = promote::Selection {
        service: "notifications".into(),
        from_env: "staging".into(),
        to_env: "prod".into(),
        source_app: shipdeck::model::AppId::new("sb", "argocd", "notifications-staging"),
        target_app: shipdeck::model::AppId::new("sb", "argocd", "notifications-prod"),
        images: staging.clone(),
        source_images: staging.clone(),
        healthy_since: None,
        source_revision: None,
        repo_url: format!("file://{}", w.repo().display()),
        branch: "main".into(),
        path: "apps/notifications/prod".into(),
        value_files: vec![],
    };
    let ops = shipdeck::ops::actions::Ops {
        operator: "Ana".into(),
        read_only: false,
        policies: Default::default(),
        classifier: Default::default(),
        audit: shipdeck::ops::audit::AuditLog::in_dir(&w.home.path().join("data2")),
    };
    let mirrors = shipdeck::sources::git::GitMirrors::new(w.home.path().join("c2").join("mirrors"));
    let p = promote::prepare(&mirrors, &ops, sel)
        .await
        .expect("prepared");
    let theirs = w
        .sandbox
        .world
        .repo
        .commit_files(
            "main",
            &[("README.md".into(), "someone else was faster\n".into())],
            "docs: faster",
            "Bob",
        )
        .expect("their commit");
    let e = promote::push(&ops, &p).await.expect_err("rejected");
    assert!(matches!(e, promote::PromoteError::Failed(_)), "{e}");
    assert!(
        e.to_string().contains("someone pushed to main first"),
        "{e}"
    );
    assert_eq!(w.git(&["rev-parse", "main"]), theirs, "their commit stays");
    let there = std::process::Command::new("git")
        .arg("-C")
        .arg(w.repo())
        .args(["cat-file", "-e", &format!("{}^{{commit}}", p.commit)])
        .stderr(std::process::Stdio::null())
        .status()
        .expect("git");
    assert!(
        !there.success(),
        "the promotion commit never reached the remote"
    );
    let local = std::process::Command::new("git")
        .arg("-C")
        .arg(&p.clone.dir)
        .args(["rev-parse", "HEAD"])
        .output()
        .expect("git");
    assert_eq!(
        String::from_utf8_lossy(&local.stdout).trim(),
        p.parent,
        "the working clone is back at the remote branch"
    );
}
