//! The real `shipdeck` binary against a sandbox started in the test, with only what a user
//! would have (a kubeconfig for core mode, an Argo CD server and token for API mode), and a
//! kube-rs client on the sandbox's Kubernetes API as the independent oracle.

#![allow(dead_code)]

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::Value;
use shipdeck::sandbox::{Sandbox, SandboxOptions};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use tempfile::TempDir;

pub struct World {
    pub sandbox: Sandbox,
    pub vars: BTreeMap<String, String>,
    pub data: TempDir,
    pub home: TempDir,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    Core,
    Api,
}

pub const MODES: [Mode; 2] = [Mode::Core, Mode::Api];

pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// `export K='v'` lines of the sandbox's env file.
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

pub async fn start() -> World {
    start_estate("default").await
}

/// [`start`] over another built-in estate.
pub async fn start_estate(estate: &str) -> World {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sandbox = Sandbox::start(SandboxOptions {
        time_scale: 0.02,
        estate: estate.to_string(),
        ..Default::default()
    })
    .await
    .expect("sandbox starts");
    let text = std::fs::read_to_string(sandbox.env_path()).expect("env file");
    World {
        vars: parse_env(&text),
        sandbox,
        data: tempfile::tempdir().expect("tmp"),
        home: tempfile::tempdir().expect("tmp"),
    }
}

fn apps_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "argoproj.io",
        "v1alpha1",
        "Application",
    ))
}

impl World {
    pub fn var(&self, k: &str) -> String {
        self.vars.get(k).cloned().unwrap_or_default()
    }

    pub async fn run(&self, mode: Mode, args: &[&str]) -> Out {
        self.run_with(mode, args, &[]).await
    }

    pub async fn run_with(&self, mode: Mode, args: &[&str], extra: &[(&str, String)]) -> Out {
        let bin = PathBuf::from(env!("CARGO_BIN_EXE_shipdeck"));
        let mut cmd = tokio::process::Command::new(bin);
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.home.path())
            .env("XDG_CONFIG_HOME", self.home.path().join("config"))
            .env("XDG_CACHE_HOME", self.home.path().join("cache"))
            .env("XDG_DATA_HOME", self.home.path().join("data"))
            .env("SHIPDECK_DATA_DIR", self.data.path())
            .env("USER", "fail-closed")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        let mut all: Vec<&str> = args.to_vec();
        match mode {
            Mode::Core => {
                cmd.env("KUBECONFIG", self.var("KUBECONFIG"));
                all.push("--core");
            }
            Mode::Api => {
                cmd.env("ARGOCD_SERVER", self.var("ARGOCD_SERVER"))
                    .env("ARGOCD_AUTH_TOKEN", self.var("ARGOCD_AUTH_TOKEN"));
            }
        }
        for (k, v) in extra {
            cmd.env(k, v);
        }
        cmd.args(&all);
        let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
            .await
            .unwrap_or_else(|_| panic!("shipdeck {all:?} hung"))
            .expect("shipdeck runs");
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `status -o json` rows.
    pub async fn status(&self, mode: Mode) -> Vec<Value> {
        let out = self.run(mode, &["status", "--output", "json"]).await;
        assert_eq!(out.code, 0, "status ({mode:?}) failed: {}", out.stderr);
        serde_json::from_str::<Vec<Value>>(&out.stdout).expect("status JSON is an array")
    }

    pub async fn kube(&self) -> kube::Client {
        let kc = Kubeconfig::read_from(self.sandbox.kubeconfig_path()).expect("kubeconfig");
        let opts = KubeConfigOptions {
            context: Some("in-cluster".into()),
            ..Default::default()
        };
        let cfg = kube::Config::from_custom_kubeconfig(kc, &opts)
            .await
            .expect("kubeconfig loads");
        kube::Client::try_from(cfg).expect("client builds")
    }

    pub async fn apps(&self) -> Api<DynamicObject> {
        Api::namespaced_with(self.kube().await, "argocd", &apps_resource())
    }

    /// The Application as the Kubernetes API holds it (the oracle).
    pub async fn application(&self, name: &str) -> Value {
        let o = self.apps().await.get(name).await.expect("application");
        serde_json::to_value(o).expect("json")
    }

    /// A copy of an existing Application under another name, with these labels (instead of
    /// its own env labels) and, if given, another destination namespace.
    pub async fn copy_app(
        &self,
        from: &str,
        name: &str,
        labels: &[(&str, &str)],
        namespace: Option<&str>,
    ) {
        let mut v = self.application(from).await;
        let meta = v["metadata"].as_object_mut().expect("metadata");
        for k in [
            "resourceVersion",
            "uid",
            "creationTimestamp",
            "generation",
            "managedFields",
            "ownerReferences",
        ] {
            meta.remove(k);
        }
        meta.insert("name".into(), name.into());
        let mut l = serde_json::Map::new();
        l.insert("app.kubernetes.io/part-of".into(), "ledger".into());
        for (k, val) in labels {
            l.insert((*k).into(), (*val).into());
        }
        meta.insert("labels".into(), Value::Object(l));
        if let Some(ns) = namespace {
            v["spec"]["destination"]["namespace"] = ns.into();
        }
        if let Some(o) = v.as_object_mut() {
            o.remove("status");
            o.remove("operation");
        }
        let obj: DynamicObject = serde_json::from_value(v).expect("object");
        self.apps()
            .await
            .create(&PostParams::default(), &obj)
            .await
            .unwrap_or_else(|e| panic!("create {name}: {e}"));
    }

    pub async fn fault(&self, body: Value) {
        let r = reqwest::Client::new()
            .post(format!("{}/_sandbox/faults", self.sandbox.url))
            .json(&body)
            .send()
            .await
            .expect("fault request");
        assert!(r.status().is_success(), "fault {body}: {}", r.status());
    }

    pub async fn clear_faults(&self) {
        let r = reqwest::Client::new()
            .delete(format!("{}/_sandbox/faults", self.sandbox.url))
            .send()
            .await
            .expect("clear faults");
        assert!(r.status().is_success());
    }

    /// A config file in the test's home.
    pub fn config(&self, name: &str, text: &str) -> String {
        let p = self.home.path().join(name);
        std::fs::write(&p, text).expect("write config");
        p.display().to_string()
    }

    pub fn audit(&self) -> Vec<Value> {
        std::fs::read_to_string(self.data.path().join("audit.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

/// Poll until `f` holds or the deadline passes.
pub async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if f().await {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
