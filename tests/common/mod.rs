//! What the integration tests share: a sandbox started in-process on port 0, waiting for a
//! condition with a deadline (never a fixed sleep), authenticated clients for the sandbox's
//! APIs, and the reference specifications in `tests/fixtures`. Each test file uses part of
//! it (`mod common;`), hence the dead-code allowance.
#![allow(dead_code)]

pub mod console;

use serde_json::Value;
use shipdeck::sandbox::auth::Role;
use shipdeck::sandbox::{Sandbox, SandboxOptions};
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

/// How long any condition may take before the test fails. Generous: the machine is shared.
pub const DEADLINE: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(25);

/// rustls needs one process-wide crypto provider before any client or server starts.
pub fn tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The default estate at 50x speed.
pub async fn sandbox() -> Sandbox {
    sandbox_scaled(0.02).await
}

/// The default estate at the given time scale (wall seconds per simulated second).
pub async fn sandbox_scaled(time_scale: f64) -> Sandbox {
    sandbox_with(SandboxOptions {
        time_scale,
        ..Default::default()
    })
    .await
}

pub async fn sandbox_with(opts: SandboxOptions) -> Sandbox {
    tls();
    Sandbox::start(opts).await.expect("sandbox starts")
}

/// Poll `f` until it gives Some, failing after [`DEADLINE`] with `what`.
pub async fn wait_for<T, F, Fut>(what: &str, f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    wait_for_within(what, DEADLINE, f).await
}

/// Poll `f` until it gives Some, failing after `within` with `what`.
pub async fn wait_for_within<T, F, Fut>(what: &str, within: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Poll a synchronous check until it gives Some (state read straight from the sandbox).
pub async fn wait_until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    wait_for(what, || std::future::ready(f())).await
}

/// Poll a synchronous predicate until it holds, within `within`.
pub async fn wait_true_within(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    wait_for_within(what, within, || std::future::ready(f().then_some(()))).await
}

/// The next item from `rx` that `f` accepts, within [`DEADLINE`].
pub async fn next_matching<T>(
    rx: &mut tokio::sync::mpsc::Receiver<T>,
    what: &str,
    mut f: impl FnMut(&T) -> bool,
) -> T {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(u)) if f(&u) => return u,
            Ok(Some(_)) => {}
            Ok(None) => panic!("channel closed while waiting for {what}"),
            Err(_) => panic!("timed out after {DEADLINE:?} waiting for {what}"),
        }
    }
}

/// A plain HTTP client (TLS provider installed).
pub fn http() -> reqwest::Client {
    tls();
    reqwest::Client::new()
}

/// The sandbox's Argo CD REST API as one of its users, over real HTTP.
pub struct Api {
    pub url: String,
    pub token: String,
    pub http: reqwest::Client,
}

impl Api {
    pub fn new(sb: &Sandbox, role: Role) -> Api {
        Api::with_token(sb, &sb.world.users.token(role))
    }

    pub fn with_token(sb: &Sandbox, token: &str) -> Api {
        Api {
            url: sb.url.clone(),
            token: token.to_string(),
            http: http(),
        }
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }
}

/// A kube-rs client for one context of the sandbox's kubeconfig.
pub async fn kube_client(sb: &Sandbox, context: &str) -> kube::Client {
    use kube::config::{KubeConfigOptions, Kubeconfig};
    tls();
    let kc = Kubeconfig::read_from(sb.kubeconfig_path()).expect("kubeconfig parses");
    let opts = KubeConfigOptions {
        context: Some(context.to_string()),
        ..Default::default()
    };
    let cfg = kube::Config::from_custom_kubeconfig(kc, &opts)
        .await
        .expect("kubeconfig loads");
    kube::Client::try_from(cfg).expect("client builds")
}

/// A file under `tests/fixtures` (see its README for sources and licences). Missing is a
/// failure, not a skip: the fixtures are part of the repository.
pub fn fixture(path: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("fixture {}: {e}", p.display()))
}

/// A JSON fixture, parsed.
pub fn fixture_json(path: &str) -> Value {
    serde_json::from_str(&fixture(path)).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

/// A kube-rs client for the sandbox kubeconfig's current context.
pub async fn kube_default(sb: &Sandbox) -> kube::Client {
    tls();
    let kc = kube::config::Kubeconfig::read_from(sb.kubeconfig_path()).expect("kubeconfig parses");
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("kubeconfig loads");
    kube::Client::try_from(cfg).expect("client builds")
}

/// Arm a fault through the sandbox's control endpoint.
pub async fn fault(sb: &Sandbox, body: Value) {
    let r = http()
        .post(format!("{}/_sandbox/faults", sb.url))
        .json(&body)
        .send()
        .await
        .expect("fault endpoint answers");
    assert!(r.status().is_success(), "fault {body} -> {}", r.status());
}

/// Poll `f` until it gives Ok, failing after `within` with `what` and the last Err (what
/// was seen instead), so a timeout says what the state was.
pub async fn wait_ok<T, F, Fut>(what: &str, within: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let seen = match f().await {
            Ok(v) => return v,
            Err(seen) => seen,
        };
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}; last seen: {seen}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// The product's API-mode client for the sandbox, as the admin.
pub fn argo_admin(sb: &Sandbox) -> shipdeck::sources::argocd::ArgoApi {
    shipdeck::sources::argocd::ArgoApi::new(shipdeck::sources::argocd::ArgoApiOptions {
        server: sb.url.clone(),
        token: Some(shipdeck::secrets::Secret::new(
            sb.world.users.token(Role::Admin),
        )),
        ..Default::default()
    })
    .expect("client")
}

/// The product's core-mode client for the sandbox's kubeconfig (its current context), with
/// Git mirrors under `cache`.
pub async fn core_admin(
    sb: &Sandbox,
    cache: &std::path::Path,
) -> shipdeck::sources::kube::CoreArgo {
    let kc = kube::config::Kubeconfig::read_from(sb.kubeconfig_path()).expect("kubeconfig");
    shipdeck::sources::kube::CoreArgo::connect(shipdeck::sources::kube::CoreOptions {
        kubeconfig: Some(kc),
        git: Some(std::sync::Arc::new(
            shipdeck::sources::git::GitMirrors::new(cache),
        )),
        ..Default::default()
    })
    .await
    .expect("core mode connects")
}
